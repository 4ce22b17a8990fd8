//! `connector-installer hook NAME ARGS…`: what the connector's package
//! scriptlets call, with the scriptlet's own arguments.
//!
//! A hook never breaks the package transaction: every problem is a warning
//! on stderr and the exit status is 0. Inside the transaction it only does
//! what is safe there — the SELinux module, labels, enabling the unit — and
//! never calls the package manager: the header installation is reported as
//! deferred, with the command to run once the transaction is over.

use std::time::Duration;

use connector_host::lock::IN_TRANSACTION_ENV;
use connector_host::Root;

use crate::install::selinux;
use crate::install::service;
use crate::install::{self, InstallOptions};
use crate::state;

/// What a scriptlet invocation means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// First install (`upgrade: false`) or upgrade: configure.
    Configure { upgrade: bool },
    /// Before removal (not upgrade): stop and disable.
    BeforeRemove,
    /// After removal (not upgrade): remove the module.
    AfterRemove { purge: bool },
    /// A kernel was installed: its headers are needed before it boots.
    KernelAdded { release: String },
    /// Anything else (upgrade halves, posttrans, failed-upgrade, …).
    Nothing,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Configure { upgrade: false } => f.write_str("configure (first install)"),
            Phase::Configure { upgrade: true } => f.write_str("configure (upgrade)"),
            Phase::BeforeRemove => f.write_str("before removal: stop and disable"),
            Phase::AfterRemove { purge: false } => f.write_str("after removal"),
            Phase::AfterRemove { purge: true } => f.write_str("after removal (purge)"),
            Phase::KernelAdded { release } => write!(f, "kernel {release} added"),
            Phase::Nothing => f.write_str("nothing to do"),
        }
    }
}

/// Reads the scriptlet's arguments the way rpm, dpkg, run-parts
/// (`/etc/kernel/postinst.d`) and kernel-install pass them.
pub fn phase(name: &str, args: &[String]) -> Result<Phase, String> {
    let first = args.first().map(String::as_str);
    let second = args.get(1).map(String::as_str);
    let count = || first.and_then(|a| a.parse::<u32>().ok());
    Ok(match name {
        // rpm: $1 = number of instances left after the operation.
        "rpm-post" => Phase::Configure {
            upgrade: count().is_some_and(|n| n > 1),
        },
        "rpm-preun" if count() == Some(0) => Phase::BeforeRemove,
        "rpm-postun" if count() == Some(0) => Phase::AfterRemove { purge: false },
        "rpm-preun" | "rpm-postun" | "rpm-posttrans" => Phase::Nothing,
        // dpkg: $1 = the action; configure's $2 = the version configured before.
        "deb-postinst" if first == Some("configure") => Phase::Configure {
            upgrade: second.is_some_and(|v| !v.is_empty()),
        },
        "deb-prerm" if first == Some("remove") => Phase::BeforeRemove,
        "deb-postrm" if first == Some("remove") => Phase::AfterRemove { purge: false },
        "deb-postrm" if first == Some("purge") => Phase::AfterRemove { purge: true },
        "deb-postinst" | "deb-prerm" | "deb-postrm" => Phase::Nothing,
        // /etc/kernel/postinst.d/connector VERSION [IMAGE]
        "kernel-postinst" => match first {
            Some(v) if valid_release(v) => Phase::KernelAdded { release: v.into() },
            _ => return Err(format!("kernel-postinst: bad kernel version {first:?}")),
        },
        // kernel-install plugin: COMMAND VERSION ENTRY-DIR IMAGE
        "kernel-install" if first == Some("add") => match second {
            Some(v) if valid_release(v) => Phase::KernelAdded { release: v.into() },
            _ => return Err(format!("kernel-install: bad kernel version {second:?}")),
        },
        "kernel-install" => Phase::Nothing,
        other => return Err(format!("unknown hook {other:?}")),
    })
}

/// A kernel release as it may appear in a path: no `/`, no leading `.`.
fn valid_release(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('.')
        && v.len() < 200
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
}

fn warn(msg: &str) {
    eprintln!("connector-installer: warning: {msg}");
}

fn say(msg: &str) {
    crate::output::say(msg);
}

/// Runs a hook; always returns 0.
pub fn run(name: &str, args: &[String], root: &Root) -> i32 {
    let started = std::time::Instant::now();
    // Our scriptlets set this; make sure everything below sees it.
    std::env::set_var(IN_TRANSACTION_ENV, "1");
    let phase = match phase(name, args) {
        Ok(p) => p,
        Err(e) => {
            warn(&e);
            return 0;
        }
    };
    say(&format!("hook {name} {}: {phase}", args.join(" ")));
    match phase {
        Phase::Configure { upgrade } => configure(root, upgrade),
        // Before the files go (postrm/%postun run without them): stop,
        // disable, then remove the module the stopped service needed.
        Phase::BeforeRemove => {
            crate::state::audit::leave_no_record();
            match service::stop_and_disable(root) {
                Ok(c) => say(&format!("ran: {c}")),
                Err(e) => warn(&format!("{e:#}")),
            }
            match selinux::remove(root, Duration::from_secs(60), false) {
                Ok(r) => {
                    for c in r.commands {
                        say(&format!("ran: {c}"));
                    }
                }
                Err(e) => warn(&format!("removing the SELinux module: {e:#}")),
            }
        }
        // Only reached where the binary outlives its package (a copy run
        // by hand): the packages' own postrm/%postun need no installer.
        Phase::AfterRemove { purge } => {
            crate::state::audit::leave_no_record();
            if purge {
                for dir in [
                    connector_host::layout::STATE_DIR,
                    connector_host::layout::LOG_DIR,
                ] {
                    if let Err(e) = state::remove_in_root(root, dir) {
                        warn(&format!("{e:#}"));
                    }
                }
            }
        }
        Phase::KernelAdded { release } => kernel_added(root, &release),
        Phase::Nothing => {}
    }
    say(&format!(
        "hook {name} done in {} ms",
        started.elapsed().as_millis()
    ));
    0
}

