//! Every path the connector owns on a host, defined once. The installer
//! (lay-down, state, uninstall, doctor), the SELinux module's labeling, the
//! packages and the connector daemon all take their paths from here; the
//! module's file contexts (`policy/connectord.cil`) name the same ones,
//! checked by the policy tests.

/// The connector's programs.
pub const OPT_DIR: &str = "/opt/connector";
pub const BIN_DIR: &str = "/opt/connector/bin";
/// The daemon (its presence means "the connector is laid down").
pub const CONNECTORD: &str = "/opt/connector/bin/connectord";
pub const INSTALLER: &str = "/opt/connector/bin/connector-installer";

/// Configuration (kept when changed by the administrator).
pub const CONF_DIR: &str = "/etc/connector";
pub const CONNECTOR_CONF: &str = "/etc/connector/connector.conf";
/// The vendor-archive list (docs/headers.md).
pub const ARCHIVES_CONF: &str = "/etc/connector/archives.conf";

/// State: the daemon's and the installer's.
pub const STATE_DIR: &str = "/var/lib/connector";
/// The daemon's status, read by doctor and repair.
pub const STATUS: &str = "/var/lib/connector/status.json";
/// The daemon's identity (per host: cleared in golden images).
pub const AGENT_ID: &str = "/var/lib/connector/agent-id";
/// The daemon's compiled eBPF probes: one object per kernel release and
/// probe source, with the list of files it was compiled from.
pub const PROBE_CACHE: &str = "/var/lib/connector/probe";
/// What the last lay-down shipped (the manifest).
pub const INSTALL_RECORD: &str = "/var/lib/connector/installed.manifest";
/// The identity and digest of each file laid down when last seen, so that a
/// re-run need not hash them again.
pub const INSTALL_STAMPS: &str = "/var/lib/connector/installed.stamps";
/// The labels the root's file contexts give the connector's paths, while
/// those files are unchanged, so that judging labels needs no selabel.
pub const LABEL_CACHE: &str = "/var/lib/connector/labels.cache";
/// The package database's last answer about the kernels' owners, while the
/// database is unchanged, so that a diagnosis runs no package tool.
pub const DATABASE_CACHE: &str = "/var/lib/connector/database.cache";
/// One installer at a time.
pub const INSTALLER_LOCK: &str = "/var/lib/connector/installer.lock";
/// The step journal of a running (or interrupted) install.
pub const JOURNAL: &str = "/var/lib/connector/install.journal";
/// Work a package hook deferred to after its transaction.
pub const PENDING: &str = "/var/lib/connector/pending";
/// A rejection of the SELinux module by the base policy.
pub const MODULE_FAILURE: &str = "/var/lib/connector/selinux-module.failed";
/// The last installer run that changed something (the audit trail's).
pub const LAST_RUN: &str = "/var/lib/connector/last-run.json";

/// The installer's own bookkeeping in the state directory: written and
/// read by the (unconfined) installer only, so their labels do not matter.
pub const BOOKKEEPING: &[&str] = &[
    INSTALLER_LOCK,
    JOURNAL,
    PENDING,
    LAST_RUN,
    MODULE_FAILURE,
    INSTALL_STAMPS,
    LABEL_CACHE,
    DATABASE_CACHE,
];

/// Logs.
pub const LOG_DIR: &str = "/var/log/connector";

/// Licence files of the `.rpm` (`%license`): THIRD-PARTY-NOTICES.
pub const RPM_LICENSE_DIR: &str = "/usr/share/licenses/connector";
/// The public key the `.rpm` is signed with, where yum's `gpgkey=` and
/// `rpm --import` take it from (signed builds ship it).
pub const RPM_KEY: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-connector";
/// The same key for apt's `signed-by=` (armored).
pub const DEB_KEYRING: &str = "/usr/share/keyrings/connector-archive-keyring.asc";

/// The directories the connector owns (their modes are its own; the system
/// directories on the way to them are never touched).
pub const OWNED_DIRS: &[&str] = &[OPT_DIR, CONF_DIR, STATE_DIR, LOG_DIR];

/// What the SELinux module labels (relabeled after it is installed).
pub const LABELED: &[&str] = &[CONNECTORD, STATE_DIR, LOG_DIR, CONF_DIR];

/// Per-host state a golden image must not carry.
pub const PER_HOST_STATE: &[&str] = &[AGENT_ID, STATUS, PENDING];

/// The units.
pub const UNIT: &str = "connectord.service";
pub const SETUP_UNIT: &str = "connector-setup.service";
/// The fleet metrics (docs/metrics.md): shipped, disabled.
pub const METRICS_UNIT: &str = "connector-metrics.service";
pub const METRICS_TIMER: &str = "connector-metrics.timer";
/// Every unit the packages ship.
pub const UNITS: &[&str] = &[UNIT, SETUP_UNIT, METRICS_UNIT, METRICS_TIMER];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_below_its_directory() {
        for p in [CONNECTORD, INSTALLER] {
            assert!(p.starts_with(&format!("{BIN_DIR}/")), "{p}");
        }
        assert!(BIN_DIR.starts_with(&format!("{OPT_DIR}/")));
        for p in [CONNECTOR_CONF, ARCHIVES_CONF] {
            assert!(p.starts_with(&format!("{CONF_DIR}/")), "{p}");
        }
        for p in [
            STATUS,
            AGENT_ID,
            INSTALL_RECORD,
            INSTALL_STAMPS,
            LABEL_CACHE,
            DATABASE_CACHE,
            INSTALLER_LOCK,
            JOURNAL,
            PENDING,
            MODULE_FAILURE,
            LAST_RUN,
        ] {
            assert!(p.starts_with(&format!("{STATE_DIR}/")), "{p}");
        }
        for p in LABELED.iter().chain(PER_HOST_STATE) {
            assert!(
                OWNED_DIRS
                    .iter()
                    .any(|d| p == d || p.starts_with(&format!("{d}/"))),
                "{p}"
            );
        }
    }
}
