//! connectord, the reference connector daemon: real about the runtime
//! contract the installer exists for.
//!
//! At start and every 30 s it does what the connector does at start: it
//! compiles its eBPF probe against the running kernel's header tree with
//! clang ([`compile`]; cached while nothing it was compiled from changes),
//! loads the object and attaches it ([`probe`]). It raises fault 11 when the
//! compile fails for want of usable headers (the compiler's first error in
//! the fault), fault 12 when the headers compile but the kernel refuses the
//! program (SELinux, lockdown, the verifier: the vendor's connector reports
//! both as 11; ours tells them apart so repair applies the right fix), and
//! clears a fault by itself once its cause is gone. Its state is published
//! atomically in `/var/lib/connector/status.json`.
//!
//! Nothing here asks `doctor`'s question ("are the headers present?") of
//! the tree: the compiler answers it, and `doctor` is held to that answer
//! (`connector/tests/compile_matrix.rs`).

pub mod cli;
pub mod compile;
pub mod config;
pub mod probe;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use connector_host::fault::{FAULT_11_MESSAGE, FAULT_KERNEL_DEVEL_MISSING};
use connector_host::kernel;
use connector_host::os::OsInfo;
use connector_host::status::CompileReport;
use connector_host::Root;

use crate::compile::{CompileError, Compiler, Object};
use crate::probe::{Loaded, Refusal};
use connector_host::layout::AGENT_ID;

/// Fault id for "headers present, probe refused by the kernel".
pub const FAULT_PROBE_REFUSED: u32 = 12;
/// Its message.
pub const FAULT_12_MESSAGE: &str = "eBPF probe refused by the kernel (SELinux or lockdown)";
/// Where the status lives inside the root.
pub const STATUS_PATH: &str = connector_host::status::PATH;
/// How often the checks run (the vendor: the fault clears within a minute).
pub const INTERVAL_SECS: u64 = 30;

pub use connector_host::status::{AgentFault, Status};

/// What one round found.
#[derive(Debug)]
pub struct Round<'a> {
    /// The compile: the object, or why there is none.
    pub compile: &'a Result<Object, CompileError>,
    /// The load and attach of that object, when it was tried and failed.
    pub refused: Option<&'a Refusal>,
}

/// Decides the faults from one round. `previous` keeps the `since` of
/// faults that persist; faults whose cause is gone disappear.
pub fn evaluate(
    round: &Round<'_>,
    package: Option<&str>,
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
    match round.compile {
        Err(e) if e.is_headers() || matches!(e, CompileError::NoCompiler { .. }) => {
            let needed = match (e, package) {
                (CompileError::NoCompiler { .. }, _) => {
                    "the eBPF compiler is needed to compile the eBPF module".to_string()
                }
                (_, Some(p)) => format!("{p} is needed to compile the eBPF module"),
                (_, None) => {
                    "the running kernel's headers are needed to compile the eBPF module".into()
                }
            };
            faults.push(AgentFault {
                id: FAULT_KERNEL_DEVEL_MISSING,
                message: FAULT_11_MESSAGE.to_string(),
                detail: format!("{needed} ({e})"),
                since: since(FAULT_KERNEL_DEVEL_MISSING),
            });
        }
        Err(_) => {}
        Ok(_) => {
            if let Some(r) = round.refused.filter(|r| r.is_refusal()) {
                faults.push(AgentFault {
                    id: FAULT_PROBE_REFUSED,
                    message: FAULT_12_MESSAGE.to_string(),
                    detail: format!(
                        "{r} — the probe compiled; check SELinux (connector-installer selinux status)"
                    ),
                    since: since(FAULT_PROBE_REFUSED),
                });
            }
        }
    }
    faults
}

/// The connector's running state: its compiler, its attached probe, its
/// faults.
pub struct Agent {
    pub root: Root,
    pub release: String,
    /// connector.conf `clang =`.
    pub clang: Option<PathBuf>,
    loaded: Option<Loaded>,
    pub faults: Vec<AgentFault>,
}

impl Agent {
    pub fn new(root: Root, release: String, clang: Option<PathBuf>) -> Agent {
        Agent {
            root,
            release,
            clang,
            loaded: None,
            faults: Vec::new(),
        }
    }

    /// One round, as a start: the object (cache or compile), then the probe
    /// loaded from it unless it is already attached. A compile failure
    /// unloads the probe: the connector cannot run a module it cannot build.
    pub fn round(&mut self, now: u64) -> Status {
        let compile = Compiler::find(self.clang.as_deref())
            .and_then(|c| compile::build(&self.root, &self.release, &c));
        let mut refused = None;
        match &compile {
            Ok(obj) => {
                if self.loaded.as_ref().map(|l| l.key.as_str()) != Some(obj.key.as_str()) {
                    self.loaded = None;
                    match probe::load(&obj.bytes, &obj.key) {
                        Ok(l) => self.loaded = Some(l),
                        Err(r) => refused = Some(r),
                    }
                }
            }
            Err(_) => self.loaded = None,
        }
        let package = OsInfo::detect(&self.root)
            .ok()
            .and_then(|os| kernel::classify(&os, &self.release).header_package);
        let round = Round {
            compile: &compile,
            refused: refused.as_ref(),
        };
        let faults = evaluate(&round, package.as_deref(), &self.faults, now);
        self.faults = faults.clone();
        let report = match &compile {
            Ok(o) => CompileReport {
                tree: Some(o.tree.clone()),
                object: Some(o.path.clone()),
                cached: o.cached,
                millis: o.elapsed.as_millis() as u64,
                error: None,
            },
            Err(e) => CompileReport {
                tree: match e {
                    CompileError::Failed { tree, .. } => Some(tree.clone()),
                    _ => None,
                },
                object: None,
                cached: false,
                millis: 0,
                error: Some(e.to_string()),
            },
        };
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            agent_id: String::new(),
            pid: std::process::id(),
            updated_at: now,
            kernel: self.release.clone(),
            headers_present: compile.is_ok(),
            headers_path: compile.as_ref().ok().map(|o| o.tree.clone()),
            headers_package: package,
            probe_loaded: self.loaded.is_some(),
            probe_error: refused.as_ref().map(|r| r.to_string()).or_else(|| {
                compile
                    .as_ref()
                    .err()
                    .filter(|e| !e.is_headers())
                    .map(|e| e.to_string())
            }),
            faults,
            config_problems: Vec::new(),
            compile: Some(report),
            probe_events: self.loaded.as_ref().and_then(|l| l.events()),
        }
    }
}

