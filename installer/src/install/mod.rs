//! `connector-installer install`: one plan, computed read-only first
//! (what `--dry-run` prints), then executed step by step under the
//! installer lock with every step journalled (state.rs).
//!
//! Steps, in order, each present only when there is something to do:
//! `laydown` (from `--payload`), `module` (SELinux policy module),
//! `labels`, `headers` (every installed kernel's header package; deferred
//! inside a package transaction), `enable`, `prepare-image` (clear the
//! connector's per-host state in an image), `start`/`restart` (a running
//! systemd only). A healthy root plans nothing: no lock wait, no package
//! manager, no policy rebuild, no file written.

pub mod headers;
pub mod hook;
pub mod laydown;
pub mod repair;
pub mod selinux;
pub mod service;
pub mod uninstall;

use crate::exit;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use connector_host::Root;
use connector_policy::{live_mode, LiveMode, Store};
use serde::Serialize;

use crate::facts::Facts;
use crate::state::{self, InstallerLock, Interrupted, Journal};
use connector_host::layout::{self, LOG_DIR, SETUP_UNIT, UNIT};
use headers::{HeadersOptions, Outcome};
use laydown::Labeler;

/// Environment variable for fault-injection tests: the installer kills
/// itself (SIGKILL) when it is about to run step number N (0-based; N =
/// the number of steps: after the last one, before the journal is closed).
/// Only in builds with the `fault-injection` feature (the tests'); a
/// shipped binary does not know the variable.
#[cfg(feature = "fault-injection")]
pub const KILL_AT_ENV: &str = "CONNECTOR_INSTALLER_TEST_KILL_AT_STEP";

/// The step to be killed at, in a fault-injection build.
fn kill_at() -> Option<usize> {
    #[cfg(feature = "fault-injection")]
    {
        std::env::var(KILL_AT_ENV).ok().and_then(|v| v.parse().ok())
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        None
    }
}

/// What to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub root: Root,
    /// `uname -r` on the live root; `None` for an image.
    pub running: Option<String>,
    /// `--kernel VER`: only this kernel's headers.
    pub kernel: Option<String>,
    /// A payload to lay down (manifest + files/); without it the connector
    /// must already be there (its package installed it).
    pub payload: Option<PathBuf>,
    pub dry_run: bool,
    /// Clear the connector's per-host state (golden image).
    pub prepare_image: bool,
    /// Start the connector on a running systemd (off: enable only).
    pub start: bool,
    /// Restart the connector even when nothing else changed (upgrade, repair).
    pub restart: bool,
    /// Called from a package scriptlet: headers deferred, nothing waits.
    pub in_transaction: bool,
    /// The deferred job: wait for the package lock before planning.
    pub after_transaction: bool,
    /// Bound on waiting for a package lock (and the policy store lock).
    pub lock_timeout: Duration,
    pub archives: Option<PathBuf>,
    pub from: Option<PathBuf>,
    pub downloads: headers::DownloadLimits,
}

impl InstallOptions {
    pub fn new(root: Root, running: Option<String>) -> InstallOptions {
        InstallOptions {
            root,
            running,
            kernel: None,
            payload: None,
            dry_run: false,
            prepare_image: false,
            start: true,
            restart: false,
            in_transaction: false,
            after_transaction: false,
            lock_timeout: Duration::from_secs(120),
            archives: None,
            from: None,
            downloads: headers::DownloadLimits::default(),
        }
    }

    /// What the facts are gathered for.
    fn ask(&self, os: Option<connector_host::os::OsInfo>) -> crate::facts::Ask<'_> {
        crate::facts::Ask {
            running: self.running.as_deref(),
            only: self.kernel.as_deref(),
            archives: self.archives.as_deref(),
            os,
        }
    }

    fn headers_options(&self) -> HeadersOptions {
        HeadersOptions {
            root: self.root.clone(),
            kernel: self.kernel.clone(),
            running: self.running.clone(),
            dry_run: self.dry_run,
            in_transaction: self.in_transaction,
            lock_timeout: self.lock_timeout,
            archives: self.archives.clone(),
            from: self.from.clone(),
            downloads: self.downloads,
        }
    }
}

/// Step kinds, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Laydown,
    Module,
    Labels,
    Headers,
    Enable,
    PrepareImage,
    Start,
    Restart,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Laydown => "laydown",
            StepKind::Module => "module",
            StepKind::Labels => "labels",
            StepKind::Headers => "headers",
            StepKind::Enable => "enable",
            StepKind::PrepareImage => "prepare-image",
            StepKind::Start => "start",
            StepKind::Restart => "restart",
        }
    }
}

