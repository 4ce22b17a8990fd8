//! `connector-installer bundle`: the header packages a fleet needs, for
//! sites that reach no vendor mirror (docs/bundle.md).
//!
//! The kernels come from doctor documents collected from the fleet, or
//! from `--kernel` lists with the distribution. Each header package is
//! found through the same archives as `headers` (archives.conf, then the
//! built-in vendor archives) and verified end to end the same way. The
//! bundle holds, per distribution, the packages and the metadata the
//! distribution's own tools read (`createrepo_c` for RPM, a `Packages`
//! index for apt), and at the top a manifest with every file's digest and
//! where it came from, signed with the site's key when one is given.
//!
//! `headers --from DIR` (and the hooks' deferred job, through
//! archives.conf `bundle DIR`) verify the manifest before using a file.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use connector_host::os::OsInfo;
use serde::{Deserialize, Serialize};

/// The manifest, at the top of the bundle.
pub const MANIFEST: &str = "manifest.json";
/// Its detached, armored OpenPGP signature (when the site signs).
pub const SIGNATURE: &str = "manifest.json.asc";
/// The manifest's version.
pub const SCHEMA_VERSION: u32 = 1;
/// The largest manifest read (a fleet of thousands of kernels fits).
pub(crate) const MANIFEST_CAP: u64 = 16 * 1024 * 1024;

/// The bundle's table of contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub packages: Vec<Entry>,
}

/// One package file in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The file, relative to the bundle (`debian-12/linux-headers-…deb`).
    pub file: String,
    /// The header package this file is, or is needed by.
    pub serves: String,
    /// The distribution (os-release `ID`, `VERSION_ID`) and kernel.
    pub distro: String,
    pub version: String,
    pub kernel: String,
    pub sha256: String,
    pub size: u64,
    /// The archive it was downloaded from and the configuration that
    /// named it (`https://… (built-in)`).
    pub source: String,
}

/// A kernel to cover.
#[derive(Debug, Clone)]
pub struct Target {
    pub os: OsInfo,
    pub release: String,
    /// The header package, when the fleet's doctor named it (its package
    /// database may know better than the release rules).
    pub package: Option<String>,
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: {detail}", path.display())]
    Manifest { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    Signature { path: PathBuf, detail: String },
    #[error("{file} in the bundle {}: {detail}", dir.display())]
    File {
        dir: PathBuf,
        file: String,
        detail: String,
    },
    #[error("fetching {url}")]
    Fetch {
        url: String,
        #[source]
        source: connector_fetch::FetchError,
    },
    #[error("the bundle {} has no {package} for {distro} {version}", dir.display())]
    Missing {
        dir: PathBuf,
        package: String,
        distro: String,
        version: String,
    },
}

/// The kernels of a doctor document (`doctor --json`, or the
/// `connector_doctor` fact of the Ansible collection) that need headers.
pub fn targets_from_doctor(text: &str, source: &str) -> Result<Vec<Target>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("{source} is not a doctor --json document"))?;
    let os = &v["os"];
    let (Some(id), Some(version)) = (os["id"].as_str(), os["version_id"].as_str()) else {
        anyhow::bail!("{source}: no os.id and os.version_id: not a doctor --json document");
    };
    // Each becomes part of a path in the bundle or of a command: checked
    // here, where it is read.
    let check = |what: &str, value: &str| {
        connector_host::name::check(what, value).map_err(|e| anyhow::anyhow!("{source}: {e}"))
    };
    check("os.id", id)?;
    check("os.version_id", version)?;
    let codename = os["codename"].as_str().filter(|c| !c.is_empty());
    if let Some(c) = codename {
        check("os.codename", c)?;
    }
    let info = OsInfo::named(id, version, codename);
    let mut out = Vec::new();
    for k in v["kernels"].as_array().into_iter().flatten() {
        let Some(release) = k["release"].as_str() else {
            anyhow::bail!("{source}: a kernel without a release");
        };
        check("kernel release", release)?;
        if k["headers"]["required"].as_bool() != Some(true) {
            continue;
        }
        let package = k["headers"]["package"].as_str();
        if let Some(p) = package {
            check("header package", p)?;
        }
        out.push(Target {
            os: info.clone(),
            release: release.to_string(),
            package: package.map(String::from),
        });
    }
    Ok(out)
}

/// Reads a doctor document (a regular file, at most 16 MiB).
pub fn read_doctor(path: &Path) -> Result<Vec<Target>> {
    let bytes =
        read_capped(path, MANIFEST_CAP).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
    targets_from_doctor(&text, &path.display().to_string())
}

/// `ID:VERSION[:CODENAME]`, as `--os` takes it.
pub fn parse_os(s: &str) -> Result<OsInfo> {
    let mut parts = s.splitn(3, ':');
    let id = parts.next().unwrap_or("");
    let version = parts.next().unwrap_or("");
    if id.is_empty() || version.is_empty() {
        anyhow::bail!("--os {s}: expected ID:VERSION[:CODENAME], as os-release says (debian:12:bookworm, rhel:8.9)");
    }
    let codename = parts.next();
    for (what, v) in [
        ("ID", Some(id)),
        ("VERSION", Some(version)),
        ("CODENAME", codename),
    ] {
        if let Some(v) = v {
            connector_host::name::check(what, v).map_err(|e| anyhow::anyhow!("--os: {e}"))?;
        }
    }
    let os = OsInfo::named(id, version, codename);
    if os.family().is_none() {
        anyhow::bail!("--os {s}: {id} is not a distribution the connector supports");
    }
    Ok(os)
}

