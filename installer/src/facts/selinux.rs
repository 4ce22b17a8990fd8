//! What SELinux is in a root, read and never changed: the config, the
//! store's module and policy files, what the kernel will do with each right
//! the probes need, a recorded rejection, the connector's denials. The
//! facts keep the store opened here (`Facts::store`); `install::selinux`
//! acts on it.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use anyhow::Result;
use connector_host::layout::MODULE_FAILURE;
use connector_host::Root;
use connector_policy::avc::{self, DeniedPermission};
use connector_policy::rights::{self, Rights};
use connector_policy::{
    live_mode, module_version, LiveMode, ModuleState, NotApplicable, PolicyVersions, SelinuxConfig,
    Store, DOMAIN,
};
use serde::{Deserialize, Serialize};
/// How much of the end of audit.log is read for denials.
const AUDIT_TAIL: u64 = 8 * 1024 * 1024;

/// The running kernel's SELinux mode as `getenforce` spells it, lowercase.
pub fn live_str(m: LiveMode) -> &'static str {
    match m {
        LiveMode::Off => "off",
        LiveMode::Permissive => "permissive",
        LiveMode::Enforcing => "enforcing",
    }
}

/// A module install the base policy rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleFailure {
    /// The module version that was rejected.
    pub version: String,
    /// semodule's resolver message.
    pub message: String,
    /// Seconds since the epoch.
    pub at: u64,
}

/// The SELinux facts of a root.
#[derive(Debug, Clone, Serialize)]
pub struct SelinuxReport {
    /// Version of the JSON document (docs/selinux.md).
    pub schema_version: u32,
    pub root: String,
    /// `--dry-run`: `action` says what would be done (`would-install`,
    /// `would-relabel`, `would-remove`); nothing was changed.
    pub dry_run: bool,
    /// `/etc/selinux/config`; null when the root has none.
    pub config: Option<SelinuxConfig>,
    /// Why there is nothing to do (`no-config`, `disabled`), else null.
    pub not_applicable: Option<NotApplicable>,
    /// The running kernel's mode (live root only).
    pub live_mode: Option<LiveMode>,
    pub module: Option<ModuleState>,
    /// The binary policy each kernel of the root loads, the version its
    /// userspace writes, stale newer files (docs/selinux.md "Policy
    /// versions"). Null when SELinux is not configured.
    pub policy: Option<PolicyVersions>,
    /// The module version this binary ships.
    pub shipped_version: String,
    /// What this run did: `installed`, `unchanged`, `removed`,
    /// `not-installed`, `nothing-to-do`, `status`.
    pub action: ModuleAction,
    /// Every command run (semodule, load_policy).
    pub commands: Vec<String>,
    /// The connector's files this run relabeled (set in this process, to
    /// what the root's file contexts give): empty when all were right.
    pub relabeled: Vec<String>,
    /// Per right the probes need, what the kernel will do: from the loaded
    /// policy on a live host with SELinux running, else from the store's
    /// binary policy. Null when neither could be read (`rights_error`).
    pub rights: Option<Rights>,
    pub rights_error: Option<String>,
    /// The last module install the base policy rejected, if not since
    /// replaced by a successful one.
    pub module_failure: Option<ModuleFailure>,
    /// Denials of the connector's domain in the audit log.
    pub denials: Vec<DeniedPermission>,
    /// When the store received the current module: denials before it were
    /// answered by installing it, and no longer count.
    pub module_installed_at: Option<u64>,
}

impl SelinuxReport {
    /// SELinux is configured on and the module is missing or outdated.
    pub fn module_missing(&self) -> bool {
        self.not_applicable.is_none()
            && !matches!(
                self.module,
                Some(ModuleState::Installed { current: true, .. })
            )
    }

    /// The module is in the store, but a kernel of the root loads a binary
    /// policy without the connector's domain (a newer semodule wrote it
    /// into a file that kernel never loads).
    pub fn module_not_loaded(&self) -> Vec<&connector_policy::KernelPolicy> {
        if self.module_missing() {
            return Vec::new();
        }
        self.policy
            .iter()
            .flat_map(|p| p.domain_not_loaded())
            .collect()
    }

    /// `selinux install` has work: the module is missing or outdated, not
    /// in the file a kernel loads, or (in an image) a newer stale file is
    /// left for a kernel to prefer.
    pub fn module_step_needed(&self) -> bool {
        let stale =
            self.live_mode.is_none() && self.policy.as_ref().is_some_and(|p| !p.stale.is_empty());
        self.not_applicable.is_none()
            && (self.module_missing() || !self.module_not_loaded().is_empty() || stale)
    }

    /// The rights the kernel will refuse.
    pub fn refused_rights(&self) -> Vec<&rights::RightReport> {
        self.rights
            .iter()
            .flat_map(|r| r.rights.iter())
            .filter(|r| r.refused())
            .collect()
    }

