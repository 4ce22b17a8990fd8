//! The Debian-family backend: Debian and Ubuntu, through the real
//! `dpkg-query` and `apt-get`.
//!
//! The database is named explicitly (`dpkg-query --admindir=R/var/lib/dpkg`,
//! resolved inside the root), so inspecting an image never reads the host's.

pub mod archive;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use connector_host::cmd::{shell_join, Cmd, Output};
use connector_host::os::Family;
use connector_host::pkg::{
    BackendError, DbQuery, InstallError, InstallPlan, KernelFiles, KernelOwner, Owners,
    PackageBackend,
};
use connector_host::Root;

/// A package transaction may download and unpack hundreds of MB.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The Debian family for one root.
#[derive(Debug, Clone)]
pub struct DebBackend {
    root: Root,
}

impl DebBackend {
    pub fn new(root: Root) -> Self {
        DebBackend { root }
    }

    /// The dpkg database directory (host path), resolved inside the root.
    fn admindir(&self) -> PathBuf {
        self.root
            .resolve("/var/lib/dpkg")
            .unwrap_or_else(|_| self.root.host_path("/var/lib/dpkg"))
    }

    /// `apt-get` with the options every call carries: non-interactive,
    /// fail at once on a held lock (`DPkg::Lock::Timeout=0`: we do the
    /// bounded waiting ourselves), and for another root the root's sources,
    /// keyrings, lists, archives and dpkg database (field-notes §3). The
    /// build host's apt.conf.d (proxies) still applies.
    fn apt(&self, desc: &str) -> Cmd {
        let mut cmd = Cmd::new("apt-get", desc)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("APT_LISTCHANGES_FRONTEND", "none")
            .args(["-q", "-o", "DPkg::Lock::Timeout=0"])
            .missing_hint("apt-get is the package manager of this system; install apt");
        if !self.root.is_live() {
            let r = self.root.path().display().to_string();
            let admin = self.admindir().display().to_string();
            cmd = cmd.args([
                "-o".to_string(),
                format!("Dir={r}/"),
                "-o".to_string(),
                format!("Dir::State::status={admin}/status"),
                "-o".to_string(),
                format!("DPkg::Options::=--root={r}"),
                "-o".to_string(),
                format!("DPkg::Options::=--admindir={admin}"),
            ]);
        }
        cmd
    }

    /// The dpkg database directory (host path) when the root has one.
    fn database(&self) -> Result<Option<PathBuf>, BackendError> {
        match self.root.resolve_optional("/var/lib/dpkg") {
            Ok(Some(dir)) if dir.join("status").is_file() => Ok(Some(dir)),
            Ok(_) => Ok(None),
            Err(e) => Err(BackendError::Parse {
                tool: "dpkg-query".into(),
                detail: format!("looking for the dpkg database: {e}"),
            }),
        }
    }

    /// Installed packages whose names match a dpkg-query pattern.
    fn installed_matching(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        let admindir = self.admindir();
        if !admindir.join("status").is_file() {
            return Ok(Vec::new());
        }
        let cmd = Cmd::new("dpkg-query", "Listing installed kernel meta packages")
            .arg(format!("--admindir={}", admindir.display()))
            .args(["-W", "-f", "${Package}\\t${db:Status-Abbrev}\\n", pattern]);
        let out = cmd.output()?;
        Ok(out
            .stdout
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, abbrev)| abbrev.as_bytes().get(1) == Some(&b'i'))
            .map(|(name, _)| name.to_string())
            .collect())
    }
}

impl PackageBackend for DebBackend {
    fn family(&self) -> Family {
        Family::Deb
    }

