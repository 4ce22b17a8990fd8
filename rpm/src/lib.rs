//! The RPM-family backend: RHEL, CentOS, Rocky, AlmaLinux, Oracle Linux and
//! Amazon Linux, through the real `rpm`, `dnf` and `yum`.
//!
//! The database is always named explicitly (`--root R --dbpath D`): Debian's
//! own rpm defaults to `~/.rpmdb`, and a `/var/lib/rpm` that is an absolute
//! symlink inside an image would otherwise be followed on the host. `D` is
//! resolved inside the root first (`/usr/lib/sysimage/rpm` on newer systems,
//! `/var/lib/rpm` elsewhere).

pub mod archive;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use connector_host::cmd::{shell_join, Cmd, Output};
use connector_host::os::{Family, PkgTool};
use connector_host::pkg::{
    BackendError, DbQuery, InstallError, InstallPlan, KernelFiles, KernelOwner, Owners,
    PackageBackend,
};
use connector_host::Root;
use tempfile::TempDir;

/// A package transaction may download and unpack hundreds of MB.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Where rpm keeps its database, newest layout first.
const DB_PATHS: &[&str] = &["/usr/lib/sysimage/rpm", "/var/lib/rpm"];
/// Files that mark a database: sqlite (EL9+, Fedora), BerkeleyDB (EL7/EL8,
/// Amazon Linux 2), ndb (SUSE; listed so it is not mistaken for "none").
const DB_FILES: &[&str] = &["rpmdb.sqlite", "Packages", "Packages.db"];

/// The RPM family for one root.
#[derive(Debug)]
pub struct RpmBackend {
    root: Root,
    tool: PkgTool,
    /// A private HOME whose `.rpmmacros` names the root's database, for
    /// dnf/yum working on another root (made on first use).
    macros_home: OnceLock<Result<TempDir, String>>,
    /// A private copy of an image's sqlite database that queries read
    /// (made on first use; `query_rpm`).
    query_copy: OnceLock<Result<TempDir, String>>,
}

impl RpmBackend {
    /// A backend for `root`, whose administrators install with `tool`
    /// (`dnf` or `yum`).
    pub fn new(root: Root, tool: PkgTool) -> Self {
        RpmBackend {
            root,
            tool,
            macros_home: OnceLock::new(),
            query_copy: OnceLock::new(),
        }
    }

    /// For another root, makes dnf/yum (through librpm) use the root's own
    /// database path. Their `--installroot` keeps the *host's* `_dbpath`
    /// macro, which on a Debian build host is `~/.rpmdb`: packages would be
    /// recorded in `ROOT/root/.rpmdb`, invisible to the image's rpm. librpm
    /// reads `~/.rpmmacros`, so a private HOME carries the right `_dbpath`.
    /// The live root keeps the system's own configuration.
    fn with_db_macros(&self, cmd: Cmd) -> Cmd {
        // `/` (live, or an image seen from its own chroot) keeps its
        // database where rpm looks by default.
        if self.root.path() == std::path::Path::new("/") {
            return cmd;
        }
        let home = self.macros_home.get_or_init(|| {
            let db = self
                .dbpath()
                .ok()
                .flatten()
                .unwrap_or_else(|| PathBuf::from("/var/lib/rpm"));
            let dir = tempfile::Builder::new()
                .prefix("connector-rpm-home-")
                .tempdir()
                .map_err(|e| format!("creating a private HOME for rpm macros: {e}"))?;
            std::fs::write(
                dir.path().join(".rpmmacros"),
                format!("%_dbpath {}\n", db.display()),
            )
            .map_err(|e| format!("writing .rpmmacros: {e}"))?;
            Ok(dir)
        });
        match home {
            Ok(dir) => cmd.env("HOME", dir.path()),
            Err(e) => {
                log::warn!("{e}; dnf may record packages outside the root's database");
                cmd
            }
        }
    }

    /// `dnf`/`yum` with the options every call carries: never prompt, never
    /// wait for another process's lock (field-notes §1: dnf inside dnf
    /// waits forever), the root.
    fn front_end(&self, desc: &str) -> Cmd {
        let cmd = self.front_end_plain(desc);
        self.with_db_macros(cmd)
    }

