//! The module against scratch copies of Debian's real policy stores
//! (selinux-policy-default and selinux-policy-mls), with the real semodule,
//! checked with the real sesearch, seinfo and selabel_lookup.
//!
//! Tier: real tools in scratch roots. Each install rebuilds a whole policy
//! (5-9 s here).
#![cfg(feature = "real-tools")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use connector_host::Root;
use connector_policy::{ModuleState, PolicyError, Store};
use connector_tests::{require_tool, Fixture};

/// A root holding a copy of the host's store for `ty` (default or mls).
fn scratch(ty: &str) -> Fixture {
    for t in ["semodule", "sesearch", "seinfo", "selabel_lookup"] {
        require_tool(t);
    }
    connector_tests::selinux_root(ty)
}

fn policy_file(f: &Fixture, ty: &str) -> PathBuf {
    let dir = f.host(&format!("/etc/selinux/{ty}/policy"));
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("policy.")
        })
        .expect("a binary policy")
}

fn tool(args: &[&str], policy: &Path) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .arg(policy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `TARGET:CLASS -> perms` of the direct rules of connectord_t.
fn direct_rules(policy: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let text = tool(&["sesearch", "-A", "-s", "connectord_t", "-ds"], policy);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim().trim_end_matches(';');
        let Some(rest) = line.strip_prefix("allow connectord_t ") else {
            continue;
        };
        let (tc, perms) = match rest.split_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let tc = tc.replacen("connectord_t:", "self:", 1);
        let perms = perms.trim().trim_start_matches('{').trim_end_matches('}');
        out.entry(tc)
            .or_default()
            .extend(perms.split_whitespace().map(String::from));
    }
    out
}

fn allowlist() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.txt"))
        .unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut w = line.split_whitespace();
        let tc = w.next().unwrap().to_string();
        out.entry(tc).or_default().extend(w.map(String::from));
    }
    out
}

fn assert_required_rules(policy: &Path) {
    let rules = direct_rules(policy);
    let want: &[(&str, &[&str])] = &[
        (
            "self:bpf",
            &[
                "map_create",
                "map_read",
                "map_write",
                "prog_load",
                "prog_run",
            ],
        ),
        ("self:capability2", &["bpf", "perfmon"]),
        ("self:capability", &["sys_admin", "sys_resource"]),
        (
            "self:perf_event",
            &["open", "cpu", "kernel", "read", "write", "tracepoint"],
        ),
        ("self:lockdown", &["confidentiality", "integrity"]),
        ("tracefs_t:file", &["read"]),
        ("debugfs_t:dir", &["search"]),
        ("bpf_t:dir", &["add_name", "create"]),
        ("bpf_t:file", &["create", "write"]),
        ("system_map_t:file", &["read"]),
        ("src_t:file", &["read"]),
        ("modules_object_t:lnk_file", &["read"]),
        ("connectord_var_lib_t:file", &["create", "write", "rename"]),
    ];
    for (tc, perms) in want {
        let got = rules
            .get(*tc)
            .unwrap_or_else(|| panic!("no rule for {tc}: {rules:?}"));
        for p in *perms {
            assert!(got.contains(*p), "{tc} lacks {p}: {got:?}");
        }
    }
    let tt = tool(
        &[
            "sesearch",
            "-T",
            "-s",
            "init_t",
            "-t",
            "connectord_exec_t",
            "-c",
            "process",
        ],
        policy,
    );
    assert!(
        tt.contains("type_transition init_t connectord_exec_t:process connectord_t;"),
        "{tt}"
    );
    let tr = tool(
        &[
            "sesearch",
            "-A",
            "-s",
            "init_t",
            "-t",
            "connectord_t",
            "-c",
            "process",
            "-p",
            "transition",
        ],
        policy,
    );
    assert!(tr.contains("transition"), "{tr}");
    let ep = tool(
        &[
            "sesearch",
            "-A",
            "-s",
            "connectord_t",
            "-t",
            "connectord_exec_t",
            "-c",
            "file",
            "-p",
            "entrypoint",
        ],
        policy,
    );
    assert!(ep.contains("entrypoint"), "{ep}");
}

