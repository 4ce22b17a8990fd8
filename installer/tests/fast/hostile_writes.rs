//! Hostile images and careless hosts, the classes that write (issue 13):
//! tools led out of the root by planted links (1), hard links (2),
//! manifests (5), space (6), failing closed (9) and chroots of images (10).
//! Every case asserts the exact refusal and that the root and the victim
//! outside it (another scratch directory, never the host) are byte for
//! byte unchanged, labels included.
//!
//! Tier: real tools (semodule, setfiles, rpm, dnf, apt, systemctl) in
//! scratch roots, and the binary as a user runs it.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connector_installer::laydown::manifest_for;
use connector_tests::{require_tool, selinux_root, Fixture, Kernel, Layout};

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

fn run(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["120", BIN])
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scratch directory outside every root: the victim.
struct Outside(tempfile::TempDir);

impl Outside {
    fn new() -> Outside {
        Outside(tempfile::tempdir().unwrap())
    }
    /// Its canonical path (what a link planted in a root names).
    fn path(&self) -> PathBuf {
        self.0.path().canonicalize().unwrap()
    }
    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        connector_tests::snapshot_dir(&self.path())
    }
}

/// A payload: the connector's binary, its unit, its configuration.
fn payload() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let files = d.path().join("files");
    for (p, body, mode) in [
        (
            "/opt/connector/bin/connectord",
            "#!/bin/sh\necho connectord\n",
            0o755,
        ),
        (
            "/usr/lib/systemd/system/connectord.service",
            "[Unit]\nDescription=connector\n[Service]\nExecStart=/opt/connector/bin/connectord\n\
             [Install]\nWantedBy=multi-user.target\n",
            0o644,
        ),
        ("/etc/connector/connector.conf", "interval = 30\n", 0o640),
    ] {
        let f = files.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, body).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::write(d.path().join("manifest"), manifest_for(&files).unwrap()).unwrap();
    d
}

/// Copies `from` (a directory) to `to` with `cp -a`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

// ---- Class 1: tools that take the root, led out of it by a link ----

/// `R/var/lib/selinux` is an absolute link to a store that exists both
/// inside the root (where chroot rules lead) and outside it (where the host
/// kernel leads semodule): refused before semodule runs, nothing changes on
/// either side.
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-installer/real-tools (scripts/test)"
)]
fn semodule_is_never_handed_a_store_a_link_leads_out_of_the_root() {
    require_tool("semodule");
    let f = selinux_root("default");
    f.os_release("debian-12");
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    let out_dir = Outside::new();
    let store = f.host("/var/lib/selinux");
    let target = out_dir.path().join("selinux");
    copy_tree(&store, &target);
    copy_tree(&store, &f.host(target.to_str().unwrap()));
    std::fs::remove_dir_all(&store).unwrap();
    std::os::unix::fs::symlink(&target, &store).unwrap();
    let (before, outside) = (f.snapshot(), out_dir.snapshot());
    let root = f.path().to_str().unwrap();
    // `selinux remove` of a module the store does not hold runs nothing.
    let out = run(&["selinux", "remove", "--root", root]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for args in [
        vec!["selinux", "install", "--root", root],
        vec!["install", "--root", root, "--no-start"],
    ] {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "refused: /var/lib/selinux in the root is a symbolic link to {}",
                target.display()
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("outside the root"), "{err}");
        assert_eq!(f.snapshot(), before, "{args:?}: the root changed");
        assert_eq!(out_dir.snapshot(), outside, "{args:?}: the outside changed");
    }
}

