//! `connector-installer headers`: install exactly the header package of
//! every kernel on the eBPF path that lacks usable headers, through the
//! distribution's own package manager, in one transaction.
//!
//! Order of business (docs/headers.md), also the headers step of `install`:
//! 1. from the facts (`facts.rs`, the same as `doctor`'s), [`plan`]: the
//!    kernels that are fine need no transaction at all; the rest become the
//!    backend's own `InstallPlan` (header packages, meta packages riding
//!    along, disabled repositories of the kernel's series enabled for the
//!    call);
//! 2. inside a package transaction (our scriptlet's flag, dpkg's environment,
//!    or an ancestor holding the rpm/dpkg lock): the plan is deferred, the
//!    package manager never called;
//! 3. `--dry-run`: print the plan's exact command, change nothing;
//! 4. [`execute`]: wait for a lock held by someone else, bounded, with
//!    progress lines;
//! 5. install; on "not in the repositories" refresh the metadata once and
//!    retry; what is still missing is reported per kernel (the vendor-archive
//!    fallback takes it from there);
//! 6. check every kernel's tree again: success means usable headers on disk,
//!    not a zero exit status.

use crate::exit;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use connector_host::headers;
use connector_host::kernel::Probe;
use connector_host::lock::{self, TransactionSign};
use connector_host::pkg::{InstallError, InstallPlan, PackageBackend};
use connector_host::Root;
use serde::Serialize;

use crate::doctor;
use crate::facts::{Facts, KernelFacts};
use crate::fallback::access::ArchiveBackend;
pub use crate::fallback::{DownloadLimits, Fallback, FallbackError, Source};

/// What `headers` was asked to do.
#[derive(Debug, Clone)]
pub struct HeadersOptions {
    pub root: Root,
    pub kernel: Option<String>,
    pub running: Option<String>,
    pub dry_run: bool,
    /// `--in-transaction`: called from one of our package scriptlets.
    pub in_transaction: bool,
    /// How long to wait for another process's package lock.
    pub lock_timeout: Duration,
    /// `--archives FILE` instead of the root's /etc/connector/archives.conf.
    pub archives: Option<PathBuf>,
    /// `--from DIR`: pre-downloaded packages, used instead of the network.
    pub from: Option<PathBuf>,
    /// How long and how slowly an archive download may go.
    pub downloads: DownloadLimits,
}

