//! The vendor-archive fallback's family-specific part: find, fetch and
//! verify a header package behind one trait, from the roots
//! `crate::facts::archives_conf` names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use connector_fetch::Fetcher;
use connector_host::layout::ARCHIVES_CONF;
use connector_host::Root;
use connector_rpm::archive as rpm_archive;

use connector_host::os::{Family, OsInfo};

use crate::facts::archives_conf::ArchiveRoot;
use crate::fallback::proxy::{self, Chosen};

/// The archive access of the family of `os` (beside `facts::backend::for_os`,
/// the only other place a family picks an implementation); `None` where the family has
/// no archive fallback yet.
pub fn for_os(os: &OsInfo, root: &Root) -> Option<Box<dyn ArchiveBackend>> {
    Some(for_family(os.family()?, root, os.codename.clone()))
}

/// [`for_os`] for a family known without an OS (a bundle's directory).
pub fn for_family(
    family: Family,
    root: &Root,
    codename: Option<String>,
) -> Box<dyn ArchiveBackend> {
    match family {
        Family::Rpm => Box::new(RpmArchive { root: root.clone() }),
        Family::Deb => Box::new(DebArchiveBackend {
            root: root.clone(),
            codename,
        }),
    }
}

/// The family-specific part of the fallback.
pub trait ArchiveBackend {
    /// Finds `package` under `root`, downloads it (and the kernel packages
    /// it needs from the same archive) into `dir` and verifies everything.
    /// The returned files are ready for the package manager.
    fn fetch_verified(
        &self,
        fetcher: &Fetcher,
        root: &ArchiveRoot,
        package: &str,
        dir: &Path,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<PathBuf>, ArchiveFailure>;

    /// The file `--from DIR` holds for `package`, verified as far as the
    /// family allows without repository metadata (RPM: signed by one of
    /// `keys`, paths inside the root).
    fn local_package(
        &self,
        dir: &Path,
        package: &str,
        keys: &[String],
    ) -> Result<PathBuf, ArchiveCause>;

    /// The files a bundle lists for `package`, each checked before any
    /// reaches the package manager: it *is* `package`, or a package that
    /// `package` depends on (read from the files themselves, not from the
    /// manifest), and it passes the family's own verification (RPM: its
    /// signature by a key trusted for the source; Debian: the bundle's site
    /// signature, checked when the bundle was opened: `site_signed`). Listed
    /// twice, a file is handed over once. `package` itself must be among
    /// them.
    fn bundle_files(
        &self,
        files: &[PathBuf],
        package: &str,
        keys: &[String],
        site_signed: bool,
    ) -> Result<Vec<PathBuf>, ArchiveCause>;

    /// The proxy the root's package manager is configured to reach `url`
    /// through (dnf/yum's `proxy=`, apt's `Acquire::*::Proxy`); `None`:
    /// it names none.
    fn configured_proxy(&self, _url: &str) -> Option<Chosen> {
        None
    }

    /// The repository metadata of a bundle's directory for this family,
    /// the way its own tools read it (`bundle`), written anew.
    fn write_index(&self, _dir: &Path) -> Result<()> {
        anyhow::bail!("this family has no bundle repository format")
    }

    /// The file of that metadata that must exist (and that a site key
    /// signs), relative to the directory.
    fn index_file(&self) -> &'static str {
        "index"
    }

    /// How the site's key signs it: detached (`FILE.asc`) or clear-signed
    /// into a second file (apt's `InRelease`).
    fn index_signature(&self) -> IndexSignature {
        IndexSignature::Detached
    }
}

/// How a bundle's repository metadata is signed (see
/// [`ArchiveBackend::index_signature`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexSignature {
    /// `FILE.asc` beside it (dnf's `repomd.xml.asc`).
    Detached,
    /// Clear-signed into the named file beside it (apt's `InRelease`).
    ClearInto(&'static str),
}

