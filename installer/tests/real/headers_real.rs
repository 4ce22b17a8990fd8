//! `connector-installer headers` with the real package managers: dnf and
//! rpm against scratch roots and createrepo_c repositories, apt-get and dpkg
//! against scratch roots and dpkg-scanpackages repositories, and the real
//! scriptlets of packages installed with `rpm --root` and `dpkg --root`.
//!
//! Tier: real tools in scratch roots (scripts/setup --test installs them).
#![cfg(feature = "real-tools")]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use connector_tests::{
    apt_repo, apt_root, copy_host_program, dpkg_initdb, require_tool, rpm_initdb, rpm_repo,
    yum_repo_file, Fixture, Kernel, Layout, Pkg,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

fn headers(root: &Path, extra: &[&str]) -> (Output, Value) {
    connector_tests::run_json(
        Command::new(BIN)
            .args(["headers", "--root", root.to_str().unwrap(), "--json"])
            .args(extra),
    )
}

fn rpm_installed(root: &Path, name: &str) -> bool {
    Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "-q", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn dpkg_installed(root: &Path, name: &str) -> bool {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}/var/lib/dpkg", root.display()))
        .args(["-W", "-f", "${db:Status-Abbrev}", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).starts_with("ii")
}

/// An EL root (`os`) with `kernels` installed by the real rpm, and a
/// repository (id `repo_id`, enabled or not) holding `in_repo` header packages.
fn el_root(
    os: &str,
    kernels: &[&str],
    in_repo: &[&str],
    repo_id: &str,
    enabled: bool,
) -> (Fixture, tempfile::TempDir) {
    require_tool("rpm");
    require_tool("dnf");
    require_tool("createrepo_c");
    let f = Fixture::new();
    f.os_release(os);
    rpm_initdb(f.path());
    for k in kernels {
        Kernel::new(k, Layout::El8)
            .kernel_package()
            .install(f.path());
    }
    let repo = tempfile::tempdir().unwrap();
    let pkgs: Vec<Pkg> = in_repo
        .iter()
        .flat_map(|k| Kernel::new(k, Layout::El8).header_packages())
        .collect();
    let url = rpm_repo(repo.path(), &pkgs);
    yum_repo_file(f.path(), repo_id, &url, enabled);
    (f, repo)
}

/// doctor agrees: the root is healthy (exit 0).
fn assert_doctor_healthy(f: &Fixture) {
    let d = Command::new(BIN)
        .args(["doctor", "--root", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        d.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&d.stdout)
    );
}

fn state_of<'a>(v: &'a Value, release: &str) -> &'a Value {
    v["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["release"] == release)
        .unwrap_or_else(|| panic!("{release} not in {v}"))
}

