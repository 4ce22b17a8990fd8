//! Facts about a root, gathered once by [`Facts::gather`] and read by
//! every later stage: doctor's faults and report, and the plans of
//! `install`, `headers`, `selinux install`, `repair` and the hooks. Nothing
//! here acts, and nothing after it looks at the root again for what is here
//! (docs/ARCHITECTURE.md, "The pipeline").
//!
//! What could not be found out is a fact too: each source that can fail
//! (SELinux, the connector's status, the pending record, archives.conf)
//! keeps its error, and each stage decides what that means for it (doctor
//! notes it, install refuses).

pub mod archives_conf;
pub mod backend;
mod dbcache;
pub mod selinux;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use connector_host::headers::{self, Candidate};
use connector_host::inventory::{self, Inventory};
use connector_host::kernel::{self, Probe, Variant};
use connector_host::os::{OsInfo, Support};
use connector_host::pkg::{BackendError, DbQuery, KernelFiles, KernelOwner, PackageBackend};
use connector_host::status::{self, Status, StatusError};
use connector_host::Root;
use serde::Serialize;

use crate::facts::archives_conf::ArchiveConfig;
use selinux::SelinuxReport;
use std::cell::OnceCell;

/// Everything the stages after this one know about a root.
pub struct Facts {
    /// The root the facts are of.
    pub root: Root,
    /// Its operating system, detected once.
    pub os: OsInfo,
    /// The kernels as listed (running first), with the stale directories.
    pub inventory: Inventory,
    /// Each kernel of the inventory (or the one `--kernel` named), with
    /// its class and its headers on disk and in the package database.
    pub kernels: Vec<KernelFacts>,
    /// The package family's backend, when the OS has one.
    pub backend: Option<Box<dyn PackageBackend>>,
    /// What the package database said beyond yes and no.
    pub database: Vec<DatabaseObservation>,
    /// SELinux: configuration, module, rights, denials (docs/selinux.md):
    /// looked at when first asked ([`Facts::selinux_state`]), once; the
    /// stages that never ask (`headers`) never read a policy.
    selinux: OnceCell<Result<SelinuxReport>>,
    /// The SELinux store that look opened (None where SELinux does not
    /// apply): the plan and the steps use it, so a run opens it once.
    store: OnceCell<Option<connector_policy::Store>>,
    /// The connector's own published state.
    pub connector: Result<Option<Status>, StatusError>,
    /// Work a package hook deferred (the pending record).
    pub pending: Result<Vec<String>>,
    /// The root's `/etc/connector/archives.conf` (empty when absent).
    pub archives: Result<ArchiveConfig>,
    /// The last installer run that changed something (audit.rs).
    pub last_run: Result<Option<crate::state::audit::LastRun>>,
    /// The installer lock's generation when gathering began: a plan made
    /// from these facts stands only while no installer has taken the lock
    /// since (state.rs).
    pub generation: Option<u64>,
    /// The package database's answers when it was asked (not kept from
    /// before), to keep for the next run.
    fresh_owners: Option<crate::facts::dbcache::Answer>,
    asked: Asked,
}

/// Chooses the package backend of a root's OS.
pub type BackendFor = dyn Fn(&OsInfo, &Root) -> Option<Box<dyn PackageBackend>> + Send + Sync;

/// What the facts were gathered with, to gather them again.
#[derive(Clone)]
struct Asked {
    running: Option<String>,
    only: Option<String>,
    archives: Option<PathBuf>,
    os: Option<OsInfo>,
    backend_for: Arc<BackendFor>,
}

/// What a command says about the facts it asks for ([`Facts::gather_for`]).
#[derive(Debug, Default)]
pub struct Ask<'a> {
    /// The running kernel (`None` for an image).
    pub running: Option<&'a str>,
    /// `--kernel`: only this release.
    pub only: Option<&'a str>,
    /// `--archives FILE`.
    pub archives: Option<&'a Path>,
    /// The OS, already detected.
    pub os: Option<OsInfo>,
}

/// What the package database said that changes the picture.
#[derive(Debug)]
pub enum DatabaseObservation {
    /// Which package owns each kernel could not be asked.
    OwnersUnknown(BackendError),
    /// The owner's name names another header package than the release
    /// rules do; the database wins.
    Renamed {
        /// The kernel.
        release: String,
        /// The package that owns its files.
        owner: KernelOwner,
        /// The header package the release rules named.
        by_rules: Option<String>,
    },
    /// Whether the header packages are installed could not be asked.
    QueryFailed(BackendError),
}

