//! The built packages, with the real connector-installer inside, installed
//! for real: `rpm --root` and `dnf --installroot` (scriptlets chrooted into
//! the root), `dpkg --root` (scripts with DPKG_ROOT); the header step is
//! deferred inside the transaction and finished by the after-transaction
//! job; upgrade and removal; a kernel added, then its hook.
#![cfg(feature = "real-tools")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connector_host::os::PkgTool;
use connector_host::pkg::{InstallPlan, PackageBackend};
use connector_packaging::Family;
use connector_tests::{require_tool, selinux_label, selinux_root, Fixture, Kernel, Layout};

use crate::common;
use crate::common::{repo_dir, DEB_K1, DEB_K2, EL_K1, EL_K2};

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

fn package(family: Family, version: &str, out: &Path) -> PathBuf {
    let b = common::bins(Path::new(BIN), None);
    common::package(family, version, out, b.path())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output, what: &str) -> String {
    let t = text(&out);
    assert!(out.status.success(), "{what}: {t}");
    t
}

fn rpm(root: &Path, args: &[&str]) -> Output {
    Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm"])
        .args(args)
        .output()
        .unwrap()
}

fn installer(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap()
}

fn pending(f: &Fixture) -> String {
    std::fs::read_to_string(f.host("/var/lib/connector/pending")).unwrap_or_default()
}

fn enabled(f: &Fixture) -> bool {
    f.host("/etc/systemd/system/multi-user.target.wants/connectord.service")
        .is_symlink()
}

fn chroot_tools(root: &Path) {
    common::chroot_tools(root, Path::new(BIN));
}

fn el_root(kernels: &[&str], headers_in_repo: &[&str]) -> (Fixture, tempfile::TempDir) {
    common::el_root(Fixture::new(), kernels, headers_in_repo)
}

fn rpm_installed(root: &Path, name: &str) -> bool {
    rpm(root, &["-q", name]).status.success()
}

#[test]
fn rpm_install_defers_the_headers_and_the_job_finishes_them() {
    require_tool("systemctl");
    let (f, _repo) = el_root(&[EL_K1], &[EL_K1]);
    chroot_tools(f.path());
    let out = tempfile::tempdir().unwrap();
    let v1 = package(Family::Rpm, "1.0.0", out.path());
    let v2 = package(Family::Rpm, "1.0.1", out.path());

    let t = ok(
        rpm(f.path(), &["-i", "--nodeps", v1.to_str().unwrap()]),
        "rpm -i",
    );
    // Inside the transaction: enabled, headers deferred with the command.
    assert!(t.contains("headers deferred"), "{t}");
    assert!(
        t.contains("run `connector-installer install` once the package transaction is over"),
        "no systemd in a chroot: the command is printed: {t}"
    );
    assert!(enabled(&f), "{t}");
    assert_eq!(pending(&f), format!("headers {EL_K1}\n"));
    assert!(
        !rpm_installed(f.path(), "kernel-devel"),
        "no package manager run inside"
    );
    let doctor = text(&installer(f.path(), &["doctor"]));
    assert!(doctor.contains("deferred"), "{doctor}");

    // The after-transaction job.
    let job = installer(f.path(), &["install", "--after-transaction", "--json"]);
    let t = ok(job, "the deferred job");
    assert!(rpm_installed(f.path(), "kernel-devel"), "{t}");
    assert_eq!(pending(&f), "", "done work is no longer pending");
    assert_eq!(installer(f.path(), &["doctor"]).status.code(), Some(0));

    // Upgrade: the hooks run again; nothing to reinstall.
    let t = ok(
        rpm(f.path(), &["-U", "--nodeps", v2.to_str().unwrap()]),
        "rpm -U",
    );
    assert!(t.contains(": configure (upgrade)"), "{t}");
    assert!(
        !t.contains("headers deferred"),
        "nothing left to defer: {t}"
    );
    assert!(enabled(&f));

    // Removal: disabled, files gone.
    let t = ok(rpm(f.path(), &["-e", "--nodeps", "connector"]), "rpm -e");
    assert!(t.contains(": before removal: stop and disable"), "{t}");
    assert!(!enabled(&f), "{t}");
    assert!(!f.host("/opt/connector/bin/connectord").exists());
}

