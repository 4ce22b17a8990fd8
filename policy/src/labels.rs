//! The connector's files and their SELinux labels, judged and set in this
//! process through libselinux (the `selinux` crate): the label a path
//! should carry comes from the root's own `file_contexts` (selabel, the
//! same lookup setfiles and restorecon make), the label it carries from its
//! `security.selinux` attribute. Only what differs is written, so a healthy
//! host costs a walk of the connector's few files and no process at all.
//!
//! The connector's paths are [`LABELED`](connector_host::layout::LABELED); the
//! installer's own bookkeeping below them (its lock, journal, last-run
//! record) is read by nothing confined and is not judged.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use connector_host::stamp::Stamp;
use connector_host::{layout, Root};
use selinux::SecurityContext;

use crate::{read_config, ConfigMode, PolicyError};

/// The labels of `ROOT/etc/selinux/TYPE/contexts/files/file_contexts`,
/// looked up through libselinux's selabel, remembered in
/// [`layout::LABEL_CACHE`] for as long as the file contexts are unchanged.
///
/// Opening the policy's file contexts costs libselinux 5-12 ms (thousands
/// of regular expressions); a healthy re-run asks about the same few dozen
/// paths each time. So every answer is kept with the identity
/// ([`Stamp`]) of each `file_contexts*` file libselinux reads (the
/// specifications, `.bin`, `.local`, `.homedirs`, substitutions); while
/// every one is unchanged (and older than the cache, see
/// `connector_host::stamp`), an answer is the cache's and selabel is not
/// opened at all. Any change of any of them, or an unknown path, opens it.
pub struct FileContexts {
    /// The host path of `file_contexts`.
    path: CString,
    /// Opened on the first question the cache cannot answer.
    handle: OnceCell<Option<selinux::label::Labeler<selinux::label::back_end::File>>>,
    /// Answers by (path inside the root, file type).
    known: RefCell<Answers>,
    /// One line per `file_contexts*` file: its identity and name.
    sources: String,
    /// The newest ctime among them.
    newest: i128,
    /// Where the cache lives (host path), when the state directory exists.
    cache: Option<PathBuf>,
    /// The cache's text as read, to write only what changed.
    read: String,
}

/// The file contexts' answers: by (path inside the root, file type), the
/// label (`None`: none given).
type Answers = BTreeMap<(String, u32), Option<String>>;

const CACHE_HEADER: &str = "# connector label cache 1";
/// The largest cache read (a line per path; the connector has dozens).
const CACHE_CAP: u64 = 1024 * 1024;

impl FileContexts {
    /// Opens the root's file contexts; `Ok(None)` without SELinux in the
    /// root (no config, or `SELINUX=disabled`). With SELinux configured, a
    /// file_contexts that is missing or unreadable is an error: files laid
    /// down unlabeled would be denied to the connector (fail closed).
    pub fn open(root: &Root) -> Result<Option<FileContexts>, PolicyError> {
        let Some(cfg) = read_config(root)? else {
            return Ok(None);
        };
        if cfg.mode == ConfigMode::Disabled {
            return Ok(None);
        }
        let inside = crate::file_contexts(&cfg.policy_type);
        let broken = |detail: String| PolicyError::FileContexts {
            path: inside.clone(),
            detail,
            mode: cfg.mode.as_str(),
            policy_type: cfg.policy_type.clone(),
        };
        let fc = root.resolve(&inside).map_err(|e| broken(e.to_string()))?;
        connector_host::root::open_regular(&fc).map_err(|e| broken(e.to_string()))?;
        let path =
            CString::new(fc.as_os_str().as_encoded_bytes()).map_err(|e| broken(e.to_string()))?;
        let (sources, newest) = sources_of(&fc);
        let cache = root
            .resolve_optional(layout::STATE_DIR)
            .ok()
            .flatten()
            .map(|d| {
                d.join(
                    Path::new(layout::LABEL_CACHE)
                        .file_name()
                        .unwrap_or_default(),
                )
            });
        let (known, read) = cache
            .as_deref()
            .and_then(|c| read_cache(c, &sources))
            .unwrap_or_default();
        let me = FileContexts {
            path,
            handle: OnceCell::new(),
            known: RefCell::new(known),
            sources,
            newest,
            cache,
            read,
        };
        if me.read.is_empty() {
            // No answers to give from the cache: opened now, so that a
            // file_contexts libselinux cannot read is refused here.
            me.handle
                .set(Some(me.open_handle().map_err(|e| {
                    broken(format!("libselinux cannot read it: {e}"))
                })?))
                .ok();
        }
        Ok(Some(me))
    }