/// The directory of one distribution in the bundle: `debian-12`.
pub(crate) fn os_dir(os: &OsInfo) -> String {
    format!("{}-{}", os.id, os.version_id)
}

/// A relative path that stays inside the bundle: plain names, no `..`.
pub(crate) fn safe_relative(file: &str) -> bool {
    !file.is_empty()
        && !file.starts_with('/')
        && file
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Reads at most `cap` bytes of a regular file (never a FIFO or device).
pub(crate) fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let f = connector_host::root::open_regular(path)?;
    let mut bytes = Vec::new();
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {cap} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// sha256 and size of a regular file inside the bundle.
pub(crate) fn digest(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut f = connector_host::root::open_regular(path)?;
    let mut h = Sha256::new();
    let size = std::io::copy(&mut f, &mut h)?;
    Ok((format!("{:x}", h.finalize()), size))
}

impl Manifest {
    pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Manifest, BundleError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| BundleError::Manifest {
            path: path.to_path_buf(),
            detail: format!("not a bundle manifest: {e}"),
        })?;
        if m.schema_version != SCHEMA_VERSION {
            return Err(BundleError::Manifest {
                path: path.to_path_buf(),
                detail: format!(
                    "schema_version {} (this installer reads {SCHEMA_VERSION}): build the bundle \
                     again with this installer",
                    m.schema_version
                ),
            });
        }
        if let Some(e) = m.packages.iter().find(|e| !safe_relative(&e.file)) {
            return Err(BundleError::Manifest {
                path: path.to_path_buf(),
                detail: format!("the file {:?} leaves the bundle", e.file),
            });
        }
        for e in &m.packages {
            for (what, v) in [
                ("serves", &e.serves),
                ("distro", &e.distro),
                ("version", &e.version),
                ("kernel", &e.kernel),
            ] {
                connector_host::name::check(what, v).map_err(|detail| BundleError::Manifest {
                    path: path.to_path_buf(),
                    detail,
                })?;
            }
        }
        Ok(m)
    }
}

/// An opened bundle whose manifest was verified.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The key that signed the manifest, when it is signed.
    pub signed_by: Option<String>,
}

impl Bundle {
    /// Whether `dir` is a bundle (has a manifest), not a plain directory of
    /// packages.
    pub fn is_bundle(dir: &Path) -> bool {
        std::fs::symlink_metadata(dir.join(MANIFEST)).is_ok()
    }

