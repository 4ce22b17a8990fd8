//! The connector's faults, as the installer diagnoses them.
//!
//! Fault 11 ("Required kernel-devel package is missing") has two causes in
//! the field: the headers of a kernel on the eBPF path are missing, or (Oracle
//! Linux UEK) SELinux was never configured to accept the connector's eBPF
//! probes. [`FaultCause`] keeps them apart so the fix is the right one.

use std::fmt;

use serde::Serialize;

/// The connector's fault id for missing kernel headers.
pub const FAULT_KERNEL_DEVEL_MISSING: u32 = 11;
/// The connector's own text for fault 11.
pub const FAULT_11_MESSAGE: &str = "Required kernel-devel package is missing";

/// Why a fault was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultCause {
    /// No usable header tree and the package is not installed.
    HeadersMissing,
    /// The package database says installed, but the tree is unusable.
    HeadersBroken,
    /// The kernel was not built by the distribution: no package can supply
    /// its headers.
    NoHeaderPackage,
    /// SELinux refuses the connector's eBPF probes (policy module missing,
    /// outdated, or denials logged). Diagnosed by the policy module's checks.
    Selinux,
}

/// The administrator's troubleshooting page, as the packages ship it.
pub const TROUBLESHOOTING: &str = "/usr/share/doc/connector/troubleshooting.md";

impl FaultCause {
    /// Every cause (the docs are checked against it).
    pub const ALL: [FaultCause; 4] = [
        FaultCause::HeadersMissing,
        FaultCause::HeadersBroken,
        FaultCause::NoHeaderPackage,
        FaultCause::Selinux,
    ];

    /// The section of [`TROUBLESHOOTING`] that explains this cause (its
    /// heading, word for word).
    pub fn doc_section(self) -> &'static str {
        match self {
            FaultCause::HeadersMissing => "Fault 11: headers missing",
            FaultCause::HeadersBroken => "Fault 11: headers broken",
            FaultCause::NoHeaderPackage => "Fault 11: no header package",
            FaultCause::Selinux => "Fault 11: SELinux",
        }
    }
}

/// The section of [`TROUBLESHOOTING`] on the connector's own fault 12.
pub const FAULT_12_SECTION: &str = "Fault 12: probe refused";

/// One fault, with the exact command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub id: u32,
    pub kernel: String,
    pub cause: FaultCause,
    /// The connector's own message for the fault id.
    pub message: String,
    /// What was found, in words.
    pub detail: String,
    /// The command (or, when no command can, the action) that fixes it.
    pub fix: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault {} on {}: {}", self.id, self.kernel, self.message)
    }
}
