//! The connector's systemd units: enable, start, restart, stop, and the
//! one-shot job that finishes a package hook's work after the transaction.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use connector_host::layout::UNIT;
use connector_host::{Cmd, Root};

/// systemd is running this root (a booted host, not a chroot or an image).
pub fn systemd_running(root: &Root) -> bool {
    root.is_live() && Path::new("/run/systemd/system").is_dir()
}

/// The unit is enabled (its multi-user.target.wants link exists).
pub fn enabled(root: &Root, unit: &str) -> bool {
    root.read_link_optional(format!(
        "/etc/systemd/system/multi-user.target.wants/{unit}"
    ))
    .ok()
    .flatten()
    .is_some()
}

/// The unit file is installed in the root.
pub fn unit_installed(root: &Root, unit: &str) -> bool {
    [
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
        "/etc/systemd/system",
    ]
    .iter()
    .any(|d| root.exists(format!("{d}/{unit}")).unwrap_or(false))
}

/// `systemctl is-active UNIT` on a running systemd.
pub fn active(root: &Root, unit: &str) -> bool {
    systemd_running(root)
        && Cmd::new("systemctl", "Asking systemd for the connector's state")
            .args(["is-active", "--quiet", unit])
            .timeout(Duration::from_secs(30))
            .run()
            .is_ok()
}

/// What `systemctl --root` opens in an image (unit directories, the
/// `wants` links it writes, presets).
pub const SYSTEMCTL_PATHS: &[&str] = &[
    "/etc/systemd/system/multi-user.target.wants",
    "/etc/systemd/system/timers.target.wants",
    "/etc/systemd/system-preset",
    "/usr/lib/systemd/system",
    "/usr/lib/systemd/system-preset",
    "/lib/systemd/system",
];

/// `systemctl ARGS…` (with `--root` for an image); returns the command line.
pub fn systemctl(root: &Root, args: &[&str], what: &str) -> Result<String> {
    let mut cmd = Cmd::new("systemctl", what)
        .timeout(Duration::from_secs(120))
        .missing_hint("systemd is needed to run the connector as a service");
    if !systemd_running(root) {
        root.check_tool_paths(SYSTEMCTL_PATHS)?;
        cmd = cmd.arg(format!("--root={}", root.path().display()));
    }
    let cmd = cmd.args(args);
    cmd.run()?;
    Ok(cmd.cmdline())
}

/// Stops (on a running systemd) and disables the connector, and the
/// metrics timer when an administrator enabled it.
pub fn stop_and_disable(root: &Root) -> Result<String> {
    let now = systemd_running(root);
    let args: &[&str] = if now {
        &["disable", "--now", UNIT]
    } else {
        &["disable", UNIT]
    };
    let done = systemctl(root, args, "Stopping and disabling the connector")?;
    let timer = connector_host::layout::METRICS_TIMER;
    let wants = format!("/etc/systemd/system/timers.target.wants/{timer}");
    if root.read_link_optional(&wants).ok().flatten().is_some() {
        let args: &[&str] = if now {
            &["disable", "--now", timer]
        } else {
            &["disable", timer]
        };
        // The metrics are not the connector: a failure is only a warning.
        if let Err(e) = systemctl(root, args, "Disabling the connector's metrics timer") {
            log::warn!("{e:#}");
        }
    }
    Ok(done)
}

/// Enables the connector's unit without starting anything: `systemctl
/// enable` on the live root, `systemctl --root=ROOT enable` in an image.
/// Returns the command run, or `None` when the unit is already enabled.
pub fn enable_unit(root: &Root, unit: &str) -> Result<Option<String>> {
    let wants = format!("/etc/systemd/system/multi-user.target.wants/{unit}");
    if root.read_link_optional(&wants)?.is_some() {
        return Ok(None);
    }
    let mut cmd = Cmd::new("systemctl", format!("Enabling {unit}"))
        .missing_hint("systemd is needed to run the connector as a service");
    if !root.is_live() {
        root.check_tool_paths(SYSTEMCTL_PATHS)?;
        cmd = cmd.arg(format!("--root={}", root.path().display()));
    }
    let cmd = cmd.args(["enable", unit]);
    cmd.run()?;
    crate::state::audit::record(
        crate::state::audit::ChangeKind::ServiceEnabled,
        format!("enabled {unit}"),
        vec![unit.to_string()],
    );
    Ok(Some(cmd.cmdline()))
}
