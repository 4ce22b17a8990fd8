//! The connector's SELinux policy module (`connectord.cil`, embedded) and
//! the code that installs, removes and verifies it, on a live host or in an
//! image root.
//!
//! - The store and its type come from `ROOT/etc/selinux/config`
//!   (`SELINUX`, `SELINUXTYPE`); the *live* state (is SELinux on, enforcing
//!   or permissive) from the kernel through libselinux, never from the file.
//! - Install is one `semodule [-p ROOT] -s TYPE -n -X 200 -i connectord.cil`:
//!   one policy rebuild; `load_policy` follows only on the live root with
//!   SELinux enabled. When the store already holds this exact module text
//!   (read from the store itself), nothing runs at all.
//! - The libsemanage store lock is checked first and waited for, bounded:
//!   semodule itself would wait forever.

pub mod avc;
pub mod labels;
pub mod policydb;
pub mod rights;
pub mod target;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use connector_host::cmd::{Cmd, CmdError};
use connector_host::lock;
use connector_host::Root;
use serde::Serialize;
use target::{StoreLayout, Userspace};

/// The module's name in the store.
pub const MODULE_NAME: &str = "connectord";
/// The priority packages use (Fedora's `%selinux_modules_install`).
pub const PRIORITY: u16 = 200;
/// The module source, shipped inside the binary.
pub const MODULE_CIL: &str = include_str!("../connectord.cil");
/// The connector's domain.
pub const DOMAIN: &str = "connectord_t";
/// A policy rebuild takes seconds here and about a minute under emulation.
const SEMODULE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The version this binary ships (`; connectord-policy-version X`).
pub fn module_version() -> &'static str {
    version_of(MODULE_CIL).unwrap_or("unknown")
}

/// The version recorded in a module's source text.
pub fn version_of(text: &str) -> Option<&str> {
    text.lines()
        .take(10)
        .find_map(|l| l.trim().strip_prefix("; connectord-policy-version "))
        .map(str::trim)
}

/// `SELINUX=` of the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigMode {
    Enforcing,
    Permissive,
    Disabled,
}

impl ConfigMode {
    /// As the config file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigMode::Enforcing => "enforcing",
            ConfigMode::Permissive => "permissive",
            ConfigMode::Disabled => "disabled",
        }
    }
}

/// The file contexts of policy type `policy_type`, inside a root.
pub fn file_contexts(policy_type: &str) -> String {
    format!("/etc/selinux/{policy_type}/contexts/files/file_contexts")
}

/// `ROOT/etc/selinux/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelinuxConfig {
    pub mode: ConfigMode,
    pub policy_type: String,
}

/// Typed errors: a caller branches on these (and the hook turns them into
/// warnings).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "semodule is not installed in the system running this command; install it: \
         EL/Oracle/Amazon: `dnf install policycoreutils` (yum on EL7/AL2), \
         Debian/Ubuntu: `apt-get install semodule-utils policycoreutils`"
    )]
    SemoduleMissing,
    #[error("the SELinux policy store is locked: {holder} for more than {}s; let it finish and run this again", waited.as_secs())]
    StoreLocked {
        holder: connector_host::lock::Holder,
        waited: Duration,
    },
    #[error("SELINUXTYPE={policy_type} in {root}/etc/selinux/config, but there is no policy store for it ({store}); install that policy or fix SELINUXTYPE")]
    UnknownType {
        policy_type: String,
        root: String,
        store: String,
    },
    #[error("the base policy rejected the connector's module (semodule: {message})")]
    Rejected { message: String },
    #[error("{root}/etc/selinux/config: {detail}")]
    Config { root: String, detail: String },
    #[error(transparent)]
    Cmd(CmdError),
    /// A link in the image would take semodule or setfiles out of it.
    #[error(transparent)]
    Escape(#[from] connector_host::root::Escape),
    #[error("{path}: {error}")]
    Io {
        path: String,
        /// Shown in the message, so not also a `source()`.
        error: io::Error,
    },
    /// A read inside the root; the error names the path itself.
    #[error("{0}")]
    Root(io::Error),
    /// SELinux is configured in the root but its file contexts cannot be read.
    #[error(
        "{path} in the root: {detail}; SELinux is configured there (SELINUX={mode} in \
         /etc/selinux/config), so the connector's files cannot be labeled: reinstall the \
         {policy_type} policy package, or set SELINUX=disabled"
    )]
    FileContexts {
        path: String,
        detail: String,
        mode: &'static str,
        policy_type: String,
    },
}