    fn front_end_plain(&self, desc: &str) -> Cmd {
        let exit_on_lock = match self.tool {
            PkgTool::Yum => "--setopt=exit_on_lock=1",
            _ => "--setopt=exit_on_lock=True",
        };
        let mut cmd = Cmd::new(self.tool.command(), desc)
            .arg("-y")
            .arg(exit_on_lock)
            .missing_hint(format!(
                "{} is the package manager of this system; install it or run on the system itself",
                self.tool.command()
            ));
        if !self.root.is_live() {
            cmd = cmd.arg(format!("--installroot={}", self.root.path().display()));
        }
        cmd
    }

    /// Repository sections of the root's `/etc/yum.repos.d/*.repo`:
    /// (id, enabled).
    fn configured_repos(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let Ok(names) = self.root.read_dir_names("/etc/yum.repos.d") else {
            return out;
        };
        for name in names {
            let name = name.to_string_lossy();
            if !name.ends_with(".repo") {
                continue;
            }
            let Ok(Some(text)) = self
                .root
                .read_to_string_optional(format!("/etc/yum.repos.d/{name}"))
            else {
                continue;
            };
            let mut current: Option<(String, bool)> = None;
            for line in text.lines() {
                let line = line.trim();
                if let Some(id) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    out.extend(current.take());
                    current = Some((id.trim().to_string(), true));
                } else if let Some((k, v)) = line.split_once('=') {
                    if k.trim() == "enabled" {
                        if let Some(c) = current.as_mut() {
                            c.1 = matches!(v.trim(), "1" | "true" | "True" | "yes");
                        }
                    }
                }
            }
            out.extend(current);
        }
        out
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

    /// [`Self::dbpath`] as a backend error.
    fn database(&self) -> Result<Option<PathBuf>, BackendError> {
        self.dbpath().map_err(|e| BackendError::Parse {
            tool: "rpm".into(),
            detail: format!("looking for the rpm database: {e}"),
        })
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

impl RpmBackend {
    /// rpm for a query. rpm opens a sqlite database read-write even to
    /// query it, and sqlite then creates or writes `rpmdb.sqlite-shm` and
    /// `-wal` beside it: an image that doctor or a re-run only looks at
    /// would change. So an image's sqlite database (EL9, AL2023, Fedora) is
    /// queried through a private copy, made once per run (the database and
    /// its write-ahead log, opened as regular files only), named by
    /// `--dbpath` without `--root` (a query reads nothing else of the
    /// root; the file paths asked for are the database's own). BerkeleyDB
    /// (EL7, EL8, Amazon Linux 2) is read by Debian's rpm through its
    /// read-only `bdb_ro` backend, which writes nothing; the live root's
    /// database is the system's own and queried as is.
    fn query_rpm(&self, desc: &str, dbpath: &std::path::Path) -> Result<Cmd, BackendError> {
        let sqlite = dbpath.join("rpmdb.sqlite");
        if self.root.is_live() || !self.root.is_file(&sqlite).unwrap_or(false) {
            return Ok(self.rpm(desc, dbpath));
        }
        let copy = self.query_copy.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("connector-rpmdb-")
                .tempdir()
                .map_err(|e| format!("a private copy of the rpm database: {e}"))?;
            for name in ["rpmdb.sqlite", "rpmdb.sqlite-wal"] {
                let inside = dbpath.join(name);
                let Ok(host) = self.root.resolve(&inside) else {
                    continue;
                };
                if name != "rpmdb.sqlite" && !host.exists() {
                    continue;
                }
                let mut from = connector_host::root::open_regular(&host)
                    .map_err(|e| format!("{}: {e}", inside.display()))?;
                let mut to = std::fs::File::create(dir.path().join(name))
                    .map_err(|e| format!("a private copy of {}: {e}", inside.display()))?;
                std::io::copy(&mut from, &mut to)
                    .map_err(|e| format!("copying {}: {e}", inside.display()))?;
            }
            Ok(dir)
        });
        match copy {
            Ok(dir) => Ok(Cmd::new("rpm", desc)
                .arg("--dbpath")
                .arg(dir.path())
                .missing_hint("install the rpm package; on Debian/Ubuntu: apt-get install rpm")),
            Err(detail) => Err(BackendError::Parse {
                tool: "rpm".into(),
                detail: detail.clone(),
            }),
        }
    }
}

