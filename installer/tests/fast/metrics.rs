//! `doctor --format prometheus`: node_exporter textfile metrics, checked
//! against the diagnosis of fixture roots, written atomically with
//! `--output`, and (real-tools tier) linted by Prometheus's own `promtool`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use connector_tests::{Fixture, Kernel, Layout};

fn doctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connector-installer"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("running connector-installer")
}

/// Every sample of an exposition, `name{labels}` → value, with the labels
/// in the order written. Panics on a line that is neither a comment nor a
/// sample, and on a sample without a preceding TYPE of its family.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut typed = Vec::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            typed.iter().any(|t| t == name),
            "{name} has no TYPE before it"
        );
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a value: {line:?}"));
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "duplicate series {series}"
        );
    }
    out
}

fn faulty_ol8() -> (Fixture, Kernel, Kernel) {
    let f = Fixture::new();
    f.os_release("ol-8.9");
    let uek = Kernel::new("5.15.0-200.131.27.el8uek.x86_64", Layout::El8);
    let rhck = Kernel::new("4.18.0-513.5.1.0.1.el8_9.x86_64", Layout::El8);
    f.kernel(&uek).headers(&uek).kernel(&rhck);
    // The connector ran on the UEK and its probe was refused.
    f.file(
        "/var/lib/connector/status.json",
        &format!(
            r#"{{"version":"0.1.0","pid":1,"updated_at":1764000000,"kernel":"{}","headers_present":true,
            "headers_path":null,"headers_package":null,"probe_loaded":false,"probe_error":"bpf: EPERM",
            "faults":[{{"id":12,"message":"eBPF probe refused by the kernel","detail":"x","since":5}}]}}"#,
            uek.release
        ),
    );
    (f, uek, rhck)
}

#[test]
fn metrics_say_per_kernel_what_doctor_found() {
    let (f, uek, rhck) = faulty_ol8();
    let out = doctor(&[
        "--root",
        f.path().to_str().unwrap(),
        "--format",
        "prometheus",
    ]);
    assert_eq!(out.status.code(), Some(1), "faults found: exit 1 as ever");
    let text = String::from_utf8(out.stdout).unwrap();
    let s = samples(&text);
    let get = |k: &str| {
        *s.get(k)
            .unwrap_or_else(|| panic!("no series {k} in:\n{text}"))
    };
    assert_eq!(get("connector_doctor_success"), 1.0);
    assert_eq!(get("connector_healthy"), 0.0);
    assert_eq!(get("connector_faults"), 1.0);
    for (k, present, f11, f12) in [(&uek, 1.0, 0.0, 1.0), (&rhck, 0.0, 1.0, 0.0)] {
        let r = &k.release;
        assert_eq!(
            get(&format!(
                "connector_kernel_headers_present{{kernel=\"{r}\"}}"
            )),
            present
        );
        assert_eq!(
            get(&format!(
                "connector_kernel_headers_required{{kernel=\"{r}\"}}"
            )),
            1.0
        );
        assert_eq!(
            get(&format!(
                "connector_kernel_fault{{kernel=\"{r}\",fault=\"11\"}}"
            )),
            f11
        );
        assert_eq!(
            get(&format!(
                "connector_kernel_fault{{kernel=\"{r}\",fault=\"12\"}}"
            )),
            f12
        );
    }
    assert_eq!(
        get(&format!(
            "connector_fault_info{{kernel=\"{}\",fault=\"11\",cause=\"headers-missing\",source=\"doctor\"}}",
            rhck.release
        )),
        1.0
    );
    assert_eq!(
        get(&format!(
            "connector_probe_loaded{{kernel=\"{}\"}}",
            uek.release
        )),
        0.0
    );
    assert_eq!(get("connector_status_timestamp_seconds"), 1_764_000_000.0);
    // The module's state is one-hot: exactly one of the states is 1.
    let states: Vec<_> = s
        .iter()
        .filter(|(k, _)| k.starts_with("connector_selinux_module_state{"))
        .collect();
    assert_eq!(states.len(), 6, "{states:?}");
    assert_eq!(states.iter().filter(|(_, v)| **v == 1.0).count(), 1);
    assert_eq!(
        get("connector_selinux_module_state{state=\"not-applicable\"}"),
        1.0,
        "the fixture has no SELinux config"
    );
    // No installer ever ran here.
    assert!(!s.keys().any(|k| k.starts_with("connector_last_run")));
}