impl From<CmdError> for PolicyError {
    fn from(e: CmdError) -> Self {
        match e {
            CmdError::NotFound { .. } => PolicyError::SemoduleMissing,
            other => PolicyError::Cmd(other),
        }
    }
}

/// Reads `ROOT/etc/selinux/config`; `None` when the root has none.
pub fn read_config(root: &Root) -> Result<Option<SelinuxConfig>, PolicyError> {
    let text = root
        .read_to_string_optional("/etc/selinux/config")
        .map_err(PolicyError::Root)?;
    let Some(text) = text else { return Ok(None) };
    let fields = connector_host::os::parse_os_release(&text);
    let get = |k: &str| {
        fields
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let mode = match get("SELINUX")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("enforcing") => ConfigMode::Enforcing,
        Some("permissive") => ConfigMode::Permissive,
        Some("disabled") | None => ConfigMode::Disabled,
        Some(other) => {
            return Err(PolicyError::Config {
                root: root.path().display().to_string(),
                detail: format!("SELINUX={other} is not enforcing, permissive or disabled"),
            })
        }
    };
    let policy_type = get("SELINUXTYPE").unwrap_or_else(|| "targeted".into());
    if policy_type.is_empty() || policy_type.contains('/') || policy_type.contains("..") {
        return Err(PolicyError::Config {
            root: root.path().display().to_string(),
            detail: format!("SELINUXTYPE={policy_type:?} is not a policy name"),
        });
    }
    Ok(Some(SelinuxConfig { mode, policy_type }))
}

/// What the live kernel says (live root only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveMode {
    /// The kernel has no SELinux, or it is not running.
    Off,
    Permissive,
    Enforcing,
}

/// The running kernel's SELinux state, through libselinux.
pub fn live_mode() -> LiveMode {
    if selinux::kernel_support() == selinux::KernelSupport::Unsupported {
        return LiveMode::Off;
    }
    match selinux::current_mode() {
        selinux::SELinuxMode::Enforcing => LiveMode::Enforcing,
        selinux::SELinuxMode::Permissive => LiveMode::Permissive,
        _ => LiveMode::Off,
    }
}

/// The module as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ModuleState {
    NotInstalled,
    /// Installed; `current` when its text is exactly this binary's module.
    Installed {
        version: Option<String>,
        current: bool,
        priority: u16,
    },
}

/// A root's policy store, opened for the connector's module.
#[derive(Debug, Clone)]
pub struct Store {
    root: Root,
    config: SelinuxConfig,
    /// The store directory (host path): `var/lib/selinux/TYPE` (libsemanage
    /// 2.7+), or `etc/selinux/TYPE` (EL7).
    dir: PathBuf,
    layout: StoreLayout,
    /// The root's own `semanage.conf`, when it has one.
    conf: Option<String>,
    /// What the root's SELinux userspace writes (read when opened, before
    /// anything changed).
    userspace: Userspace,
    /// Each kernel of the root and the highest policy version it loads.
    kernels: Vec<(Option<String>, u32)>,
}

/// Which binary policy one kernel of the root will load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelPolicy {
    /// Its release; null for "any kernel" in a root that has none.
    pub kernel: Option<String>,
    /// The highest version its loader takes (target libsepol, kernel).
    pub limit: u32,
    /// The file it loads (inside the root); null when there is none it can.
    pub file: Option<String>,
    pub version: Option<u32>,
    /// That file defines the connector's domain (null when unreadable).
    pub connector_domain: Option<bool>,
}

/// The policy versions of a root: what its userspace writes, what its
/// kernels load, what this installer writes there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVersions {
    pub layout: StoreLayout,
    pub userspace: Userspace,
    /// The version semodule is told to write in an image.
    pub target: u32,
    /// `policy.N` files present.
    pub present: Vec<u32>,
    /// Present files above `target`: written by a newer semodule, loaded
    /// by nothing the target runs, or preferred over the real one.
    pub stale: Vec<u32>,
    pub loads: Vec<KernelPolicy>,
}

