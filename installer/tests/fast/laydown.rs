//! Laying the connector down from a payload: exact files, modes, labels,
//! config kept when changed, idempotent re-runs; hostile manifests and
//! roots refused before anything is written.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use connector_installer::laydown::{self, manifest_for, Action, NoLabels};
use connector_tests::Fixture;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

/// A payload directory: files/ with the connector's layout and a manifest
/// made from it.
fn payload(conf: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let files = d.path().join("files");
    let put = |p: &str, body: &str, mode: u32| {
        let f = files.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, body).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    put(
        "/opt/connector/bin/connectord",
        "#!/bin/sh\necho connectord\n",
        0o755,
    );
    put(
        "/usr/lib/systemd/system/connectord.service",
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector/connectord.service"),
        )
        .unwrap(),
        0o644,
    );
    put("/etc/connector/connector.conf", conf, 0o640);
    let manifest = manifest_for(&files).unwrap();
    std::fs::write(d.path().join("manifest"), manifest).unwrap();
    d
}

fn root_with_os() -> Fixture {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    f
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn lays_down_exactly_and_reruns_change_nothing() {
    let f = root_with_os();
    let p = payload("interval = 30\n");
    let done = laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    assert!(done.iter().all(|d| d.action == Action::Created), "{done:?}");
    let bin = f.host("/opt/connector/bin/connectord");
    assert_eq!(
        std::fs::read_to_string(&bin).unwrap(),
        "#!/bin/sh\necho connectord\n"
    );
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&f.host("/etc/connector/connector.conf")), 0o640);
    assert!(f.host("/var/lib/connector/installed.manifest").is_file());
    let before = f.snapshot();
    let again = laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    assert!(
        again.iter().all(|d| d.action == Action::Unchanged),
        "{again:?}"
    );
    assert_eq!(f.snapshot(), before, "a re-run rewrote something");
}

#[test]
fn changed_configuration_is_kept_and_the_new_one_goes_beside_it() {
    let f = root_with_os();
    laydown::laydown(&f.root(), payload("interval = 30\n").path(), &NoLabels).unwrap();
    // Unchanged config is updated to the new version.
    let done = laydown::laydown(&f.root(), payload("interval = 20\n").path(), &NoLabels).unwrap();
    let conf = done
        .iter()
        .find(|d| d.path == "/etc/connector/connector.conf")
        .unwrap();
    assert_eq!(conf.action, Action::Updated);
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/connector/connector.conf")).unwrap(),
        "interval = 20\n"
    );
    // The administrator changes it; the next version keeps theirs.
    std::fs::write(
        f.host("/etc/connector/connector.conf"),
        "interval = 5 # mine\n",
    )
    .unwrap();
    let done = laydown::laydown(&f.root(), payload("interval = 10\n").path(), &NoLabels).unwrap();
    let conf = done
        .iter()
        .find(|d| d.path == "/etc/connector/connector.conf")
        .unwrap();
    assert_eq!(conf.action, Action::KeptNew);
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/connector/connector.conf")).unwrap(),
        "interval = 5 # mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/connector/connector.conf.new")).unwrap(),
        "interval = 10\n"
    );
}

fn assert_refused_and_unchanged(f: &Fixture, p: &Path, want: &str) {
    let before = f.snapshot();
    let err = laydown::laydown(&f.root(), p, &NoLabels).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(want), "{msg}");
    assert_eq!(f.snapshot(), before, "a refused lay-down wrote something");
}

#[test]
fn traversal_in_the_manifest_is_refused() {
    let f = root_with_os();
    let p = payload("x\n");
    let m = std::fs::read_to_string(p.path().join("manifest")).unwrap();
    std::fs::write(
        p.path().join("manifest"),
        m.replace(
            "/opt/connector/bin/connectord",
            "/opt/connector/../../etc/passwd",
        ),
    )
    .unwrap();
    assert_refused_and_unchanged(&f, p.path(), "escapes the root");
}

#[test]
fn wrong_sha256_is_refused() {
    let f = root_with_os();
    let p = payload("x\n");
    std::fs::write(
        p.path().join("files/opt/connector/bin/connectord"),
        "tampered\n",
    )
    .unwrap();
    assert_refused_and_unchanged(&f, p.path(), "sha256");
}

