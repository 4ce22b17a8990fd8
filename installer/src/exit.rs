//! The exit codes of every subcommand: one table (docs/exit-codes.md),
//! the same meaning everywhere, and distinct from clap's usage error.

/// Done: nothing is wrong or left (doctor: healthy; headers, install,
/// repair: everything in place).
pub const OK: i32 = 0;
/// The command ran, and something is not right: doctor found a fault,
/// headers left a kernel without, a step of install failed, repair could
/// not clear a fault. The document (or text) says which.
pub const NOT_DONE: i32 = 1;
/// The command could not run (bad --root, bad input, a held lock, a tool
/// missing); nothing was changed.
pub const ERROR: i32 = 2;
/// The system is not one the connector supports; nothing was done.
pub const UNSUPPORTED: i32 = 3;
/// Inside a package transaction: the work follows after it
/// (connector-setup.service).
pub const DEFERRED: i32 = 4;
/// The command line itself is wrong (unknown option, missing value).
/// `sysexits.h`'s `EX_USAGE`, so a script can tell it from [`ERROR`].
pub const USAGE: i32 = 64;

/// Every code, its name and what it means: the table docs/exit-codes.md
/// and the manual page print.
pub const TABLE: &[(i32, &str)] = &[
    (OK, "done: nothing is wrong or left"),
    (
        NOT_DONE,
        "the command ran and something is not right (a fault found, a kernel left without \
         headers, a step failed, a fault not cleared); the output says which",
    ),
    (
        ERROR,
        "the command could not run (bad --root, bad input, a held lock, a missing tool); \
         nothing was changed",
    ),
    (
        UNSUPPORTED,
        "the system is not one the connector supports; nothing was done",
    ),
    (
        DEFERRED,
        "inside a package transaction: the work follows after it (connector-setup.service)",
    ),
    (
        USAGE,
        "the command line is wrong (unknown option, missing value)",
    ),
];

/// The name of a code, for JSON documents and the docs.
pub fn name(code: i32) -> &'static str {
    match code {
        OK => "ok",
        NOT_DONE => "not-done",
        ERROR => "error",
        UNSUPPORTED => "unsupported",
        DEFERRED => "deferred",
        USAGE => "usage",
        _ => "other",
    }
}