/// Splits `rpm -qf` output into one answer per file asked, in order: rpm
/// prints the owners' lines (one per owning package) on stdout, "file F is
/// not owned by any package" on stdout for an unowned file it found, and
/// "error: file F: …" on stderr for one it looked up on the *build host's*
/// file system and did not find there (Debian's rpm with `--root`, or
/// without one). Warnings (an old database read through `bdb_ro`) are not
/// errors. `Err` carries the first line that is neither.
pub fn split_owner_answers<'a>(
    asked: &[String],
    stdout: &'a str,
    stderr: &str,
) -> Result<Vec<Option<&'a str>>, String> {
    let mut unowned = std::collections::BTreeSet::new();
    for line in stderr.lines().filter(|l| l.starts_with("error:")) {
        let file = asked.iter().find(|f| {
            line.strip_prefix("error: file ")
                .and_then(|rest| rest.strip_prefix(f.as_str()))
                .is_some_and(|rest| rest.starts_with(':'))
        });
        match file {
            Some(f) => {
                unowned.insert(f.as_str());
            }
            None => return Err(line.to_string()),
        }
    }
    let mut owners = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(f) = line
            .strip_prefix("file ")
            .and_then(|l| l.strip_suffix(" is not owned by any package"))
        {
            unowned.insert(
                asked
                    .iter()
                    .find(|a| a.as_str() == f)
                    .map_or(f, |a| a.as_str()),
            );
        } else {
            owners.push(line);
        }
    }
    let owned: Vec<&String> = asked
        .iter()
        .filter(|f| !unowned.contains(f.as_str()))
        .collect();
    if owned.len() != owners.len() {
        return Err(format!(
            "{} owner lines for {} owned files: {stdout:?}",
            owners.len(),
            owned.len()
        ));
    }
    let mut owners = owners.into_iter();
    Ok(asked
        .iter()
        .map(|f| {
            if unowned.contains(f.as_str()) {
                None
            } else {
                owners.next()
            }
        })
        .collect())
}

impl PackageBackend for RpmBackend {
    fn family(&self) -> Family {
        Family::Rpm
    }

    fn query_installed(&self, packages: &[String]) -> Result<DbQuery, BackendError> {
        let dbpath = self.database()?;
        let Some(dbpath) = dbpath else {
            return Ok(DbQuery::NoDatabase);
        };
        if packages.is_empty() {
            return Ok(DbQuery::Answer(BTreeMap::new()));
        }
        let cmd = self
            .query_rpm("Querying the rpm database", &dbpath)?
            .args([
                "-q",
                "--qf",
                "%{NAME} %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n",
            ])
            .args(packages);
        let out = cmd.output()?;
        // rpm exits with the number of packages not installed; real errors
        // (unreadable database) say "error:" on stderr.
        if out.stderr.lines().any(|l| l.starts_with("error:")) {
            return Err(cmd.failed(&out).into());
        }
        // Each installed package prints its name and its NEVRA: a package
        // may be asked for by either.
        let installed: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| !l.starts_with("package "))
            .flat_map(str::split_whitespace)
            .collect();
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

    fn remove_command(&self, package: &str, _purge: bool) -> String {
        // rpm keeps no configuration apart from the package: erase is all.
        let mut words = vec!["rpm".to_string()];
        if !self.root.is_live() {
            words.push(format!("--root={}", self.root.path().display()));
        }
        words.extend(["-e".to_string(), package.to_string()]);
        shell_join(&words)
    }

    fn install_cmd(&self, plan: &InstallPlan) -> Cmd {
        let mut cmd = self.front_end("Installing kernel headers");
        for repo in &plan.enable_repos {
            cmd = cmd.arg(format!("--enablerepo={repo}"));
        }
        cmd.arg("install")
            .args(&plan.packages)
            .args(&plan.local_files)
            .timeout(INSTALL_TIMEOUT)
    }

    fn install_failure(&self, cmd: &Cmd, out: &Output, plan: &InstallPlan) -> InstallError {
        let text = format!("{}\n{}", out.stdout, out.stderr);
        if out.code() == Some(200)
            || text.contains("already locked")
            || text.contains("Existing lock")
        {
            return InstallError::Locked {
                source: cmd.failed(out),
            };
        }
        // dnf: "No match for argument: NAME"; yum: "No package NAME available."
        InstallError::from_output(&text, plan, cmd.failed(out), |line| {
            line.strip_prefix("No match for argument: ")
                .or_else(|| {
                    line.strip_prefix("No package ")
                        .and_then(|l| l.strip_suffix(" available."))
                })
                .map(str::to_string)
        })
    }

