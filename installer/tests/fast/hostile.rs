//! Hostile images (issue 13), the classes fixed so far: reads that would
//! hang or never end (class 3) and one broken kernel stopping the whole
//! diagnosis (class 4). Each case asserts the exact refusal, that nothing
//! blocked, and that the root is byte for byte unchanged.
//!
//! Tier: fixture roots and the binary as a user runs it.

use std::process::Command;
use std::time::{Duration, Instant};

use connector_tests::{Fixture, Kernel, Layout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

fn mknod(path: &std::path::Path, mode: libc::mode_t, dev: libc::dev_t) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mknod on a path inside a scratch root.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(
        rc,
        0,
        "mknod {}: {} (the tests run as root: scripts/test)",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn fifo(f: &Fixture, p: &str) {
    mknod(&f.host(p), libc::S_IFIFO | 0o644, 0);
}

/// Runs the binary with a bound: a hang is a failure, not a stuck suite.
fn run(args: &[&str]) -> (std::process::Output, Duration) {
    let start = Instant::now();
    let child = Command::new("timeout")
        .args(["20", BIN])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(124), "{args:?} hung");
    (out, start.elapsed())
}

#[test]
fn an_os_release_that_is_a_fifo_a_device_or_huge_is_refused() {
    for (what, setup) in [
        ("a FIFO", 0u8),
        ("a character device", 1),
        ("larger than 1048576 bytes", 2),
    ] {
        let f = Fixture::new();
        f.os_release("rhel-9.3");
        let k = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
        f.kernel(&k).headers(&k);
        let target = f.host("/usr/lib/os-release");
        let target = if target.exists() {
            target
        } else {
            f.host("/etc/os-release")
        };
        match setup {
            0 => mknod(&target, libc::S_IFIFO | 0o644, 0),
            1 => mknod(&target, libc::S_IFCHR | 0o644, libc::makedev(1, 5)),
            _ => std::fs::write(&target, "ID=rhel\n".repeat(200_000)).unwrap(),
        }
        let before = f.snapshot();
        let (out, took) = run(&["doctor", "--root", f.path().to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(&format!("refused: {what}")), "{what}: {err}");
        assert!(err.contains("os-release"), "{err}");
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
        assert_eq!(f.snapshot(), before, "{what}: the root changed");
    }
}

#[test]
fn a_fifo_status_json_or_audit_log_does_not_hang_doctor() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let k = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    fifo(&f, "/var/lib/connector/status.json");
    fifo(&f, "/var/log/audit/audit.log");
    fifo(&f, &format!("/boot/config-{}", k.release));
    let before = f.snapshot();
    let (out, took) = run(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kernels"][0]["btf"]["state"], "unknown");
    assert_eq!(f.snapshot(), before);
}

/// (case, how the tree is broken, the reason, headers still present
/// through another candidate).
type Case<'a> = (&'a str, &'a dyn Fn(&Fixture, &Kernel), &'a str, bool);

/// One kernel's broken header tree is that kernel's rejection; the others
/// are still diagnosed (doctor and headers answer, neither exits 2).
#[test]
fn one_broken_kernel_is_its_own_rejection_not_the_whole_diagnosis() {
    let good = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    let cases: [Case; 4] = [
        (
            "symlink loop at build",
            &|f, k| {
                let b = f.host(&format!("/lib/modules/{}/build", k.release));
                let _ = std::fs::remove_file(&b);
                std::os::unix::fs::symlink(format!("/lib/modules/{}/build", k.release), &b)
                    .unwrap();
            },
            "symbolic links",
            true,
        ),
        (
            "non-UTF-8 Makefile",
            &|f, k| {
                std::fs::write(
                    f.host(&format!("/usr/src/kernels/{}/Makefile", k.release)),
                    [0xff, 0xfe, 0x80],
                )
                .unwrap()
            },
            "not UTF-8",
            false,
        ),
        (
            "FIFO utsrelease.h",
            &|f, k| {
                fifo(
                    f,
                    &format!(
                        "/usr/src/kernels/{}/include/generated/utsrelease.h",
                        k.release
                    ),
                )
            },
            "a FIFO",
            false,
        ),
        (
            "device Makefile",
            &|f, k| {
                mknod(
                    &f.host(&format!("/usr/src/kernels/{}/Makefile", k.release)),
                    libc::S_IFCHR | 0o644,
                    libc::makedev(1, 5),
                )
            },
            "a character device",
            false,
        ),
    ];
    for (name, breakit, reason, present) in cases {
        let f = Fixture::new();
        f.os_release("rhel-9.3");
        let bad = Kernel::new("5.14.0-284.30.1.el9_2.x86_64", Layout::El8);
        for k in [&good, &bad] {
            f.kernel(k).headers(k);
        }
        breakit(&f, &bad);
        let before = f.snapshot();
        let root = f.path().to_str().unwrap();
        let (out, took) = run(&["doctor", "--root", root, "--json"]);
        assert!(took < Duration::from_secs(5), "{name}: {took:?}");
        let want = if present { 0 } else { 1 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let by = |r: &str| {
            v["kernels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["release"] == r)
                .cloned()
                .unwrap_or_else(|| panic!("{name}: {r} not diagnosed: {v}"))
        };
        assert_eq!(by(&good.release)["headers"]["present"], true, "{name}");
        let b = by(&bad.release);
        assert_eq!(b["headers"]["present"], present, "{name}");
        let rejected = b["headers"]["rejected"].to_string();
        assert!(
            rejected.contains("unreadable") && rejected.contains(reason),
            "{name}: {rejected}"
        );
        let faults = v["faults"].as_array().unwrap();
        if present {
            assert!(faults.is_empty(), "{name}: {faults:?}");
        } else {
            assert_eq!(faults.len(), 1, "{name}: {faults:?}");
            assert_eq!(faults[0]["kernel"], bad.release.as_str());
        }
        // headers plans on the same diagnosis instead of failing.
        let (out, _) = run(&["headers", "--root", root, "--dry-run", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let h: Value = serde_json::from_slice(&out.stdout).unwrap();
        let state = h["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["release"] == bad.release.as_str())
            .map(|k| k["state"].clone());
        let want = if present {
            "already-present"
        } else {
            "would-install"
        };
        assert_eq!(state, Some(Value::from(want)), "{name}: {h}");
        assert_eq!(f.snapshot(), before, "{name}: the root changed");
    }
}

/// Every refusal names the file once: the reader annotates its path, and
/// nothing above it says it again (issue 13).
#[test]
fn every_refusal_names_its_path_once() {
    let cases: &[(&str, &[&str], bool)] = &[
        ("/etc/selinux/config", &["selinux", "install"], false),
        ("/etc/selinux/config", &["doctor", "--json"], true),
        ("/etc/os-release", &["doctor"], false),
        (
            "/var/lib/connector/status.json",
            &["doctor", "--json"],
            true,
        ),
        (
            "/var/lib/connector/pending",
            &["install", "--no-start"],
            false,
        ),
    ];
    for (path, args, in_json) in cases {
        let f = Fixture::new();
        f.os_release("rhel-9.3");
        f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
        fifo(&f, path);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--root", f.path().to_str().unwrap()]);
        let (out, _) = run(&all);
        let text = if *in_json {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            v["notes"].to_string()
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        assert!(text.contains("refused: a FIFO"), "{path} {args:?}: {text}");
        assert_eq!(
            text.matches(path).count(),
            1,
            "{path} {args:?} names it more than once: {text}"
        );
    }
}

/// issue 24, class 4: files named on the command line are read like every
/// other file: regular files only, never blocking, capped, and an error
/// quotes at most a short excerpt. `--archives` and the `--payload`
/// manifest as a FIFO, a device (`/dev/zero` would grow the process without
/// end), a huge one-line file; `--from DIR` whose header package is a FIFO.
#[test]
fn files_named_on_the_command_line_are_read_capped_and_never_block() {
    let f = Fixture::new();
    f.os_release("rhel-8.9");
    let k = Kernel::new("4.18.0-513.5.1.el8_9.x86_64", Layout::El8);
    f.kernel(&k);
    let root = f.path().to_str().unwrap().to_string();
    let outside = tempfile::tempdir().unwrap();
    let fifo_file = outside.path().join("fifo");
    mknod(&fifo_file, libc::S_IFIFO | 0o644, 0);
    let huge = outside.path().join("huge");
    std::fs::write(&huge, "x".repeat(40 * 1024 * 1024)).unwrap();
    let payload = |manifest: &std::path::Path| {
        let d = outside.path().join(format!(
            "payload-{}",
            manifest.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(d.join("files")).unwrap();
        std::os::unix::fs::symlink(manifest, d.join("manifest")).unwrap();
        d
    };
    let before = f.snapshot();
    for (what, file) in [
        ("a FIFO", fifo_file.clone()),
        ("a character device", std::path::PathBuf::from("/dev/zero")),
        ("larger than", huge.clone()),
    ] {
        let file_s = file.to_str().unwrap();
        let pay = payload(&file);
        let mut runs: Vec<Vec<&str>> = ["headers", "install"]
            .iter()
            .map(|cmd| vec![*cmd, "--root", &root, "--archives", file_s, "--dry-run"])
            .collect();
        runs.push(vec![
            "laydown",
            "--root",
            &root,
            "--payload",
            pay.to_str().unwrap(),
            "--dry-run",
        ]);
        for args in runs {
            let (out, took) = run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_ne!(out.status.code(), Some(0), "{what}: {args:?}: {err}");
            assert!(err.contains("refused"), "{what}: {args:?}: {err}");
            assert!(err.contains(what), "{what}: {args:?}: {err}");
            assert!(took < Duration::from_secs(5), "{what}: {args:?} {took:?}");
            assert!(
                out.stderr.len() + out.stdout.len() < 8 * 1024,
                "{what}: {args:?}: {} bytes of output",
                out.stderr.len() + out.stdout.len()
            );
        }
    }
    // A huge archives.conf that is *not* too large, but one long bad line:
    // the error quotes an excerpt.
    let long = outside.path().join("long.conf");
    std::fs::write(&long, format!("centos 8 {}\n", "y".repeat(500_000))).unwrap();
    let (out, _) = run(&[
        "headers",
        "--root",
        &root,
        "--archives",
        long.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stderr.len() < 8 * 1024, "{} bytes", out.stderr.len());
    assert_eq!(f.snapshot(), before, "the root changed");
}

/// issue 24, class 5: `doctor --output F` replaces only a regular file (or
/// creates one): a device, FIFO, socket or directory there is refused and
/// left as it was (a link is replaced itself, never written through: the
/// metrics unit tests).
#[test]
fn doctor_output_replaces_only_a_regular_file() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let root = f.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("null");
    mknod(&dev, libc::S_IFCHR | 0o666, libc::makedev(1, 3));
    let fifo = dir.path().join("fifo");
    mknod(&fifo, libc::S_IFIFO | 0o644, 0);
    let sock = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let target = dir.path().join("target.prom");
    std::fs::write(&target, "keep\n").unwrap();
    let subdir = dir.path().join("d.prom");
    std::fs::create_dir(&subdir).unwrap();
    let before = connector_tests::snapshot_dir(dir.path());
    for (what, path) in [
        ("a character device", &dev),
        ("a FIFO", &fifo),
        ("a socket", &sock),
        ("a directory", &subdir),
    ] {
        for format in ["prometheus", "json"] {
            let (out, took) = run(&[
                "doctor",
                "--root",
                root,
                "--format",
                format,
                "--output",
                path.to_str().unwrap(),
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what} {format}: {err}");
            assert!(err.contains(&format!("refused: {what}")), "{what}: {err}");
            let tmp_prefix = format!(".{}.", path.file_name().unwrap().to_string_lossy());
            assert!(!err.contains(&tmp_prefix), "no temporary name: {err}");
            assert!(took < Duration::from_secs(5));
        }
    }
    assert_eq!(connector_tests::snapshot_dir(dir.path()), before);
    // A regular file is replaced, and a new one created.
    let fresh = dir.path().join("new.prom");
    for p in [&target, &fresh] {
        let (out, _) = run(&[
            "doctor",
            "--root",
            root,
            "--format",
            "prometheus",
            "--output",
            p.to_str().unwrap(),
        ]);
        assert!(matches!(out.status.code(), Some(0) | Some(1)), "{out:?}");
        let text = std::fs::read_to_string(p).unwrap();
        assert!(text.contains("connector_doctor_success"), "{text}");
    }
}

/// issue 24, class 2: every value of a fleet document, a bundle manifest,
/// archives.conf or the command line that becomes part of a path or a
/// command is checked where it is read: nothing is written outside `--out`
/// (nor inside), and the error names the value.
#[test]
fn names_from_fleet_documents_and_the_command_line_stay_names() {
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let doctor = |id: &str, version: &str, codename: &str, release: &str, package: &str| {
        serde_json::json!({
            "os": {"id": id, "version_id": version, "codename": codename},
            "kernels": [{
                "release": release,
                "headers": {"required": true, "package": package}
            }]
        })
        .to_string()
    };
    let k = "4.18.0-513.5.1.el8_9.x86_64";
    let p = "kernel-devel-4.18.0-513.5.1.el8_9.x86_64";
    let docs = [
        (
            "os.version_id",
            doctor("centos", "8/../../escaped", "", k, p),
        ),
        ("os.id", doctor("../centos", "8", "", k, p)),
        (
            "os.codename",
            doctor("debian", "12", "book\u{1b}[2Jworm", k, p),
        ),
        (
            "kernel release",
            doctor("centos", "8", "", "../../../etc", p),
        ),
        (
            "header package",
            doctor("centos", "8", "", k, "kernel-devel/../../x"),
        ),
        ("kernel release", doctor("centos", "8", "", "-rf", p)),
    ];
    let before = connector_tests::snapshot_dir(parent.path());
    for (what, doc) in &docs {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), doc).unwrap();
        let (o, took) = run(&[
            "bundle",
            "--out",
            out.to_str().unwrap(),
            "--doctor",
            file.path().to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(what), "{what}: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "a control character reached stderr"
        );
        assert!(took < Duration::from_secs(10));
        assert_eq!(
            connector_tests::snapshot_dir(parent.path()),
            before,
            "{what}: something was written"
        );
    }
    // The command line: --os and --kernel (usage errors), and --kernel of
    // the other commands.
    for args in [
        vec![
            "bundle",
            "--out",
            out.to_str().unwrap(),
            "--os",
            "centos:8/../../x",
            "--kernel",
            k,
        ],
        vec![
            "bundle",
            "--out",
            out.to_str().unwrap(),
            "--os",
            "centos:8",
            "--kernel",
            "../../x",
        ],
        vec!["headers", "--kernel", "../../x", "--dry-run"],
        vec!["doctor", "--kernel", "a/b"],
    ] {
        let (o, _) = run(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert_eq!(
            connector_tests::snapshot_dir(parent.path()),
            before,
            "{args:?}"
        );
    }
    // archives.conf: the columns and suite=/component=.
    let f = Fixture::new();
    f.os_release("debian-12");
    for line in [
        "debian 12/../x * https://mirror.example/debian/",
        "debian 12 * https://mirror.example/debian/ suite=../../x",
        "debian 12 * https://mirror.example/debian/ component=main/../../x",
    ] {
        f.file("/etc/connector/archives.conf", &format!("{line}\n"));
        let (o, _) = run(&["doctor", "--json", "--root", f.path().to_str().unwrap()]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("archives.conf") && text.contains("not one a distribution uses")
                || text.contains("contains `..`"),
            "{line}: {text}"
        );
    }
}
