//! `connector-installer selinux …` and doctor's SELinux cause of fault 11,
//! against scratch copies of the real Debian policy store.
//!
//! Tier: real tools (semodule, setfiles) in scratch roots.

use std::process::{Command, Output};
use std::time::Instant;

use connector_tests::{require_tool, selinux_root, Fixture, Kernel, Layout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

fn run(args: &[&str]) -> (Output, Value) {
    connector_tests::run_json(Command::new(BIN).args(args))
}

/// An Oracle Linux 8 UEK 7 image with headers present, the connector's
/// binary laid down, and SELinux enforcing in its config.
fn uek_image() -> Fixture {
    require_tool("semodule");
    let f = selinux_root("default");
    f.os_release("ol-8.9");
    let k = Kernel::new("5.15.0-200.131.27.el8uek.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    f
}

fn selinux_faults(v: &Value) -> Vec<Value> {
    v["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["cause"] == "selinux")
        .cloned()
        .collect()
}

#[test]
fn uek_headers_present_but_no_module_is_fault_11_then_fixed() {
    let f = uek_image();
    let root = f.path().to_str().unwrap();
    let (out, v) = run(&["doctor", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert!(
        v["kernels"][0]["headers"]["present"] == true,
        "headers are present: {v}"
    );
    let faults = selinux_faults(&v);
    assert_eq!(faults.len(), 1, "{v}");
    assert_eq!(faults[0]["id"], 11);
    assert!(
        faults[0]["detail"]
            .as_str()
            .unwrap()
            .contains("not installed"),
        "{}",
        faults[0]
    );
    assert_eq!(
        faults[0]["fix"],
        format!(
            "connector-installer selinux install --root {}",
            f.root().path().display()
        )
    );

    // The fix, exactly as doctor gave it.
    let (out, v) = run(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["action"], "installed");
    let cmds: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        cmds.iter().filter(|c| c.starts_with("semodule")).count(),
        1,
        "{cmds:?}"
    );
    assert!(
        cmds.iter().any(|c| c.starts_with("setfiles -F -r")),
        "labels set: {cmds:?}"
    );
    assert_eq!(v["module"]["state"], "installed");
    assert_eq!(v["module"]["current"], true);

    let (out, v) = run(&["doctor", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert!(selinux_faults(&v).is_empty());

    // Re-run: zero rebuilds, fast.
    let start = Instant::now();
    let (out, v) = run(&["selinux", "install", "--root", root, "--json"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["action"], "unchanged");
    let cmds: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        !cmds.iter().any(|c| c.starts_with("semodule")),
        "no rebuild: {cmds:?}"
    );
    assert!(took.as_secs() < 5, "{took:?}");

    // Status, then remove twice.
    let (out, v) = run(&["selinux", "status", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    let (_, v) = run(&["selinux", "remove", "--root", root, "--json"]);
    assert_eq!(v["action"], "removed");
    let (out, v) = run(&["selinux", "remove", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["action"], "not-installed");
    assert!(v["commands"].as_array().unwrap().is_empty());
}

#[test]
fn denials_in_the_audit_log_are_a_fault_with_counts() {
    let f = uek_image();
    f.file(
        "/var/log/audit/audit.log",
        concat!(
            "type=AVC msg=audit(1700000000.100:10): avc:  denied  { confidentiality } for  pid=9 comm=\"connectord\" lockdown_reason=\"use of bpf to read kernel RAM\" scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 tclass=lockdown permissive=0\n",
            "type=SYSCALL msg=audit(1700000000.100:10): arch=c000003e syscall=321 success=no exit=-13\n",
            "type=AVC msg=audit(1700000060.200:11): avc:  denied  { confidentiality } for  pid=9 comm=\"connectord\" lockdown_reason=\"use of bpf to read kernel RAM\" scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 tclass=lockdown permissive=0\n",
            "type=AVC msg=audit(1700000061.000:12): avc:  denied  { relabelfrom } for  pid=1 comm=\"systemd-tmpfile\" scontext=system_u:system_r:systemd_tmpfiles_t:s0 tcontext=system_u:object_r:var_t:s0 tclass=dir permissive=0\n",
        ),
    );
    let root = f.path().to_str().unwrap();
    let (_, v) = run(&["doctor", "--root", root, "--json"]);
    let faults = selinux_faults(&v);
    let denial = faults
        .iter()
        .find(|f| f["detail"].as_str().unwrap().contains("SELinux denied"))
        .unwrap_or_else(|| panic!("{v}"));
    let detail = denial["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "denied { confidentiality } on connectord_t:lockdown 2 time(s), last at 1700000060.200"
        ),
        "{detail}"
    );
    assert!(detail.contains("use of bpf to read kernel RAM"), "{detail}");
    assert!(
        !detail.contains("relabelfrom"),
        "other domains are not ours: {detail}"
    );
    let d = &v["selinux"]["denials"][0];
    assert_eq!(d["count"], 2);

    // The module installed afterwards answers those denials: history, no
    // longer a fault. A denial after it is one again.
    let (out, _) = run(&["selinux", "install", "--root", root, "--json"]);
    assert!(out.status.success());
    let (_, v) = run(&["doctor", "--root", root, "--json"]);
    assert!(
        !v["faults"].to_string().contains("SELinux denied"),
        "denials older than the module: {v:#}"
    );
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 5;
    let mut log = std::fs::read_to_string(f.host("/var/log/audit/audit.log")).unwrap();
    log.push_str(&format!(
        "type=AVC msg=audit({later}.000:13): avc:  denied  {{ bpf }} for  pid=9 comm=\"connectord\" \
         scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 \
         tclass=capability2 permissive=0\n"
    ));
    std::fs::write(f.host("/var/log/audit/audit.log"), log).unwrap();
    let (_, v) = run(&["doctor", "--root", root, "--json"]);
    let faults = selinux_faults(&v);
    assert!(
        faults
            .iter()
            .any(|f| f["detail"].as_str().unwrap().contains("denied { bpf }")),
        "a denial after the module counts: {v:#}"
    );
}

#[test]
fn selinux_disabled_or_absent_is_nothing_to_do() {
    let f = Fixture::new();
    f.os_release("debian-12");
    let root = f.path().to_str().unwrap();
    let (out, v) = run(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["not_applicable"], "no-config");
    assert_eq!(v["action"], "nothing-to-do");
    f.file(
        "/etc/selinux/config",
        "SELINUX=disabled\nSELINUXTYPE=default\n",
    );
    let (_, v) = run(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(v["not_applicable"], "disabled");
    assert!(v["commands"].as_array().unwrap().is_empty());
}

#[test]
fn unknown_policy_type_is_a_clear_error() {
    let f = Fixture::new();
    f.os_release("debian-12");
    f.file(
        "/etc/selinux/config",
        "SELINUX=enforcing\nSELINUXTYPE=strict\n",
    );
    let out = Command::new(BIN)
        .args(["selinux", "install", "--root", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SELINUXTYPE=strict") && err.contains("no policy store"),
        "{err}"
    );
}

#[test]
fn semodule_missing_says_which_package_provides_it() {
    let f = uek_image();
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["selinux", "install", "--root", f.path().to_str().unwrap()])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("semodule is not installed"), "{err}");
    assert!(err.contains("policycoreutils"), "names the package: {err}");
}
