//! doctor against roots whose package database was written by the real
//! `rpm --root` and `dpkg --root`, from real packages of the header trees.
//!
//! Tier: real tools in scratch roots. The tools are required (scripts/setup
//! --test installs them); a missing tool fails the test.
#![cfg(feature = "real-tools")]

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
    assert_eq!(
        kr.headers.database,
        connector_installer::doctor::DatabaseAnswer::Answered
    );
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
    assert_eq!(
        r.kernels[0].headers.database,
        connector_installer::doctor::DatabaseAnswer::Unavailable
    );
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

/// A root whose database holds the kernel under the package name `owner`
/// (the rpm crate builds it, the real rpm --root installs it).
fn owned_rpm_root(
    release: &str,
    os: &str,
    owner: &str,
    ver: &str,
    rel: &str,
    arch: &str,
) -> Fixture {
    require_tool("rpm");
    let f = Fixture::new();
    f.os_release(os);
    rpm_initdb(f.path());
    let mut p = Kernel::new(release, Layout::El8).kernel_package();
    p.name = owner.into();
    p.version = ver.into();
    p.release = rel.into();
    p.arch = arch.into();
    p.install(f.path());
    f
}

#[test]
fn the_package_that_owns_the_kernel_names_its_headers() {
    use connector_installer::doctor::{DecidedBy, NoteKind};
    // (release, os, owner, version, release, arch, header package, the
    // release rules agree)
    let cases = [
        (
            "6.12.37-61.105.amzn2023.x86_64",
            "amzn-2023",
            "kernel6.12",
            "6.12.37",
            "61.105.amzn2023",
            "x86_64",
            "kernel6.12-devel-6.12.37-61.105.amzn2023.x86_64",
            true,
        ),
        (
            "6.18.2-7.20.amzn2023.aarch64",
            "amzn-2023",
            "kernel6.18-core",
            "6.18.2",
            "7.20.amzn2023",
            "aarch64",
            "kernel6.18-devel-6.18.2-7.20.amzn2023.aarch64",
            true,
        ),
        (
            "6.1.72-96.166.amzn2023.x86_64",
            "amzn-2023",
            "kernel",
            "6.1.72",
            "96.166.amzn2023",
            "x86_64",
            "kernel-devel-6.1.72-96.166.amzn2023.x86_64",
            true,
        ),
        (
            "5.15.0-200.131.27.el8uek.x86_64",
            "ol-8.9",
            "kernel-uek-core",
            "5.15.0",
            "200.131.27.el8uek",
            "x86_64",
            "kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64",
            true,
        ),
        (
            "5.14.0-362.8.1.el9_3.x86_64+rt",
            "rhel-9.3",
            "kernel-rt-core",
            "5.14.0",
            "362.8.1.el9_3",
            "x86_64",
            "kernel-rt-devel-5.14.0-362.8.1.el9_3.x86_64",
            true,
        ),
        (
            "5.14.0-362.8.1.el9_3.x86_64+debug",
            "rhel-9.3",
            "kernel-debug-core",
            "5.14.0",
            "362.8.1.el9_3",
            "x86_64",
            "kernel-debug-devel-5.14.0-362.8.1.el9_3.x86_64",
            true,
        ),
        // ELRepo's mainline kernel on EL9: the release looks like RHEL's,
        // the package says kernel-ml.
        (
            "6.9.3-1.el9.elrepo.x86_64",
            "rocky-8.9",
            "kernel-ml-core",
            "6.9.3",
            "1.el9.elrepo",
            "x86_64",
            "kernel-ml-devel-6.9.3-1.el9.elrepo.x86_64",
            false,
        ),
    ];
    for (k, os, owner, ver, rel, arch, want, agree) in cases {
        let f = owned_rpm_root(k, os, owner, ver, rel, arch);
        let r = diagnose(&f);
        let kr = r
            .kernels
            .iter()
            .find(|x| x.release == k)
            .unwrap_or_else(|| panic!("{k}"));
        assert_eq!(kr.headers.package.as_deref(), Some(want), "{k}");
        assert_eq!(
            kr.headers.decided_by,
            Some(DecidedBy::PackageDatabase),
            "{k}"
        );
        let o = kr.headers.owner.as_ref().expect("owner");
        assert_eq!(o.package, owner, "{k}");
        assert_eq!(
            o.version.as_deref(),
            Some(format!("{ver}-{rel}.{arch}").as_str())
        );
        assert_eq!(
            kr.headers.installed,
            Some(false),
            "{k}: asked by its derived name"
        );
        let disagreed = r.notes.iter().any(|n| n.kind == NoteKind::HeaderPackage);
        assert_eq!(disagreed, !agree, "{k}: {:?}", r.notes);
        assert!(
            r.faults.iter().any(|x| x.fix.ends_with(want)),
            "{k}: the fix names {want}: {:?}",
            r.faults
        );
        // The same through `doctor --json`, as automation reads it.
        let (_, v) = connector_tests::run_json(
            std::process::Command::new(env!("CARGO_BIN_EXE_connector-installer"))
                .args(["doctor", "--json", "--root"])
                .arg(f.path()),
        );
        let j = &v["kernels"][0];
        assert_eq!(j["headers"]["package"], want, "{v}");
        assert_eq!(j["headers"]["decided_by"], "package-database", "{v}");
        assert_eq!(j["headers"]["owner"]["package"], owner, "{v}");
        assert_eq!(j["btf"]["state"], "unknown", "{v}");
    }
}

