//! Package-manager locks and enclosing package transactions.
//!
//! Calling a package manager from inside a package transaction either fails
//! at once (`rpm -i` in `%post`, `apt-get` in a postinst) or hangs forever
//! (`dnf` in a `%post` started by dnf) — field-notes §1. So before any
//! install we ask two questions:
//! - Are we *inside* a transaction? Our own scriptlets say so explicitly
//!   (`--in-transaction`, or `CONNECTOR_INSTALLER_IN_TRANSACTION=1`); dpkg
//!   says so through `DPKG_MAINTSCRIPT_PACKAGE` / `DPKG_FRONTEND_LOCKED`; and
//!   whoever holds the rpm or dpkg lock being one of our ancestors says so
//!   for any scriptlet. Then the caller defers, and never calls the package
//!   manager.
//! - Is the lock held by somebody else? Then a standalone run waits, bounded.
//!
//! Locks are tested with `fcntl(F_GETLK)`, which never takes them and never
//! creates the lock file.
//!
//! Every lock the installer meets is here, in its two kinds: POSIX record
//! locks (rpm, dpkg, apt and our own `installer.lock`, taken with
//! [`try_record_lock`]) and BSD `flock(2)` locks (libsemanage's policy
//! store), with one [`Holder`] type naming who holds either and one
//! bounded [`wait_for_locks`].

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Environment variable our own package scriptlets set.
pub const IN_TRANSACTION_ENV: &str = "CONNECTOR_INSTALLER_IN_TRANSACTION";

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The lock file (host path).
    pub path: PathBuf,
    /// The holder's pid; `None` for an open-file-description lock.
    pub pid: Option<u32>,
    /// The holder's command name, when readable.
    pub comm: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.pid, &self.comm) {
            (Some(pid), Some(comm)) => {
                write!(f, "{} (held by {comm}, pid {pid})", self.path.display())
            }
            (Some(pid), None) => write!(f, "{} (held by pid {pid})", self.path.display()),
            _ => write!(f, "{} (held)", self.path.display()),
        }
    }
}

/// The two kinds of lock on Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// `fcntl(2)` record locks: rpm, dpkg, apt, the installer's own.
    Record,
    /// `flock(2)` locks: libsemanage's policy store.
    Flock,
}

/// Who holds a lock of `kind` on `path`; `None` when it is free or the file
/// is missing.
///
/// A `*.pid` file is a pidfile lock whatever `kind` says: yum 3 (RHEL/OL 7,
/// Amazon Linux 2) holds `/var/run/yum.pid` for its whole run, taking rpm's
/// record lock only during the transaction itself.
pub fn holder_of(path: &Path, kind: LockKind) -> io::Result<Option<Holder>> {
    if path.extension().is_some_and(|e| e == "pid") {
        return pidfile_holder(path);
    }
    match kind {
        LockKind::Record => holder(path),
        LockKind::Flock => flock_holder(path),
    }
}

/// Who holds a pidfile lock: the process its first line names, when that
/// process exists and is not a zombie (yum 3's own test, which works
/// without /proc too). The file is read as a small regular file only.
pub fn pidfile_holder(path: &Path) -> io::Result<Option<Holder>> {
    use std::io::Read;
    let f = match crate::root::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(64).read_to_string(&mut text)?;
    let Some(pid) = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return Ok(None);
    };
    if pid == 0 || pid > i32::MAX as u32 || pid == std::process::id() {
        return Ok(None);
    }
    // As yum decides: a zombie holds nothing; else the process exists when
    // signal 0 reaches it (or it is someone else's: EPERM).
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        if stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            == Some("Z")
        {
            return Ok(None);
        }
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return Ok(None);
    }
    Ok(Some(Holder {
        path: path.to_path_buf(),
        pid: Some(pid),
        comm: comm_of(pid),
    }))
}

/// Takes an exclusive record lock on `file` (opened for writing) without
/// waiting; `Ok(Err(holder))` when someone else has it. Released when the
/// file is closed (and by the kernel when the process dies).
pub fn try_record_lock(file: &File, path: &Path) -> io::Result<Result<(), Holder>> {
    // SAFETY: a zeroed flock is a valid argument.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fd is open for the duration of the call; fl is a valid flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
    if rc == 0 {
        return Ok(Ok(()));
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
        return Err(err);
    }
    Ok(Err(holder(path)?.unwrap_or(Holder {
        path: path.to_path_buf(),
        pid: None,
        comm: None,
    })))
}

/// Who holds a `flock(2)` lock on `path`: found by trying the lock without
/// waiting (and releasing it at once), and named from /proc/locks.
pub fn flock_holder(path: &Path) -> io::Result<Option<Holder>> {
    use std::os::unix::fs::MetadataExt;
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: flock on an fd we own; LOCK_NB never blocks.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        // SAFETY: releasing the lock we just took.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        return Ok(None);
    }
    let ino = f.metadata()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let pid = locks.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let ino_field = w.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (w.get(1) == Some(&"FLOCK") && ino_field == ino)
            .then(|| w.get(4)?.parse::<u32>().ok())
            .flatten()
    });
    Ok(Some(Holder {
        path: path.to_path_buf(),
        pid,
        comm: pid.and_then(comm_of),
    }))
}

