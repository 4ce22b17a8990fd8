//! The audit trail: every change the installer makes to a root goes to the
//! host's journal as one structured entry — a stable `MESSAGE_ID` per kind
//! of change, the subcommand, the root and what changed — or to syslog
//! where there is no journal. A run that changed something also leaves
//! `/var/lib/connector/last-run.json` in the root, which `doctor` shows.
//!
//! Recording never fails a run: a journal that cannot be reached is a
//! debug line, nothing more. A run that changed nothing writes nothing.
//!
//! Find the entries with `journalctl SYSLOG_IDENTIFIER=connector-installer`,
//! or one kind with `journalctl MESSAGE_ID=<id>` (the ids: docs/audit.md).

use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;

use connector_host::layout::LAST_RUN;
use connector_host::Root;
use serde::{Deserialize, Serialize};

/// The journal's native socket (on the host: the journal is the host's,
/// whichever root the installer works on).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// The syslog socket, used when there is no journal.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Test builds may point the trail at their own sockets. Named in every
/// build (the tests name them); read only by builds with the test-only
/// `fault-injection` feature.
pub const TEST_JOURNAL_ENV: &str = "CONNECTOR_INSTALLER_TEST_JOURNAL_SOCKET";
/// Test builds may point the syslog fallback at their own socket.
pub const TEST_SYSLOG_ENV: &str = "CONNECTOR_INSTALLER_TEST_SYSLOG_SOCKET";

/// A kind of change, with its stable message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A header package was installed.
    PackageInstalled,
    /// The SELinux module was installed.
    ModuleInstalled,
    /// The SELinux module was removed.
    ModuleRemoved,
    /// The connector's files were laid down.
    FilesLaidDown,
    /// The connector's files were removed.
    FilesRemoved,
    /// SELinux labels were set on the connector's files.
    LabelsSet,
    /// The connector's unit was enabled.
    ServiceEnabled,
    /// The connector was started.
    ServiceStarted,
    /// The connector was restarted.
    ServiceRestarted,
}

impl ChangeKind {
    /// Every kind (docs/audit.md lists their ids).
    pub const ALL: [ChangeKind; 9] = [
        ChangeKind::PackageInstalled,
        ChangeKind::ModuleInstalled,
        ChangeKind::ModuleRemoved,
        ChangeKind::FilesLaidDown,
        ChangeKind::FilesRemoved,
        ChangeKind::LabelsSet,
        ChangeKind::ServiceEnabled,
        ChangeKind::ServiceStarted,
        ChangeKind::ServiceRestarted,
    ];

    /// The journal's `MESSAGE_ID`: fixed forever for this kind.
    pub fn message_id(self) -> &'static str {
        match self {
            ChangeKind::PackageInstalled => "e1719b0aef254e8aa55e611354ffa808",
            ChangeKind::ModuleInstalled => "c27162899f6a4c37bc3068a0f7526065",
            ChangeKind::ModuleRemoved => "697447f1ed8649099395029a21ecfde3",
            ChangeKind::FilesLaidDown => "7a925ce8eefc46b5b30c19736cc7eea5",
            ChangeKind::FilesRemoved => "99f6c4c967a9437594a2c3b24217a522",
            ChangeKind::LabelsSet => "83065c8b6d62402b8717210216c5c3ce",
            ChangeKind::ServiceEnabled => "d8e1830e411b46909026adea24233df4",
            ChangeKind::ServiceStarted => "8337581e38c84646b97acf4670d33ea5",
            ChangeKind::ServiceRestarted => "11e5a204daee4ab48b5654246439f656",
        }
    }

    fn name(self) -> &'static str {
        match self {
            ChangeKind::PackageInstalled => "package-installed",
            ChangeKind::ModuleInstalled => "module-installed",
            ChangeKind::ModuleRemoved => "module-removed",
            ChangeKind::FilesLaidDown => "files-laid-down",
            ChangeKind::FilesRemoved => "files-removed",
            ChangeKind::LabelsSet => "labels-set",
            ChangeKind::ServiceEnabled => "service-enabled",
            ChangeKind::ServiceStarted => "service-started",
            ChangeKind::ServiceRestarted => "service-restarted",
        }
    }
}

/// One change, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// What changed, in words (the journal's `MESSAGE`).
    pub message: String,
    /// What it was done to: packages, files, the unit, the module version.
    pub objects: Vec<String>,
}

/// The last run that changed something, as doctor shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub schema_version: u32,
    pub subcommand: String,
    /// Seconds since the epoch.
    pub finished_at: u64,
    pub exit_code: i32,
    /// The exit code's name (docs/exit-codes.md).
    pub outcome: String,
    pub changes: Vec<Change>,
}

struct Run {
    subcommand: String,
    root: Root,
    changes: Vec<Change>,
    /// A removal leaves no record behind (the journal still has it).
    keep_record: bool,
}

static RUN: Mutex<Option<Run>> = Mutex::new(None);

/// Starts the trail of one command on `root`.
pub fn begin(subcommand: &str, root: &Root) {
    *RUN.lock().unwrap_or_else(|e| e.into_inner()) = Some(Run {
        subcommand: subcommand.to_string(),
        root: root.clone(),
        changes: Vec::new(),
        keep_record: true,
    });
}

