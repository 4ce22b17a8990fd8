//! The `connector-installer` binary as a user runs it: help text, JSON
//! document, exit codes, errors.

use std::path::Path;
use std::process::{Command, Output};

use connector_tests::{Fixture, Kernel, Layout};
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_connector-installer"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .output()
        .expect("running connector-installer")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The subcommands a `--help` lists under "Commands:" (help excluded).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Every page of help, every subcommand's (found by walking "Commands:"),
/// short and long: at most 80 columns, and wrapped as a filling wrap
/// would: no line ends early where the next line's first word would have
/// fitted (a hand-wrapped sentence that an edit made ragged).
#[test]
fn help_fits_80_columns_and_is_wrapped_evenly() {
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut pages = 0;
    while let Some(path) = todo.pop() {
        for flag in ["--help", "-h"] {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push(flag);
            let out = run(&args);
            assert!(out.status.success(), "{args:?}");
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(
                text.contains("Usage: connector-installer"),
                "{args:?}: {text}"
            );
            pages += 1;
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines {
                assert!(
                    line.chars().count() <= 80,
                    "{args:?}: line over 80 columns: {line:?}"
                );
            }
            let indent = |l: &str| l.len() - l.trim_start().len();
            for pair in lines.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let b_text = b.trim_start();
                // b continues a's text: same indentation, not a new option,
                // argument or list entry.
                let continues = !a.trim().is_empty()
                    && !b_text.is_empty()
                    && indent(a) == indent(b)
                    && !b_text.starts_with(['-', '<', '[']);
                if !continues || (indent(a) == 2 && !a.trim_start().starts_with('-')) {
                    continue;
                }
                let word = b_text.split_whitespace().next().unwrap();
                assert!(
                    a.chars().count() + 1 + word.chars().count() > 80,
                    "{args:?}: {a:?} ends early: {word:?} would have fitted\n{text}"
                );
            }
            if flag == "--help" {
                for sub in subcommands(&text) {
                    let mut p = path.clone();
                    p.push(sub);
                    todo.push(p);
                }
            }
        }
    }
    // The top, 9 commands, 3 selinux actions: long and short each.
    assert_eq!(pages, 2 * 13);
}

