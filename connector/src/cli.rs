//! connectord's command line: one definition for the binary, its manual
//! page and its shell completions (built by `connector-packaging`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The reference connector daemon: checks the running kernel's headers and
/// loads its eBPF probe every 30 s (`interval` in
/// /etc/connector/connector.conf), publishing faults in status.json.
#[derive(Debug, Parser)]
#[command(name = "connectord", version, max_term_width = 80)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (what the systemd unit starts)
    Run {
        /// System root (tests); default /
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// One round, then exit (0 without faults, 1 with)
        #[arg(long)]
        once: bool,
        /// Seconds between rounds [default: `interval` of
        /// /etc/connector/connector.conf, else 30]
        #[arg(long, value_name = "SECS")]
        interval: Option<u64>,
        /// Check this kernel release instead of the running one (a root
        /// whose kernel is not the one running: tests, images)
        #[arg(long, value_name = "VER")]
        kernel: Option<String>,
    },
    /// Print the published status; exit 1 when it holds a fault
    Status {
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
}
