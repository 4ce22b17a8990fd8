//! `cargo run -p connector-packaging -- build --out dist/ [--arch aarch64]`
//! builds the release binaries for glibc 2.17 (scripts/build-compat), then
//! `connector-VERSION-RELEASE.ARCH.rpm` (`x86_64`, `aarch64`) and
//! `connector_VERSION-RELEASE_ARCH.deb` (`amd64`, `arm64`) from them.

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
        /// The machine to build the binaries for (x86_64 by rustup's
        /// toolchain, aarch64 by Debian's rustc-web: scripts/build-compat);
        /// the packages are for the machine the binaries' ELF headers name
        #[arg(long, value_name = "ARCH", default_value = "x86_64", value_parser = ["x86_64", "aarch64"])]
        arch: String,
        /// Take connectord and connector-installer from DIR instead of
        /// building them for glibc 2.17 (scripts/build-compat)
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Build the binaries for this host's glibc (cargo build --release):
        /// quicker, but they will not start on EL7/EL8/AL2/Ubuntu 18.04
        #[arg(long, conflicts_with = "bin_dir")]
        native: bool,
        /// Package version
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
        /// Package release
        #[arg(long, default_value = "1")]
        release: String,
        /// Sign the .rpm with this key: an armored OpenPGP RSA secret key
        /// without a passphrase (gpg --export-secret-keys --armor). Its
        /// public half is shipped in both packages and written beside them
        /// as RPM-GPG-KEY-connector. Without it the .rpm is unsigned
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
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
        arch,
        bin_dir,
        native,
        version,
        release,
        signing_key,
    } = Cli::parse().command;
    // Read and checked before anything is built.
    let key = signing_key
        .as_deref()
        .map(connector_packaging::signing::SigningKey::load)
        .transpose()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = match bin_dir {
        Some(d) => d,
        None if !native => {
            let out = std::process::Command::new(repo.join("scripts/build-compat"))
                .arg(&arch)
                .stderr(std::process::Stdio::inherit())
                .output()
                .context("running scripts/build-compat")?;
            if !out.status.success() {
                bail!("scripts/build-compat failed");
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        None if arch != std::env::consts::ARCH => {
            bail!(
                "--native builds for this machine ({}), not {arch}",
                std::env::consts::ARCH
            )
        }
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
    let payload = |family| -> Result<_> {
        let mut p = connector_payload(family, &version, &release, &bin_dir, &repo)?;
        if let Some(key) = &key {
            p.sign_with(key.clone());
        }
        Ok(p)
    };
    let rpm = build_rpm(&payload(Family::Rpm)?, &out)?;
    let deb = build_deb(&payload(Family::Deb)?, &out)?;
    println!("{}\n{}", rpm.display(), deb.display());
    match &key {
        Some(key) => {
            let public = out.join(connector_packaging::signing::KEY_FILE_NAME);
            std::fs::write(&public, key.public_armored())
                .with_context(|| format!("writing {}", public.display()))?;
            println!("{}", public.display());
            eprintln!(
                "connector-packaging: the .rpm is signed by {}",
                key.fingerprint()
            );
        }
        None => eprintln!(
            "connector-packaging: the .rpm is unsigned (no --signing-key): \
             a repository with gpgcheck=1 will refuse it"
        ),
    }
    Ok(())
}
