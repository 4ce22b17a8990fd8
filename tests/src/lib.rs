//! Fixture roots for the tests: scratch system roots laid out the way the
//! real distributions lay them out, and real `.rpm` / `.deb` packages of the
//! same files, so a test can either write a tree directly or install it with
//! the real `rpm --root` / `dpkg --root` and get a package database too.
//!
//! The os-release files under `fixtures/os-release/` are the distributions'
//! own (see `fixtures/README.md`); the kernel and header layouts below follow
//! the real packages: `kernel-core` + `kernel-devel` (EL8+), `kernel` +
//! `kernel-devel` (EL7, Amazon Linux 2), `linux-image` +
//! `linux-headers-K` + `linux-headers-V-common` + `linux-kbuild-V` (Debian),
//! `linux-image` + `linux-modules` + `linux-headers-K` + `linux-headers-V`
//! (Ubuntu).

pub mod debian_headers;
pub mod el7;
pub mod fixture;
pub mod http;
pub mod json;
pub mod layout;
pub mod packages;
pub mod selinux_base;

pub use fixture::*;
pub use layout::*;
pub use packages::*;
