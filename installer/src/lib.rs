//! connector-installer: lays down the connector, installs the kernel headers
//! its eBPF probes are compiled against, loads the SELinux policy that lets
//! them run, and diagnoses and repairs fault 11.
//!
//! `main.rs` only parses and dispatches. The folders follow the pipeline of
//! docs/ARCHITECTURE.md, top to bottom; a module names only modules below
//! it (`scripts/check-imports` holds every import to that):
//!
//! - [`cli`]: the command line (clap), one short arm per command, the JSON
//!   error contract.
//! - [`install`]: everything that changes a root. The plan, its journal and
//!   steps, and the commands built on them: `install`, `headers`, `laydown`,
//!   `selinux`, `uninstall`, `repair`, the package and kernel hooks.
//! - [`fallback`]: where a header package comes from when the repositories
//!   lack it: `--from DIR`, bundles (read, and built by `bundle`), vendor
//!   archives, through the host's proxies.
//! - [`doctor`]: facts to faults, the report and its metrics.
//! - [`facts`]: everything gathered once about a root: OS, kernels, header
//!   trees, the package database's answer, SELinux, archives.conf, the
//!   connector's status. Nothing there acts.
//! - [`state`]: the installer's own files in the root: lock, journal,
//!   pending work, the audit trail.
//! - On the ground: [`exit`] (the one exit-code table), [`output`] (what
//!   people and logs read on stderr), [`logging`], [`labels`] (SELinux
//!   labels through the selinux crate) and `stamps` (file identities).
//!
//! The host model (root, OS, kernels, headers, faults, the command runner,
//! the atomic write) is the `connector-host` crate, shared with the
//! connector daemon.

//! The library is the binary's, not a public API: public are only what
//! `main.rs`, the packaging crate (man pages, the exit table, the payload
//! manifest) and the integration tests name; everything else is private to
//! the crate, so `dead_code` and `missing_docs` see it.

#![warn(missing_docs)]

pub mod cli;
pub mod doctor;
mod facts;
mod fallback;
mod install;
mod state;

pub mod exit;
#[cfg(test)]
mod fake;
mod labels;
pub mod logging;
mod output;
mod stamps;

/// Laying a payload down: the packaging crate's manifest, and the tests'.
pub mod laydown {
    pub use crate::install::laydown::{laydown, manifest_for, prepare, Action, NoLabels};
}

/// The audit trail's record kinds and the tests' redirections of it.
pub mod audit {
    pub use crate::state::audit::{finish, ChangeKind, TEST_JOURNAL_ENV, TEST_SYSLOG_ENV};
}