/// `R/var/log` climbs out with `..`: labeling the connector's log directory
/// through it would relabel the victim's files, and semodule resolves the
/// root's paths with the host's kernel. Refused up front, before the module
/// is installed, so the store is untouched too.
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-installer/real-tools (scripts/test)"
)]
fn selinux_install_refuses_a_root_whose_climbing_link_leads_out() {
    require_tool("semodule");
    let f = selinux_root("default");
    f.os_release("debian-12");
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    let out_dir = Outside::new();
    let victim = out_dir.path().join("log");
    std::fs::create_dir_all(victim.join("connector")).unwrap();
    std::fs::write(victim.join("connector/victim.log"), "precious\n").unwrap();
    // The same place inside the root, where chroot rules clamp the link.
    std::fs::create_dir_all(f.host(victim.join("connector").to_str().unwrap())).unwrap();
    let depth = f.path().components().count() + 1;
    let climb = format!(
        "{}{}",
        "../".repeat(depth),
        victim.display().to_string().trim_start_matches('/')
    );
    std::fs::create_dir_all(f.host("/var")).unwrap();
    std::os::unix::fs::symlink(&climb, f.host("/var/log")).unwrap();
    let (before, outside) = (f.snapshot(), out_dir.snapshot());
    let out = run(&["selinux", "install", "--root", f.path().to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "refused: /var/log in the root is a symbolic link to {climb}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&victim.display().to_string()),
        "names where it leads: {err}"
    );
    assert_eq!(f.snapshot(), before, "the root changed");
    assert_eq!(out_dir.snapshot(), outside, "the outside changed");
}

/// dnf --installroot and apt-get -o Dir= write their caches, logs and
/// databases below the root with the host's kernel: a planted link to the
/// outside refuses the header installation before either runs.
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-installer/real-tools (scripts/test)"
)]
fn package_managers_are_never_handed_a_root_whose_links_lead_out() {
    for (family, link) in [
        ("rpm", "/var/cache/dnf"),
        ("rpm", "/etc/yum.repos.d"),
        ("rpm", "/var/log"),
        ("deb", "/var/lib/apt/lists"),
        ("deb", "/var/cache/apt"),
    ] {
        let (f, _repo) = if family == "rpm" {
            common::el_root(Fixture::new(), &[common::EL_K1], &[common::EL_K1])
        } else {
            common::debian_root(Fixture::new(), &[common::DEB_K1])
        };
        let out_dir = Outside::new();
        let here = f.host(link);
        if here.exists() {
            copy_tree(&here, &out_dir.path().join("victim"));
            std::fs::remove_dir_all(&here).unwrap();
        } else {
            std::fs::create_dir_all(out_dir.path().join("victim")).unwrap();
        }
        std::fs::create_dir_all(here.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(out_dir.path().join("victim"), &here).unwrap();
        // sqlite's shared-memory index changes on every read of the rpm
        // database; nothing else may.
        let snap = || {
            let mut s = f.snapshot();
            s.retain(|(p, _)| !p.to_string_lossy().ends_with("-shm"));
            s
        };
        let (before, outside) = (snap(), out_dir.snapshot());
        for args in [
            vec!["headers", "--root", f.path().to_str().unwrap()],
            vec![
                "install",
                "--root",
                f.path().to_str().unwrap(),
                "--no-start",
            ],
        ] {
            if args[0] == "install" {
                f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
            }
            let before = if args[0] == "install" {
                snap()
            } else {
                before.clone()
            };
            let out = run(&args);
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{family} {link} {args:?}: {err}"
            );
            assert!(
                err.contains(&format!(
                    "refused: {link} in the root is a symbolic link to"
                )),
                "{family} {link} {args:?}: {err}"
            );
            assert_eq!(snap(), before, "{family} {link} {args:?}: the root changed");
            assert_eq!(
                out_dir.snapshot(),
                outside,
                "{family} {link}: the outside changed"
            );
        }
    }
}

/// `systemctl --root` writes the unit's wants link: the lay-down refuses
/// before its first file when that directory leads out.
#[test]
fn systemctl_is_never_handed_a_root_whose_links_lead_out() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let out_dir = Outside::new();
    std::fs::create_dir_all(out_dir.path().join("wants")).unwrap();
    std::fs::create_dir_all(f.host("/etc/systemd/system")).unwrap();
    std::os::unix::fs::symlink(
        out_dir.path().join("wants"),
        f.host("/etc/systemd/system/multi-user.target.wants"),
    )
    .unwrap();
    let p = payload();
    let (before, outside) = (f.snapshot(), out_dir.snapshot());
    let out = run(&[
        "laydown",
        "--root",
        f.path().to_str().unwrap(),
        "--payload",
        p.path().to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "refused: /etc/systemd/system/multi-user.target.wants in the root is a symbolic link"
        ),
        "{err}"
    );
    assert_eq!(f.snapshot(), before, "the root changed");
    assert_eq!(out_dir.snapshot(), outside, "the outside changed");
}

// ---- Class 2: hard links are never changed in place ----

