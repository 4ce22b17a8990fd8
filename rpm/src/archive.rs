//! Finding, fetching and verifying an exact RPM in a vendor archive (CentOS
//! vault, Oracle's yum server, Rocky/Alma vaults, Amazon's mirrors, or an
//! internal mirror) when the configured repositories no longer carry it.
//!
//! The chain of trust, end to end:
//! 1. `repodata/repomd.xml` names the primary metadata and its sha256;
//! 2. the primary metadata must hash to that sha256, and names the package's
//!    location, size and sha256;
//! 3. the downloaded package must have that size and sha256 (checked while
//!    it streams);
//! 4. its header must name exactly the package asked for
//!    (name, version, release, arch);
//! 5. its signature must verify against a key trusted *for that archive*
//!    (the files archives.conf or the built-in table name, and the
//!    `gpgkey=file://` keys of the root's own repositories; never any file
//!    that happens to lie in `/etc/pki/rpm-gpg/`), and the signed header's payload digest must
//!    match the payload — or, for packages older than payload digests, a v3
//!    signature must cover header and payload.
//!
//! Steps 1–3 catch a broken mirror; 4–5 are what make the package
//! trustworthy, since repository metadata itself is not signed.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use connector_fetch::{sha256_bytes, Expect, FetchError, Fetcher};
use connector_host::Root;
use quick_xml::events::Event;
use rpm::signature::pgp::Verifier;
use rpm::signature::Verifying;
use sha2::{Digest, Sha256};

/// Repository metadata larger than this is refused (AppStream's primary
/// is tens of MB compressed).
const METADATA_LIMIT: u64 = 512 * 1024 * 1024;

/// `name-version-release.arch`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nevra {
    pub name: String,
    pub version: String,
    pub release: String,
    pub arch: String,
}

impl Nevra {
    /// Parses `kernel-devel-4.18.0-513.5.1.el8_9.x86_64`.
    pub fn parse(s: &str) -> Option<Nevra> {
        let (rest, arch) = s.rsplit_once('.')?;
        let (rest, release) = rest.rsplit_once('-')?;
        let (name, version) = rest.rsplit_once('-')?;
        if name.is_empty() || version.is_empty() || release.is_empty() || arch.is_empty() {
            return None;
        }
        Some(Nevra {
            name: name.into(),
            version: version.into(),
            release: release.into(),
            arch: arch.into(),
        })
    }
}

impl std::fmt::Display for Nevra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}-{}.{}",
            self.name, self.version, self.release, self.arch
        )
    }
}

/// A package as the repository metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPackage {
    pub url: String,
    pub sha256: String,
    pub size: Option<u64>,
}

/// Why an archive could not supply a verified package. The orchestration
/// tries the next archive on `NotInRepo`/`Fetch`, and reports the rest.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{url}: malformed repository metadata: {detail}")]
    Metadata { url: String, detail: String },
    #[error("{url}: primary metadata sha256 {actual} does not match repomd.xml's {expected} (tampered or inconsistent mirror)")]
    MetadataDigest {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{package} is not in {base}")]
    NotInRepo { package: String, base: String },
    #[error(
        "{url}: the repository lists only a {algo} checksum for {package}; sha256 is required"
    )]
    WeakChecksum {
        url: String,
        package: String,
        algo: String,
    },
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Why a downloaded package is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: not a readable RPM: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("{path}: the package header says {field} {found}, expected {expected}")]
    HeaderMismatch {
        path: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{path}: the package is not signed")]
    Unsigned { path: PathBuf },
    #[error(
        "{path}: its signature does not verify against any key trusted in the root ({keys}); \
         if the package is genuine, install the vendor's key in the root (or name it with \
         `key=PATH` in archives.conf): {detail}"
    )]
    BadSignature {
        path: PathBuf,
        keys: String,
        detail: String,
    },
    #[error(
        "none of the keys trusted for this archive is in the root (looked for: {looked}), so \
         {path} cannot be verified; install the vendor's key there, or name the key with \
         `key=PATH` in archives.conf"
    )]
    NoKeys { path: PathBuf, looked: String },
    #[error("{path}: payload sha256 {actual} does not match the signed header's {expected}")]
    PayloadDigest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "{path}: the signature does not cover the payload (no payload digest, no v3 signature)"
    )]
    PayloadUnsigned { path: PathBuf },
}

