//! `connector-installer selinux install|remove|status`: the module and
//! label steps every command takes, on the store the facts opened
//! (`facts::selinux` reads; this acts), and the command's report.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use connector_host::layout::MODULE_FAILURE;
use connector_host::Root;
use connector_policy::{
    module_version, LiveMode, ModuleState, NotApplicable, PolicyError, PolicyVersions, Store,
    DOMAIN,
};

use crate::facts::selinux::{base, inspect};
pub use crate::facts::selinux::{ModuleAction, ModuleFailure, SelinuxReport};

/// Installs the module through `store`, recording a rejection by the base
/// policy for doctor (and clearing an old record on success). The one way
/// every command installs it.
pub fn install_module(
    root: &Root,
    store: &Store,
    lock_timeout: Duration,
) -> Result<Option<Vec<String>>> {
    match store.install(lock_timeout) {
        Ok(ran) => {
            if ran.is_some() {
                crate::state::audit::record(
                    crate::state::audit::ChangeKind::ModuleInstalled,
                    format!(
                        "installed the SELinux module connectord {}",
                        module_version()
                    ),
                    vec![format!("connectord {}", module_version())],
                );
            }
            if root.exists(MODULE_FAILURE).unwrap_or(false) {
                crate::state::remove_in_root(root, MODULE_FAILURE)?;
            }
            Ok(ran)
        }
        Err(PolicyError::Rejected { message }) => {
            let record = ModuleFailure {
                version: module_version().to_string(),
                message: message.clone(),
                at: connector_host::time::now(),
            };
            // The rejection is the error either way; recording it is best effort.
            let recorded = crate::state::state_file(root, MODULE_FAILURE).and_then(|path| {
                let json = serde_json::to_vec_pretty(&record)?;
                Ok(connector_host::atomic::write(&path, &json, 0o644, None)?)
            });
            if let Err(e) = recorded {
                log::warn!("could not record the module failure in {MODULE_FAILURE}: {e:#}");
            }
            Err(PolicyError::Rejected { message }.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Relabels the connector's files that are mislabeled (in this process,
/// no tool run), recorded in the audit trail when there were any. Returns
/// the paths relabeled: empty, and nothing written, on a healthy root.
pub fn relabel(store: &Store) -> Result<Vec<String>> {
    let fixed = store.relabel()?;
    if !fixed.is_empty() {
        crate::state::audit::record(
            crate::state::audit::ChangeKind::LabelsSet,
            format!("relabeled {} of the connector's files", fixed.len()),
            fixed.clone(),
        );
    }
    Ok(fixed)
}

/// `selinux status`.
pub fn status(root: &Root) -> Result<SelinuxReport> {
    Ok(inspect(root)?.0)
}

/// `selinux install`: the module (one rebuild, or nothing when current),
/// then the connector's labels.
pub fn install(root: &Root, lock_timeout: Duration, dry_run: bool) -> Result<SelinuxReport> {
    let (mut r, store) = base(root, ModuleAction::NothingToDo)?;
    let Some(store) = store else { return Ok(r) };
    if dry_run {
        // The same refusals as a real run (links leading out of the root),
        // then only the verdict.
        store.check_tool_paths()?;
        r.dry_run = true;
        r.action = if r.module_step_needed() {
            ModuleAction::WouldInstall
        } else {
            ModuleAction::WouldRelabel
        };
        return Ok(r);
    }
    match install_module(root, &store, lock_timeout)? {
        Some(cmds) => {
            r.commands.extend(cmds);
            r.action = ModuleAction::Installed;
        }
        None => r.action = ModuleAction::Unchanged,
    }
    r.relabeled = relabel(&store)?;
    r.module = Some(store.module_state()?);
    r.policy = Some(store.versions());
    r.module_installed_at = store.module_installed_at();
    r.module_failure = None;
    r.refresh_rights(root);
    Ok(r)
}

/// `selinux remove`: a clean no-op when the module is not there.
pub fn remove(root: &Root, lock_timeout: Duration, dry_run: bool) -> Result<SelinuxReport> {
    let (mut r, store) = base(root, ModuleAction::NothingToDo)?;
    let Some(store) = store else { return Ok(r) };
    if dry_run {
        r.dry_run = true;
        r.action = match store.module_state()? {
            connector_policy::ModuleState::NotInstalled => ModuleAction::NotInstalled,
            _ => {
                store.check_tool_paths()?;
                ModuleAction::WouldRemove
            }
        };
        return Ok(r);
    }
    match store.remove(lock_timeout)? {
        Some(cmds) => {
            crate::state::audit::record(
                crate::state::audit::ChangeKind::ModuleRemoved,
                "removed the SELinux module connectord",
                vec!["connectord".into()],
            );
            r.commands.extend(cmds);
            r.action = ModuleAction::Removed;
        }
        None => r.action = ModuleAction::NotInstalled,
    }
    r.module = Some(store.module_state()?);
    r.policy = Some(store.versions());
    r.refresh_rights(root);
    Ok(r)
}

/// One line per right the probes need: what the kernel will do with it.
pub fn render_rights(r: &SelinuxReport) -> String {
    use connector_policy::rights::{KernelAnswer, RightState};
    let mut s = String::new();
    if let Some(e) = &r.rights_error {
        let _ = writeln!(s, "Rights:  unknown ({e})");
    }
    let Some(rights) = &r.rights else { return s };
    let _ = writeln!(
        s,
        "Rights:  of {DOMAIN}, from {} (handle_unknown={})",
        rights.source,
        rights.handle_unknown.as_str()
    );
    for x in &rights.rights {
        let verdict = match &x.state {
            RightState::Granted => "granted by the connectord module".to_string(),
            RightState::Missing => "MISSING (defined by the policy, not granted)".to_string(),
            RightState::NotDefined {
                kernel: KernelAnswer::Allowed,
            } => "not defined by this policy: allowed (handle_unknown)".to_string(),
            RightState::NotDefined {
                kernel: KernelAnswer::Denied,
            } => "not defined by this policy: DENIED (handle_unknown)".to_string(),
        };
        let _ = writeln!(s, "  {:<31} {verdict}", x.name());
    }
    s
}

/// Which binary policy each kernel loads, and whether it carries the
/// connector's domain.
pub fn render_policy(p: &PolicyVersions) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Policy:  version {} for this root ({}; store under {})",
        p.target,
        p.userspace.from,
        p.layout.store_root()
    );
    for l in &p.loads {
        let who = l.kernel.as_deref().unwrap_or("any kernel");
        let what = match (&l.file, l.connector_domain) {
            (None, _) => format!("no policy.N up to {}: nothing to load", l.limit),
            (Some(f), Some(true)) => format!("{f} (has {DOMAIN})"),
            (Some(f), Some(false)) => format!("{f} — WITHOUT {DOMAIN}"),
            (Some(f), None) => format!("{f} (unreadable)"),
        };
        let _ = writeln!(s, "Loads:   {who}: {what}");
    }
    for v in &p.stale {
        let _ = writeln!(
            s,
            "Stale:   policy.{v} is newer than this root's userspace writes (removed by selinux install)"
        );
    }
    s
}

/// The report for people.
pub fn render_text(r: &SelinuxReport) -> String {
    let mut s = String::new();
    if r.dry_run {
        let _ = writeln!(s, "dry run: nothing was changed ({})", r.action);
    }
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
                "Config:  SELINUX={} SELINUXTYPE={} (/etc/selinux/config: from the next boot)",
                c.mode.as_str(),
                c.policy_type
            );
        }
        (None, None) => {}
    }
    if let Some(m) = r.live_mode {
        let _ = writeln!(
            s,
            "Kernel:  {}",
            match m {
                LiveMode::Off => "SELinux off (the running kernel does not run it)",
                m => crate::facts::selinux::live_str(m),
            }
        );
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
    if let Some(p) = &r.policy {
        s.push_str(&render_policy(p));
    }
    if let Some(f) = &r.module_failure {
        let _ = writeln!(
            s,
            "Failed:  the base policy rejected module {}: {}",
            f.version, f.message
        );
    }
    s.push_str(&render_rights(r));
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
    for p in &r.relabeled {
        let _ = writeln!(s, "relabeled: {p}");
    }
    let problems = r.problems();
    let _ = match (r.action, problems.is_empty()) {
        (ModuleAction::Status, true) => writeln!(s, "Result:  healthy"),
        (ModuleAction::Status, false) => writeln!(s, "Result:  {}", problems.join("; ")),
        (action, _) => writeln!(s, "Result:  {}", action_words(action)),
    };
    s
}