impl PolicyVersions {
    /// Some kernel loads a policy without the connector's domain (or none).
    pub fn domain_not_loaded(&self) -> Vec<&KernelPolicy> {
        self.loads
            .iter()
            .filter(|l| l.connector_domain != Some(true))
            .collect()
    }
}

/// Why there is nothing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotApplicable {
    /// No `/etc/selinux/config` in the root.
    NoConfig,
    /// `SELINUX=disabled`.
    Disabled,
}

impl Store {
    /// Opens the root's store; `Ok(Err(_))` when SELinux is not configured
    /// there (nothing to do), `Err` when it is configured but broken.
    pub fn open(root: &Root) -> Result<Result<Store, NotApplicable>, PolicyError> {
        // Counted by the lifecycle test and scripts/bench-install (once a run).
        log::debug!("opening the SELinux store of {}", root.path().display());
        let Some(config) = read_config(root)? else {
            return Ok(Err(NotApplicable::NoConfig));
        };
        if config.mode == ConfigMode::Disabled {
            return Ok(Err(NotApplicable::Disabled));
        }
        let modern = format!("/var/lib/selinux/{}", config.policy_type);
        let el7 = format!("/etc/selinux/{}/active", config.policy_type);
        let (dir, layout) = if root.is_dir(&modern).unwrap_or(false) {
            let dir = root.resolve(&modern).map_err(|source| PolicyError::Io {
                path: modern.clone(),
                error: source,
            })?;
            (dir, StoreLayout::VarLib)
        } else if root.is_dir(&el7).unwrap_or(false) {
            let dir = root
                .resolve(format!("/etc/selinux/{}", config.policy_type))
                .map_err(|source| PolicyError::Io {
                    path: el7.clone(),
                    error: source,
                })?;
            (dir, StoreLayout::EtcSelinux)
        } else {
            return Err(PolicyError::UnknownType {
                policy_type: config.policy_type.clone(),
                root: root.path().display().to_string(),
                store: modern,
            });
        };
        let conf = root
            .read_to_string_optional("/etc/selinux/semanage.conf")
            .map_err(PolicyError::Root)?;
        let present = target::present_versions(root, &config.policy_type);
        let userspace = target::userspace(root, layout, conf.as_deref(), &present);
        let kernels = kernel_limits(root);
        Ok(Ok(Store {
            root: root.clone(),
            config,
            dir,
            layout,
            conf,
            userspace,
            kernels,
        }))
    }

    /// The version semodule writes in this root: the userspace's, capped by
    /// the kernels where the loader does not downgrade (libselinux 3.x).
    pub fn target_version(&self) -> u32 {
        let s = self.userspace.version;
        if self.userspace.downgrades {
            return s;
        }
        self.kernels
            .iter()
            .map(|(_, k)| *k)
            .min()
            .map_or(s, |k| k.min(s))
    }

    /// What each kernel of the root loads, and whether the connector's
    /// domain is in it.
    pub fn versions(&self) -> PolicyVersions {
        let present = target::present_versions(&self.root, &self.config.policy_type);
        let target = self.target_version();
        let mut domain: std::collections::BTreeMap<u32, Option<bool>> = Default::default();
        let loads = self
            .kernels
            .iter()
            .map(|(kernel, k)| {
                let limit = if self.userspace.downgrades {
                    self.userspace.version
                } else {
                    (*k).min(self.userspace.version)
                };
                let version = target::loaded_version(&present, limit);
                let connector_domain = version.and_then(|v| {
                    *domain.entry(v).or_insert_with(|| {
                        self.policy_names(v).ok().map(|n| n.types.contains(DOMAIN))
                    })
                });
                KernelPolicy {
                    kernel: kernel.clone(),
                    limit,
                    file: version.map(|v| self.policy_file(v)),
                    version,
                    connector_domain,
                }
            })
            .collect();
        let stale = present.iter().copied().filter(|v| *v > target).collect();
        PolicyVersions {
            layout: self.layout,
            userspace: self.userspace.clone(),
            target,
            present,
            stale,
            loads,
        }
    }

    /// `/etc/selinux/TYPE/policy/policy.N` (inside the root).
    pub fn policy_file(&self, version: u32) -> String {
        format!(
            "/etc/selinux/{}/policy/policy.{version}",
            self.config.policy_type
        )
    }