    /// Enforced denials (not permissive ones) since the module was last
    /// installed.
    pub fn enforced_denials(&self) -> Vec<&DeniedPermission> {
        self.denials
            .iter()
            .filter(|d| !d.permissive)
            .filter(|d| match (self.module_installed_at, d.last_epoch) {
                (Some(installed), Some(t)) => t >= installed as f64,
                _ => true,
            })
            .collect()
    }

    /// Where SELinux stands, in words: what the running kernel does (a
    /// live root) and what the config file will do from the next boot.
    /// `enforcing`; `off in the running kernel; the config says
    /// permissive, from the next boot`; for an image, the config alone.
    pub fn state_words(&self) -> String {
        let config = self.config.as_ref().map(|c| c.mode.as_str());
        match (self.live_mode, config) {
            (Some(LiveMode::Off), Some(c)) => {
                format!("off in the running kernel; the config says {c}, from the next boot")
            }
            (Some(LiveMode::Off), None) => "off in the running kernel".to_string(),
            (Some(live), Some(c)) if live_str(live) != c => format!(
                "{} in the running kernel; the config says {c}, from the next boot",
                live_str(live)
            ),
            (Some(live), _) => live_str(live).to_string(),
            (None, Some(c)) => format!("{c} (the image's config)"),
            (None, None) => "not configured".to_string(),
        }
    }

    /// What is wrong, one phrase per problem; empty when healthy.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.module_missing() {
            out.push(match &self.module {
                Some(ModuleState::Installed { .. }) => "the connectord module is outdated".into(),
                _ => "the connectord module is not installed".into(),
            });
        }
        for k in self.module_not_loaded() {
            out.push(format!(
                "the policy file {} that kernel {} loads lacks the connector's domain",
                k.file.as_deref().unwrap_or("(none)"),
                k.kernel.as_deref().unwrap_or("(any)")
            ));
        }
        let refused = self.refused_rights();
        if !refused.is_empty() {
            out.push(format!(
                "{} right(s) the probes need are refused",
                refused.len()
            ));
        }
        if self.module_failure.is_some() {
            out.push("the base policy rejected the module".into());
        }
        let denied = self.enforced_denials();
        if !denied.is_empty() {
            out.push(format!(
                "{} enforced denial(s) in the audit log",
                denied.len()
            ));
        }
        out
    }

    /// No problem (see [`SelinuxReport::problems`]).
    pub fn healthy(&self) -> bool {
        !self.module_missing()
            && self.module_not_loaded().is_empty()
            && self.refused_rights().is_empty()
            && self.module_failure.is_none()
            && self.enforced_denials().is_empty()
    }
}

pub(crate) fn base(root: &Root, action: ModuleAction) -> Result<(SelinuxReport, Option<Store>)> {
    let mut r = SelinuxReport {
        schema_version: 1,
        dry_run: false,
        root: root.path().display().to_string(),
        config: connector_policy::read_config(root)?,
        not_applicable: None,
        live_mode: root.is_live().then(live_mode),
        module: None,
        policy: None,
        shipped_version: module_version().to_string(),
        action,
        commands: Vec::new(),
        relabeled: Vec::new(),
        rights: None,
        rights_error: None,
        module_failure: None,
        denials: Vec::new(),
        module_installed_at: None,
    };
    let store = match Store::open(root)? {
        Ok(s) => {
            r.module = Some(s.module_state()?);
            r.module_installed_at = s.module_installed_at();
            // Only where SELinux is on can the connector's domain be denied:
            // elsewhere doctor reads no audit log and runs no journalctl.
            r.denials = audit_denials(root);
            r.module_failure = read_failure(root).filter(|_| !r.module_current());
            r.policy = Some(s.versions());
            r.refresh_rights(root);
            Some(s)
        }
        Err(na) => {
            r.not_applicable = Some(na);
            None
        }
    };
    Ok((r, store))
}

impl SelinuxReport {
    fn module_current(&self) -> bool {
        matches!(
            self.module,
            Some(ModuleState::Installed { current: true, .. })
        )
    }

    /// What the kernel will do with each right: the running kernel when
    /// SELinux runs on this live root, else the store's binary policy.
    pub(crate) fn refresh_rights(&mut self, root: &Root) {
        let Some(config) = &self.config else { return };
        let got = if root.is_live() && self.live_mode != Some(LiveMode::Off) {
            rights::live()
        } else {
            // The file the newest kernel loads (the first; else the newest file).
            let version = self
                .policy
                .as_ref()
                .and_then(|p| p.loads.first().and_then(|l| l.version))
                .or_else(|| self.policy.as_ref().and_then(|p| p.present.last().copied()));
            rights::read_store_policy(root, &config.policy_type, version).map(|(path, names)| {
                let domain = names.types.contains(DOMAIN);
                rights::from_policy(
                    &names,
                    path.display().to_string(),
                    self.module_current() && domain,
                )
            })
        };
        match got {
            Ok(r) => {
                self.rights = Some(r);
                self.rights_error = None;
            }
            Err(e) => {
                self.rights = None;
                self.rights_error = Some(e);
            }
        }
    }
}

