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

/// The kind of an error, for scripts: the first typed error in its chain
/// that says what happened.
pub fn error_kind(e: &anyhow::Error) -> &'static str {
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
