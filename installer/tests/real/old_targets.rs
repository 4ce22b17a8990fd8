//! Images of the older targets, proven with their real SELinux userspace:
//! an RHEL 8 stand-in store (`../shared/selinux/f30-store`, its `policy.31`
//! written by the real semodule 2.9) and EL7-layout stores
//! (`etc/selinux/TYPE/active`, `policy.30`, written by the real semodule
//! 2.5). After the installer's `selinux install --root` / `install --root`
//! (the build host's semodule, Debian's 3.4) the file the image's kernel
//! loads carries `connectord_t`, no newer file is left for a kernel to
//! prefer, and the target's own semodule still lists, removes and
//! reinstalls the module.
//!
//! Tier: real tools in scratch roots. Needs `../shared` (the old semodule
//! builds and the RHEL 8 stand-in store): each test says it is skipped when
//! that is absent; CI always has it.
#![cfg(feature = "real-tools")]

use std::path::Path;
use std::process::{Command, Output};

use connector_policy::policydb::PolicyNames;
use connector_tests::selinux_base::{self as sb, base_cil, el7_lacks, ModuleShape, Unknown};
use connector_tests::{require_tool, shared_dir, Fixture, Kernel, Layout};
use serde_json::Value;

use crate::common;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");
const EL7_KERNEL: &str = "3.10.0-1160.el7.x86_64";
const EL8_KERNEL: &str = "4.18.0-513.5.1.el8_9.x86_64";
/// CentOS 7's semanage.conf names no store root: RHEL's libsemanage 2.5
/// defaults to /etc/selinux.
const EL7_SEMANAGE_CONF: &str = "module-store = direct\nexpand-check=0\nusepasswd=False\n";
const EL8_SEMANAGE_CONF: &str =
    "module-store = direct\nexpand-check=0\nusepasswd=False\nbzip-small=true\n";

fn run(args: &[&str]) -> (Output, Value) {
    connector_tests::run_json(Command::new(BIN).args(args))
}

fn ok(args: &[&str]) -> Value {
    let (out, v) = run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// The target's semodule (`old-semodule/semodule-VERSION`) on the image.
fn old_semodule_cmd(shared: &Path, version: &str, root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(shared.join(format!("selinux/old-semodule/semodule-{version}")));
    cmd.arg("-p").arg(root);
    if version == "2.5" {
        // Upstream 2.5 defaults to /var/lib/selinux; RHEL's build to /etc/selinux.
        cmd.args(["-S", "/etc/selinux"]);
    }
    cmd.args(args);
    cmd
}

fn old_semodule_ok(shared: &Path, version: &str, root: &Path, args: &[&str]) -> String {
    connector_tests::run(&mut old_semodule_cmd(shared, version, root, args))
}

/// The `policy.N` versions of the image, ascending.
fn policy_files(root: &Path, ty: &str) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(root.join(format!("etc/selinux/{ty}/policy")))
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_prefix("policy.")?
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    v
}

