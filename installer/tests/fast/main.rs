//! The installer's fast tier, one test binary (one link instead of seven):
//! the binary driven with fixture roots and no system tool. Each module is
//! one subject; `cargo test -p connector-installer --test fast MODULE::`
//! runs one. docs/ARCHITECTURE.md "Tests, in tiers".

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod contract;
mod corpus;
mod hostile;
mod hostile_writes;
mod laydown;
mod metrics;
