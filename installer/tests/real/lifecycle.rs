//! `install`, `repair`, `uninstall` on scratch roots with the real tools:
//! the plan and its idempotence, golden images, the installer killed at
//! every step boundary, a disk without room, a second installer.
#![cfg(feature = "real-tools")]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use connector_packaging::Family;
use connector_tests::{
    require_tool, rpm_initdb, run_json, selinux_label, selinux_root, workspace_bin, Fixture,
    Kernel, Layout, Pkg,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

use crate::common;
use crate::common::{assert_same, snapshot, DEB_K1, EL_K1, EL_K2};

fn payload(family: Family) -> tempfile::TempDir {
    let b = common::bins(Path::new(BIN), None);
    common::payload(family, b.path())
}

fn el_root(f: Fixture, kernels: &[&str]) -> (Fixture, tempfile::TempDir) {
    common::el_root(f, kernels, kernels)
}

fn debian_root(f: Fixture) -> (Fixture, tempfile::TempDir) {
    common::debian_root(f, &[DEB_K1])
}

fn installer(root: &Path, cmd: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg(cmd).arg("--root").arg(root).args(args);
    c
}

fn install(root: &Path, args: &[&str]) -> (Output, Value) {
    run_json(installer(root, "install", &["--json"]).args(args))
}

fn steps(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

fn ok(out: &Output, v: &Value) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn doctor_exit(root: &Path) -> (i32, String) {
    let out = installer(root, "doctor", &[]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn golden_image_with_two_kernels_then_a_rerun_changes_nothing() {
    require_tool("semodule");
    require_tool("setfiles");
    require_tool("systemctl");
    let (f, _repo) = el_root(selinux_root("default"), &[EL_K1, EL_K2]);
    // State a previous boot of this image left behind.
    f.file("/var/lib/connector/agent-id", "0a4f-host-a\n");
    f.file("/var/lib/connector/status.json", "{}\n");
    f.file("/var/log/connector/connectord.log", "old\n");
    f.file("/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
    let p = payload(Family::Rpm);
    let pay = p.path().to_str().unwrap();

    // The plan, printed and nothing else.
    let before = snapshot(&f);
    let (out, plan) = install(
        f.path(),
        &["--payload", pay, "--prepare-image", "--dry-run"],
    );
    ok(&out, &plan);
    assert_same(&before, &snapshot(&f), "--dry-run changed the root");
    let planned = steps(&plan, "plan");
    assert_eq!(
        planned,
        [
            "laydown",
            "module",
            "labels",
            "headers",
            "enable",
            "prepare-image"
        ],
        "{plan:#}"
    );
    assert_eq!(plan["live"], false);
    let headers = plan["plan"][3]["what"].as_str().unwrap();
    assert!(
        headers.contains(&format!(
            "kernel-devel-{}",
            EL_K1.trim_end_matches(".x86_64")
        )) && headers.contains(&format!(
            "kernel-devel-{}",
            EL_K2.trim_end_matches(".x86_64")
        )),
        "both kernels in one transaction: {headers}"
    );

    // The same plan runs. Its facts are gathered once: one OS detection,
    // one SELinux store opened for the plan, the module and the labels
    // (the debug lines say so).
    let (out, v) = install(f.path(), &["--payload", pay, "--prepare-image", "-v"]);
    ok(&out, &v);
    let debug = String::from_utf8_lossy(&out.stderr);
    for (what, line) in [
        ("OS detections", "debug: detecting the operating system"),
        ("SELinux store openings", "debug: opening the SELinux store"),
        ("diagnoses", "debug: diagnosing "),
    ] {
        let n = debug.lines().filter(|l| l.contains(line)).count();
        assert_eq!(n, 1, "{what}: {n}\n{debug}");
    }
    // The deferred job (after a package transaction) detects the OS to
    // find the package lock; its facts take that OS, not a second one.
    let (late, lv) = install(f.path(), &["--after-transaction", "-v"]);
    ok(&late, &lv);
    let debug = String::from_utf8_lossy(&late.stderr);
    for (what, line, most) in [
        ("OS detections", "debug: detecting the operating system", 1),
        (
            "SELinux store openings",
            "debug: opening the SELinux store",
            1,
        ),
    ] {
        let n = debug.lines().filter(|l| l.contains(line)).count();
        assert!(
            n <= most && n >= 1,
            "--after-transaction, {what}: {n}\n{debug}"
        );
    }
    assert_eq!(steps(&v, "plan"), planned);
    assert_eq!(steps(&v, "results"), planned);
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "done"),
        "{v:#}"
    );
    let dnf_runs: Vec<&str> = v["results"][3]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .filter(|c| c.contains("dnf") && c.contains(" install "))
        .collect();
    assert_eq!(dnf_runs.len(), 1, "one transaction: {dnf_runs:?}");
    let (code, text) = doctor_exit(f.path());
    assert_eq!(code, 0, "doctor after install: {text}");
    assert!(selinux_label(&f.host("/opt/connector/bin/connectord")).contains(":connectord_exec_t:"));
    assert!(f
        .host("/etc/systemd/system/multi-user.target.wants/connectord.service")
        .is_symlink());
    for gone in [
        "/var/lib/connector/agent-id",
        "/var/lib/connector/status.json",
        "/var/log/connector/connectord.log",
    ] {
        assert!(!f.host(gone).exists(), "{gone} left in the image");
    }
    assert!(f.host("/var/log/connector").is_dir());
    assert!(
        v["notes"].to_string().contains("/etc/machine-id"),
        "machine-id is named, not touched: {v}"
    );
    assert!(f.host("/etc/machine-id").is_file());
    assert!(!f.host("/var/lib/connector/install.journal").exists());

    // Healthy: nothing planned, nothing run, nothing rewritten.
    let before = snapshot(&f);
    let (out, v) = install(f.path(), &["--payload", pay]);
    ok(&out, &v);
    assert_eq!(steps(&v, "plan"), Vec::<String>::new(), "{v:#}");
    assert_eq!(steps(&v, "results"), Vec::<String>::new());
    assert_same(&before, &snapshot(&f), "a healthy re-run wrote something");
}

/// Paths the package manager itself writes differently on each run (logs,
/// caches, timestamps): everything else must match byte for byte.
const PM_NOISE: &[&str] = &[
    // The fixture's own input: each root's repository is another directory.
    "etc/apt/sources.list",
    "var/log/apt",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/cache/apt",
    "var/cache/debconf",
    "var/lib/apt/lists",
    "var/lib/apt/extended_states",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/available-old",
    "var/lib/dpkg/diversions-old",
    "var/lib/dpkg/statoverride-old",
    "var/lib/dpkg/triggers/Lock",
    "var/lib/dpkg/lock",
    "var/lib/dpkg/lock-frontend",
    "var/lib/selinux/default/active/commit_num",
    // Counts the runs that took it (checked apart below).
    "var/lib/connector/installer.lock",
    // When the last run finished (checked apart below).
    "var/lib/connector/last-run.json",
    // Inode numbers and times of this tree's files: caches, never the
    // same in two trees.
    "var/lib/connector/installed.stamps",
    "var/lib/connector/labels.cache",
    "var/lib/connector/database.cache",
];

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the test-only kill switch: cargo test --features connector-installer/fault-injection (scripts/test does)"
)]
fn killed_at_every_step_boundary_converges_to_the_same_tree() {
    require_tool("semodule");
    let p = payload(Family::Deb);
    let pay = p.path().to_str().unwrap();

    // The reference: one uninterrupted run.
    let (reference, _repo) = debian_root(selinux_root("default"));
    let (out, v) = install(reference.path(), &["--payload", pay]);
    ok(&out, &v);
    let planned = steps(&v, "plan");
    assert_eq!(
        planned,
        ["laydown", "module", "labels", "headers", "enable"],
        "{v:#}"
    );
    let want = reference.contents(PM_NOISE);

    for n in 0..=planned.len() {
        let (f, _repo) = debian_root(selinux_root("default"));
        let out = installer(f.path(), "install", &["--payload", pay])
            .env("CONNECTOR_INSTALLER_TEST_KILL_AT_STEP", n.to_string())
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "kill at {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            f.host("/var/lib/connector/install.journal").is_file(),
            "the journal tells the next run"
        );
        let (out, v) = install(f.path(), &["--payload", pay]);
        ok(&out, &v);
        let resumed = &v["resumed"];
        assert_eq!(
            resumed["done"].as_array().unwrap().len(),
            n,
            "kill at {n}: {v:#}"
        );
        let left: Vec<String> = steps(&v, "results");
        assert_eq!(
            left,
            planned[n..].to_vec(),
            "kill at {n}: only what was left"
        );
        assert_same(
            &want,
            &f.contents(PM_NOISE),
            &format!("kill at {n}: the trees differ"),
        );
        // Two runs took the lock (the killed one and the one that resumed
        // it); the reference's single run once.
        let generation = |f: &Fixture| {
            std::fs::read_to_string(f.host("/var/lib/connector/installer.lock")).unwrap()
        };
        assert_eq!(generation(&f), "2\n", "kill at {n}");
        assert_eq!(generation(&reference), "1\n");
        // The run that finished the work is the one on record; a killed
        // run never gets to write one (its changes are in the journal), so
        // after a kill behind the last step nothing is on record.
        let record = f.host("/var/lib/connector/last-run.json");
        if n < planned.len() {
            let last: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
            assert_eq!(last["subcommand"], "install", "kill at {n}: {last}");
            assert_eq!(last["outcome"], "ok", "kill at {n}: {last}");
        } else {
            assert!(!record.exists(), "kill at {n}: nothing changed after it");
        }
    }
}