/// Why one archive root did not supply the package.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveFailure {
    /// Not there: try the next root.
    #[error("not there")]
    NotThere(#[source] ArchiveCause),
    /// There but unusable (verification, transport): reported, next root tried.
    #[error("REFUSED")]
    Rejected(#[source] ArchiveCause),
}

/// What an archive (or a `--from` directory) said, from the family's own
/// error down to the leaf.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveCause {
    #[error(transparent)]
    Fetch(#[from] connector_fetch::FetchError),
    #[error(transparent)]
    Rpm(#[from] rpm_archive::ArchiveError),
    #[error(transparent)]
    RpmVerify(#[from] rpm_archive::VerifyError),
    #[error(transparent)]
    Deb(#[from] connector_deb::archive::DebArchiveError),
    #[error("{0} is not a name-version-release.arch")]
    NotNevra(String),
    #[error("{0}: empty mirror list")]
    EmptyMirrorList(String),
    #[error("{0}: no suite configured and the root's os-release names no codename")]
    NoSuite(String),
    #[error("{} does not exist", .0.display())]
    NoFile(PathBuf),
    /// A bundle's file that is not the package asked for nor one it needs.
    #[error("{}: {why}", file.display())]
    NotInBundle { file: PathBuf, why: String },
    /// There, but a FIFO, a device, a directory: never read.
    #[error("{}: {}", .0.display(), .1)]
    NotRegular(PathBuf, std::io::Error),
    #[error("no {pattern} in {}", dir.display())]
    NoMatch { pattern: String, dir: PathBuf },
    #[error("reading {}", .0.display())]
    ReadDir(PathBuf, #[source] std::io::Error),
}

/// A local package file is a regular file (its links followed: the user
/// named the directory), checked without reading it: a FIFO or a device is
/// refused, never opened for reading.
fn regular_file(file: &Path) -> Result<(), ArchiveCause> {
    std::fs::canonicalize(file)
        .and_then(|real| connector_host::root::open_regular(&real))
        .map(drop)
        .map_err(|e| ArchiveCause::NotRegular(file.to_path_buf(), e))
}

/// The RPM family's archive access.
pub struct RpmArchive {
    pub root: Root,
}

impl ArchiveBackend for RpmArchive {
    fn fetch_verified(
        &self,
        fetcher: &Fetcher,
        root: &ArchiveRoot,
        package: &str,
        dir: &Path,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<PathBuf>, ArchiveFailure> {
        let want = rpm_archive::Nevra::parse(package)
            .ok_or_else(|| ArchiveFailure::Rejected(ArchiveCause::NotNevra(package.into())))?;
        let base = if root.mirrorlist {
            let list = fetcher
                .get(&root.url, 1024 * 1024)
                .map_err(|e| ArchiveFailure::NotThere(e.into()))?;
            let text = String::from_utf8_lossy(&list);
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'));
            match first {
                Some(first) => first.to_string(),
                None => {
                    return Err(ArchiveFailure::NotThere(ArchiveCause::EmptyMirrorList(
                        root.url.clone(),
                    )))
                }
            }
        } else {
            root.url.clone()
        };
        let found = rpm_archive::find_in_repo(fetcher, &base, &want).map_err(|e| match e {
            rpm_archive::ArchiveError::NotInRepo { .. } => ArchiveFailure::NotThere(e.into()),
            rpm_archive::ArchiveError::Fetch(connector_fetch::FetchError::Status {
                status: 404,
                ..
            }) => ArchiveFailure::NotThere(e.into()),
            other => ArchiveFailure::Rejected(other.into()),
        })?;
        let mut paths = root.keys.clone();
        paths.extend(rpm_archive::repo_gpgkeys(&self.root));
        let keys = rpm_archive::keys_at(&self.root, &paths);
        rpm_archive::fetch_verified(fetcher, &found, &want, &keys, dir, progress)
            .map(|p| vec![p])
            .map_err(|e| ArchiveFailure::Rejected(e.into()))
    }

    fn local_package(
        &self,
        dir: &Path,
        package: &str,
        keys: &[String],
    ) -> Result<PathBuf, ArchiveCause> {
        let want = rpm_archive::Nevra::parse(package)
            .ok_or_else(|| ArchiveCause::NotNevra(package.into()))?;
        let file = dir.join(format!("{package}.rpm"));
        if std::fs::symlink_metadata(&file).is_err() {
            return Err(ArchiveCause::NoFile(file));
        }
        regular_file(&file)?;
        let mut paths = keys.to_vec();
        paths.extend(rpm_archive::repo_gpgkeys(&self.root));
        rpm_archive::verify_rpm(&file, &want, &rpm_archive::keys_at(&self.root, &paths))?;
        Ok(file)
    }

    fn bundle_files(
        &self,
        files: &[PathBuf],
        package: &str,
        keys: &[String],
        _site_signed: bool,
    ) -> Result<Vec<PathBuf>, ArchiveCause> {
        let mut paths = keys.to_vec();
        paths.extend(rpm_archive::repo_gpgkeys(&self.root));
        let trusted = rpm_archive::keys_at(&self.root, &paths);
        let mut seen: BTreeMap<String, (PathBuf, Vec<String>, rpm_archive::Nevra)> =
            BTreeMap::new();
        for f in files {
            regular_file(f)?;
            let (nevra, requires) = rpm_archive::identity(f)?;
            seen.entry(nevra.to_string())
                .or_insert((f.clone(), requires, nevra));
        }
        let Some((_, main_requires, _)) = seen.get(package).cloned() else {
            return Err(ArchiveCause::NotInBundle {
                file: files.first().cloned().unwrap_or_default(),
                why: format!("none of the files listed for {package} is {package}"),
            });
        };
        let mut out = Vec::new();
        for (id, (f, _, nevra)) in &seen {
            if id != package && !main_requires.contains(&nevra.name) {
                return Err(ArchiveCause::NotInBundle {
                    file: f.clone(),
                    why: format!("{id} is neither {package} nor a package it requires"),
                });
            }
            rpm_archive::verify_rpm(f, nevra, &trusted)?;
            out.push(f.clone());
        }
        Ok(out)
    }

    fn configured_proxy(&self, url: &str) -> Option<Chosen> {
        proxy::rpm_proxy(&self.root, url)
    }

    /// createrepo_c.
    fn write_index(&self, dir: &Path) -> Result<()> {
        connector_host::Cmd::new(
            "createrepo_c",
            "Writing the bundle's RPM repository metadata",
        )
        .missing_hint("install createrepo_c (createrepo-c on Debian)")
        .arg("--update")
        .arg("--quiet")
        .arg(dir)
        .run()?;
        Ok(())
    }

    fn index_file(&self) -> &'static str {
        "repodata/repomd.xml"
    }
}

/// The Debian family's archive access.
pub struct DebArchiveBackend {
    pub root: Root,
    pub codename: Option<String>,
}

impl DebArchiveBackend {
    /// The root's dpkg architecture: the `Architecture` of its installed
    /// `dpkg` package (a foreign root's, not the build host's), else amd64.
    fn arch(&self) -> String {
        let admin = self
            .root
            .resolve("/var/lib/dpkg")
            .unwrap_or_else(|_| self.root.host_path("/var/lib/dpkg"));
        connector_host::Cmd::new("dpkg-query", "Reading the root's architecture")
            .arg(format!("--admindir={}", admin.display()))
            .args(["-W", "-f", "${Architecture}", "dpkg"])
            .run()
            .ok()
            .map(|o| o.stdout.trim().to_string())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "amd64".to_string())
    }
}

impl ArchiveBackend for DebArchiveBackend {
    fn fetch_verified(
        &self,
        fetcher: &Fetcher,
        root: &ArchiveRoot,
        package: &str,
        dir: &Path,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<PathBuf>, ArchiveFailure> {
        use connector_deb::archive as deb;
        let Some(suite) = root.suite.clone().or_else(|| self.codename.clone()) else {
            return Err(ArchiveFailure::NotThere(ArchiveCause::NoSuite(
                root.url.clone(),
            )));
        };
        let a = deb::DebArchive {
            base: root.url.clone(),
            suite,
            component: root.component.clone().unwrap_or_else(|| "main".into()),
            arch: self.arch(),
        };
        let mut paths = root.keys.clone();
        paths.extend(deb::signed_by_for(&self.root, &root.url));
        let keys = deb::keys_at(&self.root, &paths);
        let index = deb::verified_index(fetcher, &a, &keys).map_err(|e| match e {
            deb::DebArchiveError::Fetch(connector_fetch::FetchError::Status {
                status: 404,
                ..
            }) => ArchiveFailure::NotThere(e.into()),
            other => ArchiveFailure::Rejected(other.into()),
        })?;
        let pkgs =
            deb::closure(&index, &a, package).map_err(|e| ArchiveFailure::NotThere(e.into()))?;
        let mut files = Vec::new();
        for p in &pkgs {
            let f = deb::fetch_verified(fetcher, p, dir, progress)
                .map_err(|e| ArchiveFailure::Rejected(e.into()))?;
            files.push(f);
        }
        Ok(files)
    }

    fn local_package(
        &self,
        dir: &Path,
        package: &str,
        _keys: &[String],
    ) -> Result<PathBuf, ArchiveCause> {
        let prefix = format!("{package}_");
        let file = std::fs::read_dir(dir)
            .map_err(|e| ArchiveCause::ReadDir(dir.to_path_buf(), e))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
            .ok_or_else(|| ArchiveCause::NoMatch {
                pattern: format!("{prefix}*.deb"),
                dir: dir.to_path_buf(),
            })?;
        regular_file(&file)?;
        connector_deb::archive::check_control(&file, package, None, &self.arch())?;
        Ok(file)
    }

    fn bundle_files(
        &self,
        files: &[PathBuf],
        package: &str,
        _keys: &[String],
        site_signed: bool,
    ) -> Result<Vec<PathBuf>, ArchiveCause> {
        // A .deb carries no signature of its own: in a bundle, the site's
        // signature over the manifest (its digests) is the whole chain.
        if !site_signed {
            return Err(ArchiveCause::NotInBundle {
                file: files.first().cloned().unwrap_or_default(),
                why: format!(
                    "the bundle is unsigned, and a .deb has no signature of its own: nothing \
                     verifies {package}; build the bundle with --sign-key and name the site's \
                     public key with `bundle-key PATH` in {ARCHIVES_CONF}"
                ),
            });
        }
        let arch = self.arch();
        let mut seen: BTreeMap<(String, String), (PathBuf, String, Vec<String>)> = BTreeMap::new();
        for f in files {
            regular_file(f)?;
            let ((name, version, a), depends) = connector_deb::archive::control_identity(f)?;
            if a != arch && a != "all" {
                return Err(ArchiveCause::NotInBundle {
                    file: f.clone(),
                    why: format!("{name} is for {a}, not {arch}"),
                });
            }
            seen.entry((name, version))
                .or_insert((f.clone(), a, depends));
        }
        let Some((_, _, main_depends)) = seen
            .iter()
            .find(|((n, _), _)| n == package)
            .map(|(_, v)| v.clone())
        else {
            return Err(ArchiveCause::NotInBundle {
                file: files.first().cloned().unwrap_or_default(),
                why: format!("none of the files listed for {package} is {package}"),
            });
        };
        let mut out = Vec::new();
        for ((name, _), (f, _, _)) in &seen {
            if name != package && !main_depends.contains(name) {
                return Err(ArchiveCause::NotInBundle {
                    file: f.clone(),
                    why: format!("{name} is neither {package} nor a package it depends on"),
                });
            }
            out.push(f.clone());
        }
        Ok(out)
    }

    fn configured_proxy(&self, url: &str) -> Option<Chosen> {
        proxy::apt_proxy(&self.root, url)
    }

    /// A flat apt repository: `Packages` and the `Release` that carries
    /// its digest (clear-signed into `InRelease` when the site signs).
    fn write_index(&self, dir: &Path) -> Result<()> {
        let out = connector_host::Cmd::new(
            "dpkg-scanpackages",
            "Writing the bundle's apt Packages index",
        )
        .missing_hint("install dpkg-dev")
        .current_dir(dir)
        .args(["--multiversion", "."])
        .run()?;
        connector_host::atomic::write(&dir.join("Packages"), out.stdout.as_bytes(), 0o644, None)?;
        let release = format!(
            "Origin: connector-installer bundle\nLabel: connector headers\nDate: {}\n\
             SHA256:\n {} {} Packages\n",
            connector_host::time::rfc2822(connector_host::time::now()),
            connector_fetch::sha256_bytes(out.stdout.as_bytes()),
            out.stdout.len()
        );
        Ok(connector_host::atomic::write(
            &dir.join("Release"),
            release.as_bytes(),
            0o644,
            None,
        )?)
    }

    fn index_file(&self) -> &'static str {
        "Release"
    }

    fn index_signature(&self) -> IndexSignature {
        IndexSignature::ClearInto("InRelease")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_dir_refusals_are_typed() {
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::new(root_dir.path()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rpm = RpmArchive { root: root.clone() };
        assert!(matches!(
            rpm.local_package(dir.path(), "kernel-devel", &[]),
            Err(ArchiveCause::NotNevra(_))
        ));
        let want = "kernel-devel-5.14.0-362.8.1.el9_3.x86_64";
        assert!(matches!(
            rpm.local_package(dir.path(), want, &[]),
            Err(ArchiveCause::NoFile(p)) if p == dir.path().join(format!("{want}.rpm"))
        ));
        // A file that is not an RPM: the verifier's own error, as the source.
        std::fs::write(dir.path().join(format!("{want}.rpm")), b"not an rpm").unwrap();
        assert!(matches!(
            rpm.local_package(dir.path(), want, &[]),
            Err(ArchiveCause::RpmVerify(_))
        ));
        let deb = DebArchiveBackend {
            root,
            codename: None,
        };
        assert!(matches!(
            deb.local_package(dir.path(), "linux-headers-6.1.0-18-amd64", &[]),
            Err(ArchiveCause::NoMatch { .. })
        ));
        assert!(matches!(
            deb.local_package(&dir.path().join("missing"), "x", &[]),
            Err(ArchiveCause::ReadDir(..))
        ));
    }
}
