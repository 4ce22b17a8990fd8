//! The Debian-family backend: Debian and Ubuntu, through the real
//! `dpkg-query` and `apt-get`.
//!
//! The database is named explicitly (`dpkg-query --admindir=R/var/lib/dpkg`,
//! resolved inside the root), so inspecting an image never reads the host's.

use std::collections::BTreeMap;

use connector_host::cmd::{shell_join, Cmd};
use connector_host::os::Family;
use connector_host::pkg::{BackendError, DbQuery, PackageBackend};
use connector_host::Root;

/// The Debian family for one root.
#[derive(Debug, Clone)]
pub struct DebBackend {
    root: Root,
}

impl DebBackend {
    pub fn new(root: Root) -> Self {
        DebBackend { root }
    }
}

impl PackageBackend for DebBackend {
    fn family(&self) -> Family {
        Family::Deb
    }

    fn query_installed(&self, packages: &[String]) -> Result<DbQuery, BackendError> {
        let admindir = match self.root.resolve_optional("/var/lib/dpkg") {
            Ok(Some(dir)) if dir.join("status").is_file() => dir,
            Ok(_) => return Ok(DbQuery::NoDatabase),
            Err(e) => {
                return Err(BackendError::Parse {
                    tool: "dpkg-query".into(),
                    detail: format!("looking for the dpkg database: {e}"),
                })
            }
        };
        if packages.is_empty() {
            return Ok(DbQuery::Answer(BTreeMap::new()));
        }
        let cmd = Cmd::new("dpkg-query", "Querying the dpkg database")
            .arg(format!("--admindir={}", admindir.display()))
            .args(["-W", "-f", "${Package}\\t${db:Status-Abbrev}\\n"])
            .args(packages)
            .missing_hint("install the dpkg package");
        let out = cmd.output()?;
        // Exit 1 with "no packages found matching" is an answer; anything
        // else on stderr is a failure.
        let odd_stderr = out
            .stderr
            .lines()
            .any(|l| !l.trim().is_empty() && !l.contains("no packages found matching"));
        if !matches!(out.code(), Some(0) | Some(1)) || odd_stderr {
            return Err(cmd.failed(&out).into());
        }
        let mut answer: BTreeMap<String, bool> =
            packages.iter().map(|p| (p.clone(), false)).collect();
        for line in out.stdout.lines() {
            let Some((name, abbrev)) = line.split_once('\t') else {
                continue;
            };
            // db:Status-Abbrev: want, status, error. Status `i` = installed.
            let installed = abbrev.as_bytes().get(1) == Some(&b'i');
            if let Some(slot) = answer.get_mut(name) {
                *slot |= installed;
            }
        }
        Ok(DbQuery::Answer(answer))
    }

    fn install_command(&self, packages: &[String], reinstall: bool) -> String {
        let mut words: Vec<String> = Vec::new();
        if !self.root.is_live() {
            words.push("chroot".into());
            words.push(self.root.path().display().to_string());
        }
        words.push("apt-get".into());
        words.push("install".into());
        if reinstall {
            words.push("--reinstall".into());
        }
        words.push("-y".into());
        words.extend(packages.iter().cloned());
        shell_join(&words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_commands() {
        let live = DebBackend::new(Root::live());
        assert_eq!(
            live.install_command(&["linux-headers-6.1.0-18-amd64".into()], false),
            "apt-get install -y linux-headers-6.1.0-18-amd64"
        );
        assert_eq!(
            live.install_command(&["linux-headers-6.1.0-18-amd64".into()], true),
            "apt-get install --reinstall -y linux-headers-6.1.0-18-amd64"
        );
    }

    #[test]
    fn no_database_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let b = DebBackend::new(Root::new(dir.path()).unwrap());
        assert_eq!(
            b.query_installed(&["x".into()]).unwrap(),
            DbQuery::NoDatabase
        );
    }
}