/// What `selinux` did to the module (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleAction {
    /// `selinux status`: nothing is changed.
    Status,
    /// SELinux is not configured or disabled in the root.
    NothingToDo,
    Installed,
    /// The store already held this module (labels were still checked).
    Unchanged,
    Removed,
    NotInstalled,
    WouldInstall,
    WouldRelabel,
    WouldRemove,
}

impl std::fmt::Display for ModuleAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        f.write_str(v.as_str().unwrap_or("?"))
    }
}

/// The recorded rejection, if any (a small regular file inside the root).
fn read_failure(root: &Root) -> Option<ModuleFailure> {
    let meta = root.metadata_optional(MODULE_FAILURE).ok()??;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return None;
    }
    serde_json::from_str(&root.read_to_string_optional(MODULE_FAILURE).ok()??).ok()
}

/// [`status`], and the store it opened (None where SELinux does not
/// apply): the facts keep it, so a run opens the store once.
pub fn inspect(root: &Root) -> Result<(SelinuxReport, Option<Store>)> {
    base(root, ModuleAction::Status)
}

/// Denials of the connector's domain in the last part of
/// `ROOT/var/log/audit/audit.log` (auditd writes there; the journal is the
/// fallback where auditd is absent, read on the live root only).
pub fn audit_denials(root: &Root) -> Vec<DeniedPermission> {
    // Counted by scripts/bench-install (at most once per install run).
    log::debug!("reading the audit log of {}", root.path().display());
    let mut text = String::new();
    if let Ok(Some(host)) = root.resolve_optional("/var/log/audit/audit.log") {
        // A regular file only: a FIFO planted there would hang the read.
        if let Ok(mut f) = connector_host::root::open_regular(&host) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(AUDIT_TAIL)));
            let mut bytes = Vec::new();
            let _ = f.take(AUDIT_TAIL).read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    } else if root.is_live() {
        if let Ok(out) = connector_host::Cmd::new("journalctl", "Reading kernel audit messages")
            .args(["-k", "-q", "--no-pager", "-o", "cat", "--since", "-1d"])
            .timeout(Duration::from_secs(10))
            .run()
        {
            text = out.stdout;
        }
    }
    avc::summarize(&text, DOMAIN)
}

/// A `selinux status` report with the module not installed, SELinux as
/// `live` and `config` say: the render and verdict tests' sample.
#[cfg(test)]
pub(crate) fn sample(
    live: Option<LiveMode>,
    config: Option<connector_policy::ConfigMode>,
) -> SelinuxReport {
    SelinuxReport {
        schema_version: 1,
        dry_run: false,
        root: "/".into(),
        config: config.map(|mode| SelinuxConfig {
            mode,
            policy_type: "targeted".into(),
        }),
        not_applicable: None,
        live_mode: live,
        module: Some(ModuleState::NotInstalled),
        policy: None,
        shipped_version: "1.0.0".into(),
        action: ModuleAction::Status,
        commands: Vec::new(),
        relabeled: Vec::new(),
        rights: None,
        rights_error: None,
        module_failure: None,
        denials: Vec::new(),
        module_installed_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::sample as report;
    use super::*;
    use connector_policy::ConfigMode;

    /// The kernel's state and the config's are told apart: a host whose
    /// kernel runs no SELinux is never "on" because its config says so.
    #[test]
    fn state_words_say_what_the_kernel_does_and_what_the_config_will() {
        use ConfigMode as C;
        use LiveMode as L;
        for (live, config, want) in [
            (
                Some(L::Off),
                Some(C::Permissive),
                "off in the running kernel; the config says permissive, from the next boot",
            ),
            (Some(L::Off), None, "off in the running kernel"),
            (Some(L::Enforcing), Some(C::Enforcing), "enforcing"),
            (Some(L::Permissive), Some(C::Permissive), "permissive"),
            (
                Some(L::Permissive),
                Some(C::Enforcing),
                "permissive in the running kernel; the config says enforcing, from the next boot",
            ),
            (None, Some(C::Enforcing), "enforcing (the image's config)"),
            (None, None, "not configured"),
        ] {
            assert_eq!(
                report(live, config).state_words(),
                want,
                "{live:?} {config:?}"
            );
        }
    }

    #[test]
    fn problems_name_what_is_wrong_and_nothing_when_healthy() {
        let missing = report(Some(LiveMode::Enforcing), Some(ConfigMode::Enforcing));
        assert_eq!(
            missing.problems(),
            ["the connectord module is not installed"]
        );
        assert!(!missing.healthy());
        let mut current = missing.clone();
        current.module = Some(ModuleState::Installed {
            version: Some("1.0.0".into()),
            current: true,
            priority: 400,
        });
        assert!(current.problems().is_empty(), "{:?}", current.problems());
        assert!(current.healthy());
        let mut outdated = current.clone();
        outdated.module = Some(ModuleState::Installed {
            version: Some("0.9.0".into()),
            current: false,
            priority: 400,
        });
        assert_eq!(outdated.problems(), ["the connectord module is outdated"]);
    }
}