    fn open_handle(
        &self,
    ) -> Result<selinux::label::Labeler<selinux::label::back_end::File>, selinux::errors::Error>
    {
        // SELABEL_OPT_PATH = 3; no SELABEL_OPT_VALIDATE, so libselinux does
        // not spend its time checking the policy's specs for duplicates.
        let opts = [(3 as libc::c_int, self.path.as_ptr() as *const libc::c_void)];
        selinux::label::Labeler::new(&opts, true)
    }

    /// The raw label for `path` (inside the root) of file type `mode`
    /// (`S_IFMT` bits); `None` when the file contexts give none
    /// (`<<none>>`, or no entry).
    pub fn label_for(&self, path: &str, mode: u32) -> Option<String> {
        let key = (path.to_string(), mode);
        if let Some(answer) = self.known.borrow().get(&key) {
            return answer.clone();
        }
        let handle = self.handle.get_or_init(|| {
            self.open_handle()
                .map_err(|e| {
                    log::warn!(
                        "{}: libselinux cannot read it: {e}",
                        self.path.to_string_lossy()
                    )
                })
                .ok()
        });
        let answer = handle.as_ref().and_then(|h| {
            let c = CString::new(path).ok()?;
            Some(text_of(&h.look_up(&c, mode as libc::c_int).ok()?))
        });
        if handle.is_some() && !path.contains('\n') {
            self.known.borrow_mut().insert(key, answer.clone());
        }
        answer
    }

    /// Writes the answers to the cache when they are not what it held
    /// (best effort: a cache that cannot be written costs the next run a
    /// selabel open). Nothing is written on a run that asked only what the
    /// cache knew, or when the root has no state directory.
    pub fn save(&self) {
        let Some(cache) = &self.cache else { return };
        // Labeled like everything the installer writes (asked first: the
        // answer is kept too).
        let label = self.label_for(layout::LABEL_CACHE, libc::S_IFREG);
        let mut text = format!("{CACHE_HEADER}\n{}", self.sources);
        for ((path, mode), label) in self.known.borrow().iter() {
            let label = label.as_deref().unwrap_or("-");
            text.push_str(&format!("{mode:o} {label} {path}\n"));
        }
        if text == self.read {
            return;
        }
        connector_host::stamp::wait_past(self.newest);
        let set_label = |f: &fs::File| match &label {
            Some(l) => set_on_file(f, l),
            None => Ok(()),
        };
        if let Err(e) =
            connector_host::atomic::write(cache, text.as_bytes(), 0o600, Some(&set_label))
        {
            log::debug!("not remembering the file contexts' answers: {e}");
        }
    }
}

/// The identity of every `file_contexts*` file beside `fc` (all libselinux
/// may read for it), one `src STAMP NAME` line each, sorted; and the newest
/// ctime among them.
fn sources_of(fc: &Path) -> (String, i128) {
    let (mut lines, mut newest) = (Vec::new(), i128::MIN);
    let dir = fc.parent().unwrap_or(Path::new("/"));
    let base = fc
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&base) || name.contains(char::is_whitespace) {
            continue;
        }
        if let Ok(m) = fs::symlink_metadata(entry.path()) {
            let s = Stamp::of(&m);
            newest = newest.max(s.ctime_ns);
            lines.push(format!("src {} {name}\n", s.to_words()));
        }
    }
    lines.sort();
    (lines.concat(), newest)
}

/// The cache's answers when it was written for exactly `sources` (and
/// after every one of them last changed), with its text.
fn read_cache(cache: &Path, sources: &str) -> Option<(Answers, String)> {
    let f = connector_host::root::open_regular(cache).ok()?;
    let written = Stamp::of(&f.metadata().ok()?).mtime_ns;
    let mut text = String::new();
    f.take(CACHE_CAP).read_to_string(&mut text).ok()?;
    let body = text.strip_prefix(CACHE_HEADER)?.strip_prefix('\n')?;
    let answers = body.strip_prefix(sources)?;
    let settled = sources.lines().all(|l| {
        Stamp::from_words(&mut l.split(' ').skip(1)).is_some_and(|s| s.settled_before(written))
    });
    if !settled {
        return None;
    }
    let mut known = BTreeMap::new();
    for line in answers.lines() {
        let mut w = line.splitn(3, ' ');
        let mode = u32::from_str_radix(w.next()?, 8).ok()?;
        let label = w.next()?;
        let path = w.next()?;
        known.insert(
            (path.to_string(), mode),
            (label != "-").then(|| label.to_string()),
        );
    }
    Some((known, text))
}

