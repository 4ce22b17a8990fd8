//! Package databases as the targets write them, read by doctor with the
//! build host's rpm (Debian's 4.18): a sqlite database (EL9, AL2023) and a
//! BerkeleyDB written by EL7's own rpm 4.11 in the real CentOS 7 userspace.
//! A kernel no package owns (copied by hand) never hides the owner of the
//! others, rpm's warnings about an old database are not errors, and doctor
//! leaves the image exactly as it was: every path, size, digest and mtime,
//! directories included.
//!
//! The database's answer about the kernels' owners is kept by the commands
//! that act and used by doctor while the database is unchanged (no package
//! tool runs then); a transaction, a kernel file gone, or a cache as new as
//! the database make it ask again.
//!
//! Tier: real tools (rpm, dpkg, dnf, apt, strace) in scratch roots; the EL7
//! case needs `../shared` and says it is skipped when that is absent.
#![cfg(feature = "real-tools")]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use connector_tests::el7::El7;
use connector_tests::{require_tool, rpm_initdb, shared_dir, Fixture, Kernel, Layout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

use crate::common;

/// Every entry under `dir`: kind, mode, size, mtime (ns) and, for files,
/// the content; directories' mtimes say whether anything was created or
/// deleted in them.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let content = if m.is_file() {
            std::fs::read(&p).unwrap()
        } else {
            Vec::new()
        };
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(
            p.strip_prefix(dir).unwrap().to_path_buf(),
            (m.mode(), m.size(), m.mtime(), m.mtime_nsec(), content),
        );
    }
    out
}

fn assert_same_tree(
    before: &BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)>,
    after: &BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)>,
) {
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let changed: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        added.is_empty() && removed.is_empty() && changed.is_empty(),
        "the root changed: added {added:?}, removed {removed:?}, changed {changed:?}"
    );
}

