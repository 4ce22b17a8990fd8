//! `connector-installer doctor`: an exact, read-only diagnosis of a host or an
//! image. The report is data ("the check found a problem"); only "the check
//! could not run" is an error.
//!
//! JSON schema: docs/doctor.md. Keep the two in step.

use crate::exit;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use connector_host::fault::{Fault, FaultCause, FAULT_11_MESSAGE, FAULT_KERNEL_DEVEL_MISSING};
use connector_host::headers::{self, Candidate};
use connector_host::inventory::{self, Inventory};
use connector_host::kernel::{self, Probe, Variant};
use connector_host::os::{Distro, Family, OsInfo, PkgTool, Support};
use connector_host::pkg::{DbQuery, KernelFiles, PackageBackend};
use connector_host::Root;
use serde::Serialize;

use crate::backend;
use crate::selinux::{self, SelinuxReport, CONNECTOR_BINARY};

/// Version of the JSON document; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// What `doctor` was asked to look at.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
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
    pub schema_version: u32,
    pub root: String,
    /// The root is the running system.
    pub live: bool,
    pub os: OsReport,
    /// The detected OS, for callers that go on to act (headers).
    #[serde(skip)]
    pub os_info: OsInfo,
    pub running_kernel: Option<String>,
    pub kernels: Vec<KernelReport>,
    pub faults: Vec<Fault>,
    pub notes: Vec<Note>,
    /// SELinux: configuration, the connector's module, the live kernel's
    /// answer and denials in the audit log (docs/selinux.md).
    pub selinux: Option<SelinuxReport>,
    /// The connector's own published state (`/var/lib/connector/status.json`),
    /// when it is there.
    pub connector_status: Option<serde_json::Value>,
    pub healthy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct OsReport {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
    pub id_like: Vec<String>,
    /// The file the answer came from, inside the root.
    pub source: String,
    pub distro: Option<Distro>,
    pub family: Option<Family>,
    pub package_manager: Option<PkgTool>,
    pub support: Support,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    pub release: String,
    pub running: bool,
    /// Its files are installed in the root (false: running without a
    /// `/lib/modules` entry, or asked for with --kernel).
    pub installed: bool,
    pub probe: Probe,
    pub flavor: String,
    pub uek: Option<u32>,
    pub arch: Option<String>,
    pub variant: Option<Variant>,
    /// The release follows the distribution's naming.
    pub distro_built: bool,
    /// Repositories that carry this kernel series' packages (enabled for
    /// the call when configured but off).
    pub series_repos: Vec<String>,
    /// Whether the kernel carries BTF type information.
    pub btf: Btf,
    pub headers: HeadersReport,
}

/// BTF type information of one kernel: `yes`, `no` or `unknown`, and the
/// file that said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Btf {
    pub state: BtfState,
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BtfState {
    Yes,
    No,
    Unknown,
}

/// How the header package's name was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecidedBy {
    /// From the package that owns the kernel's files.
    PackageDatabase,
    /// From the release string and the OS (support matrix).
    ReleaseRules,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeadersReport {
    /// The exact package; null on the kmod path, on an unsupported system and
    /// for a kernel no distribution package exists for.
    pub package: Option<String>,
    /// Headers are required for this kernel (eBPF path).
    pub required: bool,
    /// A usable tree for exactly this release is on disk.
    pub present: bool,
    /// That tree, inside the root.
    pub path: Option<String>,
    /// Trees that exist but were rejected, with the reason.
    pub rejected: Vec<Candidate>,
    /// The package database's answer: null when it could not be asked (see
    /// `database`).
    pub installed: Option<bool>,
    /// `answered`, `no-database`, `not-queried` or `unavailable`.
    pub database: &'static str,
    /// How `package` was named (null when there is none).
    pub decided_by: Option<DecidedBy>,
    /// The package that owns the kernel's files, when the database says.
    pub owner: Option<connector_host::pkg::KernelOwner>,
}

/// Something worth knowing that is not a fault.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub kind: NoteKind,
    pub kernel: Option<String>,
    pub message: String,
}

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

