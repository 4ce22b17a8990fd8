//! The contract between orchestration and the two package-family backends
//! (`connector-rpm`, `connector-deb`).
//!
//! Orchestration holds a `&dyn PackageBackend` and never asks which distribution
//! it is on: it asks the package database, builds an [`InstallPlan`], gets the
//! exact command from the backend (printed by `--dry-run`, run otherwise) and
//! lets the backend read the outcome ([`InstallError`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cmd::{Cmd, CmdError, Output};
use crate::os::Family;

/// Errors of a backend that a caller branches on.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The tool that reads the database is not installed on this host.
    #[error(transparent)]
    Tool(#[from] CmdError),
    /// The tool answered something we do not understand.
    #[error("unexpected answer from `{tool}`: {detail}")]
    Parse { tool: String, detail: String },
}

impl BackendError {
    /// True when the tool itself is missing (a report, not a failure).
    pub fn is_tool_missing(&self) -> bool {
        matches!(self, BackendError::Tool(CmdError::NotFound { .. }))
    }
}

/// The package database's answer for a set of packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbQuery {
    /// The root has no package database of this family.
    NoDatabase,
    /// For each package asked about: installed or not.
    Answer(BTreeMap<String, bool>),
}

/// The package that owns a kernel's files, and the header package its
/// name and version say belong to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelOwner {
    /// `kernel6.12`, `kernel-uek-core`, `linux-image-unsigned-6.8.0-1012-aws`.
    pub package: String,
    /// RPM: `version-release.arch` (dpkg -S does not say: null).
    pub version: Option<String>,
    /// The file asked about, inside the root.
    pub file: String,
    /// Derived from `package` (None: not a kernel package's name).
    pub header_package: Option<String>,
}

/// One kernel whose owner to find: its release and the files that mark it
/// (inside the root, in order of preference; only existing ones are asked),
/// and a file of its header tree when one is on disk (its owner says which
/// header package is installed, in the same query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFiles {
    pub release: String,
    pub files: Vec<String>,
    pub header_file: Option<String>,
}

impl KernelFiles {
    /// The files of `release` that its package owns, the image first, and
    /// the file of its header tree at `tree` (inside the root) that the
    /// header package itself owns: `include/generated/autoconf.h`, which
    /// every usable tree has and no shared (`-common`) package holds.
    pub fn of(release: &str, tree: Option<&str>) -> KernelFiles {
        KernelFiles {
            release: release.to_string(),
            files: vec![
                format!("/lib/modules/{release}/vmlinuz"),
                format!("/boot/vmlinuz-{release}"),
                format!("/lib/modules/{release}"),
            ],
            header_file: tree.map(|t| format!("{t}/include/generated/autoconf.h")),
        }
    }
}

/// The package database's word on kernels' files, from one query.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owners {
    /// Per release: the package that owns the kernel's files (kernels no
    /// package owns are left out).
    pub kernels: BTreeMap<String, KernelOwner>,
    /// Per release: every name the installed owner of its header file
    /// answers to (rpm: `NAME` and `NAME-VERSION-RELEASE.ARCH`; dpkg: the
    /// package names). Left out: no tree asked about, or no package owns it.
    pub header_owners: BTreeMap<String, Vec<String>>,
}

/// One package-manager transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallPlan {
    /// Packages by exact name (NEVRA for RPM, name for dpkg).
    pub packages: Vec<String>,
    /// Local package files (verified downloads, `--from DIR`).
    pub local_files: Vec<PathBuf>,
    /// Repositories to enable for this call only (Oracle's UEK repos).
    pub enable_repos: Vec<String>,
}

impl InstallPlan {
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.local_files.is_empty()
    }
}

/// Why an install transaction failed, as far as a caller branches on it.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The repositories do not have these packages ("No match for
    /// argument", "No package … available", "Unable to locate package").
    #[error("not in the configured repositories: {}", missing.join(", "))]
    NotFound {
        missing: Vec<String>,
        #[source]
        source: CmdError,
    },
    /// Another process holds the package manager's lock.
    #[error("the package manager is locked by another process")]
    Locked {
        #[source]
        source: CmdError,
    },
    /// Anything else: the tool's own words are in the source.
    #[error(transparent)]
    Failed(#[from] CmdError),
}

