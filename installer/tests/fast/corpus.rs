//! The fixture corpus: every distribution and version of the seed's support
//! matrix (plus RHEL/OL 9, Ubuntu 22.04/24.04, Debian 11/12), with real
//! os-release files, realistic kernel releases and the real on-disk layout of
//! the header packages. Each case states what the support matrix says the
//! diagnosis must be.
//!
//! Tier: temp-dir system roots, no external tools (see real_tools.rs).

use connector_host::fault::FaultCause;
use connector_host::kernel::Probe;
use connector_installer::doctor::{self, DoctorOptions, NoteKind, Report};
use connector_installer::exit;
use connector_tests::{Fixture, Kernel, Layout};

/// One kernel in a case: release, layout, whether its headers are laid
/// down, and what the diagnosis must say.
struct K {
    release: &'static str,
    layout: Layout,
    with_headers: bool,
    probe: Probe,
    flavor: &'static str,
    package: Option<&'static str>,
}

const fn k(
    release: &'static str,
    layout: Layout,
    with_headers: bool,
    probe: Probe,
    flavor: &'static str,
    package: Option<&'static str>,
) -> K {
    K {
        release,
        layout,
        with_headers,
        probe,
        flavor,
        package,
    }
}

struct Case {
    name: &'static str,
    os_release: &'static str,
    kernels: Vec<K>,
    /// The fix command of a fault, when one is expected (`{root}` stands for
    /// the fixture's root path).
    fix: Option<&'static str>,
}