/// Runs the diagnosis.
pub fn diagnose(opts: &DoctorOptions) -> Result<Report> {
    let root = &opts.root;
    // Counted by scripts/bench-install (a healthy install diagnoses once).
    log::debug!("diagnosing {}", root.path().display());
    let os = OsInfo::detect(root).context("detecting the operating system")?;
    let inv = inventory::inventory(root, opts.running.as_deref(), opts.kernel.as_deref())
        .with_context(|| format!("listing the kernels in {}", root.path().display()))?;
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

    let classes: Vec<_> = inv
        .kernels
        .iter()
        .map(|k| kernel::classify(&os, &k.release))
        .collect();
    let mut kernels = Vec::new();
    for (entry, class) in inv.kernels.iter().zip(&classes) {
        let on_disk = headers::check(root, &entry.release);
        kernels.push(KernelReport {
            release: entry.release.clone(),
            running: entry.running,
            installed: entry.installed,
            probe: class.probe,
            flavor: class.flavor.clone(),
            uek: class.uek,
            arch: class.arch.clone(),
            variant: class.variant,
            distro_built: class.distro_built,
            series_repos: class.series_repos.clone(),
            btf: btf(root, &entry.release, entry.running && root.is_live()),
            headers: HeadersReport {
                decided_by: class
                    .header_package
                    .as_ref()
                    .map(|_| DecidedBy::ReleaseRules),
                owner: None,
                package: class.header_package.clone(),
                required: class.probe == Probe::Ebpf,
                present: on_disk.present,
                path: on_disk.path,
                rejected: on_disk.rejected,
                installed: None,
                database: "not-queried",
            },
        });
    }

    let backend = backend::for_os(&os, root);
    if let Some(backend) = &backend {
        ask_database(backend.as_ref(), &mut kernels, &mut notes);
    }
    btf_note(&kernels, &mut notes);
    kernel_notes(&inv, &kernels, &mut notes);

    let mut faults = Vec::new();
    for k in &kernels {
        if k.probe != Probe::Ebpf || k.headers.present {
            continue;
        }
        faults.push(fault_11(k, &os, backend.as_deref()));
    }
    let sel = match selinux::status(root) {
        Ok(s) => Some(s),
        Err(e) => {
            notes.push(Note {
                kind: NoteKind::Selinux,
                kernel: None,
                message: format!("SELinux could not be inspected: {e:#}"),
            });
            None
        }
    };
    if let Some(s) = &sel {
        let kernel = inv.running.clone().unwrap_or_else(|| "all".to_string());
        faults.extend(selinux_faults(s, root, &kernel));
    }
    let connector_status = read_connector_status(root, &mut notes);
    // archives.conf is read only when a fallback is needed (maybe inside
    // the deferred job): a mistake in it is told now.
    if let Err(e) = crate::archive::ArchiveConfig::load(root, None) {
        notes.push(Note {
            kind: NoteKind::ArchiveConfig,
            kernel: None,
            message: format!(
                "{e:#}; the vendor-archive fallback will refuse to run until it is fixed \
                 (docs/headers.md)"
            ),
        });
    }
    let pending = crate::state::pending(root).unwrap_or_else(|e| {
        notes.push(Note {
            kind: NoteKind::Deferred,
            kernel: None,
            message: format!(
                "{e:#}: deferred work may be recorded there; fix or remove the file, then run \
                 `connector-installer install`"
            ),
        });
        Vec::new()
    });
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
    let healthy = faults.is_empty() && os.support() == Support::Supported;
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        root: root.path().display().to_string(),
        live: root.is_live(),
        os_info: os.clone(),
        os: OsReport {
            family: os.family(),
            package_manager: os.pkg_tool(),
            support: os.support(),
            id: os.id,
            version_id: os.version_id,
            pretty_name: os.pretty_name,
            id_like: os.id_like,
            source: os.source,
            distro: os.distro,
        },
        running_kernel: inv.running.clone(),
        kernels,
        faults,
        notes,
        selinux: sel,
        connector_status,
        healthy,
    })
}