impl InstallError {
    /// Reads a failed install: the packages of `plan` that the tool said it
    /// could not find (each line of `text` through `not_found`) make a
    /// `NotFound`; anything else is `Failed`.
    pub fn from_output(
        text: &str,
        plan: &InstallPlan,
        source: CmdError,
        not_found: impl Fn(&str) -> Option<String>,
    ) -> InstallError {
        let mut missing: Vec<String> = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = not_found(line) {
                let name = name.trim().to_string();
                if plan.packages.contains(&name) && !missing.contains(&name) {
                    missing.push(name);
                }
            }
        }
        if missing.is_empty() {
            InstallError::Failed(source)
        } else {
            InstallError::NotFound { missing, source }
        }
    }
}

/// One package family: RPM (`rpm`, `dnf`, `yum`) or Debian (`dpkg`, `apt-get`).
/// `Sync`: doctor asks two questions of the database side by side.
pub trait PackageBackend: Sync {
    /// Which family this backend serves.
    fn family(&self) -> Family;

    /// Asks the root's package database which of `packages` are installed.
    /// A name is what the family's query tool accepts: an exact
    /// `name-version-release.arch` for RPM, a package name for dpkg.
    fn query_installed(&self, packages: &[String]) -> Result<DbQuery, BackendError>;

    /// The command line an administrator runs to install `packages` into
    /// this root (`reinstall` when the package database has them but the files
    /// are gone).
    fn install_command(&self, packages: &[String], reinstall: bool) -> String;

    /// The command line an administrator runs to remove `package` from this
    /// root (`purge`: its configuration too, where the family keeps it).
    fn remove_command(&self, package: &str, purge: bool) -> String;

    /// The command that carries out `plan` (the same one `--dry-run` prints).
    fn install_cmd(&self, plan: &InstallPlan) -> Cmd;

    /// Reads a failed install's output into an [`InstallError`].
    fn install_failure(&self, cmd: &Cmd, out: &Output, plan: &InstallPlan) -> InstallError;

    /// The command that refreshes repository metadata before a retry
    /// (`apt-get update`, `dnf makecache`), if the family needs one.
    fn refresh_cmd(&self) -> Option<Cmd>;

    /// The paths inside the root that this family's tools open when they
    /// install into another root (configuration, caches, databases, logs,
    /// where header packages land): each is checked with
    /// [`crate::Root::tool_path`] before a tool runs, because the tools
    /// resolve them with the host's kernel.
    fn tool_paths(&self) -> &'static [&'static str];

    /// The package manager's lock files (host paths), for lock checks.
    fn lock_files(&self) -> Vec<PathBuf>;

    /// Meta packages that make future kernels of `flavor` bring their
    /// headers along (`linux-headers-amd64`, `linux-headers-generic`, …);
    /// empty where the family has none (RPM: see docs/headers.md).
    fn tracking_packages(&self, flavor: &str) -> Result<Vec<String>, BackendError>;

    /// Of the repositories that carry a kernel series' packages
    /// (`KernelClass::series_repos`: `ol8_UEKR7`, `amzn2extra-kernel-5.10`),
    /// those configured in the root but disabled: enabled for the call only.
    fn repos_to_enable(&self, candidates: &[String]) -> Vec<String>;

    /// Which package owns each kernel's files and each header tree, in one
    /// query: `None` when the root has no database of this family.
    fn kernel_owners(&self, kernels: &[KernelFiles]) -> Result<Option<Owners>, BackendError>;

    /// The files (host paths) whose identities vouch for the database's
    /// content: every transaction changes at least one of them (their
    /// [`crate::stamp::Stamp`]s), and a query changes none that matters.
    /// Empty: answers are never remembered.
    fn database_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}
