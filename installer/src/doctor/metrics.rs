//! `doctor --format prometheus`: the diagnosis as node_exporter textfile
//! metrics (the Prometheus text exposition format, version 0.0.4), and the
//! atomic write of the file the textfile collector reads.
//!
//! Every per-kernel series is written for every kernel doctor looked at,
//! with the value 0 when the condition does not hold, so an alert never
//! depends on a series appearing. The metric names and an alert rule are in
//! docs/metrics.md; keep the two in step.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use connector_host::fault::FAULT_KERNEL_DEVEL_MISSING;
use connector_host::os::Support;
use connector_policy::ModuleState;

use crate::doctor::Report;

/// The connector's own fault for a probe the kernel refused.
pub const FAULT_PROBE_REFUSED: u32 = 12;

/// Every state `connector_selinux_module_state` can be in (one-hot).
pub const MODULE_STATES: [&str; 6] = [
    "not-applicable",
    "not-installed",
    "outdated",
    "not-loaded",
    "current",
    "unknown",
];

/// The SELinux module's state in one word.
pub fn module_state(r: &Report) -> &'static str {
    let Some(s) = &r.selinux else {
        return "unknown";
    };
    if s.not_applicable.is_some() {
        return "not-applicable";
    }
    match &s.module {
        None => "unknown",
        Some(ModuleState::NotInstalled) => "not-installed",
        Some(ModuleState::Installed { current: true, .. }) if !s.module_not_loaded().is_empty() => {
            "not-loaded"
        }
        Some(ModuleState::Installed { current: true, .. }) => "current",
        Some(ModuleState::Installed { current: false, .. }) => "outdated",
    }
}

/// One metric family being written: its HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

fn family<'a>(out: &'a mut String, name: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    Family { out }
}

/// A label value as the exposition format quotes it.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The diagnosis as textfile metrics; `now` is when it ran (seconds since
/// the epoch).
pub fn render(r: &Report, now: u64) -> String {
    let mut out = String::new();
    let o = &mut out;
    family(
        o,
        "connector_doctor_success",
        "Whether connector-installer doctor could run its diagnosis (1) or not (0).",
    )
    .sample("connector_doctor_success", &[], 1.0);
    family(
        o,
        "connector_doctor_timestamp_seconds",
        "When the diagnosis ran, in seconds since the epoch.",
    )
    .sample("connector_doctor_timestamp_seconds", &[], now as f64);
    family(
        o,
        "connector_healthy",
        "Whether doctor found the host healthy: supported, no fault.",
    )
    .sample("connector_healthy", &[], flag(r.healthy));
    let support = match r.os.support {
        Support::Supported => "supported",
        Support::UnknownDistro => "unknown-distro",
        Support::UnsupportedVersion => "unsupported-version",
    };
    family(
        o,
        "connector_os_info",
        "The system doctor diagnosed; always 1.",
    )
    .sample(
        "connector_os_info",
        &[
            ("id", &r.os.id),
            ("version_id", &r.os.version_id),
            ("support", support),
        ],
        1.0,
    );
    family(o, "connector_faults", "Faults doctor found, all kernels.").sample(
        "connector_faults",
        &[],
        r.faults.len() as f64,
    );

    // Per kernel.
    let mut f = family(
        o,
        "connector_kernel_info",
        "A kernel that will run; always 1. probe: ebpf needs headers, kmod does not.",
    );
    for k in &r.kernels {
        let probe = match k.probe {
            connector_host::kernel::Probe::Ebpf => "ebpf",
            connector_host::kernel::Probe::Kmod => "kmod",
            connector_host::kernel::Probe::Unknown => "unknown",
        };
        f.sample(
            "connector_kernel_info",
            &[
                ("kernel", &k.release),
                ("running", if k.running { "true" } else { "false" }),
                ("probe", probe),
                ("package", k.headers.package.as_deref().unwrap_or("")),
            ],
            1.0,
        );
    }
    let mut f = family(
        o,
        "connector_kernel_headers_required",
        "Whether the connector needs this kernel's headers (eBPF path).",
    );
    for k in &r.kernels {
        f.sample(
            "connector_kernel_headers_required",
            &[("kernel", &k.release)],
            flag(k.headers.required),
        );
    }
    let mut f = family(
        o,
        "connector_kernel_headers_present",
        "Whether a usable header tree of exactly this kernel is on disk.",
    );
    for k in &r.kernels {
        f.sample(
            "connector_kernel_headers_present",
            &[("kernel", &k.release)],
            flag(k.headers.present),
        );
    }

    // Faults 11 and 12 on every kernel: from doctor's diagnosis and from
    // what the connector itself reports for the kernel it runs on.
    let mut kernels: Vec<String> = r.kernels.iter().map(|k| k.release.clone()).collect();
    let extra = r
        .faults
        .iter()
        .map(|f| f.kernel.clone())
        .chain(r.connector_status.iter().map(|s| s.kernel.clone()));
    for k in extra {
        if !kernels.contains(&k) {
            kernels.push(k);
        }
    }
    let raised = |kernel: &str, id: u32| {
        r.faults.iter().any(|f| f.kernel == kernel && f.id == id)
            || r.connector_status
                .iter()
                .any(|s| s.kernel == kernel && s.faults.iter().any(|f| f.id == id))
    };
    let mut f = family(
        o,
        "connector_kernel_fault",
        "Whether fault 11 (kernel-devel missing) or 12 (probe refused) is raised on the kernel, \
         by doctor or by the connector.",
    );
    for k in &kernels {
        for id in [FAULT_KERNEL_DEVEL_MISSING, FAULT_PROBE_REFUSED] {
            f.sample(
                "connector_kernel_fault",
                &[("kernel", k), ("fault", &id.to_string())],
                flag(raised(k, id)),
            );
        }
    }
    let mut f = family(
        o,
        "connector_fault_info",
        "One series per raised fault, with its cause and who raised it; always 1.",
    );
    for fault in &r.faults {
        let cause = serde_json::to_value(fault.cause)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        f.sample(
            "connector_fault_info",
            &[
                ("kernel", &fault.kernel),
                ("fault", &fault.id.to_string()),
                ("cause", &cause),
                ("source", "doctor"),
            ],
            1.0,
        );
    }
    if let Some(s) = &r.connector_status {
        for fault in &s.faults {
            f.sample(
                "connector_fault_info",
                &[
                    ("kernel", &s.kernel),
                    ("fault", &fault.id.to_string()),
                    ("cause", ""),
                    ("source", "connector"),
                ],
                1.0,
            );
        }
    }

    // SELinux.
    let state = module_state(r);
    let mut f = family(
        o,
        "connector_selinux_module_state",
        "The connector's SELinux module: 1 for the state it is in, 0 for the others.",
    );
    for s in MODULE_STATES {
        f.sample(
            "connector_selinux_module_state",
            &[("state", s)],
            flag(s == state),
        );
    }
    let denials = r.selinux.as_ref().map_or(0, |s| s.enforced_denials().len());
    family(
        o,
        "connector_selinux_denials",
        "Enforced denials of the connector's domain since its module was installed.",
    )
    .sample("connector_selinux_denials", &[], denials as f64);

    // The last installer run that changed the root.
    if let Some(run) = &r.last_run {
        family(
            o,
            "connector_last_run_timestamp_seconds",
            "When the last installer run that changed this system finished.",
        )
        .sample(
            "connector_last_run_timestamp_seconds",
            &[],
            run.finished_at as f64,
        );
        family(
            o,
            "connector_last_run_exit_code",
            "The exit code of that run (/usr/share/doc/connector/exit-codes.md).",
        )
        .sample(
            "connector_last_run_exit_code",
            &[("subcommand", &run.subcommand), ("outcome", &run.outcome)],
            run.exit_code as f64,
        );
        family(
            o,
            "connector_last_run_success",
            "Whether that run finished with exit code 0.",
        )
        .sample("connector_last_run_success", &[], flag(run.exit_code == 0));
    }

    // The connector's own published state.
    if let Some(s) = &r.connector_status {
        family(
            o,
            "connector_status_timestamp_seconds",
            "When the connector last published its status.",
        )
        .sample(
            "connector_status_timestamp_seconds",
            &[],
            s.updated_at as f64,
        );
        family(
            o,
            "connector_probe_loaded",
            "Whether the connector's eBPF probe is loaded and attached.",
        )
        .sample(
            "connector_probe_loaded",
            &[("kernel", &s.kernel)],
            flag(s.probe_loaded),
        );
    }
    out
}

