//! connector-installer: lays down the connector, installs the kernel headers
//! its eBPF probes are compiled against, loads the SELinux policy that lets
//! them run, and diagnoses and repairs fault 11.
//!
//! `main.rs` only parses and dispatches; the logic lives here, one module per
//! concern. The host model (root, OS, kernels, headers, faults, the command
//! runner) is the `connector-host` crate, shared with the connector daemon.

pub mod archive;
pub mod archive_config;
pub mod audit;
pub mod backend;
pub mod bundle;
pub mod bundle_build;
pub mod cli;
mod dbcache;
pub mod doctor;
pub mod exit;
pub mod facts;
#[cfg(test)]
mod fake;
pub mod headers;
pub mod hook;
pub mod install;
pub mod labels;
pub mod laydown;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod proxy;
pub mod repair;
pub mod selinux;
pub mod service;
mod stamps;
pub mod state;
pub mod uninstall;
