//! doctor against roots whose package database was written by the real
//! `rpm --root` and `dpkg --root`, from real packages of the header trees.
//!
//! Tier: real tools in scratch roots. The tools are required (scripts/setup
//! --test installs them); a missing tool fails the test.

use connector_host::fault::FaultCause;
use connector_installer::doctor::{self, DoctorOptions, Report};
use connector_tests::{dpkg_initdb, require_tool, rpm_initdb, Fixture, Kernel, Layout};

fn diagnose(f: &Fixture) -> Report {
    doctor::diagnose(&DoctorOptions {
        root: f.root(),
        kernel: None,
        running: None,
    })
    .expect("diagnosis runs")
}

/// The root's files, less the sqlite shared-memory index (`rpmdb.sqlite-shm`)
/// that every reader of a WAL database rewrites: it is sqlite's scratch
/// state, not data, and `rpm -q` by an administrator touches it the same way.
fn snapshot_without_sqlite_shm(f: &Fixture) -> Vec<(std::path::PathBuf, String)> {
    let mut s = f.snapshot();
    s.retain(|(p, _)| !p.ends_with("rpmdb.sqlite-shm"));
    s
}

/// An EL8-style root with the kernel and (optionally) kernel-devel
/// installed by the real rpm.
fn rpm_root(release: &str, os: &str, with_devel: bool) -> (Fixture, Kernel) {
    require_tool("rpm");
    let f = Fixture::new();
    f.os_release(os);
    rpm_initdb(f.path());
    let k = Kernel::new(release, Layout::El8);
    k.kernel_package().install(f.path());
    if with_devel {
        for p in k.header_packages() {
            p.install(f.path());
        }
    }
    (f, k)
}

#[test]
fn rpm_database_confirms_installed_headers() {
    let (f, k) = rpm_root("5.15.0-200.131.27.el8uek.x86_64", "ol-8.9", true);
    assert!(
        f.host("/var/lib/rpm/rpmdb.sqlite").is_file(),
        "rpm wrote its database into the root"
    );
    let before = snapshot_without_sqlite_shm(&f);
    let r = diagnose(&f);
    assert_eq!(
        snapshot_without_sqlite_shm(&f),
        before,
        "doctor changed the root"
    );
    let kr = &r.kernels[0];
    assert_eq!(kr.release, k.release);
    assert_eq!(
        kr.headers.package.as_deref(),
        Some("kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64")
    );
    assert!(kr.headers.present);
    assert_eq!(kr.headers.installed, Some(true));
    assert_eq!(kr.headers.database, "answered");
    assert!(r.faults.is_empty());
    assert!(r.healthy);
}

#[test]
fn rpm_database_says_not_installed() {
    let (f, _k) = rpm_root("4.18.0-513.5.1.el8_9.x86_64", "rhel-8.9", false);
    let r = diagnose(&f);
    let kr = &r.kernels[0];
    assert!(!kr.headers.present);
    assert_eq!(kr.headers.installed, Some(false));
    assert_eq!(r.faults.len(), 1);
    assert_eq!(r.faults[0].cause, FaultCause::HeadersMissing);
    assert!(
        r.faults[0]
            .detail
            .starts_with("kernel-devel-4.18.0-513.5.1.el8_9.x86_64 is not installed"),
        "{}",
        r.faults[0].detail
    );
}

#[test]
fn installed_package_with_deleted_tree_is_broken_and_reinstalled() {
    let (f, k) = rpm_root("4.18.0-513.5.1.el8_9.x86_64", "rhel-8.9", true);
    f.remove(&format!("/usr/src/kernels/{}/include", k.release));
    let r = diagnose(&f);
    let kr = &r.kernels[0];
    assert!(!kr.headers.present);
    assert_eq!(
        kr.headers.installed,
        Some(true),
        "the database still lists it"
    );
    assert_eq!(r.faults.len(), 1);
    assert_eq!(r.faults[0].cause, FaultCause::HeadersBroken);
    let want = format!(
        "dnf --installroot={} reinstall -y kernel-devel-4.18.0-513.5.1.el8_9.x86_64",
        f.root().path().display()
    );
    assert_eq!(r.faults[0].fix, want);
}

#[test]
fn unreadable_rpm_database_is_a_note_not_a_crash() {
    require_tool("rpm");
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let k = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    f.file("/var/lib/rpm/rpmdb.sqlite", "this is not a database");
    let r = diagnose(&f);
    assert_eq!(r.kernels[0].headers.installed, None);
    assert_eq!(r.kernels[0].headers.database, "unavailable");
    assert!(r
        .notes
        .iter()
        .any(|n| n.message.contains("package database could not be asked")));
    assert!(r.kernels[0].headers.present, "the files still decide");
    assert!(r.faults.is_empty());
}

#[test]
fn dpkg_database_confirms_installed_headers() {
    require_tool("dpkg");
    require_tool("dpkg-deb");
    let f = Fixture::new();
    f.os_release("debian-12");
    dpkg_initdb(f.path());
    let good = Kernel::new("6.1.0-18-amd64", Layout::Debian);
    let bare = Kernel::new("6.1.0-17-amd64", Layout::Debian);
    for k in [&good, &bare] {
        k.kernel_package().install(f.path());
    }
    let pkgs = good.header_packages();
    assert_eq!(pkgs.len(), 3, "flavour, common and kbuild packages");
    for p in &pkgs {
        p.install(f.path());
    }
    let before = f.snapshot();
    let r = diagnose(&f);
    assert_eq!(f.snapshot(), before, "doctor changed the root");
    let g = r
        .kernels
        .iter()
        .find(|x| x.release == good.release)
        .unwrap();
    assert!(g.headers.present, "{:?}", g.headers.rejected);
    assert_eq!(g.headers.installed, Some(true));
    let b = r
        .kernels
        .iter()
        .find(|x| x.release == bare.release)
        .unwrap();
    assert!(!b.headers.present);
    assert_eq!(b.headers.installed, Some(false));
    assert_eq!(r.faults.len(), 1);
    assert_eq!(
        r.faults[0].fix,
        format!(
            "chroot {} apt-get install -y linux-headers-6.1.0-17-amd64",
            f.root().path().display()
        )
    );
}
