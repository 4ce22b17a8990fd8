//! A file's identity, for caches that vouch for a file's content without
//! reading it: device, inode, size, mtime and ctime. Writing a file,
//! renaming another over it, or changing its mode or label all move its
//! ctime (or its inode), and no program can set a ctime.
//!
//! The one gap is a change within the clock tick the identity was taken in
//! ("racy" in git's words): a cache trusts an identity only when its ctime
//! is older than the cache file itself ([`Stamp::settled_before`]), and is
//! written only once the clock has moved past every ctime it records
//! ([`wait_past`]).

use std::fs;
use std::os::unix::fs::MetadataExt;

/// What changes whenever a file's content may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl Stamp {
    pub fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        }
    }

    /// Whether the file last changed before `written_ns` (a cache file's
    /// mtime): a stamp as new as its cache may hide a change in that tick.
    pub fn settled_before(&self, written_ns: i128) -> bool {
        self.ctime_ns < written_ns
    }

    /// `dev ino size mtime_ns ctime_ns`.
    pub fn to_words(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        )
    }

    /// Reads [`Stamp::to_words`]'s five words from `words`.
    pub fn from_words<'a>(words: &mut impl Iterator<Item = &'a str>) -> Option<Stamp> {
        let mut num = || words.next()?.parse::<i128>().ok();
        let (dev, ino, size, mtime_ns, ctime_ns) = (num()?, num()?, num()?, num()?, num()?);
        Some(Stamp {
            dev: dev.try_into().ok()?,
            ino: ino.try_into().ok()?,
            size: size.try_into().ok()?,
            mtime_ns,
            ctime_ns,
        })
    }
}

/// The time the kernel stamps files with (its coarse clock).
pub fn coarse_now_ns() -> i128 {
    // SAFETY: a zeroed timespec is valid; the clock id is a constant.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Waits (at most 100 ms; a tick is a few) until the file clock is past
/// `ctime_ns`, so that a cache written now is newer than it.
pub fn wait_past(ctime_ns: i128) {
    for _ in 0..100 {
        if coarse_now_ns() > ctime_ns {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_garbage_is_none() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "x").unwrap();
        let s = Stamp::of(&fs::metadata(&f).unwrap());
        let text = s.to_words();
        assert_eq!(Stamp::from_words(&mut text.split(' ')), Some(s));
        for bad in ["", "1 2 3 4", "1 2 x 4 5", "-1 2 3 4 5"] {
            assert_eq!(Stamp::from_words(&mut bad.split(' ')), None, "{bad}");
        }
        wait_past(s.ctime_ns);
        assert!(coarse_now_ns() > s.ctime_ns);
        assert!(s.settled_before(coarse_now_ns()));
        assert!(!s.settled_before(s.ctime_ns));
    }
}