use Layout::*;
use Probe::*;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "RHEL 8, headers installed",
            os_release: "rhel-8.9",
            kernels: vec![k("4.18.0-513.5.1.el8_9.x86_64", El8, true, Ebpf, "rhck", Some("kernel-devel-4.18.0-513.5.1.el8_9.x86_64"))],
            fix: None,
        },
        Case {
            name: "CentOS 8, headers missing",
            os_release: "centos-8",
            kernels: vec![k("4.18.0-348.7.1.el8_5.x86_64", El8, false, Ebpf, "rhck", Some("kernel-devel-4.18.0-348.7.1.el8_5.x86_64"))],
            fix: Some("dnf --installroot={root} install -y kernel-devel-4.18.0-348.7.1.el8_5.x86_64"),
        },
        Case {
            name: "Rocky 8",
            os_release: "rocky-8.9",
            kernels: vec![k("4.18.0-513.9.1.el8_9.x86_64", El8, true, Ebpf, "rhck", Some("kernel-devel-4.18.0-513.9.1.el8_9.x86_64"))],
            fix: None,
        },
        Case {
            name: "AlmaLinux 8, headers missing",
            os_release: "almalinux-8.9",
            kernels: vec![k("4.18.0-513.11.1.el8_9.x86_64", El8, false, Ebpf, "rhck", Some("kernel-devel-4.18.0-513.11.1.el8_9.x86_64"))],
            fix: Some("dnf --installroot={root} install -y kernel-devel-4.18.0-513.11.1.el8_9.x86_64"),
        },
        Case {
            name: "Oracle Linux 8 RHCK",
            os_release: "ol-8.9",
            kernels: vec![k("4.18.0-513.5.1.0.1.el8_9.x86_64", El8, false, Ebpf, "rhck", Some("kernel-devel-4.18.0-513.5.1.0.1.el8_9.x86_64"))],
            fix: Some("dnf --installroot={root} install -y kernel-devel-4.18.0-513.5.1.0.1.el8_9.x86_64"),
        },
        Case {
            name: "Oracle Linux 7 UEK 6 (yum), headers missing",
            os_release: "ol-7.9",
            kernels: vec![k("5.4.17-2136.324.5.3.el7uek.x86_64", El7, false, Ebpf, "uek6", Some("kernel-uek-devel-5.4.17-2136.324.5.3.el7uek.x86_64"))],
            fix: Some("yum --installroot={root} install -y kernel-uek-devel-5.4.17-2136.324.5.3.el7uek.x86_64"),
        },
        Case {
            name: "Oracle Linux 8 UEK 6",
            os_release: "ol-8.9",
            kernels: vec![k("5.4.17-2136.326.6.el8uek.x86_64", El8, true, Ebpf, "uek6", Some("kernel-uek-devel-5.4.17-2136.326.6.el8uek.x86_64"))],
            fix: None,
        },
        Case {
            name: "Oracle Linux 8 UEK 7",
            os_release: "ol-8.9",
            kernels: vec![k("5.15.0-200.131.27.el8uek.x86_64", El8, false, Ebpf, "uek7", Some("kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64"))],
            fix: Some("dnf --installroot={root} install -y kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64"),
        },
        Case {
            name: "Oracle Linux 9: UEK 7 with headers, RHCK without",
            os_release: "ol-9.3",
            kernels: vec![
                k("5.15.0-200.131.27.el9uek.x86_64", El8, true, Ebpf, "uek7", Some("kernel-uek-devel-5.15.0-200.131.27.el9uek.x86_64")),
                k("5.14.0-362.8.1.el9_3.x86_64", El8, false, Ebpf, "rhck", Some("kernel-devel-5.14.0-362.8.1.el9_3.x86_64")),
            ],
            fix: Some("dnf --installroot={root} install -y kernel-devel-5.14.0-362.8.1.el9_3.x86_64"),
        },
        Case {
            name: "Oracle Linux 7: UEK 5 and RHCK take the module path",
            os_release: "ol-7.9",
            kernels: vec![
                k("4.14.35-2047.530.4.1.el7uek.x86_64", El7, false, Kmod, "uek5", None),
                k("3.10.0-1160.105.1.0.1.el7.x86_64", El7, false, Kmod, "rhck", None),
            ],
            fix: None,
        },
        Case {
            name: "Amazon Linux 2: 4.14 module path, 5.10 eBPF",
            os_release: "amzn-2",
            kernels: vec![
                k("4.14.336-257.562.amzn2.x86_64", El7, false, Kmod, "amazon", None),
                k("5.10.205-195.807.amzn2.x86_64", El7, false, Ebpf, "amazon", Some("kernel-devel-5.10.205-195.807.amzn2.x86_64")),
            ],
            fix: Some("yum --installroot={root} install -y kernel-devel-5.10.205-195.807.amzn2.x86_64"),
        },
        Case {
            name: "Amazon Linux 2 with 5.4 and headers",
            os_release: "amzn-2",
            kernels: vec![k("5.4.261-174.360.amzn2.x86_64", El7, true, Ebpf, "amazon", Some("kernel-devel-5.4.261-174.360.amzn2.x86_64"))],
            fix: None,
        },
        Case {
            name: "Amazon Linux 2023",
            os_release: "amzn-2023",
            kernels: vec![k("6.1.72-96.166.amzn2023.x86_64", El8, false, Ebpf, "amazon", Some("kernel-devel-6.1.72-96.166.amzn2023.x86_64"))],
            fix: Some("dnf --installroot={root} install -y kernel-devel-6.1.72-96.166.amzn2023.x86_64"),
        },
        Case {
            name: "RHEL 7: module path",
            os_release: "rhel-7.9",
            kernels: vec![k("3.10.0-1160.105.1.el7.x86_64", El7, false, Kmod, "rhck", None)],
            fix: None,
        },
        Case {
            name: "CentOS 7: module path, even with a debug kernel",
            os_release: "centos-7",
            kernels: vec![
                k("3.10.0-1160.el7.x86_64", El7, false, Kmod, "rhck", None),
                k("3.10.0-1160.el7.x86_64.debug", El7, false, Kmod, "rhck", None),
            ],
            fix: None,
        },
        Case {
            name: "RHEL 9: +debug, +rt and aarch64 kernels",
            os_release: "rhel-9.3",
            kernels: vec![
                k("5.14.0-362.8.1.el9_3.x86_64", El8, true, Ebpf, "rhck", Some("kernel-devel-5.14.0-362.8.1.el9_3.x86_64")),
                k("5.14.0-362.8.1.el9_3.x86_64+debug", El8, false, Ebpf, "rhck", Some("kernel-debug-devel-5.14.0-362.8.1.el9_3.x86_64")),
                k("5.14.0-362.8.1.el9_3.x86_64+rt", El8, true, Ebpf, "rhck", Some("kernel-rt-devel-5.14.0-362.8.1.el9_3.x86_64")),
                k("5.14.0-284.11.1.el9_2.aarch64", El8, true, Ebpf, "rhck", Some("kernel-devel-5.14.0-284.11.1.el9_2.aarch64")),
            ],
            fix: Some("dnf --installroot={root} install -y kernel-debug-devel-5.14.0-362.8.1.el9_3.x86_64"),
        },
        Case {
            name: "RHEL 8 real-time kernel",
            os_release: "rhel-8.9",
            kernels: vec![k("4.18.0-513.5.1.rt7.307.el8_9.x86_64", El8, false, Ebpf, "rhck", Some("kernel-rt-devel-4.18.0-513.5.1.rt7.307.el8_9.x86_64"))],
            fix: Some("dnf --installroot={root} install -y kernel-rt-devel-4.18.0-513.5.1.rt7.307.el8_9.x86_64"),
        },
        Case {
            name: "Debian 10",
            os_release: "debian-10",
            kernels: vec![k("4.19.0-26-amd64", Debian, true, Ebpf, "debian-amd64", Some("linux-headers-4.19.0-26-amd64"))],
            fix: None,
        },
        Case {
            name: "Debian 11 cloud kernel, headers missing",
            os_release: "debian-11",
            kernels: vec![k("5.10.0-27-cloud-amd64", Debian, false, Ebpf, "debian-cloud-amd64", Some("linux-headers-5.10.0-27-cloud-amd64"))],
            fix: Some("chroot {root} apt-get install -y linux-headers-5.10.0-27-cloud-amd64"),
        },
        Case {
            name: "Debian 12: two kernels, one without headers",
            os_release: "debian-12",
            kernels: vec![
                k("6.1.0-18-amd64", Debian, true, Ebpf, "debian-amd64", Some("linux-headers-6.1.0-18-amd64")),
                k("6.1.0-17-amd64", Debian, false, Ebpf, "debian-amd64", Some("linux-headers-6.1.0-17-amd64")),
            ],
            fix: Some("chroot {root} apt-get install -y linux-headers-6.1.0-17-amd64"),
        },
        Case {
            name: "Debian 12 arm64 and rt",
            os_release: "debian-12",
            kernels: vec![
                k("6.1.0-18-arm64", Debian, true, Ebpf, "debian-arm64", Some("linux-headers-6.1.0-18-arm64")),
                k("6.1.0-18-rt-amd64", Debian, true, Ebpf, "debian-rt-amd64", Some("linux-headers-6.1.0-18-rt-amd64")),
            ],
            fix: None,
        },
        Case {
            name: "Ubuntu 18.04",
            os_release: "ubuntu-18.04",
            kernels: vec![k("4.15.0-213-generic", Ubuntu, true, Ebpf, "ubuntu-generic", Some("linux-headers-4.15.0-213-generic"))],
            fix: None,
        },
        Case {
            name: "Ubuntu 20.04, headers missing",
            os_release: "ubuntu-20.04",
            kernels: vec![k("5.4.0-169-generic", Ubuntu, false, Ebpf, "ubuntu-generic", Some("linux-headers-5.4.0-169-generic"))],
            fix: Some("chroot {root} apt-get install -y linux-headers-5.4.0-169-generic"),
        },
        Case {
            name: "Ubuntu 22.04 aws and azure",
            os_release: "ubuntu-22.04",
            kernels: vec![
                k("6.5.0-1014-aws", Ubuntu, true, Ebpf, "ubuntu-aws", Some("linux-headers-6.5.0-1014-aws")),
                k("5.15.0-1052-azure", Ubuntu, false, Ebpf, "ubuntu-azure", Some("linux-headers-5.15.0-1052-azure")),
            ],
            fix: Some("chroot {root} apt-get install -y linux-headers-5.15.0-1052-azure"),
        },
        Case {
            name: "Ubuntu 24.04",
            os_release: "ubuntu-24.04",
            kernels: vec![k("6.8.0-31-generic", Ubuntu, true, Ebpf, "ubuntu-generic", Some("linux-headers-6.8.0-31-generic"))],
            fix: None,
        },
    ]
}

