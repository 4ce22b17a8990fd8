//! One contract for automation (issue 14, item 7): the exit-code table of
//! docs/exit-codes.md, run case by case for every subcommand, and with
//! `--json` exactly one strict JSON document on stdout on every exit
//! (failures included: the error's kind, message and exit code), no key
//! twice, `schema_version` in each.
//!
//! Tier: the binary as a user runs it, on fixture roots (no real tools).

use std::process::{Command, Output};

use connector_tests::json::parse_strict;
use connector_tests::{Fixture, Kernel, Layout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Runs with `--json`: the exit code, and the one strict document.
fn json(args: &[&str]) -> (i32, Value) {
    let out = run(args);
    let code = out.status.code().unwrap();
    let v = parse_strict(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} (exit {code}): not one strict JSON document ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        v["schema_version"].is_u64(),
        "{args:?}: no schema_version: {v}"
    );
    if let Some(e) = v.get("error") {
        assert_eq!(e["exit_code"], code, "{args:?}: {v}");
        assert!(e["kind"].is_string() && e["message"].is_string(), "{v}");
    }
    (code, v)
}

/// A RHEL 9.3 root whose kernel has its headers: nothing to do.
fn healthy() -> Fixture {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let k = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    f
}

fn unsupported() -> Fixture {
    let f = Fixture::new();
    f.os_release("fedora-39");
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    f
}

/// A payload directory with the binary only.
fn payload(manifest_extra: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("files/opt/connector/bin/connectord");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    let sum = connector_tests::sha256_hex(b"#!/bin/sh\n");
    std::fs::write(
        d.path().join("manifest"),
        format!("file 0755 {sum} /opt/connector/bin/connectord\n{manifest_extra}"),
    )
    .unwrap();
    d
}