#[test]
fn dnf_installroot_runs_the_hooks_inside_its_transaction() {
    let (f, repo) = el_root(&[EL_K1], &[EL_K1]);
    chroot_tools(f.path());
    // The connector package joins the repository.
    package(Family::Rpm, "1.0.0", repo.path());
    let st = Command::new("createrepo_c")
        .arg("--update")
        .arg(repo.path())
        .output()
        .unwrap();
    ok(st, "createrepo_c --update");
    let backend = connector_rpm::RpmBackend::new(f.root(), PkgTool::Dnf);
    let cmd = backend.install_cmd(&InstallPlan {
        packages: vec!["connector".into()],
        local_files: vec![],
        enable_repos: vec![],
    });
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let t = format!("{}{}", out.stdout, out.stderr);
    assert!(t.contains("headers deferred"), "{t}");
    assert_eq!(pending(&f), format!("headers {EL_K1}\n"));
    assert!(!rpm_installed(f.path(), "kernel-devel"));
    let t = ok(
        installer(f.path(), &["install", "--after-transaction"]),
        "the deferred job",
    );
    assert!(rpm_installed(f.path(), "kernel-devel"), "{t}");
    assert_eq!(installer(f.path(), &["doctor"]).status.code(), Some(0));
}

fn debian_root(f: Fixture) -> (Fixture, tempfile::TempDir) {
    common::debian_root(f, &[DEB_K1, DEB_K2])
}

fn dpkg(root: &Path, args: &[&str]) -> Output {
    Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args)
        .output()
        .unwrap()
}

fn dpkg_installed(root: &Path, name: &str) -> bool {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}/var/lib/dpkg", root.display()))
        .args(["-W", "-f", "${Status}", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout) == "install ok installed"
}

fn module_in_store(f: &Fixture) -> bool {
    f.host("/var/lib/selinux/default/active/modules/200/connectord")
        .exists()
}

#[test]
fn dpkg_install_loads_the_module_defers_the_headers_and_purge_leaves_nothing() {
    require_tool("semodule");
    require_tool("systemctl");
    let (f, _repo) = debian_root(selinux_root("default"));
    let out = tempfile::tempdir().unwrap();
    let deb = package(Family::Deb, "1.0.0", out.path());

    let t = ok(dpkg(f.path(), &["-i", deb.to_str().unwrap()]), "dpkg -i");
    assert!(
        module_in_store(&f),
        "module loaded into the root's store: {t}"
    );
    assert!(
        selinux_label(&f.host("/opt/connector/bin/connectord")).contains(":connectord_exec_t:"),
        "{t}"
    );
    assert!(enabled(&f), "{t}");
    assert!(t.contains("headers deferred"), "{t}");
    assert_eq!(pending(&f), format!("headers {DEB_K1}\n"));
    assert!(!dpkg_installed(
        f.path(),
        &format!("linux-headers-{DEB_K1}")
    ));

    let t = ok(
        installer(f.path(), &["install", "--after-transaction"]),
        "the deferred job",
    );
    assert!(
        dpkg_installed(f.path(), &format!("linux-headers-{DEB_K1}")),
        "{t}"
    );
    let d = installer(f.path(), &["doctor"]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d));

    // Reinstall (an upgrade to the same version): no policy rebuild.
    let t = ok(
        dpkg(f.path(), &["-i", deb.to_str().unwrap()]),
        "dpkg -i again",
    );
    assert!(
        !t.contains("semodule"),
        "unchanged module not reloaded: {t}"
    );

    // The administrator enabled the metrics timer; removal disables it.
    let timer = f.host("/etc/systemd/system/timers.target.wants/connector-metrics.timer");
    std::fs::create_dir_all(timer.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/lib/systemd/system/connector-metrics.timer", &timer).unwrap();
    ok(dpkg(f.path(), &["-r", "connector"]), "dpkg -r");
    assert!(!module_in_store(&f), "module removed");
    assert!(!enabled(&f));
    assert!(
        !timer.is_symlink(),
        "the metrics timer is disabled with the connector"
    );
    ok(dpkg(f.path(), &["-P", "connector"]), "dpkg -P");
    for gone in [
        "/opt/connector",
        "/var/lib/connector",
        "/var/log/connector",
        "/etc/connector",
        "/etc/kernel/postinst.d/connector",
        "/lib/systemd/system/connectord.service",
    ] {
        assert!(!f.host(gone).exists(), "{gone} left after purge");
    }
}