/// Rewrites `p` in place with `body` (the same length as before), then
/// puts its mtime back: only its ctime says it changed.
fn change_in_place_keeping_times(p: &Path, body: &str) {
    let before = std::fs::metadata(p).unwrap();
    assert_eq!(before.len(), body.len() as u64);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(p, body).unwrap();
    connector_tests::set_mtime(p, before.modified().unwrap());
}

#[test]
fn a_file_changed_since_the_last_run_is_found_whatever_its_size_and_mtime_say() {
    let f = root_with_os();
    let p = payload("interval = 30\n");
    laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    assert!(f.host("/var/lib/connector/installed.stamps").is_file());
    let bin = f.host("/opt/connector/bin/connectord");
    // Same size, same mtime: a different file.
    change_in_place_keeping_times(&bin, "#!/bin/sh\necho connectorX\n");
    let preview = laydown::prepare(&f.root(), p.path())
        .unwrap()
        .preview()
        .unwrap();
    let d = preview
        .iter()
        .find(|d| d.path == "/opt/connector/bin/connectord")
        .unwrap();
    assert_eq!(d.action, Action::Updated, "{preview:?}");
    laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    assert_eq!(
        std::fs::read_to_string(&bin).unwrap(),
        "#!/bin/sh\necho connectord\n"
    );
    // A file replaced by another (a new inode) with the same content and
    // times is the same file: nothing is rewritten.
    let copy = f.host("/opt/connector/bin/.copy");
    std::fs::copy(&bin, &copy).unwrap();
    connector_tests::set_mtime(&copy, std::fs::metadata(&bin).unwrap().modified().unwrap());
    std::fs::rename(&copy, &bin).unwrap();
    let again = laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    assert!(
        again.iter().all(|d| d.action == Action::Unchanged),
        "{again:?}"
    );
    // The administrator's edit of the configuration, same size and mtime:
    // kept, the new version beside it.
    change_in_place_keeping_times(&f.host("/etc/connector/connector.conf"), "interval = 99\n");
    let done = laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    let conf = done
        .iter()
        .find(|d| d.path == "/etc/connector/connector.conf")
        .unwrap();
    assert_eq!(conf.action, Action::KeptNew, "{done:?}");
}

