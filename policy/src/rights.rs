//! What the kernel will do with each right the connector's probes need.
//!
//! Per right, one of: granted (by our module), not defined by this policy
//! (the kernel then allows or denies it by the policy's `handle_unknown`),
//! or missing (the policy defines it and nothing grants it). On a live
//! host with SELinux running the loaded policy answers (`/sys/fs/selinux`
//! and `security_compute_av`); elsewhere (an image, or a host booted without
//! SELinux) the store's binary policy file does, read by [`crate::policydb`].

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use connector_host::Root;
use serde::Serialize;

use crate::policydb::{HandleUnknown, PolicyNames};
use crate::DOMAIN;

/// Where the live kernel's SELinux file system is.
pub const SELINUXFS: &str = "/sys/fs/selinux";

/// One right: `source` may do `class perm` on the connector's domain
/// (on itself when `source` is the domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Right {
    pub source: &'static str,
    pub class: &'static str,
    pub perm: &'static str,
}

const fn own(class: &'static str, perm: &'static str) -> Right {
    Right {
        source: DOMAIN,
        class,
        perm,
    }
}

/// The rights the probes (and the service's start into its domain) need,
/// each granted by `connectord.cil` wherever the base policy names it.
pub const PROBE_RIGHTS: &[Right] = &[
    own("bpf", "map_create"),
    own("bpf", "map_read"),
    own("bpf", "map_write"),
    own("bpf", "prog_load"),
    own("bpf", "prog_run"),
    own("capability2", "bpf"),
    own("capability2", "perfmon"),
    own("capability2", "syslog"),
    own("capability", "sys_admin"),
    own("capability", "sys_resource"),
    own("perf_event", "open"),
    own("perf_event", "cpu"),
    own("perf_event", "kernel"),
    own("perf_event", "read"),
    own("perf_event", "write"),
    own("perf_event", "tracepoint"),
    own("lockdown", "confidentiality"),
    own("lockdown", "integrity"),
    // systemd starts the unit with NoNewPrivileges=yes.
    Right {
        source: "init_t",
        class: "process2",
        perm: "nnp_transition",
    },
];

/// What the kernel does with a right (`kernel` names what happens to a
/// right the policy does not define).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RightState {
    /// The policy defines it and grants it to the domain.
    Granted,
    /// The policy does not define the class or permission: the kernel's
    /// handle_unknown decides (`allowed` or `denied`).
    NotDefined { kernel: KernelAnswer },
    /// The policy defines it, and the domain does not have it.
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelAnswer {
    Allowed,
    Denied,
}

/// One right and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RightReport {
    pub source: String,
    pub class: String,
    pub permission: String,
    #[serde(flatten)]
    pub state: RightState,
}

impl RightReport {
    /// The kernel will refuse it.
    pub fn refused(&self) -> bool {
        match self.state {
            RightState::Granted => false,
            RightState::Missing => true,
            RightState::NotDefined { kernel } => kernel == KernelAnswer::Denied,
        }
    }

    /// `bpf prog_load`, or `init_t → process2 nnp_transition`.
    pub fn name(&self) -> String {
        if self.source == DOMAIN {
            format!("{} {}", self.class, self.permission)
        } else {
            format!("{} {} {}", self.source, self.class, self.permission)
        }
    }
}

/// Every right's state, and where the answer came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rights {
    /// `kernel` (the loaded policy) or the binary policy file read.
    pub source: String,
    pub handle_unknown: HandleUnknown,
    pub rights: Vec<RightReport>,
}

fn answer(h: HandleUnknown) -> KernelAnswer {
    match h {
        HandleUnknown::Allow => KernelAnswer::Allowed,
        // A policy with reject would not have loaded with names missing.
        HandleUnknown::Deny | HandleUnknown::Reject => KernelAnswer::Denied,
    }
}

/// From a compiled policy: a right the policy defines is granted exactly
/// when the store holds our current module (whose block for it then
/// resolved: each right's block names nothing else the base could lack).
pub fn from_policy(names: &PolicyNames, source: String, module_current: bool) -> Rights {
    let rights = PROBE_RIGHTS
        .iter()
        .map(|r| {
            let state = if !names.defines(r.class, r.perm) {
                RightState::NotDefined {
                    kernel: answer(names.handle_unknown),
                }
            } else if module_current {
                RightState::Granted
            } else {
                RightState::Missing
            };
            report(r, state)
        })
        .collect();
    Rights {
        source,
        handle_unknown: names.handle_unknown,
        rights,
    }
}

fn report(r: &Right, state: RightState) -> RightReport {
    RightReport {
        source: r.source.to_string(),
        class: r.class.to_string(),
        permission: r.perm.to_string(),
        state,
    }
}

/// A binary policy of the store: `policy.VERSION` of
/// `ROOT/etc/selinux/TYPE/policy/` (the highest when `version` is None),
/// read inside the root, capped.
pub fn read_store_policy(
    root: &Root,
    policy_type: &str,
    version: Option<u32>,
) -> Result<(PathBuf, std::sync::Arc<PolicyNames>), String> {
    let dir = format!("/etc/selinux/{policy_type}/policy");
    let version = match version {
        Some(v) => v,
        None => *crate::target::present_versions(root, policy_type)
            .last()
            .ok_or_else(|| format!("{dir}: no policy.NN file: the store was never built"))?,
    };
    let inside = format!("{dir}/policy.{version}");
    let host = root
        .resolve(&inside)
        .map_err(|e| format!("{inside}: {e}"))?;
    let names = PolicyNames::of_file(&host).map_err(|e| format!("{inside}: {e}"))?;
    Ok((PathBuf::from(inside), names))
}

