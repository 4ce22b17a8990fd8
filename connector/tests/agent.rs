//! connectord as systemd runs it: a long-running process that raises
//! fault 11 while the running kernel's headers are missing and clears it by
//! itself once they appear.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use connector_tests::{Fixture, Kernel, Layout};
use connectord::{read_status, STATUS_PATH};

#[test]
fn fault_11_clears_by_itself_when_headers_arrive() {
    let f = Fixture::new();
    f.os_release("debian-12");
    let release = connector_host::inventory::running_release().unwrap();
    let status = f.host(STATUS_PATH);
    let mut child = Command::new(env!("CARGO_BIN_EXE_connectord"))
        .args(["run", "--interval", "1", "--root"])
        .arg(f.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |pred: &dyn Fn(&connectord::Status) -> bool, what: &str| {
        let start = Instant::now();
        loop {
            if let Ok(s) = read_status(&status) {
                if pred(&s) {
                    return s;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let s = wait_for(&|s| s.faults.iter().any(|f| f.id == 11), "fault 11");
    assert_eq!(s.kernel, release);
    assert!(!s.headers_present);

    // The administrator installs the headers (laid out as a package would).
    let k = Kernel::new(&release, Layout::El8);
    f.lay(&k.kernel_files()).lay(&k.header_files());
    let s = wait_for(&|s| s.faults.is_empty(), "the fault to clear");
    assert!(s.headers_present);
    assert_eq!(
        s.headers_path.as_deref(),
        Some(format!("/usr/src/kernels/{release}").as_str())
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // `connectord status` agrees.
    let out = Command::new(env!("CARGO_BIN_EXE_connectord"))
        .args(["status", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"faults\": []"));
}

/// connector.conf is read at start: its interval is used, and what cannot
/// be used is published in the status (and logged), not ignored.
#[test]
fn the_configuration_is_used_and_its_problems_are_published() {
    let f = Fixture::new();
    f.os_release("debian-12");
    f.file(
        connectord::config::PATH,
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
    f.file(connectord::config::PATH, "interval = 7\n");
    Command::new(env!("CARGO_BIN_EXE_connectord"))
        .args(["run", "--once", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    let s = read_status(&f.host(STATUS_PATH)).unwrap();
    assert!(s.config_problems.is_empty(), "{:?}", s.config_problems);
}