#[test]
fn a_destination_hard_linked_outside_the_root_is_replaced_not_changed() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let p = payload();
    let out_dir = Outside::new();
    // The victim has the payload's content but another mode: the lay-down
    // would only chmod it in place.
    let victim = out_dir.path().join("victim");
    std::fs::copy(p.path().join("files/opt/connector/bin/connectord"), &victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(f.host("/opt/connector/bin")).unwrap();
    std::fs::hard_link(&victim, f.host("/opt/connector/bin/connectord")).unwrap();
    // And the journal, truncated in place by an install, is linked too.
    let journal_victim = out_dir.path().join("journal");
    std::fs::write(&journal_victim, "precious\n").unwrap();
    std::fs::create_dir_all(f.host("/var/lib/connector")).unwrap();
    std::fs::hard_link(
        &journal_victim,
        f.host("/var/lib/connector/install.journal"),
    )
    .unwrap();
    let outside = out_dir.snapshot();
    let out = run(&[
        "install",
        "--root",
        f.path().to_str().unwrap(),
        "--payload",
        p.path().to_str().unwrap(),
        "--no-start",
    ]);
    // Headers cannot be installed here (no package tools in this root):
    // whatever the exit, the files went down and the outside is untouched.
    let _ = out;
    let inside = f.host("/opt/connector/bin/connectord");
    let m = std::fs::metadata(&inside).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o755,
        "our file has our mode"
    );
    assert_eq!(m.nlink(), 1, "a file of its own now");
    assert_eq!(out_dir.snapshot(), outside, "the outside changed");
    assert_eq!(
        std::fs::read_to_string(&journal_victim).unwrap(),
        "precious\n"
    );
}