fn diagnose(f: &Fixture, running: Option<&str>, only: Option<&str>) -> Report {
    doctor::diagnose(&DoctorOptions {
        root: f.root(),
        kernel: only.map(String::from),
        running: running.map(String::from),
    })
    .expect("diagnosis runs")
}

#[test]
fn support_matrix_corpus() {
    let all = cases();
    assert!(all.len() >= 25, "the corpus covers the matrix");
    for case in &all {
        let f = Fixture::new();
        // Alternate the link style of /etc/os-release: both occur in the field.
        if case.name.len() % 2 == 0 {
            f.os_release(case.os_release);
        } else {
            f.os_release_absolute(case.os_release);
        }
        for kk in &case.kernels {
            let kernel = Kernel::new(kk.release, kk.layout);
            f.kernel(&kernel);
            if kk.with_headers {
                f.headers(&kernel);
            }
        }
        let r = diagnose(&f, None, None);
        let ctx = case.name;
        assert_eq!(r.kernels.len(), case.kernels.len(), "{ctx}: kernels found");
        assert!(!r.live, "{ctx}");
        assert_eq!(
            r.running_kernel, None,
            "{ctx}: an image has no running kernel"
        );
        let want_id = std::fs::read_to_string(
            connector_tests::fixtures_dir()
                .join("os-release")
                .join(case.os_release),
        )
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("ID="))
        .unwrap()
        .trim_matches('"')
        .to_string();
        assert_eq!(r.os.id, want_id, "{ctx}");
        for kk in &case.kernels {
            let got = r
                .kernels
                .iter()
                .find(|g| g.release == kk.release)
                .unwrap_or_else(|| panic!("{ctx}: {} not reported", kk.release));
            let kctx = format!("{ctx} / {}", kk.release);
            assert_eq!(got.probe, kk.probe, "{kctx}: probe");
            assert_eq!(got.flavor, kk.flavor, "{kctx}: flavor");
            assert_eq!(
                got.headers.package.as_deref(),
                kk.package,
                "{kctx}: package"
            );
            assert!(got.installed, "{kctx}: installed");
            assert!(!got.running, "{kctx}: running");
            let needs = kk.probe == Ebpf;
            assert_eq!(got.headers.required, needs, "{kctx}: required");
            assert_eq!(got.headers.present, kk.with_headers, "{kctx}: present");
            if kk.with_headers {
                assert!(
                    got.headers
                        .path
                        .as_deref()
                        .is_some_and(|p| p.contains(kk.release)),
                    "{kctx}: path {:?}",
                    got.headers.path
                );
            }
            // No package database in these roots: the report says so.
            if kk.package.is_some() {
                assert_eq!(got.headers.installed, None, "{kctx}");
                assert_eq!(
                    got.headers.database,
                    connector_installer::doctor::DatabaseAnswer::NoDatabase,
                    "{kctx}"
                );
            }
            let faults: Vec<_> = r.faults.iter().filter(|f| f.kernel == kk.release).collect();
            if needs && !kk.with_headers {
                assert_eq!(faults.len(), 1, "{kctx}: one fault 11");
                assert_eq!(faults[0].id, 11);
                assert_eq!(
                    faults[0].message,
                    "Required kernel-devel package is missing"
                );
                assert_eq!(faults[0].cause, FaultCause::HeadersMissing, "{kctx}");
                assert!(
                    faults[0].fix.ends_with(kk.package.unwrap()),
                    "{kctx}: {}",
                    faults[0].fix
                );
            } else {
                assert!(faults.is_empty(), "{kctx}: no fault, got {faults:?}");
            }
        }
        match case.fix {
            Some(fix) => {
                let fix = fix.replace("{root}", &f.root().path().display().to_string());
                assert!(
                    r.faults.iter().any(|f| f.fix == fix),
                    "{ctx}: want fix {fix:?}, got {:?}",
                    r.faults
                );
                assert_eq!(r.exit_code(), exit::NOT_DONE, "{ctx}");
                assert!(!r.healthy);
            }
            None => {
                assert!(r.faults.is_empty(), "{ctx}: {:?}", r.faults);
                assert_eq!(r.exit_code(), exit::OK, "{ctx}");
                assert!(r.healthy);
            }
        }
    }
}