#[test]
fn a_new_rpm_kernel_runs_our_hooks_and_the_job_brings_its_headers() {
    let (f, repo) = el_root(&[EL_K1], &[EL_K1, EL_K2]);
    chroot_tools(f.path());
    let out = tempfile::tempdir().unwrap();
    let pkg = package(Family::Rpm, "1.0.0", out.path());
    ok(
        rpm(f.path(), &["-i", "--nodeps", pkg.to_str().unwrap()]),
        "rpm -i connector",
    );
    ok(
        installer(f.path(), &["install", "--after-transaction"]),
        "the deferred job",
    );
    assert_eq!(pending(&f), "");
    // The new kernel's package runs the hooks the way EL kernels do:
    // new-kernel-pkg --rpmposttrans runs /etc/kernel/postinst.d (EL7, AL2),
    // kernel-install runs the install.d plugins (EL8+).
    let k2 = Kernel::new(EL_K2, Layout::El8).kernel_package().post_install(format!(
        "/etc/kernel/postinst.d/connector {EL_K2} /boot/vmlinuz-{EL_K2}\n\
         /usr/lib/kernel/install.d/90-connector.install add {EL_K2} /boot/loader /lib/modules/{EL_K2}/vmlinuz\n"
    ));
    let file = k2.build(repo.path());
    let t = ok(
        rpm(
            f.path(),
            &["-i", "--nodeps", "--oldpackage", file.to_str().unwrap()],
        ),
        "rpm -i kernel",
    );
    assert!(t.contains(&format!("the headers of kernel {EL_K2}")), "{t}");
    assert_eq!(
        pending(&f),
        format!("headers {EL_K2}\n"),
        "recorded once: {t}"
    );
    let d = text(&installer(f.path(), &["doctor"]));
    assert!(
        d.contains(&format!("kernel {EL_K2} is installed but not running")),
        "{d}"
    );
    let t = ok(
        installer(f.path(), &["install", "--after-transaction"]),
        "the deferred job",
    );
    assert!(
        rpm_installed(
            f.path(),
            &format!("kernel-devel-{}", EL_K2.trim_end_matches(".x86_64"))
        ),
        "{t}"
    );
    assert_eq!(pending(&f), "");
    assert_eq!(installer(f.path(), &["doctor"]).status.code(), Some(0));
    // The kernel's hooks again (a reinstall), its headers now present:
    // no job recorded, nothing deferred.
    for args in [
        vec!["kernel-postinst", EL_K2],
        vec!["kernel-install", "add", EL_K2],
    ] {
        let hook = Command::new(BIN)
            .arg("hook")
            .arg("--root")
            .arg(f.path())
            .args(&args)
            .output()
            .unwrap();
        let t = ok(hook, "the kernel hook again");
        assert!(
            t.contains(&format!(
                "the headers of kernel {EL_K2} are already installed"
            )),
            "{t}"
        );
        assert_eq!(pending(&f), "", "{t}");
    }
}

#[test]
fn a_new_debian_kernel_runs_postinst_d_and_the_job_brings_its_headers() {
    require_tool("run-parts");
    let (f, _repo) = debian_root(Fixture::new());
    let out = tempfile::tempdir().unwrap();
    let deb = package(Family::Deb, "1.0.0", out.path());
    ok(
        dpkg(f.path(), &["-i", deb.to_str().unwrap()]),
        "dpkg -i connector",
    );
    ok(
        installer(f.path(), &["install", "--after-transaction"]),
        "the deferred job",
    );
    // linux-image-*'s postinst runs the postinst.d hooks with run-parts.
    let k2 = Kernel::new(DEB_K2, Layout::Debian)
        .kernel_package()
        .post_install(format!(
            "run-parts --report --exit-on-error --arg={DEB_K2} --arg=/boot/vmlinuz-{DEB_K2} \
             \"$DPKG_ROOT/etc/kernel/postinst.d\""
        ));
    let dir = tempfile::tempdir().unwrap();
    let file = k2.build(dir.path());
    let t = ok(
        dpkg(f.path(), &["-i", file.to_str().unwrap()]),
        "dpkg -i kernel",
    );
    assert!(
        t.contains(&format!("the headers of kernel {DEB_K2}")),
        "{t}"
    );
    assert_eq!(pending(&f), format!("headers {DEB_K2}\n"));
    ok(
        installer(f.path(), &["install", "--after-transaction"]),
        "the deferred job",
    );
    assert!(dpkg_installed(f.path(), &format!("linux-headers-{DEB_K2}")));
    assert_eq!(installer(f.path(), &["doctor"]).status.code(), Some(0));
}

#[test]
fn the_kernel_hook_scripts_never_fail() {
    // Without the connector installed (removed, conffile left behind) the
    // hook is a no-op that succeeds.
    let d = tempfile::tempdir().unwrap();
    for script in ["kernel-postinst", "90-connector.install"] {
        let p = repo_dir().join("installer/dist").join(script);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o111,
            0o111,
            "{script} is executable"
        );
        let out = Command::new(&p)
            .args(["add", "1.2.3"])
            .env("DPKG_ROOT", d.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", text(&out));
    }
}