/// The attributes of `ty` (generated CIL attributes left out).
fn attributes_of(policy: &Path, ty: &str) -> Vec<String> {
    let attrs = tool(&["seinfo", "-x", "-t", ty], policy);
    let line = attrs
        .lines()
        .find(|l| l.contains(&format!("type {ty}")))
        .unwrap_or_else(|| panic!("no type {ty}: {attrs}"));
    line.trim()
        .trim_end_matches(';')
        .split(',')
        .skip(1)
        .map(str::trim)
        .filter(|a| {
            a.rsplit_once("_typeattr_")
                .is_none_or(|(_, n)| n.parse::<u32>().is_err())
        })
        .map(String::from)
        .collect()
}

/// Every right `ty` has, through its own rules and its attributes', as
/// `TARGET:CLASS -> perms` (its own type as target spelled `self`).
fn effective_rules(policy: &Path, ty: &str) -> BTreeMap<String, BTreeSet<String>> {
    let text = tool(&["sesearch", "-A", "-s", ty], policy);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in connector_tests::selinux_base::parse_sesearch(&text) {
        // "SRC TGT:CLASS PERM"
        let mut w = item.split(' ');
        let (_src, tc, perm) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
        let (t, c) = tc.split_once(':').unwrap();
        let t = if t == ty { "self" } else { t };
        out.entry(format!("{t}:{c}"))
            .or_default()
            .insert(perm.to_string());
    }
    out
}

/// Least privilege, measured against the base policy itself: a probe
/// domain with exactly connectord_t's attributes and no rules of its own is
/// added to the store; whatever connectord_t has beyond what that empty
/// domain gets from the base (rules on `domain`, `daemon`, their `self`
/// rules) is ours, and must be in the reviewed allowlist. Holds on Debian
/// and on RHEL-family stores, whose bases give every domain much more.
/// `store_dir` is the store's root (`-p`), `ty` its name.
pub fn assert_least_privilege(root: &Path, ty: &str, policy: &Path) {
    let attrs = attributes_of(policy, "connectord_t");
    for a in &attrs {
        assert!(
            matches!(a.as_str(), "domain" | "daemon"),
            "connectord_t joined attribute {a}"
        );
    }
    let probe = format!(
        "(type connectord_probe_t)\n(roletype system_r connectord_probe_t)\n{}",
        attrs
            .iter()
            .map(|a| format!("(typeattributeset {a} (connectord_probe_t))\n"))
            .collect::<String>()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connectord_probe.cil");
    std::fs::write(&file, probe).unwrap();
    let out = Command::new("semodule")
        .arg("-p")
        .arg(root)
        .args(["-s", ty, "-n", "-X", "300", "-i"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "probe domain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        attributes_of(policy, "connectord_probe_t"),
        attrs,
        "the probe carries the same attributes"
    );
    let ours = effective_rules(policy, "connectord_t");
    let base = effective_rules(policy, "connectord_probe_t");
    let allowed = allowlist();
    let mut beyond = Vec::new();
    for (tc, perms) in &ours {
        let from_base = base.get(tc).cloned().unwrap_or_default();
        let reviewed = allowed.get(tc).cloned().unwrap_or_default();
        for p in perms.difference(&from_base) {
            assert!(!tc.starts_with("domain:"), "ours on every domain: {tc} {p}");
            if !reviewed.contains(p) {
                beyond.push(format!("{tc} {p}"));
            }
        }
    }
    assert!(
        beyond.is_empty(),
        "connectord_t has rights beyond allowlist.txt and the base's: {beyond:?}"
    );
    let attrs_line = tool(&["seinfo", "-x", "-t", "connectord_t"], policy);
    assert!(!attrs_line.contains("unconfined"), "{attrs_line}");
    let permissive = tool(&["seinfo", "--permissive"], policy);
    assert!(
        !permissive.contains("connectord_t"),
        "connectord_t is permissive"
    );
}

fn assert_file_contexts(f: &Fixture, ty: &str) {
    let fc = f.host(&format!("/etc/selinux/{ty}/contexts/files/file_contexts"));
    for (path, want) in [
        ("/opt/connector/bin/connectord", "connectord_exec_t"),
        ("/var/lib/connector/status.json", "connectord_var_lib_t"),
        ("/var/log/connector", "connectord_log_t"),
        ("/etc/connector/connector.conf", "connectord_conf_t"),
    ] {
        let out = Command::new("selabel_lookup")
            .args(["-b", "file", "-k", path, "-f"])
            .arg(&fc)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!(":{want}:")), "{path}: {text}");
    }
}