#[test]
fn legacy_release_files_without_os_release() {
    for (file, path, id, kernel) in [
        (
            "rhel-6.10",
            "/etc/redhat-release",
            "rhel",
            "2.6.32-754.35.1.el6.x86_64",
        ),
        (
            "centos-6.10",
            "/etc/redhat-release",
            "centos",
            "2.6.32-754.el6.x86_64",
        ),
        (
            "amzn-2018.03",
            "/etc/system-release",
            "amzn",
            "4.14.336-180.566.amzn1.x86_64",
        ),
    ] {
        let f = Fixture::new();
        f.release_file(file, path);
        f.kernel(&Kernel::new(kernel, Layout::El7));
        let r = diagnose(&f, None, None);
        assert_eq!(r.os.id, id, "{file}");
        assert_eq!(r.os.source, path);
        assert_eq!(r.kernels[0].probe, Kmod, "{file}");
        assert!(r.faults.is_empty(), "{file}");
        assert_eq!(r.exit_code(), exit::OK);
    }
    // Oracle Linux 6 ships a redhat-release that says Red Hat: oracle-release wins.
    let f = Fixture::new();
    f.release_file("rhel-6.10", "/etc/redhat-release");
    f.release_file("ol-6.10", "/etc/oracle-release");
    f.kernel(&Kernel::new("4.1.12-124.48.6.el6uek.x86_64", Layout::El7));
    let r = diagnose(&f, None, None);
    assert_eq!(r.os.id, "ol");
    assert_eq!(r.kernels[0].flavor, "uek4");
    assert_eq!(r.kernels[0].probe, Kmod);
}

