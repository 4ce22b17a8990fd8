//! What a compiled (kernel) SELinux policy can name: its classes with
//! their permissions, its types and attributes, and how the kernel handles
//! a class or permission the policy does not define (`handle_unknown`).
//!
//! Read from the binary policy file itself (`ROOT/etc/selinux/TYPE/policy/
//! policy.NN`) for a root that is not running, where no kernel can be asked.
//! Only the front of the file is parsed (header, policy capabilities,
//! permissive map, then the commons, classes, roles and types symbol
//! tables) — the avtab after them is never read. The format is libsepol's
//! `policydb_read` for kernel policies, versions 15 to 34; every count and
//! length is bounded and the whole read is capped, so a hostile file is an
//! error, never a hang or a huge allocation.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read};

use connector_host::stamp::Stamp;
use serde::Serialize;

const MAGIC: u32 = 0xf97c_ff8c;
const CONFIG_MLS: u32 = 1;
const CONFIG_REJECT_UNKNOWN: u32 = 2;
const CONFIG_ALLOW_UNKNOWN: u32 = 4;
/// Policy versions whose layout this reader knows (libsepol's
/// POLICYDB_VERSION_MIN..=COND_XPERMS).
pub(crate) const VERSIONS: std::ops::RangeInclusive<u32> = 15..=34;
const VERSION_VALIDATETRANS: u32 = 19;
const VERSION_POLCAP: u32 = 22;
const VERSION_PERMISSIVE: u32 = 23;
const VERSION_BOUNDARY: u32 = 24;
const VERSION_NEW_OBJECT_DEFAULTS: u32 = 27;
const VERSION_DEFAULT_TYPE: u32 = 28;
const VERSION_CONSTRAINT_NAMES: u32 = 29;
/// Constraint expression node that carries name sets.
const CEXPR_NAMES: u32 = 5;
/// Bounds on what one well-formed policy holds.
const MAX_NAME: usize = 64 * 1024;
const MAX_ITEMS: u32 = 1 << 20;
const MAX_PERMS: u32 = 32;
const MAX_EBITMAP_NODES: u32 = 1 << 20;
/// The whole read never goes past this (the front of the largest real
/// policies is well under 4 MiB; whole files are 3-10 MiB).
pub const READ_CAP: u64 = 64 * 1024 * 1024;

/// How the kernel treats a class or permission the policy does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HandleUnknown {
    /// Denied at run time.
    Deny,
    /// The kernel refuses to load such a policy.
    Reject,
    /// Allowed (every RHEL-family targeted policy).
    Allow,
}

impl HandleUnknown {
    /// As the policy tools spell it (`handle_unknown` in semanage.conf).
    pub fn as_str(self) -> &'static str {
        match self {
            HandleUnknown::Deny => "deny",
            HandleUnknown::Reject => "reject",
            HandleUnknown::Allow => "allow",
        }
    }
}

/// Why a policy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyDbError {
    #[error("not a kernel SELinux policy (magic {0:#010x})")]
    Magic(u32),
    #[error("policy version {0} is not one this reader knows ({min}-{max})", min = VERSIONS.start(), max = VERSIONS.end())]
    Version(u32),
    #[error("malformed policy: {0}")]
    Malformed(&'static str),
    /// Shown in the message, so not also a `source()`.
    #[error("reading the policy: {0}")]
    Io(io::Error),
}

impl From<io::Error> for PolicyDbError {
    fn from(e: io::Error) -> Self {
        PolicyDbError::Io(e)
    }
}

/// The names a compiled policy defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyNames {
    pub version: u32,
    pub mls: bool,
    pub handle_unknown: HandleUnknown,
    /// Class → every permission it has (its own and its common's).
    pub classes: BTreeMap<String, BTreeSet<String>>,
    /// Types and the attributes the file still carries (thousands: a hash
    /// set, built and asked faster than a tree).
    pub types: HashSet<String>,
}