    fn tool_paths(&self) -> &'static [&'static str] {
        &[
            "/etc/dnf/dnf.conf",
            "/etc/yum.conf",
            "/etc/yum.repos.d",
            "/etc/pki/rpm-gpg",
            "/etc/rpm",
            "/var/lib/rpm",
            "/usr/lib/sysimage/rpm",
            "/var/lib/dnf",
            "/var/lib/yum",
            "/var/cache/dnf",
            "/var/cache/yum",
            "/var/log/dnf.log",
            "/var/log/dnf.librepo.log",
            "/var/log/dnf.rpm.log",
            "/var/log/hawkey.log",
            "/var/log/yum.log",
            "/usr/src/kernels",
            "/usr/lib/modules",
            "/lib/modules",
            "/tmp",
            "/var/tmp",
        ]
    }

    fn refresh_cmd(&self) -> Option<Cmd> {
        Some(
            self.front_end("Refreshing repository metadata")
                .args(["--refresh", "makecache"])
                .timeout(INSTALL_TIMEOUT),
        )
    }

    fn lock_files(&self) -> Vec<PathBuf> {
        let db = self
            .dbpath()
            .ok()
            .flatten()
            .unwrap_or_else(|| PathBuf::from("/var/lib/rpm"));
        let mut locks = vec![self.root.host_path(db.join(".rpm.lock"))];
        // yum 3 holds its pidfile for its whole run (resolution included).
        if self.tool == PkgTool::Yum {
            let run = self
                .root
                .resolve_in_root("/var/run")
                .unwrap_or_else(|_| PathBuf::from("/var/run"));
            locks.push(self.root.host_path(run.join("yum.pid")));
        }
        locks
    }

    fn tracking_packages(&self, _flavor: &str) -> Result<Vec<String>, BackendError> {
        // kernel-devel is an install-only package like kernel itself: no
        // meta package follows kernel updates. The kernel hooks (lifecycle)
        // install headers for each new kernel instead.
        Ok(Vec::new())
    }

    fn repos_to_enable(&self, candidates: &[String]) -> Vec<String> {
        if candidates.is_empty() {
            return Vec::new();
        }
        self.configured_repos()
            .into_iter()
            .filter(|(rid, enabled)| candidates.contains(rid) && !enabled)
            .map(|(rid, _)| rid)
            .collect()
    }

    /// The database's own files: Packages and its indexes (BerkeleyDB,
    /// NDB) or rpmdb.sqlite and its write-ahead log; not the environment
    /// (`__db.*`) or shared-memory files and locks a query touches.
    fn database_files(&self) -> Vec<PathBuf> {
        let Ok(Some(inside)) = self.dbpath() else {
            return Vec::new();
        };
        let Ok(dir) = self.root.resolve(&inside) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                !(n.starts_with("__db.") || n.ends_with("-shm") || n.starts_with('.'))
            })
            .map(|e| e.path())
            .collect();
        files.sort();
        files
    }

    fn kernel_owners(&self, kernels: &[KernelFiles]) -> Result<Option<Owners>, BackendError> {
        let dbpath = self.database()?;
        let Some(dbpath) = dbpath else {
            return Ok(None);
        };
        // One existing file per kernel, and its header tree when on disk
        // (a file has one owner, so the answers come one line per file, in
        // order).
        let mut asked: Vec<(&str, bool, String)> = Vec::new();
        for k in kernels {
            if let Some(f) = k
                .files
                .iter()
                .find(|f| self.root.is_file(f).unwrap_or(false))
            {
                asked.push((k.release.as_str(), false, f.clone()));
            }
            if let Some(t) = k
                .header_file
                .as_ref()
                .filter(|t| self.root.is_file(t).unwrap_or(false))
            {
                asked.push((k.release.as_str(), true, t.clone()));
            }
        }
        let mut out = Owners::default();
        if asked.is_empty() {
            return Ok(Some(out));
        }
        let cmd = self
            .query_rpm(
                "Asking the rpm database which package owns each kernel and header tree",
                &dbpath,
            )?
            .args([
                "-qf",
                "--qf",
                "owner %{NAME} %{VERSION}-%{RELEASE}.%{ARCH}\\n",
            ])
            .args(asked.iter().map(|(_, _, f)| f));
        let out_ = cmd.output()?;
        let files: Vec<String> = asked.iter().map(|(_, _, f)| f.clone()).collect();
        let answers =
            split_owner_answers(&files, &out_.stdout, &out_.stderr).map_err(|detail| {
                if detail.starts_with("error:") {
                    BackendError::from(cmd.failed(&out_))
                } else {
                    BackendError::Parse {
                        tool: cmd.cmdline(),
                        detail,
                    }
                }
            })?;
        for ((release, tree, file), line) in asked.into_iter().zip(answers) {
            // An unowned kernel (copied by hand) falls back to the release rules.
            let Some(rest) = line.and_then(|l| l.strip_prefix("owner ")) else {
                continue;
            };
            let Some((name, vra)) = rest.split_once(' ') else {
                continue;
            };
            if tree {
                out.header_owners.insert(
                    release.to_string(),
                    vec![name.to_string(), format!("{name}-{vra}")],
                );
                continue;
            }
            out.kernels.insert(
                release.to_string(),
                KernelOwner {
                    package: name.to_string(),
                    version: Some(vra.to_string()),
                    file,
                    header_package: connector_host::kernel::rpm_header_from_owner(name, vra),
                },
            );
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_files_are_the_roots_content_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("var/lib/rpm");
        std::fs::create_dir_all(&db).unwrap();
        for f in [
            "rpmdb.sqlite",
            "rpmdb.sqlite-wal",
            "rpmdb.sqlite-shm",
            "__db.001",
            ".rpm.lock",
        ] {
            std::fs::write(db.join(f), "").unwrap();
        }
        let image = RpmBackend::new(Root::new(dir.path()).unwrap(), PkgTool::Dnf);
        assert_eq!(
            image.database_files(),
            vec![db.join("rpmdb.sqlite"), db.join("rpmdb.sqlite-wal")]
        );
        // A database directory that is a link out of the root is the
        // root's own path resolved inside it, never the host's.
        let empty = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(empty.path().join("var/lib")).unwrap();
        std::os::unix::fs::symlink("/var/lib/dpkg", empty.path().join("var/lib/rpm")).unwrap();
        let other = RpmBackend::new(Root::new(empty.path()).unwrap(), PkgTool::Dnf);
        assert!(other
            .database_files()
            .iter()
            .all(|p| p.starts_with(empty.path())));
    }

    #[test]
    fn remove_commands() {
        let live = RpmBackend::new(Root::live(), PkgTool::Dnf);
        assert_eq!(live.remove_command("connector", true), "rpm -e connector");
        let dir = tempfile::tempdir().unwrap();
        let image = RpmBackend::new(Root::new(dir.path()).unwrap(), PkgTool::Yum);
        assert_eq!(
            image.remove_command("connector", false),
            format!("rpm --root={} -e connector", dir.path().display())
        );
    }

    #[test]
    fn owner_answers_survive_unowned_files_and_warnings() {
        let asked: Vec<String> = [
            "/boot/vmlinuz-a",
            "/boot/vmlinuz-b",
            "/lib/modules/c/vmlinuz",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let warn = "warning: Found bdb_ro Packages database while attempting sqlite backend: using bdb_ro backend.\n\
                    warning: could not open /r/var/lib/rpm/Filetriggername: No such file or directory\n";
        // Not found on the build host: stderr.
        let got = split_owner_answers(
            &asked,
            "owner kernel 3.10-1.x86_64\nowner kernel-core 4.18-2.x86_64\n",
            &format!("{warn}error: file /boot/vmlinuz-b: No such file or directory\n"),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Some("owner kernel 3.10-1.x86_64"),
                None,
                Some("owner kernel-core 4.18-2.x86_64")
            ]
        );
        // Found, not owned: stdout, in order.
        let got = split_owner_answers(
            &asked,
            "file /boot/vmlinuz-a is not owned by any package\nowner k 1-1.x\nowner k 2-1.x\n",
            warn,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![None, Some("owner k 1-1.x"), Some("owner k 2-1.x")]
        );
        // Every file unowned.
        let got = split_owner_answers(
            &asked,
            "",
            "error: file /boot/vmlinuz-a: No such file or directory\nerror: file /boot/vmlinuz-b: Permission denied\nerror: file /lib/modules/c/vmlinuz: No such file or directory\n",
        )
        .unwrap();
        assert_eq!(got, vec![None, None, None]);
        // A real failure, and an answer that does not add up.
        let err = split_owner_answers(&asked, "", "error: cannot open Packages database in /r\n")
            .unwrap_err();
        assert!(err.contains("cannot open Packages"), "{err}");
        // A prefix of another asked file is not that file.
        let err = split_owner_answers(
            &asked,
            "owner k 1-1.x\n",
            "error: file /boot/vmlinuz-aa: No such file or directory\n",
        )
        .unwrap_err();
        assert!(err.contains("vmlinuz-aa"), "{err}");
        assert!(split_owner_answers(&asked, "owner k 1-1.x\n", "").is_err());
    }

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
    fn series_repos_are_enabled_only_when_configured_and_off() {
        let dir = tempfile::tempdir().unwrap();
        let repos = dir.path().join("etc/yum.repos.d");
        std::fs::create_dir_all(&repos).unwrap();
        std::fs::write(
            repos.join("uek-ol8.repo"),
            "[ol8_UEKR7]\nname=UEK R7\nbaseurl=https://example.invalid/\nenabled=0\n\n[ol8_UEKR6]\nenabled=1\n",
        )
        .unwrap();
        std::fs::write(
            repos.join("amzn2-extras.repo"),
            "[amzn2extra-kernel-5.10]\nenabled = 0\n[amzn2extra-kernel-5.15]\nenabled=1\n[amzn2extra-docker]\nenabled=0\n",
        )
        .unwrap();
        let b = RpmBackend::new(Root::new(dir.path()).unwrap(), PkgTool::Dnf);
        let v = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(b.repos_to_enable(&v(&["ol8_UEKR7"])), v(&["ol8_UEKR7"]));
        assert!(
            b.repos_to_enable(&v(&["ol8_UEKR6"])).is_empty(),
            "already enabled"
        );
        assert!(
            b.repos_to_enable(&v(&["ol8_UEKR8"])).is_empty(),
            "not configured"
        );
        assert!(b.repos_to_enable(&[]).is_empty());
        assert_eq!(
            b.repos_to_enable(&v(&["amzn2extra-kernel-5.10"])),
            v(&["amzn2extra-kernel-5.10"])
        );
        assert!(b
            .repos_to_enable(&v(&["amzn2extra-kernel-5.15"]))
            .is_empty());
        assert!(b.repos_to_enable(&v(&["amzn2extra-kernel-5.4"])).is_empty());
    }

    #[test]
    fn failures_are_read_into_types() {
        let b = RpmBackend::new(Root::live(), PkgTool::Dnf);
        let plan = InstallPlan {
            packages: vec![
                "kernel-devel-1-1.el8.x86_64".into(),
                "kernel-devel-2-1.el8.x86_64".into(),
            ],
            ..Default::default()
        };
        let cmd = b.install_cmd(&plan);
        let fake = |code: i32, stdout: &str, stderr: &str| {
            let out = Cmd::new("sh", "fake")
                .args([
                    "-c",
                    &format!("printf '%s' \"$0\"; printf '%s' \"$1\" >&2; exit {code}"),
                    stdout,
                    stderr,
                ])
                .output()
                .unwrap();
            b.install_failure(&cmd, &out, &plan)
        };
        let e = fake(
            1,
            "No match for argument: kernel-devel-2-1.el8.x86_64\n",
            "Error: Unable to find a match",
        );
        assert!(
            matches!(&e, InstallError::NotFound { missing, .. } if missing == &["kernel-devel-2-1.el8.x86_64"]),
            "{e:?}"
        );
        let e = fake(1, "No package kernel-devel-1-1.el8.x86_64 available.\n", "");
        assert!(
            matches!(&e, InstallError::NotFound { missing, .. } if missing == &["kernel-devel-1-1.el8.x86_64"])
        );
        let e = fake(200, "", "Error: RPMDB already locked by 1234");
        assert!(matches!(e, InstallError::Locked { .. }));
        let e = fake(1, "", "Error: Transaction test error: disk full");
        assert!(matches!(e, InstallError::Failed(_)));
        assert!(e.to_string().contains("disk full"));
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