    /// The names the root's `policy.N` defines (read capped, inside the
    /// root; parsed once per process).
    pub fn policy_names(&self, version: u32) -> Result<Arc<policydb::PolicyNames>, String> {
        let inside = self.policy_file(version);
        let host = self
            .root
            .resolve(&inside)
            .map_err(|e| format!("{inside}: {e}"))?;
        policydb::PolicyNames::of_file(&host).map_err(|e| format!("{inside}: {e}"))
    }

    /// The layout the target's libsemanage keeps the store in.
    pub fn layout(&self) -> StoreLayout {
        self.layout
    }

    pub fn config(&self) -> &SelinuxConfig {
        &self.config
    }

    /// The store directory (host path).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The priorities at which the store holds a module of our name (a
    /// copy installed by hand, at semodule's default 400, shadows ours).
    pub fn priorities(&self) -> Vec<u16> {
        let mut out: Vec<u16> = fs::read_dir(self.dir.join("active/modules"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let prio = e.file_name().to_string_lossy().parse::<u16>().ok()?;
                e.path().join(MODULE_NAME).is_dir().then_some(prio)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Reads the module from the store, without running anything.
    pub fn module_state(&self) -> Result<ModuleState, PolicyError> {
        let modules = self.dir.join("active/modules");
        let mut found: Option<(u16, PathBuf)> = None;
        let entries = match fs::read_dir(&modules) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ModuleState::NotInstalled),
            Err(source) => {
                return Err(PolicyError::Io {
                    path: modules.display().to_string(),
                    error: source,
                })
            }
        };
        for e in entries.flatten() {
            let Ok(prio) = e.file_name().to_string_lossy().parse::<u16>() else {
                continue;
            };
            let dir = e.path().join(MODULE_NAME);
            if dir.is_dir() && found.as_ref().is_none_or(|(p, _)| prio > *p) {
                found = Some((prio, dir));
            }
        }
        let Some((priority, dir)) = found else {
            return Ok(ModuleState::NotInstalled);
        };
        // A CIL module is stored verbatim as `cil`; other languages keep
        // their source in `hll`.
        let text = read_maybe_bz2(&dir.join("hll"))
            .or_else(|_| read_maybe_bz2(&dir.join("cil")))
            .ok();
        let version = text.as_deref().and_then(version_of).map(String::from);
        let current = text.as_deref() == Some(MODULE_CIL) && priority == PRIORITY;
        Ok(ModuleState::Installed {
            version,
            current,
            priority,
        })
    }

    /// semodule on this store. In an image it runs below a private tool
    /// root (`ToolRoot`) whose `semanage.conf` carries the target's
    /// version and store layout; the live root keeps its own configuration
    /// (its semodule *is* the target's).
    fn semodule(&self, desc: &str, work: &TempDir) -> Result<Cmd, PolicyError> {
        let mut cmd = Cmd::new("semodule", desc).timeout(SEMODULE_TIMEOUT);
        if !self.root.is_live() {
            cmd = cmd.arg("-p").arg(self.tool_root(work)?);
        }
        Ok(cmd.args([
            "-s",
            &self.config.policy_type,
            "-n",
            "-X",
            &PRIORITY.to_string(),
        ]))
    }

    /// A root for semodule's `-p` that is the image's store and policy
    /// directories (links to them, checked to stay inside the image) and
    /// a `semanage.conf` of ours: the image's own settings that shape the
    /// policy, its store root (`/etc/selinux` for EL7) and the version its
    /// kernels load. The image's `semanage.conf` is read, never changed,
    /// and its `[sections]` (programs to run) are never handed to the
    /// build host's semodule. The link targets are resolved and checked
    /// first (`check_tool_paths`).
    fn tool_root(&self, work: &TempDir) -> Result<PathBuf, PolicyError> {
        use std::os::unix::fs::symlink;
        let t = &self.config.policy_type;
        let top = work.path().join("root");
        let io = |p: &Path, error: io::Error| PolicyError::Io {
            path: p.display().to_string(),
            error,
        };
        let etc = top.join("etc/selinux");
        fs::create_dir_all(&etc).map_err(|e| io(&etc, e))?;
        let conf = etc.join("semanage.conf");
        let text = target::tool_conf(self.conf.as_deref(), self.layout, self.target_version());
        fs::write(&conf, text).map_err(|e| io(&conf, e))?;
        let policy_dir = self.root.tool_path(format!("/etc/selinux/{t}"))?;
        symlink(&policy_dir, etc.join(t)).map_err(|e| io(&etc, e))?;
        if self.layout == StoreLayout::VarLib {
            let var = top.join("var/lib");
            fs::create_dir_all(&var).map_err(|e| io(&var, e))?;
            let store_root = self.root.tool_path("/var/lib/selinux")?;
            symlink(&store_root, var.join("selinux")).map_err(|e| io(&var, e))?;
        }
        Ok(top)
    }

    /// Every path semodule (below `-p ROOT`) opens in an image, and the
    /// connector's labeled paths: the host's kernel resolves them,
    /// so each must lead where it leads inside the root, or nothing runs.
    /// Checked before the module is installed *and* before labels are set,
    /// so a link that would take either out refuses both up front.
    pub fn check_tool_paths(&self) -> Result<(), PolicyError> {
        let t = &self.config.policy_type;
        let store = match self.layout {
            StoreLayout::VarLib => format!("/var/lib/selinux/{t}"),
            StoreLayout::EtcSelinux => format!("/etc/selinux/{t}"),
        };
        let mut paths = vec![
            "/etc/selinux/config".to_string(),
            "/etc/selinux/semanage.conf".to_string(),
            format!("/etc/selinux/{t}"),
            format!("/etc/selinux/{t}/policy"),
            self.policy_file(self.target_version()),
            file_contexts(t),
            format!("/etc/selinux/{t}/seusers"),
            format!("{store}/active/modules"),
            format!("{store}/previous"),
            format!("{store}/tmp"),
            format!("{store}/semanage.trans.LOCK"),
            format!("{store}/semanage.read.LOCK"),
        ];
        if self.layout == StoreLayout::VarLib {
            paths.push("/var/lib/selinux".into());
            paths.push("/var/lib/selinux/final".into());
        }
        for v in target::present_versions(&self.root, t) {
            paths.push(self.policy_file(v));
        }
        for prio in self.priorities().into_iter().chain([PRIORITY]) {
            paths.push(format!("{store}/active/modules/{prio}/{MODULE_NAME}/cil"));
        }
        paths.extend(
            connector_host::layout::LABELED
                .iter()
                .map(|p| p.to_string()),
        );
        self.root.check_tool_paths(&paths)?;
        Ok(())
    }

    /// In an image whose libselinux is 2.x, deletes the compiled file
    /// contexts (`contexts/files/*.bin`): the build host's semodule wrote
    /// them in a format that libselinux cannot read, and any older one no
    /// longer matches the text it just wrote. libselinux then reads the text
    /// `file_contexts` (as it does with a .bin it cannot read); the target's
    /// own semodule compiles them again at its next run.
    fn remove_compiled_contexts(&self) -> Result<Vec<String>, PolicyError> {
        if !self.userspace.old_libselinux {
            return Ok(Vec::new());
        }
        let dir = format!("/etc/selinux/{}/contexts/files", self.config.policy_type);
        let mut done = Vec::new();
        for name in self.root.read_dir_names(&dir).unwrap_or_default() {
            let Some(name) = name.to_str().filter(|n| n.ends_with(".bin")) else {
                continue;
            };
            let inside = format!("{dir}/{name}");
            let host = self.root.tool_path(&inside)?;
            let Ok(meta) = fs::symlink_metadata(&host) else {
                continue;
            };
            if meta.is_dir() {
                continue;
            }
            fs::remove_file(&host).map_err(|error| PolicyError::Io {
                path: inside.clone(),
                error,
            })?;
            done.push(format!(
                "removed {inside}: compiled by this host's libselinux, which the root's 2.x cannot read"
            ));
        }
        Ok(done)
    }

    /// Deletes the image's `policy.N` files above the target version: a
    /// newer semodule wrote them, the target's own tools never will, and a
    /// kernel that can load them would prefer them to the real one. Never
    /// on the live root (its semodule is the target's).
    fn remove_stale(&self) -> Result<Vec<String>, PolicyError> {
        if self.root.is_live() {
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        for v in self.versions().stale {
            let inside = self.policy_file(v);
            let host = self.root.tool_path(&inside)?;
            let meta = fs::symlink_metadata(&host).map_err(|error| PolicyError::Io {
                path: inside.clone(),
                error,
            })?;
            if meta.is_dir() {
                return Err(PolicyError::Io {
                    path: inside,
                    error: io::Error::other("a directory where a binary policy belongs"),
                });
            }
            fs::remove_file(&host).map_err(|error| PolicyError::Io {
                path: inside.clone(),
                error,
            })?;
            done.push(format!(
                "removed {inside}: above policy.{}, the version this root's kernels load",
                self.target_version()
            ));
        }
        Ok(done)
    }

    /// The libsemanage lock files of this store.
    fn lock_files(&self) -> [PathBuf; 2] {
        [
            self.dir.join("semanage.trans.LOCK"),
            self.dir.join("semanage.read.LOCK"),
        ]
    }

    /// Waits (bounded) until no other process holds the store (its locks
    /// are flocks).
    fn wait_unlocked(&self, timeout: Duration) -> Result<(), PolicyError> {
        let waited = lock::wait_for_locks(
            &self.lock_files(),
            lock::LockKind::Flock,
            timeout,
            Duration::from_secs(5),
            |h, t| log::info!("waiting for the policy store: {h}, {}s", t.as_secs()),
        )
        .map_err(|error| PolicyError::Io {
            path: self.dir.display().to_string(),
            error,
        })?;
        waited.map_err(|holder| PolicyError::StoreLocked {
            holder,
            waited: timeout,
        })
    }

    /// When the store last received the connector's module (seconds since
    /// the epoch): denials older than that were answered by it.
    pub fn module_installed_at(&self) -> Option<u64> {
        let modules = self.dir.join("active/modules");
        fs::read_dir(&modules)
            .ok()?
            .flatten()
            .filter_map(|e| fs::metadata(e.path().join(MODULE_NAME)).ok())
            .filter_map(|m| m.modified().ok())
            .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .max()
    }

    /// Installs (or upgrades) the module. `Ok(None)` when the store already
    /// holds exactly this module: no command ran.
    pub fn install(&self, lock_timeout: Duration) -> Result<Option<Vec<String>>, PolicyError> {
        let current = matches!(
            self.module_state()?,
            ModuleState::Installed { current: true, .. }
        );
        if current && self.versions().domain_not_loaded().is_empty() {
            // Only a stale newer file can be left (a run killed after the
            // rebuild, or an older installer's policy.33).
            let removed = self.remove_stale()?;
            return Ok((!removed.is_empty()).then_some(removed));
        }
        // Installing the same text again rebuilds the policy at the target
        // version: the store held it, the file the kernels load did not.
        let mut ran = self.install_module(MODULE_NAME, MODULE_CIL, lock_timeout)?;
        ran.extend(self.remove_compiled_contexts()?);
        ran.extend(self.remove_stale()?);
        Ok(Some(ran))
    }

    /// Installs CIL `text` as module `name` (one rebuild). Public for tests
    /// of rejected modules; `install` is the operation.
    pub fn install_module(
        &self,
        name: &str,
        text: &str,
        lock_timeout: Duration,
    ) -> Result<Vec<String>, PolicyError> {
        self.check_tool_paths()?;
        self.wait_unlocked(lock_timeout)?;
        let tmp = tempfile_dir()?;
        // semodule names a CIL module after its file.
        let file = tmp.path().join(format!("{name}.cil"));
        fs::write(&file, text).map_err(|source| PolicyError::Io {
            path: file.display().to_string(),
            error: source,
        })?;
        // Copies of our module at other priorities would shadow (or
        // outlive) this one: they go in the same transaction.
        let mut cmd = self
            .semodule("Installing the connector's SELinux policy module", &tmp)?
            .arg("-i")
            .arg(&file);
        if name == MODULE_NAME {
            for p in self.priorities().into_iter().filter(|p| *p != PRIORITY) {
                cmd = cmd.args(["-X", &p.to_string(), "-r", MODULE_NAME]);
            }
        }
        let mut ran = vec![cmd.cmdline()];
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(rejected_or_failed(&cmd, &out));
        }
        ran.extend(self.reload()?);
        Ok(ran)
    }

    /// Removes the module. `Ok(None)` when it is not installed: a no-op.
    pub fn remove(&self, lock_timeout: Duration) -> Result<Option<Vec<String>>, PolicyError> {
        if self.module_state()? == ModuleState::NotInstalled {
            return Ok(None);
        }
        self.check_tool_paths()?;
        self.wait_unlocked(lock_timeout)?;
        let tmp = tempfile_dir()?;
        // Every copy of it, whatever its priority (-X applies to the
        // operations after it).
        let mut cmd = self.semodule("Removing the connector's SELinux policy module", &tmp)?;
        for p in self.priorities() {
            cmd = cmd.args(["-X", &p.to_string(), "-r", MODULE_NAME]);
        }
        let mut ran = vec![cmd.cmdline()];
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(rejected_or_failed(&cmd, &out));
        }
        ran.extend(self.reload()?);
        ran.extend(self.remove_compiled_contexts()?);
        ran.extend(self.remove_stale()?);
        Ok(Some(ran))
    }