/// Looks `want` up in the rpm-md repository at `base` (ending in `/`).
pub fn find_in_repo(
    fetcher: &Fetcher,
    base: &str,
    want: &Nevra,
) -> Result<RepoPackage, ArchiveError> {
    let base = if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    };
    let repomd_url = format!("{base}repodata/repomd.xml");
    let repomd = fetcher.get(&repomd_url, 16 * 1024 * 1024)?;
    let (href, sha256) = primary_location(&repomd).map_err(|detail| ArchiveError::Metadata {
        url: repomd_url.clone(),
        detail,
    })?;
    let primary_url = format!("{base}{href}");
    let compressed = fetcher.get(&primary_url, METADATA_LIMIT)?;
    let actual = sha256_bytes(&compressed);
    if !actual.eq_ignore_ascii_case(&sha256) {
        return Err(ArchiveError::MetadataDigest {
            url: primary_url,
            expected: sha256,
            actual,
        });
    }
    let xml = decompress(&href, &compressed).map_err(|e| ArchiveError::Metadata {
        url: primary_url.clone(),
        detail: format!("decompressing: {e}"),
    })?;
    match find_package(&xml, want).map_err(|detail| ArchiveError::Metadata {
        url: primary_url.clone(),
        detail,
    })? {
        Some(entry) => {
            if entry.sum_type != "sha256" {
                return Err(ArchiveError::WeakChecksum {
                    url: primary_url,
                    package: want.to_string(),
                    algo: entry.sum_type,
                });
            }
            Ok(RepoPackage {
                url: format!("{base}{}", entry.href),
                sha256: entry.sum.to_ascii_lowercase(),
                size: entry.size,
            })
        }
        None => Err(ArchiveError::NotInRepo {
            package: want.to_string(),
            base,
        }),
    }
}

/// Fetches `pkg` into `dir` and verifies it completely; returns the file.
pub fn fetch_verified(
    fetcher: &Fetcher,
    pkg: &RepoPackage,
    want: &Nevra,
    keys: &TrustedKeys,
    dir: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<PathBuf, ArchiveError> {
    let dest = dir.join(format!("{want}.rpm"));
    // The payload's digest is taken as the package streams, beside its
    // sha256: the file is not read again to check it.
    let mut payload = PayloadTap::default();
    let got = fetcher.download_tapped(
        &pkg.url,
        &dest,
        &Expect {
            sha256: Some(pkg.sha256.clone()),
            size: pkg.size,
        },
        progress,
        Some(&mut payload),
    )?;
    if let Err(e) = verify(&got.path, want, keys, payload.finish()) {
        let _ = std::fs::remove_file(&got.path);
        return Err(e.into());
    }
    Ok(got.path)
}

/// The keys trusted for one archive: what was looked for, and what of it
/// the root has.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    /// The paths (patterns) named for the archive.
    pub looked: Vec<String>,
    /// (path, armored bytes) of each key found.
    pub keys: Vec<(String, Vec<u8>)>,
}

/// The armored keys at `paths` (inside the root; a name ending in `*`
/// matches every file it begins). Only these: a key that merely lies in
/// `/etc/pki/rpm-gpg/` is not trusted for an archive.
pub fn keys_at(root: &Root, paths: &[String]) -> TrustedKeys {
    let mut keys = Vec::new();
    for p in root.expand_globs(paths) {
        if let Ok(Some(text)) = root.read_to_string_optional(&p) {
            if text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
                keys.push((p, text.into_bytes()));
            }
        }
    }
    TrustedKeys {
        looked: paths.to_vec(),
        keys,
    }
}

