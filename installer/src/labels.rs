//! SELinux labels, all in one place and all through the `selinux` crate:
//! the labels the root's own file contexts give (`FileContexts`, selabel),
//! setting a label on a file being written (`set_on_file`, fsetfilecon),
//! reading one (`of_path`, lgetfilecon), and which of the connector's paths
//! are mislabeled. Relabeling after the module is installed (restorecon,
//! `setfiles -r`) is the policy store's (`connector_policy::Store::relabel`).

use std::fs;
use std::io;
use std::path::Path;

use anyhow::Result;
use connector_host::{layout, Root};
use selinux::SecurityContext;

/// Sets SELinux labels on what is written: the root's own file contexts.
pub trait Labeler {
    /// The label for `path` (inside the root) of type `mode`, if any.
    fn label_for(&self, path: &str, mode: u32) -> Option<String>;
}

/// No labels (root without SELinux).
pub struct NoLabels;

impl Labeler for NoLabels {
    fn label_for(&self, _path: &str, _mode: u32) -> Option<String> {
        None
    }
}

/// Labels from `ROOT/etc/selinux/TYPE/contexts/files/file_contexts`,
/// through libselinux's selabel.
pub struct FileContexts {
    handle: std::cell::RefCell<selinux_label::Handle>,
}

mod selinux_label {
    pub type Handle = selinux::label::Labeler<selinux::label::back_end::File>;
}

impl FileContexts {
    /// Opens the root's file contexts; `Ok(None)` without SELinux in the
    /// root (no config, or `SELINUX=disabled`). With SELinux configured, a
    /// file_contexts that is missing or unreadable is an error: files laid
    /// down unlabeled would be denied to the connector (fail closed).
    pub fn open(root: &Root) -> Result<Option<FileContexts>> {
        let Some(cfg) = connector_policy::read_config(root)? else {
            return Ok(None);
        };
        if cfg.mode == connector_policy::ConfigMode::Disabled {
            return Ok(None);
        }
        let inside = format!(
            "/etc/selinux/{}/contexts/files/file_contexts",
            cfg.policy_type
        );
        let broken = |detail: String| {
            anyhow::anyhow!(
                "{inside} in the root: {detail}; SELinux is configured there \
                 (SELINUX={:?} in /etc/selinux/config), so the connector's files cannot be \
                 labeled: reinstall the {} policy package, or set SELINUX=disabled",
                cfg.mode,
                cfg.policy_type
            )
        };
        let fc = root.resolve(&inside).map_err(|e| broken(e.to_string()))?;
        connector_host::root::open_regular(&fc).map_err(|e| broken(e.to_string()))?;
        let path = std::ffi::CString::new(fc.as_os_str().as_encoded_bytes())?;
        // SELABEL_OPT_PATH = 3
        let opts = [(3 as libc::c_int, path.as_ptr() as *const libc::c_void)];
        let handle = selinux::label::Labeler::new(&opts, true)
            .map_err(|e| broken(format!("libselinux cannot read it: {e}")))?;
        Ok(Some(FileContexts {
            handle: std::cell::RefCell::new(handle),
        }))
    }
}

impl Labeler for FileContexts {
    fn label_for(&self, path: &str, mode: u32) -> Option<String> {
        let h = self.handle.borrow();
        let ctx = h
            .look_up(&std::ffi::CString::new(path).ok()?, mode as i32)
            .ok()?;
        let bytes = ctx.as_bytes();
        Some(
            String::from_utf8_lossy(bytes)
                .trim_end_matches('\0')
                .to_string(),
        )
    }
}

/// Sets `label` (raw form) on an open file: before its content is
/// visible, so it is never seen unlabeled.
pub fn set_on_file(file: &fs::File, label: &str) -> io::Result<()> {
    let c = std::ffi::CString::new(label).map_err(io::Error::other)?;
    let ctx = SecurityContext::from_c_str(&c, true);
    let set = ctx.set_for_file(file);
    set.map_err(|e| io::Error::other(e.to_string()))
}

/// The label of `p` itself (not following a last link), raw; `None` when
/// it has none or cannot be read.
pub fn of_path(p: &Path) -> Option<String> {
    let ctx = SecurityContext::of_path(p, false, true).ok()??;
    Some(
        String::from_utf8_lossy(ctx.as_bytes())
            .trim_end_matches('\0')
            .to_string(),
    )
}

/// Paths among the connector's whose SELinux label is not what the root's
/// file contexts say; `None` when that cannot be told.
pub fn mislabeled(root: &Root) -> Option<Vec<String>> {
    let fc = FileContexts::open(root).ok()??;
    let mut wrong = Vec::new();
    for top in layout::LABELED {
        let Ok(Some(host)) = root.resolve_optional(top) else {
            continue;
        };
        let mut stack = vec![(top.to_string(), host)];
        while let Some((inside, host)) = stack.pop() {
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            use std::os::unix::fs::MetadataExt;
            let want = fc.label_for(&inside, meta.mode() & libc::S_IFMT);
            // The installer's own bookkeeping is read by nothing confined.
            let bookkeeping = layout::BOOKKEEPING.contains(&inside.as_str());
            if want.is_some() && !bookkeeping && of_path(&host) != want {
                wrong.push(inside.clone());
            }
            if meta.is_dir() {
                for name in std::fs::read_dir(&host).into_iter().flatten().flatten() {
                    let n = name.file_name().to_string_lossy().into_owned();
                    stack.push((format!("{inside}/{n}"), name.path()));
                }
            }
        }
    }
    wrong.sort();
    Some(wrong)
}