impl PolicyNames {
    /// The names of the binary policy at `host` (a resolved host path,
    /// opened as a regular file only), parsed once per process while the
    /// file is unchanged: doctor and install ask about the same `policy.N`
    /// for the kernels' versions and for the rights.
    pub fn of_file(host: &std::path::Path) -> io::Result<std::sync::Arc<PolicyNames>> {
        use std::sync::{Arc, Mutex};
        type Parsed = Vec<(std::path::PathBuf, Stamp, Arc<PolicyNames>)>;
        static PARSED: Mutex<Parsed> = Mutex::new(Vec::new());
        let f = connector_host::root::open_regular(host)?;
        let stamp = Stamp::of(&f.metadata()?);
        let mut parsed = PARSED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, names)) = parsed.iter().find(|(p, s, _)| p == host && *s == stamp) {
            return Ok(names.clone());
        }
        let names = Arc::new(PolicyNames::read(f).map_err(io::Error::other)?);
        parsed.retain(|(p, _, _)| p != host);
        parsed.push((host.to_path_buf(), stamp, names.clone()));
        Ok(names)
    }

    /// Parses the front of a binary policy.
    pub fn read(r: impl Read) -> Result<PolicyNames, PolicyDbError> {
        let mut r = Reader {
            inner: io::BufReader::with_capacity(64 * 1024, r.take(READ_CAP)),
        };
        let magic = r.u32()?;
        if magic != MAGIC {
            return Err(PolicyDbError::Magic(magic));
        }
        let len = r.len()?;
        let target = r.bytes(len)?;
        if target != b"SE Linux" && target != b"XenFlask" {
            return Err(PolicyDbError::Malformed("unknown target platform"));
        }
        let version = r.u32()?;
        if !VERSIONS.contains(&version) {
            return Err(PolicyDbError::Version(version));
        }
        let config = r.u32()?;
        let sym_num = r.u32()?;
        let _ocon_num = r.u32()?;
        if sym_num < 4 {
            return Err(PolicyDbError::Malformed(
                "fewer symbol tables than a policy has",
            ));
        }
        if version >= VERSION_POLCAP {
            r.ebitmap()?;
        }
        if version >= VERSION_PERMISSIVE {
            r.ebitmap()?;
        }
        let mut commons: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for _ in 0..r.table()? {
            let (len, _value, _nprim, nel) = (r.len()?, r.u32()?, r.u32()?, r.count(MAX_PERMS)?);
            let name = r.name(len)?;
            let perms = r.perms(nel)?;
            commons.insert(name, perms);
        }
        let mut classes = BTreeMap::new();
        for _ in 0..r.table()? {
            let len = r.len()?;
            let comlen = r.u32()? as usize;
            let (_value, _nprim, nel, ncons) =
                (r.u32()?, r.u32()?, r.count(MAX_PERMS)?, r.count(MAX_ITEMS)?);
            let name = r.name(len)?;
            let mut perms = BTreeSet::new();
            if comlen > 0 {
                let common = r.name(comlen)?;
                perms.extend(
                    commons
                        .get(&common)
                        .ok_or(PolicyDbError::Malformed("class names an unknown common"))?
                        .iter()
                        .cloned(),
                );
            }
            perms.extend(r.perms(nel)?);
            r.constraints(ncons, version)?;
            if version >= VERSION_VALIDATETRANS {
                let n = r.count(MAX_ITEMS)?;
                r.constraints(n, version)?;
            }
            if version >= VERSION_NEW_OBJECT_DEFAULTS {
                r.skip_u32s(3)?;
            }
            if version >= VERSION_DEFAULT_TYPE {
                r.skip_u32s(1)?;
            }
            classes.insert(name, perms);
        }
        let boundary = version >= VERSION_BOUNDARY;
        for _ in 0..r.table()? {
            let len = r.len()?;
            r.skip_u32s(if boundary { 2 } else { 1 })?;
            r.name(len)?;
            r.ebitmap()?; // dominates
            r.ebitmap()?; // types
        }
        let mut types = HashSet::new();
        for _ in 0..r.table()? {
            let len = r.len()?;
            r.skip_u32s(if boundary { 3 } else { 2 })?;
            types.insert(r.name(len)?);
        }
        Ok(PolicyNames {
            version,
            mls: config & CONFIG_MLS != 0,
            handle_unknown: if config & CONFIG_ALLOW_UNKNOWN != 0 {
                HandleUnknown::Allow
            } else if config & CONFIG_REJECT_UNKNOWN != 0 {
                HandleUnknown::Reject
            } else {
                HandleUnknown::Deny
            },
            classes,
            types,
        })
    }

    /// Does the policy define `perm` in `class`?
    pub fn defines(&self, class: &str, perm: &str) -> bool {
        self.classes.get(class).is_some_and(|p| p.contains(perm))
    }
}

