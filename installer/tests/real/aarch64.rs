//! The aarch64 build of `connector-installer`, run under qemu-aarch64,
//! agrees with the x86_64 build document for document: `doctor --json` over
//! fixture roots of both architectures (OL 9 UEK, RHEL 9 with its 64k
//! kernel, Amazon Linux 2023, Debian, Ubuntu, EL 7), with and without the
//! headers, each binary judging every image by the image's kernels.
//!
//! Tier: real tools (qemu-user, Debian's multiarch arm64 libselinux). Needs
//! the aarch64 binary: `tests/aarch64/run` builds it (scripts/build-compat
//! aarch64, glibc 2.17) and runs this file with `CONNECTOR_AARCH64_BIN`
//! naming it; without it, the test says it is skipped. The roots have no
//! package database: qemu-user here hangs any program that starts a thread
//! (field-notes §9), and a doctor that asks nothing starts none.
#![cfg(feature = "real-tools")]

use std::path::{Path, PathBuf};
use std::process::Command;

use connector_tests::{require_tool, Fixture, Kernel, Layout};
use serde_json::Value;

const X86_64_BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

/// The aarch64 binary, or why the test is skipped.
fn aarch64_bin() -> Option<PathBuf> {
    match std::env::var_os("CONNECTOR_AARCH64_BIN") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!(
                "SKIPPED: CONNECTOR_AARCH64_BIN is not set (tests/aarch64/run builds the \
                 aarch64 binary and runs this test with it)"
            );
            None
        }
    }
}

/// `doctor --json` of `root` by one binary: its exit code and document.
fn doctor(cmd: &mut Command, root: &Path) -> (Option<i32>, Value) {
    let out = cmd
        .args(["doctor", "--json", "--root"])
        .arg(root)
        .output()
        .expect("the binary runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// A kernel, and the architecture its header tree was built for (None: no
/// headers).
type WithTree = (Kernel, Option<&'static str>);

#[test]
fn the_aarch64_doctor_agrees_with_the_x86_64_one() {
    let Some(arm) = aarch64_bin() else {
        return;
    };
    require_tool("qemu-aarch64");
    // The binary really is aarch64 (and not this machine's).
    let header = std::fs::read(&arm).expect("the aarch64 binary");
    assert_eq!(
        u16::from_le_bytes([header[18], header[19]]),
        183,
        "{} is not an aarch64 ELF",
        arm.display()
    );
    let roots: Vec<(&str, Vec<WithTree>)> = vec![
        (
            "ol-9.3",
            vec![
                (
                    Kernel::new("5.15.0-200.131.27.el9uek.aarch64", Layout::El8),
                    Some("arm64"),
                ),
                (
                    Kernel::new("5.15.0-100.96.32.el9uek.aarch64", Layout::El8),
                    None,
                ),
            ],
        ),
        (
            "rhel-9.3",
            vec![(
                Kernel::new("5.14.0-362.8.1.el9_3.aarch64+64k", Layout::El8),
                Some("arm64"),
            )],
        ),
        (
            "rhel-9.3",
            vec![(
                Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8),
                Some("arm64"),
            )],
        ),
        (
            "amzn-2023",
            vec![(
                Kernel::new("6.1.72-96.166.amzn2023.aarch64", Layout::El8),
                Some("x86"),
            )],
        ),
        (
            "debian-12",
            vec![
                (Kernel::new("6.1.0-18-arm64", Layout::Debian), Some("arm64")),
                (Kernel::new("6.1.0-17-cloud-arm64", Layout::Debian), None),
            ],
        ),
        (
            "debian-12",
            vec![(Kernel::new("6.1.0-18-amd64", Layout::Debian), Some("x86"))],
        ),
        (
            "ubuntu-22.04",
            vec![(
                Kernel::new("5.15.0-91-generic", Layout::Ubuntu).with_arch("arm64"),
                Some("arm64"),
            )],
        ),
        (
            "ubuntu-22.04",
            vec![(
                Kernel::new("5.15.0-91-generic", Layout::Ubuntu),
                Some("x86"),
            )],
        ),
        (
            "centos-7",
            vec![(
                Kernel::new("3.10.0-1160.105.1.el7.x86_64", Layout::El7),
                None,
            )],
        ),
    ];
    let mut compared = 0;
    let mut present = 0;
    for (os, kernels) in &roots {
        let f = Fixture::new();
        f.os_release(os);
        for (k, tree) in kernels {
            f.kernel(k);
            if let Some(arch) = tree {
                f.headers(&k.clone().with_arch(arch));
            }
        }
        let (x86_code, x86) = doctor(&mut Command::new(X86_64_BIN), f.path());
        let mut emulated = Command::new("qemu-aarch64");
        emulated.args(["-L", "/usr/aarch64-linux-gnu"]).arg(&arm);
        let (arm_code, arm_doc) = doctor(&mut emulated, f.path());
        let what = format!(
            "{os} {:?}",
            kernels.iter().map(|(k, _)| &k.release).collect::<Vec<_>>()
        );
        assert_eq!(arm_doc, x86, "{what}: the two builds' documents differ");
        assert_eq!(arm_code, x86_code, "{what}: exit codes differ");
        // Each tree is judged by the kernel's architecture: present exactly
        // when it was built for it.
        for (i, (k, tree)) in kernels.iter().enumerate() {
            let doc = x86["kernels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["release"] == k.release.as_str())
                .unwrap_or_else(|| panic!("{what}: no kernel {}", k.release));
            let want = tree.is_some_and(|t| t == k.arch);
            if doc["probe"] == "ebpf" {
                assert_eq!(doc["headers"]["present"], want, "{what} kernel {i}: {doc}");
                present += usize::from(want);
            }
        }
        compared += 1;
    }
    assert_eq!(compared, roots.len());
    assert!(
        present >= 4,
        "some trees are present, or the comparison proves little"
    );
}