/// The answers in `cache` are given while the file contexts are unchanged
/// (a planted one is believed: selabel was not asked), and not once any
/// file_contexts file changed or the cache is as new as they are.
fn assert_label_cache(f: &Fixture, cache: &Path, exec_label: &str) {
    use connector_policy::labels::FileContexts;
    let root = connector_host::Root::new(f.path()).unwrap();
    let ask = || {
        FileContexts::open(&root)
            .unwrap()
            .unwrap()
            .label_for("/opt/connector/bin/connectord", libc::S_IFREG)
    };
    let text = std::fs::read_to_string(cache).unwrap();
    let line = format!("100000 {exec_label} /opt/connector/bin/connectord\n");
    assert!(text.contains(&line), "{text}");
    let plant = |mtime: std::time::SystemTime| {
        let planted = text.replace(
            &line,
            "100000 system_u:object_r:planted_t:s0 /opt/connector/bin/connectord\n",
        );
        std::fs::write(cache, planted).unwrap();
        connector_tests::set_mtime(cache, mtime);
    };
    let written = std::fs::metadata(cache).unwrap().modified().unwrap();
    plant(written);
    assert_eq!(ask().as_deref(), Some("system_u:object_r:planted_t:s0"));
    // As new as the file contexts: not trusted.
    plant(std::time::SystemTime::UNIX_EPOCH);
    assert_eq!(ask().as_deref(), Some(exec_label));
    // An administrator's file_contexts.local appears: not trusted.
    plant(written);
    let local = f.host("/etc/selinux/default/contexts/files/file_contexts.local");
    let had = std::fs::read(&local).ok();
    std::fs::write(&local, had.clone().unwrap_or_default()).unwrap();
    assert_eq!(ask().as_deref(), Some(exec_label));
    match had {
        Some(b) => std::fs::write(&local, b).unwrap(),
        None => std::fs::remove_file(&local).unwrap(),
    }
    // The true answers back, for what follows.
    connector_host::stamp::wait_past(connector_host::stamp::coarse_now_ns());
    std::fs::write(cache, &text).unwrap();
    assert_eq!(ask().as_deref(), Some(exec_label));
}

fn open(f: &Fixture) -> Store {
    Store::open(&Root::new(f.path()).unwrap())
        .unwrap()
        .expect("SELinux configured")
}