/// The connector's `status.json`, and a note for each fault it reports
/// (its view, from inside its own domain, complements ours).
fn read_connector_status(root: &Root, notes: &mut Vec<Note>) -> Option<serde_json::Value> {
    let text = match root.read_to_string_optional(connector_host::layout::STATUS) {
        Ok(t) => t?,
        Err(e) => {
            // The error names the file.
            notes.push(Note {
                kind: NoteKind::ConnectorStatus,
                kernel: None,
                message: format!("the connector's status is unreadable: {e}"),
            });
            return None;
        }
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            notes.push(Note {
                kind: NoteKind::ConnectorStatus,
                kernel: None,
                message: format!("{} is unreadable: {e}", connector_host::layout::STATUS),
            });
            return None;
        }
    };
    for f in v["faults"].as_array().into_iter().flatten() {
        notes.push(Note {
            kind: NoteKind::ConnectorStatus,
            kernel: v["kernel"].as_str().map(String::from),
            message: format!(
                "the connector reports fault {} ({}): {}",
                f["id"],
                f["message"].as_str().unwrap_or(""),
                f["detail"].as_str().unwrap_or("")
            ),
        });
    }
    Some(v)
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
    let installed = root.exists(CONNECTOR_BINARY).unwrap_or(false);
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
    // With the module missing the rights are missing too: that fault says it.
    let refused = s.refused_rights();
    if installed && !refused.is_empty() && (!s.module_missing() || root.is_live()) {
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

/// Asks the package database, in two queries run side by side: which
/// package owns each eBPF kernel's files (its name names the header
/// package), and whether the header packages the release rules name are
/// installed. Where the owner's name and the rules agree (the common case)
/// that is all; a name only the database gave is asked about once more.
/// A healthy root costs one process's wall time.
fn ask_database(backend: &dyn PackageBackend, kernels: &mut [KernelReport], notes: &mut Vec<Note>) {
    let files: Vec<KernelFiles> = kernels
        .iter()
        .filter(|k| k.headers.required)
        .map(|k| KernelFiles::of(&k.release))
        .collect();
    let wanted: Vec<String> = kernels
        .iter()
        .filter(|k| k.headers.required)
        .filter_map(|k| k.headers.package.clone())
        .collect();
    let (owners, answer) = std::thread::scope(|s| {
        let owners = (!files.is_empty()).then(|| s.spawn(|| backend.kernel_owners(&files)));
        let answer = (!wanted.is_empty()).then(|| backend.query_installed(&wanted));
        let owners = owners.map(|h| h.join().expect("the owner query does not panic"));
        (owners, answer)
    });
    let renamed = owners.map_or_else(Vec::new, |o| apply_owners(o, kernels, notes));
    let answer = match (answer, renamed.is_empty()) {
        (a, true) => a,
        (Some(Ok(DbQuery::Answer(mut a))), false) => {
            Some(match backend.query_installed(&renamed) {
                Ok(DbQuery::Answer(more)) => {
                    a.extend(more);
                    Ok(DbQuery::Answer(a))
                }
                other => other,
            })
        }
        (None, false) => Some(backend.query_installed(&renamed)),
        (a, false) => a,
    };
    if let Some(answer) = answer {
        apply_answer(answer, kernels, notes);
    }
}

/// Names each kernel's header package after its owner's name, when it is a
/// kernel package's; where that differs from the release rules the
/// database wins and a note says so. Returns the names that changed.
fn apply_owners(
    owners: Result<
        Option<std::collections::BTreeMap<String, connector_host::pkg::KernelOwner>>,
        connector_host::pkg::BackendError,
    >,
    kernels: &mut [KernelReport],
    notes: &mut Vec<Note>,
) -> Vec<String> {
    let owners = match owners {
        Ok(Some(o)) => o,
        Ok(None) => return Vec::new(),
        Err(e) => {
            notes.push(Note {
                kind: NoteKind::PackageDatabase,
                kernel: None,
                message: format!(
                    "the package database could not say which package owns each kernel \
                     (the release rules name the header packages): {e}"
                ),
            });
            return Vec::new();
        }
    };
    let mut renamed = Vec::new();
    for k in kernels.iter_mut() {
        let Some(owner) = owners.get(&k.release) else {
            continue;
        };
        if let Some(derived) = &owner.header_package {
            if k.headers.package.as_ref() != Some(derived) {
                notes.push(Note {
                    kind: NoteKind::HeaderPackage,
                    kernel: Some(k.release.clone()),
                    message: format!(
                        "{} is owned by the package {} ({}): its headers are {derived}; the \
                         release rules would have said {}; the package database wins",
                        k.release,
                        owner.package,
                        owner.file,
                        k.headers.package.as_deref().unwrap_or("(no package)")
                    ),
                });
                k.headers.package = Some(derived.clone());
                renamed.push(derived.clone());
            }
            k.headers.decided_by = Some(DecidedBy::PackageDatabase);
        }
        k.headers.owner = Some(owner.clone());
    }
    renamed
}

/// Largest kernel config read (they are about 250 KiB).
const KERNEL_CONFIG_CAP: u64 = 4 * 1024 * 1024;

/// BTF of one kernel: the running kernel's `/sys/kernel/btf/vmlinux` on a
/// live root, else `CONFIG_DEBUG_INFO_BTF` in its config file.
fn btf(root: &Root, release: &str, running_live: bool) -> Btf {
    if running_live && std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Btf {
            state: BtfState::Yes,
            source: Some("/sys/kernel/btf/vmlinux".into()),
        };
    }
    for path in [
        format!("/boot/config-{release}"),
        format!("/lib/modules/{release}/config"),
    ] {
        let Ok(Some(host)) = root.resolve_optional(&path) else {
            continue;
        };
        // Regular files only: a FIFO or a device there says nothing.
        let Ok(f) = connector_host::root::open_regular(&host) else {
            continue;
        };
        use std::io::{BufRead, Read};
        let yes = std::io::BufReader::new(f.take(KERNEL_CONFIG_CAP))
            .split(b'\n')
            .map_while(Result::ok)
            .any(|l| l == b"CONFIG_DEBUG_INFO_BTF=y");
        return Btf {
            state: if yes { BtfState::Yes } else { BtfState::No },
            source: Some(path),
        };
    }
    Btf {
        state: BtfState::Unknown,
        source: None,
    }
}