#[test]
fn a_healthy_root_with_an_installer_run_behind_it() {
    let f = Fixture::new();
    f.os_release("debian-12");
    let k = Kernel::new("6.1.0-18-amd64", Layout::Debian);
    f.kernel(&k).headers(&k);
    f.file(
        "/var/lib/connector/last-run.json",
        r#"{"schema_version":1,"subcommand":"install","finished_at":1764000100,"exit_code":0,"outcome":"ok","changes":[]}"#,
    );
    let out = doctor(&[
        "--root",
        f.path().to_str().unwrap(),
        "--format",
        "prometheus",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let s = samples(&text);
    assert_eq!(s["connector_healthy"], 1.0);
    assert_eq!(s["connector_faults"], 0.0);
    let r = &k.release;
    assert_eq!(
        s[&format!("connector_kernel_headers_present{{kernel=\"{r}\"}}")],
        1.0
    );
    assert_eq!(
        s[&format!("connector_kernel_fault{{kernel=\"{r}\",fault=\"11\"}}")],
        0.0
    );
    assert_eq!(s["connector_last_run_timestamp_seconds"], 1_764_000_100.0);
    assert_eq!(s["connector_last_run_success"], 1.0);
    assert_eq!(
        s["connector_last_run_exit_code{subcommand=\"install\",outcome=\"ok\"}"],
        0.0
    );
    assert!(
        s.keys()
            .any(|k| k.starts_with("connector_os_info{id=\"debian\",version_id=\"12\"")),
        "{text}"
    );
}

#[test]
fn output_replaces_the_file_atomically_and_keeps_the_exit_code() {
    let (f, _, _) = faulty_ol8();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connector.prom");
    std::fs::write(&file, "stale\n").unwrap();
    let before = std::fs::metadata(&file).unwrap();
    let out = doctor(&[
        "--root",
        f.path().to_str().unwrap(),
        "--format",
        "prometheus",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout with --output");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("connector_healthy 0\n"), "{text}");
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        std::fs::metadata(&file).unwrap().ino(),
        before.ino(),
        "a new file renamed over the old one"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary left behind");

    // JSON into a file is the same document as on stdout.
    let json = dir.path().join("doctor.json");
    doctor(&[
        "--root",
        f.path().to_str().unwrap(),
        "--format",
        "json",
        "--output",
        json.to_str().unwrap(),
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["os"]["id"], "ol");

    // A file that cannot be written is named in the error; the temporary
    // beside it is not.
    let nowhere = dir.path().join("missing/connector.prom");
    let out = doctor(&[
        "--root",
        f.path().to_str().unwrap(),
        "--format",
        "prometheus",
        "--output",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&nowhere.display().to_string()), "{err}");
    assert!(!err.contains("connector-tmp"), "{err}");

    // A relative name is written in the working directory.
    let out = Command::new(env!("CARGO_BIN_EXE_connector-installer"))
        .current_dir(dir.path())
        .args([
            "doctor",
            "--root",
            f.path().to_str().unwrap(),
            "--format",
            "prometheus",
            "--output",
            "rel.prom",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(dir.path().join("rel.prom"))
        .unwrap()
        .contains("connector_healthy 0\n"));
}

#[test]
fn a_diagnosis_that_cannot_run_is_written_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connector.prom");
    std::fs::write(&file, "connector_healthy 1\n").unwrap();
    let out = doctor(&[
        "--root",
        "/nonexistent/image",
        "--format",
        "prometheus",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let s = samples(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(s["connector_doctor_success"], 0.0);
    assert!(
        !s.contains_key("connector_healthy"),
        "the stale answer is gone"
    );
}

#[test]
fn json_and_format_are_one_choice() {
    let out = doctor(&["--json", "--format", "text"]);
    assert_eq!(out.status.code(), Some(64), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// Prometheus's own linter (Debian's `prometheus` package ships it).
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "needs promtool: --features connector-installer/real-tools"
)]
fn promtool_accepts_the_metrics() {
    for (f, code) in [(faulty_ol8().0, 1), {
        let f = Fixture::new();
        f.os_release("rhel-9.3");
        let k = Kernel::new("5.14.0-362.8.1.el9_3.x86_64", Layout::El8);
        f.kernel(&k).headers(&k);
        (f, 0)
    }] {
        let out = doctor(&[
            "--root",
            f.path().to_str().unwrap(),
            "--format",
            "prometheus",
        ]);
        assert_eq!(out.status.code(), Some(code));
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool (Debian package prometheus; scripts/setup --test installs it)");
        child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
        let lint = child.wait_with_output().unwrap();
        assert!(
            lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
            "promtool: {}{}\n{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The shipped alert rules, run by `promtool test rules` over the metrics
/// doctor writes for a faulty image (host h1), a host whose diagnosis
/// failed (h2) and a host with a fault on the kernel it runs (h3).
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "needs promtool: --features connector-installer/real-tools"
)]
fn the_alert_rules_fire_on_the_metrics() {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/connector-alerts.yml");
    let (f, uek, rhck) = faulty_ol8();
    let out = doctor(&[
        "--root",
        f.path().to_str().unwrap(),
        "--format",
        "prometheus",
    ]);
    let mut series = Vec::new();
    let mut add = |s: &str, host: &str, v: f64| {
        let (name, labels) = match s.split_once('{') {
            Some((n, l)) => (n.to_string(), format!("{},", l.trim_end_matches('}'))),
            None => (s.to_string(), String::new()),
        };
        series.push(serde_json::json!({
            "series": format!("{name}{{{labels}instance=\"{host}\",job=\"node\"}}"),
            "values": format!("{v}x90"),
        }));
    };
    for (s, v) in samples(&String::from_utf8(out.stdout).unwrap()) {
        add(&s, "h1", v);
    }
    let failed = doctor(&["--root", "/nonexistent", "--format", "prometheus"]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(failed.stdout.is_empty(), "stdout keeps nothing on failure");
    add("connector_doctor_success", "h2", 0.0);
    add(
        "connector_kernel_fault{kernel=\"6.1.0-18-amd64\",fault=\"11\"}",
        "h3",
        1.0,
    );
    add(
        "connector_kernel_fault{kernel=\"6.1.0-18-amd64\",fault=\"12\"}",
        "h3",
        0.0,
    );
    add(
        "connector_kernel_info{kernel=\"6.1.0-18-amd64\",running=\"true\",probe=\"ebpf\",package=\"linux-headers-6.1.0-18-amd64\"}",
        "h3",
        1.0,
    );
    let waits = |k: &str, fault: &str| {
        serde_json::json!({
            "exp_labels": {"severity": "warning", "kernel": k, "fault": fault, "instance": "h1", "job": "node"},
            "exp_annotations": {
                "summary": format!("connector fault {fault} waits on h1 in kernel {k}"),
                "description": "Run `connector-installer headers` on the host before it reboots into this kernel.",
            },
        })
    };
    let test = serde_json::json!({
        "rule_files": [rules],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "70m", "alertname": "ConnectorFault", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "kernel": "6.1.0-18-amd64", "fault": "11", "instance": "h3", "job": "node"},
                    "exp_annotations": {
                        "summary": "connector fault 11 on h3, kernel 6.1.0-18-amd64",
                        "description": "Run `connector-installer doctor` on the host for the cause and the fix; `connector-installer repair` applies it.",
                    },
                }]},
                {"eval_time": "10m", "alertname": "ConnectorFault", "exp_alerts": []},
                {"eval_time": "70m", "alertname": "ConnectorFaultAfterReboot", "exp_alerts": [
                    waits(&uek.release, "12"), waits(&rhck.release, "11"),
                ]},
                {"eval_time": "70m", "alertname": "ConnectorMetricsStale", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "instance": "h2", "job": "node"},
                    "exp_annotations": {
                        "summary": "no fresh connector diagnosis from h2",
                        "description": "Check `systemctl status connector-metrics.service` on the host.",
                    },
                }]},
            ],
        }],
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("test.yml");
    std::fs::write(&file, serde_json::to_string_pretty(&test).unwrap()).unwrap();
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let run = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .expect("promtool");
    assert!(
        run.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