impl Facts {
    /// Gathers the facts of `root`. `running` is the running kernel (`None`
    /// for an image), `only` a `--kernel` release. Fails only when the root
    /// cannot be looked at (its OS, its kernels).
    pub fn gather(root: &Root, running: Option<&str>, only: Option<&str>) -> Result<Facts> {
        Facts::gather_with(root, running, only, Arc::new(backend::for_os))
    }

    /// [`Facts::gather`] with more said: `--archives FILE` read in place
    /// of the root's archives.conf, now, with the rest (never later, when
    /// the fallback needs it), and the OS when the caller has detected it
    /// already (the deferred job does, to find the package lock). A run
    /// reads each fact once.
    pub fn gather_for(root: &Root, ask: Ask<'_>) -> Result<Facts> {
        Facts::gather_asked(
            root,
            Asked {
                running: ask.running.map(String::from),
                only: ask.only.map(String::from),
                archives: ask.archives.map(Path::to_path_buf),
                os: ask.os,
                backend_for: Arc::new(backend::for_os),
            },
        )
    }

    /// The same questions asked again (the root may have changed).
    pub fn again(&self) -> Result<Facts> {
        Facts::gather_asked(&self.root, self.asked.clone())
    }

    /// [`Facts::gather`] through the package backend `backend_for` gives
    /// for the root's OS (the real one, or the orchestration tests' fake).
    pub fn gather_with(
        root: &Root,
        running: Option<&str>,
        only: Option<&str>,
        backend_for: Arc<BackendFor>,
    ) -> Result<Facts> {
        Facts::gather_asked(
            root,
            Asked {
                running: running.map(String::from),
                only: only.map(String::from),
                archives: None,
                os: None,
                backend_for,
            },
        )
    }

    fn gather_asked(root: &Root, asked: Asked) -> Result<Facts> {
        let (running, only) = (asked.running.as_deref(), asked.only.as_deref());
        // `--archives FILE` was given to be used: unusable, it is refused
        // at once, before anything acts. The root's own archives.conf is
        // a fact like any other (doctor reports it; the fallback refuses).
        let archives = match &asked.archives {
            Some(file) => Ok(ArchiveConfig::load(root, Some(file))?),
            None => ArchiveConfig::load(root, None),
        };
        // First: anything an installer does after this is seen as a new
        // generation.
        let generation = crate::state::lock_generation(root);
        // Counted by scripts/bench-install (a healthy install gathers once).
        log::debug!("diagnosing {}", root.path().display());
        let os = match &asked.os {
            Some(os) => os.clone(),
            None => OsInfo::detect(root).context("detecting the operating system")?,
        };
        let inventory = inventory::inventory(root, running, only)
            .with_context(|| format!("listing the kernels in {}", root.path().display()))?;
        let mut kernels: Vec<KernelFacts> = inventory
            .kernels
            .iter()
            .map(|entry| {
                let on_disk = headers::check(root, &entry.release);
                let mut k = KernelFacts::named(&os, &entry.release);
                k.btf = btf(root, &entry.release, entry.running && root.is_live());
                k.running = entry.running;
                k.installed = entry.installed;
                k.headers.present = on_disk.present;
                k.headers.path = on_disk.path;
                k.headers.rejected = on_disk.rejected;
                k
            })
            .collect();
        let backend = (asked.backend_for)(&os, root);
        let mut database = Vec::new();
        let fresh_owners = backend
            .as_ref()
            .and_then(|b| ask_database(root, b.as_ref(), &mut kernels, &mut database, true));
        Ok(Facts {
            selinux: OnceCell::new(),
            store: OnceCell::new(),
            connector: status::read(root),
            pending: crate::state::pending(root),
            archives,
            last_run: crate::state::audit::last_run(root),
            generation,
            fresh_owners,
            asked,
            root: root.clone(),
            os,
            inventory,
            kernels,
            backend,
            database,
        })
    }

    /// Keeps what the package database answered, for the next run while
    /// the database is unchanged (`dbcache`). Only the commands that act
    /// call this; `doctor` writes nothing.
    pub fn remember(&self) {
        if let Some(answer) = &self.fresh_owners {
            crate::facts::dbcache::keep(&self.root, answer);
        }
    }