#[test]
fn without_a_database_the_release_rules_name_al2023_series() {
    use connector_installer::doctor::DecidedBy;
    let f = Fixture::new();
    f.os_release("amzn-2023");
    let k = Kernel::new("6.12.37-61.105.amzn2023.aarch64", Layout::El8);
    f.kernel(&k);
    let r = diagnose(&f);
    let kr = &r.kernels[0];
    assert_eq!(
        kr.headers.package.as_deref(),
        Some("kernel6.12-devel-6.12.37-61.105.amzn2023.aarch64")
    );
    assert_eq!(kr.headers.decided_by, Some(DecidedBy::ReleaseRules));
    assert_eq!(
        kr.headers.database,
        connector_installer::doctor::DatabaseAnswer::NoDatabase
    );
    assert!(kr.headers.owner.is_none());
}

#[test]
fn ubuntu_linux_image_unsigned_is_asked_of_dpkg() {
    use connector_installer::doctor::DecidedBy;
    require_tool("dpkg");
    require_tool("dpkg-deb");
    let f = Fixture::new();
    f.os_release("ubuntu-22.04");
    dpkg_initdb(f.path());
    let k = Kernel::new("6.8.0-1012-aws", Layout::Ubuntu);
    let mut image = k.kernel_package();
    image.name = format!("linux-image-unsigned-{}", k.release);
    image.install(f.path());
    let r = diagnose(&f);
    let kr = &r.kernels[0];
    assert_eq!(
        kr.headers.package.as_deref(),
        Some("linux-headers-6.8.0-1012-aws")
    );
    assert_eq!(kr.headers.decided_by, Some(DecidedBy::PackageDatabase));
    assert_eq!(
        kr.headers.owner.as_ref().unwrap().package,
        "linux-image-unsigned-6.8.0-1012-aws"
    );
    assert_eq!(kr.headers.installed, Some(false));
}

#[test]
fn btf_from_the_kernel_config() {
    use connector_installer::doctor::{BtfState, NoteKind};
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let yes = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    let no = Kernel::new("5.14.0-284.30.1.el9_2.x86_64", Layout::El8);
    let unknown = Kernel::new("5.14.0-70.13.1.el9_0.x86_64", Layout::El8);
    for k in [&yes, &no, &unknown] {
        f.kernel(k).headers(k);
    }
    f.file(
        &format!("/boot/config-{}", yes.release),
        "CONFIG_BPF=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\n",
    );
    f.file(
        &format!("/lib/modules/{}/config", no.release),
        "CONFIG_BPF=y\n# CONFIG_DEBUG_INFO_BTF is not set\n",
    );
    // A FIFO where a config would be is never opened.
    let fifo = f.host(&format!("/boot/config-{}", unknown.release));
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let r = diagnose(&f);
    let state = |k: &Kernel| {
        &r.kernels
            .iter()
            .find(|x| x.release == k.release)
            .unwrap()
            .btf
    };
    assert_eq!(state(&yes).state, BtfState::Yes);
    assert_eq!(
        state(&yes).source.as_deref(),
        Some(format!("/boot/config-{}", yes.release).as_str())
    );
    assert_eq!(state(&no).state, BtfState::No);
    assert_eq!(
        state(&no).source.as_deref(),
        Some(format!("/lib/modules/{}/config", no.release).as_str())
    );
    assert_eq!(state(&unknown).state, BtfState::Unknown);
    let notes: Vec<_> = r.notes.iter().filter(|n| n.kind == NoteKind::Btf).collect();
    assert_eq!(notes.len(), 1, "{:?}", r.notes);
    assert!(notes[0].message.contains(&yes.release));
    assert!(!notes[0].message.contains(&no.release));
    assert!(notes[0].message.contains("CO-RE"));
    assert!(r.faults.is_empty(), "BTF changes no fault: {:?}", r.faults);
}
