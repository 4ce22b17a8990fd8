//! Command-line interface: argument definitions and dispatch.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use connector_host::inventory::running_release;
use connector_host::Root;

use crate::doctor::{self, DoctorOptions};

/// Installs the connector, the kernel headers its eBPF probes need and the
/// SELinux policy that lets them run; diagnoses and repairs fault 11.
#[derive(Debug, Parser)]
#[command(name = "connector-installer", version, max_term_width = 80)]
pub struct Cli {
    /// Show every external command run (-v), and more (-vv)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose a host or image: kernels, header packages, faults (read-only)
    #[command(long_about = DOCTOR_ABOUT)]
    Doctor(DoctorArgs),
}

const DOCTOR_ABOUT: &str = "\
Diagnose a host or a system image, read-only: the OS, every kernel that will
run, the probe the connector uses on each (eBPF or kernel module), the exact
header package each eBPF kernel needs, whether it is usable on disk and
installed, and every fault 11 with the command that fixes it.

Exit status: 0 healthy, 1 faults found, 2 the diagnosis could not run,
3 the system is not supported by the connector.";

#[derive(Debug, Args)]
pub struct RootArg {
    /// System root to work on (a golden image, a chroot); default: this host
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub root: RootArg,

    /// Diagnose only this kernel release (as `uname -r` prints it)
    #[arg(long, value_name = "VER")]
    pub kernel: Option<String>,

    /// Print one JSON document on stdout (schema: docs/doctor.md)
    #[arg(long)]
    pub json: bool,
}

/// Opens `--root`, with a message that names the flag.
fn open_root(arg: &RootArg) -> Result<Root> {
    Root::new(&arg.root).with_context(|| format!("--root {}", arg.root.display()))
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Doctor(args) => {
            let root = open_root(&args.root)?;
            let running = if root.is_live() {
                Some(running_release().context("reading the running kernel's release")?)
            } else {
                None
            };
            let report = doctor::diagnose(&DoctorOptions {
                root,
                kernel: args.kernel,
                running,
            })?;
            let mut out = std::io::stdout().lock();
            if args.json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", doctor::render_text(&report))?;
            }
            out.flush()?;
            Ok(report.exit_code())
        }
    }
}
