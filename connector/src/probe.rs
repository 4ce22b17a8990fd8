//! The connector's eBPF probe, loaded from the object [`crate::compile`]
//! made: aya reads the ELF, creates its map (`BPF_MAP_CREATE`), applies the
//! map relocations, loads the tracepoint program (`BPF_PROG_LOAD`, through
//! the verifier) and attaches it to `sched/sched_process_exec` through
//! `perf_event_open` — the syscalls, kernel checks and SELinux hooks of the
//! real module.
//!
//! A refusal keeps its errno and the verifier's words: EPERM/EACCES, or a
//! verifier log, with headers present is the kernel refusing the program
//! (SELinux, lockdown, the verifier: fault 12), which the installer must
//! tell apart from missing headers (fault 11).

use std::io;

use aya::maps::Array;
use aya::programs::{ProgramError, TracePoint};
use aya::{Ebpf, EbpfError, EbpfLoader};
use serde::Serialize;

/// The program's name in the object (its function).
pub const PROGRAM: &str = "connector_exec";
/// The map counting events.
pub const MAP: &str = "connector_events";
/// Where it attaches.
pub const TRACEPOINT: (&str, &str) = ("sched", "sched_process_exec");

/// Why the kernel did not take the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// What was being done: "bpf map_create", "bpf prog_load tracepoint",
    /// "perf_event_open tracepoint", …
    pub step: String,
    pub errno: Option<i32>,
    /// The error, with the verifier's last words when it spoke.
    pub reason: String,
    /// The verifier rejected the program (a log came back).
    pub verifier: bool,
}

impl Refusal {
    /// A refusal by the kernel's policy or the verifier (fault 12), not a
    /// missing facility (no tracefs) or a bug.
    pub fn is_refusal(&self) -> bool {
        self.verifier || matches!(self.errno, Some(libc::EPERM) | Some(libc::EACCES))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.reason)
    }
}

/// A loaded, attached probe; dropping it detaches and unloads everything.
pub struct Loaded {
    ebpf: Ebpf,
    /// The cache key of the object it came from.
    pub key: String,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("key", &self.key).finish()
    }
}

impl Loaded {
    /// Events counted so far.
    pub fn events(&self) -> Option<u64> {
        let map = self.ebpf.map(MAP)?;
        let array: Array<_, u64> = Array::try_from(map).ok()?;
        array.get(&0, 0).ok()
    }
}

/// The first `io::Error` in an error's chain, and the chain as text.
fn errno_of(e: &(dyn std::error::Error + 'static)) -> (Option<i32>, String) {
    let mut errno = None;
    let mut text = e.to_string();
    let mut cur = e.source();
    if let Some(io) = e.downcast_ref::<io::Error>() {
        errno = io.raw_os_error();
    }
    while let Some(s) = cur {
        if errno.is_none() {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                errno = io.raw_os_error();
            }
        }
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cur = s.source();
    }
    (errno, text)
}

fn refusal(step: &str, e: &(dyn std::error::Error + 'static)) -> Refusal {
    let (errno, reason) = errno_of(e);
    Refusal {
        step: step.to_string(),
        errno,
        reason,
        verifier: false,
    }
}

fn program_refusal(step: &str, e: ProgramError) -> Refusal {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = &e
    {
        let log = verifier_log.to_string();
        let last = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with("processed "))
            .map(|l| l.trim().to_string());
        return Refusal {
            step: step.to_string(),
            errno: io_error.raw_os_error(),
            reason: match &last {
                Some(l) => format!("{io_error}; the verifier said: {l}"),
                None => io_error.to_string(),
            },
            verifier: last.is_some(),
        };
    }
    refusal(step, &e)
}

/// Loads and attaches the probe from `object`.
pub fn load(object: &[u8], key: &str) -> Result<Loaded, Refusal> {
    // The loader reads the kernel's BTF (/sys/kernel/btf/vmlinux) once
    // when made; `Ebpf::load` would make one and then parse it again.
    let mut ebpf = EbpfLoader::new().load(object).map_err(|e| {
        let step = match &e {
            EbpfError::MapError(_) => "bpf map_create",
            _ => "reading the probe object",
        };
        refusal(step, &e)
    })?;
    let program: &mut TracePoint = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| Refusal {
            step: "reading the probe object".into(),
            errno: None,
            reason: format!("the object has no program {PROGRAM}"),
            verifier: false,
        })?
        .try_into()
        .map_err(|e: ProgramError| refusal("reading the probe object", &e))?;
    program
        .load()
        .map_err(|e| program_refusal("bpf prog_load tracepoint", e))?;
    program
        .attach(TRACEPOINT.0, TRACEPOINT.1)
        .map_err(|e| program_refusal("attaching to sched/sched_process_exec", e))?;
    Ok(Loaded {
        ebpf,
        key: key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permissions_or_the_verifier() {
        let mk = |errno, verifier| Refusal {
            step: "x".into(),
            errno: Some(errno),
            reason: "e".into(),
            verifier,
        };
        assert!(mk(libc::EPERM, false).is_refusal());
        assert!(mk(libc::EACCES, false).is_refusal());
        assert!(mk(libc::EINVAL, true).is_refusal());
        assert!(!mk(libc::EINVAL, false).is_refusal());
        assert!(!mk(libc::ENOENT, false).is_refusal());
    }

    #[test]
    fn an_object_that_is_not_elf_is_refused_with_a_reason() {
        let r = load(b"not an object", "k").unwrap_err();
        assert_eq!(r.step, "reading the probe object");
        assert!(!r.is_refusal());
        assert!(!r.reason.is_empty());
    }
}