/// One planned step: what it does and exactly what it writes.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: StepKind,
    pub what: String,
    /// Paths (inside the root) or areas this step writes.
    pub writes: Vec<String>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Done,
    /// The headers follow after the package transaction.
    Deferred,
    Failed,
}

impl StepState {
    pub fn name(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::Deferred => "deferred",
            StepState::Failed => "failed",
        }
    }
}

/// What happened to a step.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: StepKind,
    pub state: StepState,
    pub detail: String,
    pub commands: Vec<String>,
}

/// The plan, and (after a run) what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    pub schema_version: u32,
    pub root: String,
    pub live: bool,
    pub dry_run: bool,
    /// Kernels whose headers the plan covers.
    pub kernels: Vec<String>,
    pub plan: Vec<Step>,
    pub results: Vec<StepResult>,
    /// A previous run that was killed or failed, as its journal told it.
    pub resumed: Option<Interrupted>,
    /// What was rolled back from it (temporary files).
    pub rolled_back: Vec<String>,
    pub notes: Vec<String>,
    /// Work left for after the package transaction, and how it will run.
    pub deferred: Option<String>,
    pub elapsed_ms: u64,
}

impl InstallReport {
    pub fn exit_code(&self) -> i32 {
        if self.results.iter().any(|r| r.state == StepState::Failed) {
            exit::NOT_DONE
        } else if self.deferred.is_some() {
            exit::DEFERRED
        } else {
            exit::OK
        }
    }
}

/// Errors a caller branches on.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0} is not a system the connector supports; nothing installed")]
    Unsupported(String),
    #[error(
        "the connector is not laid down in {0} ({bin} is missing): install its package, or \
         give --payload DIR",
        bin = connector_host::layout::CONNECTORD
    )]
    NotLaidDown(String),
}

impl PlanError {
    /// Whether `e` says the system is not one the connector supports.
    pub fn is_unsupported(e: &anyhow::Error) -> bool {
        e.downcast_ref::<PlanError>()
            .is_some_and(|e| matches!(e, PlanError::Unsupported(_)))
    }
}

/// Everything `plan` found out, for `execute`.
/// What `install` will do, with everything its steps need to do it: the
/// facts it was planned from, the checked lay-down and the backend's own
/// header plan. Execution consumes it and looks nothing up again.
pub struct Plan {
    pub report: InstallReport,
    laydown: Option<laydown::Prepared>,
    headers: Option<headers::HeadersPlan>,
    /// The file contexts the labels were judged by (their answers are
    /// kept for the next run when it does not stop at the plan).
    labels: Option<crate::labels::FileContexts>,
    facts: Facts,
}

impl Plan {
    /// What this run learnt that makes the next one cheaper: the laid-down
    /// files' stamps and the file contexts' answers (caches, written only
    /// when they changed).
    fn remember(&self) {
        self.facts.remember();
        if let Some(p) = &self.laydown {
            p.remember();
        }
        if let Some(fc) = &self.labels {
            fc.save();
        }
    }
}

