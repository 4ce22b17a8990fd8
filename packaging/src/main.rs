//! `cargo run -p connector-packaging -- build --out dist/` builds the
//! release binaries, then `connector-VERSION-RELEASE.x86_64.rpm` and
//! `connector_VERSION-RELEASE_amd64.deb` from them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use connector_packaging::{build_deb, build_rpm, connector_payload, Family};

#[derive(Debug, Parser)]
#[command(name = "connector-packaging", max_term_width = 80)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the .rpm and the .deb
    Build {
        /// Output directory
        #[arg(long, value_name = "DIR", default_value = "dist")]
        out: PathBuf,
        /// Take connectord and connector-installer from DIR instead of
        /// building them with `cargo build --release`
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Package version
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
        /// Package release
        #[arg(long, default_value = "1")]
        release: String,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("connector-packaging: error: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let Command::Build {
        out,
        bin_dir,
        version,
        release,
    } = Cli::parse().command;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = match bin_dir {
        Some(d) => d,
        None => {
            let st = std::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            )
            .args([
                "build",
                "--release",
                "-p",
                "connector-installer",
                "-p",
                "connectord",
            ])
            .current_dir(&repo)
            .status()
            .context("running cargo build --release")?;
            if !st.success() {
                bail!("cargo build --release failed");
            }
            repo.join("target/release")
        }
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let rpm = build_rpm(
        &connector_payload(Family::Rpm, &version, &release, &bin_dir, &repo)?,
        &out,
    )?;
    let deb = build_deb(
        &connector_payload(Family::Deb, &version, &release, &bin_dir, &repo)?,
        &out,
    )?;
    println!("{}\n{}", rpm.display(), deb.display());
    Ok(())
}