    /// After this run changed the database (a headers transaction): asks
    /// it again the question the next run will ask (the kernels' files and
    /// the header trees now on disk) and keeps that answer, so that the
    /// next run, and doctor, ask nothing. One query, no diagnosis.
    pub fn remember_anew(&self) {
        let Some(backend) = &self.backend else { return };
        if backend.database_files().is_empty() {
            // Nothing would vouch for the answer: not asked.
            return;
        }
        let mut kernels = self.kernels.clone();
        for k in &mut kernels {
            let on_disk = headers::check(&self.root, &k.release);
            k.headers.present = on_disk.present;
            k.headers.path = on_disk.path;
            k.headers.rejected = on_disk.rejected;
        }
        let mut seen = Vec::new();
        if let Some(answer) =
            ask_database(&self.root, backend.as_ref(), &mut kernels, &mut seen, false)
        {
            crate::facts::dbcache::keep(&self.root, &answer);
        }
    }

    /// The OS is one the connector supports.
    pub fn supported(&self) -> bool {
        self.os.support() == Support::Supported
    }

    /// The running kernel (the live root only).
    pub fn running(&self) -> Option<&str> {
        self.inventory.running.as_deref()
    }

    /// The SELinux state, or why it could not be inspected: looked at on
    /// the first call.
    pub fn selinux_state(&self) -> &Result<SelinuxReport> {
        self.selinux
            .get_or_init(|| match selinux::inspect(&self.root) {
                Ok((report, store)) => {
                    let _ = self.store.set(store);
                    Ok(report)
                }
                Err(e) => Err(e),
            })
    }

    /// The root's SELinux store, opened when the SELinux state was first
    /// looked at; None where SELinux does not apply or could not be
    /// inspected.
    pub fn store(&self) -> Option<&connector_policy::Store> {
        let _ = self.selinux_state();
        self.store.get().and_then(Option::as_ref)
    }

    /// The SELinux state, or the reason it could not be inspected as an
    /// error (for the stages that must not act without it).
    pub fn selinux(&self) -> Result<&SelinuxReport> {
        self.selinux_state()
            .as_ref()
            .map_err(|e| anyhow::anyhow!("SELinux could not be inspected: {e:#}"))
    }
}

/// One kernel: what its release says, what is on disk and what the
/// package database answered.
#[derive(Debug, Clone, Serialize)]
pub struct KernelFacts {
    /// `uname -r` of the kernel.
    pub release: String,
    /// It is the running kernel.
    pub running: bool,
    /// Its files are installed in the root (false: running without a
    /// `/lib/modules` entry, or asked for with --kernel).
    pub installed: bool,
    /// How the connector monitors on it: compiled eBPF or the prebuilt module.
    pub probe: Probe,
    /// Who built it and for what: `rhck`, `uek7`, `debian-amd64`, ...,
    /// `custom` for a kernel the distribution did not build.
    pub flavor: String,
    /// The Oracle UEK generation (5, 6, 7, 8), for a UEK kernel.
    pub uek: Option<u32>,
    /// The kernel's machine (`x86_64`, `aarch64`), from its release.
    pub arch: Option<String>,
    /// The kernel variant the release names (debug, rt, 64k, ...).
    pub variant: Option<Variant>,
    /// The release follows the distribution's naming.
    pub distro_built: bool,
    /// Repositories that carry this kernel series' packages (enabled for
    /// the call when configured but off).
    pub series_repos: Vec<String>,
    /// Whether the kernel carries BTF type information.
    pub btf: Btf,
    /// Its header package and tree.
    pub headers: HeaderFacts,
}

impl KernelFacts {
    /// What an archive's URL is made from, of this kernel.
    pub fn archive_vars(&self) -> crate::facts::archives_conf::KernelVars<'_> {
        crate::facts::archives_conf::KernelVars {
            release: &self.release,
            arch: self.arch.as_deref(),
            uek: self.uek,
            flavor: &self.flavor,
        }
    }

    /// A kernel known by its release only (a fleet's list, `bundle`):
    /// classified by the release rules, nothing on disk looked at.
    pub fn named(os: &OsInfo, release: &str) -> KernelFacts {
        let class = kernel::classify(os, release);
        KernelFacts {
            btf: Btf {
                state: BtfState::Unknown,
                source: None,
            },
            release: release.to_string(),
            running: false,
            installed: false,
            probe: class.probe,
            flavor: class.flavor,
            uek: class.uek,
            arch: class.arch,
            variant: class.variant,
            distro_built: class.distro_built,
            series_repos: class.series_repos,
            headers: HeaderFacts {
                decided_by: class
                    .header_package
                    .as_ref()
                    .map(|_| DecidedBy::ReleaseRules),
                owner: None,
                package: class.header_package,
                required: class.probe == Probe::Ebpf,
                present: false,
                path: None,
                rejected: Vec::new(),
                installed: None,
                database: DatabaseAnswer::NotQueried,
            },
        }
    }
}