#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-installer/real-tools (scripts/test)"
)]
fn labeling_never_relabels_a_file_hard_linked_outside_the_root() {
    require_tool("semodule");
    require_tool("setfiles");
    let f = selinux_root("default");
    f.os_release("debian-12");
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    let out_dir = Outside::new();
    let victim = out_dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir_all(f.host("/var/lib/connector")).unwrap();
    std::fs::hard_link(&victim, f.host("/var/lib/connector/agent-id")).unwrap();
    let outside = out_dir.snapshot();
    let out = run(&["selinux", "install", "--root", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inside = f.host("/var/lib/connector/agent-id");
    assert_eq!(std::fs::metadata(&inside).unwrap().nlink(), 1);
    assert_eq!(
        std::fs::read_to_string(&inside).unwrap(),
        "precious\n",
        "content kept"
    );
    assert!(
        connector_tests::label_of(&inside).is_some_and(|l| l.contains("connectord")),
        "our copy is labeled: {:?}",
        connector_tests::label_of(&inside)
    );
    assert_eq!(out_dir.snapshot(), outside, "the outside was relabeled");
}

#[test]
fn an_installer_lock_that_is_not_a_plain_file_is_refused() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let p = payload();
    let out_dir = Outside::new();
    let victim = out_dir.path().join("lock");
    std::fs::write(&victim, "").unwrap();
    std::fs::create_dir_all(f.host("/var/lib/connector")).unwrap();
    std::fs::hard_link(&victim, f.host("/var/lib/connector/installer.lock")).unwrap();
    let (before, outside) = (f.snapshot(), out_dir.snapshot());
    let out = run(&[
        "install",
        "--root",
        f.path().to_str().unwrap(),
        "--payload",
        p.path().to_str().unwrap(),
        "--no-start",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "/var/lib/connector/installer.lock: refused: not a regular file with one link"
        ),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);
    assert_eq!(out_dir.snapshot(), outside);
}

// ---- Class 5: manifests validated as a whole before the first write ----

#[test]
fn manifests_are_refused_whole_before_anything_is_written() {
    let sum = |b: &str| connector_tests::sha256_hex(b.as_bytes());
    let bin = "#!/bin/sh\n";
    let ok_bin = format!("file 0755 {} /opt/connector/bin/connectord\n", sum(bin));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "empty",
            String::new(),
            "does not lay down /opt/connector/bin/connectord",
        ),
        (
            "comments only",
            "# connector payload manifest 1\n".into(),
            "does not lay down /opt/connector/bin/connectord",
        ),
        (
            "a file that is the parent of another entry",
            format!(
                "{ok_bin}file 0644 {} /opt/connector/lib\nfile 0644 {} /opt/connector/lib/x\n",
                sum("a"),
                sum("b")
            ),
            "/opt/connector/lib/x is below /opt/connector/lib, which line 2 makes a file",
        ),
        (
            "the same, the child listed first",
            format!(
                "{ok_bin}file 0644 {} /opt/connector/lib/x\nfile 0644 {} /opt/connector/lib\n",
                sum("b"),
                sum("a")
            ),
            "/opt/connector/lib is a file, but line 2 puts /opt/connector/lib/x below it",
        ),
        (
            "outside the connector's places",
            format!("{ok_bin}file 0755 {} /usr/bin/connectord\n", sum("a")),
            "/usr/bin/connectord: not a place the connector's files go",
        ),
        (
            "a system file",
            format!("{ok_bin}conf 0644 {} /etc/passwd\n", sum("a")),
            "/etc/passwd: not a place the connector's files go",
        ),
        (
            "a unit that is not ours",
            format!(
                "{ok_bin}file 0644 {} /usr/lib/systemd/system/sshd.service\n",
                sum("a")
            ),
            "sshd.service: not a place the connector's files go",
        ),
        (
            "world-writable",
            format!("{ok_bin}file 0666 {} /opt/connector/share/x\n", sum("a")),
            "mode 0666: world-writable",
        ),
        (
            "a world-writable directory",
            format!("dir 0777 /opt/connector\n{ok_bin}"),
            "mode 0777: world-writable",
        ),
        (
            "setuid",
            format!("file 4755 {} /opt/connector/bin/connectord\n", sum(bin)),
            "no setuid/setgid",
        ),
        (
            "configuration outside /etc/connector",
            format!("{ok_bin}conf 0644 {} /opt/connector/x.conf\n", sum("a")),
            "configuration lives below /etc/connector",
        ),
        (
            "the installer's own record",
            format!(
                "{ok_bin}file 0644 {} /var/lib/connector/installed.manifest\n",
                sum("a")
            ),
            "the installer's own record",
        ),
    ];
    for (what, manifest, want) in cases {
        let f = Fixture::new();
        f.os_release("rhel-9.3");
        // A previous install: its record must survive a refused payload.
        f.file("/var/lib/connector/installed.manifest", &ok_bin);
        f.file("/opt/connector/bin/connectord", bin);
        let p = tempfile::tempdir().unwrap();
        std::fs::write(p.path().join("manifest"), &manifest).unwrap();
        for (path, body) in [
            ("opt/connector/bin/connectord", bin),
            ("opt/connector/lib", "a"),
            ("opt/connector/lib/x", "b"),
        ] {
            let h = p.path().join("files").join(path);
            if std::fs::create_dir_all(h.parent().unwrap()).is_ok() {
                let _ = std::fs::write(h, body);
            }
        }
        let before = f.snapshot();
        for cmd in ["laydown", "install"] {
            let out = run(&[
                cmd,
                "--root",
                f.path().to_str().unwrap(),
                "--payload",
                p.path().to_str().unwrap(),
            ]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{what} ({cmd}): {err}");
            assert!(err.contains(want), "{what} ({cmd}): {err}");
            assert_eq!(f.snapshot(), before, "{what} ({cmd}): the root changed");
        }
        // And the uninstall that follows still knows the binary.
        let out = run(&["uninstall", "--root", f.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        assert!(!f.host("/opt/connector/bin/connectord").exists(), "{what}");
    }
}

// ---- Class 6: space for everything a run writes ----

/// A file system with exactly the room for the connector's files (as the
/// old accounting counted them), not for the record and the directories
/// beside them: refused when planning, nothing written.
#[test]
fn files_that_fit_exactly_leave_no_room_for_the_record_and_are_refused() {
    for cmd in ["laydown", "install"] {
        let disk = connector_tests::Tmpfs::mount("256k");
        let f = Fixture::at(disk.path());
        f.os_release("rhel-9.3");
        let c = std::ffi::CString::new(disk.path().to_str().unwrap()).unwrap();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        let avail = st.f_bavail as u64 * st.f_frsize as u64;
        // One file that takes every free block.
        let p = tempfile::tempdir().unwrap();
        let files = p.path().join("files");
        let bin = files.join("opt/connector/bin/connectord");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, vec![b'x'; avail as usize]).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(p.path().join("manifest"), manifest_for(&files).unwrap()).unwrap();
        let before = f.snapshot();
        let out = run(&[
            cmd,
            "--root",
            f.path().to_str().unwrap(),
            "--payload",
            p.path().to_str().unwrap(),
            "--no-start",
        ]
        .iter()
        .copied()
        .filter(|a| cmd == "install" || *a != "--no-start")
        .collect::<Vec<_>>());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains("no room for"), "{cmd}: {err}");
        assert!(err.contains("nothing was written"), "{cmd}: {err}");
        assert_eq!(f.snapshot(), before, "{cmd}: the root changed");
        drop(f);
    }
}

// ---- Class 9: failures that would lose data or fail open ----