#[test]
fn default_store_install_verify_rerun_remove() {
    let f = scratch("default");
    let store = open(&f);
    assert_eq!(store.module_state().unwrap(), ModuleState::NotInstalled);
    let ran = store
        .install(Duration::from_secs(30))
        .unwrap()
        .expect("installed");
    assert_eq!(
        ran.iter().filter(|c| c.starts_with("semodule")).count(),
        1,
        "one rebuild: {ran:?}"
    );
    assert!(
        ran[0].contains(" -X 200 ") && ran[0].contains(" -n "),
        "{ran:?}"
    );
    assert!(
        !ran.iter().any(|c| c.starts_with("load_policy")),
        "never load_policy for an image"
    );
    assert!(
        matches!(store.module_state().unwrap(), ModuleState::Installed { current: true, priority: 200, ref version } if version.as_deref() == Some(connector_policy::module_version()))
    );
    let policy = policy_file(&f, "default");
    assert_required_rules(&policy);
    assert_file_contexts(&f, "default");

    // Again: nothing runs.
    let start = Instant::now();
    assert_eq!(store.install(Duration::from_secs(30)).unwrap(), None);
    assert!(start.elapsed() < Duration::from_secs(1));

    // Labels in the image, in this process, from the image's own file
    // contexts (which now hold the module's).
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    f.file("/var/lib/connector/status.json", "{}");
    let labeled = store.relabel().unwrap();
    for p in [
        "/opt/connector/bin/connectord",
        "/var/lib/connector",
        "/var/lib/connector/status.json",
    ] {
        assert!(labeled.iter().any(|l| l == p), "{p}: {labeled:?}");
    }
    let label = connector_tests::selinux_label(&f.host("/opt/connector/bin/connectord"));
    assert!(label.contains(":connectord_exec_t:"), "{label}");
    let state = connector_tests::selinux_label(&f.host("/var/lib/connector/status.json"));
    assert!(state.contains(":connectord_var_lib_t:"), "{state}");
    // setfiles, on the same paths, agrees with every label set (it would
    // change none).
    let fc = f.host("/etc/selinux/default/contexts/files/file_contexts");
    let out = std::process::Command::new("setfiles")
        .args(["-F", "-n", "-v", "-r"])
        .arg(f.path())
        .arg(&fc)
        .arg(f.host("/opt/connector/bin/connectord"))
        .arg(f.host("/var/lib/connector"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // ("Would relabel X from A to B" for each it would change.)
    assert!(
        !said.to_lowercase().contains("relabel"),
        "setfiles disagrees: {said}"
    );

    // Again: all right, nothing written (the file contexts' answers kept
    // by the first run, not written again).
    let cache = f.host("/var/lib/connector/labels.cache");
    let kept = connector_tests::stamps(f.path());
    assert_eq!(store.relabel().unwrap(), Vec::<String>::new());
    assert_eq!(
        connector_tests::changed(&kept, &connector_tests::stamps(f.path())),
        Vec::<PathBuf>::new()
    );
    assert_label_cache(&f, &cache, &label);
    // One label gone wrong (the type, then only the user): only it is fixed.
    for wrong in [
        label.replace(":connectord_exec_t:", ":var_lib_t:"),
        format!("unconfined_u:{}", label.split_once(':').unwrap().1),
    ] {
        let bin = f.host("/opt/connector/bin/connectord");
        connector_tests::set_label(&bin, &wrong);
        assert_eq!(
            store.relabel().unwrap(),
            vec!["/opt/connector/bin/connectord".to_string()]
        );
        assert_eq!(connector_tests::selinux_label(&bin), label);
    }

    // Remove, then remove again: a clean no-op.
    let ran = store
        .remove(Duration::from_secs(30))
        .unwrap()
        .expect("removed");
    assert!(ran[0].contains(" -r connectord"), "{ran:?}");
    assert_eq!(store.module_state().unwrap(), ModuleState::NotInstalled);
    assert_eq!(store.remove(Duration::from_secs(30)).unwrap(), None);
    let after = tool(
        &["seinfo", "-t", "connectord_t"],
        &policy_file(&f, "default"),
    );
    assert!(!after.contains("connectord_t"), "the type is gone: {after}");
}

/// A copy of the module installed by hand (semodule's default priority,
/// 400) shadows ours: installing ours removes it in the same transaction,
/// and removal takes every copy.
#[test]
fn a_copy_at_another_priority_is_replaced_not_left_shadowing() {
    let f = scratch("default");
    let store = open(&f);
    let old = connector_policy::MODULE_CIL.replace(
        &format!(
            "connectord-policy-version {}",
            connector_policy::module_version()
        ),
        "connectord-policy-version 0.9.0",
    );
    assert_ne!(old, connector_policy::MODULE_CIL);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connectord.cil");
    std::fs::write(&file, old).unwrap();
    let out = std::process::Command::new("semodule")
        .arg("-p")
        .arg(f.path())
        .args(["-s", "default", "-n", "-i"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(store.priorities(), vec![400]);
    assert!(matches!(
        store.module_state().unwrap(),
        ModuleState::Installed {
            current: false,
            priority: 400,
            ..
        }
    ));
    let ran = store
        .install(Duration::from_secs(30))
        .unwrap()
        .expect("installed");
    assert_eq!(
        ran.iter().filter(|c| c.starts_with("semodule")).count(),
        1,
        "one transaction: {ran:?}"
    );
    assert!(ran[0].contains("-X 400 -r connectord"), "{ran:?}");
    assert_eq!(store.priorities(), vec![200]);
    assert!(matches!(
        store.module_state().unwrap(),
        ModuleState::Installed {
            current: true,
            priority: 200,
            ..
        }
    ));
    // Both copies, then removal removes both.
    std::process::Command::new("semodule")
        .arg("-p")
        .arg(f.path())
        .args(["-s", "default", "-n", "-i"])
        .arg(&file)
        .status()
        .unwrap();
    assert_eq!(store.priorities(), vec![200, 400]);
    store
        .remove(Duration::from_secs(30))
        .unwrap()
        .expect("removed");
    assert_eq!(store.priorities(), Vec::<u16>::new());
    assert_eq!(store.module_state().unwrap(), ModuleState::NotInstalled);
}

/// The previously shipped module (1.0.0, kept as a fixture) in the
/// store: an upgrade reinstalls once, and a re-run then does nothing.
#[test]
fn an_upgrade_from_1_0_0_reinstalls_once() {
    let f = scratch("default");
    let store = open(&f);
    let old = include_str!("connectord-1.0.0.cil");
    assert_ne!(old, connector_policy::MODULE_CIL);
    store
        .install_module("connectord", old, Duration::from_secs(30))
        .unwrap();
    assert!(matches!(
        store.module_state().unwrap(),
        ModuleState::Installed { current: false, ref version, .. } if version.as_deref() == Some("1.0.0")
    ));
    let ran = store
        .install(Duration::from_secs(30))
        .unwrap()
        .expect("the new version is installed");
    assert_eq!(ran.iter().filter(|c| c.starts_with("semodule")).count(), 1);
    assert!(matches!(
        store.module_state().unwrap(),
        ModuleState::Installed { current: true, ref version, .. } if version.as_deref() == Some("1.2.0")
    ));
    assert_eq!(store.install(Duration::from_secs(30)).unwrap(), None);
}

#[test]
fn mls_store_takes_the_module_too() {
    let f = scratch("mls");
    let store = open(&f);
    store
        .install(Duration::from_secs(30))
        .unwrap()
        .expect("installed");
    let policy = policy_file(&f, "mls");
    assert_required_rules(&policy);
    assert_file_contexts(&f, "mls");
    assert_least_privilege(f.path(), "mls", &policy);
}

/// Least privilege on the default store, with its empty-domain probe.
#[test]
fn default_store_least_privilege() {
    let f = scratch("default");
    open(&f)
        .install(Duration::from_secs(30))
        .unwrap()
        .expect("installed");
    let policy = policy_file(&f, "default");
    assert_least_privilege(f.path(), "default", &policy);
}

/// The same check on real RHEL-family targeted stores, where the base
/// gives every domain far more than Debian's: run by hand with
/// `CONNECTOR_RHEL_STORES=/var/tmp/connector-rhel-stores cargo test -p
/// connector-policy --test store -- --ignored` after
/// `../shared/selinux/check-rhel-policy` extracted them (each holds
/// `root/` with a `targeted` store). Two rebuilds per store, minutes each.
#[test]
#[ignore = "needs the RHEL stores of ../shared/selinux (CONNECTOR_RHEL_STORES)"]
fn rhel_stores_least_privilege() {
    let dir = std::env::var_os("CONNECTOR_RHEL_STORES").expect("CONNECTOR_RHEL_STORES");
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let src = e.path().join("root");
        if !src.join("etc/selinux/targeted").is_dir() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let status = Command::new("cp")
            .args(["-a"])
            .arg(&src)
            .arg(tmp.path().join("root"))
            .status()
            .unwrap();
        assert!(status.success());
        let root = tmp.path().join("root");
        let store = Store::open(&Root::new(&root).unwrap()).unwrap().unwrap();
        store.install(Duration::from_secs(60)).unwrap();
        let policy = std::fs::read_dir(root.join("etc/selinux/targeted/policy"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("policy.")
            })
            .unwrap();
        assert_least_privilege(&root, "targeted", &policy);
        eprintln!("least privilege holds on {}", e.path().display());
        seen += 1;
    }
    assert!(seen > 0, "no store found");
}

#[test]
fn a_module_the_base_policy_rejects_leaves_the_store_unchanged() {
    let f = scratch("default");
    let store = open(&f);
    let before = snapshot(store.dir());
    let err = store
        .install_module(
            "connectord_bad",
            "(allow init_t connectord_nosuch_t (file (read)))\n",
            Duration::from_secs(30),
        )
        .unwrap_err();
    match &err {
        PolicyError::Rejected { message } => {
            assert!(message.contains("Failed to resolve"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains("the base policy rejected"),
        "{err}"
    );
    assert_eq!(snapshot(store.dir()), before, "the store changed");
}

#[test]
fn a_locked_store_is_waited_for_then_refused() {
    require_tool("flock");
    let f = scratch("default");
    let store = open(&f);
    let lock = store.dir().join("semanage.trans.LOCK");
    std::fs::write(&lock, "").unwrap();
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let err = store.install(Duration::from_secs(1)).unwrap_err();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(matches!(err, PolicyError::StoreLocked { .. }), "{err}");
    assert!(err.to_string().contains("pid"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(store.module_state().unwrap(), ModuleState::NotInstalled);
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("active")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len()));
            }
        }
    }
    out.sort();
    out
}