/// BTF type information of one kernel: `yes`, `no` or `unknown`, and the
/// file that said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Btf {
    /// Whether it has BTF.
    pub state: BtfState,
    /// The file that said so.
    pub source: Option<String>,
}

/// Whether a kernel carries BTF type information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BtfState {
    /// It has (`/sys/kernel/btf/vmlinux` or the image's config says so).
    Yes,
    /// It has none.
    No,
    /// Nothing said.
    Unknown,
}

/// Whether the package database answered for a header package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseAnswer {
    /// It said installed or not (`installed`).
    Answered,
    /// The root has no package database (an unpacked tree).
    NoDatabase,
    /// Not asked: no package to ask about, or no backend for this system.
    NotQueried,
    /// Asking failed (see the observation).
    Unavailable,
}

/// How the header package's name was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecidedBy {
    /// From the package that owns the kernel's files.
    PackageDatabase,
    /// From the release string and the OS (support matrix).
    ReleaseRules,
}

/// One kernel's header package and tree.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderFacts {
    /// The exact package; null on the kmod path, on an unsupported system and
    /// for a kernel no distribution package exists for.
    pub package: Option<String>,
    /// Headers are required for this kernel (eBPF path).
    pub required: bool,
    /// A usable tree for exactly this release is on disk.
    pub present: bool,
    /// That tree, inside the root.
    pub path: Option<String>,
    /// Trees that exist but were rejected, with the reason.
    pub rejected: Vec<Candidate>,
    /// The package database's answer: null when it could not be asked (see
    /// `database`).
    pub installed: Option<bool>,
    /// Whether the package database answered for `package`.
    pub database: DatabaseAnswer,
    /// How `package` was named (null when there is none).
    pub decided_by: Option<DecidedBy>,
    /// The package that owns the kernel's files, when the database says.
    pub owner: Option<connector_host::pkg::KernelOwner>,
}

/// The database's answer for the header packages.
fn apply_answer(
    answer: Result<DbQuery, connector_host::pkg::BackendError>,
    kernels: &mut [KernelFacts],
    seen: &mut Vec<DatabaseObservation>,
) {
    match answer {
        Ok(DbQuery::Answer(answer)) => {
            for k in kernels.iter_mut() {
                if let Some(p) = &k.headers.package {
                    if let Some(is) = answer.get(p) {
                        k.headers.installed = Some(*is);
                        k.headers.database = DatabaseAnswer::Answered;
                    }
                }
            }
        }
        Ok(DbQuery::NoDatabase) => {
            for k in kernels.iter_mut().filter(|k| k.headers.package.is_some()) {
                k.headers.database = DatabaseAnswer::NoDatabase;
            }
        }
        Err(e) => {
            for k in kernels.iter_mut().filter(|k| k.headers.package.is_some()) {
                k.headers.database = DatabaseAnswer::Unavailable;
            }
            seen.push(DatabaseObservation::QueryFailed(e));
        }
    }
}

