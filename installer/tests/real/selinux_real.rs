//! `connector-installer selinux …` and doctor's SELinux cause of fault 11,
//! against scratch copies of the real Debian policy store.
//!
//! Tier: real tools (semodule) in scratch roots.
#![cfg(feature = "real-tools")]

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

/// `selinux install --root ROOT --json`: exit 0, the module installed.
fn install_module(root: &str) -> Value {
    let (out, v) = run(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["action"], "installed");
    v
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
    let v = install_module(root);
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
    assert_eq!(
        v["relabeled"],
        serde_json::json!(["/opt/connector/bin/connectord"]),
        "labels set in this process: {v}"
    );
    assert!(
        connector_tests::selinux_label(&f.host("/opt/connector/bin/connectord"))
            .contains(":connectord_exec_t:"),
        "{v}"
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
    assert!(cmds.is_empty(), "nothing runs: {cmds:?}");
    assert_eq!(v["relabeled"], serde_json::json!([]), "{v}");
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

// --- Old RHEL-family policies (the project's own fixture bases) ----------

use connector_tests::selinux_base::{self as sb, Name};
use std::collections::BTreeSet;

fn shape() -> sb::ModuleShape {
    sb::ModuleShape::parse(connector_policy::MODULE_CIL)
}

/// What RHEL/OL 8.0-8.3 lack.
fn el80() -> BTreeSet<Name> {
    [
        Name::class("perf_event"),
        Name::perm("capability2", "bpf"),
        Name::perm("capability2", "perfmon"),
        Name::class("lockdown"),
    ]
    .into_iter()
    .collect()
}

/// An Oracle Linux 8 UEK image whose SELinux store holds a fixture base.
fn old_image(lacks: &BTreeSet<Name>, unknown: sb::Unknown) -> Fixture {
    for t in ["semodule", "sesearch"] {
        require_tool(t);
    }
    let f = sb::store_root(&sb::base_cil(&shape(), lacks, unknown));
    f.os_release("ol-8.9");
    let k = Kernel::new("5.15.0-200.131.27.el8uek.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    f
}

fn right<'a>(v: &'a Value, class: &str, perm: &str) -> &'a Value {
    v["rights"]["rights"]
        .as_array()
        .unwrap_or_else(|| panic!("no rights: {v}"))
        .iter()
        .find(|r| r["class"] == class && r["permission"] == perm)
        .unwrap_or_else(|| panic!("no {class} {perm}: {v}"))
}

#[test]
fn an_rhel_8_0_image_installs_the_module_and_says_what_the_kernel_will_do() {
    let f = old_image(&el80(), sb::Unknown::Allow);
    let root = f.path().to_str().unwrap();
    install_module(root);
    let (out, v) = run(&["selinux", "status", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert!(
        v["rights"]["source"]
            .as_str()
            .unwrap()
            .ends_with("/etc/selinux/fixture/policy/policy.33"),
        "{v}"
    );
    assert_eq!(v["rights"]["handle_unknown"], "allow");
    assert_eq!(right(&v, "bpf", "prog_load")["state"], "granted");
    assert_eq!(right(&v, "capability2", "syslog")["state"], "granted");
    assert_eq!(right(&v, "process2", "nnp_transition")["state"], "granted");
    assert_eq!(right(&v, "process2", "nnp_transition")["source"], "init_t");
    for (c, p) in [
        ("perf_event", "open"),
        ("capability2", "bpf"),
        ("lockdown", "confidentiality"),
    ] {
        assert_eq!(right(&v, c, p)["state"], "not-defined", "{c} {p}");
        assert_eq!(right(&v, c, p)["kernel"], "allowed", "{c} {p}");
    }
    let out = Command::new(BIN)
        .args(["selinux", "status", "--root", root])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("handle_unknown=allow"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("perf_event open")
                && l.contains("not defined by this policy: allowed")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("bpf prog_load") && l.contains("granted")),
        "{text}"
    );
    let (_, v) = run(&["doctor", "--root", root, "--json"]);
    assert!(selinux_faults(&v).is_empty(), "{v:#}");
    assert_eq!(
        right(&v["selinux"], "perf_event", "tracepoint")["state"],
        "not-defined"
    );
    let out = Command::new(BIN)
        .args(["doctor", "--root", root])
        .output()
        .unwrap();
    let doctor = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}\n{doctor}");
    let line = doctor
        .lines()
        .find(|l| l.contains("not defined by this policy, allowed by its handle_unknown"))
        .unwrap_or_else(|| panic!("{doctor}"));
    assert!(
        line.contains("perf_event open") && line.contains("capability2 bpf"),
        "{line}"
    );
    assert!(!line.contains("bpf prog_load"), "{line}");
}

#[test]
fn a_policy_that_denies_what_it_cannot_name_is_a_fault() {
    let f = old_image(&el80(), sb::Unknown::Deny);
    let root = f.path().to_str().unwrap();
    let (out, _) = run(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(0), "the module still links");
    let (out, v) = run(&["selinux", "status", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(right(&v, "perf_event", "open")["kernel"], "denied");
    let (out, v) = run(&["doctor", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let faults = selinux_faults(&v);
    assert_eq!(faults.len(), 1, "{v:#}");
    let detail = faults[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("the kernel will refuse connectord_t: capability2 bpf"),
        "{detail}"
    );
    assert!(detail.contains("perf_event open"), "{detail}");
    assert!(!detail.contains("bpf prog_load"), "{detail}");
    assert!(
        faults[0]["fix"]
            .as_str()
            .unwrap()
            .contains("update the base policy"),
        "{}",
        faults[0]
    );
}

#[test]
fn a_module_the_base_rejects_is_a_fault_with_the_resolver_message_until_fixed() {
    // A base without init_t: not one the module supports, so it is
    // rejected, and the store is left as it was.
    let lacks: BTreeSet<Name> = [Name::ty("init_t")].into_iter().collect();
    let f = old_image(&lacks, sb::Unknown::Allow);
    let root = f.path().to_str().unwrap();
    let out = Command::new(BIN)
        .args(["selinux", "install", "--root", root])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the base policy rejected"), "{err}");
    let record = f.host("/var/lib/connector/selinux-module.failed");
    assert!(record.is_file());
    let (_, v) = run(&["doctor", "--root", root, "--json"]);
    let faults = selinux_faults(&v);
    let rejected = faults
        .iter()
        .find(|x| x["detail"].as_str().unwrap().contains("rejected it"))
        .unwrap_or_else(|| panic!("{v:#}"));
    let detail = rejected["detail"].as_str().unwrap();
    assert!(detail.contains("Failed to resolve"), "{detail}");
    assert!(
        detail.contains(&format!("module {}", connector_policy::module_version())),
        "{detail}"
    );
    assert!(
        rejected["fix"]
            .as_str()
            .unwrap()
            .contains("selinux install --root"),
        "{rejected}"
    );

    // The base is updated (one with init_t), the install then succeeds:
    // the record and the fault go.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.cil");
    std::fs::write(
        &base,
        sb::base_cil(&shape(), &BTreeSet::new(), sb::Unknown::Allow),
    )
    .unwrap();
    let st = Command::new("semodule")
        .arg("-p")
        .arg(f.path())
        .args(["-s", sb::STORE, "-n", "-X", "100", "-i"])
        .arg(&base)
        .status()
        .unwrap();
    assert!(st.success());
    let (out, _) = run(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!record.exists(), "the record is cleared");
    let (_, v) = run(&["doctor", "--root", root, "--json"]);
    assert!(selinux_faults(&v).is_empty(), "{v:#}");
}