/// Tests whether someone holds a write-conflicting record lock on `path`.
/// A missing file is not locked.
pub fn holder(path: &Path) -> io::Result<Option<Holder>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: a zeroed flock is a valid argument; F_GETLK only fills it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    // SAFETY: fd is open for the duration of the call; fl is a valid flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    let pid = (fl.l_pid > 0).then_some(fl.l_pid as u32);
    Ok(Some(Holder {
        path: path.to_path_buf(),
        pid,
        comm: pid.and_then(comm_of),
    }))
}

fn comm_of(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Our ancestors' pids, nearest first (from /proc; empty where /proc is absent).
pub fn ancestors() -> Vec<u32> {
    let mut out = Vec::new();
    let mut pid = std::process::id();
    for _ in 0..64 {
        let Some(ppid) = parent_of(pid) else { break };
        if ppid == 0 {
            break;
        }
        out.push(ppid);
        if ppid == 1 {
            break;
        }
        pid = ppid;
    }
    out
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn same_process_group(pid: u32) -> bool {
    // SAFETY: getpgid has no memory-safety preconditions.
    let theirs = unsafe { libc::getpgid(pid as libc::pid_t) };
    let ours = unsafe { libc::getpgid(0) };
    theirs > 0 && theirs == ours
}

/// Why we believe we run inside a package transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionSign {
    /// Our own scriptlet said so.
    Flag,
    /// dpkg's maintainer-script environment.
    DpkgEnv(String),
    /// An ancestor of ours holds the package manager's lock.
    AncestorHoldsLock(Holder),
}

impl std::fmt::Display for TransactionSign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransactionSign::Flag => {
                write!(f, "called from a package scriptlet (--in-transaction)")
            }
            TransactionSign::DpkgEnv(v) => {
                write!(f, "running inside a dpkg maintainer script ({v})")
            }
            TransactionSign::AncestorHoldsLock(h) => {
                write!(f, "a parent process holds the package lock {h}")
            }
        }
    }
}

/// Decides whether we run inside a package transaction. `flag` is the
/// `--in-transaction` option; `lock_files` the package manager's locks.
pub fn enclosing_transaction(
    flag: bool,
    lock_files: &[PathBuf],
) -> io::Result<Option<TransactionSign>> {
    if flag || std::env::var_os(IN_TRANSACTION_ENV).is_some_and(|v| v == "1") {
        return Ok(Some(TransactionSign::Flag));
    }
    for var in ["DPKG_MAINTSCRIPT_PACKAGE", "DPKG_FRONTEND_LOCKED"] {
        if let Some(v) = std::env::var_os(var) {
            return Ok(Some(TransactionSign::DpkgEnv(format!(
                "{var}={}",
                v.to_string_lossy()
            ))));
        }
    }
    let ancestors = ancestors();
    for path in lock_files {
        if let Some(h) = holder_of(path, LockKind::Record)? {
            let Some(pid) = h.pid else { continue };
            // Without /proc (a scriptlet chrooted by `rpm --root`), ancestry
            // cannot be walked; a lock holder in our own process group is
            // then the package manager that started us.
            let related = if ancestors.is_empty() {
                same_process_group(pid)
            } else {
                ancestors.contains(&pid)
            };
            if related {
                return Ok(Some(TransactionSign::AncestorHoldsLock(h)));
            }
        }
    }
    Ok(None)
}