/// Holds a POSIX lock on `path` (the kind dpkg and rpm take) in a child.
fn hold_lock(path: &Path) -> std::process::Child {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time\nf=open(sys.argv[1],'w')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(120)",
        ])
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[test]
fn a_second_installer_is_refused_with_the_holders_pid() {
    let (f, _repo) = debian_root(Fixture::new());
    let p = payload(Family::Deb);
    // The first installer waits for a package transaction (someone holds
    // dpkg's lock) while holding our lock.
    let mut dpkg_lock = hold_lock(&f.host("/var/lib/dpkg/lock-frontend"));
    let mut first = installer(
        f.path(),
        "install",
        &[
            "--payload",
            p.path().to_str().unwrap(),
            "--lock-timeout",
            "60",
        ],
    )
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let mut err = BufReader::new(first.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "first: {seen}");
        seen.push_str(&line);
        if line.contains("waiting for the package manager") {
            break;
        }
    }
    let before = snapshot(&f);
    let second = installer(f.path(), "install", &["--dry-run"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(0), "a dry run takes no lock");
    let second = installer(f.path(), "install", &[]).output().unwrap();
    let msg = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", first.id())) && msg.contains("connector-insta"),
        "names the holder: {msg}"
    );
    assert_same(
        &before,
        &snapshot(&f),
        "the refused installer changed something",
    );
    // The transaction ends; the first installer finishes.
    dpkg_lock.kill().unwrap();
    dpkg_lock.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = first.wait().unwrap();
    assert!(status.success(), "first installer: {seen}{rest}");
    assert_eq!(doctor_exit(f.path()).0, 0);
}

