//! The contract between orchestration and the two package-family backends
//! (`connector-rpm`, `connector-deb`).
//!
//! Orchestration holds a `&dyn PackageBackend` and never asks which distribution
//! it is on. This part of the contract is read-only: ask the package
//! database and say how an administrator would install a package. Installing,
//! local files and the vendor archive join it with the header installer.

use std::collections::BTreeMap;

use crate::cmd::CmdError;
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

/// One package family: RPM (`rpm`, `dnf`, `yum`) or Debian (`dpkg`, `apt-get`).
pub trait PackageBackend {
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
}