/// What is written when the diagnosis could not run: the failure, so an
/// alert fires instead of a stale file being read as the truth.
pub fn render_failure(now: u64) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "connector_doctor_success",
        "Whether connector-installer doctor could run its diagnosis (1) or not (0).",
    )
    .sample("connector_doctor_success", &[], 0.0);
    family(
        &mut out,
        "connector_doctor_timestamp_seconds",
        "When the diagnosis ran, in seconds since the epoch.",
    )
    .sample("connector_doctor_timestamp_seconds", &[], now as f64);
    out
}

/// Replaces `path` (a host path the administrator chose, such as
/// node_exporter's textfile directory) with `text`, atomically: a new
/// file beside it, flushed, renamed over it. A reader sees the old file or
/// the new one, never a part; a link at `path` is replaced, not followed.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    path.file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    // Only a regular file is replaced (or one created): a device, FIFO or
    // socket there (`--output /dev/null`) is somebody else's. A link is
    // replaced itself, never written through.
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() && !m.file_type().is_symlink() => {
            anyhow::bail!(
                "{}: refused: {}; --output replaces only a regular file (or creates one)",
                path.display(),
                connector_host::root::kind_of(&m)
            )
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
    }
    // node_exporter reads only *.prom: the temporary's name
    // (`.NAME.connector-tmp.PID`) is not one.
    // Its errors name the file and the step.
    Ok(connector_host::atomic::write(
        path,
        text.as_bytes(),
        0o644,
        None,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    #[test]
    fn numbers_are_plain() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(1_764_000_000.0), "1764000000");
        assert_eq!(number(0.5), "0.5");
    }

    #[test]
    fn the_write_replaces_a_link_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let file = d.path().join("connector.prom");
        std::os::unix::fs::symlink(&target, &file).unwrap();
        write_atomically(&file, "connector_healthy 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&file)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "connector_healthy 1\n"
        );
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn a_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = write_atomically(d.path(), "x").unwrap_err();
        assert!(format!("{e:#}").contains("refused: a directory"), "{e:#}");
    }
}
