//! connectord, the reference connector daemon: real about the runtime
//! contract the installer exists for.
//!
//! At start and every 30 s it checks the running kernel's headers exactly
//! as `doctor` does (the same `connector-host` code) and runs its eBPF
//! probe. It raises fault 11 when the headers are missing, fault 12 when the
//! headers are present but the kernel refuses the probe (EPERM/EACCES:
//! SELinux or lockdown — the vendor's connector reports both as 11; ours
//! tells them apart so repair applies the right fix), and clears a fault by
//! itself once its cause is gone. Its state is published atomically in
//! `/var/lib/connector/status.json`.

pub mod cli;
pub mod config;
pub mod probe;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use connector_host::fault::{FAULT_11_MESSAGE, FAULT_KERNEL_DEVEL_MISSING};
use connector_host::headers::HeadersOnDisk;
use connector_host::kernel;
use connector_host::os::OsInfo;
use connector_host::Root;

use crate::probe::ProbeResult;

/// Fault id for "headers present, probe refused by the kernel".
pub const FAULT_PROBE_REFUSED: u32 = 12;
/// Its message.
pub const FAULT_12_MESSAGE: &str = "eBPF probe refused by the kernel (SELinux or lockdown)";
/// Where the status lives inside the root.
pub const STATUS_PATH: &str = connector_host::status::PATH;
/// How often the checks run (the vendor: the fault clears within a minute).
pub const INTERVAL_SECS: u64 = 30;

pub use connector_host::status::{AgentFault, Status};

/// Decides the faults from one round of checks. `previous` keeps the
/// `since` of faults that persist; faults whose cause is gone disappear.
pub fn evaluate(
    headers: &HeadersOnDisk,
    package: Option<&str>,
    probe: &ProbeResult,
    previous: &[AgentFault],
    now: u64,
) -> Vec<AgentFault> {
    let since = |id: u32| {
        previous
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.since)
            .unwrap_or(now)
    };
    let mut faults = Vec::new();
    if !headers.present {
        let why = headers
            .rejected
            .iter()
            .filter_map(|c| c.problem.as_ref().map(|p| format!("{}: {p}", c.path)))
            .collect::<Vec<_>>();
        faults.push(AgentFault {
            id: FAULT_KERNEL_DEVEL_MISSING,
            message: FAULT_11_MESSAGE.to_string(),
            detail: format!(
                "{} needed to compile the eBPF module{}",
                package
                    .map(|p| format!("{p} is"))
                    .unwrap_or_else(|| "the running kernel's headers are".into()),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", why.join("; "))
                }
            ),
            since: since(FAULT_KERNEL_DEVEL_MISSING),
        });
    } else if let Some(step) = probe.refused() {
        faults.push(AgentFault {
            id: FAULT_PROBE_REFUSED,
            message: FAULT_12_MESSAGE.to_string(),
            detail: format!(
                "{} failed: {} — headers are present; check SELinux (connector-installer selinux status)",
                step.name,
                step.error.as_deref().unwrap_or("refused")
            ),
            since: since(FAULT_PROBE_REFUSED),
        });
    }
    faults
}

/// One round: headers, probe, faults.
pub fn check(root: &Root, release: &str, previous: &[AgentFault], now: u64) -> io::Result<Status> {
    // An unreadable tree is a rejected candidate (a fault to publish), never
    // a reason to publish nothing.
    let headers = connector_host::headers::check(root, release);
    let package = OsInfo::detect(root)
        .ok()
        .and_then(|os| kernel::classify(&os, release).header_package);
    let probe = probe::run(release);
    let faults = evaluate(&headers, package.as_deref(), &probe, previous, now);
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        agent_id: String::new(),
        pid: std::process::id(),
        updated_at: now,
        kernel: release.to_string(),
        headers_present: headers.present,
        headers_path: headers.path,
        headers_package: package,
        probe_loaded: probe.loaded(),
        probe_error: probe
            .steps
            .iter()
            .find_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.name))),
        faults,
        config_problems: Vec::new(),
    })
}

/// Where the agent identity lives inside the root.
pub const AGENT_ID_PATH: &str = connector_host::layout::AGENT_ID;

