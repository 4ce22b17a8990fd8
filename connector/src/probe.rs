//! The connector's eBPF probe, reduced to what matters for the installer:
//! the same syscalls, checked by the same kernel and SELinux hooks, as the
//! real module — without a compiler. Built in-process:
//! - an array map (`BPF_MAP_CREATE`);
//! - a socket-filter program and a kprobe program, each `r0 = 0; exit`
//!   (`BPF_PROG_LOAD`);
//! - a system-wide software perf event (`perf_event_open`), the call a
//!   kprobe attachment goes through.
//!
//! Each step's errno is kept: EPERM/EACCES with headers present is the
//! SELinux (or lockdown) cause the installer must tell apart from missing
//! headers.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use serde::Serialize;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
const BPF_PROG_TYPE_KPROBE: u32 = 2;
/// `PERF_FLAG_FD_CLOEXEC` of linux/perf_event.h.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// `union bpf_attr`, as large as any kernel's (it only reads its size).
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

impl BpfAttr {
    fn new() -> Self {
        BpfAttr([0; 128])
    }
    fn put_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
}

fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<OwnedFd> {
    // SAFETY: attr points at a zero-initialised buffer large enough for the
    // command; the kernel reads only `size` bytes of it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BpfAttr,
            std::mem::size_of::<BpfAttr>(),
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the kernel returned a new file descriptor we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// `r0 = 0; exit`.
const RETURN_ZERO: [u64; 2] = [
    // BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 0
    0x0000_0000_0000_00b7,
    // BPF_JMP | BPF_EXIT
    0x0000_0000_0000_0095,
];

fn load_prog(prog_type: u32, kern_version: u32) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = BpfAttr::new();
    attr.put_u32(0, prog_type);
    attr.put_u32(4, RETURN_ZERO.len() as u32);
    attr.put_u64(8, RETURN_ZERO.as_ptr() as u64);
    attr.put_u64(16, license.as_ptr() as u64);
    // log_level, log_size, log_buf: 0.
    attr.put_u32(40, kern_version);
    bpf(BPF_PROG_LOAD, &mut attr)
}

fn create_map() -> io::Result<OwnedFd> {
    let mut attr = BpfAttr::new();
    attr.put_u32(0, BPF_MAP_TYPE_ARRAY);
    attr.put_u32(4, 4); // key_size
    attr.put_u32(8, 8); // value_size
    attr.put_u32(12, 1); // max_entries
    bpf(BPF_MAP_CREATE, &mut attr)
}

/// A software cpu-clock event on CPU 0 for all processes: the permission
/// checks (`perf_event_paranoid`, CAP_PERFMON, SELinux `perf_event`) of a
/// kprobe attachment, without needing tracefs.
fn open_perf_event() -> io::Result<OwnedFd> {
    // SAFETY: a zeroed perf_event_attr is valid; we set size and type.
    let mut attr: [u8; 128] = [0; 128];
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes()); // size
                                                       // type PERF_TYPE_SOFTWARE (1) at offset 0, config PERF_COUNT_SW_CPU_CLOCK (0) at 8
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
    // flags (offset 40): disabled(bit 0)
    attr[40] = 1;
    // SAFETY: attr is a valid perf_event_attr of the size it declares.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a new descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// LINUX_VERSION_CODE of a release (`4.18.0-…` -> 0x041200), which kprobe
/// programs must state on kernels before 5.0.
pub fn kernel_version_code(release: &str) -> u32 {
    let (a, b, c) = connector_host::kernel::upstream_version(release);
    (a << 16) | (b << 8) | c.min(255)
}

/// One step of the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    /// errno name and text when it failed.
    pub error: Option<String>,
    pub errno: Option<i32>,
}

/// The probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub steps: Vec<Step>,
}

impl ProbeResult {
    pub fn loaded(&self) -> bool {
        self.steps.iter().all(|s| s.ok)
    }

    /// A step refused with EPERM or EACCES: a permission, not a bug.
    pub fn refused(&self) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| matches!(s.errno, Some(libc::EPERM) | Some(libc::EACCES)))
    }
}

/// Runs the probe; every object is released before it returns.
pub fn run(release: &str) -> ProbeResult {
    let step = |name: &'static str, r: io::Result<OwnedFd>| match r {
        Ok(_fd) => Step {
            name,
            ok: true,
            error: None,
            errno: None,
        },
        Err(e) => Step {
            name,
            ok: false,
            errno: e.raw_os_error(),
            error: Some(e.to_string()),
        },
    };
    ProbeResult {
        steps: vec![
            step("bpf map_create", create_map()),
            step(
                "bpf prog_load socket_filter",
                load_prog(BPF_PROG_TYPE_SOCKET_FILTER, 0),
            ),
            step(
                "bpf prog_load kprobe",
                load_prog(BPF_PROG_TYPE_KPROBE, kernel_version_code(release)),
            ),
            step("perf_event_open", open_perf_event()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_codes() {
        assert_eq!(kernel_version_code("4.18.0-513.5.1.el8_9.x86_64"), 0x041200);
        assert_eq!(
            kernel_version_code("5.4.17-2136.324.5.3.el7uek.x86_64"),
            0x050411
        );
        assert_eq!(kernel_version_code("4.14.300-1.amzn2.x86_64"), 0x040eff);
    }

    #[test]
    fn refused_is_eperm_or_eacces_only() {
        let mk = |errno| ProbeResult {
            steps: vec![Step {
                name: "x",
                ok: false,
                error: Some("e".into()),
                errno: Some(errno),
            }],
        };
        assert!(mk(libc::EPERM).refused().is_some());
        assert!(mk(libc::EACCES).refused().is_some());
        assert!(mk(libc::EINVAL).refused().is_none());
        assert!(!mk(libc::EINVAL).loaded());
    }
}
