//! `connector-installer doctor`: an exact, read-only diagnosis of a host or an
//! image. The report is data ("the check found a problem"); only "the check
//! could not run" is an error.
//!
//! JSON schema: docs/doctor.md. Keep the two in step.

pub mod metrics;

use crate::exit;
use std::fmt::Write as _;

use anyhow::Result;
use connector_host::fault::{Fault, FaultCause, FAULT_11_MESSAGE, FAULT_KERNEL_DEVEL_MISSING};
use connector_host::headers;
use connector_host::inventory::Inventory;
use connector_host::kernel::Probe;
use connector_host::os::{Distro, Family, OsInfo, PkgTool, Support};
use connector_host::pkg::PackageBackend;
use connector_host::status::{Status, StatusError};
use connector_host::Root;
use serde::Serialize;

use crate::facts::selinux::SelinuxReport;
pub use crate::facts::{
    Btf, BtfState, DatabaseAnswer, DatabaseObservation, DecidedBy, Facts, HeaderFacts, KernelFacts,
};
use connector_host::layout::CONNECTORD;

/// Version of the JSON document; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// What `doctor` was asked to look at.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The root looked at: `/` or an image.
    pub root: Root,
    /// `--kernel VER`: only this release.
    pub kernel: Option<String>,
    /// The running kernel; `None` for an image. The CLI passes `uname -r`
    /// when the root is `/`.
    pub running: Option<String>,
}

/// The whole diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The document's version (docs/doctor-json.md); bumped on a breaking change.
    pub schema_version: u32,
    /// The root looked at, as given.
    pub root: String,
    /// The root is the running system.
    pub live: bool,
    /// The operating system of the root.
    pub os: OsReport,
    /// The running kernel; null for an image.
    pub running_kernel: Option<String>,
    /// Every kernel that will run, each with its header facts.
    pub kernels: Vec<KernelFacts>,
    /// What stops the connector, each with its fix.
    pub faults: Vec<Fault>,
    /// What is worth knowing and is not a fault.
    pub notes: Vec<Note>,
    /// SELinux: configuration, the connector's module, the live kernel's
    /// answer and denials in the audit log (docs/selinux.md).
    pub selinux: Option<SelinuxReport>,
    /// The connector's own published state (`/var/lib/connector/status.json`),
    /// when it is there.
    pub connector_status: Option<Status>,
    /// The last installer run that changed this root
    /// (`/var/lib/connector/last-run.json`; the journal has every change).
    pub last_run: Option<crate::state::audit::LastRun>,
    /// No fault: the connector can compile and load its probes.
    pub healthy: bool,
}

/// The operating system, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OsReport {
    /// os-release `ID` (`rhel`, `ol`, `debian`).
    pub id: String,
    /// os-release `VERSION_ID`.
    pub version_id: String,
    /// os-release `PRETTY_NAME`.
    pub pretty_name: String,
    /// os-release `ID_LIKE`.
    pub id_like: Vec<String>,
    /// `VERSION_CODENAME` (`bookworm`, `jammy`), when the system names one:
    /// `bundle` takes it from fleet documents for the apt suite.
    pub codename: Option<String>,
    /// The file the answer came from, inside the root.
    pub source: String,
    /// The distribution the connector knows it as; null when unknown.
    pub distro: Option<Distro>,
    /// The package family (rpm or deb).
    pub family: Option<Family>,
    /// The package manager the installer drives there.
    pub package_manager: Option<PkgTool>,
    /// Whether the connector supports this release (docs/support-matrix.md).
    pub support: Support,
}

/// Something worth knowing that is not a fault.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// What the note is about, for scripts.
    pub kind: NoteKind,
    /// The kernel it is about, when one.
    pub kernel: Option<String>,
    /// The note for people.
    pub message: String,
}

