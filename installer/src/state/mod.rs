//! The installer's own state inside a root, under `/var/lib/connector/`:
//!
//! - `installer.lock`: one installer at a time. A POSIX record lock, so
//!   the kernel names the holder (`F_GETLK`) and releases it when the
//!   holder dies. The file holds the lock's generation, a counter every
//!   holder increments, so that a run that planned before taking the lock
//!   knows whether another installer ran in between.
//! - `install.journal`: the plan and every step's start and end, appended
//!   and synced one line at a time. It exists only while an install runs
//!   (or after one was killed or failed): the next run reads it, says what
//!   was interrupted, rolls back what a step can leave half-done (temporary
//!   files of the lay-down) and then runs its own plan, whose steps are all
//!   idempotent — so a killed install converges to the same tree.
//! - `pending`: work a package hook could not do inside the transaction
//!   (the header installation), for `doctor` and the deferred job.

pub mod audit;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use connector_host::layout::{INSTALLER_LOCK, JOURNAL, PENDING, STATE_DIR};
use connector_host::lock::{self, Holder};
use connector_host::Root;

/// Errors a caller branches on.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "another connector-installer is working on this root: {0}; wait for it to finish \
         (or stop it) and run this again"
    )]
    Busy(Holder),
    #[error("{path}: refused: {detail}")]
    Unsafe { path: String, detail: String },
}

/// The host path of `file`, one of `host::layout`'s paths in the state
/// directory, the directory made first ([`state_dir`]).
pub fn state_file(root: &Root, file: &str) -> Result<PathBuf> {
    let name = Path::new(file)
        .file_name()
        .with_context(|| format!("{file}: not a file"))?;
    Ok(state_dir(root)?.join(name))
}

/// The state directory's host path, created (0750) when missing; refuses a
/// symlinked or non-directory component.
pub fn state_dir(root: &Root) -> Result<PathBuf> {
    let mut host = root.path().to_path_buf();
    let mut inside = String::new();
    let mut contexts = None;
    for part in STATE_DIR.trim_start_matches('/').split('/') {
        host.push(part);
        inside.push('/');
        inside.push_str(part);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() && inside != STATE_DIR => {
                // /var -> something: follow it inside the root only.
                host = root.resolve(&inside)?;
            }
            Ok(_) => {
                return Err(StateError::Unsafe {
                    path: inside,
                    detail: "is not a directory".into(),
                }
                .into())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mode = if inside == STATE_DIR { 0o750 } else { 0o755 };
                fs::DirBuilder::new()
                    .mode(mode)
                    .create(&host)
                    .with_context(|| format!("creating {}", host.display()))?;
                // Labeled as the root's file contexts say, at once: left to
                // the kernel's default it would be relabeled by a later run.
                let fc = contexts.get_or_insert_with(|| {
                    connector_policy::labels::FileContexts::open(root)
                        .ok()
                        .flatten()
                });
                if let Some(label) = fc
                    .as_ref()
                    .and_then(|fc| fc.label_for(&inside, libc::S_IFDIR))
                {
                    if let Err(e) = connector_policy::labels::set_on_path(&host, &label) {
                        log::debug!("labeling {inside}: {e}");
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", host.display())),
        }
    }
    Ok(host)
}

/// The installer lock, held until dropped.
#[derive(Debug)]
pub struct InstallerLock {
    _file: File,
    /// The generation found when the lock was taken (`None`: never taken
    /// before, or unreadable).
    pub previous: Option<u64>,
}

/// Largest lock file read (it holds one number).
const GENERATION_CAP: u64 = 32;

fn parse_generation(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The installer lock's generation, read without taking the lock; `None`
/// when no installer has taken it (or it is unreadable, which makes the
/// caller plan again under the lock: the safe side).
pub fn lock_generation(root: &Root) -> Option<u64> {
    let host = root.resolve_optional(INSTALLER_LOCK).ok()??;
    let f = connector_host::root::open_regular(&host).ok()?;
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(f, GENERATION_CAP), &mut text).ok()?;
    parse_generation(&text)
}

impl InstallerLock {
    /// Takes the lock without waiting: a second installer is refused with
    /// the holder's pid and name.
    pub fn acquire(root: &Root) -> Result<InstallerLock> {
        let path = state_file(root, INSTALLER_LOCK)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        {
            use std::os::unix::fs::MetadataExt;
            let m = file.metadata()?;
            if !m.is_file() || m.nlink() != 1 {
                return Err(StateError::Unsafe {
                    path: INSTALLER_LOCK.into(),
                    detail: format!(
                        "not a regular file with one link (links: {}); remove it and run this again",
                        m.nlink()
                    ),
                }
                .into());
            }
        }
        if let Err(holder) = lock::try_record_lock(&file, &path)
            .with_context(|| format!("locking {}", path.display()))?
        {
            return Err(StateError::Busy(holder).into());
        }
        let mut text = String::new();
        io::Read::read_to_string(&mut io::Read::take(&file, GENERATION_CAP), &mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        let previous = parse_generation(&text);
        let next = previous.unwrap_or(0).wrapping_add(1);
        {
            use std::os::unix::fs::FileExt;
            file.set_len(0)
                .and_then(|()| file.write_all_at(format!("{next}\n").as_bytes(), 0))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(InstallerLock {
            _file: file,
            previous,
        })
    }
}

/// An interrupted run, as its journal tells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Interrupted {
    /// The steps that run planned.
    pub plan: Vec<String>,
    /// Steps it finished.
    pub done: Vec<String>,
    /// The step it was in when it stopped, if any.
    pub during: Option<String>,
    /// Its failure, when it failed rather than died.
    pub failed: Option<String>,
}

/// The step journal of the current run.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Reads what a previous run left, if anything.
    pub fn previous(root: &Root) -> Result<Option<Interrupted>> {
        let Some(text) = root.read_to_string_optional(JOURNAL)? else {
            return Ok(None);
        };
        let mut it = Interrupted {
            plan: Vec::new(),
            done: Vec::new(),
            during: None,
            failed: None,
        };
        for line in text.lines() {
            let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
            match verb {
                "plan" => it.plan = rest.split_whitespace().map(String::from).collect(),
                "begin" => it.during = Some(rest.to_string()),
                "done" => {
                    it.done.push(rest.to_string());
                    it.during = None;
                }
                "failed" => it.failed = Some(rest.to_string()),
                // A torn last line (killed mid-write) is ignored.
                _ => {}
            }
        }
        Ok(Some(it))
    }

    /// Starts a journal for `plan` (replacing a previous one).
    pub fn start(root: &Root, plan: &[&str]) -> Result<Journal> {
        let path = state_file(root, JOURNAL)?;
        // A fresh inode each run: truncating in place would change whatever
        // else a planted hard link names.
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("replacing {}", path.display())),
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut j = Journal { file, path };
        j.record(&format!("plan {}", plan.join(" ")))?;
        Ok(j)
    }

    pub fn begin(&mut self, step: &str) -> Result<()> {
        self.record(&format!("begin {step}"))
    }

    pub fn done(&mut self, step: &str) -> Result<()> {
        self.record(&format!("done {step}"))
    }

    pub fn failed(&mut self, step: &str, why: &str) -> Result<()> {
        let one_line = why.replace('\n', " ");
        self.record(&format!("failed {step}: {one_line}"))
    }

    /// The run is complete: the journal goes.
    pub fn finish(self) -> Result<()> {
        fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))
    }

    fn record(&mut self, line: &str) -> Result<()> {
        self.file
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Removes the temporary files a killed lay-down leaves beside its
/// destinations (`.NAME.connector-tmp.PID`). Returns what was removed.
pub fn remove_stale_temporaries(root: &Root, dirs: &[String]) -> Vec<String> {
    let mut removed = Vec::new();
    for d in dirs {
        let Ok(Some(host)) = root.resolve_optional(d) else {
            continue;
        };
        let Ok(entries) = fs::read_dir(&host) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.')
                && name.contains(".connector-tmp.")
                && fs::remove_file(e.path()).is_ok()
            {
                removed.push(format!("{d}/{name}"));
            }
        }
    }
    removed.sort();
    removed
}

