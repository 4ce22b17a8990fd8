//! Finding, fetching and verifying an exact `.deb` in a Debian-format
//! archive (a mirror, snapshot.debian.org, an internal mirror) when the
//! configured sources no longer carry it.
//!
//! The chain of trust, as apt's own:
//! 1. `dists/SUITE/InRelease` must carry a signature that verifies against a
//!    key trusted *for that archive*: the keyrings archives.conf or the
//!    built-in table name, and the `Signed-By` of the root's apt sources for
//!    the same URI — never any keyring that happens to lie in
//!    `/usr/share/keyrings` or `/etc/apt/trusted.gpg.d`;
//! 2. the `Packages` index must have the size and sha256 InRelease states;
//! 3. the `.deb` must have the size and sha256 the index states (checked
//!    while it streams);
//! 4. its control data must name exactly the package, version and
//!    architecture asked for.
//!
//! The kernel-specific packages it depends on (`linux-headers-V-common`,
//! `linux-kbuild-V`, …) are taken from the same verified index, since a
//! distribution that dropped one has usually dropped the others.

use std::collections::BTreeMap;
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use connector_fetch::{sha256_bytes, Expect, FetchError, Fetcher};
use connector_host::Root;
use debian_packaging::control::ControlParagraphReader;
use debian_packaging::io::Compression;
use debian_packaging::package_version::PackageVersion;
use debian_packaging::repository::release::{ChecksumType, ReleaseFile};
use pgp::{Deserializable, SignedPublicKey};

const INDEX_LIMIT: u64 = 256 * 1024 * 1024;

/// Where to look: `BASE/dists/SUITE/COMPONENT/binary-ARCH/Packages*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebArchive {
    pub base: String,
    pub suite: String,
    pub component: String,
    pub arch: String,
}

/// One package as the verified index describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub url: String,
    pub sha256: String,
    pub size: Option<u64>,
    /// Its `Depends`, raw.
    pub depends: String,
}

/// Why an archive could not supply a verified package.
#[derive(Debug, thiserror::Error)]
pub enum DebArchiveError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{url}: malformed {what}: {detail}")]
    Malformed {
        url: String,
        what: &'static str,
        detail: String,
    },
    #[error("{url}: not signed")]
    Unsigned { url: String },
    #[error(
        "{url}: the signature does not verify against any key trusted in the root ({keys}); \
         if the archive is genuine, install the distribution's keyring in the root (or name it \
         with `key=PATH` in archives.conf)"
    )]
    BadSignature { url: String, keys: String },
    #[error(
        "none of the keys trusted for this archive is in the root (looked for: {looked}), so \
         {url} cannot be verified; install the distribution's keyring there, or name it with \
         `key=PATH` in archives.conf (or `Signed-By` in the matching apt source)"
    )]
    NoKeys { url: String, looked: String },
    #[error("{url} lists no {component}/binary-{arch} Packages index with a sha256")]
    NoIndex {
        url: String,
        component: String,
        arch: String,
    },
    #[error("{url}: {what} sha256 {actual} does not match the signed {expected}")]
    Digest {
        url: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{package} is not in {url}")]
    NotInArchive { package: String, url: String },
    #[error("{path}: the package's control data says {field} {found}, expected {expected}")]
    ControlMismatch {
        path: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{path}: not a readable .deb: {detail}")]
    Unreadable { path: PathBuf, detail: String },
}

/// The keys trusted for one archive: what was looked for, and the keys
/// of it the root has.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    pub looked: Vec<String>,
    pub keys: Vec<(String, SignedPublicKey)>,
}

/// The keyrings at `paths` (inside the root; a name ending in `*` matches
/// every file it begins). Only these: a keyring that merely lies in
/// `/usr/share/keyrings` or `/etc/apt/trusted.gpg.d` is not trusted for an
/// archive.
pub fn keys_at(root: &Root, paths: &[String]) -> TrustedKeys {
    let mut out = Vec::new();
    for f in root.expand_globs(paths) {
        let Ok(Some(host)) = root.resolve_optional(&f) else {
            continue;
        };
        let Ok(file) = connector_host::root::open_regular(&host) else {
            continue;
        };
        let mut bytes = Vec::new();
        if file
            .take(connector_host::root::READ_CAP)
            .read_to_end(&mut bytes)
            .is_err()
        {
            continue;
        }
        for key in parse_keys(&bytes) {
            out.push((f.clone(), key));
        }
    }
    TrustedKeys {
        looked: paths.to_vec(),
        keys: out,
    }
}

