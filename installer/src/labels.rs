//! SELinux labels for what the installer writes: the [`Labeler`] a lay-down
//! asks, backed by the root's own file contexts
//! (`connector_policy::labels`, where judging and fixing the connector's
//! labels lives: `connector_policy::Store::relabel`) or by nothing.

use connector_host::Root;

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

pub use connector_policy::labels::{set_on_file, FileContexts};

impl Labeler for FileContexts {
    fn label_for(&self, path: &str, mode: u32) -> Option<String> {
        FileContexts::label_for(self, path, mode)
    }
}

/// Paths among the connector's whose SELinux label is not what the root's
/// file contexts say, with the file contexts that said so (their answers
/// are kept by [`FileContexts::save`]); `None` when that cannot be told.
pub fn mislabeled(root: &Root) -> Option<(Vec<String>, FileContexts)> {
    let fc = FileContexts::open(root).ok()??;
    let wrong = connector_policy::labels::mislabeled(root, &fc)
        .into_iter()
        .map(|m| m.path)
        .collect();
    Some((wrong, fc))
}