fn names(file: &Path) -> PolicyNames {
    PolicyNames::read(std::io::BufReader::new(std::fs::File::open(file).unwrap()))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn has_domain(root: &Path, ty: &str, version: u32) -> bool {
    names(&root.join(format!("etc/selinux/{ty}/policy/policy.{version}")))
        .types
        .contains("connectord_t")
}

/// The image carries the module in exactly `policy.{version}` (no other
/// file), and its store's own kernel policy is that version too: what the
/// target's libsemanage reads and writes.
fn assert_only_policy_with_domain(root: &Path, ty: &str, store: &str, version: u32) {
    assert_eq!(
        policy_files(root, ty),
        vec![version],
        "exactly policy.{version}"
    );
    assert!(
        has_domain(root, ty, version),
        "policy.{version} has connectord_t"
    );
    assert_eq!(
        names(&root.join(format!(
            "{}/active/policy.kern",
            store.trim_start_matches('/')
        )))
        .version,
        version,
        "{store}/active/policy.kern"
    );
}

/// What an installer without the policy-version fix did: the build host's
/// semodule on the image (`extra` names an EL7 store root).
fn host_semodule_install(root: &Path, ty: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let cil = dir.path().join("connectord.cil");
    std::fs::write(&cil, connector_policy::MODULE_CIL).unwrap();
    connector_tests::run(
        Command::new("semodule")
            .arg("-p")
            .arg(root)
            .args(extra)
            .args(["-s", ty, "-n", "-X", "200", "-i"])
            .arg(&cil),
    );
}

/// `install --root ROOT --payload P --json` with the connector's files.
fn install_with_payload(root: &str) -> Value {
    let bins = common::bins(Path::new(BIN), None);
    let payload = common::payload(connector_packaging::Family::Rpm, bins.path());
    ok(&[
        "install",
        "--root",
        root,
        "--payload",
        payload.path().to_str().unwrap(),
        "--json",
    ])
}

fn selinux_faults(v: &Value) -> Vec<String> {
    v["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["cause"] == "selinux")
        .map(|f| f["detail"].as_str().unwrap().to_string())
        .collect()
}

fn doctor(root: &str) -> Value {
    run(&["doctor", "--root", root, "--json"]).1
}

/// The target's semodule still operates on the store the installer left:
/// it lists the module, removes it (its own rebuild: the file the kernel
/// loads loses the domain), and installs it again.
fn target_semodule_operates(shared: &Path, version: &str, root: &Path, ty: &str, file: u32) {
    let list = old_semodule_ok(shared, version, root, &["-s", ty, "-l"]);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().next() == Some("connectord")),
        "semodule-{version} -l: {list}"
    );
    old_semodule_ok(
        shared,
        version,
        root,
        &["-s", ty, "-n", "-X", "200", "-r", "connectord"],
    );
    assert!(
        !has_domain(root, ty, file),
        "semodule-{version} -r rebuilt policy.{file}"
    );
    assert_eq!(policy_files(root, ty), vec![file]);
    let dir = tempfile::tempdir().unwrap();
    let cil = dir.path().join("connectord.cil");
    std::fs::write(&cil, connector_policy::MODULE_CIL).unwrap();
    old_semodule_ok(
        shared,
        version,
        root,
        &["-s", ty, "-n", "-X", "200", "-i", cil.to_str().unwrap()],
    );
    assert!(
        has_domain(root, ty, file),
        "semodule-{version} -i rebuilt policy.{file}"
    );
    assert_eq!(policy_files(root, ty), vec![file]);
}

