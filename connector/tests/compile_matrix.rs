//! doctor judged by the compiler: real Debian header packages, unpacked
//! into scratch roots in every shape a host's tree is found in, each
//! compiled for real by connectord's compile step (clang -target bpf) and
//! checked by doctor's `connector_host::headers::check`. On every row the
//! two must agree: doctor's "present" means "the connector's compile will
//! succeed". A row where they disagreed was a doctor bug, fixed in
//! `host/src/headers.rs`, and the row stays here.
#![cfg(feature = "real-tools")]

use std::fs;
use std::path::Path;

use connector_host::headers;
use connector_host::Root;
use connector_tests::debian_headers::{debian_headers, debian_headers_for, unpack, DebianHeaders};
use connectord::compile::{self, Compiler};

struct Row {
    name: &'static str,
    /// Lays the root out.
    make: fn(&DebianHeaders, &Path),
}

fn common_dir(h: &DebianHeaders, root: &Path) -> std::path::PathBuf {
    root.join(format!("usr/src/linux-headers-{}-common", abi(h)))
}

/// `6.1.0-57` of `6.1.0-57-arm64`.
fn abi(h: &DebianHeaders) -> &str {
    h.release.trim_end_matches(&format!("-{}", h.arch))
}

fn all(h: &DebianHeaders, root: &Path) {
    unpack(&h.flavour, root);
    unpack(&h.common, root);
    unpack(&h.kbuild, root);
}

const ROWS: &[Row] = &[
    Row {
        name: "the complete set",
        make: all,
    },
    Row {
        name: "without the -common package",
        make: |h, r| {
            unpack(&h.flavour, r);
            unpack(&h.kbuild, r);
        },
    },
    Row {
        name: "without linux-kbuild",
        make: |h, r| {
            unpack(&h.flavour, r);
            unpack(&h.common, r);
        },
    },
    Row {
        name: "without the flavour package (-common and kbuild only)",
        make: |h, r| {
            unpack(&h.common, r);
            unpack(&h.kbuild, r);
        },
    },
    Row {
        name: "another release's tree behind lib/modules/K/build",
        make: |h, r| {
            unpack(&h.other_flavour, r);
            unpack(&h.common, r);
            unpack(&h.kbuild, r);
            let m = r.join(format!("lib/modules/{}", h.release));
            fs::create_dir_all(&m).unwrap();
            std::os::unix::fs::symlink(
                format!("/usr/src/linux-headers-{}", h.other_release),
                m.join("build"),
            )
            .unwrap();
            std::os::unix::fs::symlink(
                format!("/usr/src/linux-headers-{}-common", abi(h)),
                m.join("source"),
            )
            .unwrap();
        },
    },
    Row {
        name: "another release's tree under usr/src/linux-headers-K",
        make: |h, r| {
            unpack(&h.other_flavour, r);
            unpack(&h.common, r);
            fs::rename(
                r.join(format!("usr/src/linux-headers-{}", h.other_release)),
                r.join(format!("usr/src/linux-headers-{}", h.release)),
            )
            .unwrap();
        },
    },
    Row {
        name: "truncated: -common without include/uapi",
        make: |h, r| {
            all(h, r);
            fs::remove_dir_all(common_dir(h, r).join("include/uapi")).unwrap();
        },
    },
    Row {
        name: "truncated: -common without the kernel's arch/ARCH",
        make: |h, r| {
            all(h, r);
            fs::remove_dir_all(common_dir(h, r).join(format!("arch/{}", h.kernel_arch))).unwrap();
        },
    },
    Row {
        name: "truncated: -common's include/linux cut off halfway (an interrupted unpack)",
        make: |h, r| {
            all(h, r);
            let dir = common_dir(h, r).join("include/linux");
            let mut names: Vec<_> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in &names[names.len() / 2..] {
                let p = dir.join(n);
                if p.is_dir() {
                    fs::remove_dir_all(p).unwrap();
                } else {
                    fs::remove_file(p).unwrap();
                }
            }
        },
    },
    Row {
        name: "truncated: the flavour tree without include/generated",
        make: |h, r| {
            all(h, r);
            fs::remove_dir_all(r.join(format!(
                "usr/src/linux-headers-{}/include/generated",
                h.release
            )))
            .unwrap();
        },
    },
    Row {
        name: "truncated: the flavour tree without arch/ARCH/include/generated",
        make: |h, r| {
            all(h, r);
            fs::remove_dir_all(r.join(format!(
                "usr/src/linux-headers-{}/arch/{}/include/generated",
                h.release, h.kernel_arch
            )))
            .unwrap();
        },
    },
    Row {
        name: "the flavour tree without its Makefile (lib/modules/K/source names -common)",
        make: |h, r| {
            all(h, r);
            fs::remove_file(r.join(format!("usr/src/linux-headers-{}/Makefile", h.release)))
                .unwrap();
        },
    },
];

/// The amd64 rows.
#[test]
fn doctor_and_the_compiler_agree_on_every_tree() {
    matrix(debian_headers());
}

/// The arm64 rows, on this x86_64 machine: doctor judges the trees for the
/// kernel's architecture (arm64), and the compile is for it too
/// (`arch/arm64/`, `-D__TARGET_ARCH_arm64`).
#[test]
fn doctor_and_the_compiler_agree_on_every_arm64_tree() {
    matrix(debian_headers_for("arm64"));
}

fn matrix(h: &DebianHeaders) {
    connector_tests::require_tool("clang");
    let compiler = Compiler::find(None).expect("clang (scripts/setup --test installs it)");
    let mut table = Vec::new();
    let mut disagree = Vec::new();
    let mut outcomes = Vec::new();
    for row in ROWS {
        let dir = tempfile::tempdir().unwrap();
        (row.make)(h, dir.path());
        let root = Root::new(dir.path()).unwrap();
        let doctor = headers::check(&root, &h.release);
        let built = compile::build(&root, &h.release, &compiler);
        let compiled = match &built {
            Ok(_) => true,
            Err(e) if e.is_headers() => false,
            Err(e) => panic!(
                "{} ({}): the compile could not be judged: {e}",
                row.name, h.arch
            ),
        };
        let why_doctor = doctor
            .rejected
            .iter()
            .filter_map(|c| c.problem.as_ref().map(|p| p.to_string()))
            .collect::<Vec<_>>()
            .join("; ");
        let why_compiler = built
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        table.push(format!(
            "{:<80} compiler {:<5} doctor {:<5} | {} | {}",
            row.name, compiled, doctor.present, why_compiler, why_doctor
        ));
        if compiled != doctor.present {
            disagree.push(row.name);
        }
        outcomes.push(compiled);
    }
    println!("{}", table.join("\n"));
    assert!(
        disagree.is_empty(),
        "doctor and the compiler disagree on: {disagree:?}\n{}",
        table.join("\n")
    );
    assert!(outcomes[0], "the complete set compiles:\n{}", table[0]);
    assert!(
        outcomes.iter().any(|c| !c),
        "some rows must fail to compile, or the matrix proves nothing"
    );
}