/// This host's agent id: read, or made once from the kernel's random UUID
/// and written atomically.
pub fn agent_id(root: &Root) -> io::Result<String> {
    if let Some(id) = root.read_to_string_optional(AGENT_ID)? {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let id = fs::read_to_string("/proc/sys/kernel/random/uuid")?
        .trim()
        .to_string();
    let path = root.host_path(AGENT_ID);
    fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))?;
    connector_host::atomic::write(&path, format!("{id}\n").as_bytes(), 0o644, None)?;
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
    // Serialised whole first: one write, not one per token.
    let mut text = serde_json::to_vec_pretty(status).map_err(io::Error::other)?;
    text.push(b'\n');
    // Readable by the agent's group (the unit's UMask=0027 gave the same).
    connector_host::atomic::write(path, &text, 0o640, None)
}

/// Reads a published status.
pub fn read_status(path: &Path) -> io::Result<Status> {
    let text = fs::read_to_string(path)?;
    connector_host::status::parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn object() -> Result<Object, CompileError> {
        Ok(Object {
            bytes: vec![],
            path: "/var/lib/connector/probe/K-0.o".into(),
            tree: "/usr/src/kernels/K".into(),
            cached: false,
            elapsed: Duration::from_millis(1),
            key: "0".into(),
        })
    }

    fn failed() -> Result<Object, CompileError> {
        Err(CompileError::Failed {
            tree: "/usr/src/linux-headers-K".into(),
            first_error: "kconfig.h: No such file or directory".into(),
        })
    }

    fn refusal(errno: i32) -> Refusal {
        Refusal {
            step: "bpf prog_load tracepoint".into(),
            errno: Some(errno),
            reason: io::Error::from_raw_os_error(errno).to_string(),
            verifier: false,
        }
    }

    #[test]
    fn fault_11_carries_the_compilers_error_and_clears_when_it_compiles() {
        let c = failed();
        let r = Round {
            compile: &c,
            refused: None,
        };
        let f = evaluate(&r, Some("kernel-devel-K"), &[], 100);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id, 11);
        assert_eq!(f[0].message, "Required kernel-devel package is missing");
        assert!(
            f[0].detail.starts_with("kernel-devel-K is needed"),
            "{}",
            f[0].detail
        );
        assert!(
            f[0].detail.contains("kconfig.h: No such file"),
            "{}",
            f[0].detail
        );
        let anon = evaluate(&r, None, &[], 100);
        assert!(anon[0]
            .detail
            .starts_with("the running kernel's headers are needed"));
        // Still failing 30 s later: same fault, same `since`.
        let f2 = evaluate(&r, Some("kernel-devel-K"), &f, 130);
        assert_eq!(f2[0].since, 100);
        let ok = object();
        let r = Round {
            compile: &ok,
            refused: None,
        };
        assert!(evaluate(&r, Some("kernel-devel-K"), &f2, 160).is_empty());
        // No compiler at all is fault 11 too, saying so.
        let none: Result<Object, CompileError> = Err(CompileError::NoCompiler {
            looked: "clang".into(),
        });
        let r = Round {
            compile: &none,
            refused: None,
        };
        let f = evaluate(&r, Some("kernel-devel-K"), &[], 1);
        assert!(f[0].detail.contains("install clang"), "{}", f[0].detail);
    }

    #[test]
    fn a_refused_probe_that_compiled_is_fault_12_not_11() {
        let ok = object();
        for errno in [libc::EPERM, libc::EACCES] {
            let r = refusal(errno);
            let round = Round {
                compile: &ok,
                refused: Some(&r),
            };
            let f = evaluate(&round, None, &[], 1);
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].id, FAULT_PROBE_REFUSED);
            assert!(f[0].detail.contains("SELinux"));
        }
        // The verifier's refusal is fault 12 whatever the errno.
        let mut v = refusal(libc::EINVAL);
        v.verifier = true;
        let round = Round {
            compile: &ok,
            refused: Some(&v),
        };
        assert_eq!(evaluate(&round, None, &[], 1)[0].id, 12);
        // Another error is not a refusal: no fault 12.
        let e = refusal(libc::ENOENT);
        let round = Round {
            compile: &ok,
            refused: Some(&e),
        };
        assert!(evaluate(&round, None, &[], 1).is_empty());
        // A failed compile takes precedence: there is nothing to load.
        let c = failed();
        let round = Round {
            compile: &c,
            refused: Some(&e),
        };
        let f = evaluate(&round, None, &[], 1);
        assert_eq!(f.iter().map(|f| f.id).collect::<Vec<_>>(), vec![11]);
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
            compile: None,
            probe_events: Some(3),
        };
        publish(&path, &s).unwrap();
        assert_eq!(read_status(&path).unwrap(), s);
        s.updated_at = 6;
        publish(&path, &s).unwrap();
        assert_eq!(read_status(&path).unwrap().updated_at, 6);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }
}