/// An EL7 image: the EL7-era base (what the real 3.13.1 policy lacks)
/// made a store by the real semodule 2.5 under `etc/selinux`, `policy.30`,
/// a libsepol 2.x, an EL7 kernel with its headers, the connector's binary.
fn el7_image(shared: &Path) -> Fixture {
    require_tool("seinfo");
    let f = Fixture::new();
    f.os_release("centos-7");
    f.file(
        "/etc/selinux/config",
        &format!("SELINUX=enforcing\nSELINUXTYPE={}\n", sb::STORE),
    );
    f.file("/etc/selinux/semanage.conf", EL7_SEMANAGE_CONF);
    // The library's presence says "libselinux/libsepol 2.x".
    f.file("/usr/lib64/libsepol.so.1", "");
    std::fs::create_dir_all(f.host(&format!("/etc/selinux/{}", sb::STORE))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.cil");
    let shape = ModuleShape::parse(connector_policy::MODULE_CIL);
    std::fs::write(&base, base_cil(&shape, &el7_lacks(), Unknown::Allow)).unwrap();
    old_semodule_ok(
        shared,
        "2.5",
        f.path(),
        &[
            "-s",
            sb::STORE,
            "-n",
            "-X",
            "100",
            "-i",
            base.to_str().unwrap(),
        ],
    );
    assert!(f
        .host(&format!("/etc/selinux/{}/active/modules", sb::STORE))
        .is_dir());
    assert!(!f.host("/var/lib/selinux").exists());
    assert_eq!(policy_files(f.path(), sb::STORE), vec![30]);
    let k = Kernel::new(EL7_KERNEL, Layout::El7);
    f.kernel(&k).headers(&k);
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    f
}

#[test]
fn el7_layout_image_gets_the_module_in_policy_30_and_semodule_2_5_keeps_working() {
    let Some(shared) = shared_dir("el7 layout image") else {
        return;
    };
    let f = el7_image(&shared);
    let root = f.path().to_str().unwrap();
    let ty = sb::STORE;
    // The image names programs for libsemanage to run: the build host's
    // semodule must never run them.
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("ran");
    let evil = outside.path().join("evil.sh");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&evil)
        .status()
        .unwrap();
    let conf = format!(
        "{EL7_SEMANAGE_CONF}[setfiles]\npath = {e}\n[end]\n[sefcontext_compile]\npath = {e}\n[end]\n[load_policy]\npath = {e}\n[end]\n",
        e = evil.display()
    );
    f.file("/etc/selinux/semanage.conf", &conf);

    let v = doctor(root);
    let faults = selinux_faults(&v);
    assert!(faults.iter().any(|d| d.contains("not installed")), "{v}");
    assert_eq!(v["selinux"]["policy"]["layout"], "etc-selinux", "{v}");
    assert_eq!(v["selinux"]["policy"]["target"], 30, "{v}");

    let v = ok(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(v["action"], "installed", "{v}");
    assert_only_policy_with_domain(f.path(), ty, &format!("/etc/selinux/{ty}"), 30);
    assert_eq!(v["policy"]["loads"][0]["kernel"], EL7_KERNEL, "{v}");
    assert_eq!(v["policy"]["loads"][0]["version"], 30, "{v}");
    assert_eq!(v["policy"]["loads"][0]["connector_domain"], true, "{v}");
    // The image's configuration is as it was, its programs never ran, and
    // no modern store appeared.
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/selinux/semanage.conf")).unwrap(),
        conf
    );
    assert!(!marker.exists(), "the image's [setfiles] program ran");
    assert!(!f.host("/var/lib/selinux").exists());
    assert!(selinux_faults(&doctor(root)).is_empty());

    // A re-run has nothing to do.
    let v = ok(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(v["action"], "unchanged", "{v}");
    assert!(
        v["commands"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c.as_str().unwrap().contains("semodule")),
        "{v}"
    );

    // The target's own semodule, with its own configuration.
    f.file("/etc/selinux/semanage.conf", EL7_SEMANAGE_CONF);
    target_semodule_operates(&shared, "2.5", f.path(), ty, 30);
    assert!(selinux_faults(&doctor(root)).is_empty());

    // The installer removes it from the same store, at the same version.
    let v = ok(&["selinux", "remove", "--root", root, "--json"]);
    assert_eq!(v["action"], "removed", "{v}");
    assert_eq!(policy_files(f.path(), ty), vec![30]);
    assert!(!has_domain(f.path(), ty, 30));
    let list = old_semodule_ok(&shared, "2.5", f.path(), &["-s", ty, "-l"]);
    assert!(!list.contains("connectord"), "{list}");
}

#[test]
fn el7_image_left_with_policy_33_is_a_fault_until_install_repairs_it() {
    let Some(shared) = shared_dir("el7 image with a stale policy.33") else {
        return;
    };
    require_tool("semodule");
    let f = el7_image(&shared);
    let root = f.path().to_str().unwrap();
    let ty = sb::STORE;
    // What the build host's semodule does when pointed at the EL7 store:
    // policy.33 and a version-33 policy.kern beside the image's policy.30.
    host_semodule_install(f.path(), ty, &["-S", "/etc/selinux"]);
    assert_eq!(policy_files(f.path(), ty), vec![30, 33]);
    assert!(!has_domain(f.path(), ty, 30) && has_domain(f.path(), ty, 33));
    assert_eq!(
        names(&f.host(&format!("/etc/selinux/{ty}/active/policy.kern"))).version,
        33,
        "a store version 2.5's libsepol (15-30) cannot read"
    );

    let v = doctor(root);
    let faults = selinux_faults(&v);
    assert_eq!(faults.len(), 1, "{v}");
    assert!(
        faults[0].contains(&format!(
            "/etc/selinux/{ty}/policy/policy.30, which lacks connectord_t"
        )),
        "{faults:?}"
    );
    assert_eq!(
        v["selinux"]["policy"]["stale"],
        serde_json::json!([33]),
        "{v}"
    );
    let text = Command::new(BIN)
        .args(["selinux", "status", "--root", root])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "Loads:   {EL7_KERNEL}: /etc/selinux/{ty}/policy/policy.30 — WITHOUT connectord_t"
        )),
        "{text}"
    );

    // The whole pipeline repairs it: install plans the module step for a
    // module the kernel's file lacks.
    let (out, plan) = run(&["install", "--root", root, "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{plan}");
    assert!(plan.to_string().contains("\"module\""), "{plan}");
    install_with_payload(root);
    assert_only_policy_with_domain(f.path(), ty, &format!("/etc/selinux/{ty}"), 30);
    assert!(selinux_faults(&doctor(root)).is_empty());
    old_semodule_ok(&shared, "2.5", f.path(), &["-s", ty, "-n", "-B"]);
    assert!(
        has_domain(f.path(), ty, 30),
        "2.5's own rebuild keeps the module"
    );
}