/// Asks the package database, in one query on a healthy root: which
/// package owns each eBPF kernel's files (its name names the header
/// package) and which owns each header tree on disk (so the header package
/// is installed when that owner is it). Only the header packages that
/// query cannot vouch for (no tree on disk, a tree some other package
/// owns) are asked about by name, in a second query.
fn ask_database(
    root: &Root,
    backend: &dyn PackageBackend,
    kernels: &mut [KernelFacts],
    seen: &mut Vec<DatabaseObservation>,
    use_kept: bool,
) -> Option<crate::facts::dbcache::Answer> {
    let files: Vec<KernelFiles> = kernels
        .iter()
        .filter(|k| k.headers.required)
        .map(|k| {
            let tree = k.headers.path.as_deref().filter(|_| k.headers.present);
            KernelFiles::of(&k.release, tree)
        })
        .collect();
    if files.is_empty() {
        return None;
    }
    // The answer kept from the last time, when the database and the
    // question are the same; else asked (and offered for keeping).
    let asked = crate::facts::dbcache::Asked::now(root, backend, &files);
    let kept = asked
        .as_ref()
        .filter(|_| use_kept)
        .and_then(|a| crate::facts::dbcache::answer(root, a));
    let mut answer = match (&asked, kept) {
        (_, Some(k)) => Some(k),
        (Some(a), None) => match backend.kernel_owners(&files) {
            Ok(Some(o)) => Some(crate::facts::dbcache::Answer::fresh(a.clone(), o)),
            other => {
                apply_owners(other, kernels, seen);
                None
            }
        },
        (None, None) => {
            apply_owners(backend.kernel_owners(&files), kernels, seen);
            None
        }
    };
    let trees = match &answer {
        Some(a) => {
            apply_owners(Ok(Some(a.owners.clone())), kernels, seen);
            a.owners.header_owners.clone()
        }
        None => Default::default(),
    };
    let mut unanswered = Vec::new();
    for k in kernels.iter_mut().filter(|k| k.headers.required) {
        let Some(p) = &k.headers.package else {
            continue;
        };
        if trees.get(&k.release).is_some_and(|names| names.contains(p)) {
            k.headers.installed = Some(true);
            k.headers.database = DatabaseAnswer::Answered;
        } else if !unanswered.contains(p) {
            unanswered.push(p.clone());
        }
    }
    if !unanswered.is_empty() {
        let known = answer.as_ref().and_then(|a| a.installed_of(&unanswered));
        match known {
            Some(map) => apply_answer(Ok(DbQuery::Answer(map)), kernels, seen),
            None => {
                let got = backend.query_installed(&unanswered);
                if let (Some(a), Ok(DbQuery::Answer(map))) = (answer.as_mut(), &got) {
                    a.learnt(map);
                }
                apply_answer(got, kernels, seen);
            }
        }
    }
    answer.filter(|a| a.is_new())
}

/// Names each kernel's header package after its owner's name, when it is a
/// kernel package's; where that differs from the release rules the
/// database wins and a note says so.
fn apply_owners(
    owners: Result<Option<connector_host::pkg::Owners>, connector_host::pkg::BackendError>,
    kernels: &mut [KernelFacts],
    seen: &mut Vec<DatabaseObservation>,
) {
    let owners = match owners {
        Ok(Some(o)) => o.kernels,
        Ok(None) => return,
        Err(e) => {
            seen.push(DatabaseObservation::OwnersUnknown(e));
            return;
        }
    };
    for k in kernels.iter_mut() {
        let Some(owner) = owners.get(&k.release) else {
            continue;
        };
        if let Some(derived) = &owner.header_package {
            if k.headers.package.as_ref() != Some(derived) {
                seen.push(DatabaseObservation::Renamed {
                    release: k.release.clone(),
                    owner: owner.clone(),
                    by_rules: k.headers.package.clone(),
                });
                k.headers.package = Some(derived.clone());
            }
            k.headers.decided_by = Some(DecidedBy::PackageDatabase);
        }
        k.headers.owner = Some(owner.clone());
    }
}

/// Largest kernel config read (they are about 250 KiB).
const KERNEL_CONFIG_CAP: u64 = 4 * 1024 * 1024;

/// BTF of one kernel: the running kernel's `/sys/kernel/btf/vmlinux` on a
/// live root, else `CONFIG_DEBUG_INFO_BTF` in its config file.
fn btf(root: &Root, release: &str, running_live: bool) -> Btf {
    if running_live && std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Btf {
            state: BtfState::Yes,
            source: Some("/sys/kernel/btf/vmlinux".into()),
        };
    }
    for path in [
        format!("/boot/config-{release}"),
        format!("/lib/modules/{release}/config"),
    ] {
        let Ok(Some(host)) = root.resolve_optional(&path) else {
            continue;
        };
        // Regular files only: a FIFO or a device there says nothing.
        let Ok(f) = connector_host::root::open_regular(&host) else {
            continue;
        };
        use std::io::{BufRead, Read};
        let yes = std::io::BufReader::new(f.take(KERNEL_CONFIG_CAP))
            .split(b'\n')
            .map_while(Result::ok)
            .any(|l| l == b"CONFIG_DEBUG_INFO_BTF=y");
        return Btf {
            state: if yes { BtfState::Yes } else { BtfState::No },
            source: Some(path),
        };
    }
    Btf {
        state: BtfState::Unknown,
        source: None,
    }
}
