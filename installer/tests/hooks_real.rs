//! The built packages, with the real connector-installer inside, installed
//! for real: `rpm --root` and `dnf --installroot` (scriptlets chrooted into
//! the root), `dpkg --root` (scripts with DPKG_ROOT); the header step is
//! deferred inside the transaction and finished by the after-transaction
//! job; upgrade and removal; a kernel added, then its hook.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connector_host::os::PkgTool;
use connector_host::pkg::{InstallPlan, PackageBackend};
use connector_packaging::{build_deb, build_rpm, connector_payload, Family};
use connector_tests::{
    apt_repo, apt_root, copy_host_program, require_tool, rpm_initdb, rpm_repo, selinux_label,
    selinux_root, workspace_bin, yum_repo_file, Entry, Fixture, Kernel, Layout, Pkg,
};

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");
const EL_K1: &str = "4.18.0-513.5.1.el8_9.x86_64";
const EL_K2: &str = "4.18.0-513.11.1.el8_9.x86_64";
const DEB_K1: &str = "6.1.0-18-amd64";
const DEB_K2: &str = "6.1.0-20-amd64";

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The connector package, version `version`, with the real binaries.
fn package(family: Family, version: &str, out: &Path) -> PathBuf {
    let bins = tempfile::tempdir().unwrap();
    std::fs::copy(BIN, bins.path().join("connector-installer")).unwrap();
    std::fs::copy(workspace_bin("connectord"), bins.path().join("connectord")).unwrap();
    let p = connector_payload(family, version, "1", bins.path(), &repo_dir()).unwrap();
    match family {
        Family::Rpm => build_rpm(&p, out).unwrap(),
        Family::Deb => build_deb(&p, out).unwrap(),
    }
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

/// The programs the scriptlets run, inside the root rpm chroots into: the
/// installer's libraries, a shell, systemctl (to enable the unit).
fn chroot_tools(root: &Path) {
    copy_host_program(root, Path::new(BIN));
    copy_host_program(root, Path::new("/usr/bin/systemctl"));
}

fn el_root(kernels: &[&str], headers_in_repo: &[&str]) -> (Fixture, tempfile::TempDir) {
    require_tool("rpm");
    require_tool("dnf");
    require_tool("createrepo_c");
    let f = Fixture::new();
    f.os_release("rhel-8.9");
    rpm_initdb(f.path());
    // The shell the scriptlets need, as an installed package provides it.
    let sh = std::fs::read("/bin/sh").unwrap();
    Pkg::new(
        "bash",
        "5.1",
        "1",
        "x86_64",
        vec![Entry::file("/bin/sh", sh)],
    )
    .install(f.path());
    for k in kernels {
        Kernel::new(k, Layout::El8)
            .kernel_package()
            .install(f.path());
    }
    let repo = tempfile::tempdir().unwrap();
    let mut pkgs: Vec<Pkg> = headers_in_repo
        .iter()
        .flat_map(|k| Kernel::new(k, Layout::El8).header_packages())
        .collect();
    // What the connector package requires, as empty stand-ins.
    for name in ["systemd", "policycoreutils", "libselinux-utils"] {
        pkgs.push(Pkg::new(name, "1", "1", "x86_64", vec![]));
    }
    let url = rpm_repo(repo.path(), &pkgs);
    yum_repo_file(f.path(), "baseos", &url, true);
    (f, repo)
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
    assert!(t.contains("Configure { upgrade: true }"), "{t}");
    assert!(
        !t.contains("headers deferred"),
        "nothing left to defer: {t}"
    );
    assert!(enabled(&f));

    // Removal: disabled, files gone.
    let t = ok(rpm(f.path(), &["-e", "--nodeps", "connector"]), "rpm -e");
    assert!(t.contains("BeforeRemove"), "{t}");
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
    let backend = connector_rpm::RpmBackend::new(f.root(), PkgTool::Dnf, Some(8));
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
    require_tool("apt-get");
    require_tool("dpkg-scanpackages");
    f.os_release("debian-12");
    let repo = tempfile::tempdir().unwrap();
    apt_root(f.path(), repo.path());
    // What the connector package depends on, as installed stand-ins.
    for name in ["libc6", "libgcc-s1", "libselinux1", "systemd"] {
        Pkg::new(name, "99", "", "amd64", vec![]).install(f.path());
    }
    Kernel::new(DEB_K1, Layout::Debian)
        .kernel_package()
        .install(f.path());
    let mut pkgs = Kernel::new(DEB_K1, Layout::Debian).header_packages();
    pkgs.extend(Kernel::new(DEB_K2, Layout::Debian).header_packages());
    apt_repo(repo.path(), &pkgs);
    (f, repo)
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

    ok(dpkg(f.path(), &["-r", "connector"]), "dpkg -r");
    assert!(!module_in_store(&f), "module removed");
    assert!(!enabled(&f));
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