/// The RHEL 8 stand-in store of `../shared` with its policy rebuilt by
/// the real semodule 2.9 (`policy.31` only), a libsepol 2.x, an EL8 kernel
/// with headers and the connector's binary.
fn el8_image(shared: &Path) -> (Fixture, &'static str) {
    require_tool("seinfo");
    let f = Fixture::new();
    connector_tests::run(
        Command::new("tar")
            .arg("-xJf")
            .arg(shared.join("selinux/f30-store.tar.xz"))
            .arg("-C")
            .arg(f.path())
            .arg("--strip-components=1"),
    );
    let ty = "targeted";
    f.os_release("rhel-8.9");
    f.file(
        "/etc/selinux/config",
        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    );
    f.file("/etc/selinux/semanage.conf", EL8_SEMANAGE_CONF);
    f.file("/usr/lib64/libsepol.so.1", "");
    for v in policy_files(f.path(), ty) {
        std::fs::remove_file(f.host(&format!("/etc/selinux/{ty}/policy/policy.{v}"))).unwrap();
    }
    old_semodule_ok(shared, "2.9", f.path(), &["-s", ty, "-n", "-B"]);
    assert_eq!(policy_files(f.path(), ty), vec![31]);
    let k = Kernel::new(EL8_KERNEL, Layout::El8);
    f.kernel(&k).headers(&k);
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    (f, ty)
}

#[test]
fn rhel8_image_with_the_module_only_in_policy_33_is_repaired_into_policy_31() {
    let Some(shared) = shared_dir("RHEL 8 stand-in image") else {
        return;
    };
    require_tool("semodule");
    let (f, ty) = el8_image(&shared);
    let root = f.path().to_str().unwrap();
    // The state an installer without this fix left: Debian's semodule -p
    // wrote policy.33 (with the module) beside the image's policy.31.
    host_semodule_install(f.path(), ty, &[]);
    assert_eq!(policy_files(f.path(), ty), vec![31, 33]);

    let v = doctor(root);
    assert_eq!(v["selinux"]["module"]["state"], "installed", "{v}");
    let faults = selinux_faults(&v);
    assert_eq!(faults.len(), 1, "{v}");
    assert!(
        faults[0].contains(&format!(
            "{EL8_KERNEL} loads /etc/selinux/{ty}/policy/policy.31, which lacks connectord_t"
        )),
        "{faults:?}"
    );
    assert_eq!(v["selinux"]["policy"]["target"], 31, "{v}");

    // A golden-image build's `install --root` repairs it.
    install_with_payload(root);
    assert_only_policy_with_domain(f.path(), ty, &format!("/var/lib/selinux/{ty}"), 31);
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/selinux/semanage.conf")).unwrap(),
        EL8_SEMANAGE_CONF
    );
    assert!(selinux_faults(&doctor(root)).is_empty());
    let v = ok(&["selinux", "install", "--root", root, "--json"]);
    assert_eq!(v["action"], "unchanged", "{v}");

    target_semodule_operates(&shared, "2.9", f.path(), ty, 31);
}