#[test]
fn os_release_falls_back_to_usr_lib() {
    let f = Fixture::new();
    f.file(
        "/usr/lib/os-release",
        &connector_tests::read_fixture("os-release/rocky-8.9"),
    );
    let r = diagnose(&f, None, None);
    assert_eq!(r.os.id, "rocky");
    assert_eq!(r.os.source, "/usr/lib/os-release");
}

#[test]
fn unknown_distro_is_reported_not_guessed() {
    let f = Fixture::new();
    f.os_release("fedora-39");
    f.kernel(&Kernel::new("6.5.6-300.fc39.x86_64", Layout::El8));
    let r = diagnose(&f, None, None);
    assert_eq!(r.os.distro, None);
    assert_eq!(r.os.id, "fedora");
    assert_eq!(r.kernels[0].probe, Probe::Unknown);
    assert_eq!(r.kernels[0].headers.package, None);
    assert!(r.faults.is_empty());
    assert!(r
        .notes
        .iter()
        .any(|n| n.kind == NoteKind::Unsupported && n.message.contains("fedora")));
    assert_eq!(r.exit_code(), exit::UNSUPPORTED);
    assert!(!r.healthy);
}

#[test]
fn no_os_release_in_root_never_reads_the_host() {
    // The host has /etc/os-release; the root has none, only a link to it.
    assert!(std::path::Path::new("/etc/os-release").exists());
    let f = Fixture::new();
    f.symlink("/etc/os-release", "/etc/os-release-host");
    f.symlink("/usr/lib/os-release", "../../../../../../etc/os-release");
    let err = doctor::diagnose(&DoctorOptions {
        root: f.root(),
        kernel: None,
        running: None,
    })
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("no os-release in"), "{msg}");
}

