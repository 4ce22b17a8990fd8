//! What the installer knows of the files it laid down, so that a re-run on
//! a healthy host hashes nothing: for each file, its identity
//! ([`connector_host::stamp::Stamp`]) when it was last hashed or written,
//! and its SHA-256 then. A file whose identity is unchanged (and settled
//! before the stamps file was written) has the recorded digest; any other
//! is hashed. An untrusted or missing stamp costs a hash, never a wrong
//! answer.
//!
//! The file (`layout::INSTALL_STAMPS`) is the installer's bookkeeping: one
//! line per file, `dev ino size mtime_ns ctime_ns sha256 path`, under a
//! header line. Anything malformed is ignored (it is a cache).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use connector_host::layout::INSTALL_STAMPS;
use connector_host::root::Root;
use connector_host::stamp::{self, Stamp as Key};
use sha2::{Digest, Sha256};

const HEADER: &str = "# connector install stamps 1";
/// A file of stamps larger than this is not read (the connector ships a
/// few dozen files; a line is under 200 bytes).
const CAP: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    key: Key,
    sha256: String,
}

/// The digests of a root's connector files: from the stamps file when a
/// file's identity still matches, hashed otherwise (and remembered).
#[derive(Debug, Default)]
pub struct Digests {
    /// By path inside the root.
    known: RefCell<BTreeMap<String, Known>>,
    /// The stamps file's mtime: stamps with a ctime at or after it are not
    /// trusted.
    written_ns: i128,
    /// The text read (or last written), to write only when it would change.
    read: RefCell<String>,
    /// A stamp could not be trusted only because of its age: rewrite.
    racy: Cell<bool>,
}

impl Digests {
    /// Reads the root's stamps; none when missing or unreadable.
    pub fn load(root: &Root) -> Digests {
        let Ok(Some(host)) = root.resolve_optional(INSTALL_STAMPS) else {
            return Digests::default();
        };
        let Ok(f) = connector_host::root::open_regular(&host) else {
            return Digests::default();
        };
        let Ok(m) = f.metadata() else {
            return Digests::default();
        };
        let mut text = String::new();
        if f.take(CAP).read_to_string(&mut text).is_err() || !text.starts_with(HEADER) {
            return Digests::default();
        }
        let known = text.lines().skip(1).filter_map(parse_line).collect();
        Digests {
            known: RefCell::new(known),
            written_ns: Key::of(&m).mtime_ns,
            read: RefCell::new(text),
            racy: Cell::new(false),
        }
    }

    /// The SHA-256 of the regular file `host` (`path` inside the root):
    /// the stamp's when its identity is unchanged, else hashed (a FIFO or
    /// device is refused, never read).
    pub fn sha256(&self, path: &str, host: &Path) -> io::Result<String> {
        if let Ok(m) = fs::symlink_metadata(host) {
            let key = Key::of(&m);
            if let Some(s) = self.known.borrow().get(path).filter(|s| s.key == key) {
                if key.settled_before(self.written_ns) {
                    return Ok(s.sha256.clone());
                }
                self.racy.set(true);
            }
        }
        let mut f = connector_host::root::open_regular(host)?;
        // The identity before reading: a change while hashing moves it, so
        // the stamp will not match again.
        let key = Key::of(&f.metadata()?);
        let sha256 = sha256_reader(&mut f)?;
        self.known.borrow_mut().insert(
            path.to_string(),
            Known {
                key,
                sha256: sha256.clone(),
            },
        );
        Ok(sha256)
    }

    /// `host` (`path` inside the root) was just written with content
    /// `sha256`.
    pub fn written(&self, path: &str, host: &Path, sha256: &str) -> io::Result<()> {
        let key = Key::of(&fs::symlink_metadata(host)?);
        self.known.borrow_mut().insert(
            path.to_string(),
            Known {
                key,
                sha256: sha256.to_string(),
            },
        );
        Ok(())
    }

    /// Writes the stamps of `paths` (those known) when they differ from
    /// what was read. Waits first until the clock has passed every ctime
    /// recorded (at most a few milliseconds, and only after writing), so
    /// that the next run trusts them.
    /// A file whose identity moved during this run (its label set after
    /// it was written, say) is hashed again first.
    pub fn save(&self, root: &Root, host: &Path, paths: &[&str]) {
        for p in paths {
            let stale = self.known.borrow().get(*p).is_some_and(|s| {
                root.resolve_optional(p)
                    .ok()
                    .flatten()
                    .and_then(|h| fs::symlink_metadata(h).ok())
                    .is_none_or(|m| Key::of(&m) != s.key)
            });
            if stale {
                let hashed = root
                    .resolve_optional(p)
                    .ok()
                    .flatten()
                    .map(|h| self.sha256(p, &h));
                if !matches!(hashed, Some(Ok(_))) {
                    self.known.borrow_mut().remove(*p);
                }
            }
        }
        let known = self.known.borrow();
        let mut text = format!("{HEADER}\n");
        let mut newest = i128::MIN;
        for p in paths {
            if let Some(s) = known.get(*p) {
                let k = s.key;
                text.push_str(&format!("{} {} {p}\n", k.to_words(), s.sha256));
                newest = newest.max(k.ctime_ns);
            }
        }
        if *self.read.borrow() == text && !self.racy.get() {
            return;
        }
        stamp::wait_past(newest);
        // Bookkeeping (`layout::BOOKKEEPING`): its label does not matter.
        // A cache: a run that cannot write it only costs the next one a hash.
        match connector_host::atomic::write(host, text.as_bytes(), 0o600, None) {
            Ok(()) => {
                *self.read.borrow_mut() = text;
                self.racy.set(false);
            }
            Err(e) => log::debug!("not remembering the files' stamps: {e:#}"),
        }
    }
}

