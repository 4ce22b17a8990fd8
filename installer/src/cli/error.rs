//! The JSON error contract: the one document `--json` prints when a
//! command fails before it has its own, with a stable `kind` a script can
//! branch on (docs/exit-codes.md).

use crate::install;
use crate::install::{laydown, uninstall};

/// The document `--json` prints on stdout when the command fails before it
/// has one of its own: what went wrong, typed, and the exit code.
#[derive(Debug, serde::Serialize)]
pub struct ErrorDocument {
    schema_version: u32,
    error: ErrorInfo,
}

#[derive(Debug, serde::Serialize)]
struct ErrorInfo {
    /// A stable word a script can branch on (docs/exit-codes.md).
    kind: &'static str,
    /// The whole message, as printed on stderr.
    message: String,
    exit_code: i32,
}

impl ErrorDocument {
    /// The document of an error of `kind` (docs/exit-codes.md), its
    /// message and the exit code it ends with.
    pub fn new(kind: &'static str, message: String, exit_code: i32) -> ErrorDocument {
        ErrorDocument {
            schema_version: 1,
            error: ErrorInfo {
                kind,
                message,
                exit_code,
            },
        }
    }

    /// Prints it as the one document on stdout.
    pub fn print(&self) {
        let _ = crate::output::print_json(self);
    }
}

/// `--root DIR` cannot be opened: missing, not a directory.
#[derive(Debug, thiserror::Error)]
#[error("--root {}", .path.display())]
pub(crate) struct BadRoot {
    pub(crate) path: std::path::PathBuf,
    #[source]
    pub(crate) source: std::io::Error,
}

/// The kind of an error, for scripts: the first typed error in its chain
/// that says what happened.
pub fn error_kind(e: &anyhow::Error) -> &'static str {
    if needs_root(e) {
        return "not-root";
    }
    if e.chain().any(|c| c.downcast_ref::<BadRoot>().is_some()) {
        return "bad-root";
    }
    use connector_host::cmd::CmdError;
    use connector_policy::PolicyError;
    for cause in e.chain() {
        if let Some(s) = cause.downcast_ref::<crate::state::StateError>() {
            return match s {
                crate::state::StateError::Busy(_) => "busy",
                crate::state::StateError::Unsafe { .. } => "unsafe-root",
            };
        }
        if cause
            .downcast_ref::<connector_host::root::Escape>()
            .is_some()
        {
            return "unsafe-root";
        }
        if let Some(l) = cause.downcast_ref::<laydown::LaydownError>() {
            return match l {
                laydown::LaydownError::NoSpace { .. } => "no-space",
                laydown::LaydownError::Unsafe { .. } => "unsafe-root",
                _ => "bad-payload",
            };
        }
        if let Some(p) = cause.downcast_ref::<PolicyError>() {
            return match p {
                PolicyError::SemoduleMissing => "tool-missing",
                PolicyError::StoreLocked { .. } => "busy",
                PolicyError::Rejected { .. } => "policy-rejected",
                PolicyError::Escape(_) => "unsafe-root",
                _ => "selinux",
            };
        }
        if let Some(c) = cause.downcast_ref::<CmdError>() {
            return match c {
                CmdError::NotFound { .. } => "tool-missing",
                CmdError::Timeout { .. } => "timeout",
                _ => "command-failed",
            };
        }
        if cause
            .downcast_ref::<connector_host::os::OsError>()
            .is_some()
        {
            return "bad-root";
        }
        if let Some(i) = cause.downcast_ref::<install::PlanError>() {
            return match i {
                install::PlanError::Unsupported(_) => "unsupported",
                install::PlanError::NotLaidDown(_) => "not-laid-down",
            };
        }
        if cause.downcast_ref::<uninstall::UninstallError>().is_some() {
            return "package-owned";
        }
    }
    "error"
}

/// The error is a permission refused to a user who is not root: the
/// command needs root (as apt and dnf say), not a fix of the system.
/// Typed where the error keeps its cause (an `io::Error`, a policy read);
/// else by EACCES's own words, which every wrapper keeps in its message.
pub fn needs_root(e: &anyhow::Error) -> bool {
    use std::io::{Error, ErrorKind::PermissionDenied};
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    let typed = e.chain().any(|c| {
        let io = c.downcast_ref::<Error>().or_else(|| {
            match c.downcast_ref::<connector_policy::PolicyError>() {
                Some(connector_policy::PolicyError::Root(io)) => Some(io),
                _ => None,
            }
        });
        io.is_some_and(|io| io.kind() == PermissionDenied)
    });
    typed || format!("{e:#}").contains("(os error 13)")
}