    /// `load_policy`, only on the live root with SELinux running.
    fn reload(&self) -> Result<Vec<String>, PolicyError> {
        if !self.root.is_live() || live_mode() == LiveMode::Off {
            return Ok(Vec::new());
        }
        let cmd =
            Cmd::new("load_policy", "Loading the rebuilt SELinux policy").timeout(SEMODULE_TIMEOUT);
        cmd.run()?;
        Ok(vec![cmd.cmdline()])
    }

    /// Labels the connector's files that are mislabeled, in this process,
    /// with the labels of the root's own file contexts (read after any
    /// module install, so its file contexts count); nothing else is
    /// written. Returns the paths relabeled: empty on a healthy root. On
    /// the live root with SELinux off in the kernel, nothing is done.
    pub fn relabel(&self) -> Result<Vec<String>, PolicyError> {
        if self.root.is_live() && live_mode() == LiveMode::Off {
            return Ok(Vec::new());
        }
        // A link that would lead a tool out of the image refuses this too,
        // though no tool runs: the image is not what it claims.
        self.check_tool_paths()?;
        let Some(fc) = labels::FileContexts::open(&self.root)? else {
            return Ok(Vec::new());
        };
        let wrong = labels::mislabeled(&self.root, &fc);
        let fixed = labels::fix(&wrong)?;
        fc.save();
        Ok(fixed)
    }
}