/// What `selinux install|remove` did, in words.
fn action_words(a: ModuleAction) -> &'static str {
    match a {
        ModuleAction::Status => "looked, changed nothing",
        ModuleAction::NothingToDo => "nothing to do: SELinux is not on in this root",
        ModuleAction::Installed => "installed the connectord module",
        ModuleAction::Unchanged => "the connectord module was already current",
        ModuleAction::Removed => "removed the connectord module",
        ModuleAction::NotInstalled => "the connectord module was not installed",
        ModuleAction::WouldInstall => "would install the connectord module",
        ModuleAction::WouldRelabel => "would check the connector's labels",
        ModuleAction::WouldRemove => "would remove the connectord module",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_policy::ConfigMode;

    /// `selinux status` in words, never Rust's names: the config as the
    /// file spells it, the kernel's state, and a result that says what is
    /// wrong.
    #[test]
    fn status_text_uses_the_words_of_the_config_and_getenforce() {
        let r = crate::facts::selinux::sample(Some(LiveMode::Off), Some(ConfigMode::Permissive));
        let text = render_text(&r);
        for want in [
            "Config:  SELINUX=permissive SELINUXTYPE=targeted",
            "Kernel:  SELinux off (the running kernel does not run it)",
            "Result:  the connectord module is not installed",
        ] {
            assert!(text.contains(want), "{want:?} in:\n{text}");
        }
        for debug_name in ["Permissive", "Off\n", "Result:  status"] {
            assert!(!text.contains(debug_name), "{debug_name:?} in:\n{text}");
        }
        let mut installed = r.clone();
        installed.action = ModuleAction::Installed;
        assert!(render_text(&installed).contains("Result:  installed the connectord module"));
    }
}