#[test]
fn only_the_payload_files_to_be_written_are_read_and_those_are_checked() {
    let f = root_with_os();
    let p = payload("interval = 30\n");
    laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    // A payload file that is not needed (the installed one is right) is
    // not read: its corruption does not matter to this run.
    let src = p.path().join("files/opt/connector/bin/connectord");
    std::fs::write(&src, "tampered\n").unwrap();
    let before = f.snapshot();
    let again = laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    assert!(
        again.iter().all(|d| d.action == Action::Unchanged),
        "{again:?}"
    );
    assert_eq!(f.snapshot(), before);
    // Once it is needed, it is checked before anything is written.
    let bin = f.host("/opt/connector/bin/connectord");
    std::fs::write(&bin, "#!/bin/sh\necho mine\n").unwrap();
    assert_refused_and_unchanged(&f, p.path(), "the manifest says");
    // Another file's change does not make the corrupt one needed...
    std::fs::write(&src, "#!/bin/sh\necho connectord\n").unwrap();
    laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    std::fs::write(&src, "tampered\n").unwrap();
    std::fs::set_permissions(
        f.host("/usr/lib/systemd/system/connectord.service"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let done = laydown::laydown(&f.root(), p.path(), &NoLabels).unwrap();
    assert!(done
        .iter()
        .any(|d| d.path.ends_with("connectord.service") && d.action == Action::Updated));
    // ... and a root laid down from scratch reads and checks them all.
    let fresh = root_with_os();
    assert_refused_and_unchanged(&fresh, p.path(), "the manifest says");
}

#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-installer/real-tools (scripts/test)"
)]
fn a_healthy_rerun_opens_neither_the_files_laid_down_nor_the_payload() {
    connector_tests::require_tool("strace");
    let f = root_with_os();
    let p = payload("interval = 30\n");
    let laydown_cli = |traced: Option<&Path>| {
        let mut c = match traced {
            Some(log) => {
                let mut c = Command::new("strace");
                c.args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
                    .arg(log)
                    .arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let out = c
            .args(["laydown", "--no-enable", "--json", "--root"])
            .arg(f.path())
            .arg("--payload")
            .arg(p.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    laydown_cli(None);
    let log = tempfile::NamedTempFile::new().unwrap();
    let v = laydown_cli(Some(log.path()));
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["action"] == "unchanged"),
        "{v}"
    );
    let opens = std::fs::read_to_string(log.path()).unwrap();
    let payload_files = p.path().join("files");
    let read: Vec<&str> = opens
        .lines()
        .filter(|l| {
            l.contains(&*payload_files.to_string_lossy())
                || [
                    "/opt/connector/bin/connectord",
                    "/etc/connector/connector.conf",
                ]
                .iter()
                .any(|x| l.contains(&*f.host(x).to_string_lossy()))
        })
        .collect();
    assert!(read.is_empty(), "a healthy re-run opened: {read:#?}");
    // The trace does see opens (the manifest, for one).
    assert!(opens.contains("/manifest"), "{opens}");
}

#[test]
fn an_absolute_symlink_in_the_root_is_refused() {
    let f = root_with_os();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(f.host("/opt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), f.host("/opt/connector")).unwrap();
    assert_refused_and_unchanged(&f, payload("x\n").path(), "is a symlink");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
    // A relative symlink climbing out is refused too.
    std::fs::remove_file(f.host("/opt/connector")).unwrap();
    std::os::unix::fs::symlink("../../../../../../tmp", f.host("/opt/connector")).unwrap();
    assert_refused_and_unchanged(&f, payload("x\n").path(), "is a symlink");
}

#[test]
fn a_symlinked_payload_file_is_refused() {
    let f = root_with_os();
    let p = payload("x\n");
    let bin = p.path().join("files/opt/connector/bin/connectord");
    std::fs::remove_file(&bin).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", &bin).unwrap();
    assert_refused_and_unchanged(&f, p.path(), "not a regular file");
}

#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-installer/real-tools (scripts/test)"
)]
fn cli_lays_down_labels_and_enables_in_an_image() {
    connector_tests::require_tool("systemctl");
    connector_tests::require_tool("semodule");
    let f = connector_tests::selinux_root("default");
    f.os_release("rhel-9.3");
    // The module first, so the image's file contexts know the connector.
    let out = Command::new(BIN)
        .args(["selinux", "install", "--root", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = payload("interval = 30\n");
    let out = Command::new(BIN)
        .args([
            "laydown",
            "--json",
            "--root",
            f.path().to_str().unwrap(),
            "--payload",
        ])
        .arg(p.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["enabled"].as_str().unwrap().contains("systemctl --root="),
        "{v}"
    );
    let link = f.host("/etc/systemd/system/multi-user.target.wants/connectord.service");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let label = connector_tests::selinux_label(&f.host("/opt/connector/bin/connectord"));
    assert!(
        label.contains(":connectord_exec_t:"),
        "labeled at creation: {label}"
    );
    assert!(
        connector_tests::selinux_label(&f.host("/etc/connector/connector.conf"))
            .contains(":connectord_conf_t:")
    );
    // Re-run: nothing to enable, nothing rewritten.
    let out = Command::new(BIN)
        .args([
            "laydown",
            "--json",
            "--root",
            f.path().to_str().unwrap(),
            "--payload",
        ])
        .arg(p.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["enabled"].is_null(), "{v}");
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["action"] == "unchanged"),
        "{v}"
    );
}

/// The write path itself on a full disk (the room check skipped, as when
/// something else fills the disk between the check and the write): the
/// write fails, the error says why, and nothing is left half-written.
#[test]
fn a_write_that_hits_a_full_disk_leaves_nothing_half_written() {
    let disk = connector_tests::Tmpfs::mount("64k");
    let f = Fixture::at(disk.path());
    f.os_release("rhel-9.3");
    // A binary larger than the disk.
    let p = payload("interval = 30\n");
    let big = p.path().join("files/opt/connector/bin/connectord");
    std::fs::write(&big, vec![0x7fu8; 256 * 1024]).unwrap();
    std::fs::write(
        p.path().join("manifest"),
        manifest_for(&p.path().join("files")).unwrap(),
    )
    .unwrap();
    let prepared = laydown::prepare(&f.root(), p.path()).unwrap();
    assert!(
        prepared.check_space().is_err(),
        "the room check alone would have refused it"
    );
    let err = format!("{:#}", prepared.apply(&NoLabels).unwrap_err());
    assert!(err.contains("No space left on device"), "{err}");
    let leftovers: Vec<_> = f
        .snapshot()
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("connector-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert!(
        !f.host("/opt/connector/bin/connectord").exists(),
        "no half-written binary"
    );
}