/// Each command's `--help` names its own exit codes.
#[test]
fn each_command_says_its_exit_codes() {
    for cmd in [
        "doctor",
        "headers",
        "selinux",
        "laydown",
        "install",
        "repair",
        "uninstall",
        "bundle",
        "hook",
    ] {
        let out = run(&[cmd, "--help"]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Exit status: 0 "), "{cmd}: {text}");
    }
    let hook = String::from_utf8(run(&["hook", "--help"]).stdout).unwrap();
    for name in [
        "kernel-postinst",
        "kernel-install",
        "rpm-posttrans",
        "deb-postrm",
    ] {
        assert!(hook.contains(name), "{name}: {hook}");
    }
}

#[test]
fn json_document_for_an_image_with_a_fault() {
    let f = Fixture::new();
    f.os_release("ol-8.9");
    let uek = Kernel::new("5.15.0-200.131.27.el8uek.x86_64", Layout::El8);
    let rhck = Kernel::new("4.18.0-513.5.1.0.1.el8_9.x86_64", Layout::El8);
    f.kernel(&uek).headers(&uek).kernel(&rhck);
    let out = run(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "faults found: exit 1");
    let v = json(&out);
    assert_eq!(v["os"]["id"], "ol");
    assert_eq!(v["os"]["version_id"], "8.9");
    let kernels = v["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 2);
    // Newest first.
    assert_eq!(kernels[0]["release"], uek.release);
    assert_eq!(kernels[0]["running"], false);
    assert_eq!(kernels[0]["probe"], "ebpf");
    assert_eq!(kernels[0]["flavor"], "uek7");
    assert_eq!(
        kernels[0]["headers"]["package"],
        "kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64"
    );
    assert_eq!(kernels[0]["headers"]["present"], true);
    assert_eq!(kernels[1]["headers"]["present"], false);
    let faults = v["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0]["id"], 11);
    assert_eq!(faults[0]["kernel"], rhck.release);
    assert_eq!(
        faults[0]["message"],
        "Required kernel-devel package is missing"
    );
    assert!(faults[0]["fix"]
        .as_str()
        .unwrap()
        .ends_with("install -y kernel-devel-4.18.0-513.5.1.0.1.el8_9.x86_64"));
    assert_eq!(v["healthy"], false);
}

#[test]
fn kmod_path_reports_null_package_and_exits_0() {
    let f = Fixture::new();
    f.os_release("rhel-7.9");
    f.kernel(&Kernel::new("3.10.0-1160.105.1.el7.x86_64", Layout::El7));
    let out = run(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["kernels"][0]["probe"], "kmod");
    assert!(v["kernels"][0]["headers"]["package"].is_null());
    assert_eq!(v["faults"].as_array().unwrap().len(), 0);
    assert_eq!(v["healthy"], true);
}

#[test]
fn text_report_names_the_fault_and_the_fix() {
    let f = Fixture::new();
    f.os_release("ubuntu-22.04");
    f.kernel(&Kernel::new("5.15.0-91-generic", Layout::Ubuntu));
    let out = run(&["doctor", "--root", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FAULT 11 on 5.15.0-91-generic: Required kernel-devel package is missing"),
        "{text}"
    );
    assert!(
        text.contains("apt-get install -y linux-headers-5.15.0-91-generic"),
        "{text}"
    );
    assert!(text.contains("Result:  1 fault"), "{text}");
}

#[test]
fn unsupported_system_exits_3() {
    let f = Fixture::new();
    f.os_release("fedora-39");
    let out = run(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["os"]["support"], "unknown-distro");
}

#[test]
fn diagnosis_that_cannot_run_exits_2_with_a_reason() {
    let out = run(&["doctor", "--root", "/nonexistent/connector-root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--root /nonexistent/connector-root"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");

    // A directory that is not a system root.
    let empty = tempfile::tempdir().unwrap();
    let out = run(&["doctor", "--root", empty.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no os-release in"), "{err}");
    // With --json, the one document on stdout is the error itself.
    let v = connector_tests::json::parse_strict(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "bad-root", "{v}");
    assert_eq!(v["error"]["exit_code"], 2, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no os-release in"),
        "{v}"
    );
}

/// This machine itself: the answer must agree with facts the test gathers
/// independently (`uname -r`, `/lib/modules`).
#[test]
fn doctor_on_this_host_is_truthful() {
    let out = run(&["doctor", "--json"]);
    let v = json(&out);
    let uname = Command::new("uname").arg("-r").output().unwrap();
    let release = String::from_utf8(uname.stdout).unwrap().trim().to_string();
    assert_eq!(v["live"], true);
    assert_eq!(v["root"], "/");
    assert_eq!(v["running_kernel"], release.as_str());
    let kernels = v["kernels"].as_array().unwrap();
    let running: Vec<_> = kernels.iter().filter(|k| k["running"] == true).collect();
    assert_eq!(running.len(), 1);
    let k = running[0];
    assert_eq!(k["release"], release.as_str());
    let has_modules = Path::new("/lib/modules").join(&release).is_dir();
    if !has_modules {
        assert_eq!(k["installed"], false);
        assert!(v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "running-kernel-not-installed"));
    }
    let faults = v["faults"].as_array().unwrap();
    let expect_code = if faults.is_empty() { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(expect_code));
    // On a host whose kernel was not built by the distribution (this CI
    // machine boots a hypervisor-supplied kernel), doctor must say that no
    // distribution package exists, rather than invent one.
    if k["distro_built"] == false {
        assert!(k["headers"]["package"].is_null());
        let f = faults
            .iter()
            .find(|f| f["kernel"] == release.as_str())
            .expect("fault 11 for the running kernel");
        assert_eq!(f["cause"], "no-header-package");
        assert!(f["detail"].as_str().unwrap().contains("no header tree"));
    }
    if k["headers"]["present"] == true {
        let path = k["headers"]["path"].as_str().unwrap();
        assert!(Path::new(path).join("Makefile").exists());
    }
}

#[test]
fn doctor_reads_the_connectors_own_status() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    let k = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    f.file(
        "/var/lib/connector/status.json",
        r#"{"version":"0.1.0","pid":1,"updated_at":5,"kernel":"5.14.0-362.8.1.el9_3.x86_64","headers_present":true,
            "headers_path":null,"headers_package":null,"probe_loaded":false,"probe_error":"bpf: EPERM",
            "faults":[{"id":12,"message":"eBPF probe refused by the kernel (SELinux or lockdown)","detail":"x","since":5}]}"#,
    );
    let out = run(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
    let v = json(&out);
    assert_eq!(v["connector_status"]["faults"][0]["id"], 12);
    assert!(v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "connector-status"
            && n["message"].as_str().unwrap().contains("fault 12")));
}

/// Doctor judges each image by its kernels' architecture, never by the
/// machine it runs on: an x86_64 build host looking at an aarch64 image (or
/// the reverse) says "present" exactly when the image's tree is complete
/// for that image's architecture. The architecture comes from the release
/// (`.aarch64`, `+64k`, `-arm64`), else from the kernel's own configuration
/// (`/boot/config-K`, for Ubuntu's `-generic`).
#[test]
fn headers_are_judged_for_the_kernels_architecture() {
    struct Case {
        os: &'static str,
        kernel: Kernel,
        /// The architecture the header tree was built for.
        tree: &'static str,
        package: &'static str,
    }
    let cases = [
        Case {
            os: "ol-9.3",
            kernel: Kernel::new("5.15.0-200.131.27.el9uek.aarch64", Layout::El8),
            tree: "arm64",
            package: "kernel-uek-devel-5.15.0-200.131.27.el9uek.aarch64",
        },
        Case {
            os: "rhel-9.3",
            kernel: Kernel::new("5.14.0-362.8.1.el9_3.aarch64+64k", Layout::El8),
            tree: "arm64",
            package: "kernel-64k-devel-5.14.0-362.8.1.el9_3.aarch64",
        },
        Case {
            os: "amzn-2023",
            kernel: Kernel::new("6.1.72-96.166.amzn2023.aarch64", Layout::El8),
            tree: "arm64",
            package: "kernel-devel-6.1.72-96.166.amzn2023.aarch64",
        },
        Case {
            os: "debian-12",
            kernel: Kernel::new("6.1.0-18-cloud-arm64", Layout::Debian),
            tree: "arm64",
            package: "linux-headers-6.1.0-18-cloud-arm64",
        },
        Case {
            os: "ubuntu-22.04",
            kernel: Kernel::new("5.15.0-91-generic", Layout::Ubuntu).with_arch("arm64"),
            tree: "arm64",
            package: "linux-headers-5.15.0-91-generic",
        },
        // The reverse: an x86_64 kernel with an arm64 tree.
        Case {
            os: "rhel-9.3",
            kernel: Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8),
            tree: "x86",
            package: "kernel-devel-5.14.0-362.8.1.el9_3.x86_64",
        },
        Case {
            os: "debian-12",
            kernel: Kernel::new("6.1.0-18-amd64", Layout::Debian),
            tree: "x86",
            package: "linux-headers-6.1.0-18-amd64",
        },
    ];
    for c in cases {
        let other = if c.tree == "x86" { "arm64" } else { "x86" };
        for (tree, present) in [(c.tree, true), (other, false)] {
            let f = Fixture::new();
            f.os_release(c.os);
            f.kernel(&c.kernel)
                .headers(&c.kernel.clone().with_arch(tree));
            let out = run(&["doctor", "--root", f.path().to_str().unwrap(), "--json"]);
            let v = json(&out);
            let k = &v["kernels"][0];
            let what = format!("{} with an {tree} tree", c.kernel.release);
            assert_eq!(k["release"], c.kernel.release.as_str(), "{what}: {v}");
            assert_eq!(k["headers"]["present"], present, "{what}: {v}");
            assert_eq!(k["headers"]["package"], c.package, "{what}: {v}");
            if present {
                assert_eq!(out.status.code(), Some(0), "{what}: {v}");
            } else {
                // The tree is refused for the file of the kernel's own arch.
                let why = k["headers"]["rejected"].to_string();
                assert!(why.contains(&format!("arch/{}/", c.tree)), "{what}: {why}");
                assert_eq!(out.status.code(), Some(1), "{what}: {v}");
                assert_eq!(v["faults"][0]["id"], 11, "{what}: {v}");
            }
        }
    }
}

/// A mistyped command or option is answered with the nearest real one
/// (clap's suggestions), exit 64, nothing run.
#[test]
fn a_typo_gets_the_nearest_command_or_option() {
    for (args, want) in [
        (&["instal"][..], "'install'"),
        (&["doctr"], "'doctor'"),
        (&["doctor", "--jsno"], "'--json'"),
        (&["selinux", "statsu"], "'status'"),
        (&["headers", "--dry-rn"], "'--dry-run'"),
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(
            err.contains("similar") && err.contains(want),
            "{args:?} should suggest {want}: {err}"
        );
    }
}

/// Run by a user who is not root, a command that meets a permission it
/// lacks says so: "run it as root", and `--json` gives `kind: not-root`
/// (as apt and dnf name it), not a bare "Permission denied".
#[test]
fn an_ordinary_user_is_told_to_run_as_root() {
    use std::os::unix::fs::PermissionsExt;
    if !nix_root() {
        eprintln!("skipped: needs root to switch to an ordinary user");
        return;
    }
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    f.file(
        "/etc/selinux/config",
        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    );
    let config = f.path().join("etc/selinux/config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The fixture's own directory is open to others; the config is not.
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_connector-installer"))
        .args(["selinux", "status", "--json", "--root"])
        .arg(f.path())
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("run it as root"), "{err}");
    assert_eq!(json(&out)["error"]["kind"], "not-root", "{err}");
    // Root reading the same root is not told so.
    let out = run(&[
        "selinux",
        "status",
        "--json",
        "--root",
        f.path().to_str().unwrap(),
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("run it as root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nix_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// A `--root` that cannot be opened (missing, a file) is a bad root, as
/// docs/exit-codes.md promises: `kind: bad-root`, exit 2, for the commands
/// that describe a root and those that act on one.
#[test]
fn a_root_that_cannot_be_opened_is_a_bad_root() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let missing = d.path().join("missing");
    for root in [&missing, &file] {
        for cmd in [
            &["doctor", "--json"][..],
            &["install", "--json"],
            &["selinux", "status", "--json"],
        ] {
            let out = bin().arg("--root").arg(root).args(cmd).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd:?} {root:?}: {err}");
            let v = json(&out);
            assert_eq!(v["error"]["kind"], "bad-root", "{cmd:?} {root:?}: {v}");
            assert!(err.contains(&format!("--root {}", root.display())), "{err}");
        }
    }
    assert!(!missing.exists(), "nothing was created");
}

/// `--version` names the machine the binary is for and the commit it was
/// built from; `-V` stays the bare version (man pages, scripts).
#[test]
fn version_names_the_machine_and_the_commit() {
    let out = run(&["--version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let want = format!(
        "connector-installer {} ({}, commit ",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    assert!(
        text.starts_with(&want),
        "{text:?} should start with {want:?}"
    );
    let commit = text[want.len()..].trim_end().trim_end_matches(')');
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit:?}"
    );
    let short = run(&["-V"]);
    assert_eq!(
        String::from_utf8_lossy(&short.stdout).trim(),
        format!("connector-installer {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `repair` gives one verdict, the exit code's: a fix that could not run is
/// never "healthy" nor "repaired", in the text or in the JSON.
#[test]
fn repair_says_one_verdict() {
    let f = Fixture::new();
    f.os_release("rhel-9.3");
    // No fault for doctor (the kernel has its headers), and no connector
    // laid down: the fix cannot run.
    let k = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
    f.kernel(&k).headers(&k);
    let root = f.path().to_str().unwrap();
    for dry in [true, false] {
        let mut args = vec!["--root", root, "repair"];
        if dry {
            args.push("--dry-run");
        }
        let text = run(&args);
        let out = String::from_utf8_lossy(&text.stdout);
        let err = String::from_utf8_lossy(&text.stderr);
        args.push("--json");
        let doc = run(&args);
        let v = json(&doc);
        assert_eq!(v["healthy"], false, "dry run {dry}: {v}");
        assert!(
            v["fix_failed"]
                .as_str()
                .is_some_and(|e| e.contains("not laid down")),
            "{v}"
        );
        assert_eq!(doc.status.code(), Some(2), "{v}");
        assert_eq!(text.status.code(), Some(2), "{out}{err}");
        let verdicts: Vec<&str> = out.lines().filter(|l| l.starts_with("Result:")).collect();
        assert_eq!(
            verdicts,
            ["Result:  not repaired: the fix could not run (the error above)"],
            "{out}"
        );
        assert!(
            !out.contains("repaired: no fault left") && !out.contains("healthy"),
            "{out}"
        );
    }
}

/// Options that would mean nothing for a command are refused, not
/// silently ignored: `selinux status` changes nothing and takes no lock;
/// `bundle` reads this host, never a root. Global options are listed
/// under their own heading.
#[test]
fn options_that_mean_nothing_are_refused() {
    for args in [
        &["selinux", "status", "--dry-run"][..],
        &["selinux", "status", "--lock-timeout", "5"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
    }
    let d = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["--root", d.path().to_str().unwrap(), "bundle", "--out"])
        .arg(d.path().join("b"))
        .args([
            "--os",
            "rhel:9.3",
            "--kernel",
            "5.14.0-362.8.1.el9_3.x86_64",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bundle does not take --root"), "{err}");
    assert!(!d.path().join("b").exists(), "nothing written: {err}");
    for sub in [
        &["--help"][..],
        &["doctor", "--help"],
        &["install", "--help"],
    ] {
        let help = String::from_utf8_lossy(&run(sub).stdout).into_owned();
        let global = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("{sub:?}: {help}"));
        assert!(help[global..].contains("--root <DIR>"), "{sub:?}: {help}");
        assert!(!help[..global].contains("--root <DIR>"), "{sub:?}: {help}");
    }
}