#[test]
fn dnf_installs_the_exact_package_and_doctor_turns_healthy() {
    let k = "4.18.0-513.5.1.el8_9.x86_64";
    let (f, _repo) = el_root(
        "rhel-8.9",
        &[k],
        &[k, "4.18.0-477.27.1.el8_8.x86_64"],
        "local",
        true,
    );
    let (out, v) = headers(f.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = state_of(&v, k);
    assert_eq!(s["state"], "installed");
    assert_eq!(s["package"], format!("kernel-devel-{k}"));
    assert_eq!(s["path"], format!("/usr/src/kernels/{k}"));
    assert!(rpm_installed(f.path(), &format!("kernel-devel-{k}")));
    assert!(
        !f.host("/root/.rpmdb").exists(),
        "dnf recorded the package in the root's own database, not ~/.rpmdb"
    );
    assert!(
        !rpm_installed(f.path(), "kernel-devel-4.18.0-477.27.1.el8_8.x86_64"),
        "only the exact build is installed"
    );
    let cmds = v["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 1, "one transaction: {cmds:?}");
    assert!(cmds[0]
        .as_str()
        .unwrap()
        .starts_with("dnf -y --setopt=exit_on_lock=True --installroot="));
    assert_doctor_healthy(&f);
}

#[test]
fn already_present_means_no_transaction_at_all() {
    let k = "4.18.0-513.5.1.el8_9.x86_64";
    let (f, _repo) = el_root("rhel-8.9", &[k], &[k], "local", true);
    let (out, _) = headers(f.path(), &[]);
    assert_eq!(out.status.code(), Some(0));
    let before = f.snapshot();
    let (out, v) = headers(f.path(), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(state_of(&v, k)["state"], "already-present");
    assert_eq!(
        v["commands"].as_array().unwrap().len(),
        0,
        "no package manager call"
    );
    let mut after = f.snapshot();
    let mut before = before;
    // sqlite's shared-memory index is rewritten by any reader (rpm -q).
    before.retain(|(p, _)| !p.ends_with("rpmdb.sqlite-shm"));
    after.retain(|(p, _)| !p.ends_with("rpmdb.sqlite-shm"));
    assert_eq!(after, before, "nothing in the root changed");
}

#[test]
fn two_kernels_in_one_transaction() {
    let a = "5.14.0-362.8.1.el9_3.x86_64";
    let b = "5.14.0-284.30.1.el9_2.x86_64";
    let (f, _repo) = el_root("rhel-9.3", &[a, b], &[a, b], "local", true);
    let (out, v) = headers(f.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(state_of(&v, a)["state"], "installed");
    assert_eq!(state_of(&v, b)["state"], "installed");
    assert_eq!(v["commands"].as_array().unwrap().len(), 1);
}

#[test]
fn uek_repository_is_enabled_for_the_call() {
    let k = "5.15.0-200.131.27.el8uek.x86_64";
    // The only repository with the package is ol8_UEKR7, configured but off.
    let (f, _repo) = el_root("ol-8.9", &[k], &[k], "ol8_UEKR7", false);
    let (out, v) = headers(f.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state_of(&v, k)["package"], format!("kernel-uek-devel-{k}"));
    assert_eq!(state_of(&v, k)["state"], "installed");
    assert!(v["commands"][0]
        .as_str()
        .unwrap()
        .contains("--enablerepo=ol8_UEKR7"));
    // Enabled for the call only: the repo file is unchanged.
    let repo = std::fs::read_to_string(f.host("/etc/yum.repos.d/ol8_UEKR7.repo")).unwrap();
    assert!(repo.contains("enabled=0"));
}

#[test]
fn missing_from_the_repository_fails_clearly_and_changes_no_package() {
    let k = "4.18.0-513.5.1.el8_9.x86_64";
    let (f, _repo) = el_root(
        "rhel-8.9",
        &[k],
        &["4.18.0-477.27.1.el8_8.x86_64"],
        "local",
        true,
    );
    let (out, v) = headers(f.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{v}");
    let s = state_of(&v, k);
    assert_eq!(s["state"], "failed");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("not in the configured repositories"),
        "{reason}"
    );
    // It refreshed the metadata once before giving up.
    let cmds: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(cmds.iter().any(|c| c.contains("makecache")), "{cmds:?}");
    assert!(!rpm_installed(f.path(), &format!("kernel-devel-{k}")));
    assert!(!f.host(&format!("/usr/src/kernels/{k}")).exists());
}

#[test]
fn dry_run_prints_the_command_and_changes_nothing() {
    let k = "4.18.0-513.5.1.el8_9.x86_64";
    let (f, _repo) = el_root("rhel-8.9", &[k], &[k], "local", true);
    let before = f.snapshot();
    let (out, v) = headers(f.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(state_of(&v, k)["state"], "would-install");
    let cmd = v["commands"][0].as_str().unwrap();
    assert!(cmd.ends_with(&format!("install kernel-devel-{k}")), "{cmd}");
    let mut after = f.snapshot();
    let mut before = before;
    before.retain(|(p, _)| !p.ends_with("rpmdb.sqlite-shm"));
    after.retain(|(p, _)| !p.ends_with("rpmdb.sqlite-shm"));
    assert_eq!(after, before, "--dry-run changed the root");
    // Text form prints the command too.
    let t = Command::new(BIN)
        .args(["headers", "--dry-run", "--root", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        text.contains(&format!("would install kernel-devel-{k}")),
        "{text}"
    );
    assert!(text.contains("command: dnf -y"), "{text}");
}

/// A Debian root: kernel image and its meta package installed by dpkg, the
/// header packages (flavour, common, kbuild) and the headers meta in an
/// apt repository.
fn debian_root(with_image_meta: bool) -> (Fixture, tempfile::TempDir, Kernel) {
    require_tool("apt-get");
    require_tool("dpkg-scanpackages");
    let f = Fixture::new();
    f.os_release("debian-12");
    let repo = tempfile::tempdir().unwrap();
    apt_root(f.path(), repo.path());
    let k = Kernel::new("6.1.0-18-amd64", Layout::Debian);
    k.kernel_package().install(f.path());
    if with_image_meta {
        Pkg::new("linux-image-amd64", "6.1.76-1", "", "amd64", vec![])
            .depends("linux-image-6.1.0-18-amd64")
            .install(f.path());
    }
    let mut pkgs = k.header_packages();
    pkgs.push(
        Pkg::new("linux-headers-amd64", "6.1.76-1", "", "amd64", vec![])
            .depends("linux-headers-6.1.0-18-amd64"),
    );
    apt_repo(repo.path(), &pkgs);
    (f, repo, k)
}

#[test]
fn apt_installs_headers_and_the_tracking_meta_package() {
    let (f, _repo, k) = debian_root(true);
    let (out, v) = headers(f.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = state_of(&v, &k.release);
    assert_eq!(s["state"], "installed", "{v}");
    assert_eq!(s["path"], "/usr/src/linux-headers-6.1.0-18-amd64");
    assert_eq!(v["tracking"], serde_json::json!(["linux-headers-amd64"]));
    for p in [
        "linux-headers-6.1.0-18-amd64",
        "linux-headers-6.1.0-18-common",
        "linux-kbuild-6.1",
        "linux-headers-amd64",
    ] {
        assert!(dpkg_installed(f.path(), p), "{p} installed");
    }
    // The missing metadata was fetched by the refresh (apt-get update).
    let cmds: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(cmds.iter().any(|c| c.ends_with(" update")), "{cmds:?}");
}

#[test]
fn apt_without_the_package_fails_and_changes_no_package() {
    let (f, repo, k) = debian_root(false);
    // Empty the repository.
    apt_repo(repo.path(), &[]);
    for entry in std::fs::read_dir(repo.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "deb") {
            std::fs::remove_file(p).unwrap();
        }
    }
    apt_repo(repo.path(), &[]);
    let (out, v) = headers(f.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{v}");
    let s = state_of(&v, &k.release);
    assert_eq!(s["state"], "failed");
    assert!(s["reason"]
        .as_str()
        .unwrap()
        .contains("not in the configured repositories"));
    assert!(!dpkg_installed(f.path(), "linux-headers-6.1.0-18-amd64"));
}

/// A scriptlet's record: the `--json` document, then `rc=N` and
/// `elapsed_ms=N` lines. It must say "deferred" for `sign`, exit 4, and
/// have taken under a second.
fn assert_deferred(result: &str, sign: &str, stderr: &str) {
    let json_end = result.rfind("}\n").map(|i| i + 1).unwrap_or(0);
    let v: Value = serde_json::from_str(&result[..json_end])
        .unwrap_or_else(|e| panic!("{e}: {result}\n{stderr}"));
    assert_eq!(v["kernels"][0]["state"], "deferred", "{v}");
    assert!(v["deferred"].as_str().unwrap().contains(sign), "{v}");
    assert!(result.contains("rc=4"), "exit 4 = deferred: {result}");
    let ms: u64 = result
        .lines()
        .find_map(|l| l.strip_prefix("elapsed_ms="))
        .expect("elapsed recorded")
        .trim()
        .parse()
        .unwrap();
    assert!(ms < 1000, "deferred within a second, took {ms} ms");
}

#[test]
fn inside_an_rpm_scriptlet_headers_are_deferred() {
    require_tool("rpm");
    let k = "4.18.0-513.5.1.el8_9.x86_64";
    let f = Fixture::new();
    f.os_release("rhel-8.9");
    rpm_initdb(f.path());
    Kernel::new(k, Layout::El8)
        .kernel_package()
        .install(f.path());
    // The scriptlet runs chrooted into the root by rpm: our binary, its
    // libraries and /bin/sh go in with it. No dnf in there: had we called
    // the package manager, the outcome would be a failure, not "deferred".
    copy_host_program(f.path(), Path::new(BIN));
    let script = format!(
        "s=$(date +%s%N); {BIN} headers --root / --kernel {k} --json > /result 2>/result.err; rc=$?; \
         e=$(date +%s%N); echo \"rc=$rc\" >> /result; echo \"elapsed_ms=$(( (e - s) / 1000000 ))\" >> /result; exit 0"
    );
    // date is needed by the script: copy it in too.
    copy_host_program(f.path(), Path::new("/bin/date"));
    let pkgs = tempfile::tempdir().unwrap();
    let p = Pkg::new("connector-probe", "1.0", "1", "x86_64", vec![]).post_install(script);
    let file = p.build(pkgs.path());
    let out = Command::new("rpm")
        .arg("--root")
        .arg(f.path())
        .args(["--dbpath", "/var/lib/rpm", "-i", "--nodeps"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpm -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = std::fs::read_to_string(f.host("/result")).unwrap();
    let err = std::fs::read_to_string(f.host("/result.err")).unwrap_or_default();
    assert_deferred(&result, "holds the package lock", &err);
}

#[test]
fn inside_a_dpkg_postinst_headers_are_deferred() {
    require_tool("dpkg");
    let (f, _repo, k) = debian_root(false);
    dpkg_initdb(f.path());
    let pkgs = tempfile::tempdir().unwrap();
    // Two runs from the postinst: with dpkg's environment, and with it
    // removed, so that only the dpkg lock held by our ancestor tells.
    let one = |out: &str| {
        format!(
            "s=$(date +%s%N); {BIN} headers --root \"$DPKG_ROOT\" --kernel {k} --json > {out}; rc=$?; \
             e=$(date +%s%N); echo \"rc=$rc\" >> {out}; echo \"elapsed_ms=$(( (e - s) / 1000000 ))\" >> {out}",
            k = k.release
        )
    };
    let r1 = f.path().join("../result-env");
    let r2 = f.path().join("../result-lock");
    let r1 = r1.to_str().unwrap().to_string() + &f.path().file_name().unwrap().to_string_lossy();
    let r2 = r2.to_str().unwrap().to_string() + &f.path().file_name().unwrap().to_string_lossy();
    let script = format!(
        "{}\nenv -u DPKG_MAINTSCRIPT_PACKAGE -u DPKG_FRONTEND_LOCKED sh -c '{}'\nexit 0",
        one(&r1),
        one(&r2).replace('\'', "'\\''")
    );
    let p = Pkg::new("connector-probe", "1.0", "", "amd64", vec![]).post_install(script);
    let file = p.build(pkgs.path());
    let start = Instant::now();
    let out = Command::new("dpkg")
        .arg(format!("--root={}", f.path().display()))
        .args(["--force-script-chrootless", "-i"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    for (path, sign) in [
        (&r1, "DPKG_MAINTSCRIPT_PACKAGE"),
        (&r2, "holds the package lock"),
    ] {
        let result = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let _ = std::fs::remove_file(path);
        assert_deferred(&result, sign, "");
    }
    assert!(
        !dpkg_installed(f.path(), "linux-headers-6.1.0-18-amd64"),
        "nothing was installed"
    );
}

#[test]
fn a_lock_held_by_another_process_is_waited_for_then_fails_clearly() {
    let k = "4.18.0-513.5.1.el8_9.x86_64";
    let (f, _repo) = el_root("rhel-8.9", &[k], &[k], "local", true);
    // Another process (not our ancestor) holds the rpm transaction lock.
    let lock = f.host("/var/lib/rpm/.rpm.lock");
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time\nf=open(sys.argv[1],'w')\nfcntl.lockf(f,fcntl.LOCK_EX)\nsys.stdout.write('locked\\n')\nsys.stdout.flush()\ntime.sleep(60)",
        ])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = holder.stdout.take().unwrap();
    let mut buf = [0u8; 7];
    std::io::Read::read_exact(&mut pipe, &mut buf).unwrap();
    let start = Instant::now();
    let out = Command::new(BIN)
        .args([
            "headers",
            "--root",
            f.path().to_str().unwrap(),
            "--lock-timeout",
            "2",
        ])
        .output()
        .unwrap();
    let waited = start.elapsed();
    holder.kill().unwrap();
    holder.wait().unwrap();
    drop(pipe);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("waiting for the package manager"),
        "a progress line: {err}"
    );
    assert!(
        err.contains(&format!("pid {}", holder.id())),
        "names the holder: {err}"
    );
    assert!(err.contains("--lock-timeout"), "says what to do: {err}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    assert!(!rpm_installed(f.path(), &format!("kernel-devel-{k}")));
}

/// Amazon Linux 2023 with the 6.12 kernel: its package is `kernel6.12`,
/// and its headers `kernel6.12-devel`. The repository also holds a
/// `kernel-devel` of the same version-release-arch (what the old rules
/// would have asked for): only the namespaced one is installed.
#[test]
fn al2023_kernel6_12_gets_kernel6_12_devel_from_the_repository() {
    require_tool("rpm");
    require_tool("dnf");
    require_tool("createrepo_c");
    let k = "6.12.37-61.105.amzn2023.x86_64";
    let f = Fixture::new();
    f.os_release("amzn-2023");
    rpm_initdb(f.path());
    let kernel = Kernel::new(k, Layout::El8);
    let mut image = kernel.kernel_package();
    image.name = "kernel6.12".into();
    image.install(f.path());
    let mut devel = kernel.header_packages();
    devel[0].name = "kernel6.12-devel".into();
    let decoy = kernel.header_packages();
    let repo = tempfile::tempdir().unwrap();
    let url = rpm_repo(repo.path(), &[devel[0].clone(), decoy[0].clone()]);
    yum_repo_file(f.path(), "amazonlinux", &url, true);

    let want = format!("kernel6.12-devel-{k}");
    let (out, v) = headers(f.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(state_of(&v, k)["package"], want);
    let cmd = v["commands"][0].as_str().unwrap();
    assert!(cmd.ends_with(&format!("install {want}")), "{cmd}");

    let (out, v) = headers(f.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state_of(&v, k)["state"], "installed");
    assert!(rpm_installed(f.path(), &want));
    assert!(
        !rpm_installed(f.path(), &format!("kernel-devel-{k}")),
        "not the plain kernel-devel"
    );
    assert_doctor_healthy(&f);
}

/// Amazon Linux 2 with a 5.10 kernel from the extras topic: the topic's
/// repository is configured but off, so it is enabled for the call and
/// `--dry-run` says so.
#[test]
fn al2_extras_topic_repository_is_enabled_for_the_call() {
    let k = "5.10.205-195.807.amzn2.x86_64";
    let f = Fixture::new();
    f.os_release("amzn-2");
    f.kernel(&Kernel::new(k, Layout::El7));
    yum_repo_file(
        f.path(),
        "amzn2extra-kernel-5.10",
        "file:///nonexistent",
        false,
    );
    yum_repo_file(
        f.path(),
        "amzn2extra-kernel-5.15",
        "file:///nonexistent",
        false,
    );
    let (out, v) = headers(f.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(state_of(&v, k)["package"], format!("kernel-devel-{k}"));
    let cmd = v["commands"][0].as_str().unwrap();
    assert!(cmd.contains("--enablerepo=amzn2extra-kernel-5.10"), "{cmd}");
    assert!(!cmd.contains("5.15"), "only the kernel's own series: {cmd}");
    assert!(cmd.starts_with("yum "), "{cmd}");
    let notes = v["notes"].to_string();
    assert!(
        notes.contains(
            "amzn2extra-kernel-5.10 is configured but disabled; enabled for this call only"
        ),
        "{notes}"
    );
}