#[test]
fn a_disk_without_room_is_refused_before_anything_is_written() {
    let disk = connector_tests::Tmpfs::mount("2m");
    let f = Fixture::at(disk.path());
    f.os_release("rhel-8.9");
    rpm_initdb(f.path());
    Kernel::new(EL_K1, Layout::El8)
        .kernel_package()
        .install(f.path());
    let p = payload(Family::Rpm);
    let before = snapshot(&f);
    let out = installer(
        f.path(),
        "install",
        &["--payload", p.path().to_str().unwrap()],
    )
    .output()
    .unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("no room for") && msg.contains("nothing was written"),
        "{msg}"
    );
    assert_same(&before, &snapshot(&f), "a refused install wrote something");
}

#[test]
fn uninstall_removes_what_install_laid_down() {
    let (f, _repo) = el_root(Fixture::new(), &[EL_K1]);
    let p = payload(Family::Rpm);
    let pristine = f.contents(&[]);
    let (out, v) = install(f.path(), &["--payload", p.path().to_str().unwrap()]);
    ok(&out, &v);
    assert!(f.host("/etc/kernel/postinst.d/connector").is_file());
    std::fs::write(f.host("/etc/connector/connector.conf"), "interval = 5\n").unwrap();
    let out = installer(f.path(), "uninstall", &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!f.host("/opt/connector").exists());
    assert!(!f.host("/etc/kernel/postinst.d/connector").exists());
    assert!(!f
        .host("/etc/systemd/system/multi-user.target.wants/connectord.service")
        .exists());
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/connector/connector.conf")).unwrap(),
        "interval = 5\n",
        "changed configuration kept"
    );
    let out = installer(f.path(), "uninstall", &["--purge"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!f.host("/etc/connector").exists());
    assert!(!f.host("/var/lib/connector").exists());
    // What is left is what was there, plus the headers the install brought
    // (packages are not the connector's to remove) and directories the
    // system owns that were created on the way.
    let now = f.contents(&[]);
    let extra: Vec<_> = now
        .iter()
        .filter(|e| !pristine.contains(e))
        .filter(|(p, _)| {
            !p.starts_with("var/lib/rpm")
                && !p.starts_with("usr/src/kernels")
                && !p.starts_with("var/cache/dnf")
                && (!p.starts_with("var/log") || p.starts_with("var/log/connector"))
                && !p.starts_with("var/lib/dnf")
                && !p.starts_with("etc/dnf")
                && !p.starts_with("lib/modules")
        })
        .collect();
    for (p, d) in &extra {
        let ours = [
            "opt/connector",
            "etc/connector",
            "var/lib/connector",
            "var/log/connector",
        ]
        .iter()
        .any(|o| p.starts_with(o));
        assert!(
            d.starts_with("dir") && !ours,
            "left behind: {p:?} {d} (only the system's directories created on the way may stay)"
        );
    }
}