/// The kinds of [`Note`], stable words in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoteKind {
    /// The running kernel has no `/lib/modules` entry: a container, a chroot,
    /// or a VM booted with a kernel from outside.
    RunningKernelNotInstalled,
    /// A newer kernel is installed than the one running.
    RebootPending,
    /// A `/lib/modules` directory that holds no kernel.
    StaleModulesDir,
    /// `--kernel` named a release that is not installed.
    KernelNotInstalled,
    /// The package database could not be asked.
    PackageDatabase,
    /// The system is not supported by the connector.
    Unsupported,
    /// SELinux could not be inspected.
    Selinux,
    /// What the running connector itself reports.
    ConnectorStatus,
    /// An installed kernel that is not running lacks headers: booting it
    /// will raise fault 11.
    NextBootWithoutHeaders,
    /// A package hook left work for after its transaction.
    Deferred,
    /// The package database named a kernel's header package differently
    /// from the release rules (the database wins).
    HeaderPackage,
    /// `/etc/connector/archives.conf` does not parse.
    ArchiveConfig,
    /// Kernels that carry BTF: CO-RE probes need no headers there.
    Btf,
    /// The installer's last-run record cannot be read.
    LastRun,
}

impl Report {
    /// The exit code for this report.
    pub fn exit_code(&self) -> i32 {
        if self.os.support != Support::Supported {
            exit::UNSUPPORTED
        } else if self.faults.is_empty() {
            exit::OK
        } else {
            exit::NOT_DONE
        }
    }
}

/// Runs the diagnosis: facts, then faults and notes, then the report.
pub fn diagnose(opts: &DoctorOptions) -> Result<Report> {
    let facts = Facts::gather(&opts.root, opts.running.as_deref(), opts.kernel.as_deref())?;
    Ok(report(&facts))
}

/// The faults of a root: fault 11 for each eBPF kernel without usable
/// headers, and the SELinux causes of fault 11.
pub fn faults(facts: &Facts) -> Vec<Fault> {
    let mut faults: Vec<Fault> = facts
        .kernels
        .iter()
        .filter(|k| k.probe == Probe::Ebpf && !k.headers.present)
        .map(|k| fault_11(k, &facts.os, facts.backend.as_deref()))
        .collect();
    if let Ok(s) = facts.selinux_state() {
        let kernel = facts.running().unwrap_or("all");
        faults.extend(selinux_faults(s, &facts.root, kernel));
    }
    faults
}