/// The connector is being removed: its last-run record goes, and this run
/// writes none back (its changes still go to the journal), so that the
/// package manager finds the state directory as it left it.
pub fn leave_no_record() {
    if let Some(r) = RUN.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        r.keep_record = false;
        if let Err(e) = crate::state::remove_in_root(&r.root, LAST_RUN) {
            log::debug!("could not remove {LAST_RUN}: {e:#}");
        }
    }
}

/// Records one change: to the journal (or syslog) now, and into the run's
/// last-run record at the end.
pub fn record(kind: ChangeKind, message: impl Into<String>, objects: Vec<String>) {
    let change = Change {
        kind,
        message: message.into(),
        objects,
    };
    let mut run = RUN.lock().unwrap_or_else(|e| e.into_inner());
    let (subcommand, root) = match run.as_ref() {
        Some(r) => (r.subcommand.clone(), r.root.path().display().to_string()),
        // A library caller that began no run: the trail still goes out.
        None => ("library".to_string(), String::new()),
    };
    send(&change, &subcommand, &root);
    if let Some(r) = run.as_mut() {
        r.changes.push(change);
    }
}

/// Ends the run (whatever its exit code, errors included): when it changed
/// something, the last-run record is written into its root (best effort).
/// A removal leaves none ([`leave_no_record`]).
pub fn finish(exit_code: i32) {
    let Some(run) = RUN.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    if run.changes.is_empty() || !run.keep_record {
        return;
    }
    let root = &run.root;
    let record = LastRun {
        schema_version: 1,
        subcommand: run.subcommand,
        finished_at: connector_host::time::now(),
        exit_code,
        outcome: crate::exit::name(exit_code).to_string(),
        changes: run.changes,
    };
    let written = crate::state::state_file(root, LAST_RUN).and_then(|path| {
        let json = serde_json::to_vec_pretty(&record)?;
        Ok(connector_host::atomic::write(&path, &json, 0o640, None)?)
    });
    if let Err(e) = written {
        log::debug!("could not record the run in {LAST_RUN}: {e:#}");
    }
}

/// The root's last-run record; `Ok(None)` when none was written.
pub fn last_run(root: &Root) -> anyhow::Result<Option<LastRun>> {
    let Some(text) = root.read_to_string_optional(LAST_RUN)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{LAST_RUN} is not a last-run record: {e}"))
}

fn socket(default: &str, _test_env: &str) -> PathBuf {
    #[cfg(feature = "fault-injection")]
    if let Some(p) = std::env::var_os(_test_env) {
        return p.into();
    }
    PathBuf::from(default)
}

/// One field in the journal's native protocol: `KEY=value\n`, or the
/// binary form when the value holds a newline.
fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    if value.contains('\n') {
        out.extend_from_slice(key.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    } else {
        let _ = writeln!(out, "{key}={value}");
    }
}

/// The entry as the journal takes it.
fn journal_entry(c: &Change, subcommand: &str, root: &str) -> Vec<u8> {
    let mut e = Vec::new();
    field(&mut e, "MESSAGE", &c.message);
    field(&mut e, "MESSAGE_ID", c.kind.message_id());
    // notice: a change an administrator may want to find again.
    field(&mut e, "PRIORITY", "5");
    field(&mut e, "SYSLOG_IDENTIFIER", "connector-installer");
    field(&mut e, "CONNECTOR_CHANGE", c.kind.name());
    field(&mut e, "CONNECTOR_SUBCOMMAND", subcommand);
    field(&mut e, "CONNECTOR_ROOT", root);
    for o in &c.objects {
        field(&mut e, "CONNECTOR_OBJECT", o);
    }
    e
}

/// The same as one syslog line (daemon.notice), for hosts without a journal.
fn syslog_line(c: &Change, subcommand: &str, root: &str) -> Vec<u8> {
    format!(
        "<29>connector-installer[{}]: {} MESSAGE_ID={} CONNECTOR_CHANGE={} CONNECTOR_SUBCOMMAND={} \
         CONNECTOR_ROOT={}",
        std::process::id(),
        c.message.replace('\n', " "),
        c.kind.message_id(),
        c.kind.name(),
        subcommand,
        root
    )
    .into_bytes()
}

fn send(c: &Change, subcommand: &str, root: &str) {
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    #[cfg(feature = "fault-injection")]
    let (journal_env, syslog_env) = (TEST_JOURNAL_ENV, TEST_SYSLOG_ENV);
    #[cfg(not(feature = "fault-injection"))]
    let (journal_env, syslog_env) = ("", "");
    let journal = socket(JOURNAL_SOCKET, journal_env);
    match sock.send_to(&journal_entry(c, subcommand, root), &journal) {
        Ok(_) => return,
        Err(e) => log::debug!("no journal at {}: {e}", journal.display()),
    }
    let syslog = socket(SYSLOG_SOCKET, syslog_env);
    if let Err(e) = sock.send_to(&syslog_line(c, subcommand, root), &syslog) {
        log::debug!(
            "no syslog at {} either: {e}; change not recorded",
            syslog.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_distinct_128_bit_hex() {
        let ids: std::collections::BTreeSet<&str> =
            ChangeKind::ALL.iter().map(|k| k.message_id()).collect();
        assert_eq!(ids.len(), ChangeKind::ALL.len());
        assert!(ids
            .iter()
            .all(|i| i.len() == 32 && i.chars().all(|c| c.is_ascii_hexdigit())));
    }

    #[test]
    fn a_value_with_a_newline_uses_the_binary_form() {
        let mut e = Vec::new();
        field(&mut e, "MESSAGE", "a\nb");
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(e, want);
    }
}
