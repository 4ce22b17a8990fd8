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

use crate::selinux;

/// What a scriptlet invocation means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// First install or upgrade: configure.
    Configure,
    /// Before removal (not upgrade): stop and disable.
    BeforeRemove,
    /// After removal (not upgrade): remove the module.
    AfterRemove { purge: bool },
    /// Anything else (upgrade halves, posttrans, failed-upgrade, …).
    Nothing,
}

/// Reads the scriptlet's arguments the way rpm and dpkg pass them.
pub fn phase(name: &str, args: &[String]) -> Result<Phase, String> {
    let first = args.first().map(String::as_str);
    let count = || first.and_then(|a| a.parse::<u32>().ok());
    Ok(match name {
        // rpm: $1 = number of instances left after the operation.
        "rpm-post" => Phase::Configure,
        "rpm-preun" if count() == Some(0) => Phase::BeforeRemove,
        "rpm-postun" if count() == Some(0) => Phase::AfterRemove { purge: false },
        "rpm-preun" | "rpm-postun" | "rpm-posttrans" => Phase::Nothing,
        // dpkg: $1 = the action.
        "deb-postinst" if first == Some("configure") => Phase::Configure,
        "deb-prerm" if first == Some("remove") => Phase::BeforeRemove,
        "deb-postrm" if first == Some("remove") => Phase::AfterRemove { purge: false },
        "deb-postrm" if first == Some("purge") => Phase::AfterRemove { purge: true },
        "deb-postinst" | "deb-prerm" | "deb-postrm" => Phase::Nothing,
        other => return Err(format!("unknown hook {other:?}")),
    })
}

fn warn(msg: &str) {
    eprintln!("connector-installer: warning: {msg}");
}

/// Runs a hook; always returns 0.
pub fn run(name: &str, args: &[String], root: &Root) -> i32 {
    // Our scriptlets set this; make sure everything below sees it.
    std::env::set_var(IN_TRANSACTION_ENV, "1");
    let phase = match phase(name, args) {
        Ok(p) => p,
        Err(e) => {
            warn(&e);
            return 0;
        }
    };
    eprintln!(
        "connector-installer: hook {name} {}: {phase:?}",
        args.join(" ")
    );
    match phase {
        Phase::Configure => configure(root),
        Phase::BeforeRemove => systemctl(root, &["disable", "--now", "connectord.service"]),
        Phase::AfterRemove { purge } => {
            match selinux::remove(root, Duration::from_secs(60)) {
                Ok(r) => {
                    for c in r.commands {
                        eprintln!("connector-installer: ran: {c}");
                    }
                }
                Err(e) => warn(&format!("removing the SELinux module: {e:#}")),
            }
            if purge {
                for dir in ["/var/lib/connector", "/var/log/connector"] {
                    let host = root.host_path(dir);
                    if let Err(e) = std::fs::remove_dir_all(&host) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            warn(&format!("removing {dir}: {e}"));
                        }
                    }
                }
            }
        }
        Phase::Nothing => {}
    }
    0
}

fn configure(root: &Root) {
    match selinux::install(root, Duration::from_secs(120)) {
        Ok(r) => {
            for c in r.commands {
                eprintln!("connector-installer: ran: {c}");
            }
        }
        Err(e) => warn(&format!(
            "the SELinux module could not be installed: {e:#}; the connector's eBPF probes may be refused \
             (fault 11); run `connector-installer selinux install` once this is fixed"
        )),
    }
    systemctl(root, &["enable", "connectord.service"]);
    let rootarg = if root.is_live() {
        String::new()
    } else {
        format!(" --root {}", root.path().display())
    };
    eprintln!(
        "connector-installer: the kernel headers cannot be installed from inside the package transaction; \
         run `connector-installer headers{rootarg}` after it (or `connector-installer doctor` to check)"
    );
}

fn systemctl(root: &Root, args: &[&str]) {
    let mut cmd = connector_host::Cmd::new("systemctl", "Managing connectord.service")
        .timeout(Duration::from_secs(60));
    if !root.is_live() {
        cmd = cmd.arg(format!("--root={}", root.path().display()));
        // --now has no meaning for an image.
        cmd = cmd.args(args.iter().filter(|a| **a != "--now"));
    } else {
        // Not booted with systemd (container, chroot): nothing to manage.
        if !std::path::Path::new("/run/systemd/system").is_dir() {
            let offline: Vec<&&str> = args.iter().filter(|a| **a != "--now").collect();
            cmd = cmd.arg("--root=/").args(offline);
        } else {
            cmd = cmd.args(args);
        }
    }
    match cmd.run() {
        Ok(_) => eprintln!("connector-installer: ran: {}", cmd.cmdline()),
        Err(e) => warn(&format!("{e}")),
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
        assert_eq!(phase("rpm-post", &a(&["1"])), Ok(Phase::Configure));
        assert_eq!(phase("rpm-post", &a(&["2"])), Ok(Phase::Configure));
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
            Ok(Phase::Configure)
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
        assert!(phase("bogus", &[]).is_err());
    }
}