#[test]
fn an_unreadable_pending_record_is_never_wiped() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    // Not UTF-8: unreadable as a record, but it is someone's work.
    std::fs::create_dir_all(f.host("/var/lib/connector")).unwrap();
    std::fs::write(f.host("/var/lib/connector/pending"), b"headers \xff\xfe\n").unwrap();
    let before = f.snapshot();
    let out = run(&[
        "install",
        "--root",
        f.path().to_str().unwrap(),
        "--no-start",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("reading the record of deferred work: /var/lib/connector/pending: refused: not UTF-8 text"),
        "{err}"
    );
    assert_eq!(f.snapshot(), before, "the record changed");
    // A kernel hook cannot record more work there: it says so (and what to
    // run), never rewrites the record, never fails the transaction.
    let out = run(&[
        "hook",
        "kernel-postinst",
        "--root",
        f.path().to_str().unwrap(),
        "5.14.0-362.8.1.el9_3.x86_64",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("recording the pending headers of 5.14.0-362.8.1.el9_3.x86_64 failed")
            && err.contains("connector-installer headers --kernel 5.14.0-362.8.1.el9_3.x86_64"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(f.host("/var/lib/connector/pending")).unwrap(),
        b"headers \xff\xfe\n"
    );
    // doctor shows it instead of "nothing pending".
    let out = run(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["notes"].as_array().unwrap().iter().any(|n| n["message"]
            .as_str()
            .unwrap()
            .contains("/var/lib/connector/pending: refused: not UTF-8 text")),
        "{v:#}"
    );
}

#[test]
fn a_broken_file_contexts_refuses_the_lay_down_instead_of_leaving_files_unlabeled() {
    for (what, setup) in [("missing", 0), ("unparsable", 1)] {
        let f = Fixture::new();
        f.os_release("rhel-9.3");
        f.file(
            "/etc/selinux/config",
            "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
        );
        let fc = "/etc/selinux/targeted/contexts/files/file_contexts";
        if setup == 1 {
            f.file(fc, "/opt/connector(/.*)? not_a_context at all\n");
        }
        let p = payload();
        let before = f.snapshot();
        for cmd in ["laydown", "install"] {
            let out = run(&[
                cmd,
                "--root",
                f.path().to_str().unwrap(),
                "--payload",
                p.path().to_str().unwrap(),
            ]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{what} {cmd}: {err}");
            assert!(
                err.contains(&format!("{fc} in the root"))
                    && err.contains("the connector's files cannot be labeled"),
                "{what} {cmd}: {err}"
            );
            assert_eq!(f.snapshot(), before, "{what} {cmd}: the root changed");
        }
    }
}

#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-installer/real-tools (scripts/test)"
)]
fn uninstall_refuses_when_it_cannot_tell_whether_a_package_owns_the_connector() {
    require_tool("dpkg-query");
    let f = Fixture::new();
    f.os_release("debian-12");
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    // A dpkg database dpkg-query cannot parse.
    f.file(
        "/var/lib/dpkg/status",
        "Package connector\nthis is not a control file\n",
    );
    std::fs::create_dir_all(f.host("/var/lib/dpkg/info")).unwrap();
    f.file("/var/lib/dpkg/available", "");
    let before = f.snapshot();
    let out = run(&["uninstall", "--root", f.path().to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot tell whether the connector is installed by a package")
            && err.contains("nothing was removed"),
        "{err}"
    );
    assert_eq!(f.snapshot(), before, "the root changed");
}

// ---- Class 10: inside an image's chroot, one rule for every acting command ----

#[test]
fn inside_an_image_chroot_every_acting_command_treats_slash_as_the_image() {
    require_tool("chroot");
    let f = Fixture::new();
    f.os_release("debian-12");
    let k = Kernel::new("6.1.0-18-amd64", Layout::Debian);
    f.kernel(&k).headers(&k);
    connector_tests::copy_host_program(f.path(), Path::new(BIN));
    let p = payload();
    copy_tree(p.path(), &f.host("/payload"));
    let inside = |args: &[&str]| -> Output {
        Command::new("chroot")
            .arg(f.path())
            .arg(BIN)
            .args(args)
            .output()
            .unwrap()
    };
    // The build host's running kernel is not installed in the image.
    for args in [
        vec!["headers", "--json"],
        vec!["laydown", "--payload", "/payload", "--no-enable"],
        vec!["selinux", "install"],
    ] {
        let out = inside(&args);
        let err = stderr(&out);
        assert!(
            err.contains("this root is treated as an image"),
            "{args:?}: {err}"
        );
        if args[0] == "headers" {
            assert_eq!(out.status.code(), Some(0), "{err}");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let kernels: Vec<&str> = v["kernels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["release"].as_str().unwrap())
                .collect();
            assert_eq!(kernels, ["6.1.0-18-amd64"], "every installed kernel: {v:#}");
        }
    }
    // doctor still describes / as it is.
    let out = inside(&["doctor", "--json"]);
    assert!(
        !stderr(&out).contains("treated as an image"),
        "{}",
        stderr(&out)
    );
}