fn text_of(ctx: &SecurityContext<'_>) -> String {
    String::from_utf8_lossy(ctx.as_bytes())
        .trim_end_matches('\0')
        .to_string()
}

/// Sets `label` (raw form) on an open file: before its content is visible,
/// so it is never seen unlabeled.
pub fn set_on_file(file: &fs::File, label: &str) -> io::Result<()> {
    let c = CString::new(label).map_err(io::Error::other)?;
    let ctx = SecurityContext::from_c_str(&c, true);
    ctx.set_for_file(file)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Sets `label` (raw form) on `p` itself (a link is not followed).
pub fn set_on_path(p: &Path, label: &str) -> io::Result<()> {
    let c = CString::new(label).map_err(io::Error::other)?;
    let ctx = SecurityContext::from_c_str(&c, true);
    let set = ctx.set_for_path(p, false, true);
    set.map_err(|e| io::Error::other(e.to_string()))
}

/// The raw label of `p` itself (not following a last link); `None` when it
/// has none or it cannot be read.
pub fn of_path(p: &Path) -> Option<String> {
    let ctx = SecurityContext::of_path(p, false, true).ok()??;
    Some(text_of(&ctx))
}

/// One of the connector's paths whose label is not the file contexts'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mislabeled {
    /// The path inside the root.
    pub path: String,
    /// Where it is on this host.
    host: PathBuf,
    /// The label it carries (raw), if any.
    pub has: Option<String>,
    /// The label the file contexts give it (raw).
    pub wants: String,
}

/// The connector's paths, under the root, whose label differs from what
/// `fc` gives them (the whole context, as `setfiles -F` judges). Links are
/// not followed below the connector's top paths, and the last component of
/// a top path is judged itself (a link is a link), as setfiles does.
pub fn mislabeled(root: &Root, fc: &FileContexts) -> Vec<Mislabeled> {
    let mut wrong = Vec::new();
    for top in connector_host::layout::LABELED {
        let Some(host) = host_of(root, top) else {
            continue;
        };
        let mut stack = vec![(top.to_string(), host)];
        while let Some((inside, host)) = stack.pop() {
            let Ok(meta) = fs::symlink_metadata(&host) else {
                continue;
            };
            // The installer's own bookkeeping is read by nothing confined.
            if !layout::BOOKKEEPING.contains(&inside.as_str()) {
                if let Some(wants) = fc.label_for(&inside, meta.mode() & libc::S_IFMT) {
                    let has = of_path(&host);
                    if has.as_deref() != Some(wants.as_str()) {
                        wrong.push(Mislabeled {
                            path: inside.clone(),
                            host: host.clone(),
                            has,
                            wants,
                        });
                    }
                }
            }
            if meta.is_dir() {
                for entry in fs::read_dir(&host).into_iter().flatten().flatten() {
                    let name = entry.file_name();
                    stack.push((format!("{inside}/{}", name.to_string_lossy()), entry.path()));
                }
            }
        }
    }
    wrong.sort_by(|a, b| a.path.cmp(&b.path));
    wrong
}

/// `p`'s directory resolved inside the root, then `p`'s own name: the file
/// itself, a link not followed. `None` when it does not exist.
fn host_of(root: &Root, p: &str) -> Option<PathBuf> {
    let p = Path::new(p);
    let parent = root.resolve_optional(p.parent()?).ok()??;
    let host = parent.join(p.file_name()?);
    fs::symlink_metadata(&host).ok()?;
    Some(host)
}

/// Sets the label each of `wrong` should carry. A file with other hard
/// links is first replaced by a private copy (its other names, perhaps
/// outside the root, keep their label). Returns the paths relabeled.
pub fn fix(wrong: &[Mislabeled]) -> Result<Vec<String>, PolicyError> {
    let mut done = Vec::new();
    for m in wrong {
        let io_err = |error: io::Error| PolicyError::Io {
            path: m.path.clone(),
            error,
        };
        crate::break_hard_links(&m.host)?;
        set_on_path(&m.host, &m.wants).map_err(io_err)?;
        log::info!(
            "{}: relabeled {} (was {})",
            m.path,
            m.wants,
            m.has.as_deref().unwrap_or("unlabeled")
        );
        done.push(m.path.clone());
    }
    Ok(done)
}