    /// Opens the bundle at `dir`: the manifest is read (capped, a regular
    /// file) and, when signed or when the site requires it (archives.conf
    /// `bundle-key`), its signature verified with `keys` (those keys only).
    pub fn open(
        dir: &Path,
        keys: &connector_deb::archive::TrustedKeys,
        require_signature: bool,
    ) -> Result<Bundle, BundleError> {
        let path = dir.join(MANIFEST);
        let bytes = read_capped(&path, MANIFEST_CAP).map_err(|e| BundleError::Manifest {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let sig_path = dir.join(SIGNATURE);
        let signed_by = match read_capped(&sig_path, 64 * 1024) {
            Ok(_) if keys.keys.is_empty() => {
                return Err(BundleError::Signature {
                    path: sig_path,
                    detail: format!(
                        "the bundle is signed, but no key to check it is configured: put the \
                         site's public key in the root and name it with `bundle-key PATH` in {}{}",
                        connector_host::layout::ARCHIVES_CONF,
                        if keys.looked.is_empty() {
                            String::new()
                        } else {
                            format!(" (looked for {})", keys.looked.join(", "))
                        }
                    ),
                })
            }
            Ok(sig) => Some(
                connector_deb::archive::verify_detached(
                    &bytes,
                    &sig,
                    keys,
                    &sig_path.display().to_string(),
                )
                .map_err(|e| BundleError::Signature {
                    path: sig_path.clone(),
                    detail: connector_host::cmd::chain(&e),
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if require_signature {
                    return Err(BundleError::Signature {
                        path: sig_path,
                        detail: "missing: archives.conf names a bundle-key, so bundles must be \
                                 signed (bundle --sign-key)"
                            .into(),
                    });
                }
                None
            }
            Err(e) => {
                return Err(BundleError::Signature {
                    path: sig_path,
                    detail: e.to_string(),
                })
            }
        };
        let manifest = Manifest::parse(&bytes, &path)?;
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
            signed_by,
        })
    }

    /// The files serving `package` on `os`, each checked against its
    /// digest and size; the header package's own file first.
    pub fn files_for(&self, os: &OsInfo, package: &str) -> Result<Vec<PathBuf>, BundleError> {
        let entries: Vec<&Entry> = self
            .manifest
            .packages
            .iter()
            .filter(|e| e.serves == package && e.distro == os.id && e.version == os.version_id)
            .collect();
        if entries.is_empty() {
            return Err(BundleError::Missing {
                dir: self.dir.clone(),
                package: package.to_string(),
                distro: os.id.clone(),
                version: os.version_id.clone(),
            });
        }
        let mut out = Vec::new();
        for e in entries {
            let path = self.dir.join(&e.file);
            let bad = |detail: String| BundleError::File {
                dir: self.dir.clone(),
                file: e.file.clone(),
                detail,
            };
            // No component of the way may be a link out of the bundle.
            let real = std::fs::canonicalize(&path).map_err(|err| bad(err.to_string()))?;
            let top = std::fs::canonicalize(&self.dir).map_err(|err| bad(err.to_string()))?;
            if !real.starts_with(&top) {
                return Err(bad(format!(
                    "leads out of the bundle, to {}",
                    real.display()
                )));
            }
            let (sha256, size) = digest(&real).map_err(|err| bad(err.to_string()))?;
            if size != e.size || !sha256.eq_ignore_ascii_case(&e.sha256) {
                return Err(bad(format!(
                    "does not match the manifest (sha256 {sha256}, {size} bytes; the manifest \
                     says {} and {} bytes): the bundle was changed after it was built",
                    e.sha256, e.size
                )));
            }
            out.push(real);
        }
        Ok(out)
    }
}

/// Copies what a bundle mirrored at `url` holds for `package` on `os` into
/// `dir`: its manifest and signature, then each of the package's files
/// checked against the manifest's digest while it downloads. The copy is
/// then opened and verified as a local bundle ([`Bundle::open`]).
pub fn fetch_remote(
    fetcher: &connector_fetch::Fetcher,
    url: &str,
    os: &OsInfo,
    package: &str,
    dir: &Path,
) -> Result<(), BundleError> {
    let base = url.trim_end_matches('/');
    let get = |name: &str, cap: u64| {
        let u = format!("{base}/{name}");
        fetcher
            .get(&u, cap)
            .map_err(|source| BundleError::Fetch { url: u, source })
    };
    let manifest = get(MANIFEST, MANIFEST_CAP)?;
    let parsed = Manifest::parse(&manifest, Path::new(&format!("{base}/{MANIFEST}")))?;
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).map_err(|e| BundleError::File {
            dir: dir.to_path_buf(),
            file: name.to_string(),
            detail: e.to_string(),
        })
    };
    write(MANIFEST, &manifest)?;
    match get(SIGNATURE, 64 * 1024) {
        Ok(sig) => write(SIGNATURE, &sig)?,
        Err(BundleError::Fetch {
            source: connector_fetch::FetchError::Status { status: 404, .. },
            ..
        }) => {}
        Err(e) => return Err(e),
    }
    for e in parsed
        .packages
        .iter()
        .filter(|e| e.serves == package && e.distro == os.id && e.version == os.version_id)
    {
        let dest = dir.join(&e.file);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|err| BundleError::File {
                dir: dir.to_path_buf(),
                file: e.file.clone(),
                detail: err.to_string(),
            })?;
        }
        let u = format!("{base}/{}", e.file);
        fetcher
            .download(
                &u,
                &dest,
                &connector_fetch::Expect {
                    sha256: Some(e.sha256.to_ascii_lowercase()),
                    size: Some(e.size),
                },
                &mut |_, _| {},
            )
            .map_err(|source| BundleError::Fetch { url: u, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_bundle_are_refused() {
        for bad in ["/etc/passwd", "../x.rpm", "a/../../x", "a//b", "./a", ""] {
            assert!(!safe_relative(bad), "{bad}");
        }
        assert!(safe_relative("debian-12/linux-headers_1_amd64.deb"));
        let m = r#"{"schema_version":1,"packages":[{"file":"../../etc/shadow","serves":"p","distro":"debian","version":"12","kernel":"k","sha256":"00","size":1,"source":"s"}]}"#;
        let e = Manifest::parse(m.as_bytes(), Path::new("m")).unwrap_err();
        assert!(e.to_string().contains("leaves the bundle"), "{e}");
    }

    #[test]
    fn doctor_documents_name_the_kernels_that_need_headers() {
        let doc = r#"{"os":{"id":"debian","version_id":"12"},"kernels":[
            {"release":"6.1.0-18-amd64","headers":{"required":true,"package":"linux-headers-6.1.0-18-amd64"}},
            {"release":"3.10.0-1160.el7.x86_64","headers":{"required":false,"package":null}}]}"#;
        let t = targets_from_doctor(doc, "d.json").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].release, "6.1.0-18-amd64");
        assert_eq!(
            t[0].package.as_deref(),
            Some("linux-headers-6.1.0-18-amd64")
        );
        assert_eq!(t[0].os.id, "debian");
        assert!(targets_from_doctor("{}", "d.json").is_err());
        assert!(parse_os("debian").is_err());
        assert!(parse_os("plan9:4").is_err());
        assert_eq!(
            parse_os("ubuntu:22.04:jammy").unwrap().codename.as_deref(),
            Some("jammy")
        );
    }
}