#[test]
fn every_subcommand_keeps_the_exit_code_table_with_one_json_document() {
    let ok = healthy();
    let bad = unsupported();
    let empty = tempfile::tempdir().unwrap();
    let r = ok.path().to_str().unwrap();
    let u = bad.path().to_str().unwrap();
    let e = empty.path().to_str().unwrap();
    // A system root without the connector.
    let bare = Fixture::new();
    bare.os_release("rhel-9.3");
    let b = bare.path().to_str().unwrap();
    let missing = "/nonexistent/connector-root";
    let good = payload("");
    let hostile = payload(
        "file 0755 0000000000000000000000000000000000000000000000000000000000000000 /usr/bin/x\n",
    );
    let (gp, hp) = (
        good.path().to_str().unwrap(),
        hostile.path().to_str().unwrap(),
    );
    // (args, exit code, kind of the error document or None for a report)
    let cases: Vec<(Vec<&str>, i32, Option<&str>)> = vec![
        (vec!["doctor", "--root", r], 0, None),
        (vec!["doctor", "--root", u], 3, None),
        (vec!["doctor", "--root", e], 2, Some("bad-root")),
        (vec!["doctor", "--root", missing], 2, Some("bad-root")),
        (vec!["headers", "--root", r, "--dry-run"], 0, None),
        (vec!["headers", "--root", r], 0, None),
        (vec!["headers", "--root", u], 3, Some("unsupported")),
        (vec!["headers", "--root", missing], 2, Some("bad-root")),
        (vec!["selinux", "status", "--root", r], 0, None),
        (vec!["selinux", "install", "--root", r], 0, None),
        (vec!["selinux", "remove", "--root", r], 0, None),
        (
            vec!["selinux", "install", "--root", missing],
            2,
            Some("bad-root"),
        ),
        (
            vec!["laydown", "--root", r, "--payload", gp, "--no-enable"],
            0,
            None,
        ),
        (
            vec!["laydown", "--root", r, "--payload", hp],
            2,
            Some("bad-payload"),
        ),
        (vec!["install", "--root", r, "--dry-run"], 0, None),
        (vec!["install", "--root", u], 3, Some("unsupported")),
        (
            vec!["install", "--root", e, "--dry-run"],
            2,
            Some("bad-root"),
        ),
        (
            vec!["install", "--root", b, "--dry-run"],
            2,
            Some("not-laid-down"),
        ),
        (
            vec!["install", "--root", r, "--payload", hp],
            2,
            Some("bad-payload"),
        ),
        (vec!["repair", "--root", missing], 2, Some("bad-root")),
        (vec!["uninstall", "--root", missing], 2, Some("bad-root")),
    ];
    for (args, want, kind) in cases {
        let mut all = args.clone();
        all.push("--json");
        let (code, v) = json(&all);
        assert_eq!(code, want, "{all:?}: {v:#}");
        match kind {
            Some(k) => assert_eq!(v["error"]["kind"], k, "{all:?}: {v:#}"),
            None => assert!(
                v.get("error").is_none_or(|e| !e.is_object()),
                "{all:?}: {v:#}"
            ),
        }
    }
    // An uninstall of a root without the connector: nothing to remove.
    let none = healthy();
    std::fs::remove_file(none.host("/opt/connector/bin/connectord")).unwrap();
    let (code, _) = json(&[
        "uninstall",
        "--root",
        none.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
}

#[test]
fn a_bad_command_line_is_exit_64_never_2() {
    for args in [
        vec!["doctor", "--no-such-option"],
        vec!["no-such-command"],
        vec!["headers", "--lock-timeout", "soon"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: no document without --json"
        );
        assert!(!out.stderr.is_empty(), "{args:?}: says what is wrong");
    }
    // With --json, the usage error is the one document.
    let (code, v) = json(&["doctor", "--no-such-option", "--json"]);
    assert_eq!(code, 64);
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    // Help and version are not errors.
    for args in [vec!["--help"], vec!["--version"], vec!["doctor", "--help"]] {
        assert_eq!(run(&args).status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn headers_json_names_each_kernels_package_once() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let k = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    f.kernel(&k);
    // No package tools are used with --dry-run on a root without a
    // database: the package the headers would come from is named once.
    let (_, v) = json(&[
        "headers",
        "--root",
        f.path().to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    let kernels = v["kernels"].as_array().unwrap();
    assert!(!kernels.is_empty(), "{v:#}");
    for k in kernels {
        assert!(k["package"].is_string(), "{v:#}");
    }
}

/// A mistake in archives.conf is found by doctor, not first inside the
/// deferred job when a fallback is needed.
#[test]
fn doctor_validates_archives_conf() {
    let f = healthy();
    f.file(
        "/etc/connector/archives.conf",
        "centos 8 * https://mirror/x/ no-such-option\n",
    );
    let (code, v) = json(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "a note, not a fault: {v:#}");
    let note = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "archive-config")
        .unwrap_or_else(|| panic!("no archive-config note: {v:#}"));
    let m = note["message"].as_str().unwrap();
    assert!(
        m.contains("line 1: unknown option \"no-such-option\"")
            && m.contains("/etc/connector/archives.conf"),
        "{m}"
    );
    // A valid file says nothing.
    f.file(
        "/etc/connector/archives.conf",
        "centos 8 * https://mirror/x/\n",
    );
    let (_, v) = json(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
    assert!(!v["notes"].to_string().contains("archive-config"), "{v:#}");
}

#[test]
fn root_goes_before_or_after_the_subcommand_and_q_silences_progress() {
    let f = healthy();
    let r = f.path().to_str().unwrap();
    let (_, after) = json(&["doctor", "--root", r, "--json"]);
    let (_, before) = json(&["--root", r, "doctor", "--json"]);
    assert_eq!(after["root"], before["root"]);
    assert_eq!(after["kernels"], before["kernels"]);
    assert_eq!(
        before["root"],
        f.path().canonicalize().unwrap().to_str().unwrap()
    );

    // Progress lines go to stderr, unless -q.
    let p = payload("");
    let fresh = || {
        let f = healthy();
        std::fs::remove_file(f.host("/opt/connector/bin/connectord")).unwrap();
        f
    };
    let g = fresh();
    let out = run(&[
        "install",
        "--root",
        g.path().to_str().unwrap(),
        "--payload",
        p.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connector-installer: lay down"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g = fresh();
    let out = run(&[
        "-q",
        "install",
        "--root",
        g.path().to_str().unwrap(),
        "--payload",
        p.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        g.host("/opt/connector/bin/connectord").is_file(),
        "-q still does the work"
    );
    // -q and -v contradict each other: a usage error.
    assert_eq!(run(&["-q", "-v", "doctor"]).status.code(), Some(64));
}

/// `--dry-run` on every acting command: it says what would be done, and
/// the root is byte for byte (labels included) what it was.
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-installer/real-tools (scripts/test)"
)]
fn dry_run_on_every_acting_command_changes_nothing() {
    connector_tests::require_tool("semodule");
    let f = connector_tests::selinux_root("default");
    f.os_release("debian-12");
    let k = Kernel::new("6.1.0-18-amd64", Layout::Debian);
    f.kernel(&k);
    let r = f.path().to_str().unwrap();
    let p = payload("");
    let pp = p.path().to_str().unwrap();
    let check = |args: &[&str], what: &dyn Fn(&Value)| {
        let before = f.snapshot();
        let mut all = args.to_vec();
        all.extend(["--root", r, "--dry-run", "--json"]);
        let (code, v) = json(&all);
        assert!(code == 0 || code == 1, "{all:?}: {v:#}");
        assert_eq!(v["dry_run"], true, "{all:?}: {v:#}");
        what(&v);
        assert_eq!(f.snapshot(), before, "{all:?} changed the root");
    };
    check(&["laydown", "--payload", pp], &|v| {
        assert!(
            v["files"]
                .to_string()
                .contains("/opt/connector/bin/connectord"),
            "{v}"
        );
        assert!(v["files"].to_string().contains("created"), "{v}");
    });
    check(&["selinux", "install"], &|v| {
        assert_eq!(v["action"], "would-install")
    });
    check(&["selinux", "remove"], &|v| {
        assert_eq!(v["action"], "not-installed")
    });
    // Now for real, then the undoing ones.
    let (code, _) = json(&[
        "laydown",
        "--root",
        r,
        "--payload",
        pp,
        "--no-enable",
        "--json",
    ]);
    assert_eq!(code, 0);
    let (code, _) = json(&["selinux", "install", "--root", r, "--json"]);
    assert_eq!(code, 0);
    check(&["repair"], &|v| {
        assert!(v["install"]["plan"].is_array(), "{v:#}");
        assert!(v["left"].to_string().contains("fault 11"), "{v:#}");
    });
    check(&["selinux", "install"], &|v| {
        assert_eq!(v["action"], "would-relabel")
    });
    check(&["selinux", "remove"], &|v| {
        assert_eq!(v["action"], "would-remove")
    });
    check(&["uninstall"], &|v| {
        assert!(
            v["removed"]
                .to_string()
                .contains("/opt/connector/bin/connectord"),
            "{v:#}"
        );
        assert!(v["commands"].to_string().contains("semodule -r"), "{v:#}");
    });
}

#[test]
fn bundle_keeps_the_contract() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    // Nothing to cover: could not run, an error document.
    let (code, v) = json(&["bundle", "--json", "--out", o]);
    assert_eq!(code, 2);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("--doctor"),
        "{v}"
    );
    // A document that is not doctor's, or a FIFO, is refused by name.
    let bad = out.path().join("bad.json");
    std::fs::write(&bad, "{\"kernels\": []}").unwrap();
    let (code, v) = json(&[
        "bundle",
        "--json",
        "--out",
        o,
        "--doctor",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{v}");
    let fifo = out.path().join("fifo.json");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, v) = json(&[
        "bundle",
        "--json",
        "--out",
        o,
        "--doctor",
        fifo.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fifo.json"),
        "{v}"
    );
    // A kernel no archive has (none configured): not done, one report.
    let conf = out.path().join("archives.conf");
    std::fs::write(&conf, "replace-builtin\n").unwrap();
    let (code, v) = json(&[
        "bundle",
        "--json",
        "--out",
        o,
        "--archives",
        conf.to_str().unwrap(),
        "--os",
        "debian:12:bookworm",
        "--kernel",
        "6.1.0-18-amd64",
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        v["failed"][0]["package"], "linux-headers-6.1.0-18-amd64",
        "{v}"
    );
    // --kernel without --os is a usage error.
    let (code, _) = json(&["bundle", "--json", "--out", o, "--kernel", "6.1.0-18-amd64"]);
    assert_eq!(code, 64);
}