/// Inside the transaction: the module, labels, enable (and start on a
/// running systemd, without waiting); the headers are deferred.
fn configure(root: &Root, upgrade: bool) {
    let running = if root.is_live() {
        connector_host::inventory::running_release().ok()
    } else {
        None
    };
    let mut opts = InstallOptions::new(root.clone(), running);
    opts.in_transaction = true;
    opts.restart = upgrade;
    opts.lock_timeout = Duration::from_secs(60);
    match install::run(&opts, &mut |l| say(l)) {
        Ok(r) => {
            for x in &r.results {
                for c in &x.commands {
                    say(&format!("ran: {c}"));
                }
                match x.state {
                    install::StepState::Failed => warn(&format!(
                        "{}: {}; run `connector-installer repair` once this is fixed",
                        x.step.name(),
                        x.detail
                    )),
                    install::StepState::Deferred => say(&format!("headers deferred: {}", x.detail)),
                    _ => {}
                }
            }
            for n in &r.notes {
                say(&format!("note: {n}"));
            }
        }
        Err(e) => {
            if e.downcast_ref::<state::StateError>().is_some() {
                // Another installer holds our lock: waiting here could
                // deadlock on the package lock we are inside of.
                warn(&format!("{e:#}"));
            } else {
                warn(&format!(
                    "{e:#}; the connector may raise fault 11 until `connector-installer repair` runs"
                ));
            }
            if let Err(e) = state::record_pending(root, "install") {
                warn(&format!(
                    "recording the deferred work failed ({e:#}); doctor will not show it: run \
                     `connector-installer install` after this transaction"
                ));
            }
            match install::defer(root) {
                Ok(how) => say(&how),
                Err(e) => warn(&format!("{e:#}")),
            }
        }
    }
}

/// A kernel package is being installed: its headers follow after the
/// transaction, before the reboot into it.
fn kernel_added(root: &Root, release: &str) {
    if !root
        .exists(connector_host::layout::CONNECTORD)
        .unwrap_or(false)
    {
        return;
    }
    // Headers already there (installed with the kernel, or a reinstall of
    // it): nothing to defer, no job to start.
    let on_disk = connector_host::headers::check(root, release);
    if let (true, Some(tree)) = (on_disk.present, &on_disk.path) {
        say(&format!(
            "the headers of kernel {release} are already installed ({tree}): nothing to do"
        ));
        return;
    }
    if let Err(e) = state::record_pending(root, &format!("headers {release}")) {
        warn(&format!(
            "recording the pending headers of {release} failed ({e:#}); doctor will not show \
             them: run `connector-installer headers --kernel {release}` before rebooting into it"
        ));
    }
    match install::defer(root) {
        Ok(how) => say(&format!("the headers of kernel {release}: {how}")),
        Err(e) => warn(&format!(
            "{e:#}; run `connector-installer headers --kernel {release}` before rebooting into it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scriptlet_arguments() {
        assert_eq!(
            phase("rpm-post", &a(&["1"])),
            Ok(Phase::Configure { upgrade: false })
        );
        assert_eq!(
            phase("rpm-post", &a(&["2"])),
            Ok(Phase::Configure { upgrade: true })
        );
        assert_eq!(phase("rpm-preun", &a(&["0"])), Ok(Phase::BeforeRemove));
        assert_eq!(
            phase("rpm-preun", &a(&["1"])),
            Ok(Phase::Nothing),
            "upgrade"
        );
        assert_eq!(
            phase("rpm-postun", &a(&["0"])),
            Ok(Phase::AfterRemove { purge: false })
        );
        assert_eq!(phase("rpm-postun", &a(&["1"])), Ok(Phase::Nothing));
        assert_eq!(
            phase("deb-postinst", &a(&["configure", "1.0-1"])),
            Ok(Phase::Configure { upgrade: true })
        );
        assert_eq!(
            phase("deb-postinst", &a(&["abort-upgrade", "1.0-1"])),
            Ok(Phase::Nothing)
        );
        assert_eq!(phase("deb-prerm", &a(&["remove"])), Ok(Phase::BeforeRemove));
        assert_eq!(
            phase("deb-prerm", &a(&["upgrade", "1.1-1"])),
            Ok(Phase::Nothing)
        );
        assert_eq!(
            phase("deb-postrm", &a(&["purge"])),
            Ok(Phase::AfterRemove { purge: true })
        );
        assert_eq!(
            phase("deb-postinst", &a(&["configure", ""])),
            Ok(Phase::Configure { upgrade: false })
        );
        assert!(phase("bogus", &[]).is_err());
        let k = "6.1.0-18-amd64";
        assert_eq!(
            phase("kernel-postinst", &a(&[k, "/boot/vmlinuz-6.1.0-18-amd64"])),
            Ok(Phase::KernelAdded { release: k.into() })
        );
        assert_eq!(
            phase(
                "kernel-install",
                &a(&["add", k, "/boot/x", "/boot/vmlinuz"])
            ),
            Ok(Phase::KernelAdded { release: k.into() })
        );
        assert_eq!(
            phase("kernel-install", &a(&["remove", k])),
            Ok(Phase::Nothing)
        );
        for bad in ["../../etc", "", ".hidden", "a/b"] {
            assert!(phase("kernel-postinst", &a(&[bad])).is_err(), "{bad:?}");
        }
    }
}