/// The live kernel's answer: what the loaded policy defines (selinuxfs),
/// its handle_unknown (`deny_unknown`, `reject_unknown`), and
/// `security_compute_av` for each right it defines.
pub fn live() -> Result<Rights, String> {
    live_at(Path::new(SELINUXFS), &|r| compute_av(r))
}

/// [`live`] against a selinuxfs at `fs` and an access oracle (tests give
/// both).
pub fn live_at(
    fs: &Path,
    allowed: &dyn Fn(&Right) -> Result<bool, String>,
) -> Result<Rights, String> {
    let flag = |name: &str| -> Result<bool, String> {
        let p = fs.join(name);
        let mut s = String::new();
        fs::File::open(&p)
            .and_then(|f| f.take(16).read_to_string(&mut s))
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(s.trim() == "1")
    };
    let handle_unknown = if flag("reject_unknown")? {
        HandleUnknown::Reject
    } else if flag("deny_unknown")? {
        HandleUnknown::Deny
    } else {
        HandleUnknown::Allow
    };
    let mut rights = Vec::new();
    for r in PROBE_RIGHTS {
        let defined = fs
            .join("class")
            .join(r.class)
            .join("perms")
            .join(r.perm)
            .exists();
        let state = if !defined {
            RightState::NotDefined {
                kernel: answer(handle_unknown),
            }
        } else if allowed(r)? {
            RightState::Granted
        } else {
            RightState::Missing
        };
        rights.push(report(r, state));
    }
    Ok(Rights {
        source: "kernel".into(),
        handle_unknown,
        rights,
    })
}

/// Asks the loaded policy whether `source` may do the right on the domain.
fn compute_av(r: &Right) -> Result<bool, String> {
    let ctx = |t: &str| {
        std::ffi::CString::new(format!("system_u:system_r:{t}:s0")).expect("no NUL in a type")
    };
    let (s, t) = (ctx(r.source), ctx(DOMAIN));
    let scon = selinux::SecurityContext::from_c_str(&s, false);
    let tcon = selinux::SecurityContext::from_c_str(&t, false);
    selinux::SecurityClass::from_name(r.class)
        .and_then(|c| {
            let bit = c.access_vector_bit(r.perm)?;
            scon.query_access_decision(&tcon, c, bit)
                .map(|d| d.allowed & bit == bit)
        })
        .map_err(|e| format!("{} {}: {e}", r.class, r.perm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selinuxfs(deny: &str, reject: &str, classes: &[(&str, &[&str])]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("deny_unknown"), deny).unwrap();
        fs::write(d.path().join("reject_unknown"), reject).unwrap();
        for (c, perms) in classes {
            for p in *perms {
                let dir = d.path().join("class").join(c).join("perms");
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join(p), "1").unwrap();
            }
        }
        d
    }

    fn state_of<'a>(r: &'a Rights, class: &str, perm: &str) -> &'a RightState {
        &r.rights
            .iter()
            .find(|x| x.class == class && x.permission == perm)
            .unwrap()
            .state
    }

    #[test]
    fn live_rights_follow_selinuxfs_and_the_kernel_answer() {
        // An RHEL 8.0-like loaded policy: bpf defined, perf_event and
        // capability2 bpf not; deny_unknown 0.
        let fs = selinuxfs(
            "0\n",
            "0\n",
            &[
                (
                    "bpf",
                    &[
                        "map_create",
                        "map_read",
                        "map_write",
                        "prog_load",
                        "prog_run",
                    ],
                ),
                ("capability2", &["syslog"]),
                ("capability", &["sys_admin", "sys_resource"]),
                ("process2", &["nnp_transition"]),
            ],
        );
        let asked = std::cell::RefCell::new(Vec::new());
        let r = live_at(fs.path(), &|r| {
            asked.borrow_mut().push(r.perm);
            Ok(r.perm != "prog_run")
        })
        .unwrap();
        assert_eq!(r.handle_unknown, HandleUnknown::Allow);
        assert_eq!(state_of(&r, "bpf", "prog_load"), &RightState::Granted);
        assert_eq!(state_of(&r, "bpf", "prog_run"), &RightState::Missing);
        assert_eq!(
            state_of(&r, "perf_event", "open"),
            &RightState::NotDefined {
                kernel: KernelAnswer::Allowed
            }
        );
        assert!(
            !asked.borrow().contains(&"perfmon"),
            "undefined rights are not asked"
        );
        let refused: Vec<String> = r
            .rights
            .iter()
            .filter(|x| x.refused())
            .map(|x| x.name())
            .collect();
        assert_eq!(refused, ["bpf prog_run"]);

        // deny_unknown 1: the same undefined rights are refused.
        let fs = selinuxfs("1", "0", &[("bpf", &["prog_load"])]);
        let r = live_at(fs.path(), &|_| Ok(true)).unwrap();
        assert_eq!(r.handle_unknown, HandleUnknown::Deny);
        assert!(r
            .rights
            .iter()
            .find(|x| x.class == "capability2" && x.permission == "bpf")
            .unwrap()
            .refused());
        assert!(!r
            .rights
            .iter()
            .find(|x| x.permission == "prog_load")
            .unwrap()
            .refused());
    }

    #[test]
    fn a_missing_selinuxfs_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let err = live_at(d.path(), &|_| Ok(true)).unwrap_err();
        assert!(err.contains("reject_unknown"), "{err}");
    }
}