fn doctor(root: &Path) -> Value {
    let (out, v) = connector_tests::run_json(
        Command::new(BIN)
            .args(["doctor", "--json", "--root"])
            .arg(root),
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "doctor: {v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

fn kernel<'a>(v: &'a Value, release: &str) -> &'a Value {
    v["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["release"] == release)
        .unwrap_or_else(|| panic!("{release} in {v}"))
}

/// The owned kernel is named from the database, the hand-copied one from
/// the release rules, and doctor says nothing failed.
fn assert_owners(v: &Value, owned: &str, owner: &str, unowned: &str) {
    let o = &kernel(v, owned)["headers"];
    assert_eq!(o["decided_by"], "package-database", "{v}");
    assert_eq!(o["owner"]["package"], owner, "{v}");
    let u = &kernel(v, unowned)["headers"];
    assert_eq!(u["decided_by"], "release-rules", "{v}");
    assert!(u["owner"].is_null(), "{v}");
    let notes = v["notes"].to_string();
    assert!(!notes.contains("rpm"), "no database note: {notes}");
}

#[test]
fn sqlite_database_doctor_keeps_owners_and_changes_nothing() {
    require_tool("rpm");
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    rpm_initdb(f.path());
    let owned = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    owned.kernel_package().install(f.path());
    // Copied by hand: its files, no package.
    let unowned = Kernel::new("5.14.0-284.11.1.el9_2.x86_64", Layout::El8);
    f.kernel(&unowned);
    let db = f.host("/var/lib/rpm");
    assert!(db.join("rpmdb.sqlite").is_file());
    // An image as built: the write-ahead log checkpointed and gone.
    for extra in ["rpmdb.sqlite-shm", "rpmdb.sqlite-wal"] {
        let _ = std::fs::remove_file(db.join(extra));
    }
    let before = tree(f.path());
    let v = doctor(f.path());
    assert_owners(&v, &owned.release, "kernel-core", &unowned.release);
    // A second look (the install re-run's queries are the same) as well.
    doctor(f.path());
    assert_same_tree(&before, &tree(f.path()));
}

#[test]
fn el7_berkeley_database_written_by_rpm_4_11_is_read() {
    let Some(shared) = shared_dir("EL7 rpm database") else {
        return;
    };
    require_tool("rpm");
    let mut el7 = El7::new(&shared);
    // Oracle Linux 7 with UEK 6: the eBPF path, so its headers are asked for.
    el7.fixture.os_release("ol-7.9");
    let owned = Kernel::new("5.4.17-2136.329.3.1.el7uek.x86_64", Layout::El7);
    let dir = tempfile::tempdir().unwrap();
    let pkg = owned.kernel_package().build(dir.path());
    let inside = el7.copy_in(&pkg);
    el7.ok(&["rpm", "-ivh", "--nodeps", &inside]);
    el7.ok(&["rm", "-f", &inside]);
    let name = owned.kernel_package().name.clone();
    let version = el7.ok(&["rpm", "-q", &name]);
    assert_eq!(version.trim(), format!("{name}-{}", owned.release));
    let unowned = Kernel::new("5.4.17-2102.200.13.el7uek.x86_64", Layout::El7);
    el7.fixture.kernel(&unowned);
    el7.unmount();
    assert!(el7.fixture.host("/var/lib/rpm/Packages").is_file());
    let before = tree(el7.path());
    let v = doctor(el7.path());
    assert_eq!(v["os"]["id"], "ol", "{v}");
    assert_owners(&v, &owned.release, &name, &unowned.release);
    assert_same_tree(&before, &tree(el7.path()));
}

/// The processes doctor spawns on `root`.
fn doctor_processes(root: &Path) -> usize {
    let (n, code) = connector_tests::processes_spawned(
        Command::new(BIN)
            .args(["doctor", "--json", "--root"])
            .arg(root),
    );
    assert!(matches!(code, Some(0) | Some(1)), "doctor: {code:?}");
    n
}

/// `headers` on `f` twice (the first installs the headers, a transaction,
/// and keeps the database's answer after it; the second has nothing to do
/// and writes nothing), then what doctor does with the kept answer.
/// `query` is an administrator's read-only query, `transaction` installs
/// another package into the root's database.
fn assert_the_answer_is_kept(
    f: &Fixture,
    release: &str,
    owner: &str,
    query: &dyn Fn(),
    transaction: &dyn Fn(),
) {
    require_tool("strace");
    let cache = f.host("/var/lib/connector/database.cache");
    let headers = || {
        let out = Command::new(BIN)
            .args(["headers", "-v", "--root"])
            .arg(f.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    // Its transaction changed the database: asked again, and kept.
    headers();
    assert!(cache.is_file(), "the answer after the transaction is kept");
    let first = connector_tests::stamps(f.path());
    // Nothing to do: the kept answer is used, and not written again.
    let said = headers();
    assert_eq!(
        connector_tests::changed(&first, &connector_tests::stamps(f.path())),
        Vec::<PathBuf>::new(),
        "{said}"
    );

    // Doctor uses it and runs no package tool; it writes nothing.
    let kept = connector_tests::stamps(f.path());
    let out = Command::new(BIN)
        .args(["doctor", "-v", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("running: "), "{said}");
    assert_eq!(doctor_processes(f.path()), 0);
    let v = doctor(f.path());
    assert_eq!(
        kernel(&v, release)["headers"]["owner"]["package"],
        owner,
        "{v}"
    );
    assert_eq!(
        connector_tests::changed(&kept, &connector_tests::stamps(f.path())),
        Vec::<PathBuf>::new(),
        "doctor wrote something"
    );

    // A planted answer is believed: the proof that nothing was asked.
    let text = std::fs::read_to_string(&cache).unwrap();
    let written = std::fs::metadata(&cache).unwrap().modified().unwrap();
    let plant = |mtime: std::time::SystemTime| {
        let planted = text.replace(
            &format!("\"package\":\"{owner}\""),
            "\"package\":\"planted\"",
        );
        assert_ne!(planted, text, "{text}");
        std::fs::write(&cache, planted).unwrap();
        connector_tests::set_mtime(&cache, mtime);
    };
    plant(written);
    let v = doctor(f.path());
    assert_eq!(
        kernel(&v, release)["headers"]["owner"]["package"],
        "planted",
        "{v}"
    );
    // An administrator's query (rpm truncates sqlite's empty write-ahead
    // log as it closes) changes nothing in the database: still believed.
    query();
    let v = doctor(f.path());
    assert_eq!(
        kernel(&v, release)["headers"]["owner"]["package"],
        "planted",
        "{v}"
    );
    // As new as the database: not trusted.
    plant(std::time::SystemTime::UNIX_EPOCH);
    let v = doctor(f.path());
    assert_eq!(
        kernel(&v, release)["headers"]["owner"]["package"],
        owner,
        "{v}"
    );
    // A kernel's image gone: another question.
    plant(written);
    let image = ["/lib/modules", "/boot"]
        .iter()
        .map(|d| {
            if *d == "/boot" {
                f.host(&format!("/boot/vmlinuz-{release}"))
            } else {
                f.host(&format!("/lib/modules/{release}/vmlinuz"))
            }
        })
        .find(|p| p.exists())
        .expect("the kernel's image");
    let aside = image.with_extension("aside");
    std::fs::rename(&image, &aside).unwrap();
    let v = doctor(f.path());
    assert_ne!(
        kernel(&v, release)["headers"]["owner"]["package"],
        "planted",
        "{v}"
    );
    std::fs::rename(&aside, &image).unwrap();
    // Any transaction: asked again.
    plant(written);
    transaction();
    assert!(doctor_processes(f.path()) >= 1);
    let v = doctor(f.path());
    assert_eq!(
        kernel(&v, release)["headers"]["owner"]["package"],
        owner,
        "{v}"
    );
}

#[test]
fn the_rpm_database_answer_is_kept_while_the_database_is_unchanged() {
    let (f, _repo) = common::el_root(Fixture::new(), &[common::EL_K1], &[common::EL_K1]);
    let other = || {
        connector_tests::Pkg::new("other", "1", "1", "x86_64", vec![]).install(f.path());
    };
    let query = || {
        let out = Command::new("rpm")
            .arg("--root")
            .arg(f.path())
            .args(["--dbpath", "/var/lib/rpm", "-q", "kernel-core"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    assert_the_answer_is_kept(&f, common::EL_K1, "kernel-core", &query, &other);
}

#[test]
fn the_dpkg_database_answer_is_kept_while_the_database_is_unchanged() {
    let (f, _repo) = common::debian_root(Fixture::new(), &[common::DEB_K1]);
    let other = || {
        connector_tests::Pkg::new("other", "1", "", "amd64", vec![]).install(f.path());
    };
    let owner = format!("linux-image-{}", common::DEB_K1);
    let query = || {
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", f.host("/var/lib/dpkg").display()))
            .args(["-W", &owner])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    assert_the_answer_is_kept(&f, common::DEB_K1, &owner, &query, &other);
}