/// Each kernel of the root with the highest policy version it loads: the
/// running kernel's own word (`/sys/fs/selinux/policyvers`) on the live
/// root, the release's lower bound for the others
/// (`connector_host::kernel::selinux_policy_max`); "any kernel" (no
/// limit) for a root without one.
fn kernel_limits(root: &Root) -> Vec<(Option<String>, u32)> {
    use connector_host::inventory;
    let running = root
        .is_live()
        .then(|| inventory::running_release().ok())
        .flatten();
    let mut out: Vec<(Option<String>, u32)> = inventory::inventory(root, running.as_deref(), None)
        .map(|i| i.kernels)
        .unwrap_or_default()
        .into_iter()
        .map(|k| {
            let table = connector_host::kernel::selinux_policy_max(&k.release);
            let max = if k.running {
                live_policyvers().unwrap_or(table)
            } else {
                table
            };
            (Some(k.release), max)
        })
        .collect();
    if out.is_empty() {
        out.push((None, u32::MAX));
    }
    out
}

/// The running kernel's highest policy version, when selinuxfs says it.
fn live_policyvers() -> Option<u32> {
    let mut s = String::new();
    fs::File::open(Path::new(rights::SELINUXFS).join("policyvers"))
        .and_then(|f| f.take(16).read_to_string(&mut s))
        .ok()?;
    s.trim().parse().ok()
}

