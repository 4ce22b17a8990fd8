//! connectord as systemd runs it: a long-running process that compiles its
//! probe against the headers at every start, raises fault 11 while that
//! compile fails and clears it by itself once the headers appear — with
//! Debian's real header packages, the real clang and the real kernel.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connector_tests::debian_headers::{debian_headers, unpack};
use connector_tests::Fixture;
use connectord::{read_status, Status, STATUS_PATH};

/// connectord in a private mount namespace with tracefs mounted (this
/// machine's kernel has tracepoints but mounts no tracefs; the namespace
/// keeps the mount from the host), else plainly.
fn spawn_connectord(root: &Path, release: &str, notify: Option<&Path>) -> Child {
    let bin = env!("CARGO_BIN_EXE_connectord");
    let script = r#"mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null; exec "$@""#;
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(bin)
        .args(["run", "--interval", "1", "--kernel", release, "--root"])
        .arg(root)
        .envs(notify.map(|n| ("NOTIFY_SOCKET", n)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(status: &Path, pred: &dyn Fn(&Status) -> bool, what: &str) -> Status {
    let start = Instant::now();
    loop {
        if let Ok(s) = read_status(status) {
            if pred(&s) {
                return s;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {:?}",
            read_status(status)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connectord/real-tools (scripts/test)"
)]
fn fault_11_follows_the_compile_and_clears_by_itself_when_headers_arrive() {
    connector_tests::require_tool("clang");
    connector_tests::require_tool("unshare");
    let h = debian_headers();
    let f = Fixture::new();
    f.os_release("debian-12");
    let status = f.host(STATUS_PATH);
    // connectord speaks systemd's readiness protocol: this socket stands in
    // for the service manager's.
    let notify_path = f.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let told = || {
        let mut buf = [0u8; 4096];
        let n = notify
            .recv(&mut buf)
            .expect("a notify message from connectord");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut child = spawn_connectord(f.path(), &h.release, Some(&notify_path));

    // Ready after its first round, with that round's verdict as its status
    // line, and the round's status already published.
    let first = told();
    let lines: Vec<&str> = first.lines().collect();
    assert!(lines.contains(&"READY=1"), "{first:?}");
    assert!(
        lines.contains(&"STATUS=fault 11: Required kernel-devel package is missing"),
        "{first:?}"
    );
    assert!(read_status(&status).is_ok(), "published before READY=1");

    let s = wait_for(
        &status,
        &|s| s.faults.iter().any(|f| f.id == 11),
        "fault 11",
    );
    assert_eq!(s.kernel, h.release);
    assert!(!s.headers_present && !s.probe_loaded);
    assert!(
        s.faults[0]
            .detail
            .starts_with(&format!("linux-headers-{} is needed", h.release)),
        "{}",
        s.faults[0].detail
    );
    let compile = s.compile.as_ref().unwrap();
    assert!(
        compile
            .error
            .as_deref()
            .unwrap_or("")
            .contains("no kernel header tree"),
        "{compile:?}"
    );

    // The administrator installs the headers (the packages' files).
    for deb in [&h.flavour, &h.common, &h.kbuild] {
        unpack(deb, f.path());
    }
    let s = wait_for(&status, &|s| s.faults.is_empty(), "the fault to clear");
    assert!(s.headers_present);
    let tree = format!("/usr/src/linux-headers-{}", h.release);
    assert_eq!(s.headers_path.as_deref(), Some(tree.as_str()));
    let compile = s.compile.clone().unwrap();
    let object = compile.object.clone().unwrap();
    assert!(object.starts_with("/var/lib/connector/probe/"), "{object}");
    assert!(f.host(&object).is_file());
    assert!(s.probe_loaded, "loaded and attached: {:?}", s.probe_error);
    // The status line follows the verdict; ready is said once.
    let next = told();
    assert_eq!(next.trim_end(), "STATUS=probe attached", "{next:?}");

    // The attached probe counts the executions that happen on this machine.
    let counted = wait_for(
        &status,
        &|s| {
            let _ = Command::new("true").status();
            s.probe_events.unwrap_or(0) > 0
        },
        "the probe to count an exec",
    );
    assert!(counted.probe_events.unwrap() > 0);
    // Later rounds take the object from the cache, unchanged inputs.
    let s = wait_for(
        &status,
        &|s| s.compile.as_ref().is_some_and(|c| c.cached),
        "a round from the cache",
    );
    assert_eq!(s.compile.unwrap().object.as_deref(), Some(object.as_str()));

    // The headers go again: the cache does not hide it, fault 11 is back.
    std::fs::remove_dir_all(f.host(&format!(
        "/usr/src/linux-headers-{}-common",
        h.release.trim_end_matches("-amd64")
    )))
    .unwrap();
    let s = wait_for(
        &status,
        &|s| s.faults.iter().any(|f| f.id == 11),
        "fault 11 again",
    );
    assert!(
        !s.probe_loaded,
        "the probe is unloaded with its headers gone"
    );
    assert!(
        s.faults[0].detail.contains("fatal error"),
        "the compiler's own words: {}",
        s.faults[0].detail
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // `connectord status` agrees: a fault, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_connectord"))
        .args(["status", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"id\": 11"));
}

/// connector.conf is read at start: its interval is used, and what cannot
/// be used is published in the status (and logged), not ignored.
#[test]
fn the_configuration_is_used_and_its_problems_are_published() {
    let f = Fixture::new();
    f.os_release("debian-12");
    f.file(
        connector_host::layout::CONNECTOR_CONF,
        "interval = 7\ncolour = blue\ninterval = 99999\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_connectord"))
        .args(["run", "--once", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let s = read_status(&f.host(STATUS_PATH)).unwrap();
    let problems: Vec<(Option<u32>, &str)> = s
        .config_problems
        .iter()
        .map(|p| (p.line, p.problem.as_str()))
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(problems[0].0, Some(2));
    assert!(
        problems[0].1.contains("unknown key `colour`"),
        "{problems:?}"
    );
    assert_eq!(problems[1].0, Some(3), "set again");
    assert!(problems[2].1.contains("outside"), "{problems:?}");
    assert!(log.contains("connector.conf:2: unknown key"), "{log}");

    // A clean file: no problem published.
    f.file(connector_host::layout::CONNECTOR_CONF, "interval = 7\n");
    Command::new(env!("CARGO_BIN_EXE_connectord"))
        .args(["run", "--once", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    let s = read_status(&f.host(STATUS_PATH)).unwrap();
    assert!(s.config_problems.is_empty(), "{:?}", s.config_problems);
}
