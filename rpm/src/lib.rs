//! The RPM-family backend: RHEL, CentOS, Rocky, AlmaLinux, Oracle Linux and
//! Amazon Linux, through the real `rpm`, `dnf` and `yum`.
//!
//! The database is always named explicitly (`--root R --dbpath D`): Debian's
//! own rpm defaults to `~/.rpmdb`, and a `/var/lib/rpm` that is an absolute
//! symlink inside an image would otherwise be followed on the host. `D` is
//! resolved inside the root first (`/usr/lib/sysimage/rpm` on newer systems,
//! `/var/lib/rpm` elsewhere).

use std::collections::BTreeMap;
use std::path::PathBuf;

use connector_host::cmd::{shell_join, Cmd};
use connector_host::os::{Family, PkgTool};
use connector_host::pkg::{BackendError, DbQuery, PackageBackend};
use connector_host::Root;

/// Where rpm keeps its database, newest layout first.
const DB_PATHS: &[&str] = &["/usr/lib/sysimage/rpm", "/var/lib/rpm"];
/// Files that mark a database: sqlite (EL9+, Fedora), BerkeleyDB (EL7/EL8,
/// Amazon Linux 2), ndb (SUSE; listed so it is not mistaken for "none").
const DB_FILES: &[&str] = &["rpmdb.sqlite", "Packages", "Packages.db"];

/// The RPM family for one root.
#[derive(Debug, Clone)]
pub struct RpmBackend {
    root: Root,
    tool: PkgTool,
}

impl RpmBackend {
    /// A backend for `root`, whose administrators install with `tool`
    /// (`dnf` or `yum`).
    pub fn new(root: Root, tool: PkgTool) -> Self {
        RpmBackend { root, tool }
    }

    /// The database directory inside the root, if the root has one.
    pub fn dbpath(&self) -> std::io::Result<Option<PathBuf>> {
        for candidate in DB_PATHS {
            let Ok(dir) = self.root.resolve_in_root(candidate) else {
                continue;
            };
            for file in DB_FILES {
                if self.root.is_file(dir.join(file))? {
                    return Ok(Some(dir));
                }
            }
        }
        Ok(None)
    }

    fn rpm(&self, desc: &str, dbpath: &std::path::Path) -> Cmd {
        Cmd::new("rpm", desc)
            .arg("--root")
            .arg(self.root.path())
            .arg("--dbpath")
            .arg(dbpath)
            .missing_hint("install the rpm package; on Debian/Ubuntu: apt-get install rpm")
    }
}

impl PackageBackend for RpmBackend {
    fn family(&self) -> Family {
        Family::Rpm
    }

    fn query_installed(&self, packages: &[String]) -> Result<DbQuery, BackendError> {
        let dbpath = self.dbpath().map_err(|e| BackendError::Parse {
            tool: "rpm".into(),
            detail: format!("looking for the rpm database: {e}"),
        })?;
        let Some(dbpath) = dbpath else {
            return Ok(DbQuery::NoDatabase);
        };
        if packages.is_empty() {
            return Ok(DbQuery::Answer(BTreeMap::new()));
        }
        let cmd = self
            .rpm("Querying the rpm database", &dbpath)
            .args(["-q", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"])
            .args(packages);
        let out = cmd.output()?;
        // rpm exits with the number of packages not installed; real errors
        // (unreadable database) say "error:" on stderr.
        if out.stderr.lines().any(|l| l.starts_with("error:")) {
            return Err(cmd.failed(&out).into());
        }
        let installed: Vec<&str> = out.stdout.lines().map(str::trim).collect();
        let mut answer = BTreeMap::new();
        for p in packages {
            let is = installed.contains(&p.as_str());
            let not = out
                .stdout
                .lines()
                .any(|l| l.trim() == format!("package {p} is not installed"));
            if is == not {
                return Err(BackendError::Parse {
                    tool: cmd.cmdline(),
                    detail: format!("no clear answer for {p} in {:?}", out.stdout),
                });
            }
            answer.insert(p.clone(), is);
        }
        Ok(DbQuery::Answer(answer))
    }

    fn install_command(&self, packages: &[String], reinstall: bool) -> String {
        let mut words = vec![self.tool.command().to_string()];
        if !self.root.is_live() {
            words.push(format!("--installroot={}", self.root.path().display()));
        }
        words.push(if reinstall { "reinstall" } else { "install" }.into());
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
        let live = RpmBackend::new(Root::live(), PkgTool::Dnf);
        assert_eq!(
            live.install_command(
                &["kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64".into()],
                false
            ),
            "dnf install -y kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64"
        );
        let dir = tempfile::tempdir().unwrap();
        let image = RpmBackend::new(Root::new(dir.path()).unwrap(), PkgTool::Yum);
        let cmd = image.install_command(&["kernel-devel-5.10.1-1.amzn2.x86_64".into()], true);
        assert!(cmd.starts_with("yum --installroot=/"), "{cmd}");
        assert!(
            cmd.ends_with(" reinstall -y kernel-devel-5.10.1-1.amzn2.x86_64"),
            "{cmd}"
        );
    }

    #[test]
    fn no_database_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let b = RpmBackend::new(Root::new(dir.path()).unwrap(), PkgTool::Dnf);
        assert_eq!(
            b.query_installed(&["x".into()]).unwrap(),
            DbQuery::NoDatabase
        );
    }
}