struct Reader<R> {
    inner: R,
}

impl<R: Read> Reader<R> {
    fn u32(&mut self) -> Result<u32, PolicyDbError> {
        let mut b = [0u8; 4];
        self.inner.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn skip_u32s(&mut self, n: usize) -> Result<(), PolicyDbError> {
        for _ in 0..n {
            self.u32()?;
        }
        Ok(())
    }

    fn count(&mut self, max: u32) -> Result<u32, PolicyDbError> {
        let n = self.u32()?;
        if n > max {
            return Err(PolicyDbError::Malformed("count out of bounds"));
        }
        Ok(n)
    }

    fn len(&mut self) -> Result<usize, PolicyDbError> {
        let n = self.u32()? as usize;
        if n == 0 || n > MAX_NAME {
            return Err(PolicyDbError::Malformed("name length out of bounds"));
        }
        Ok(n)
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, PolicyDbError> {
        let mut v = vec![0u8; n];
        self.inner.read_exact(&mut v)?;
        Ok(v)
    }

    fn name(&mut self, n: usize) -> Result<String, PolicyDbError> {
        if n == 0 || n > MAX_NAME {
            return Err(PolicyDbError::Malformed("name length out of bounds"));
        }
        String::from_utf8(self.bytes(n)?).map_err(|_| PolicyDbError::Malformed("name is not UTF-8"))
    }

    /// A symbol table's header: (nprim, nel) → nel.
    fn table(&mut self) -> Result<u32, PolicyDbError> {
        let _nprim = self.u32()?;
        self.count(MAX_ITEMS)
    }

    fn perms(&mut self, nel: u32) -> Result<BTreeSet<String>, PolicyDbError> {
        let mut out = BTreeSet::new();
        for _ in 0..nel {
            let len = self.len()?;
            let _value = self.u32()?;
            out.insert(self.name(len)?);
        }
        Ok(out)
    }

    fn ebitmap(&mut self) -> Result<(), PolicyDbError> {
        let mapunit = self.u32()?;
        if mapunit != 64 {
            return Err(PolicyDbError::Malformed("ebitmap map unit is not 64"));
        }
        let _highbit = self.u32()?;
        let nodes = self.count(MAX_EBITMAP_NODES)?;
        for _ in 0..nodes {
            // startbit (u32) and the 64-bit map
            self.skip_u32s(3)?;
        }
        Ok(())
    }

    fn constraints(&mut self, n: u32, version: u32) -> Result<(), PolicyDbError> {
        for _ in 0..n {
            let _perms = self.u32()?;
            let nexpr = self.count(MAX_ITEMS)?;
            for _ in 0..nexpr {
                let expr_type = self.u32()?;
                self.skip_u32s(2)?; // attr, op
                if expr_type == CEXPR_NAMES {
                    self.ebitmap()?;
                    if version >= VERSION_CONSTRAINT_NAMES {
                        // type_set: types, negset, flags
                        self.ebitmap()?;
                        self.ebitmap()?;
                        self.u32()?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert!(matches!(
            PolicyNames::read(&b"\x00\x01\x02\x03rest"[..]),
            Err(PolicyDbError::Magic(0x0302_0100))
        ));
        let mut head = MAGIC.to_le_bytes().to_vec();
        head.extend(8u32.to_le_bytes());
        head.extend(b"SE Linux");
        head.extend(99u32.to_le_bytes());
        assert!(matches!(
            PolicyNames::read(head.as_slice()),
            Err(PolicyDbError::Version(99))
        ));
        let mut trunc = MAGIC.to_le_bytes().to_vec();
        trunc.extend(8u32.to_le_bytes());
        trunc.extend(b"SE Li");
        assert!(matches!(
            PolicyNames::read(trunc.as_slice()),
            Err(PolicyDbError::Io(_))
        ));
        // A name length of 4 GiB is refused before any allocation.
        let mut huge = MAGIC.to_le_bytes().to_vec();
        huge.extend(u32::MAX.to_le_bytes());
        assert!(matches!(
            PolicyNames::read(huge.as_slice()),
            Err(PolicyDbError::Malformed(_))
        ));
    }
}
