//! `connector-installer uninstall [--purge]`: undoes `install --payload`.
//! A connector installed by its package is the package manager's to remove
//! (its scripts call our hooks); this refuses and names the command.

use std::fs;
use std::io;
use std::time::Duration;

use anyhow::{Context, Result};
use connector_host::pkg::DbQuery;
use connector_host::Root;
use serde::Serialize;

use crate::facts::backend;
use crate::install::laydown::{self, EntryKind};
use crate::install::selinux;
use crate::install::service;
use crate::state::{self, InstallerLock};
use connector_host::layout::UNIT;

/// Errors a caller branches on.
#[derive(Debug, thiserror::Error)]
pub enum UninstallError {
    #[error(
        "the connector is installed by the package manager (package connector); remove it with \
         `{0}` — its scripts stop the service and remove the SELinux module"
    )]
    PackageOwned(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct UninstallReport {
    pub schema_version: u32,
    pub root: String,
    /// `--dry-run`: `removed` is what would be removed; nothing changed.
    pub dry_run: bool,
    pub purge: bool,
    pub removed: Vec<String>,
    /// Configuration changed by the administrator, kept (without --purge).
    pub kept: Vec<String>,
    pub commands: Vec<String>,
    pub warnings: Vec<String>,
}

/// Runs the uninstall.
/// With `dry_run`, nothing is changed (not even the lock taken): `removed`
/// lists what would be removed, `commands` what would run.
pub fn run(
    root: &Root,
    purge: bool,
    lock_timeout: Duration,
    dry_run: bool,
) -> Result<UninstallReport> {
    // Fail closed: removing files a package owns would break the package
    // database, so "cannot tell" refuses like "packaged" does.
    let cannot_tell = |e: String| {
        anyhow::anyhow!(
            "cannot tell whether the connector is installed by a package ({e}); nothing was \
             removed. If a package installed it, remove that package with the package manager; \
             otherwise fix what is named here and run this again"
        )
    };
    let os = connector_host::os::OsInfo::detect(root).map_err(|e| cannot_tell(e.to_string()))?;
    if let Some(b) = backend::for_os(&os, root) {
        match b.query_installed(&["connector".to_string()]) {
            Ok(DbQuery::Answer(a)) if a.get("connector") == Some(&true) => {
                let cmd = b.remove_command("connector", purge);
                return Err(UninstallError::PackageOwned(cmd).into());
            }
            // Not installed, or no database of this family: nothing owns it.
            Ok(_) => {}
            Err(e) => return Err(cannot_tell(e.to_string())),
        }
    }
    let _lock = if dry_run {
        None
    } else {
        Some(InstallerLock::acquire(root)?)
    };
    let mut r = UninstallReport {
        schema_version: 1,
        root: root.path().display().to_string(),
        dry_run,
        purge,
        removed: Vec::new(),
        kept: Vec::new(),
        commands: Vec::new(),
        warnings: Vec::new(),
    };

    // The service: stopped and disabled.
    if dry_run && (service::enabled(root, UNIT) || service::active(root, UNIT)) {
        r.commands
            .push(format!("systemctl disable {UNIT} (and stop it)"));
    } else if service::enabled(root, UNIT) || service::active(root, UNIT) {
        match service::stop_and_disable(root) {
            Ok(c) => r.commands.push(c),
            Err(e) => r.warnings.push(format!("{e:#}")),
        }
    }
    // The module.
    let s = selinux::remove(root, lock_timeout, dry_run)?;
    r.commands.extend(s.commands);
    if s.action == selinux::ModuleAction::WouldRemove {
        r.commands
            .push("semodule -r connectord (the SELinux module)".into());
    }

    // The files we laid down, as recorded.
    let record = root
        .read_to_string_optional(connector_host::layout::INSTALL_RECORD)?
        .unwrap_or_default();
    let entries = laydown::parse_manifest(&record).context("reading the install record")?;
    let mut dirs = Vec::new();
    for e in &entries {
        let Some(host) = state::entry_in_root(root, &e.path)? else {
            continue;
        };
        match e.kind {
            EntryKind::Dir => dirs.push((e.path.clone(), host)),
            EntryKind::Conf if !purge => {
                let changed = laydown::sha256_file(&host).ok() != e.sha256;
                if changed {
                    if host.exists() {
                        r.kept.push(e.path.clone());
                    }
                    continue;
                }
                remove_file(root, &e.path, &mut r, dry_run)?;
            }
            _ => remove_file(root, &e.path, &mut r, dry_run)?,
        }
    }
    for extra in connector_host::layout::PER_HOST_STATE
        .iter()
        .copied()
        .chain([
            connector_host::layout::INSTALL_RECORD,
            connector_host::layout::INSTALL_STAMPS,
            connector_host::layout::LABEL_CACHE,
        ])
    {
        remove_file(root, extra, &mut r, dry_run)?;
    }
    if dry_run {
        if purge {
            for d in [
                connector_host::layout::CONF_DIR,
                connector_host::layout::LOG_DIR,
                connector_host::layout::STATE_DIR,
            ] {
                if root.exists(d)? {
                    r.removed.push(d.to_string());
                }
            }
        }
        for (path, host) in dirs {
            if host.is_dir() {
                r.removed.push(format!("{path} (if empty)"));
            }
        }
        return Ok(r);
    }
    // The record of the last run goes with the connector.
    crate::state::audit::leave_no_record();
    if purge {
        for d in [
            connector_host::layout::CONF_DIR,
            connector_host::layout::LOG_DIR,
            connector_host::layout::STATE_DIR,
        ] {
            if state::remove_in_root(root, d)? {
                r.removed.push(d.to_string());
            }
        }
    }
    // Directories, deepest first, when empty (the state directory last:
    // it holds our lock, which goes with it).
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
    for (path, host) in dirs {
        if path == connector_host::layout::STATE_DIR {
            let _ = fs::remove_file(host.join("installer.lock"));
            let _ = fs::remove_file(host.join("install.journal"));
        }
        match fs::remove_dir(&host) {
            Ok(()) => r.removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => r
                .warnings
                .push(format!("{path} is not empty: kept (remove it by hand)")),
        }
    }
    if !r.removed.is_empty() {
        crate::state::audit::record(
            crate::state::audit::ChangeKind::FilesRemoved,
            format!("removed {} connector path(s)", r.removed.len()),
            r.removed.clone(),
        );
    }
    Ok(r)
}

fn remove_file(root: &Root, path: &str, r: &mut UninstallReport, dry_run: bool) -> Result<()> {
    if dry_run {
        if let Some(host) = state::entry_in_root(root, path)? {
            if fs::symlink_metadata(host).is_ok() {
                r.removed.push(path.to_string());
            }
        }
        return Ok(());
    }
    if state::remove_in_root(root, path)? {
        r.removed.push(path.to_string());
    }
    Ok(())
}

/// The report for people.
pub fn render_text(r: &UninstallReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let (removed, ran) = if r.dry_run {
        let _ = writeln!(s, "dry run: nothing was changed");
        ("would remove", "would run")
    } else {
        ("removed", "ran")
    };
    for p in &r.removed {
        let _ = writeln!(s, "{removed} {p}");
    }
    for p in &r.kept {
        let _ = writeln!(s, "kept    {p} (changed locally; --purge removes it)");
    }
    for c in &r.commands {
        let _ = writeln!(s, "{ran}: {c}");
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}