/// Per-kernel result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Outcome {
    /// Usable headers were already on disk: nothing done.
    AlreadyPresent { path: String },
    /// The kernel does not need headers (kernel-module path).
    NotNeeded,
    /// Installed: `source` is `repository`, `archive` or `local`; `from`
    /// the URL or file it came from (archive, local).
    Installed {
        /// Shown once, as the kernel entry's `package`.
        #[serde(skip_serializing)]
        package: String,
        source: Source,
        from: Option<String>,
        path: String,
    },
    /// `--dry-run`: this package would be installed.
    WouldInstall {
        #[serde(skip_serializing)]
        package: String,
    },
    /// Inside a package transaction: to be done after it.
    Deferred {
        #[serde(skip_serializing)]
        package: String,
        reason: String,
    },
    /// Left without headers, and why.
    Failed {
        #[serde(skip_serializing)]
        package: Option<String>,
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelResult {
    pub release: String,
    pub running: bool,
    pub package: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct HeadersReport {
    pub schema_version: u32,
    pub root: String,
    pub dry_run: bool,
    pub kernels: Vec<KernelResult>,
    /// Meta packages installed (or to be) so that future kernels bring
    /// their headers along.
    pub tracking: Vec<String>,
    /// Every package-manager command run (or, with --dry-run, to be run).
    pub commands: Vec<String>,
    pub notes: Vec<String>,
    /// Set when the work was deferred: why.
    pub deferred: Option<String>,
}

impl HeadersReport {
    pub fn exit_code(&self) -> i32 {
        if self
            .kernels
            .iter()
            .any(|k| matches!(k.outcome, Outcome::Failed { .. }))
        {
            exit::NOT_DONE
        } else if self.deferred.is_some() {
            exit::DEFERRED
        } else {
            exit::OK
        }
    }
}

/// Errors a caller of `run` branches on.
#[derive(Debug, thiserror::Error)]
pub enum HeadersError {
    #[error("{0} is not a system the connector supports; no headers installed")]
    Unsupported(String),
    #[error("no package backend for {0}")]
    NoBackend(String),
}

/// What the headers step will do, decided from the facts without acting:
/// the backend's own install plan for the kernels that lack headers, or
/// why it waits for after the enclosing package transaction. `--dry-run`
/// prints it; [`execute`] carries it out.
#[derive(Debug, Clone)]
pub struct HeadersPlan {
    /// Kernels that need nothing, or that no package can help.
    settled: Vec<KernelResult>,
    /// The kernels whose header packages are to be installed.
    wanted: Vec<KernelFacts>,
    /// Header packages, meta packages and repositories to enable, as the
    /// package family's backend takes them.
    pub install: InstallPlan,
    /// The meta packages among `install.packages`.
    pub tracking: BTreeSet<String>,
    notes: Vec<String>,
    /// Inside a package transaction: why nothing runs now.
    pub deferred: Option<String>,
    /// The backend's command for `install`, as it would run.
    pub command: Option<String>,
}

impl HeadersPlan {
    /// Nothing to install.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// The header packages to install, one per wanted kernel.
    pub fn packages(&self) -> Vec<String> {
        self.wanted
            .iter()
            .filter_map(|k| k.headers.package.clone())
            .collect()
    }

    /// The releases whose header packages are to be installed.
    pub fn kernels(&self) -> impl Iterator<Item = &str> {
        self.wanted.iter().map(|k| k.release.as_str())
    }

    /// Why kernels are left without headers that no package can supply.
    pub fn unfixable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settled.iter().filter_map(|k| match &k.outcome {
            Outcome::Failed { reason, .. } => Some((k.release.as_str(), reason.as_str())),
            _ => None,
        })
    }

    /// The notes the plan made (repositories enabled for the call).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The report of the plan not carried out: `--dry-run`, or deferred.
    pub fn report(&self, root: &Root, dry_run: bool) -> HeadersReport {
        let mut r = self.empty_report(root, dry_run);
        r.commands.extend(self.command.clone());
        r.deferred = self.deferred.clone();
        for k in &self.wanted {
            let package = k.headers.package.clone().unwrap_or_default();
            r.kernels.push(result(
                k,
                match &self.deferred {
                    Some(reason) => Outcome::Deferred {
                        package,
                        reason: reason.clone(),
                    },
                    None => Outcome::WouldInstall { package },
                },
            ));
        }
        r
    }

    fn empty_report(&self, root: &Root, dry_run: bool) -> HeadersReport {
        HeadersReport {
            schema_version: 1,
            root: root.path().display().to_string(),
            dry_run,
            kernels: self.settled.clone(),
            tracking: self.tracking.iter().cloned().collect(),
            commands: Vec::new(),
            notes: self.notes.clone(),
            deferred: None,
        }
    }
}

/// Runs `headers`: facts, plan, then (unless `--dry-run` or deferred) the
/// installation. Progress lines go to stderr through `progress`.
pub fn run(opts: &HeadersOptions, progress: &mut dyn FnMut(&str)) -> Result<HeadersReport> {
    let facts = Facts::gather_for(
        &opts.root,
        crate::facts::Ask {
            running: opts.running.as_deref(),
            only: opts.kernel.as_deref(),
            archives: opts.archives.as_deref(),
            os: None,
        },
    )?;
    let archive = crate::fallback::access::for_os(&facts.os, &facts.root);
    run_on(opts, &facts, archive.as_deref(), progress)
}

/// [`run`] on facts already gathered, through `archive` for what the
/// repositories lack.
pub fn run_on(
    opts: &HeadersOptions,
    facts: &Facts,
    archive: Option<&dyn ArchiveBackend>,
    progress: &mut dyn FnMut(&str),
) -> Result<HeadersReport> {
    let plan = plan(opts, facts)?;
    if opts.dry_run || plan.deferred.is_some() || plan.is_empty() {
        if plan.is_empty() && !opts.dry_run {
            // Nothing to do: what the database said stands until it changes.
            facts.remember();
        }
        return Ok(plan.report(&opts.root, opts.dry_run));
    }
    let report = execute(plan, opts, facts, archive, progress)?;
    // The database changed: what the next run will ask is asked now. A run
    // that installed nothing (it failed) leaves nothing behind.
    let installed = report
        .kernels
        .iter()
        .any(|k| matches!(k.outcome, Outcome::Installed { .. }));
    if installed && report.exit_code() == 0 {
        facts.remember_anew();
    }
    Ok(report)
}

/// Plans the headers step from the facts. Read-only: the package
/// database was asked while gathering, and the only new question is
/// whether we run inside a package transaction.
pub fn plan(opts: &HeadersOptions, facts: &Facts) -> Result<HeadersPlan> {
    if !facts.supported() {
        return Err(HeadersError::Unsupported(facts.os.pretty_name.clone()).into());
    }
    let backend = facts
        .backend
        .as_deref()
        .ok_or_else(|| HeadersError::NoBackend(facts.os.pretty_name.clone()))?;
    let mut plan = HeadersPlan {
        settled: Vec::new(),
        wanted: Vec::new(),
        install: InstallPlan::default(),
        tracking: BTreeSet::new(),
        notes: Vec::new(),
        deferred: None,
        command: None,
    };
    for k in &facts.kernels {
        let outcome = if k.probe != Probe::Ebpf {
            Outcome::NotNeeded
        } else if let Some(path) = &k.headers.path {
            Outcome::AlreadyPresent { path: path.clone() }
        } else if k.headers.package.is_none() {
            let f = doctor::fault_11(k, &facts.os, Some(backend));
            Outcome::Failed {
                package: None,
                reason: format!("{}; {}", f.detail, f.fix),
            }
        } else {
            plan.wanted.push(k.clone());
            continue;
        };
        plan.settled.push(result(k, outcome));
    }
    if plan.wanted.is_empty() {
        return Ok(plan);
    }
    let mut enable: BTreeSet<String> = BTreeSet::new();
    for k in &plan.wanted {
        match backend.tracking_packages(&k.flavor) {
            Ok(t) => plan.tracking.extend(t),
            Err(e) => plan
                .notes
                .push(format!("could not look up the kernel meta packages: {e}")),
        }
        enable.extend(backend.repos_to_enable(&k.series_repos));
    }
    plan.install = InstallPlan {
        packages: plan
            .packages()
            .into_iter()
            .chain(plan.tracking.iter().cloned())
            .collect(),
        local_files: Vec::new(),
        enable_repos: enable.into_iter().collect(),
    };
    for r in &plan.install.enable_repos {
        plan.notes.push(format!(
            "repository {r} is configured but disabled; enabled for this call only"
        ));
    }
    plan.command = Some(backend.install_cmd(&plan.install).cmdline());
    if let Some(sign) = lock::enclosing_transaction(opts.in_transaction, &backend.lock_files())
        .context("checking for an enclosing package transaction")?
    {
        plan.deferred = Some(deferral_reason(&sign));
    }
    Ok(plan)
}

/// Carries out a plan that is not deferred: waits for the package lock,
/// installs (refreshing the metadata once when a package is not found),
/// takes what the repositories lack from the vendor archive or `--from`,
/// and checks every kernel's tree on disk.
pub fn execute(
    mut planned: HeadersPlan,
    opts: &HeadersOptions,
    facts: &Facts,
    archive: Option<&dyn ArchiveBackend>,
    progress: &mut dyn FnMut(&str),
) -> Result<HeadersReport> {
    if let Some(reason) = &planned.deferred {
        anyhow::bail!("the header installation is deferred: {reason}");
    }
    let backend = facts
        .backend
        .as_deref()
        .ok_or_else(|| HeadersError::NoBackend(facts.os.pretty_name.clone()))?;
    let mut report = planned.empty_report(&opts.root, false);
    let wanted = std::mem::take(&mut planned.wanted);
    let tracking = &planned.tracking;
    let plan = &mut planned.install;

    // The tools resolve the root's paths with the host's kernel: a link
    // planted in an image must not take them out of it.
    opts.root.check_tool_paths(backend.tool_paths())?;

    // Someone else's lock: wait, bounded.
    wait_for_lock(backend, opts.lock_timeout, progress)?;

    // Install; refresh once on "not found"; drop what is still missing.
    let mut missing: Vec<String> = Vec::new();
    let mut refreshed = false;
    let mut failure: Option<String> = None;
    while !plan.packages.is_empty() {
        let cmd = streamed(backend.install_cmd(plan));
        progress(&format!(
            "installing {} with {}",
            plan.packages.join(" "),
            cmd.program().to_string_lossy()
        ));
        report.commands.push(cmd.cmdline());
        let out = cmd.output()?;
        if out.status.success() {
            break;
        }
        match backend.install_failure(&cmd, &out, plan) {
            InstallError::NotFound { missing: gone, .. } if !refreshed => {
                refreshed = true;
                if let Some(refresh) = backend.refresh_cmd().map(streamed) {
                    progress(&format!(
                        "{} not found; refreshing the repository metadata",
                        gone.join(" ")
                    ));
                    report.commands.push(refresh.cmdline());
                    if let Err(e) = refresh.run() {
                        report
                            .notes
                            .push(format!("refreshing the repository metadata failed: {e}"));
                    }
                }
            }
            InstallError::NotFound { missing: gone, .. } => {
                for g in gone {
                    if tracking.contains(&g) {
                        report.notes.push(format!(
                            "meta package {g} is not available; future kernels of this flavour will need \
                             `connector-installer headers` (the kernel hooks run it)"
                        ));
                        report.tracking.retain(|t| t != &g);
                    } else {
                        missing.push(g.clone());
                    }
                    plan.packages.retain(|p| p != &g);
                }
            }
            InstallError::Locked { source } => {
                failure = Some(format!(
                    "the package manager became locked by another process: {source}"
                ));
                break;
            }
            InstallError::Failed(source) => {
                failure = Some(source.to_string());
                break;
            }
        }
    }

    // What the repositories lack: the vendor archive (or --from DIR),
    // verified end to end, then installed as local files.
    let mut came_from: BTreeMap<String, (Source, String)> = BTreeMap::new();
    let mut fallback_failed: BTreeMap<String, FallbackError> = BTreeMap::new();
    let download_dir = tempfile::Builder::new()
        .prefix("connector-download-")
        .tempdir()
        .context("creating a private download directory")?;
    if !missing.is_empty() && failure.is_none() {
        let cfg = match &facts.archives {
            Ok(cfg) => cfg,
            Err(e) => anyhow::bail!("{e:#}"),
        };
        let mut local = InstallPlan {
            enable_repos: plan.enable_repos.clone(),
            ..InstallPlan::default()
        };
        for pkg in &missing {
            let Some(k) = wanted
                .iter()
                .find(|k| k.headers.package.as_deref() == Some(pkg.as_str()))
            else {
                continue;
            };
            let got = match archive {
                None => Err(FallbackError::NoArchiveBackend(pkg.clone())),
                Some(a) => Fallback {
                    access: a,
                    root: &opts.root,
                    os: &facts.os,
                    config: cfg,
                    limits: opts.downloads,
                    download_dir: download_dir.path(),
                }
                .take(opts.from.as_deref(), k, pkg, progress),
            };
            match got {
                Ok((files, source, from)) => {
                    local.local_files.extend(files);
                    came_from.insert(pkg.clone(), (source, from));
                }
                Err(reason) => {
                    fallback_failed.insert(pkg.clone(), reason);
                }
            }
        }
        if !local.local_files.is_empty() {
            let cmd = streamed(backend.install_cmd(&local));
            progress(&format!(
                "installing the verified package(s) with {}",
                cmd.program().to_string_lossy()
            ));
            report.commands.push(cmd.cmdline());
            let out = cmd.output()?;
            if !out.status.success() {
                for pkg in came_from.keys() {
                    fallback_failed.insert(
                        pkg.clone(),
                        FallbackError::Install(Box::new(
                            backend.install_failure(&cmd, &out, &local),
                        )),
                    );
                }
                came_from.clear();
            }
        }
    }

    // Verify on disk: success is a usable tree, not an exit status.
    for k in &wanted {
        let pkg = k.headers.package.clone().unwrap_or_default();
        let outcome = if let Some(e) = fallback_failed.get(&pkg) {
            Outcome::Failed {
                package: Some(pkg.clone()),
                reason: connector_host::cmd::chain(e),
            }
        } else if let Some(f) = &failure {
            Outcome::Failed {
                package: Some(pkg.clone()),
                reason: f.clone(),
            }
        } else {
            let on_disk = headers::check(&opts.root, &k.release);
            let (source, from) = match came_from.get(&pkg) {
                Some((s, f)) => (*s, Some(f.clone())),
                None => (Source::Repository, None),
            };
            match on_disk.path {
                Some(path) => {
                    crate::state::audit::record(
                        crate::state::audit::ChangeKind::PackageInstalled,
                        format!("installed {pkg} (headers of kernel {})", k.release),
                        vec![pkg.clone()],
                    );
                    Outcome::Installed {
                        package: pkg.clone(),
                        source,
                        from,
                        path,
                    }
                }
                None => Outcome::Failed {
                    package: Some(pkg.clone()),
                    reason: format!(
                        "{pkg} was installed but no usable header tree for {} appeared: {:?}",
                        k.release, on_disk.rejected
                    ),
                },
            }
        };
        report.kernels.push(result(k, outcome));
    }
    Ok(report)
}

fn result(k: &KernelFacts, outcome: Outcome) -> KernelResult {
    KernelResult {
        release: k.release.clone(),
        running: k.running,
        package: outcome
            .package()
            .or(k.headers.package.as_deref())
            .map(String::from),
        outcome,
    }
}

impl Outcome {
    /// The package the outcome is about, if any (serialized once, as the
    /// kernel entry's `package`).
    pub fn package(&self) -> Option<&str> {
        match self {
            Outcome::Installed { package, .. }
            | Outcome::WouldInstall { package }
            | Outcome::Deferred { package, .. } => {
                Some(package).filter(|p| !p.is_empty()).map(|p| p.as_str())
            }
            Outcome::Failed { package, .. } => package.as_deref(),
            Outcome::AlreadyPresent { .. } | Outcome::NotNeeded => None,
        }
    }
}

fn deferral_reason(sign: &TransactionSign) -> String {
    format!(
        "{sign}; the package manager cannot be called from inside its own transaction, so the headers \
         are installed after it ends (run `connector-installer headers` then)"
    )
}

/// The package manager's own output streams through while it runs.
fn streamed(cmd: connector_host::Cmd) -> connector_host::Cmd {
    let tool = std::path::Path::new(cmd.program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    cmd.stream_lines(crate::output::tool_sink(&tool))
}

pub(crate) fn wait_for_lock(
    backend: &dyn PackageBackend,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    // A terminal gets a spinner redrawn in place; a log a line every 5 s.
    let tty = crate::output::is_tty();
    let waited = lock::wait_for_locks(
        &backend.lock_files(),
        lock::LockKind::Record,
        timeout,
        Duration::from_millis(if tty { 200 } else { 5000 }),
        |h, t| {
            let what = format!(
                "waiting for the package manager: {h}, {}s of at most {}s",
                t.as_secs(),
                timeout.as_secs()
            );
            if tty {
                crate::output::waiting(&what)
            } else {
                progress(&what)
            }
        },
    )
    .context("checking the package manager's lock")?;
    if let Err(h) = waited {
        anyhow::bail!(
            "the package manager is busy: {h} for more than {}s; let it finish and run this again, \
             or wait longer with --lock-timeout SECONDS",
            timeout.as_secs()
        );
    }
    Ok(())
}

/// The report for people.
pub fn render_text(r: &HeadersReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for k in &r.kernels {
        let line = match &k.outcome {
            Outcome::AlreadyPresent { path } => format!("headers present at {path}"),
            Outcome::NotNeeded => "no headers needed (kernel-module path)".into(),
            Outcome::Installed { package, path, .. } => format!("installed {package} ({path})"),
            Outcome::WouldInstall { package } => format!("would install {package}"),
            Outcome::Deferred { package, .. } => format!("deferred: {package}"),
            Outcome::Failed { package, reason } => match package {
                Some(p) => format!("FAILED {p}: {reason}"),
                None => format!("FAILED: {reason}"),
            },
        };
        let _ = writeln!(s, "{}: {line}", k.release);
    }
    if !r.tracking.is_empty() {
        let verb = if r.dry_run {
            "would also install"
        } else {
            "also installed"
        };
        let _ = writeln!(
            s,
            "{verb} {} so that future kernels bring their headers along",
            r.tracking.join(" ")
        );
    }
    for c in &r.commands {
        let _ = writeln!(
            s,
            "{} {c}",
            if r.dry_run || r.deferred.is_some() {
                "command:"
            } else {
                "ran:"
            }
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if let Some(d) = &r.deferred {
        let _ = writeln!(s, "deferred: {d}");
    }
    s
}

/// The orchestration of `run` without dnf or apt: a fake package family
/// whose "package manager" is a shell script copying a staged header tree
/// into the root (the real-tool tiers drive dnf and apt themselves).
#[cfg(test)]
mod orchestration {
    use super::*;
    use crate::fake::{devel, setup, Fake, FakeArchive, K};
    use connector_tests::Fixture;

    fn opts(root: &Fixture) -> HeadersOptions {
        HeadersOptions {
            root: root.root(),
            kernel: None,
            running: None,
            dry_run: false,
            in_transaction: false,
            lock_timeout: Duration::from_secs(1),
            archives: None,
            from: None,
            downloads: DownloadLimits::default(),
        }
    }

    /// Runs `run_with` on the fake; returns the report and what it was
    /// asked to do.
    fn run_fake(o: &HeadersOptions, fake: Fake) -> (HeadersReport, Vec<String>) {
        let facts = Facts::gather_with(&o.root, None, None, fake.backend_for()).unwrap();
        let r = run_on(o, &facts, None, &mut |_| {}).unwrap();
        (r, fake.ran())
    }

    #[test]
    fn installs_what_is_missing_and_verifies_it_on_disk() {
        let (root, _stage, fake) = setup(&[&devel()], &[], &[]);
        let (r, log) = run_fake(&opts(&root), fake);
        assert_eq!(log, [format!("install {}", devel())]);
        assert!(
            matches!(&r.kernels[0].outcome, Outcome::Installed { package, .. } if *package == devel()),
            "{r:?}"
        );
        assert_eq!(r.exit_code(), exit::OK);
    }

    #[test]
    fn a_package_missing_until_the_metadata_is_refreshed_is_found_after_one_refresh() {
        let (root, _stage, fake) = setup(&[], &[&devel()], &[]);
        let (r, log) = run_fake(&opts(&root), fake);
        assert_eq!(
            log,
            [
                format!("install {}", devel()),
                "refresh".to_string(),
                format!("install {}", devel())
            ]
        );
        assert!(
            matches!(r.kernels[0].outcome, Outcome::Installed { .. }),
            "{r:?}"
        );
    }

    #[test]
    fn still_missing_after_the_refresh_fails_without_a_second_refresh() {
        let (root, _stage, fake) = setup(&[], &[], &[]);
        let (r, log) = run_fake(&opts(&root), fake);
        assert_eq!(log.iter().filter(|l| *l == "refresh").count(), 1, "{log:?}");
        match &r.kernels[0].outcome {
            Outcome::Failed { reason, .. } => assert!(
                reason.contains("no archive fallback")
                    || reason.contains("not in the configured repositories"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.exit_code(), exit::NOT_DONE);
    }

    #[test]
    fn meta_packages_ride_along_in_the_same_transaction() {
        let (root, _stage, fake) = setup(&[&devel()], &[], &["kernel-devel-matched"]);
        let (r, log) = run_fake(&opts(&root), fake);
        assert_eq!(log, [format!("install {} kernel-devel-matched", devel())]);
        assert_eq!(r.tracking, ["kernel-devel-matched"]);
    }

    #[test]
    fn dry_run_and_deferral_run_nothing() {
        let (root, _stage, fake) = setup(&[&devel()], &[], &[]);
        let mut o = opts(&root);
        o.dry_run = true;
        let (r, _) = run_fake(&o, fake);
        assert!(
            matches!(r.kernels[0].outcome, Outcome::WouldInstall { .. }),
            "{r:?}"
        );
        assert!(
            !root.host(&format!("/usr/src/kernels/{K}")).exists(),
            "nothing installed"
        );

        let (root, _stage, fake) = setup(&[&devel()], &[], &[]);
        let mut o = opts(&root);
        o.in_transaction = true;
        let (r, _) = run_fake(&o, fake);
        assert!(
            matches!(r.kernels[0].outcome, Outcome::Deferred { .. }),
            "{r:?}"
        );
        assert!(r.deferred.is_some());
        assert_eq!(r.exit_code(), exit::DEFERRED);
        assert!(
            !root.host(&format!("/usr/src/kernels/{K}")).exists(),
            "nothing installed"
        );
    }

    #[test]
    fn what_no_repository_has_comes_from_the_first_archive_that_verifies() {
        let (root, _stage, fake) = setup(&[], &[], &["kernel-devel-matched"]);
        root.file(
            connector_host::layout::ARCHIVES_CONF,
            "rhel * * https://a.example/missing/\n\
             rhel * * https://b.example/tampered/\n\
             rhel * * https://c.example/good/\n\
             rhel * * https://d.example/never/\n",
        );
        let o = opts(&root);
        let facts = Facts::gather_with(&o.root, None, None, fake.backend_for()).unwrap();
        let archive = FakeArchive::default();
        let r = run_on(&o, &facts, Some(&archive), &mut |_| {}).unwrap();
        // In order, stopping at the first verified copy.
        assert_eq!(
            *archive.asked.lock().unwrap(),
            [
                "https://a.example/missing/",
                "https://b.example/tampered/",
                "https://c.example/good/"
            ]
        );
        // The repositories were tried (refreshed once); what they have
        // (the meta package) is installed without what they lack; then the
        // verified file as a local package.
        assert_eq!(
            fake.ran(),
            [
                format!("install {} kernel-devel-matched", devel()),
                "refresh".to_string(),
                format!("install {} kernel-devel-matched", devel()),
                "install kernel-devel-matched".to_string(),
                format!("install-local {}.rpm", devel()),
            ]
        );
        match &r.kernels[0].outcome {
            Outcome::Installed { source, from, .. } => {
                assert_eq!(*source, Source::Archive);
                assert_eq!(from.as_deref(), Some("https://c.example/good/"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.tracking, ["kernel-devel-matched"]);
        assert_eq!(r.exit_code(), exit::OK);
    }

    #[test]
    fn when_every_archive_fails_each_is_named_with_its_reason() {
        let (root, _stage, fake) = setup(&[], &[], &[]);
        root.file(
            connector_host::layout::ARCHIVES_CONF,
            "rhel * * https://a.example/missing/\nrhel * * https://b.example/tampered/\n",
        );
        let o = opts(&root);
        let facts = Facts::gather_with(&o.root, None, None, fake.backend_for()).unwrap();
        let r = run_on(&o, &facts, Some(&FakeArchive::default()), &mut |_| {}).unwrap();
        match &r.kernels[0].outcome {
            Outcome::Failed { reason, .. } => {
                assert!(
                    reason.contains("https://a.example/missing/ (archives.conf:1): not there"),
                    "{reason}"
                );
                assert!(
                    reason.contains("https://b.example/tampered/ (archives.conf:2): REFUSED"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !fake.ran().iter().any(|l| l.starts_with("install-local")),
            "nothing unverified is installed"
        );
        assert_eq!(r.exit_code(), exit::NOT_DONE);
    }
}