/// This host's agent id: read, or made once from the kernel's random UUID
/// and written atomically.
pub fn agent_id(root: &Root) -> io::Result<String> {
    if let Some(id) = root.read_to_string_optional(AGENT_ID_PATH)? {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let id = fs::read_to_string("/proc/sys/kernel/random/uuid")?
        .trim()
        .to_string();
    let path = root.host_path(AGENT_ID_PATH);
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".agent-id.{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    Ok(id)
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes the status atomically: a temporary file in the same directory,
/// fsync, rename, fsync of the directory. Readers never see half a file.
pub fn publish(path: &Path, status: &Status) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir)?;
    let tmp: PathBuf = dir.join(format!(".status.json.{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, status).map_err(io::Error::other)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

/// Reads a published status.
pub fn read_status(path: &Path) -> io::Result<Status> {
    let text = fs::read_to_string(path)?;
    connector_host::status::parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Step;
    use connector_host::headers::{Candidate, TreeProblem};

    fn present() -> HeadersOnDisk {
        HeadersOnDisk {
            present: true,
            path: Some("/usr/src/kernels/K".into()),
            rejected: vec![],
        }
    }

    fn missing() -> HeadersOnDisk {
        HeadersOnDisk {
            present: false,
            path: None,
            rejected: vec![Candidate {
                path: "/lib/modules/K/build".into(),
                tree: None,
                problem: Some(TreeProblem::DanglingLink {
                    link: "/lib/modules/K/build".into(),
                    target: "/usr/src/kernels/K".into(),
                }),
            }],
        }
    }

    fn probe(errno: Option<i32>) -> ProbeResult {
        ProbeResult {
            steps: vec![Step {
                name: "bpf prog_load kprobe",
                ok: errno.is_none(),
                error: errno.map(|e| io::Error::from_raw_os_error(e).to_string()),
                errno,
            }],
        }
    }

    #[test]
    fn fault_11_raised_then_cleared_when_headers_arrive() {
        let f = evaluate(&missing(), Some("kernel-devel-K"), &probe(None), &[], 100);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id, 11);
        assert_eq!(f[0].message, "Required kernel-devel package is missing");
        assert!(
            f[0].detail.starts_with("kernel-devel-K is needed"),
            "{}",
            f[0].detail
        );
        let anon = evaluate(&missing(), None, &probe(None), &[], 100);
        assert!(
            anon[0]
                .detail
                .starts_with("the running kernel's headers are needed"),
            "{}",
            anon[0].detail
        );
        assert!(
            f[0].detail.contains("points to /usr/src/kernels/K"),
            "{}",
            f[0].detail
        );
        // Still missing 30 s later: same fault, same `since`.
        let f2 = evaluate(&missing(), Some("kernel-devel-K"), &probe(None), &f, 130);
        assert_eq!(f2[0].since, 100);
        // Headers installed: cleared.
        assert!(evaluate(&present(), Some("kernel-devel-K"), &probe(None), &f2, 160).is_empty());
    }

    #[test]
    fn refused_probe_with_headers_is_fault_12_not_11() {
        for errno in [libc::EPERM, libc::EACCES] {
            let f = evaluate(&present(), None, &probe(Some(errno)), &[], 1);
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].id, FAULT_PROBE_REFUSED);
            assert!(f[0].detail.contains("SELinux"));
        }
        // Another error is not a permission problem: no fault 12.
        assert!(evaluate(&present(), None, &probe(Some(libc::EINVAL)), &[], 1).is_empty());
        // Missing headers take precedence: the probe cannot be compiled.
        let f = evaluate(&missing(), None, &probe(Some(libc::EPERM)), &[], 1);
        assert_eq!(f.iter().map(|f| f.id).collect::<Vec<_>>(), vec![11]);
        // Cleared once the module lets it through.
        assert!(evaluate(&present(), None, &probe(None), &f, 2).is_empty());
    }

    #[test]
    fn status_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/lib/connector/status.json");
        let mut s = Status {
            agent_id: "test".into(),
            version: "1".into(),
            pid: 1,
            updated_at: 5,
            kernel: "K".into(),
            headers_present: true,
            headers_path: None,
            headers_package: None,
            probe_loaded: true,
            probe_error: None,
            faults: vec![],
            config_problems: vec![],
        };
        publish(&path, &s).unwrap();
        assert_eq!(read_status(&path).unwrap(), s);
        s.updated_at = 6;
        publish(&path, &s).unwrap();
        assert_eq!(read_status(&path).unwrap().updated_at, 6);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn the_probe_loads_on_this_kernel_as_root_without_selinux() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let selinux = Path::new("/sys/fs/selinux/enforce").exists();
        let release = connector_host::inventory::running_release().unwrap();
        let r = probe::run(&release);
        if root && !selinux {
            assert!(r.loaded(), "{:?}", r.steps);
        } else {
            // Elsewhere every failure must carry its errno.
            assert!(
                r.steps.iter().all(|s| s.ok || s.errno.is_some()),
                "{:?}",
                r.steps
            );
        }
        assert_eq!(r.steps.len(), 4);
    }
}
