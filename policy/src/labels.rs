//! The connector's files and their SELinux labels, judged and set in this
//! process through libselinux (the `selinux` crate): the label a path
//! should carry comes from the root's own `file_contexts` (selabel, the
//! same lookup setfiles and restorecon make), the label it carries from its
//! `security.selinux` attribute. Only what differs is written, so a healthy
//! host costs a walk of the connector's few files and no process at all.
//!
//! The connector's paths are [`LABELED_PATHS`](crate::LABELED_PATHS); the
//! installer's own bookkeeping below them (its lock, journal, last-run
//! record) is read by nothing confined and is not judged.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use connector_host::{layout, Root};
use selinux::SecurityContext;

use crate::{read_config, ConfigMode, PolicyError};

/// The labels of `ROOT/etc/selinux/TYPE/contexts/files/file_contexts`,
/// looked up through libselinux's selabel.
pub struct FileContexts {
    handle: selinux::label::Labeler<selinux::label::back_end::File>,
}

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
        // SELABEL_OPT_PATH = 3; no SELABEL_OPT_VALIDATE, so libselinux does
        // not spend its time checking the policy's specs for duplicates.
        let opts = [(3 as libc::c_int, path.as_ptr() as *const libc::c_void)];
        let handle = selinux::label::Labeler::new(&opts, true)
            .map_err(|e| broken(format!("libselinux cannot read it: {e}")))?;
        Ok(Some(FileContexts { handle }))
    }

    /// The raw label for `path` (inside the root) of file type `mode`
    /// (`S_IFMT` bits); `None` when the file contexts give none
    /// (`<<none>>`, or no entry).
    pub fn label_for(&self, path: &str, mode: u32) -> Option<String> {
        let key = CString::new(path).ok()?;
        let ctx = self.handle.look_up(&key, mode as libc::c_int).ok()?;
        Some(text_of(&ctx))
    }
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
    for top in crate::LABELED_PATHS {
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
