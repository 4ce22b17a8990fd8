//! `connector-installer repair`: diagnose, fix every fault that can be
//! fixed (headers, module, labels, the unit), restart the connector, then
//! wait for the connector's own status to report the fault clear — the
//! seed's "within one minute" — and say what was done and what is left.

use std::time::{Duration, Instant};

use anyhow::Result;
use connector_host::fault::Fault;
use serde::Serialize;

use connector_host::status::{self, Status};

use crate::doctor::{self, DoctorOptions};
use crate::facts::Facts;
use crate::install::{self, InstallOptions, InstallReport};
use connector_host::layout::STATUS;

#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub schema_version: u32,
    pub root: String,
    /// `--dry-run`: `install` is the plan; nothing was changed, nothing
    /// restarted, nothing waited for.
    pub dry_run: bool,
    /// The faults `doctor` found first.
    pub before: Vec<Fault>,
    /// What was done about them.
    pub install: Option<InstallReport>,
    /// Why nothing could be done, when the fix itself failed to run.
    /// (`fix_failed` in JSON: a top-level `error` object is reserved for
    /// the error document of docs/exit-codes.md.)
    #[serde(rename = "fix_failed")]
    pub error: Option<String>,
    /// Waiting for the connector: how long, and its last word.
    pub waited_ms: u64,
    pub connector_status: Option<Status>,
    /// Faults left afterwards (doctor's and the connector's own).
    pub left: Vec<String>,
    pub healthy: bool,
}

impl RepairReport {
    pub fn exit_code(&self) -> i32 {
        if self.error.is_some() {
            crate::exit::ERROR
        } else if self.healthy {
            crate::exit::OK
        } else {
            crate::exit::NOT_DONE
        }
    }
}

/// Runs the repair. `wait`: how long to wait for the connector to report
/// (0: do not wait).
pub fn run(
    opts: &InstallOptions,
    verdict: Option<&DoctorOptions>,
    wait: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<RepairReport> {
    // One gathering of facts: the faults shown first and the install plan
    // both come from it, unless doctor sees the root otherwise (`verdict`:
    // a live host acted on as an image); then the faults are doctor's.
    let facts = Facts::gather_for(&opts.root, opts.ask(None))?;
    let before = match verdict {
        Some(v) => doctor::diagnose(v)?,
        None => doctor::report(&facts),
    };
    let mut report = RepairReport {
        schema_version: 1,
        root: opts.root.path().display().to_string(),
        dry_run: opts.dry_run,
        before: before.faults.clone(),
        install: None,
        error: None,
        waited_ms: 0,
        connector_status: None,
        left: Vec::new(),
        healthy: false,
    };
    for f in &before.faults {
        progress(&format!("fault {} on {}: {}", f.id, f.kernel, f.detail));
    }
    let since = now();
    let mut o = opts.clone();
    o.restart = true;
    match install::run_from(&o, facts, progress) {
        Ok(r) => report.install = Some(r),
        Err(e) => report.error = Some(format!("{e:#}")),
    }

    if opts.dry_run {
        report.left = before
            .faults
            .iter()
            .map(|f| format!("fault {} on {}: {}", f.id, f.kernel, f.detail))
            .collect();
        report.healthy = report.error.is_none() && before.faults.is_empty();
        return Ok(report);
    }
    // The connector's own word, from a status written after the restart.
    if !wait.is_zero() && report.error.is_none() {
        progress(&format!(
            "waiting up to {} s for the connector to report",
            wait.as_secs()
        ));
        let start = Instant::now();
        loop {
            // Unreadable (mid-write by a non-atomic writer, or garbage):
            // not fresh, asked again.
            let status = status::read(&opts.root).ok().flatten();
            let fresh = status.as_ref().is_some_and(|s| s.updated_at >= since);
            let clear = status.as_ref().is_some_and(|s| s.faults.is_empty());
            report.connector_status = status;
            if fresh && clear {
                break;
            }
            if start.elapsed() >= wait {
                report.left.push(if fresh {
                    format!(
                        "the connector still reports a fault after {} s",
                        wait.as_secs()
                    )
                } else {
                    format!(
                        "the connector did not report within {} s ({STATUS} not updated); \
                         check `systemctl status connectord`",
                        wait.as_secs()
                    )
                });
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        report.waited_ms = start.elapsed().as_millis() as u64;
    }

    // After the fix: a new look, not the facts the fix was planned from,
    // the way doctor looks.
    let acted_on = DoctorOptions {
        root: opts.root.clone(),
        kernel: None,
        running: opts.running.clone(),
    };
    let after = doctor::diagnose(verdict.unwrap_or(&acted_on))?;
    for f in &after.faults {
        report.left.push(format!(
            "fault {} on {}: {}; {}",
            f.id, f.kernel, f.detail, f.fix
        ));
    }
    if let Some(r) = &report.install {
        for x in r
            .results
            .iter()
            .filter(|x| x.state == install::StepState::Failed)
        {
            report
                .left
                .push(format!("{} failed: {}", x.step.name(), x.detail));
        }
    }
    if let Some(s) = &report.connector_status {
        for f in &s.faults {
            let line = format!("the connector reports fault {}: {}", f.id, f.detail);
            if !report.left.contains(&line) && !wait.is_zero() {
                report.left.push(line);
            }
        }
    }
    report.healthy = report.error.is_none() && report.left.is_empty();
    Ok(report)
}

fn now() -> u64 {
    connector_host::time::now()
}

/// The report for people.
pub fn render_text(r: &RepairReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if r.dry_run {
        let _ = writeln!(s, "dry run: nothing was changed; the plan follows");
    }
    if r.before.is_empty() {
        let _ = writeln!(s, "doctor found no fault");
    }
    for f in &r.before {
        let _ = writeln!(s, "found: fault {} on {}: {}", f.id, f.kernel, f.detail);
    }
    if let Some(i) = &r.install {
        s.push_str(&install::render_text(i));
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "error: {e}");
    }
    if r.waited_ms > 0 {
        let _ = writeln!(
            s,
            "waited {:.1} s for the connector's status",
            r.waited_ms as f64 / 1000.0
        );
    }
    for l in &r.left {
        let _ = writeln!(s, "left: {l}");
    }
    // One verdict, the exit code's.
    let verdict = match (&r.error, r.healthy, r.dry_run) {
        (Some(_), _, _) => "not repaired: the fix could not run (the error above)".to_string(),
        (None, true, true) => "nothing to repair".to_string(),
        (None, true, false) if r.before.is_empty() => "healthy: nothing needed repair".to_string(),
        (None, true, false) => "repaired: no fault left".to_string(),
        (None, false, true) => format!("{} fault(s) the plan above would fix", r.left.len()),
        (None, false, false) => format!("{} problem(s) left (above)", r.left.len()),
    };
    let _ = writeln!(s, "Result:  {verdict}");
    s
}