/// Plans from facts already gathered (`repair` gathers them first).
/// Read-only.
pub fn plan_from(opts: &InstallOptions, facts: Facts) -> Result<Plan> {
    let start = Instant::now();
    let root = &opts.root;
    let mut report = InstallReport {
        schema_version: 1,
        root: root.path().display().to_string(),
        live: root.is_live(),
        dry_run: opts.dry_run,
        kernels: Vec::new(),
        plan: Vec::new(),
        results: Vec::new(),
        resumed: state::Journal::previous(root)?,
        rolled_back: Vec::new(),
        notes: Vec::new(),
        deferred: None,
        elapsed_ms: 0,
    };
    let mut steps = Vec::new();

    // Lay-down: checked in full now (digests, destinations, room).
    let mut prepared = None;
    if let Some(payload) = &opts.payload {
        let p = laydown::prepare(root, payload)?;
        let changes: Vec<String> = p
            .preview()?
            .into_iter()
            .filter(|d| d.action != laydown::Action::Unchanged)
            .map(|d| format!("{} ({})", d.path, d.action))
            .collect();
        if !changes.is_empty() {
            // A root with SELinux configured but no usable file contexts
            // is refused now, not half laid down later.
            laydown::FileContexts::open(root)?;
            steps.push(Step {
                step: StepKind::Laydown,
                what: format!("lay down {} connector file(s)", changes.len()),
                writes: changes,
            });
        }
        prepared = Some(p);
    } else if !root.exists(connector_host::layout::CONNECTORD)? {
        return Err(PlanError::NotLaidDown(root.path().display().to_string()).into());
    }
    let laying_down = steps.iter().any(|s| s.step == StepKind::Laydown);

    // SELinux: the module, then labels, from the facts gathered once (the
    // audit log is read once); a root whose SELinux state could not be
    // inspected is refused here.
    let sel = facts.selinux()?;
    let mut module_planned = false;
    let mut judged_labels = None;
    if sel.module_step_needed() {
        if let Some(store) = facts.store() {
            module_planned = true;
            steps.push(Step {
                step: StepKind::Module,
                what: format!(
                    "install the SELinux module connectord {} (semodule -X 200){}",
                    sel.shipped_version,
                    if root.is_live() {
                        ", then load the policy"
                    } else {
                        ""
                    }
                ),
                writes: vec![format!("{} (policy store)", store.dir().display())],
            });
        }
    }
    if sel.not_applicable.is_none() {
        let wrong = if module_planned || laying_down {
            None
        } else {
            crate::labels::mislabeled(root).map(|(wrong, fc)| {
                judged_labels = Some(fc);
                wrong
            })
        };
        let needed = module_planned || laying_down || wrong.as_ref().is_some_and(|w| !w.is_empty());
        let live_off = root.is_live() && live_mode() == LiveMode::Off;
        if needed && !live_off {
            steps.push(Step {
                step: StepKind::Labels,
                what: match &wrong {
                    Some(w) if !w.is_empty() => format!("relabel {}", w.join(" ")),
                    _ => "label the connector's files".into(),
                },
                writes: layout::LABELED
                    .iter()
                    .map(|p| format!("{p} (security.selinux)"))
                    .collect(),
            });
        }
    }

    // Headers of every kernel that will run (every installed kernel: any of
    // them can be chosen at boot): the backend's own install plan.
    let h = match headers::plan(&opts.headers_options(), &facts) {
        Ok(h) => h,
        Err(e) => {
            return Err(match e.downcast::<headers::HeadersError>() {
                Ok(headers::HeadersError::Unsupported(name)) => PlanError::Unsupported(name).into(),
                Ok(other) => other.into(),
                Err(e) => e,
            })
        }
    };
    report.kernels = facts.kernels.iter().map(|k| k.release.clone()).collect();
    for (release, reason) in h.unfixable() {
        report.notes.push(format!("kernel {release}: {reason}"));
    }
    if !h.is_empty() {
        steps.push(Step {
            step: StepKind::Headers,
            what: match (&h.deferred, &h.command) {
                (Some(_), _) => format!(
                    "install {} after the package transaction (deferred)",
                    h.packages().join(" ")
                ),
                (None, Some(cmd)) => format!("install {cmd}"),
                (None, None) => format!("install {}", h.packages().join(" ")),
            },
            writes: vec!["the package database and the header trees".into()],
        });
    }
    report.notes.extend(h.notes().iter().cloned());

    // The unit.
    let unit_there = service::unit_installed(root, UNIT)
        || prepared.as_ref().is_some_and(|p| {
            p.entries()
                .iter()
                .any(|e| e.path.ends_with(&format!("/systemd/system/{UNIT}")))
        });
    if unit_there && !service::enabled(root, UNIT) {
        steps.push(Step {
            step: StepKind::Enable,
            what: format!("enable {UNIT}"),
            writes: vec![format!(
                "/etc/systemd/system/multi-user.target.wants/{UNIT}"
            )],
        });
    }

    // A golden image: the connector's per-host state goes.
    if opts.prepare_image {
        let mut present: Vec<String> = layout::PER_HOST_STATE
            .iter()
            .filter(|p| root.exists(p).unwrap_or(false))
            .map(|p| p.to_string())
            .collect();
        for name in root.read_dir_names(LOG_DIR).unwrap_or_default() {
            present.push(format!("{LOG_DIR}/{}", name.to_string_lossy()));
        }
        if !present.is_empty() {
            steps.push(Step {
                step: StepKind::PrepareImage,
                what: "clear the connector's per-host state".into(),
                writes: present,
            });
        }
        if root
            .read_to_string_optional("/etc/machine-id")?
            .is_some_and(|m| !m.trim().is_empty())
        {
            report.notes.push(
                "/etc/machine-id is set in this image: clones will share it unless the image \
                 tooling empties it (systemd-machine-id-setup on first boot); not ours to change"
                    .into(),
            );
        }
    }

    // Running it (a booted systemd only; an image is enabled, not started).
    if opts.start && unit_there && service::systemd_running(root) {
        let changed = steps.iter().any(|s| {
            matches!(
                s.step,
                StepKind::Laydown | StepKind::Module | StepKind::Headers
            )
        });
        // After a change, a restart: `start` would leave alone a connector
        // that systemd brings back while the plan runs (Restart=), with the
        // policy and headers of before (the VM's repair phase saw it keep
        // fault 12). `restart` starts a stopped unit too.
        if changed || opts.restart {
            steps.push(Step {
                step: StepKind::Restart,
                what: format!("restart {UNIT}"),
                writes: vec![],
            });
        } else if !service::active(root, UNIT) {
            steps.push(Step {
                step: StepKind::Start,
                what: format!("start {UNIT}"),
                writes: vec![],
            });
        }
    }

    check_tool_paths(&facts, &steps)?;
    if !steps.is_empty() {
        check_space(root, &steps, prepared.as_ref())?;
    }
    report.plan = steps;
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(Plan {
        report,
        laydown: prepared,
        headers: (!h.is_empty()).then_some(h),
        labels: judged_labels,
        facts,
    })
}