#[test]
fn usr_merged_root_with_absolute_links() {
    let f = Fixture::new();
    f.usr_merge();
    f.os_release_absolute("rhel-9.3");
    let kernel = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    f.kernel(&kernel).headers(&kernel);
    assert!(std::fs::symlink_metadata(f.host("/lib"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(f
        .host("/usr/lib/modules/5.14.0-362.8.1.el9_3.x86_64/vmlinuz")
        .is_file());
    let r = diagnose(&f, None, None);
    assert_eq!(r.kernels.len(), 1);
    assert!(r.kernels[0].headers.present);
    assert_eq!(
        r.kernels[0].headers.path.as_deref(),
        Some("/usr/src/kernels/5.14.0-362.8.1.el9_3.x86_64")
    );
}

#[test]
fn dangling_build_link_is_not_present() {
    let f = Fixture::new();
    f.os_release("rhel-8.9");
    let k = Kernel::new("4.18.0-513.5.1.el8_9.x86_64", Layout::El8);
    f.kernel(&k);
    let r = diagnose(&f, None, None);
    let h = &r.kernels[0].headers;
    assert!(!h.present);
    let rej = &h.rejected[0];
    assert_eq!(rej.path, "/lib/modules/4.18.0-513.5.1.el8_9.x86_64/build");
    assert!(
        matches!(&rej.problem, Some(connector_host::headers::TreeProblem::DanglingLink { target, .. }) if target == "/usr/src/kernels/4.18.0-513.5.1.el8_9.x86_64")
    );
    assert!(
        r.faults[0].detail.contains("does not exist"),
        "{}",
        r.faults[0].detail
    );
}

#[test]
fn build_link_to_a_tree_outside_the_root_is_not_followed() {
    // A complete, valid tree exists on the host, outside the root; the
    // root's build link names it by its host path. Inside the root that
    // path does not exist, so the headers are missing.
    let outside = Fixture::new();
    let k = Kernel::new("4.18.0-513.5.1.el8_9.x86_64", Layout::El8);
    outside.headers(&k);
    let host_tree = outside.host("/usr/src/kernels/4.18.0-513.5.1.el8_9.x86_64");
    assert!(host_tree.join("Makefile").is_file());

    let f = Fixture::new();
    f.os_release("rhel-8.9");
    f.kernel(&k);
    f.symlink(
        "/lib/modules/4.18.0-513.5.1.el8_9.x86_64/build",
        host_tree.to_str().unwrap(),
    );
    let r = diagnose(&f, None, None);
    assert!(!r.kernels[0].headers.present);
    assert_eq!(r.faults.len(), 1);

    // And a relative link climbing out of the root stays inside it.
    f.symlink(
        "/lib/modules/4.18.0-513.5.1.el8_9.x86_64/build",
        &format!("../../../../../../../../..{}", host_tree.display()),
    );
    let r = diagnose(&f, None, None);
    assert!(!r.kernels[0].headers.present);
}

#[test]
fn partial_tree_is_not_present() {
    let f = Fixture::new();
    f.os_release("ol-8.9");
    let k = Kernel::new("5.15.0-200.131.27.el8uek.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    f.remove("/usr/src/kernels/5.15.0-200.131.27.el8uek.x86_64/include/generated/autoconf.h");
    let r = diagnose(&f, None, None);
    let h = &r.kernels[0].headers;
    assert!(!h.present);
    assert!(
        matches!(&h.rejected[0].problem, Some(connector_host::headers::TreeProblem::Missing { file }) if file.ends_with("include/generated/autoconf.h"))
    );
    assert_eq!(r.faults.len(), 1);

    // Each file the probe's compile reads is needed; kbuild's scripts are
    // not (connector/tests/compile_matrix.rs holds this to the compiler).
    let t = "/usr/src/kernels/5.15.0-200.131.27.el8uek.x86_64";
    for (gone, present) in [
        ("scripts", true),
        ("Makefile", true),
        ("include/uapi/linux/bpf.h", false),
        ("include/linux/kconfig.h", false),
        ("include/generated/uapi/linux/version.h", false),
        ("arch/x86/include/generated", false),
        ("arch/x86/include/uapi/asm", false),
    ] {
        let f = Fixture::new();
        f.os_release("ol-8.9");
        f.kernel(&k).headers(&k);
        f.remove(&format!("{t}/{gone}"));
        let h = &diagnose(&f, None, None).kernels[0].headers;
        assert_eq!(h.present, present, "without {gone}: {h:?}");
        if !present {
            assert!(
                matches!(&h.rejected[0].problem, Some(connector_host::headers::TreeProblem::Missing { file }) if file.ends_with(gone)),
                "without {gone}: {h:?}"
            );
        }
    }
}

#[test]
fn tree_of_another_release_is_not_present() {
    let f = Fixture::new();
    f.os_release("rhel-8.9");
    let k = Kernel::new("4.18.0-513.5.1.el8_9.x86_64", Layout::El8);
    let other = Kernel::new("4.18.0-477.27.1.el8_8.x86_64", Layout::El8);
    f.kernel(&k);
    // The other release's tree copied under this release's name.
    for e in other.header_files() {
        let moved = e.path().replace(&other.release, &k.release);
        let e = match e {
            connector_tests::Entry::File { contents, mode, .. } => connector_tests::Entry::File {
                path: moved,
                contents,
                mode,
            },
            connector_tests::Entry::Dir { .. } => connector_tests::Entry::dir(moved),
            connector_tests::Entry::Symlink { target, .. } => {
                connector_tests::Entry::link(moved, target)
            }
        };
        f.lay(&[e]);
    }
    let r = diagnose(&f, None, None);
    let h = &r.kernels[0].headers;
    assert!(!h.present);
    assert!(
        matches!(&h.rejected[0].problem, Some(connector_host::headers::TreeProblem::OtherRelease { found }) if found == "4.18.0-477.27.1.el8_8.x86_64"),
        "{:?}",
        h.rejected
    );
}

#[test]
fn debian_kernel_release_file_holds_the_upstream_version() {
    // Debian's include/config/kernel.release says "6.1.0", not the release:
    // UTS_RELEASE decides, so the tree is present.
    let f = Fixture::new();
    f.os_release("debian-12");
    let k = Kernel::new("6.1.0-18-amd64", Layout::Debian);
    f.kernel(&k).headers(&k);
    let rel = std::fs::read_to_string(
        f.host("/usr/src/linux-headers-6.1.0-18-amd64/include/config/kernel.release"),
    )
    .unwrap();
    assert_eq!(rel.trim(), "6.1.0");
    let r = diagnose(&f, None, None);
    assert!(
        r.kernels[0].headers.present,
        "{:?}",
        r.kernels[0].headers.rejected
    );
}

#[test]
fn debian_headers_without_the_common_package_are_broken() {
    let f = Fixture::new();
    f.os_release("debian-12");
    let k = Kernel::new("6.1.0-18-amd64", Layout::Debian);
    f.kernel(&k).headers(&k);
    f.remove("/usr/src/linux-headers-6.1.0-18-common");
    let r = diagnose(&f, None, None);
    let h = &r.kernels[0].headers;
    assert!(!h.present);
    assert!(
        matches!(&h.rejected[0].problem, Some(connector_host::headers::TreeProblem::BrokenInclude { include }) if include == "/usr/src/linux-headers-6.1.0-18-common/Makefile")
    );
}

#[test]
fn stale_modules_dir_is_ignored_and_noted() {
    let f = Fixture::new();
    f.os_release("rhel-8.9");
    let k = Kernel::new("4.18.0-513.5.1.el8_9.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    f.lay(&[connector_tests::Entry::dir(
        "/lib/modules/4.18.0-477.10.1.el8_8.x86_64/extra",
    )]);
    let r = diagnose(&f, None, None);
    assert_eq!(r.kernels.len(), 1);
    assert!(r.faults.is_empty());
    assert!(r.notes.iter().any(|n| n.kind == NoteKind::StaleModulesDir
        && n.kernel.as_deref() == Some("4.18.0-477.10.1.el8_8.x86_64")));
}

#[test]
fn kernel_option_restricts_and_names_uninstalled_releases() {
    let f = Fixture::new();
    f.os_release("debian-12");
    let a = Kernel::new("6.1.0-18-amd64", Layout::Debian);
    let b = Kernel::new("6.1.0-17-amd64", Layout::Debian);
    f.kernel(&a).headers(&a).kernel(&b);
    let r = diagnose(&f, None, Some("6.1.0-18-amd64"));
    assert_eq!(r.kernels.len(), 1);
    assert!(
        r.faults.is_empty(),
        "the other kernel's fault is out of scope"
    );
    let r = diagnose(&f, None, Some("6.1.0-20-amd64"));
    assert_eq!(r.kernels.len(), 1);
    assert!(!r.kernels[0].installed);
    assert_eq!(r.faults.len(), 1);
    assert!(r
        .notes
        .iter()
        .any(|n| n.kind == NoteKind::KernelNotInstalled));
}

#[test]
fn running_kernel_and_pending_reboot() {
    let f = Fixture::new();
    f.os_release("rhel-8.9");
    let old = Kernel::new("4.18.0-477.27.1.el8_8.x86_64", Layout::El8);
    let new = Kernel::new("4.18.0-513.5.1.el8_9.x86_64", Layout::El8);
    f.kernel(&old).headers(&old).kernel(&new);
    let r = diagnose(&f, Some(&old.release), None);
    assert_eq!(r.kernels[0].release, old.release, "running kernel first");
    assert!(r.kernels[0].running);
    assert!(!r.kernels[1].running);
    assert!(r
        .notes
        .iter()
        .any(|n| n.kind == NoteKind::RebootPending
            && n.kernel.as_deref() == Some(new.release.as_str())));
    // The newer kernel lacks headers: fault before the reboot.
    assert_eq!(r.faults.len(), 1);
    assert_eq!(r.faults[0].kernel, new.release);
}

#[test]
fn running_kernel_without_modules_dir_is_reported() {
    let f = Fixture::new();
    f.os_release("debian-12");
    let r = diagnose(&f, Some("6.18.44-fc-v669"), None);
    assert_eq!(r.kernels.len(), 1);
    let k = &r.kernels[0];
    assert!(k.running && !k.installed);
    assert_eq!(k.flavor, "custom");
    assert!(!k.distro_built);
    assert_eq!(k.headers.package, None);
    assert!(r
        .notes
        .iter()
        .any(|n| n.kind == NoteKind::RunningKernelNotInstalled));
    assert_eq!(r.faults.len(), 1);
    assert_eq!(r.faults[0].cause, FaultCause::NoHeaderPackage);
    assert!(
        r.faults[0].detail.contains("not built by"),
        "{}",
        r.faults[0].detail
    );
}
