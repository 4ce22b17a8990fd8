//! The workspace's one way to replace a file: a temporary file beside it
//! (created exclusively, mode 0600), prepared on its descriptor (a label)
//! before anything is in it, the content, the mode, fsync, rename over the
//! destination, fsync of the directory. A reader sees the old file or the
//! new one, never part of one; a crash leaves at most the temporary file
//! (named `.NAME.connector-tmp.PID`, which a resumed install removes).

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What [`write`] does to the new file's descriptor before its content:
/// set its SELinux label, say.
pub type Prepare<'a> = &'a dyn Fn(&fs::File) -> io::Result<()>;

/// The temporary name [`write`] uses for `dest`.
pub fn temporary_for(dest: &Path) -> Option<PathBuf> {
    let name = dest.file_name()?.to_string_lossy();
    Some(dest.with_file_name(format!(".{name}.connector-tmp.{}", std::process::id())))
}

/// Replaces `dest` with `bytes`, mode `mode`; `prepare` runs on the new
/// file's descriptor while it is still empty and unnamed to readers.
/// Errors name the destination and the step (never the temporary file).
pub fn write(dest: &Path, bytes: &[u8], mode: u32, prepare: Option<Prepare<'_>>) -> io::Result<()> {
    write_from(dest, &mut &bytes[..], mode, prepare)
}

/// [`write`], the content read from `source` to its end (a copy: no more
/// of it is held in memory than a buffer).
pub fn write_from(
    dest: &Path,
    source: &mut dyn Read,
    mode: u32,
    prepare: Option<Prepare<'_>>,
) -> io::Result<()> {
    let tmp = temporary_for(dest)
        .ok_or_else(|| io::Error::other(format!("{}: no file name", dest.display())))?;
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| step("creating a file beside", dest, e))?;
        if let Some(prepare) = prepare {
            prepare(&f).map_err(|e| step("preparing", dest, e))?;
        }
        io::copy(source, &mut f).map_err(|e| step("writing", dest, e))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| step("setting the mode of", dest, e))?;
        f.sync_all().map_err(|e| step("syncing", dest, e))?;
        rename_synced(&tmp, dest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Moves `source`, a finished file another step wrote (a compiler's
/// output, a download), to `dest` in the same file system with the
/// guarantees of [`write`]: its content synced before the rename, the
/// directory synced after it, so a crash never leaves `dest` named with
/// part of its content. Errors name the destination.
pub fn place(source: &Path, dest: &Path) -> io::Result<()> {
    fs::File::open(source)
        .and_then(|f| f.sync_all())
        .map_err(|e| step("syncing the content of", dest, e))?;
    rename_synced(source, dest)
}

/// The last steps of both: `from` (synced) renamed over `dest`, then the
/// directory synced so the new name survives a crash.
fn rename_synced(from: &Path, dest: &Path) -> io::Result<()> {
    let dir = match dest.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => return Err(io::Error::other(format!("{}: no parent", dest.display()))),
    };
    fs::rename(from, dest).map_err(|e| step("replacing", dest, e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| step("syncing", dir, e))
}

/// An error naming the step and the file it was for.
fn step(what: &str, p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_with_mode_and_leaves_nothing_on_failure() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "old").unwrap();
        let seen = std::cell::Cell::new(false);
        let prepare = |f: &fs::File| {
            assert_eq!(f.metadata()?.len(), 0, "prepared before any content");
            seen.set(true);
            Ok(())
        };
        write(&p, b"new", 0o640, Some(&prepare)).unwrap();
        assert!(seen.get());
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        // A failing preparation: the old file stays, no temporary is left.
        let fail = |_: &fs::File| Err(io::Error::other("no label"));
        let e = write(&p, b"newer", 0o644, Some(&fail)).unwrap_err();
        assert!(e.to_string().contains("preparing"), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        // An error names the file being replaced, not the temporary.
        let no_dir = d.path().join("missing/f");
        let e = write(&no_dir, b"x", 0o644, None).unwrap_err();
        assert!(e.to_string().contains(&no_dir.display().to_string()), "{e}");
        assert!(!e.to_string().contains("connector-tmp"), "{e}");
    }

    #[test]
    fn a_copy_streams_from_its_source() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("copy");
        let big = vec![7u8; 3 * 1024 * 1024];
        write_from(&p, &mut &big[..], 0o600, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), big);
    }

    #[test]
    fn a_finished_file_is_placed_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let made = d.path().join("probe.o.new");
        let dest = d.path().join("probe.o");
        fs::write(&dest, "old").unwrap();
        fs::write(&made, "new object").unwrap();
        place(&made, &dest).unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new object");
        assert!(!made.exists(), "the source is moved, not copied");
        // A missing source: the destination keeps its content, and the
        // error names the destination.
        let e = place(&made, &dest).unwrap_err();
        assert!(e.to_string().contains(&dest.display().to_string()), "{e}");
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new object");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