/// The `Signed-By` keyrings of the root's apt sources whose URI is `url`
/// (one-line `[signed-by=…]` in sources.list and `*.list`, and the
/// `Signed-By:` field of deb822 `*.sources`; inline keys are not read).
pub fn signed_by_for(root: &Root, url: &str) -> Vec<String> {
    let want = with_slash(url);
    let mut out = Vec::new();
    let mut files = vec!["/etc/apt/sources.list".to_string()];
    for name in root
        .read_dir_names("/etc/apt/sources.list.d")
        .unwrap_or_default()
    {
        files.push(format!(
            "/etc/apt/sources.list.d/{}",
            name.to_string_lossy()
        ));
    }
    for f in files {
        let Ok(Some(text)) = root.read_to_string_optional(&f) else {
            continue;
        };
        if f.ends_with(".sources") {
            for para in text.split("\n\n") {
                let field = |k: &str| {
                    para.lines().find_map(|l| {
                        l.split_once(':')
                            .filter(|(key, _)| key.trim().eq_ignore_ascii_case(k))
                            .map(|(_, v)| v.trim().to_string())
                    })
                };
                let uris = field("URIs").unwrap_or_default();
                if uris.split_whitespace().any(|u| with_slash(u) == want) {
                    if let Some(by) = field("Signed-By") {
                        out.extend(
                            by.split_whitespace()
                                .filter(|p| p.starts_with('/'))
                                .map(String::from),
                        );
                    }
                }
            }
        } else if f.ends_with(".list") {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                let Some(rest) = line.strip_prefix("deb ") else {
                    continue;
                };
                let rest = rest.trim_start();
                let (opts, rest) = match rest.strip_prefix('[') {
                    Some(r) => r.split_once(']').unwrap_or(("", r)),
                    None => ("", rest),
                };
                let uri = rest.split_whitespace().next().unwrap_or("");
                if with_slash(uri) != want {
                    continue;
                }
                for o in opts.split_whitespace() {
                    if let Some(v) = o.strip_prefix("signed-by=") {
                        out.extend(
                            v.split(',')
                                .filter(|p| p.starts_with('/'))
                                .map(String::from),
                        );
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Parses an armored or binary keyring; unparsable input yields nothing.
pub fn parse_keys(bytes: &[u8]) -> Vec<SignedPublicKey> {
    if bytes.starts_with(b"-----BEGIN PGP") {
        match SignedPublicKey::from_armor_many(Cursor::new(bytes)) {
            Ok((keys, _)) => keys.flatten().collect(),
            Err(_) => Vec::new(),
        }
    } else {
        SignedPublicKey::from_bytes_many(Cursor::new(bytes))
            .flatten()
            .collect()
    }
}

/// Fetches and verifies `dists/SUITE/InRelease`, then the Packages index;
/// returns the index's paragraphs as text.
pub fn verified_index(
    fetcher: &Fetcher,
    a: &DebArchive,
    trusted: &TrustedKeys,
) -> Result<String, DebArchiveError> {
    let keys = &trusted.keys;
    let base = with_slash(&a.base);
    let url = format!("{base}dists/{}/InRelease", a.suite);
    let bytes = fetcher.get(&url, 64 * 1024 * 1024)?;
    if keys.is_empty() {
        return Err(DebArchiveError::NoKeys {
            url,
            looked: if trusted.looked.is_empty() {
                "no key is named for it".into()
            } else {
                trusted.looked.join(", ")
            },
        });
    }
    let release =
        ReleaseFile::from_armored_reader(BufReader::new(Cursor::new(bytes))).map_err(|e| {
            DebArchiveError::Malformed {
                url: url.clone(),
                what: "InRelease",
                detail: e.to_string(),
            }
        })?;
    let sigs = release
        .signatures()
        .ok_or_else(|| DebArchiveError::Unsigned { url: url.clone() })?;
    if sigs.iter_signatures().next().is_none() {
        return Err(DebArchiveError::Unsigned { url });
    }
    let verified = keys.iter().any(|(_, key)| {
        sigs.verify(key).is_ok_and(|n| n > 0)
            || key
                .public_subkeys
                .iter()
                .any(|sub| sigs.verify(sub).is_ok_and(|n| n > 0))
    });
    if !verified {
        let mut names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        return Err(DebArchiveError::BadSignature {
            url,
            keys: names.join(", "),
        });
    }
    // The index, preferring the smallest download apt would also take.
    let entry = [Compression::Xz, Compression::Gzip, Compression::None]
        .into_iter()
        .find_map(|c| {
            release.find_packages_indices(ChecksumType::Sha256, c, &a.component, &a.arch, false)
        })
        .ok_or_else(|| DebArchiveError::NoIndex {
            url: url.clone(),
            component: a.component.clone(),
            arch: a.arch.clone(),
        })?;
    let path = entry.path.to_string();
    if path.contains("..") || path.starts_with('/') {
        return Err(DebArchiveError::Malformed {
            url,
            what: "InRelease",
            detail: format!("index path {path:?} leaves the archive"),
        });
    }
    let expected = entry.digest.digest_hex();
    let compression = entry.compression;
    let index_url = format!("{base}dists/{}/{path}", a.suite);
    let raw = fetcher.get(&index_url, INDEX_LIMIT)?;
    let actual = sha256_bytes(&raw);
    if !actual.eq_ignore_ascii_case(&expected) {
        return Err(DebArchiveError::Digest {
            url: index_url,
            what: "Packages index".into(),
            expected,
            actual,
        });
    }
    let mut text = String::new();
    let res = match compression {
        Compression::Xz => xz2::read::XzDecoder::new(raw.as_slice()).read_to_string(&mut text),
        Compression::Gzip => flate2::read::GzDecoder::new(raw.as_slice()).read_to_string(&mut text),
        _ => String::from_utf8(raw)
            .map(|s| {
                text = s;
                0
            })
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
    };
    res.map_err(|e| DebArchiveError::Malformed {
        url: index_url,
        what: "Packages index",
        detail: e.to_string(),
    })?;
    Ok(text)
}

/// Looks `name` up in a verified index: the exact `version` when given, else
/// the highest. Architecture `arch` or `all`.
pub fn find_in_index(
    index: &str,
    a: &DebArchive,
    name: &str,
    version: Option<&str>,
) -> Option<DebPackage> {
    let base = with_slash(&a.base);
    let mut best: Option<(PackageVersion, DebPackage)> = None;
    for para in ControlParagraphReader::new(Cursor::new(index.as_bytes())).flatten() {
        if para.field_str("Package") != Some(name) {
            continue;
        }
        let arch = para.field_str("Architecture").unwrap_or("");
        if arch != a.arch && arch != "all" {
            continue;
        }
        let ver = para.field_str("Version").unwrap_or("").to_string();
        if version.is_some_and(|v| v != ver) {
            continue;
        }
        let (Some(file), Some(sha)) = (para.field_str("Filename"), para.field_str("SHA256")) else {
            continue;
        };
        if file.contains("..") || file.starts_with('/') || file.contains("://") {
            continue;
        }
        let Ok(pv) = PackageVersion::parse(&ver) else {
            continue;
        };
        let pkg = DebPackage {
            name: name.to_string(),
            version: ver,
            arch: arch.to_string(),
            url: format!("{base}{file}"),
            sha256: sha.to_ascii_lowercase(),
            size: para.field_str("Size").and_then(|s| s.parse().ok()),
            depends: para.field_str("Depends").unwrap_or("").to_string(),
        };
        if best.as_ref().is_none_or(|(b, _)| pv > *b) {
            best = Some((pv, pkg));
        }
    }
    best.map(|(_, p)| p)
}

/// The package and the kernel packages it depends on (names starting with
/// `linux-`), from the same index, each with the exact version its
/// dependent names when it names one.
pub fn closure(
    index: &str,
    a: &DebArchive,
    name: &str,
) -> Result<Vec<DebPackage>, DebArchiveError> {
    let first =
        find_in_index(index, a, name, None).ok_or_else(|| DebArchiveError::NotInArchive {
            package: name.to_string(),
            url: format!("{}dists/{}", with_slash(&a.base), a.suite),
        })?;
    let mut out: BTreeMap<String, DebPackage> = BTreeMap::new();
    let mut queue = vec![first];
    while let Some(p) = queue.pop() {
        if out.contains_key(&p.name) || out.len() > 16 {
            continue;
        }
        for dep in p.depends.split(',') {
            // First alternative of each dependency; `name (op version)`.
            let first_alt = dep.split('|').next().unwrap_or("").trim();
            let dep_name = first_alt.split([' ', '(', ':']).next().unwrap_or("").trim();
            if !dep_name.starts_with("linux-") || out.contains_key(dep_name) {
                continue;
            }
            let exact = first_alt
                .split_once("(=")
                .and_then(|(_, v)| v.split(')').next())
                .map(|v| v.trim().to_string());
            if let Some(d) = find_in_index(index, a, dep_name, exact.as_deref()) {
                queue.push(d);
            }
        }
        out.insert(p.name.clone(), p);
    }
    Ok(out.into_values().collect())
}

/// Downloads `p` into `dir` and checks its control data.
pub fn fetch_verified(
    fetcher: &Fetcher,
    p: &DebPackage,
    dir: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<PathBuf, DebArchiveError> {
    let dest = dir.join(format!(
        "{}_{}_{}.deb",
        p.name,
        p.version.replace(':', "%3a"),
        p.arch
    ));
    let got = fetcher.download(
        &p.url,
        &dest,
        &Expect {
            sha256: Some(p.sha256.clone()),
            size: p.size,
        },
        progress,
    )?;
    if let Err(e) = check_control(&got.path, &p.name, Some(&p.version), &p.arch) {
        let _ = std::fs::remove_file(&got.path);
        return Err(e);
    }
    Ok(got.path)
}

/// A `.deb`'s (Package, Version, Architecture).
pub type ControlId = (String, String, String);

/// What a `.deb` says it is, and the package names of its Depends
/// (alternatives included).
pub fn control_identity(path: &Path) -> Result<(ControlId, Vec<String>), DebArchiveError> {
    let unreadable = |detail: String| DebArchiveError::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    let f = connector_host::root::open_regular(path).map_err(|e| unreadable(e.to_string()))?;
    let control = debian_packaging::deb::reader::resolve_control_file(BufReader::new(f))
        .map_err(|e| unreadable(e.to_string()))?;
    let get = |r: Result<&str, _>| {
        r.map(str::to_string)
            .map_err(|e: debian_packaging::error::DebianError| unreadable(e.to_string()))
    };
    let id = (
        get(control.package())?,
        get(control.version_str())?,
        get(control.architecture())?,
    );
    let depends = control
        .field_str("Depends")
        .unwrap_or("")
        .split([',', '|'])
        .filter_map(|d| {
            d.split(|c: char| c.is_whitespace() || c == '(' || c == ':')
                .find(|w| !w.is_empty())
                .map(str::to_string)
        })
        .collect();
    Ok((id, depends))
}

/// Checks a `.deb`'s control data names `name` (and `version`, `arch`).
pub fn check_control(
    path: &Path,
    name: &str,
    version: Option<&str>,
    arch: &str,
) -> Result<(), DebArchiveError> {
    let ((found_name, found_version, found_arch), _) = control_identity(path)?;
    let mismatch = |field, expected: &str, found: &str| DebArchiveError::ControlMismatch {
        path: path.to_path_buf(),
        field,
        expected: expected.to_string(),
        found: found.to_string(),
    };
    if found_name != name {
        return Err(mismatch("Package", name, &found_name));
    }
    if let Some(v) = version {
        if found_version != v {
            return Err(mismatch("Version", v, &found_version));
        }
    }
    if found_arch != arch && found_arch != "all" {
        return Err(mismatch("Architecture", arch, &found_arch));
    }
    Ok(())
}

fn with_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}
/// Verifies an armored detached signature over `data` with one of
/// `trusted`; returns the name of the key file that verified it.
pub fn verify_detached(
    data: &[u8],
    armored: &[u8],
    trusted: &TrustedKeys,
    what: &str,
) -> Result<String, DebArchiveError> {
    if trusted.keys.is_empty() {
        return Err(DebArchiveError::NoKeys {
            url: what.to_string(),
            looked: if trusted.looked.is_empty() {
                "no key is named for it".into()
            } else {
                trusted.looked.join(", ")
            },
        });
    }
    let (sig, _) =
        pgp::StandaloneSignature::from_armor_single(Cursor::new(armored)).map_err(|e| {
            DebArchiveError::Malformed {
                url: what.to_string(),
                what: "signature",
                detail: e.to_string(),
            }
        })?;
    for (name, key) in &trusted.keys {
        if sig.verify(key, data).is_ok()
            || key
                .public_subkeys
                .iter()
                .any(|sub| sig.verify(sub, data).is_ok())
        {
            return Ok(name.clone());
        }
    }
    let mut names: Vec<&str> = trusted.keys.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    Err(DebArchiveError::BadSignature {
        url: what.to_string(),
        keys: names.join(", "),
    })
}
