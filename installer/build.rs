//! `--version` names what was built: the version, the machine and the
//! commit (`CONNECTOR_COMMIT` when the build is given one, else git's HEAD
//! when the tree is a checkout, else "unknown").

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=CONNECTOR_COMMIT");
    let commit = std::env::var("CONNECTOR_COMMIT").ok().or_else(|| {
        // A new commit moves HEAD or the branch it names: build again then.
        for dir in [
            git(&["rev-parse", "--git-dir"]),
            git(&["rev-parse", "--git-common-dir"]),
        ]
        .into_iter()
        .flatten()
        {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for f in ["HEAD", "refs/heads", "packed-refs"] {
                if dir.join(f).exists() {
                    println!("cargo:rerun-if-changed={}", dir.join(f).display());
                }
            }
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "unknown".into());
    println!(
        "cargo:rustc-env=CONNECTOR_LONG_VERSION={} ({arch}, commit {})",
        env!("CARGO_PKG_VERSION"),
        commit.as_deref().unwrap_or("unknown")
    );
}