/// Gives `p`, a regular file with other hard links, a private inode: a
/// copy with the same content, mode and owner, renamed over `p`, so
/// labeling it never changes
/// the file the other links name (which may be outside the root). Anything
/// else is left as it is.
fn break_hard_links(p: &Path) -> Result<(), PolicyError> {
    use std::os::unix::fs::MetadataExt;
    let io = |source: io::Error| PolicyError::Io {
        path: p.display().to_string(),
        error: source,
    };
    let m = fs::symlink_metadata(p).map_err(io)?;
    if !m.is_file() || m.nlink() < 2 {
        return Ok(());
    }
    // The workspace's one atomic write, owner and mode kept.
    let owner = |f: &fs::File| std::os::unix::fs::fchown(f, Some(m.uid()), Some(m.gid()));
    connector_host::root::open_regular(p)
        .and_then(|mut src| {
            connector_host::atomic::write_from(p, &mut src, m.mode() & 0o7777, Some(&owner))
        })
        .map_err(io)?;
    log::info!(
        "{}: had other hard links; labeled as a private copy",
        p.display()
    );
    Ok(())
}

/// The resolver's words when the base policy rejects the module.
fn rejected_or_failed(cmd: &Cmd, out: &connector_host::cmd::Output) -> PolicyError {
    let text = out.stderr.trim();
    let resolver = [
        "Failed to resolve",
        "Failed to verify",
        "neverallow",
        "Invalid",
        "not a valid",
    ];
    if resolver.iter().any(|w| text.contains(w)) {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("not in password file"))
            .collect();
        PolicyError::Rejected {
            message: connector_host::cmd::tail(&lines.join("\n")),
        }
    } else {
        PolicyError::Cmd(cmd.failed(out))
    }
}