/// Room for everything the run writes before its steps do their own
/// checking: the lay-down (files, directories, its record) and the
/// installer's bookkeeping (the state directory, the lock, the journal, the
/// pending record). Refused here, nothing has been written.
fn check_space(root: &Root, steps: &[Step], prepared: Option<&laydown::Prepared>) -> Result<()> {
    let mut space = match prepared {
        Some(p) if steps.iter().any(|s| s.step == StepKind::Laydown) => p.space_needed()?,
        _ => laydown::Space::default(),
    };
    let state = root
        .resolve_optional(connector_host::layout::STATE_DIR)?
        .unwrap_or_else(|| root.host_path(connector_host::layout::STATE_DIR));
    space.add(connector_host::layout::STATE_DIR, &state, 0, true);
    space.add(
        connector_host::layout::INSTALLER_LOCK,
        &state.join("installer.lock"),
        0,
        false,
    );
    // The journal: a line per step and two per step run; one block.
    space.add(
        connector_host::layout::JOURNAL,
        &state.join("install.journal"),
        4096,
        false,
    );
    if steps.iter().any(|s| s.step == StepKind::Headers) {
        space.add(
            connector_host::layout::PENDING,
            &state.join("pending"),
            4096,
            false,
        );
    }
    space.check()
}

/// Tools that take the root (semodule, dnf/rpm, apt/dpkg,
/// systemctl) resolve its paths with the host's kernel: every path a planned
/// step hands to one must lead where it leads inside the root. Checked when
/// planning, so a planted link refuses the whole run before its first write.
fn check_tool_paths(facts: &Facts, steps: &[Step]) -> Result<()> {
    let root = &facts.root;
    if root.path() == std::path::Path::new("/") {
        return Ok(());
    }
    let has = |k: StepKind| steps.iter().any(|s| s.step == k);
    if has(StepKind::Module) || has(StepKind::Labels) {
        if let Some(store) = facts.store() {
            store.check_tool_paths()?;
        }
    }
    if has(StepKind::Headers) {
        if let Some(b) = &facts.backend {
            root.check_tool_paths(b.tool_paths())?;
        }
    }
    if has(StepKind::Enable) {
        root.check_tool_paths(service::SYSTEMCTL_PATHS)?;
    }
    Ok(())
}

/// `install`: plan, then (unless `--dry-run`) run it.
pub fn run(opts: &InstallOptions, progress: &mut dyn FnMut(&str)) -> Result<InstallReport> {
    // The deferred job finds the package lock through the OS it detects;
    // the facts take that OS, not a second detection.
    let os = match opts.after_transaction {
        true => Some(wait_for_package_lock(opts, progress)?),
        false => None,
    };
    let facts = Facts::gather_for(&opts.root, opts.ask(os))?;
    run_from(opts, facts, progress)
}