/// Waits until none of `lock_files` (locks of `kind`) is held, at most
/// `timeout`. Calls `progress` about every `every` while waiting. Returns
/// the holder when the wait timed out.
pub fn wait_for_locks(
    lock_files: &[PathBuf],
    kind: LockKind,
    timeout: std::time::Duration,
    every: std::time::Duration,
    mut progress: impl FnMut(&Holder, std::time::Duration),
) -> io::Result<Result<(), Holder>> {
    let start = std::time::Instant::now();
    let mut last_report: Option<std::time::Instant> = None;
    loop {
        let mut held = None;
        for p in lock_files {
            if let Some(h) = holder_of(p, kind)? {
                held = Some(h);
                break;
            }
        }
        let Some(h) = held else { return Ok(Ok(())) };
        let waited = start.elapsed();
        if waited >= timeout {
            return Ok(Err(h));
        }
        if last_report.is_none_or(|t| t.elapsed() >= every) {
            progress(&h, waited);
            last_report = Some(std::time::Instant::now());
        }
        std::thread::sleep(std::time::Duration::from_millis(200).min(timeout - waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// Holds a POSIX write lock on `path` in a child process (flock(1)
    /// takes BSD locks, which F_GETLK does not see; python's fcntl.lockf
    /// takes the POSIX lock rpm and dpkg use).
    fn hold_lock(path: &Path) -> std::process::Child {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time\nf=open(sys.argv[1],'w')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(30)",
            ])
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 7];
        std::io::Read::read_exact(&mut out, &mut buf).unwrap();
        // Keep the pipe open: a closed reader would make the holder's next
        // write fail and the holder exit, releasing the lock.
        child.stdout = Some(out);
        child
    }

    #[test]
    fn a_pidfile_is_held_while_its_process_lives() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("yum.pid");
        assert_eq!(
            holder_of(&pidfile, LockKind::Record).unwrap(),
            None,
            "missing"
        );
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
        let h = holder_of(&pidfile, LockKind::Record)
            .unwrap()
            .expect("held");
        assert_eq!(h.pid, Some(child.id()));
        assert_eq!(h.comm.as_deref(), Some("sleep"));
        // Waiting for it times out naming the holder, then frees once it exits.
        let waited = wait_for_locks(
            std::slice::from_ref(&pidfile),
            LockKind::Record,
            Duration::from_millis(300),
            Duration::from_secs(5),
            |_, _| {},
        )
        .unwrap();
        assert_eq!(waited.unwrap_err().pid, Some(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            holder_of(&pidfile, LockKind::Record).unwrap(),
            None,
            "stale"
        );
        std::fs::write(&pidfile, "not a pid\n").unwrap();
        assert_eq!(holder_of(&pidfile, LockKind::Record).unwrap(), None);
        std::fs::write(&pidfile, format!("{}", std::process::id())).unwrap();
        assert_eq!(
            holder_of(&pidfile, LockKind::Record).unwrap(),
            None,
            "our own"
        );
        // A FIFO in its place is refused, never read.
        std::fs::remove_file(&pidfile).unwrap();
        let c = std::ffi::CString::new(pidfile.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(holder_of(&pidfile, LockKind::Record).is_err());
    }

    #[test]
    fn missing_and_unlocked_files_are_free() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(&dir.path().join("nope")).unwrap(), None);
        let p = dir.path().join("lock");
        std::fs::write(&p, "").unwrap();
        assert_eq!(holder(&p).unwrap(), None);
    }

    #[test]
    fn a_held_lock_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".rpm.lock");
        let mut child = hold_lock(&p);
        let start = Instant::now();
        let h = holder(&p).unwrap().expect("locked");
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(h.pid, Some(child.id()));
        assert_eq!(h.comm.as_deref(), Some("python3"));
        assert!(h.to_string().contains(&format!("pid {}", child.id())));
        // Not our ancestor: not a transaction sign.
        assert_eq!(
            enclosing_transaction(false, std::slice::from_ref(&p)).unwrap(),
            None
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(holder(&p).unwrap(), None);
    }

    #[test]
    fn waiting_is_bounded_and_reports_progress() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock-frontend");
        let mut child = hold_lock(&p);
        let mut reports = 0;
        let start = Instant::now();
        let res = wait_for_locks(
            std::slice::from_ref(&p),
            LockKind::Record,
            Duration::from_millis(700),
            Duration::from_millis(300),
            |_, _| reports += 1,
        )
        .unwrap();
        let waited = start.elapsed();
        let h = res.expect_err("still held");
        assert_eq!(h.pid, Some(child.id()));
        assert!(
            waited >= Duration::from_millis(700) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        assert!(reports >= 2, "progress was reported {reports} times");
        child.kill().unwrap();
        child.wait().unwrap();
        let res = wait_for_locks(
            &[p],
            LockKind::Record,
            Duration::from_secs(5),
            Duration::from_secs(1),
            |_, _| {},
        )
        .unwrap();
        assert!(res.is_ok());
    }

    #[test]
    fn ancestors_include_our_parent() {
        let a = ancestors();
        // SAFETY: getppid has no preconditions.
        let ppid = unsafe { libc::getppid() } as u32;
        assert_eq!(a.first(), Some(&ppid));
    }

    #[test]
    fn explicit_flag_is_a_transaction() {
        assert_eq!(
            enclosing_transaction(true, &[]).unwrap(),
            Some(TransactionSign::Flag)
        );
    }

    #[test]
    fn a_held_flock_is_seen_with_its_holder_and_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("semanage.trans.LOCK");
        std::fs::write(&p, "").unwrap();
        assert_eq!(flock_holder(&p).unwrap(), None);
        assert_eq!(flock_holder(&dir.path().join("missing")).unwrap(), None);
        let mut child = Command::new("flock")
            .arg(&p)
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut seen = None;
        while start.elapsed() < Duration::from_secs(5) && seen.is_none() {
            seen = flock_holder(&p).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen = seen.expect("lock seen");
        // A record-lock test does not see a flock: the kinds are apart.
        assert_eq!(holder(&p).unwrap(), None);
        let res = wait_for_locks(
            std::slice::from_ref(&p),
            LockKind::Flock,
            Duration::from_millis(500),
            Duration::from_millis(200),
            |_, _| {},
        )
        .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(res.is_err(), "the wait timed out on the held lock");
        assert!(seen.pid.is_some(), "{seen}");
        let comm = seen.comm.clone().unwrap_or_default();
        assert!(comm == "sleep" || comm == "flock", "{seen}");
    }
}