fn parse_line(l: &str) -> Option<(String, Known)> {
    let mut w = l.splitn(7, ' ');
    let key = Key::from_words(&mut w)?;
    let sha256 = w.next()?;
    let path = w.next()?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        path.to_string(),
        Known {
            key,
            sha256: sha256.to_string(),
        },
    ))
}

/// SHA-256 of everything `r` yields, hex.
pub fn sha256_reader(r: &mut dyn Read) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("var/lib/connector")).unwrap();
        fs::create_dir_all(d.path().join("opt")).unwrap();
        let r = Root::new(d.path()).unwrap();
        (d, r)
    }

    fn stamps_of(d: &tempfile::TempDir) -> std::path::PathBuf {
        d.path().join("var/lib/connector/installed.stamps")
    }

    fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn a_remembered_file_is_not_hashed_again_and_a_changed_one_is() {
        let (d, r) = root();
        let host = d.path().join("opt/f");
        fs::write(&host, b"one").unwrap();
        let first = Digests::load(&r);
        assert_eq!(first.sha256("/opt/f", &host).unwrap(), digest(b"one"));
        first.save(&r, &stamps_of(&d), &["/opt/f"]);
        let text = fs::read_to_string(d.path().join("var/lib/connector/installed.stamps")).unwrap();
        assert!(
            text.ends_with(&format!(" {} /opt/f\n", digest(b"one"))),
            "{text}"
        );

        // A stamp whose identity matches is believed: a lie planted in the
        // stamps file shows (the only way to see that nothing was hashed).
        let lie = text.replace(&digest(b"one"), &digest(b"lie"));
        let stamps = d.path().join("var/lib/connector/installed.stamps");
        let mtime = fs::metadata(&stamps).unwrap().modified().unwrap();
        fs::write(&stamps, lie).unwrap();
        connector_tests::set_mtime(&stamps, mtime);
        let again = Digests::load(&r);
        assert_eq!(again.sha256("/opt/f", &host).unwrap(), digest(b"lie"));

        // Any change of content moves the identity: hashed again. Same
        // size, and mtime put back: the ctime still moves.
        let m = fs::metadata(&host).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&host, b"two").unwrap();
        connector_tests::set_mtime(&host, m);
        let after = Digests::load(&r);
        assert_eq!(after.sha256("/opt/f", &host).unwrap(), digest(b"two"));
        // Replaced by another file (rename over it): a new inode.
        let other = d.path().join("opt/g");
        fs::write(&other, b"six").unwrap();
        fs::rename(&other, &host).unwrap();
        assert_eq!(after.sha256("/opt/f", &host).unwrap(), digest(b"six"));
    }

    #[test]
    fn a_stamp_as_new_as_its_file_is_not_trusted() {
        let (d, r) = root();
        let host = d.path().join("opt/f");
        fs::write(&host, b"one").unwrap();
        let first = Digests::load(&r);
        first.sha256("/opt/f", &host).unwrap();
        first.save(&r, &stamps_of(&d), &["/opt/f"]);
        let stamps = d.path().join("var/lib/connector/installed.stamps");
        let text = fs::read_to_string(&stamps).unwrap();
        // The stamps file dated back before the file's ctime: racy.
        let lie = text.replace(&digest(b"one"), &digest(b"lie"));
        fs::write(&stamps, lie).unwrap();
        connector_tests::set_mtime(&stamps, std::time::SystemTime::UNIX_EPOCH);
        let again = Digests::load(&r);
        assert_eq!(again.sha256("/opt/f", &host).unwrap(), digest(b"one"));
        // ... and is written again, so that the next run can trust it.
        again.save(&r, &stamps_of(&d), &["/opt/f"]);
        assert_eq!(fs::read_to_string(&stamps).unwrap(), text);
    }

    #[test]
    fn nothing_is_written_when_nothing_changed_and_garbage_is_ignored() {
        let (d, r) = root();
        let host = d.path().join("opt/f");
        fs::write(&host, b"one").unwrap();
        let first = Digests::load(&r);
        first.sha256("/opt/f", &host).unwrap();
        first.save(&r, &stamps_of(&d), &["/opt/f", "/opt/missing"]);
        let stamps = d.path().join("var/lib/connector/installed.stamps");
        let before = fs::symlink_metadata(&stamps).unwrap();
        let again = Digests::load(&r);
        again.sha256("/opt/f", &host).unwrap();
        again.save(&r, &stamps_of(&d), &["/opt/f"]);
        let after = fs::symlink_metadata(&stamps).unwrap();
        assert_eq!(Key::of(&before), Key::of(&after));

        for garbage in [
            "",
            "# other\n",
            "# connector install stamps 1\n1 2 3 x y z /opt/f\n",
        ] {
            fs::write(&stamps, garbage).unwrap();
            let g = Digests::load(&r);
            assert!(g.known.borrow().is_empty(), "{garbage:?}");
            assert_eq!(g.sha256("/opt/f", &host).unwrap(), digest(b"one"));
        }
        // A FIFO in its place is never read.
        fs::remove_file(&stamps).unwrap();
        nix_mkfifo(&stamps);
        assert!(Digests::load(&r).known.borrow().is_empty());
    }

    fn nix_mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is NUL-terminated.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
}