    fn query_installed(&self, packages: &[String]) -> Result<DbQuery, BackendError> {
        let Some(admindir) = self.database()? else {
            return Ok(DbQuery::NoDatabase);
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

    fn remove_command(&self, package: &str, purge: bool) -> String {
        let mut words: Vec<String> = Vec::new();
        if !self.root.is_live() {
            words.push("chroot".into());
            words.push(self.root.path().display().to_string());
        }
        words.push("apt-get".into());
        words.push(if purge { "purge" } else { "remove" }.into());
        words.push(package.into());
        shell_join(&words)
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

    fn install_cmd(&self, plan: &InstallPlan) -> Cmd {
        // Repository enabling is an RPM-side notion; nothing to do here.
        self.apt("Installing kernel headers")
            .args([
                "-y",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                "install",
            ])
            .args(&plan.packages)
            .args(&plan.local_files)
            .timeout(INSTALL_TIMEOUT)
    }

    fn install_failure(&self, cmd: &Cmd, out: &Output, plan: &InstallPlan) -> InstallError {
        let text = format!("{}\n{}", out.stdout, out.stderr);
        if text.contains("Could not get lock")
            || text.contains("Unable to acquire the dpkg frontend lock")
        {
            return InstallError::Locked {
                source: cmd.failed(out),
            };
        }
        InstallError::from_output(&text, plan, cmd.failed(out), |line| {
            line.strip_prefix("E: Unable to locate package ")
                .map(str::to_string)
                .or_else(|| {
                    // E: Couldn't find any package by glob 'NAME' / by regex 'NAME'
                    line.strip_prefix("E: Couldn't find any package by ")
                        .and_then(|l| l.split('\'').nth(1))
                        .map(str::to_string)
                })
                .or_else(|| {
                    // E: Package 'NAME' has no installation candidate
                    line.strip_prefix("E: Package '")
                        .and_then(|l| l.split_once("' has no installation candidate"))
                        .map(|(n, _)| n.to_string())
                })
        })
    }

    fn tool_paths(&self) -> &'static [&'static str] {
        &[
            "/etc/apt/sources.list",
            "/etc/apt/sources.list.d",
            "/etc/apt/apt.conf.d",
            "/etc/apt/preferences.d",
            "/etc/apt/trusted.gpg.d",
            "/usr/share/keyrings",
            "/var/lib/apt/lists/partial",
            "/var/cache/apt/archives/partial",
            "/var/lib/dpkg/status",
            "/var/lib/dpkg/lock",
            "/var/lib/dpkg/lock-frontend",
            "/var/lib/dpkg/info",
            "/var/lib/dpkg/updates",
            "/var/log/apt/term.log",
            "/var/log/dpkg.log",
            "/usr/src",
            "/usr/lib/modules",
            "/lib/modules",
            "/tmp",
            "/var/tmp",
        ]
    }

    fn refresh_cmd(&self) -> Option<Cmd> {
        Some(
            self.apt("Refreshing the package lists")
                .arg("update")
                .timeout(INSTALL_TIMEOUT),
        )
    }

    fn lock_files(&self) -> Vec<PathBuf> {
        let admin = self.admindir();
        vec![admin.join("lock-frontend"), admin.join("lock")]
    }

    fn tracking_packages(&self, flavor: &str) -> Result<Vec<String>, BackendError> {
        // The meta package that installs each new kernel is the one whose
        // headers meta must follow it: linux-image-amd64 ->
        // linux-headers-amd64, linux-image-generic-hwe-22.04 ->
        // linux-headers-generic-hwe-22.04. Ubuntu's linux-image-virtual
        // installs the generic kernel. Without any image meta installed,
        // the flavour's own headers meta.
        let flavour = flavor
            .strip_prefix("debian-")
            .or_else(|| flavor.strip_prefix("ubuntu-"))
            .unwrap_or(flavor);
        if flavour == "custom" || flavour.is_empty() {
            return Ok(Vec::new());
        }
        let metas: Vec<String> = self
            .installed_matching("linux-image-*")?
            .into_iter()
            .filter_map(|n| n.strip_prefix("linux-image-").map(str::to_string))
            .filter(|suffix| {
                !suffix.starts_with(|c: char| c.is_ascii_digit()) && !suffix.starts_with("unsigned")
            })
            .filter(|suffix| {
                suffix == flavour
                    || suffix.starts_with(&format!("{flavour}-hwe"))
                    || (flavour == "generic" && suffix.starts_with("virtual"))
            })
            .map(|suffix| format!("linux-headers-{suffix}"))
            .collect();
        if metas.is_empty() {
            Ok(vec![format!("linux-headers-{flavour}")])
        } else {
            Ok(metas)
        }
    }

    fn repos_to_enable(&self, _candidates: &[String]) -> Vec<String> {
        Vec::new()
    }

    /// `status` (rewritten by every dpkg run), the `updates` journal and
    /// the `info` directory (a package's file list comes and goes by
    /// rename there).
    fn database_files(&self) -> Vec<PathBuf> {
        match self.database() {
            Ok(Some(dir)) => ["status", "updates", "info"]
                .iter()
                .map(|n| dir.join(n))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn kernel_owners(&self, kernels: &[KernelFiles]) -> Result<Option<Owners>, BackendError> {
        let Some(admindir) = self.database()? else {
            return Ok(None);
        };
        let files: Vec<&String> = kernels
            .iter()
            .flat_map(|k| k.files.iter().chain(&k.header_file))
            .filter(|f| self.root.exists(f).unwrap_or(false))
            .collect();
        let mut out = Owners::default();
        if files.is_empty() {
            return Ok(Some(out));
        }
        let cmd = Cmd::new(
            "dpkg-query",
            "Asking the dpkg database which package owns each kernel and header tree",
        )
        .arg(format!("--admindir={}", admindir.display()))
        .arg("-S")
        .args(&files)
        .missing_hint("install the dpkg package");
        let res = cmd.output()?;
        let odd_stderr = res
            .stderr
            .lines()
            .any(|l| !l.trim().is_empty() && !l.contains("no path found matching"));
        if !matches!(res.code(), Some(0) | Some(1)) || odd_stderr {
            return Err(cmd.failed(&res).into());
        }
        // "pkg[, pkg2]: PATH"
        let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for line in res.stdout.lines() {
            if let Some((pkgs, path)) = line.split_once(": ") {
                owners.entry(path.trim()).or_default().extend(
                    pkgs.split(", ")
                        .map(|p| p.split(':').next().unwrap_or(p).trim()),
                );
            }
        }
        for k in kernels {
            let found = k.files.iter().find_map(|f| {
                let pkgs = owners.get(f.as_str())?;
                pkgs.iter().find_map(|p| {
                    connector_host::kernel::deb_header_from_owner(p).map(|h| (f, *p, h))
                })
            });
            if let Some((file, package, header)) = found {
                out.kernels.insert(
                    k.release.clone(),
                    KernelOwner {
                        package: package.to_string(),
                        version: None,
                        file: file.clone(),
                        header_package: Some(header),
                    },
                );
            }
            if let Some(pkgs) = k.header_file.as_ref().and_then(|t| owners.get(t.as_str())) {
                out.header_owners.insert(
                    k.release.clone(),
                    pkgs.iter().map(|p| p.to_string()).collect(),
                );
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_commands() {
        let live = DebBackend::new(Root::live());
        assert_eq!(
            live.remove_command("connector", false),
            "apt-get remove connector"
        );
        assert_eq!(
            live.remove_command("connector", true),
            "apt-get purge connector"
        );
        let dir = tempfile::tempdir().unwrap();
        let image = DebBackend::new(Root::new(dir.path()).unwrap());
        assert_eq!(
            image.remove_command("connector", true),
            format!("chroot {} apt-get purge connector", dir.path().display())
        );
    }

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
    fn failures_are_read_into_types() {
        let b = DebBackend::new(Root::live());
        let plan = InstallPlan {
            packages: vec![
                "linux-headers-6.1.0-18-amd64".into(),
                "linux-headers-amd64".into(),
            ],
            ..Default::default()
        };
        let cmd = b.install_cmd(&plan);
        let fake = |stderr: &str| {
            let out = Cmd::new("sh", "fake")
                .args(["-c", "printf '%s' \"$0\" >&2; exit 100", stderr])
                .output()
                .unwrap();
            b.install_failure(&cmd, &out, &plan)
        };
        let e = fake("E: Unable to locate package linux-headers-6.1.0-18-amd64\n");
        assert!(
            matches!(&e, InstallError::NotFound { missing, .. } if missing == &["linux-headers-6.1.0-18-amd64"]),
            "{e:?}"
        );
        let e = fake("E: Couldn't find any package by glob 'linux-headers-amd64'\n");
        assert!(
            matches!(&e, InstallError::NotFound { missing, .. } if missing == &["linux-headers-amd64"]),
            "{e:?}"
        );
        let e = fake("E: Package 'linux-headers-amd64' has no installation candidate\n");
        assert!(matches!(&e, InstallError::NotFound { .. }), "{e:?}");
        let e = fake(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (dpkg)\n",
        );
        assert!(matches!(e, InstallError::Locked { .. }));
        let e = fake("E: Sub-process /usr/bin/dpkg returned an error code (1)\n");
        assert!(matches!(e, InstallError::Failed(_)));
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
