//! The `.rpm`'s signature header: an OpenPGP signature of the header by
//! the key given to the build, and the legacy tags EL7's rpm 4.11 reads.
//!
//! The `rpm` crate writes what rpm 4.14 and later check (SHA-1 and SHA-256
//! header digests, the payload's SHA-256 in the header, the header+payload
//! size) and, given a key, the header-only RSA signature. rpm 4.11 knows
//! neither the payload digest in the header nor a total for its progress
//! bar, so two tags are added as `rpmbuild` writes them:
//! - `RPMSIGTAG_MD5` (1004): MD5 of the header and the compressed payload,
//!   the only digest 4.11's `rpm -K` checks over the payload (without it, a
//!   package with an altered payload shows `sha1 OK`);
//! - `RPMSIGTAG_PAYLOADSIZE` (1007): the uncompressed archive's size, which
//!   4.11 reads as `ARCHIVESIZE` (without it, `rpm -ivh` draws one `#` per
//!   byte of the package).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use md5::{Digest as _, Md5};
use pgp::composed::{ArmorOptions, Deserializable, SignedSecretKey};
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::types::KeyDetails;
use rpm::{HeaderEntry, IndexData, IndexSignatureTag};

const RPMSIGTAG_MD5: u32 = 1004;
const RPMSIGTAG_PAYLOADSIZE: u32 = 1007;
/// The largest key file read (an armored RSA-4096 secret key with its
/// user IDs and subkeys is a few KiB).
const KEY_FILE_CAP: u64 = 1 << 20;

/// Where the public key is shipped, so a site can import it
/// (`rpm --import`, apt's `Signed-By`).
pub const RPM_KEY_PATH: &str = connector_host::layout::RPM_KEY;
/// The same key for apt (armored; `Signed-By:` takes `.asc` from apt 2.4).
pub const DEB_KEY_PATH: &str = connector_host::layout::DEB_KEYRING;
/// The public key's name beside the built packages.
pub const KEY_FILE_NAME: &str = "RPM-GPG-KEY-connector";

/// The key the `.rpm` is signed with: an armored OpenPGP secret key
/// without a passphrase, RSA (EL7's rpm 4.11 verifies RSA and DSA only).
#[derive(Clone)]
pub struct SigningKey {
    secret: String,
    public: String,
    fingerprint: String,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    // Never the secret key, not even in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads and checks the key file.
    pub fn load(path: &Path) -> Result<Self> {
        let mut secret = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(KEY_FILE_CAP).read_to_string(&mut secret))
            .with_context(|| format!("reading the signing key {}", path.display()))?;
        let (key, _) = SignedSecretKey::from_string(&secret).with_context(|| {
            format!(
                "{}: not an armored OpenPGP secret key (gpg --export-secret-keys --armor)",
                path.display()
            )
        })?;
        if key.algorithm() != PublicKeyAlgorithm::RSA {
            bail!(
                "{}: the key is {:?}; EL7's rpm 4.11 verifies RSA signatures only: give an RSA key",
                path.display(),
                key.algorithm()
            );
        }
        let public = key
            .to_public_key()
            .to_armored_string(ArmorOptions::default())
            .context("armoring the public key")?;
        // Fails now, not after the payload is built, on a key with a
        // passphrase or no signing capability.
        rpm::signature::pgp::Signer::from_asc(&secret)
            .with_context(|| format!("{}: cannot sign with this key", path.display()))?;
        Ok(SigningKey {
            secret,
            public,
            fingerprint: key.fingerprint().to_string(),
            path: path.to_owned(),
        })
    }

    /// The armored public key, as shipped and written beside the packages.
    pub fn public_armored(&self) -> &str {
        &self.public
    }

    /// The key's fingerprint, as `rpm -qi` and gpg show it (hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn signer(&self) -> Result<rpm::signature::pgp::Signer> {
        rpm::signature::pgp::Signer::from_asc(&self.secret)
            .with_context(|| format!("{}: cannot sign with this key", self.path.display()))
    }
}

/// Signs `pkg` (when a key is given) at `timestamp`, then adds the legacy
/// tags. The RSA signature covers the header only; the tags added after
/// it are in the signature header, which no signature covers.
pub fn finish(pkg: &mut rpm::Package, key: Option<&SigningKey>, timestamp: u32) -> Result<()> {
    if let Some(key) = key {
        pkg.sign_with_timestamp(key.signer()?, timestamp)
            .context("signing the .rpm")?;
    }
    let header = pkg
        .metadata
        .header_bytes()
        .context("serialising the header")?;
    let mut md5 = Md5::new();
    md5.update(&header);
    md5.update(&pkg.payload);
    let archive_size = uncompressed_size(&pkg.payload)?;
    let mut entries: Vec<HeaderEntry> = pkg
        .metadata
        .signature
        .get_all_entries()
        .context("reading the signature header")?
        .into_iter()
        .filter(|(tag, _)| *tag != IndexSignatureTag::HEADER_SIGNATURES as u32)
        .filter(|(tag, _)| ![RPMSIGTAG_MD5, RPMSIGTAG_PAYLOADSIZE].contains(tag))
        .map(|(tag, data)| HeaderEntry::new(tag, data))
        .collect();
    entries.push(HeaderEntry::new(
        RPMSIGTAG_MD5,
        IndexData::Bin(md5.finalize().to_vec()),
    ));
    entries.push(HeaderEntry::new(
        RPMSIGTAG_PAYLOADSIZE,
        IndexData::Int32(vec![u32::try_from(archive_size).context(
            "the payload is over 4 GiB uncompressed: rpm 4.11 cannot take it",
        )?]),
    ));
    pkg.metadata.signature =
        rpm::Header::from_entries(entries, IndexSignatureTag::HEADER_SIGNATURES);
    Ok(())
}

/// The gzip payload's size once uncompressed (the cpio archive).
fn uncompressed_size(payload: &[u8]) -> Result<u64> {
    std::io::copy(
        &mut flate2::read::GzDecoder::new(payload),
        &mut std::io::sink(),
    )
    .context("reading the payload back (gzip)")
}