/// Work a hook left for after the transaction, one line per item
/// (`headers KERNEL` or `headers all`), with the time it was recorded.
pub fn record_pending(root: &Root, what: &str) -> Result<()> {
    let path = state_file(root, PENDING)?;
    // A record that cannot be read is never replaced: the work it holds
    // would be lost (issue 13, class 9).
    let mut text = root
        .read_to_string_optional(PENDING)
        .context(
            "reading the record of deferred work; fix or remove it, then run \
             `connector-installer install` to do that work now",
        )?
        .unwrap_or_default();
    if !text.lines().any(|l| l == what) {
        text.push_str(what);
        text.push('\n');
    }
    Ok(connector_host::atomic::write(
        &path,
        text.as_bytes(),
        0o644,
        None,
    )?)
}

/// What is pending, if anything. A record that exists but cannot be read
/// is an error, never "nothing pending".
pub fn pending(root: &Root) -> Result<Vec<String>> {
    Ok(root
        .read_to_string_optional(PENDING)
        .context("reading the record of deferred work")?
        .map(|t| t.lines().map(String::from).collect())
        .unwrap_or_default())
}

/// Clears the pending record (after the deferred work is done).
pub fn clear_pending(root: &Root) -> Result<()> {
    let Some(host) = entry_in_root(root, PENDING)? else {
        return Ok(());
    };
    match fs::remove_file(&host) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", host.display())),
    }
}

/// The host path of `path`'s last component, its parent directories
/// resolved inside the root (symlinks included, never out of it) and the
/// last component itself not followed: what to remove. `None` when the
/// parent does not exist.
pub fn entry_in_root(root: &Root, path: &str) -> Result<Option<PathBuf>> {
    let p = Path::new(path);
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        anyhow::bail!("{path}: not a path below /");
    };
    Ok(root
        .resolve_optional(parent)
        .with_context(|| format!("resolving {}", parent.display()))?
        .map(|d| d.join(name)))
}

/// Removes `path` inside the root: a file or symlink itself (never what a
/// link points to), a directory with its contents. Returns whether
/// something was there.
pub fn remove_in_root(root: &Root, path: &str) -> Result<bool> {
    let Some(host) = entry_in_root(root, path)? else {
        return Ok(false);
    };
    let meta = match fs::symlink_metadata(&host) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("inspecting {path}")),
    };
    if meta.is_dir() {
        fs::remove_dir_all(&host)
    } else {
        fs::remove_file(&host)
    }
    .with_context(|| format!("removing {path}"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_tells_where_a_run_stopped() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path()).unwrap();
        let mut j = Journal::start(&root, &["laydown", "selinux", "enable"]).unwrap();
        j.begin("laydown").unwrap();
        j.done("laydown").unwrap();
        j.begin("selinux").unwrap();
        drop(j);
        let it = Journal::previous(&root).unwrap().unwrap();
        assert_eq!(it.plan, ["laydown", "selinux", "enable"]);
        assert_eq!(it.done, ["laydown"]);
        assert_eq!(it.during.as_deref(), Some("selinux"));
        let j = Journal::start(&root, &["enable"]).unwrap();
        j.finish().unwrap();
        assert!(Journal::previous(&root).unwrap().is_none());
    }
}