/// Doctor's report of `facts`.
pub fn report(facts: &Facts) -> Report {
    let os = &facts.os;
    let root = &facts.root;
    let mut notes = Vec::new();
    match os.support() {
        Support::Supported => {}
        Support::UnknownDistro => notes.push(Note {
            kind: NoteKind::Unsupported,
            kernel: None,
            message: format!(
                "{} (ID={}{}) is not a system the connector supports; supported: RHEL, \
                 CentOS, Rocky, AlmaLinux, Oracle Linux, Amazon Linux, Debian, Ubuntu",
                os.pretty_name,
                os.id,
                if os.id_like.is_empty() {
                    String::new()
                } else {
                    format!(", ID_LIKE={}", os.id_like.join(" "))
                }
            ),
        }),
        Support::UnsupportedVersion => notes.push(Note {
            kind: NoteKind::Unsupported,
            kernel: None,
            message: format!(
                "{} is older than the connector supports (Debian 10+, Ubuntu 18.04+, \
                 EL6+, Rocky/Alma 8+)",
                os.pretty_name
            ),
        }),
    }
    database_notes(&facts.database, &mut notes);
    btf_note(&facts.kernels, &mut notes);
    kernel_notes(&facts.inventory, &facts.kernels, &mut notes);
    let faults = faults(facts);
    if let Err(e) = facts.selinux_state() {
        notes.push(Note {
            kind: NoteKind::Selinux,
            kernel: None,
            message: format!("SELinux could not be inspected: {e:#}"),
        });
    }
    let connector_status = connector_notes(&facts.connector, &mut notes);
    // archives.conf is read only when a fallback is needed (maybe inside
    // the deferred job): a mistake in it is told now.
    if let Err(e) = &facts.archives {
        notes.push(Note {
            kind: NoteKind::ArchiveConfig,
            kernel: None,
            message: format!(
                "{e:#}; the vendor-archive fallback will refuse to run until it is fixed \
                 (/usr/share/doc/connector/headers.md)"
            ),
        });
    }
    match &facts.pending {
        Err(e) => notes.push(Note {
            kind: NoteKind::Deferred,
            kernel: None,
            message: format!(
                "{e:#}: deferred work may be recorded there; fix or remove the file, then run \
                 `connector-installer install`"
            ),
        }),
        Ok(pending) => {
            for item in pending {
                notes.push(Note {
                    kind: NoteKind::Deferred,
                    kernel: item.strip_prefix("headers ").map(String::from),
                    message: format!(
                        "a package hook deferred \"{item}\" until after its transaction; if no \
                         connector-setup job is running, run `connector-installer install`"
                    ),
                });
            }
        }
    }
    let last_run = match &facts.last_run {
        Ok(r) => r.clone(),
        Err(e) => {
            notes.push(Note {
                kind: NoteKind::LastRun,
                kernel: None,
                message: format!("{e:#}"),
            });
            None
        }
    };
    let healthy = faults.is_empty() && facts.supported();
    Report {
        schema_version: SCHEMA_VERSION,
        root: root.path().display().to_string(),
        live: root.is_live(),
        os: OsReport {
            family: os.family(),
            package_manager: os.pkg_tool(),
            support: os.support(),
            id: os.id.clone(),
            version_id: os.version_id.clone(),
            pretty_name: os.pretty_name.clone(),
            id_like: os.id_like.clone(),
            codename: os.codename.clone(),
            source: os.source.clone(),
            distro: os.distro,
        },
        running_kernel: facts.inventory.running.clone(),
        kernels: facts.kernels.clone(),
        faults,
        notes,
        selinux: facts.selinux_state().as_ref().ok().cloned(),
        connector_status,
        last_run,
        healthy,
    }
}

/// What the package database said, as notes.
fn database_notes(seen: &[DatabaseObservation], notes: &mut Vec<Note>) {
    for o in seen {
        notes.push(match o {
            DatabaseObservation::OwnersUnknown(e) => Note {
                kind: NoteKind::PackageDatabase,
                kernel: None,
                message: format!(
                    "the package database could not say which package owns each kernel \
                     (the release rules name the header packages): {e}"
                ),
            },
            DatabaseObservation::Renamed {
                release,
                owner,
                by_rules,
            } => Note {
                kind: NoteKind::HeaderPackage,
                kernel: Some(release.clone()),
                message: format!(
                    "{release} is owned by the package {} ({}): its headers are {}; the \
                     release rules would have said {}; the package database wins",
                    owner.package,
                    owner.file,
                    owner.header_package.as_deref().unwrap_or("(no package)"),
                    by_rules.as_deref().unwrap_or("(no package)")
                ),
            },
            DatabaseObservation::QueryFailed(e) => Note {
                kind: NoteKind::PackageDatabase,
                kernel: None,
                message: format!(
                    "the package database could not be asked; the diagnosis rests on the \
                     files alone: {e}"
                ),
            },
        });
    }
}