/// The keys the root's own repositories trust: every `gpgkey=file://PATH`
/// of `/etc/yum.repos.d/*.repo` (URLs that are not local files are left
/// out: nothing is fetched to decide trust).
pub fn repo_gpgkeys(root: &Root) -> Vec<String> {
    let mut out = Vec::new();
    for name in root.read_dir_names("/etc/yum.repos.d").unwrap_or_default() {
        let name = name.to_string_lossy();
        if !name.ends_with(".repo") {
            continue;
        }
        let Ok(Some(text)) = root.read_to_string_optional(format!("/etc/yum.repos.d/{name}"))
        else {
            continue;
        };
        let mut in_gpgkey = false;
        for line in text.lines() {
            let value = match line.split_once('=') {
                Some((k, v)) if !line.starts_with(char::is_whitespace) => {
                    in_gpgkey = k.trim() == "gpgkey";
                    v
                }
                // A continuation line of a multi-key gpgkey=.
                _ if in_gpgkey && line.starts_with(char::is_whitespace) => line,
                _ => {
                    in_gpgkey = false;
                    continue;
                }
            };
            if !in_gpgkey {
                continue;
            }
            for url in value.split(|c: char| c.is_whitespace() || c == ',') {
                if let Some(path) = url.strip_prefix("file://") {
                    if path.starts_with('/') {
                        out.push(path.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What a package file says it is (`name-version-release.arch`), and the
/// names it requires, read from its header.
pub fn identity(path: &Path) -> Result<(Nevra, Vec<String>), VerifyError> {
    let unreadable = |detail: String| VerifyError::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    connector_host::root::open_regular(path).map_err(|e| unreadable(e.to_string()))?;
    let meta = rpm::PackageMetadata::open(path).map_err(|e| unreadable(e.to_string()))?;
    let field =
        |r: Result<&str, rpm::Error>| r.map(str::to_string).map_err(|e| unreadable(e.to_string()));
    let nevra = Nevra {
        name: field(meta.get_name())?,
        version: field(meta.get_version())?,
        release: field(meta.get_release())?,
        arch: field(meta.get_arch())?,
    };
    let requires = meta
        .get_requires()
        .map_err(|e| unreadable(e.to_string()))?
        .into_iter()
        .map(|d| d.name)
        .collect();
    Ok((nevra, requires))
}

/// Verifies a package file: exact identity, signature by a trusted key, and
/// payload covered by that signature. Reads the header into memory and
/// streams the payload.
pub fn verify_rpm(path: &Path, want: &Nevra, trusted: &TrustedKeys) -> Result<(), VerifyError> {
    verify(path, want, trusted, None)
}

/// The payload's place and sha256, taken while the package streamed
/// ([`PayloadTap`]): (offset, lowercase hex).
type Streamed = Option<(u64, String)>;

/// Reads the stream of an RPM file as it downloads and takes the sha256 of
/// its payload: the lead (96 bytes), the signature header (16 bytes of
/// intro, 16 per index entry, its data, padded to 8), the header (the
/// same, unpadded), then the payload, hashed to the end. A stream that is
/// not shaped like that gives nothing, and the file is read instead.
#[derive(Default)]
pub struct PayloadTap {
    /// Bytes seen so far.
    pos: u64,
    /// The signature header's and the header's 16-byte intros.
    signature: [u8; 16],
    header: [u8; 16],
    header_at: Option<u64>,
    payload_at: Option<u64>,
    broken: bool,
    hasher: Sha256,
}

const LEAD: u64 = 96;
const HEADER_MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];

impl PayloadTap {
    /// The 16-byte window at `at` filled from `bytes`, which start at
    /// `start`; true once the window is whole.
    fn fill(window: &mut [u8; 16], at: u64, start: u64, bytes: &[u8]) -> bool {
        let end = start + bytes.len() as u64;
        let (from, to) = (at.max(start), (at + 16).min(end));
        if from < to {
            window[(from - at) as usize..(to - at) as usize]
                .copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
        }
        end >= at + 16
    }

    /// A header's size from its intro, or None when it is not one.
    fn size(intro: &[u8; 16]) -> Option<u64> {
        if intro[..4] != HEADER_MAGIC {
            return None;
        }
        let word = |i: usize| u64::from(u32::from_be_bytes(intro[i..i + 4].try_into().unwrap()));
        Some(16 + word(8) * 16 + word(12))
    }

    /// Where the payload starts and its sha256, once the stream is done.
    pub fn finish(self) -> Streamed {
        let at = self.payload_at.filter(|_| !self.broken)?;
        (self.pos >= at).then(|| (at, hex::encode(self.hasher.finalize())))
    }
}

impl connector_fetch::Tap for PayloadTap {
    fn update(&mut self, bytes: &[u8]) {
        let start = self.pos;
        self.pos += bytes.len() as u64;
        if self.broken {
            return;
        }
        if self.header_at.is_none() {
            if !Self::fill(&mut self.signature, LEAD, start, bytes) {
                return;
            }
            match Self::size(&self.signature) {
                Some(size) => self.header_at = Some(LEAD + size.div_ceil(8) * 8),
                None => {
                    self.broken = true;
                    return;
                }
            }
        }
        if self.payload_at.is_none() {
            let at = self.header_at.expect("found above");
            if !Self::fill(&mut self.header, at, start, bytes) {
                return;
            }
            match Self::size(&self.header) {
                Some(size) => self.payload_at = Some(at + size),
                None => {
                    self.broken = true;
                    return;
                }
            }
        }
        let at = self.payload_at.expect("found above");
        if self.pos > at {
            self.hasher
                .update(&bytes[at.saturating_sub(start) as usize..]);
        }
    }

    fn reset(&mut self) {
        *self = PayloadTap::default();
    }
}

/// [`verify_rpm`], with the payload's digest already taken if it streamed.
fn verify(
    path: &Path,
    want: &Nevra,
    trusted: &TrustedKeys,
    streamed: Streamed,
) -> Result<(), VerifyError> {
    let keys = &trusted.keys;
    let unreadable = |detail: String| VerifyError::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    let meta = rpm::PackageMetadata::open(path).map_err(|e| unreadable(e.to_string()))?;
    let fields: [(&'static str, &str, Result<&str, rpm::Error>); 4] = [
        ("name", &want.name, meta.get_name()),
        ("version", &want.version, meta.get_version()),
        ("release", &want.release, meta.get_release()),
        ("arch", &want.arch, meta.get_arch()),
    ];
    for (field, expected, found) in fields {
        let found = found.map_err(|e| unreadable(e.to_string()))?;
        if found != expected {
            return Err(VerifyError::HeaderMismatch {
                path: path.to_path_buf(),
                field,
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
    }
    if keys.is_empty() {
        return Err(VerifyError::NoKeys {
            path: path.to_path_buf(),
            looked: if trusted.looked.is_empty() {
                "no key is named for it".into()
            } else {
                trusted.looked.join(", ")
            },
        });
    }
    let mut verifier = Verifier::new();
    let mut names = Vec::new();
    for (name, bytes) in keys {
        // A file that is not a usable key is skipped, not fatal.
        if verifier.load_from_asc_bytes(bytes).is_ok() {
            names.push(name.clone());
        }
    }
    let key_list = names.join(", ");
    let report = meta
        .check_signatures(&verifier)
        .map_err(|e| unreadable(e.to_string()))?;
    if report.signatures.is_empty() {
        return Err(VerifyError::Unsigned {
            path: path.to_path_buf(),
        });
    }
    if let Some(failed) = report.signatures.iter().find_map(|s| s.error.as_ref()) {
        if report.signatures.iter().all(|s| s.error.is_some()) {
            return Err(VerifyError::BadSignature {
                path: path.to_path_buf(),
                keys: key_list,
                detail: failed.to_string(),
            });
        }
    }
    if let Err(e) = report.digests.result() {
        return Err(unreadable(format!("header digest: {e}")));
    }
    // The header is signed; the payload is covered through the header's
    // payload digest (rpm >= 4.14) ...
    let offset = meta.get_package_segment_offsets().payload;
    if let Ok(expected) = meta
        .header
        .get_entry_data_as_string(rpm::IndexTag::RPMTAG_PAYLOADSHA256)
    {
        let actual = match streamed {
            // Taken from the same bytes, if it found the payload where
            // the header says it is.
            Some((at, digest)) if at == offset => digest,
            _ => {
                let mut f = connector_host::root::open_regular(path)
                    .map_err(|e| unreadable(e.to_string()))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| unreadable(e.to_string()))?;
                let mut h = Sha256::new();
                io::copy(&mut f, &mut h).map_err(|e| unreadable(e.to_string()))?;
                hex::encode(h.finalize())
            }
        };
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(VerifyError::PayloadDigest {
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual,
            });
        }
        return Ok(());
    }
    // ... or, for older packages, by a v3 signature over header + payload.
    for tag in [
        rpm::IndexSignatureTag::RPMSIGTAG_PGP,
        rpm::IndexSignatureTag::RPMSIGTAG_GPG,
    ] {
        if let Ok(sig) = meta.signature.get_entry_data_as_binary(tag) {
            // The signed data is the header as stored, then the payload:
            // everything from the header's offset to the end of the file.
            let header_at = meta.get_package_segment_offsets().header;
            let mut f = BufReader::new(
                connector_host::root::open_regular(path).map_err(|e| unreadable(e.to_string()))?,
            );
            f.seek(SeekFrom::Start(header_at))
                .map_err(|e| unreadable(e.to_string()))?;
            return verifier
                .verify(f, sig)
                .map_err(|e| VerifyError::BadSignature {
                    path: path.to_path_buf(),
                    keys: key_list.clone(),
                    detail: format!("v3 header+payload signature: {e}"),
                });
        }
    }
    Err(VerifyError::PayloadUnsigned {
        path: path.to_path_buf(),
    })
}

/// The primary metadata's location and sha256, from repomd.xml.
fn primary_location(repomd: &[u8]) -> Result<(String, String), String> {
    let mut reader = quick_xml::Reader::from_reader(repomd);
    let mut buf = Vec::new();
    let mut in_primary = false;
    let mut in_checksum = false;
    let mut checksum_type = String::new();
    let mut href = None;
    let mut sum = None;
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name();
                match name.as_ref() {
                    "data" => {
                        in_primary = attr(&e, "type").as_deref() == Some("primary");
                    }
                    "checksum" if in_primary => {
                        in_checksum = true;
                        checksum_type = attr(&e, "type").unwrap_or_default();
                    }
                    "location" if in_primary => href = attr(&e, "href"),
                    _ => {}
                }
            }
            Event::Text(t) if in_checksum => {
                let text = t.xml10_content();
                sum = Some(text.trim().to_string());
            }
            Event::End(e) => match e.local_name().as_ref() {
                "checksum" => in_checksum = false,
                "data" if in_primary => break,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let href = href.ok_or("no <data type=\"primary\"> location")?;
    let sum = sum.ok_or("no checksum for the primary metadata")?;
    if checksum_type != "sha256" {
        return Err(format!(
            "primary metadata checksum is {checksum_type}, sha256 is required"
        ));
    }
    if href.contains("..") || href.starts_with('/') || href.contains("://") {
        return Err(format!("primary location {href:?} leaves the repository"));
    }
    Ok((href, sum))
}

/// One package entry of primary.xml.
struct PrimaryEntry {
    href: String,
    sum_type: String,
    sum: String,
    size: Option<u64>,
}

/// Finds the package in primary.xml.
fn find_package(xml: &[u8], want: &Nevra) -> Result<Option<PrimaryEntry>, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    #[derive(Default)]
    struct Cur {
        name: String,
        arch: String,
        ver: String,
        rel: String,
        sum_type: String,
        sum: String,
        href: String,
        size: Option<u64>,
    }
    let mut cur = Cur::default();
    let mut field: Option<&'static str> = None;
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "package" => cur = Cur::default(),
                "name" => field = Some("name"),
                "arch" => field = Some("arch"),
                "checksum" => {
                    field = Some("checksum");
                    cur.sum_type = attr(&e, "type").unwrap_or_default();
                }
                "version" => {
                    cur.ver = attr(&e, "ver").unwrap_or_default();
                    cur.rel = attr(&e, "rel").unwrap_or_default();
                }
                "location" => cur.href = attr(&e, "href").unwrap_or_default(),
                "size" => cur.size = attr(&e, "package").and_then(|s| s.parse().ok()),
                _ => field = None,
            },
            Event::Text(t) => {
                if let Some(f) = field {
                    let text = t.xml10_content().trim().to_string();
                    match f {
                        "name" => cur.name = text,
                        "arch" => cur.arch = text,
                        "checksum" => cur.sum = text,
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                field = None;
                if e.local_name().as_ref() == "package"
                    && cur.name == want.name
                    && cur.arch == want.arch
                    && cur.ver == want.version
                    && cur.rel == want.release
                {
                    if cur.href.contains("..")
                        || cur.href.starts_with('/')
                        || cur.href.contains("://")
                    {
                        return Err(format!(
                            "package location {:?} leaves the repository",
                            cur.href
                        ));
                    }
                    return Ok(Some(PrimaryEntry {
                        href: cur.href,
                        sum_type: cur.sum_type,
                        sum: cur.sum,
                        size: cur.size,
                    }));
                }
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
        buf.clear();
    }
}

/// An attribute's value. The metadata is parsed before anything vouches
/// for it (repomd.xml comes from the mirror): no duplicate-attribute check
/// (the first wins), whose cost grew with the square of a start tag's
/// attributes before quick-xml 0.41 (RUSTSEC-2026-0194).
fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    let mut attrs = e.attributes();
    attrs.with_checks(false);
    attrs
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Decompresses metadata by its file name: .gz, .xz, .zst, .bz2 or plain.
fn decompress(name: &str, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    } else if name.ends_with(".xz") {
        xz2::read::XzDecoder::new(bytes).read_to_end(&mut out)?;
    } else if name.ends_with(".zst") {
        out = zstd::stream::decode_all(bytes)?;
    } else if name.ends_with(".bz2") {
        bzip2::read::BzDecoder::new(bytes).read_to_end(&mut out)?;
    } else {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_fetch::Tap;

    /// A real package's bytes, its payload's offset and its signed digest.
    fn package() -> (Vec<u8>, u64, String) {
        let mut b =
            rpm::PackageBuilder::new("kernel-devel", "5.14.0", "GPL-2.0-only", "x86_64", "t");
        b.release("1.el9");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        b.with_file_contents(content, rpm::FileOptions::new("/usr/src/kernels/blob"))
            .unwrap();
        let mut bytes = Vec::new();
        b.build().unwrap().write(&mut bytes).unwrap();
        let meta = rpm::PackageMetadata::parse(&mut &bytes[..]).unwrap();
        let digest = meta
            .header
            .get_entry_data_as_string(rpm::IndexTag::RPMTAG_PAYLOADSHA256)
            .unwrap()
            .to_string();
        let at = meta.get_package_segment_offsets().payload;
        // The digest is the payload's, as the reading path finds it.
        assert_eq!(sha256_bytes(&bytes[at as usize..]), digest);
        (bytes, at, digest)
    }

    fn tapped(bytes: &[u8], chunk: usize) -> Streamed {
        let mut tap = PayloadTap::default();
        for c in bytes.chunks(chunk) {
            tap.update(c);
        }
        tap.finish()
    }

    #[test]
    fn the_payload_digest_is_taken_as_the_package_streams() {
        let (bytes, at, digest) = package();
        // Any split of the stream, the windows it reads straddled or not.
        for chunk in [1, 7, 16, 95, 96, 97, 111, 4096, 65536, bytes.len()] {
            assert_eq!(
                tapped(&bytes, chunk),
                Some((at, digest.clone())),
                "chunks of {chunk}"
            );
        }
        // A transfer that starts over is taken from its new start.
        let mut tap = PayloadTap::default();
        tap.update(&bytes[..at as usize + 1000]);
        tap.reset();
        tap.update(&bytes);
        assert_eq!(tap.finish(), Some((at, digest)));
    }

    #[test]
    fn a_stream_not_shaped_like_a_package_gives_nothing() {
        let (bytes, at, _) = package();
        // Ended before its payload.
        assert_eq!(tapped(&bytes[..at as usize - 1], 4096), None);
        // Not an RPM at all, or a header without its magic.
        assert_eq!(tapped(&[0u8; 4096], 100), None);
        let mut bad = bytes.clone();
        bad[96] ^= 0xff;
        assert_eq!(tapped(&bad, 4096), None);
        // The main header's magic gone: nothing, not a digest of the wrong
        // bytes.
        let sig = PayloadTap::size(&bytes[96..112].try_into().unwrap()).unwrap();
        let header_at = 96 + sig.div_ceil(8) as usize * 8;
        let mut bad = bytes.clone();
        bad[header_at] ^= 0xff;
        assert_eq!(tapped(&bad, 4096), None);
        // A payload that differs gives its own digest, which the header's
        // then refuses.
        let mut changed = bytes.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        let (_, d) = tapped(&changed, 4096).unwrap();
        assert_eq!(d, sha256_bytes(&changed[at as usize..]));
    }

    #[test]
    fn nevra_parsing() {
        let n = Nevra::parse("kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64").unwrap();
        assert_eq!(n.name, "kernel-uek-devel");
        assert_eq!(n.version, "5.15.0");
        assert_eq!(n.release, "200.131.27.el8uek");
        assert_eq!(n.arch, "x86_64");
        assert_eq!(
            n.to_string(),
            "kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64"
        );
        assert!(Nevra::parse("nodashes").is_none());
    }

    #[test]
    fn repomd_parsing_and_hostile_locations() {
        let ok = br#"<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo">
          <data type="filelists"><checksum type="sha256">aa</checksum><location href="repodata/f.xml.gz"/></data>
          <data type="primary"><checksum type="sha256">bb</checksum><open-checksum type="sha256">cc</open-checksum>
          <location href="repodata/p-primary.xml.zst"/></data></repomd>"#;
        assert_eq!(
            primary_location(ok).unwrap(),
            ("repodata/p-primary.xml.zst".to_string(), "bb".to_string())
        );
        let evil = br#"<repomd><data type="primary"><checksum type="sha256">bb</checksum><location href="../../etc/x"/></data></repomd>"#;
        assert!(primary_location(evil)
            .unwrap_err()
            .contains("leaves the repository"));
        let weak = br#"<repomd><data type="primary"><checksum type="sha1">bb</checksum><location href="repodata/p.xml"/></data></repomd>"#;
        assert!(primary_location(weak)
            .unwrap_err()
            .contains("sha256 is required"));
        assert!(primary_location(b"<repomd></repomd>").is_err());
        assert!(primary_location(b"<repomd><data type=\"primary\"><").is_err());
        // Escaped attribute values are read unescaped; a start tag with its
        // attributes repeated thousands of times (a mirror's metadata is read
        // before anything vouches for it) is read, the first one winning.
        let escaped = br#"<repomd><data type="primary"><checksum type="sha256">bb</checksum><location href="repodata/a&amp;b.xml"/></data></repomd>"#;
        assert_eq!(primary_location(escaped).unwrap().0, "repodata/a&b.xml");
        let mut many = String::from(
            r#"<repomd><data type="primary"><checksum type="sha256">bb</checksum><location href="repodata/p.xml""#,
        );
        for _ in 0..20_000 {
            many.push_str(r#" href="repodata/other.xml""#);
        }
        many.push_str("/></data></repomd>");
        assert_eq!(
            primary_location(many.as_bytes()).unwrap().0,
            "repodata/p.xml"
        );
    }
}