/// [`run`] on facts already gathered.
pub fn run_from(
    opts: &InstallOptions,
    facts: Facts,
    progress: &mut dyn FnMut(&str),
) -> Result<InstallReport> {
    let start = Instant::now();
    // Planned first without the lock: bad input is refused before anything
    // (even the lock file) is written, and a healthy root, with no journal
    // to close, is done here.
    let first = plan_from(opts, facts)?;
    if opts.dry_run {
        return Ok(first.report);
    }
    // Deferred work that is done by now is cleared at the end; a record
    // that cannot be read is refused (never rewritten: it may hold work).
    let stale_pending = !opts.in_transaction
        && match &first.facts.pending {
            Ok(p) => !p.is_empty(),
            Err(e) => anyhow::bail!("{e:#}"),
        };
    if first.report.plan.is_empty() && first.report.resumed.is_none() && !stale_pending {
        // Nothing to do; the caches are written only when they were
        // missing or stale.
        first.remember();
        let mut report = first.report;
        report.elapsed_ms = start.elapsed().as_millis() as u64;
        return Ok(report);
    }
    // One installer at a time. The plan stands when no other installer
    // took the lock since we read its generation; otherwise the root may
    // have changed under us, and it is made again under the lock.
    let lock = InstallerLock::acquire(&opts.root)?;
    let Plan {
        mut report,
        laydown: prepared,
        headers: mut headers_plan,
        labels: judged_labels,
        facts,
    } = if lock.previous == first.facts.generation {
        first
    } else {
        log::debug!("another installer ran since the facts were gathered: planning again");
        plan_from(opts, first.facts.again()?)?
    };
    if let Some(prev) = &report.resumed {
        progress(&format!(
            "a previous install stopped {}; resuming",
            match (&prev.failed, &prev.during) {
                (Some(f), _) => format!("after a failure ({f})"),
                (None, Some(s)) => format!("during step {s}"),
                (None, None) => "between steps".to_string(),
            }
        ));
        let mut dirs: Vec<String> = prepared.as_ref().map(|l| l.dirs()).unwrap_or_default();
        dirs.push(connector_host::layout::STATE_DIR.to_string());
        report.rolled_back = state::remove_stale_temporaries(&opts.root, &dirs);
    }
    let kill_at = kill_at();
    if report.plan.is_empty() {
        facts.remember();
        if let Some(p) = &prepared {
            p.remember();
        }
        if let Some(fc) = &judged_labels {
            fc.save();
        }
        if report.resumed.is_some() {
            Journal::start(&opts.root, &[])?.finish()?;
        }
        // Work a hook deferred that is done by now (by whoever did it).
        if !opts.in_transaction {
            state::clear_pending(&opts.root)?;
        }
        report.elapsed_ms = start.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let names: Vec<&str> = report.plan.iter().map(|s| s.step.name()).collect();
    let mut journal = Journal::start(&opts.root, &names)?;
    let steps = report.plan.clone();
    let mut failed = false;
    for (i, step) in steps.iter().enumerate() {
        if kill_at == Some(i) {
            kill_self();
        }
        let name = step.step.name();
        // After a failure, only the steps that do not build on it.
        if failed && matches!(step.step, StepKind::Start | StepKind::Restart) {
            continue;
        }
        journal.begin(name)?;
        progress(&step.what);
        let planned = Planned {
            facts: &facts,
            laydown: prepared.as_ref(),
            headers: &mut headers_plan,
        };
        match run_step(opts, planned, step, progress) {
            Ok(r) => {
                if r.state == StepState::Deferred {
                    report.deferred = Some(r.detail.clone());
                }
                journal.done(name)?;
                report.results.push(r);
            }
            Err(e) => {
                let why = format!("{e:#}");
                journal.failed(name, &why)?;
                report.results.push(StepResult {
                    step: step.step,
                    state: StepState::Failed,
                    detail: why,
                    commands: vec![],
                });
                failed = true;
            }
        }
    }
    if kill_at == Some(steps.len()) {
        kill_self();
    }
    if let Some(p) = &prepared {
        p.remember();
    }
    // The database's answer stands unless this run changed the database;
    // then it is asked once more, for the next run.
    let transaction = report
        .results
        .iter()
        .any(|r| r.step == StepKind::Headers && r.state == StepState::Done);
    if transaction {
        facts.remember_anew();
    } else if !steps.iter().any(|s| s.step == StepKind::Headers) {
        facts.remember();
    }
    // The labels step keeps the answers of the file contexts it used (the
    // module may have changed them); otherwise the plan's are kept.
    if !steps.iter().any(|s| s.step == StepKind::Labels) {
        if let Some(fc) = &judged_labels {
            fc.save();
        }
    }
    if !failed {
        journal.finish()?;
        if report.deferred.is_none() && opts.kernel.is_none() {
            state::clear_pending(&opts.root)?;
        }
    }
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// What a step carries out: the parts of the plan made for it.
struct Planned<'a> {
    facts: &'a Facts,
    laydown: Option<&'a laydown::Prepared>,
    headers: &'a mut Option<headers::HeadersPlan>,
}

/// The store the facts opened, for a step that acts on it.
fn store_of(facts: &Facts) -> Result<&Store> {
    facts.store().ok_or_else(|| {
        let why = facts.selinux().ok().and_then(|r| r.not_applicable.clone());
        anyhow::anyhow!("SELinux is not applicable: {why:?}")
    })
}

fn kill_self() -> ! {
    // SAFETY: signalling ourselves.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL")
}

fn run_step(
    opts: &InstallOptions,
    planned: Planned<'_>,
    step: &Step,
    progress: &mut dyn FnMut(&str),
) -> Result<StepResult> {
    let root = &opts.root;
    let ok = |detail: String, commands: Vec<String>| StepResult {
        step: step.step,
        state: StepState::Done,
        detail,
        commands,
    };
    match step.step {
        StepKind::Laydown => {
            let prepared = planned.laydown.context("no payload")?;
            let labels: Box<dyn Labeler> = match laydown::FileContexts::open(root)? {
                Some(fc) => Box::new(fc),
                None => Box::new(laydown::NoLabels),
            };
            prepared.check_space()?;
            let done = prepared.apply(labels.as_ref())?;
            let changed: Vec<String> = done
                .iter()
                .filter(|d| d.action != laydown::Action::Unchanged)
                .map(|d| format!("{} {}", d.action, d.path))
                .collect();
            Ok(ok(changed.join(", "), vec![]))
        }
        StepKind::Module => {
            let store = store_of(planned.facts)?;
            let cmds = selinux::install_module(root, store, opts.lock_timeout)?.unwrap_or_default();
            Ok(ok(
                format!("module connectord {}", connector_policy::module_version()),
                cmds,
            ))
        }
        StepKind::Labels => {
            let store = store_of(planned.facts)?;
            let fixed = selinux::relabel(store)?;
            let detail = if fixed.is_empty() {
                "labels already right".to_string()
            } else {
                format!("relabeled {}", fixed.join(" "))
            };
            Ok(ok(detail, vec![]))
        }
        StepKind::Headers => {
            let h = planned.headers.take().context("no header plan")?;
            if let Some(reason) = &h.deferred {
                let how = defer(root)?;
                for release in h.kernels() {
                    state::record_pending(root, &format!("headers {release}"))?;
                }
                return Ok(StepResult {
                    step: step.step,
                    state: StepState::Deferred,
                    detail: format!("{reason}; {how}"),
                    commands: vec![],
                });
            }
            let facts = planned.facts;
            let archive = crate::fallback::access::for_os(&facts.os, &facts.root);
            let r = headers::execute(
                h,
                &opts.headers_options(),
                facts,
                archive.as_deref(),
                progress,
            )?;
            let failed: Vec<String> = r
                .kernels
                .iter()
                .filter_map(|k| match &k.outcome {
                    Outcome::Failed { reason, .. } => Some(format!("{}: {reason}", k.release)),
                    _ => None,
                })
                .collect();
            if !failed.is_empty() {
                anyhow::bail!("headers left missing: {}", failed.join("; "));
            }
            let installed: Vec<String> = r
                .kernels
                .iter()
                .filter_map(|k| match &k.outcome {
                    Outcome::Installed { package, .. } => Some(package.clone()),
                    _ => None,
                })
                .collect();
            Ok(ok(format!("installed {}", installed.join(" ")), r.commands))
        }
        StepKind::Enable => {
            let cmd = service::enable_unit(root, UNIT)?;
            Ok(ok(format!("enabled {UNIT}"), cmd.into_iter().collect()))
        }
        StepKind::PrepareImage => {
            for path in &step.writes {
                state::remove_in_root(root, path)?;
            }
            crate::state::audit::record(
                crate::state::audit::ChangeKind::FilesRemoved,
                "cleared the connector's per-host state (image)",
                step.writes.clone(),
            );
            Ok(ok(format!("removed {}", step.writes.join(" ")), vec![]))
        }
        StepKind::Start | StepKind::Restart => {
            let verb = if step.step == StepKind::Start {
                "start"
            } else {
                "restart"
            };
            let mut args = vec![verb];
            // Inside a transaction nothing may wait on systemd's jobs.
            if opts.in_transaction {
                args.push("--no-block");
            }
            args.push(UNIT);
            let cmd = service::systemctl(root, &args, &format!("{verb}ing the connector"))?;
            crate::state::audit::record(
                if step.step == StepKind::Start {
                    crate::state::audit::ChangeKind::ServiceStarted
                } else {
                    crate::state::audit::ChangeKind::ServiceRestarted
                },
                format!("{verb}ed {UNIT}"),
                vec![UNIT.to_string()],
            );
            Ok(ok(format!("{verb}ed {UNIT}"), vec![cmd]))
        }
    }
}

/// Hands the header installation to after the package transaction: the
/// one-shot unit on a running systemd, otherwise the command to run.
pub fn defer(root: &Root) -> Result<String> {
    if service::systemd_running(root) && service::unit_installed(root, SETUP_UNIT) {
        let cmd = service::systemctl(
            root,
            &["start", "--no-block", SETUP_UNIT],
            "Starting the connector's after-transaction job",
        )?;
        Ok(format!(
            "{SETUP_UNIT} will install them once the package manager's lock is released ({cmd})"
        ))
    } else {
        let on_root = if root.path() == std::path::Path::new("/") {
            String::new()
        } else {
            format!(" --root {}", root.path().display())
        };
        Ok(format!(
            "no running systemd to hand this to: run `connector-installer install{on_root}` once \
             the package transaction is over"
        ))
    }
}

/// The deferred job: wait until no package transaction holds the lock.
/// Returns the OS it detected to find the lock.
fn wait_for_package_lock(
    opts: &InstallOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<connector_host::os::OsInfo> {
    let os =
        connector_host::os::OsInfo::detect(&opts.root).context("detecting the operating system")?;
    if let Some(backend) = crate::facts::backend::for_os(&os, &opts.root) {
        headers::wait_for_lock(backend.as_ref(), opts.lock_timeout, progress)?;
    }
    Ok(os)
}

/// The plan for people.
pub fn render_text(r: &InstallReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if let Some(prev) = &r.resumed {
        let _ = writeln!(
            s,
            "resumed: a previous run had finished {}/{} step(s){}",
            prev.done.len(),
            prev.plan.len(),
            prev.during
                .as_deref()
                .map(|d| format!(", stopped in {d}"))
                .unwrap_or_default()
        );
        for t in &r.rolled_back {
            let _ = writeln!(s, "rolled back: {t}");
        }
    }
    if r.plan.is_empty() {
        let _ = writeln!(s, "nothing to do: the connector is installed and healthy");
    }
    for (i, step) in r.plan.iter().enumerate() {
        let result = r.results.iter().find(|x| x.step == step.step);
        let state = match (r.dry_run, result) {
            (true, _) => "plan",
            (false, Some(x)) => x.state.name(),
            (false, None) => "skipped",
        };
        let _ = writeln!(
            s,
            "{:>2}. [{state}] {}: {}",
            i + 1,
            step.step.name(),
            step.what
        );
        for w in &step.writes {
            let _ = writeln!(s, "      writes {w}");
        }
        if let Some(x) = result {
            if x.state != StepState::Done {
                let _ = writeln!(s, "      {}", x.detail);
            }
            for c in &x.commands {
                let _ = writeln!(s, "      ran: {c}");
            }
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if let Some(d) = &r.deferred {
        let _ = writeln!(s, "deferred: {d}");
    }
    s
}

/// The pipeline without dnf or apt: facts gathered once through a fake
/// package family, a plan carrying the backend's own install plan, and an
/// execution that consumes it without looking again.
#[cfg(test)]
mod pipeline {
    use super::*;
    use crate::fake::{devel, setup, Fake, K};
    use connector_tests::Fixture;

    /// A RHEL 9.3 root with the connector laid down (no SELinux, no unit)
    /// and kernel K without headers.
    fn root(now: &[&str], tracking: &[&str]) -> (Fixture, Fixture, Fake) {
        let (root, stage, fake) = setup(now, &[], tracking);
        root.file(connector_host::layout::CONNECTORD, "#!/bin/sh\n");
        (root, stage, fake)
    }

    fn opts(root: &Fixture) -> InstallOptions {
        InstallOptions {
            start: false,
            lock_timeout: Duration::from_secs(1),
            ..InstallOptions::new(root.root(), None)
        }
    }

    fn facts(o: &InstallOptions, fake: &Fake) -> Facts {
        Facts::gather_with(&o.root, None, None, fake.backend_for()).unwrap()
    }

    #[test]
    fn the_headers_step_carries_the_backends_plan_and_runs_it_without_a_second_look() {
        let (root, _stage, fake) = root(&[&devel()], &["kernel-devel-matched"]);
        let o = opts(&root);
        let f = facts(&o, &fake);
        assert_eq!(fake.queries(), 1, "one gathering, one database question");
        let p = plan_from(&o, f).unwrap();
        let steps: Vec<StepKind> = p.report.plan.iter().map(|s| s.step).collect();
        assert_eq!(steps, [StepKind::Headers]);
        let h = p
            .headers
            .as_ref()
            .expect("the backend's plan travels with the step");
        assert_eq!(
            h.install.packages,
            [devel(), "kernel-devel-matched".to_string()]
        );
        // The step shows the backend's command for that plan, as it will run.
        let cmd = h.command.as_deref().expect("a command");
        assert_eq!(p.report.plan[0].what, format!("install {cmd}"));
        assert!(
            cmd.contains(&format!("install {} kernel-devel-matched", devel())),
            "{cmd}"
        );
        assert!(fake.ran().is_empty(), "planning runs nothing");

        let r = run_from(&o, facts(&o, &fake), &mut |_| {}).unwrap();
        assert_eq!(
            r.results.iter().map(|x| x.state).collect::<Vec<_>>(),
            [StepState::Done],
            "{r:?}"
        );
        assert_eq!(
            fake.ran(),
            [format!("install {} kernel-devel-matched", devel())]
        );
        // Two gatherings in this test (one per call), none by execution:
        // the plan made before the lock stood (no other installer ran).
        assert_eq!(fake.queries(), 2);
        assert!(root
            .host(&format!("/usr/src/kernels/{K}/Makefile"))
            .exists());
        assert_eq!(crate::state::lock_generation(&o.root), Some(1));
    }

    #[test]
    fn facts_gathered_before_another_installer_ran_are_gathered_again_under_the_lock() {
        let (root, _stage, fake) = root(&[&devel()], &[]);
        let o = opts(&root);
        let f = facts(&o, &fake);
        assert_eq!(f.generation, None);
        // Another installer takes the lock (and lets it go) after these
        // facts were gathered.
        drop(InstallerLock::acquire(&o.root).unwrap());
        let r = run_from(&o, f, &mut |_| {}).unwrap();
        assert_eq!(fake.queries(), 2, "gathered again under the lock");
        assert_eq!(r.results.len(), 1, "{r:?}");
        assert_eq!(crate::state::lock_generation(&o.root), Some(2));
    }

    #[test]
    fn inside_a_package_transaction_the_headers_step_is_deferred_and_recorded() {
        let (root, _stage, fake) = root(&[&devel()], &[]);
        let o = InstallOptions {
            in_transaction: true,
            ..opts(&root)
        };
        let r = run_from(&o, facts(&o, &fake), &mut |_| {}).unwrap();
        assert_eq!(
            r.results.iter().map(|x| x.state).collect::<Vec<_>>(),
            [StepState::Deferred],
            "{r:?}"
        );
        assert!(fake.ran().is_empty(), "nothing ran inside the transaction");
        assert_eq!(
            crate::state::pending(&o.root).unwrap(),
            [format!("headers {K}")]
        );
    }

    #[test]
    fn a_healthy_root_plans_nothing_and_takes_no_lock() {
        let (root, _stage, fake) = root(&[&devel()], &[]);
        let o = opts(&root);
        run_from(&o, facts(&o, &fake), &mut |_| {}).unwrap();
        let generation = crate::state::lock_generation(&o.root);
        let r = run_from(&o, facts(&o, &fake), &mut |_| {}).unwrap();
        assert!(r.plan.is_empty(), "{r:?}");
        assert_eq!(fake.ran().len(), 1, "the second run installed nothing");
        assert_eq!(crate::state::lock_generation(&o.root), generation);
    }
}