fn tempfile_dir() -> Result<TempDir, PolicyError> {
    TempDir::new().map_err(|source| PolicyError::Io {
        path: std::env::temp_dir().display().to_string(),
        error: source,
    })
}

/// A private temporary directory, removed on drop (no extra dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> io::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for i in 0..100u32 {
            let p = base.join(format!("connector-policy-{}-{i}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free temporary directory name"))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Reads a store file, bzip2-compressed or not.
fn read_maybe_bz2(path: &Path) -> io::Result<String> {
    let bytes = fs::read(path)?;
    if bytes.starts_with(b"BZh") {
        let mut s = String::new();
        bzip2::read::BzDecoder::new(bytes.as_slice()).read_to_string(&mut s)?;
        Ok(s)
    } else {
        String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_module_labels_exactly_the_layouts_labeled_paths() {
        let filecons: Vec<&str> = super::MODULE_CIL
            .lines()
            .filter_map(|l| l.trim().strip_prefix("(filecon \""))
            .filter_map(|l| l.split('"').next())
            .map(|p| p.trim_end_matches("(/.*)?"))
            .collect();
        let mut want = connector_host::layout::LABELED.to_vec();
        let mut got = filecons.clone();
        want.sort();
        got.sort();
        assert_eq!(
            got, want,
            "connectord.cil filecon vs connector_host::layout::LABELED"
        );
    }

    use super::*;

    #[test]
    fn the_module_carries_its_version() {
        assert!(MODULE_CIL.starts_with("; connectord: SELinux policy module"));
        assert_eq!(module_version(), "1.2.0");
        assert_eq!(
            version_of("; x\n; connectord-policy-version 2.1\n"),
            Some("2.1")
        );
        assert_eq!(version_of("(type a)\n"), None);
    }

    #[test]
    fn config_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        assert_eq!(read_config(&root).unwrap(), None);
        fs::create_dir_all(dir.path().join("etc/selinux")).unwrap();
        let cfg = dir.path().join("etc/selinux/config");
        fs::write(&cfg, "# c\nSELINUX=enforcing\nSELINUXTYPE=targeted\n").unwrap();
        assert_eq!(
            read_config(&root).unwrap(),
            Some(SelinuxConfig {
                mode: ConfigMode::Enforcing,
                policy_type: "targeted".into()
            })
        );
        fs::write(&cfg, "SELINUX=Disabled\n").unwrap();
        assert_eq!(
            read_config(&root).unwrap().unwrap().mode,
            ConfigMode::Disabled
        );
        assert_eq!(
            Store::open(&root).unwrap().unwrap_err(),
            NotApplicable::Disabled
        );
        fs::write(&cfg, "SELINUX=sometimes\n").unwrap();
        assert!(matches!(
            read_config(&root),
            Err(PolicyError::Config { .. })
        ));
        fs::write(&cfg, "SELINUX=permissive\nSELINUXTYPE=../../etc\n").unwrap();
        assert!(matches!(
            read_config(&root),
            Err(PolicyError::Config { .. })
        ));
        fs::write(&cfg, "SELINUX=permissive\nSELINUXTYPE=nosuch\n").unwrap();
        let err = Store::open(&root).unwrap_err();
        assert!(matches!(err, PolicyError::UnknownType { .. }), "{err}");
        assert!(err.to_string().contains("SELINUXTYPE=nosuch"));
    }
}
