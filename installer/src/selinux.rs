//! `connector-installer selinux install|remove|status`, and the SELinux
//! part of `doctor` (the Oracle Linux UEK cause of fault 11).

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use anyhow::Result;
use connector_host::Root;
use connector_policy::avc::{self, DeniedPermission};
use connector_policy::{
    check_live_access, live_mode, module_version, AccessCheck, LiveMode, ModuleState,
    NotApplicable, SelinuxConfig, Store, DOMAIN,
};
use serde::Serialize;

/// Where the connector's binary is: its presence means "installed".
pub const CONNECTOR_BINARY: &str = "/opt/connector/bin/connectord";
/// How much of the end of audit.log is read for denials.
const AUDIT_TAIL: u64 = 8 * 1024 * 1024;

/// The SELinux facts of a root.
#[derive(Debug, Clone, Serialize)]
pub struct SelinuxReport {
    pub root: String,
    /// `/etc/selinux/config`; null when the root has none.
    pub config: Option<SelinuxConfig>,
    /// Why there is nothing to do (`no-config`, `disabled`), else null.
    pub not_applicable: Option<NotApplicable>,
    /// The running kernel's mode (live root only).
    pub live_mode: Option<LiveMode>,
    pub module: Option<ModuleState>,
    /// The module version this binary ships.
    pub shipped_version: String,
    /// What this run did: `installed`, `unchanged`, `removed`,
    /// `not-installed`, `nothing-to-do`, `status`.
    pub action: String,
    /// Every command run (semodule, load_policy, setfiles, restorecon).
    pub commands: Vec<String>,
    /// The kernel's answer for the rights the probes need (live, SELinux on).
    pub access: Vec<AccessCheck>,
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

    /// The live kernel refuses one of the required rights.
    pub fn access_refused(&self) -> bool {
        self.access.iter().any(|a| a.allowed == Some(false))
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

    pub fn healthy(&self) -> bool {
        !self.module_missing() && !self.access_refused() && self.enforced_denials().is_empty()
    }
}

fn base(root: &Root, action: &str) -> Result<(SelinuxReport, Option<Store>)> {
    let mut r = SelinuxReport {
        root: root.path().display().to_string(),
        config: connector_policy::read_config(root)?,
        not_applicable: None,
        live_mode: root.is_live().then(live_mode),
        module: None,
        shipped_version: module_version().to_string(),
        action: action.to_string(),
        commands: Vec::new(),
        access: Vec::new(),
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
            Some(s)
        }
        Err(na) => {
            r.not_applicable = Some(na);
            None
        }
    };
    if root.is_live() && r.live_mode != Some(LiveMode::Off) {
        r.access = check_live_access();
    }
    Ok((r, store))
}

/// `selinux status`.
pub fn status(root: &Root) -> Result<SelinuxReport> {
    Ok(base(root, "status")?.0)
}

/// `selinux install`: the module (one rebuild, or nothing when current),
/// then the connector's labels.
pub fn install(root: &Root, lock_timeout: Duration) -> Result<SelinuxReport> {
    let (mut r, store) = base(root, "nothing-to-do")?;
    let Some(store) = store else { return Ok(r) };
    match store.install(lock_timeout)? {
        Some(cmds) => {
            r.commands.extend(cmds);
            r.action = "installed".into();
        }
        None => r.action = "unchanged".into(),
    }
    r.commands.extend(store.relabel()?);
    r.module = Some(store.module_state()?);
    r.module_installed_at = store.module_installed_at();
    if root.is_live() && r.live_mode != Some(LiveMode::Off) {
        r.access = check_live_access();
    }
    Ok(r)
}

/// `selinux remove`: a clean no-op when the module is not there.
pub fn remove(root: &Root, lock_timeout: Duration) -> Result<SelinuxReport> {
    let (mut r, store) = base(root, "nothing-to-do")?;
    let Some(store) = store else { return Ok(r) };
    match store.remove(lock_timeout)? {
        Some(cmds) => {
            r.commands.extend(cmds);
            r.action = "removed".into();
        }
        None => r.action = "not-installed".into(),
    }
    r.module = Some(store.module_state()?);
    Ok(r)
}

/// Denials of the connector's domain in the last part of
/// `ROOT/var/log/audit/audit.log` (auditd writes there; the journal is the
/// fallback where auditd is absent, read on the live root only).
pub fn audit_denials(root: &Root) -> Vec<DeniedPermission> {
    let mut text = String::new();
    if let Ok(Some(host)) = root.resolve_optional("/var/log/audit/audit.log") {
        if let Ok(mut f) = std::fs::File::open(host) {
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

/// The report for people.
pub fn render_text(r: &SelinuxReport) -> String {
    let mut s = String::new();
    match (&r.config, &r.not_applicable) {
        (_, Some(NotApplicable::NoConfig)) => {
            let _ = writeln!(
                s,
                "SELinux: not configured in this root (no /etc/selinux/config): nothing to do"
            );
        }
        (_, Some(NotApplicable::Disabled)) => {
            let _ = writeln!(s, "SELinux: disabled in /etc/selinux/config: nothing to do");
        }
        (Some(c), None) => {
            let _ = writeln!(
                s,
                "SELinux: SELINUX={:?} SELINUXTYPE={}",
                c.mode, c.policy_type
            );
        }
        (None, None) => {}
    }
    if let Some(m) = r.live_mode {
        let _ = writeln!(s, "Kernel:  {m:?}");
    }
    match &r.module {
        Some(ModuleState::NotInstalled) => {
            let _ = writeln!(
                s,
                "Module:  connectord not installed (shipping {})",
                r.shipped_version
            );
        }
        Some(ModuleState::Installed {
            version,
            current,
            priority,
        }) => {
            let _ = writeln!(
                s,
                "Module:  connectord {} at priority {priority}{}",
                version.as_deref().unwrap_or("(unknown version)"),
                if *current { "" } else { " — OUTDATED" }
            );
        }
        None => {}
    }
    for a in &r.access {
        let verdict = match a.allowed {
            Some(true) => "allowed".to_string(),
            Some(false) => "DENIED".to_string(),
            None => format!("unknown ({})", a.error.as_deref().unwrap_or("")),
        };
        let _ = writeln!(
            s,
            "Access:  {DOMAIN} {} {}: {verdict}",
            a.class, a.permission
        );
    }
    for d in &r.denials {
        let _ = writeln!(
            s,
            "Denied:  {{ {} }} {}:{} {} time(s), last {}{}",
            d.permission,
            d.target_type,
            d.tclass,
            d.count,
            d.last_time.as_deref().unwrap_or("?"),
            if d.permissive { " (permissive)" } else { "" }
        );
    }
    for c in &r.commands {
        let _ = writeln!(s, "ran: {c}");
    }
    let _ = writeln!(s, "Result:  {}", r.action);
    s
}
