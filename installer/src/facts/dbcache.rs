//! The package database's last answer about the kernels' owners, kept
//! while the database is unchanged, so that a diagnosis of a healthy host
//! runs no package tool at all.
//!
//! The answer is kept with the identity ([`Stamp`]) of each file the
//! backend names as the database's content (`PackageBackend::
//! database_files`: rpm's Packages or rpmdb.sqlite and its write-ahead
//! log, dpkg's status, updates and info) and with the question asked: the
//! kernels' files, which of them exist, the header trees. A transaction
//! moves one of those identities; a kernel file appearing or going away
//! changes the question. Either way the database is asked again. A stamp
//! as new as the cache is not trusted (`connector_host::stamp`).
//!
//! Written only by the commands that act (`install`, `repair`, `headers`,
//! the hooks), never by `doctor`; read by all. The file
//! (`layout::DATABASE_CACHE`) is the installer's bookkeeping.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use connector_host::layout;
use connector_host::layout::DATABASE_CACHE;
use connector_host::pkg::{KernelFiles, Owners, PackageBackend};
use connector_host::stamp::{self, Stamp};
use connector_host::Root;
use serde::{Deserialize, Serialize};

/// The largest cache read (a few hundred bytes per kernel).
const CAP: u64 = 1024 * 1024;

/// A question to the database and the state it was asked in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asked {
    /// The installer that asked (the question's form is its own).
    installer: String,
    /// `dev ino size mtime_ns ctime_ns PATH` of each database file (host
    /// paths), before the question was asked.
    database: Vec<String>,
    /// Per kernel: release, each file and whether it exists, header file.
    question: Vec<String>,
    /// The newest ctime among the database files.
    #[serde(skip)]
    newest: i128,
}

impl Asked {
    /// The state of `backend`'s database and the question `kernels` puts
    /// to it; `None` when the backend names no database files.
    pub fn now(
        root: &Root,
        backend: &dyn PackageBackend,
        kernels: &[KernelFiles],
    ) -> Option<Asked> {
        let files = backend.database_files();
        if files.is_empty() {
            log::debug!("the package database names no files: its answers are not kept");
            return None;
        }
        let mut newest = i128::MIN;
        let mut database = Vec::new();
        for f in files {
            // An empty file's content is the same however often it was
            // emptied: rpm's sqlite truncates its empty write-ahead log
            // (moving its times) at the end of every query.
            let identity = match std::fs::symlink_metadata(&f) {
                Ok(m) if m.is_file() && m.len() == 0 => "empty".to_string(),
                Ok(m) => {
                    let s = Stamp::of(&m);
                    newest = newest.max(s.ctime_ns);
                    s.to_words()
                }
                Err(_) => "absent".to_string(),
            };
            database.push(format!("{identity} {}", f.display()));
        }
        let question = kernels
            .iter()
            .map(|k| {
                let files: Vec<String> = k
                    .files
                    .iter()
                    .map(|f| format!("{f}={}", root.exists(f).unwrap_or(false)))
                    .collect();
                format!(
                    "{} {} {}",
                    k.release,
                    files.join(","),
                    k.header_file.as_deref().unwrap_or("-")
                )
            })
            .collect();
        Some(Asked {
            installer: env!("CARGO_PKG_VERSION").to_string(),
            database,
            question,
            newest,
        })
    }
}

/// The database's answers to one question: the owners, and whether each
/// header package the owners left open is installed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    asked: Asked,
    pub owners: Owners,
    installed: BTreeMap<String, bool>,
    /// Asked in this run (not read from the cache).
    #[serde(skip)]
    new: bool,
}

impl Answer {
    /// The database's answer `owners` to `asked`, just given.
    pub fn fresh(asked: Asked, owners: Owners) -> Answer {
        Answer {
            asked,
            owners,
            installed: BTreeMap::new(),
            new: true,
        }
    }

    /// Whether each of `packages` is installed, when all were answered.
    pub fn installed_of(&self, packages: &[String]) -> Option<BTreeMap<String, bool>> {
        packages
            .iter()
            .map(|p| Some((p.clone(), *self.installed.get(p)?)))
            .collect()
    }

    /// The database's word on installed packages, asked in this run.
    pub fn learnt(&mut self, installed: &BTreeMap<String, bool>) {
        self.installed
            .extend(installed.iter().map(|(k, v)| (k.clone(), *v)));
        self.new = true;
    }

    /// Asked (at least in part) in this run: worth keeping.
    pub fn is_new(&self) -> bool {
        self.new
    }
}

/// The kept answer to `asked`, when it was kept for exactly that question
/// and database state, and after every database file last changed.
pub fn answer(root: &Root, asked: &Asked) -> Option<Answer> {
    let host = host_path(root)?;
    let f = connector_host::root::open_regular(&host).ok()?;
    let written = Stamp::of(&f.metadata().ok()?).mtime_ns;
    let mut text = String::new();
    f.take(CAP).read_to_string(&mut text).ok()?;
    let kept: Answer = serde_json::from_str(&text).ok()?;
    let why_not = if kept.asked.installer != asked.installer {
        Some("kept by another installer version")
    } else if kept.asked.database != asked.database {
        Some("the database changed since")
    } else if kept.asked.question != asked.question {
        Some("the question differs (kernels or header trees changed)")
    } else if asked.newest >= written {
        Some("the database changed as it was kept")
    } else {
        None
    };
    if let Some(why) = why_not {
        log::debug!("the package database's kept answer does not stand: {why}");
        return None;
    }
    log::debug!("the package database is unchanged since it was last asked: its answer stands");
    Some(kept)
}

/// Keeps `answer` (best effort: it is a cache).
pub fn keep(root: &Root, answer: &Answer) {
    // Where the run's own record (last-run.json) goes too: made (and
    // labeled) when missing.
    let host = match crate::state::state_file(root, DATABASE_CACHE) {
        Ok(path) => path,
        Err(e) => {
            log::debug!("not keeping the package database's answer: {e:#}");
            return;
        }
    };
    let Ok(text) = serde_json::to_vec(answer) else {
        return;
    };
    if connector_host::root::read_capped(&host, CAP)
        .ok()
        .as_deref()
        == Some(text.as_slice())
    {
        return;
    }
    stamp::wait_past(answer.asked.newest);
    if let Err(e) = connector_host::atomic::write(&host, &text, 0o600, None) {
        log::debug!("not keeping the package database's answer: {e}");
    }
}

/// The cache's host path, when the root has the state directory.
fn host_path(root: &Root) -> Option<PathBuf> {
    let dir = root.resolve_optional(layout::STATE_DIR).ok()??;
    Some(dir.join(Path::new(DATABASE_CACHE).file_name()?))
}
