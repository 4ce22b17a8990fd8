//! The installer's real-tool tier, one test binary (one link instead of
//! thirteen): rpm, dnf, yum, apt, dpkg, semodule, ansible, qemu and the
//! EL7 userspace, each in scratch roots. Built with `--features real-tools`
//! (scripts/test); `cargo test -p connector-installer --features
//! real-tools --test real MODULE::` runs one module. docs/ARCHITECTURE.md
//! "Tests, in tiers".
#![cfg(feature = "real-tools")]

#[path = "../common/mod.rs"]
mod common;

mod aarch64;
mod ansible;
mod archive_real;
mod bundle_real;
mod deb_archive_real;
mod el7_userspace;
mod headers_real;
mod hooks_real;
mod lifecycle;
mod old_targets;
mod real_tools;
mod rpmdb_real;
mod selinux_real;