/// One note for the eBPF kernels that carry BTF.
fn btf_note(kernels: &[KernelReport], notes: &mut Vec<Note>) {
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

/// The database's answer for the header packages.
fn apply_answer(
    answer: Result<DbQuery, connector_host::pkg::BackendError>,
    kernels: &mut [KernelReport],
    notes: &mut Vec<Note>,
) {
    match answer {
        Ok(DbQuery::Answer(answer)) => {
            for k in kernels.iter_mut() {
                if let Some(p) = &k.headers.package {
                    if let Some(is) = answer.get(p) {
                        k.headers.installed = Some(*is);
                        k.headers.database = "answered";
                    }
                }
            }
        }
        Ok(DbQuery::NoDatabase) => {
            for k in kernels.iter_mut().filter(|k| k.headers.package.is_some()) {
                k.headers.database = "no-database";
            }
        }
        Err(e) => {
            for k in kernels.iter_mut().filter(|k| k.headers.package.is_some()) {
                k.headers.database = "unavailable";
            }
            notes.push(Note {
                kind: NoteKind::PackageDatabase,
                kernel: None,
                message: format!(
                    "the package database could not be asked; the diagnosis rests on the \
                     files alone: {e}"
                ),
            });
        }
    }
}

fn kernel_notes(inv: &Inventory, kernels: &[KernelReport], notes: &mut Vec<Note>) {
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

fn fault_11(k: &KernelReport, os: &OsInfo, backend: Option<&dyn PackageBackend>) -> Fault {
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
            (None, "no-database") => "no package database in root".to_string(),
            (None, other) => format!("package database {other}"),
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
                    "SELinux: on; connectord module {}{}",
                    version.as_deref().unwrap_or("?"),
                    if *current { "" } else { " (outdated)" }
                );
            }
            (None, _) => {
                let _ = writeln!(s, "SELinux: on; connectord module not installed");
            }
        }
        s.push_str(&rights_summary(sel));
    }
    for f in &r.faults {
        let _ = writeln!(s, "FAULT {} on {}: {}", f.id, f.kernel, f.message);
        let _ = writeln!(s, "  cause: {}", f.detail);
        let _ = writeln!(s, "  fix:   {}", f.fix);
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