#[test]
fn a_packaged_connector_is_uninstalled_by_the_package_manager() {
    let (f, _repo) = el_root(Fixture::new(), &[EL_K1]);
    Pkg::new("connector", "1.0.0", "1", "x86_64", vec![]).install(f.path());
    let out = installer(f.path(), "uninstall", &[]).output().unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    // The command for this root, as the package family spells it.
    let want = format!("rpm --root={} -e connector", f.path().display());
    assert!(msg.contains(&want), "{msg}");
}

/// connectord checking the root's kernel every second, as a service would.
struct Agent(std::process::Child);

impl Agent {
    fn start(root: &Path, kernel: &str) -> Agent {
        let child = Command::new(workspace_bin("connectord"))
            .args(["run", "--interval", "1", "--kernel", kernel, "--root"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Agent(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent_faults(f: &Fixture) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(f.host("/var/lib/connector/status.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(
        v["faults"]
            .as_array()?
            .iter()
            .filter_map(|x| x["id"].as_u64())
            .collect(),
    )
}

#[test]
fn repair_fixes_fault_11_and_waits_for_the_connector_to_agree() {
    let (f, _repo) = el_root(Fixture::new(), &[EL_K1]);
    let p = payload(Family::Rpm);
    let (out, v) = install(f.path(), &["--payload", p.path().to_str().unwrap()]);
    ok(&out, &v);
    // The headers package goes (an administrator's cleanup): fault 11.
    let devel = format!("kernel-devel-{}", EL_K1.trim_end_matches(".x86_64"));
    let e = Command::new("rpm")
        .arg("--root")
        .arg(f.path())
        .args(["--dbpath", "/var/lib/rpm", "-e", "--nodeps", &devel])
        .output()
        .unwrap();
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let _agent = Agent::start(f.path(), EL_K1);
    let start = std::time::Instant::now();
    while agent_faults(&f) != Some(vec![11]) {
        assert!(
            start.elapsed().as_secs() < 30,
            "the connector never raised fault 11: {:?}",
            agent_faults(&f)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let (out, v) = run_json(&mut installer(
        f.path(),
        "repair",
        &["--json", "--wait", "30"],
    ));
    ok(&out, &v);
    assert_eq!(v["before"][0]["id"], 11, "{v:#}");
    assert_eq!(steps(&v["install"], "results"), ["headers"], "{v:#}");
    assert_eq!(v["healthy"], true, "{v:#}");
    assert_eq!(v["left"], serde_json::json!([]));
    assert_eq!(
        v["connector_status"]["faults"],
        serde_json::json!([]),
        "the connector's own word: {v:#}"
    );
    assert!(v["waited_ms"].as_u64().unwrap() <= 30_000);
    assert_eq!(agent_faults(&f), Some(vec![]));
}

#[test]
fn repair_says_when_the_connector_does_not_report() {
    let (f, _repo) = el_root(Fixture::new(), &[EL_K1]);
    let p = payload(Family::Rpm);
    let (out, v) = install(f.path(), &["--payload", p.path().to_str().unwrap()]);
    ok(&out, &v);
    // Nothing to fix, and no connector running to confirm it.
    let (out, v) = run_json(&mut installer(
        f.path(),
        "repair",
        &["--json", "--wait", "2"],
    ));
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(v["healthy"], false);
    assert!(
        v["left"][0]
            .as_str()
            .unwrap()
            .contains("the connector did not report within 2 s"),
        "{v:#}"
    );
}

#[test]
fn inside_a_chroot_the_build_hosts_kernel_is_recognised_as_foreign() {
    require_tool("chroot");
    let (f, _repo) = el_root(Fixture::new(), &[EL_K1, EL_K2]);
    connector_tests::copy_host_program(f.path(), Path::new(BIN));
    // The payload, inside the image.
    let p = payload(Family::Rpm);
    let st = Command::new("cp")
        .arg("-a")
        .arg(p.path())
        .arg(f.host("/payload"))
        .status()
        .unwrap();
    assert!(st.success());
    let (out, v) = run_json(Command::new("chroot").arg(f.path()).arg(BIN).args([
        "install",
        "--dry-run",
        "--json",
        "--payload",
        "/payload",
    ]));
    ok(&out, &v);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("treated as an image"), "{err}");
    assert_eq!(v["live"], false);
    assert_eq!(v["root"], "/");
    let mut kernels: Vec<&str> = v["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    kernels.sort();
    let mut want = vec![EL_K1, EL_K2];
    want.sort();
    assert_eq!(kernels, want, "the image's kernels, not the build host's");
    assert!(!steps(&v, "plan").contains(&"start".to_string()));
}

#[test]
fn prepare_image_removes_a_planted_link_not_what_it_points_to() {
    let (f, _repo) = el_root(Fixture::new(), &[EL_K1]);
    f.file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    f.symlink("/var/lib/connector/agent-id", "/etc/passwd");
    f.symlink("/var/log/connector/old.log", "../../../etc/passwd");
    let p = payload(Family::Rpm);
    let (out, v) = install(
        f.path(),
        &["--payload", p.path().to_str().unwrap(), "--prepare-image"],
    );
    ok(&out, &v);
    assert!(!f.host("/var/lib/connector/agent-id").is_symlink());
    assert!(!f.host("/var/log/connector/old.log").is_symlink());
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/passwd")).unwrap(),
        "root:x:0:0::/root:/bin/sh\n",
        "the link's target is untouched"
    );
}

/// Datagrams a test socket received, each as its fields (the journal's
/// native protocol: KEY=value lines; the binary form is not used by these).
fn received(sock: &std::os::unix::net::UnixDatagram) -> Vec<Vec<u8>> {
    sock.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn fields(entry: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(entry)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every change an install makes goes to the journal as one structured
/// entry (a stable MESSAGE_ID per kind, the subcommand, the root); doctor
/// shows the run from its last-run record; a run that changes nothing
/// sends nothing; without a journal the same goes to syslog.
#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the test-only socket switch: cargo test --features connector-installer/fault-injection (scripts/test does)"
)]
fn every_change_goes_to_the_journal_and_doctor_shows_the_last_run() {
    use connector_installer::audit::{ChangeKind, TEST_JOURNAL_ENV, TEST_SYSLOG_ENV};
    use std::os::unix::net::UnixDatagram;
    require_tool("semodule");
    let p = payload(Family::Deb);
    let pay = p.path().to_str().unwrap();
    let (f, _repo) = debian_root(selinux_root("default"));
    let socks = tempfile::tempdir().unwrap();
    let journal_path = socks.path().join("journal");
    let syslog_path = socks.path().join("syslog");
    let journal = UnixDatagram::bind(&journal_path).unwrap();
    let syslog = UnixDatagram::bind(&syslog_path).unwrap();
    let run = |args: &[&str], sub: &[&str]| {
        let out = Command::new(BIN)
            .args(sub)
            .arg("--root")
            .arg(f.path())
            .arg("--json")
            .args(args)
            .env(TEST_JOURNAL_ENV, &journal_path)
            .env(TEST_SYSLOG_ENV, &syslog_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sub:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["--payload", pay], &["install"]);
    let entries: Vec<Vec<(String, String)>> =
        received(&journal).iter().map(|e| fields(e)).collect();
    let get = |e: &[(String, String)], k: &str| -> Vec<String> {
        e.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let kinds: Vec<String> = entries
        .iter()
        .map(|e| get(e, "CONNECTOR_CHANGE").concat())
        .collect();
    assert_eq!(
        kinds,
        [
            "files-laid-down",
            "module-installed",
            "labels-set",
            "package-installed",
            "service-enabled"
        ],
        "{entries:?}"
    );
    let root = f.path().display().to_string();
    for e in &entries {
        assert_eq!(get(e, "SYSLOG_IDENTIFIER"), ["connector-installer"]);
        assert_eq!(get(e, "CONNECTOR_SUBCOMMAND"), ["install"]);
        assert_eq!(get(e, "CONNECTOR_ROOT"), std::slice::from_ref(&root));
        assert_eq!(get(e, "PRIORITY"), ["5"]);
        assert!(!get(e, "MESSAGE").concat().is_empty());
        assert!(!get(e, "CONNECTOR_OBJECT").is_empty(), "{e:?}");
    }
    let ids: Vec<String> = entries
        .iter()
        .map(|e| get(e, "MESSAGE_ID").concat())
        .collect();
    assert_eq!(
        ids,
        [
            ChangeKind::FilesLaidDown,
            ChangeKind::ModuleInstalled,
            ChangeKind::LabelsSet,
            ChangeKind::PackageInstalled,
            ChangeKind::ServiceEnabled
        ]
        .map(|k| k.message_id().to_string())
    );
    assert_eq!(
        get(&entries[3], "CONNECTOR_OBJECT"),
        [format!("linux-headers-{DEB_K1}")]
    );
    assert!(received(&syslog).is_empty(), "the journal took them");

    // doctor shows the run.
    let (_, v) = run_json(&mut installer(f.path(), "doctor", &["--json"]));
    let last = &v["last_run"];
    assert_eq!(last["subcommand"], "install", "{v:#}");
    assert_eq!(last["outcome"], "ok");
    let recorded: Vec<&str> = last["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(recorded, kinds);
    let text =
        String::from_utf8_lossy(&installer(f.path(), "doctor", &[]).output().unwrap().stdout)
            .into_owned();
    assert!(text.contains("Last run: install at "), "{text}");

    // A run that changes nothing sends nothing and writes nothing: not
    // `install`, not `selinux install` (whose labels are all right), not a
    // file in the root (inode, change and modification times compared).
    let before = std::fs::read(f.host("/var/lib/connector/last-run.json")).unwrap();
    let reruns: [(&[&str], &[&str]); 2] = [
        (&["install"], &["--payload", pay]),
        (&["selinux", "install"], &[]),
    ];
    for (sub, args) in reruns {
        let stamps = connector_tests::stamps(f.path());
        run(args, sub);
        let again: Vec<String> = received(&journal)
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect();
        assert!(
            again.is_empty(),
            "{sub:?}: a healthy re-run changes nothing: {again:?}"
        );
        let written = connector_tests::changed(&stamps, &connector_tests::stamps(f.path()));
        assert!(
            written.is_empty(),
            "{sub:?}: a healthy re-run wrote {written:?}"
        );
    }
    assert_eq!(
        std::fs::read(f.host("/var/lib/connector/last-run.json")).unwrap(),
        before
    );

    // A label gone wrong is still found and fixed, by either command, and
    // only it: one labels-set entry naming it.
    let bin = f.host("/opt/connector/bin/connectord");
    let right = connector_tests::selinux_label(&bin);
    for (sub, args) in reruns {
        connector_tests::set_label(&bin, &right.replace(":connectord_exec_t:", ":bin_t:"));
        let stamps = connector_tests::stamps(f.path());
        run(args, sub);
        let sent: Vec<Vec<(String, String)>> =
            received(&journal).iter().map(|e| fields(e)).collect();
        assert_eq!(sent.len(), 1, "{sub:?}: {sent:?}");
        assert_eq!(get(&sent[0], "CONNECTOR_CHANGE"), ["labels-set"]);
        assert_eq!(
            get(&sent[0], "CONNECTOR_OBJECT"),
            ["/opt/connector/bin/connectord"]
        );
        assert_eq!(connector_tests::selinux_label(&bin), right, "{sub:?}");
        let written = connector_tests::changed(&stamps, &connector_tests::stamps(f.path()));
        // The label, the record of it, and the installer's own lock (its
        // generation) and journal in the state directory, and (`install`)
        // the file's stamp (the label moved its ctime): nothing else.
        let expected = [
            "opt/connector/bin/connectord",
            "var/lib/connector",
            "var/lib/connector/installer.lock",
            "var/lib/connector/last-run.json",
            "var/lib/connector/installed.stamps",
        ];
        for w in [
            "opt/connector/bin/connectord",
            "var/lib/connector/last-run.json",
        ] {
            assert!(
                written.contains(&PathBuf::from(w)),
                "{sub:?}: {w}: {written:?}"
            );
        }
        assert!(
            written
                .iter()
                .all(|w| expected.iter().any(|e| w == Path::new(e))),
            "{sub:?}: only the label and the record of it: {written:?}"
        );
    }

    // No journal: the same to syslog, one line per change.
    drop(journal);
    std::fs::remove_file(&journal_path).unwrap();
    run(&[], &["selinux", "remove"]);
    let lines: Vec<String> = received(&syslog)
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("<29>connector-installer["),
        "{lines:?}"
    );
    assert!(
        lines[0].contains(&format!(
            "MESSAGE_ID={}",
            ChangeKind::ModuleRemoved.message_id()
        )),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("CONNECTOR_SUBCOMMAND=selinux remove"),
        "{lines:?}"
    );
}

/// `headers` on a terminal (a pseudo-terminal from script(1)): dnf's own
/// output streams through, indented and prefixed; through a pipe the same
/// run is plain timestamped lines without a single control character.
#[test]
fn headers_shows_the_package_managers_progress_on_a_terminal_and_plain_lines_in_a_pipe() {
    require_tool("script");
    let (tty_root, _repo1) = el_root(Fixture::new(), &[EL_K1]);
    let cmd = format!(
        "{BIN} headers --root {}",
        shell_words(tty_root.path().to_str().unwrap())
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}");
    let streamed: Vec<&str> = screen
        .lines()
        .filter(|l| l.starts_with("    dnf: "))
        .collect();
    assert!(
        streamed
            .iter()
            .any(|l| l.contains(&format!("kernel-devel-{EL_K1}"))),
        "dnf's output streams through on a terminal:\n{screen}"
    );
    assert!(
        screen.contains("connector-installer: installing kernel-devel"),
        "{screen}"
    );

    let (pipe_root, _repo2) = el_root(Fixture::new(), &[EL_K1]);
    let out = installer(pipe_root.path(), "headers", &[])
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !log.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in a pipe: {log:?}"
    );
    let dnf_lines: Vec<&str> = log.lines().filter(|l| l.contains(" dnf: ")).collect();
    assert!(!dnf_lines.is_empty(), "{log}");
    for line in log.lines() {
        // 2026-12-02T04:31:00Z, then who said it.
        let (stamp, rest) = line.split_once(' ').unwrap_or(("", line));
        assert!(
            stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "not timestamped: {line}"
        );
        assert!(
            rest.starts_with("connector-installer: ") || rest.starts_with("dnf: "),
            "{line}"
        );
    }

    // -q: nothing but errors.
    let (quiet_root, _repo3) = el_root(Fixture::new(), &[EL_K1]);
    let out = installer(quiet_root.path(), "headers", &["-q"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// A path as one shell word.
fn shell_words(p: &str) -> String {
    format!("'{}'", p.replace('\'', "'\\''"))
}