/// The connector's `status.json`, and a note for each fault it reports
/// (its view, from inside its own domain, complements ours).
fn connector_notes(
    status: &Result<Option<Status>, StatusError>,
    notes: &mut Vec<Note>,
) -> Option<Status> {
    let status = match status {
        Ok(s) => s.as_ref()?,
        Err(e) => {
            notes.push(Note {
                kind: NoteKind::ConnectorStatus,
                kernel: None,
                message: format!(
                    "the connector's status is unreadable: {}",
                    connector_host::cmd::chain(e)
                ),
            });
            return None;
        }
    };
    for f in &status.faults {
        notes.push(Note {
            kind: NoteKind::ConnectorStatus,
            kernel: Some(status.kernel.clone()),
            message: format!(
                "the connector reports fault {} ({}): {}",
                f.id, f.message, f.detail
            ),
        });
    }
    for p in &status.config_problems {
        notes.push(Note {
            kind: NoteKind::ConnectorStatus,
            kernel: None,
            message: format!(
                "the connector did not use {}{}: {}",
                connector_host::layout::CONNECTOR_CONF,
                p.line.map(|l| format!(":{l}")).unwrap_or_default(),
                p.problem
            ),
        });
    }
    Some(status.clone())
}

/// The SELinux cause of fault 11: SELinux on, the connector installed, and
/// its module missing or outdated, the kernel refusing its rights, or
/// denials of its domain in the audit log.
fn selinux_faults(s: &SelinuxReport, root: &Root, kernel: &str) -> Vec<Fault> {
    let mut out = Vec::new();
    let on_root = if root.is_live() {
        String::new()
    } else {
        format!(" --root {}", root.path().display())
    };
    let fix = format!("connector-installer selinux install{on_root}");
    let installed = root.exists(CONNECTORD).unwrap_or(false);
    let fault = |detail: String, fix: String| Fault {
        id: FAULT_KERNEL_DEVEL_MISSING,
        kernel: kernel.to_string(),
        cause: FaultCause::Selinux,
        message: FAULT_11_MESSAGE.to_string(),
        detail,
        fix,
    };
    if installed && s.module_missing() {
        let what = match &s.module {
            Some(connector_policy::ModuleState::Installed { version, .. }) => format!(
                "outdated (version {}, this installer ships {})",
                version.as_deref().unwrap_or("unknown"),
                s.shipped_version
            ),
            _ => "not installed".to_string(),
        };
        out.push(fault(
            format!(
                "SELinux is on (/etc/selinux/config) and the connector is installed, but its policy module is {what}: the kernel refuses its eBPF probes even with the headers present"
            ),
            fix.clone(),
        ));
    }
    let unloaded = s.module_not_loaded();
    if installed && !unloaded.is_empty() {
        let which: Vec<String> = unloaded
            .iter()
            .map(|l| {
                let who = l.kernel.as_deref().unwrap_or("the root's kernels");
                match &l.file {
                    Some(f) => format!("{who} loads {f}, which lacks connectord_t"),
                    None => format!("{who} finds no policy.N up to version {}", l.limit),
                }
            })
            .collect();
        let where_ = s
            .policy
            .as_ref()
            .map(|p| {
                p.present
                    .iter()
                    .map(|v| format!("policy.{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out.push(fault(
            format!(
                "the connector's policy module is in the SELinux store, but not in the binary policy the kernel loads at boot: {} (files present: {where_}; a semodule newer than this root's userspace wrote a version its loader never takes)",
                which.join("; ")
            ),
            fix.clone(),
        ));
    }
    if let Some(f) = &s.module_failure {
        out.push(fault(
            format!(
                "installing the connector's SELinux module {} failed: the base policy rejected it ({})",
                f.version, f.message
            ),
            format!(
                "update the policy and the connector package (dnf/yum update selinux-policy-targeted \
                 connector, or apt-get install --only-upgrade selinux-policy-default connector), \
                 then run {fix}; if it still fails, report the message above"
            ),
        ));
    }
    // With the module missing (or not in the file the kernel loads) the
    // rights are missing too: that fault says it.
    let refused = s.refused_rights();
    let module_in_force = !s.module_missing() && unloaded.is_empty();
    if installed && !refused.is_empty() && (module_in_force || root.is_live()) {
        let names: Vec<String> = refused.iter().map(|r| r.name()).collect();
        let undefined = refused.iter().any(|r| {
            matches!(
                r.state,
                connector_policy::rights::RightState::NotDefined { .. }
            )
        });
        out.push(fault(
            format!(
                "the kernel will refuse connectord_t: {}{}",
                names.join(", "),
                if undefined {
                    " (this policy does not define some of them and denies what it does not define)"
                } else {
                    ""
                }
            ),
            if undefined {
                format!(
                    "update the base policy so that it defines these rights (dnf/yum update \
                     selinux-policy-targeted), then run {fix}"
                )
            } else {
                fix.clone()
            },
        ));
    }
    let denied = s.enforced_denials();
    if !denied.is_empty() {
        let lines: Vec<String> = denied
            .iter()
            .map(|d| {
                format!(
                    "denied {{ {} }} on {}:{} {} time(s), last at {}{}",
                    d.permission,
                    d.target_type,
                    d.tclass,
                    d.count,
                    d.last_time.as_deref().unwrap_or("?"),
                    d.lockdown_reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        out.push(fault(
            format!(
                "SELinux denied the connector's domain: {}",
                lines.join("; ")
            ),
            format!("{fix}; then restart the connector (systemctl restart connectord)"),
        ));
    }
    out
}

/// The probes' rights that are not simply granted, grouped by what the
/// kernel will do (full list: `selinux status`).
fn rights_summary(sel: &SelinuxReport) -> String {
    use connector_policy::rights::{KernelAnswer, RightState};
    let Some(r) = &sel.rights else {
        return sel
            .rights_error
            .as_ref()
            .map(|e| format!("         rights unknown: {e}\n"))
            .unwrap_or_default();
    };
    let group = |want: &dyn Fn(&RightState) -> bool| -> Vec<String> {
        r.rights
            .iter()
            .filter(|x| want(&x.state))
            .map(|x| x.name())
            .collect()
    };
    let mut s = String::new();
    for (label, names) in [
        (
            "not defined by this policy, allowed by its handle_unknown",
            group(&|st| {
                *st == RightState::NotDefined {
                    kernel: KernelAnswer::Allowed,
                }
            }),
        ),
        (
            "not defined by this policy, DENIED by its handle_unknown",
            group(&|st| {
                *st == RightState::NotDefined {
                    kernel: KernelAnswer::Denied,
                }
            }),
        ),
        ("MISSING", group(&|st| *st == RightState::Missing)),
    ] {
        if !names.is_empty() {
            let _ = writeln!(s, "         {label}: {}", names.join(", "));
        }
    }
    s
}

/// One note for the eBPF kernels that carry BTF.
fn btf_note(kernels: &[KernelFacts], notes: &mut Vec<Note>) {
    let with: Vec<&str> = kernels
        .iter()
        .filter(|k| k.headers.required && k.btf.state == BtfState::Yes)
        .map(|k| k.release.as_str())
        .collect();
    if with.is_empty() {
        return;
    }
    notes.push(Note {
        kind: NoteKind::Btf,
        kernel: None,
        message: format!(
            "{} carr{} BTF type information: connectors from 1.25 on load CO-RE probes there \
             without headers; the headers stay the fallback and are still installed",
            with.join(", "),
            if with.len() == 1 { "ies" } else { "y" }
        ),
    });
}

fn kernel_notes(inv: &Inventory, kernels: &[KernelFacts], notes: &mut Vec<Note>) {
    for k in kernels {
        if k.running && !k.installed {
            notes.push(Note {
                kind: NoteKind::RunningKernelNotInstalled,
                kernel: Some(k.release.clone()),
                message: format!(
                    "the running kernel {} has no /lib/modules/{} in this root: a container, \
                     a chroot, or a kernel booted from outside the system; its headers belong \
                     where the kernel came from",
                    k.release, k.release
                ),
            });
        } else if !k.running && !k.installed {
            notes.push(Note {
                kind: NoteKind::KernelNotInstalled,
                kernel: Some(k.release.clone()),
                message: format!(
                    "kernel {} is not installed in this root; diagnosed as if it were",
                    k.release
                ),
            });
        }
    }
    for k in kernels {
        if !k.running && k.installed && k.headers.required && !k.headers.present {
            notes.push(Note {
                kind: NoteKind::NextBootWithoutHeaders,
                kernel: Some(k.release.clone()),
                message: format!(
                    "kernel {} is installed but not running and has no headers: booting it will \
                     raise fault 11 (connector-installer install fixes it before the reboot)",
                    k.release
                ),
            });
        }
    }
    if let Some(newest) = inv.pending_reboot() {
        notes.push(Note {
            kind: NoteKind::RebootPending,
            kernel: Some(newest.to_string()),
            message: format!(
                "kernel {newest} is installed but {} is running: a reboot is pending; \
                 the newer kernel needs its headers before that reboot",
                inv.running.as_deref().unwrap_or("?")
            ),
        });
    }
    for s in &inv.stale {
        notes.push(Note {
            kind: NoteKind::StaleModulesDir,
            kernel: Some(s.clone()),
            message: format!(
                "/lib/modules/{s} holds no kernel (left behind by a removed kernel); ignored"
            ),
        });
    }
}

pub(crate) fn fault_11(
    k: &KernelFacts,
    os: &OsInfo,
    backend: Option<&dyn PackageBackend>,
) -> Fault {
    let where_looked = headers::candidate_paths(&k.release)
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let rejected = k
        .headers
        .rejected
        .iter()
        .filter_map(|c| c.problem.as_ref().map(|p| format!("{}: {p}", c.path)))
        .collect::<Vec<_>>();
    let found = if rejected.is_empty() {
        format!("no header tree at {where_looked}")
    } else {
        format!("no usable header tree ({})", rejected.join("; "))
    };
    let (cause, detail, fix) = match (&k.headers.package, backend) {
        (Some(pkg), Some(backend)) if k.headers.installed == Some(true) => (
            FaultCause::HeadersBroken,
            format!("{pkg} is installed according to the package database, but {found}"),
            backend.install_command(std::slice::from_ref(pkg), true),
        ),
        (Some(pkg), Some(backend)) => (
            FaultCause::HeadersMissing,
            match k.headers.installed {
                Some(false) => format!("{pkg} is not installed: {found}"),
                _ => format!("{found}; {pkg} provides them"),
            },
            backend.install_command(std::slice::from_ref(pkg), false),
        ),
        _ => {
            let maker = os.pretty_name.clone();
            (
                FaultCause::NoHeaderPackage,
                format!(
                    "kernel {} was not built by {maker} (its release does not follow the \
                     distribution's naming), so no {maker} package provides its headers; {found}",
                    k.release
                ),
                format!(
                    "install the headers from whoever built kernel {} into \
                     /usr/src/linux-headers-{} (or /usr/src/kernels/{}), or boot a kernel \
                     built by {maker}",
                    k.release, k.release, k.release
                ),
            )
        }
    };
    Fault {
        id: FAULT_KERNEL_DEVEL_MISSING,
        kernel: k.release.clone(),
        cause,
        message: FAULT_11_MESSAGE.to_string(),
        detail,
        fix,
    }
}

/// The report for people.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "System:  {} [{}]", r.os.pretty_name, r.os.source);
    let _ = writeln!(
        s,
        "Root:    {}{}",
        r.root,
        if r.live {
            " (running system)"
        } else {
            " (image)"
        }
    );
    if r.kernels.is_empty() {
        let _ = writeln!(s, "Kernels: none installed");
    } else {
        let _ = writeln!(s, "Kernels:");
    }
    for k in &r.kernels {
        let state = match (k.running, k.installed) {
            (true, true) => "running",
            (true, false) => "running, not in /lib/modules",
            (false, true) => "installed",
            (false, false) => "not installed",
        };
        let _ = writeln!(s, "  {} ({state})", k.release);
        let uek = k.uek.map(|g| format!(" (UEK {g})")).unwrap_or_default();
        let _ = writeln!(s, "    probe:   {}, flavor {}{uek}", k.probe, k.flavor);
        if !k.headers.required {
            let _ = writeln!(s, "    headers: not needed on this path");
            continue;
        }
        let pkg = k
            .headers
            .package
            .as_deref()
            .unwrap_or("(no distribution package)");
        let disk = match &k.headers.path {
            Some(p) => format!("present at {p}"),
            None => "MISSING".to_string(),
        };
        let db = match (k.headers.installed, k.headers.database) {
            (Some(true), _) => "package installed".to_string(),
            (Some(false), _) => "package not installed".to_string(),
            (None, DatabaseAnswer::NoDatabase) => "no package database in root".to_string(),
            (None, DatabaseAnswer::Unavailable) => "package database unavailable".to_string(),
            (None, _) => "package database not queried".to_string(),
        };
        let how = match k.headers.decided_by {
            Some(DecidedBy::PackageDatabase) => " (named by the package database)",
            Some(DecidedBy::ReleaseRules) => " (named by the release rules)",
            None => "",
        };
        let _ = writeln!(s, "    headers: {pkg}{how}: {disk}; {db}");
        let btf = match (k.btf.state, &k.btf.source) {
            (BtfState::Yes, Some(src)) => format!("yes ({src})"),
            (BtfState::No, Some(src)) => format!("no ({src})"),
            _ => "unknown (no kernel config)".to_string(),
        };
        let _ = writeln!(s, "    btf:     {btf}");
        for c in &k.headers.rejected {
            if let Some(p) = &c.problem {
                let _ = writeln!(s, "             rejected {}: {p}", c.path);
            }
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "Note: {}", n.message);
    }
    if let Some(sel) = &r.selinux {
        match (&sel.not_applicable, &sel.module) {
            (Some(_), _) => {
                let _ = writeln!(s, "SELinux: not enabled in this root");
            }
            (
                None,
                Some(connector_policy::ModuleState::Installed {
                    version, current, ..
                }),
            ) => {
                let _ = writeln!(
                    s,
                    "SELinux: {}; connectord module {}{}",
                    sel.state_words(),
                    version.as_deref().unwrap_or("?"),
                    if *current { "" } else { " (outdated)" }
                );
            }
            (None, _) => {
                let _ = writeln!(
                    s,
                    "SELinux: {}; connectord module not installed",
                    sel.state_words()
                );
            }
        }
        s.push_str(&rights_summary(sel));
    }
    for f in &r.faults {
        let _ = writeln!(s, "FAULT {} on {}: {}", f.id, f.kernel, f.message);
        let _ = writeln!(s, "  cause: {}", f.detail);
        let _ = writeln!(s, "  fix:   {}", f.fix);
        let _ = writeln!(
            s,
            "  read:  {}, \"{}\"",
            connector_host::fault::TROUBLESHOOTING,
            f.cause.doc_section()
        );
    }
    if let Some(l) = &r.last_run {
        let kinds: Vec<String> = l.changes.iter().map(|c| c.message.clone()).collect();
        let _ = writeln!(
            s,
            "Last run: {} at {}: {} ({})",
            l.subcommand,
            connector_host::time::utc(l.finished_at),
            l.outcome,
            kinds.join("; ")
        );
    }
    let verdict = match r.exit_code() {
        exit::OK => "healthy".to_string(),
        exit::UNSUPPORTED => "unsupported system, nothing diagnosed".to_string(),
        _ => format!(
            "{} fault{}",
            r.faults.len(),
            if r.faults.len() == 1 { "" } else { "s" }
        ),
    };
    let _ = writeln!(s, "Result:  {verdict}");
    s
}
