//! The system root every command works on (`--root DIR`, default `/`).
//!
//! A live host and a golden image are the same code path: every path the
//! installer reads is resolved *inside* the root with chroot semantics.
//! An absolute symlink (`etc/os-release -> /usr/lib/os-release`,
//! `lib/modules/K/build -> /usr/src/kernels/K`) restarts at the root, `..`
//! never climbs above it, and `lib -> usr/lib` (usr-merge) is followed like any
//! other link. `Path::join` with an absolute path silently escapes the root;
//! nothing here ever does that.
//!
//! The kernel resolves each path in one call where it can
//! (`openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, Linux 5.6+, read
//! back through `/proc/self/fd`); where it cannot (EL7/EL8 kernels, a
//! seccomp filter, no `/proc`) the same rules are walked in user space, one
//! component at a time. Both are tested to agree. It is meant for reading a
//! root we were asked to inspect; code that writes into a root must re-check
//! what it opens.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

/// Linux's own limit on symlinks followed during one lookup.
const MAX_SYMLINKS: usize = 40;

/// The most [`Root::read_to_string`] reads: the files read whole are small
/// (os-release and release files, SELinux config, headers' `Makefile` and
/// `utsrelease.h`, `status.json`, the pending record); anything larger in
/// an image is refused, not read.
pub const READ_CAP: u64 = 1024 * 1024;

/// A directory treated as `/`.
#[derive(Debug, Clone)]
pub struct Root {
    path: PathBuf,
    /// `/` seen from inside a chroot or container of an image: the running
    /// kernel, systemd and SELinux state are not the root's own.
    image: bool,
    /// The root opened once (`O_PATH`) for the kernel's resolution; None
    /// inside when it could not be opened.
    dir: Arc<OnceLock<Option<OwnedFd>>>,
}

impl PartialEq for Root {
    fn eq(&self, other: &Root) -> bool {
        self.path == other.path && self.image == other.image
    }
}

impl Eq for Root {}

/// Whether `openat2` is usable here: unknown, yes, no (ENOSYS, or a filter
/// that refuses it).
static OPENAT2: AtomicU8 = AtomicU8::new(0);
const OPENAT2_YES: u8 = 1;
const OPENAT2_NO: u8 = 2;

impl Root {
    /// Opens `path` as a root. It must be an existing directory; it is
    /// canonicalized once here, so `--root .` and `--root /` work.
    pub fn new(path: impl AsRef<Path>) -> io::Result<Root> {
        let path = path.as_ref();
        let canonical = fs::canonicalize(path)
            .map_err(|e| io::Error::new(e.kind(), format!("root {}: {e}", path.display())))?;
        if !canonical.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("root {} is not a directory", path.display()),
            ));
        }
        Ok(Root {
            path: canonical,
            image: false,
            dir: Arc::default(),
        })
    }

    /// The root of the running system.
    pub fn live() -> Root {
        Root {
            path: PathBuf::from("/"),
            image: false,
            dir: Arc::default(),
        }
    }

    /// The same root, treated as an image even when it is `/` (a chroot or
    /// container building an image: `uname -r` is the build host's).
    pub fn as_image(mut self) -> Root {
        self.image = true;
        self
    }

    /// The root's path on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this root is the running system's `/` (then the running
    /// kernel, the live SELinux state and systemd belong to it).
    pub fn is_live(&self) -> bool {
        self.path == Path::new("/") && !self.image
    }

    /// The host path of `p` (a path inside the root) *without* following
    /// symlinks: what to hand to a tool that takes `--root` itself, or to
    /// show to a person. Never use it to open a file: use [`Root::resolve`].
    pub fn host_path(&self, p: impl AsRef<Path>) -> PathBuf {
        let mut out = self.path.clone();
        for c in p.as_ref().components() {
            if let Component::Normal(n) = c {
                out.push(n);
            }
        }
        out
    }

    /// Resolves `p` (absolute or relative, both taken from the root) to the
    /// host path of the file it names, following every symlink inside the
    /// root. Fails with `NotFound` when anything along the way is missing
    /// (a dangling link included), `NotADirectory` when a middle component is
    /// not a directory, and a "too many levels of symbolic links" error on a loop.
    pub fn resolve(&self, p: impl AsRef<Path>) -> io::Result<PathBuf> {
        let rel = self.resolve_rel(p.as_ref(), true)?;
        Ok(self.join_rel(&rel))
    }

    /// Like [`Root::resolve`] but `Ok(None)` when the file does not exist.
    pub fn resolve_optional(&self, p: impl AsRef<Path>) -> io::Result<Option<PathBuf>> {
        match self.resolve(p) {
            Ok(path) => Ok(Some(path)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The path inside the root that `p` resolves to (for messages:
    /// `/lib/modules/K/build` -> `/usr/src/kernels/K`).
    pub fn resolve_in_root(&self, p: impl AsRef<Path>) -> io::Result<PathBuf> {
        let rel = self.resolve_rel(p.as_ref(), true)?;
        let mut out = PathBuf::from("/");
        out.extend(rel);
        Ok(out)
    }

    /// Reads a whole regular file inside the root, at most [`READ_CAP`]
    /// bytes: a FIFO, a device or a larger file is refused with the path and
    /// the reason, never read (a FIFO would hang, a device never end).
    pub fn read_to_string(&self, p: impl AsRef<Path>) -> io::Result<String> {
        self.read_to_string_capped(p, READ_CAP)
    }

    /// [`Root::read_to_string`] with a cap of `cap` bytes.
    pub fn read_to_string_capped(&self, p: impl AsRef<Path>, cap: u64) -> io::Result<String> {
        let p = p.as_ref();
        let host = self.resolve(p).map_err(|e| annotate(e, p))?;
        read_text_capped(&host, cap).map_err(|e| annotate(e, p))
    }

    /// Reads a whole file inside the root; `Ok(None)` when it is missing.
    pub fn read_to_string_optional(&self, p: impl AsRef<Path>) -> io::Result<Option<String>> {
        match self.read_to_string(p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Metadata of what `p` resolves to; `Ok(None)` when missing.
    pub fn metadata_optional(&self, p: impl AsRef<Path>) -> io::Result<Option<fs::Metadata>> {
        // The kernel's descriptor answers without naming the file.
        if let Some(found) = self.open_kernel(p.as_ref(), true) {
            return match found {
                Ok(fd) => fs::File::from(fd).metadata().map(Some),
                Err(e) if is_missing(&e) => Ok(None),
                Err(e) => Err(e),
            };
        }
        match self.resolve_optional(p)? {
            Some(host) => match fs::metadata(host) {
                Ok(m) => Ok(Some(m)),
                Err(e) if is_missing(&e) => Ok(None),
                Err(e) => Err(e),
            },
            None => Ok(None),
        }
    }

    /// Whether `p` resolves to an existing file of any kind.
    pub fn exists(&self, p: impl AsRef<Path>) -> io::Result<bool> {
        Ok(self.metadata_optional(p)?.is_some())
    }

    /// Whether `p` resolves to a directory.
    pub fn is_dir(&self, p: impl AsRef<Path>) -> io::Result<bool> {
        Ok(self.metadata_optional(p)?.is_some_and(|m| m.is_dir()))
    }

    /// Whether `p` resolves to a regular file.
    pub fn is_file(&self, p: impl AsRef<Path>) -> io::Result<bool> {
        Ok(self.metadata_optional(p)?.is_some_and(|m| m.is_file()))
    }

    /// The target of the symlink at `p` (the link itself is not followed;
    /// the directories leading to it are). `Ok(None)` when `p` does not exist
    /// or is not a symlink.
    pub fn read_link_optional(&self, p: impl AsRef<Path>) -> io::Result<Option<PathBuf>> {
        let p = p.as_ref();
        let Some(name) = p.file_name() else {
            return Ok(None);
        };
        let parent = p.parent().unwrap_or(Path::new("/"));
        let Some(dir) = self.resolve_optional(parent)? else {
            return Ok(None);
        };
        match fs::read_link(dir.join(name)) {
            Ok(t) => Ok(Some(t)),
            Err(e) if is_missing(&e) || e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names in directory `p`, sorted; empty when `p` does not exist.
    pub fn read_dir_names(&self, p: impl AsRef<Path>) -> io::Result<Vec<OsString>> {
        let p = p.as_ref();
        let Some(dir) = self.resolve_optional(p)? else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Vec::new()),
            Err(e) => return Err(annotate(e, p)),
        };
        for entry in entries {
            names.push(entry.map_err(|e| annotate(e, p))?.file_name());
        }
        names.sort();
        Ok(names)
    }

    /// The host path of `p` for a tool that takes the root itself
    /// (`semodule -p`, `setfiles -r`, `rpm --root`, `dnf --installroot`,
    /// `dpkg --root`, `apt-get -o Dir=`, `systemctl --root`). Such a tool
    /// resolves `ROOT/p` with the host's kernel, which follows an absolute or
    /// climbing symlink in the root *out* of it; this checks that the host's
    /// resolution and the chroot resolution of `p` are the same place, and
    /// otherwise names the link. Parts of `p` that do not exist yet are
    /// compared as written (the tool would create them where the existing
    /// part leads). On the live root nothing can lead outside it.
    pub fn tool_path(&self, p: impl AsRef<Path>) -> Result<PathBuf, Escape> {
        let p = p.as_ref();
        let host = self.host_path(p);
        if self.path == Path::new("/") {
            return Ok(host);
        }
        let same = |q: &Path| {
            walk_lenient(Path::new("/"), &self.host_path(q)) == walk_lenient(&self.path, q)
        };
        if same(p) {
            return Ok(host);
        }
        // The first prefix that differs ends in the link.
        let mut prefix = PathBuf::from("/");
        for c in components(p) {
            prefix.push(&c);
            if !same(&prefix) {
                let link_host = self.host_path(&prefix);
                return Err(Escape {
                    target: fs::read_link(&link_host).unwrap_or_default(),
                    outside: walk_lenient(Path::new("/"), &link_host).unwrap_or(link_host),
                    link: prefix,
                });
            }
        }
        // Unreachable in practice (the whole path differed); refuse anyway.
        Err(Escape {
            target: PathBuf::new(),
            outside: host,
            link: p.to_path_buf(),
        })
    }

    /// [`Root::tool_path`] for every path in `paths`.
    pub fn check_tool_paths<P: AsRef<Path>>(
        &self,
        paths: impl IntoIterator<Item = P>,
    ) -> Result<(), Escape> {
        for p in paths {
            self.tool_path(p)?;
        }
        Ok(())
    }

    /// `paths` (inside the root) with each name that ends in `*` replaced by
    /// the entries of its directory that begin with the rest; sorted,
    /// without duplicates. Used for key names such as
    /// `/etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-*`.
    pub fn expand_globs(&self, paths: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for p in paths {
            let Some(prefix) = p.strip_suffix('*') else {
                out.push(p.clone());
                continue;
            };
            let (dir, start) = prefix.rsplit_once('/').unwrap_or(("", prefix));
            for name in self
                .read_dir_names(if dir.is_empty() { "/" } else { dir })
                .unwrap_or_default()
            {
                let name = name.to_string_lossy();
                if name.starts_with(start) {
                    out.push(format!("{dir}/{name}"));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn join_rel(&self, rel: &[OsString]) -> PathBuf {
        let mut out = self.path.clone();
        out.extend(rel);
        out
    }

    /// The components (from the root) of what `p` names: the kernel's
    /// answer where it gives one, else the walk's.
    fn resolve_rel(&self, p: &Path, follow_last: bool) -> io::Result<Vec<OsString>> {
        match self.resolve_kernel(p, follow_last) {
            Some(answer) => answer,
            None => self.walk(p, follow_last),
        }
    }

    /// `openat2(RESOLVE_IN_ROOT)`: every absolute link and `..` stays in the
    /// root, as in the walk, in one call; `RESOLVE_NO_MAGICLINKS` refuses a
    /// `/proc` link inside an image. Gives an `O_PATH` descriptor of what
    /// `p` names, or None where that cannot be done (no openat2, a rename
    /// racing it): the walk answers then.
    fn open_kernel(&self, p: &Path, follow_last: bool) -> Option<io::Result<OwnedFd>> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;
        if OPENAT2.load(Ordering::Relaxed) == OPENAT2_NO {
            return None;
        }
        let dir = self
            .dir
            .get_or_init(|| {
                rustix::fs::open(
                    &self.path,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()
            })
            .as_ref()?;
        let mut rel: PathBuf = components(p).into_iter().collect();
        if rel.as_os_str().is_empty() {
            rel.push(".");
        }
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow_last {
            flags |= OFlags::NOFOLLOW;
        }
        match rustix::fs::openat2(
            dir,
            &rel,
            flags,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => {
                OPENAT2.store(OPENAT2_YES, Ordering::Relaxed);
                Some(Ok(fd))
            }
            Err(e) if e == Errno::NOSYS || e == Errno::PERM => {
                OPENAT2.store(OPENAT2_NO, Ordering::Relaxed);
                None
            }
            // A rename during the lookup (the kernel's own retry signal).
            Err(e) if e == Errno::AGAIN || e == Errno::XDEV => None,
            Err(e) => Some(Err(io::Error::from(e))),
        }
    }

    /// [`open_kernel`](Root::open_kernel), the file found named back
    /// through `/proc/self/fd` (None without `/proc`).
    fn resolve_kernel(&self, p: &Path, follow_last: bool) -> Option<io::Result<Vec<OsString>>> {
        let found = match self.open_kernel(p, follow_last)? {
            Ok(fd) => fd,
            Err(e) => return Some(Err(e)),
        };
        let named = fs::read_link(format!("/proc/self/fd/{}", found.as_raw_fd())).ok()?;
        let inside = named.strip_prefix(&self.path).ok()?;
        Some(Ok(inside
            .components()
            .map(|c| c.as_os_str().to_owned())
            .collect()))
    }

    /// The walk: chroot-style, in user space. `resolved` holds the
    /// components (from the root) known to exist and not to be symlinks;
    /// `pending` holds what is left, with link targets spliced in front as
    /// they are met.
    fn walk(&self, p: &Path, follow_last: bool) -> io::Result<Vec<OsString>> {
        let mut resolved: Vec<OsString> = Vec::new();
        let mut pending: VecDeque<OsString> = components(p);
        let mut links = 0usize;
        while let Some(name) = pending.pop_front() {
            if name == OsStr::new("..") {
                resolved.pop(); // at the root, `..` is the root
                continue;
            }
            let host = {
                let mut h = self.join_rel(&resolved);
                h.push(&name);
                h
            };
            let meta = fs::symlink_metadata(&host)?;
            let is_last = pending.is_empty();
            if meta.file_type().is_symlink() && (follow_last || !is_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = fs::read_link(&host)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in components(&target).into_iter().rev() {
                    pending.push_front(c);
                }
                continue;
            }
            if !is_last && !meta.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            resolved.push(name);
        }
        Ok(resolved)
    }
}

/// A symlink in a root that a tool given the root would follow out of it
/// (see [`Root::tool_path`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused: {} in the root is a symbolic link to {}, which a tool given the root resolves \
     with the host's kernel to {} (outside the root); replace it with a directory, or with a \
     relative link that stays inside the root",
    link.display(), target.display(), outside.display()
)]
pub struct Escape {
    /// The link, as a path inside the root.
    pub link: PathBuf,
    /// What it points to.
    pub target: PathBuf,
    /// Where the host's kernel would go.
    pub outside: PathBuf,
}

/// Resolves `p` below `top` (taken as `/`) the way the kernel would, one
/// component at a time, but keeps going where something is missing (the
/// rest is appended as written). `None` on a symlink loop.
fn walk_lenient(top: &Path, p: &Path) -> Option<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending = components(p);
    let mut links = 0usize;
    let mut exists = true;
    while let Some(name) = pending.pop_front() {
        if name == OsStr::new("..") {
            resolved.pop();
            continue;
        }
        if exists {
            let mut h = top.to_path_buf();
            h.extend(&resolved);
            h.push(&name);
            match fs::symlink_metadata(&h) {
                Ok(m) if m.file_type().is_symlink() => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return None;
                    }
                    let target = fs::read_link(&h).ok()?;
                    if target.is_absolute() {
                        resolved.clear();
                    }
                    for c in components(&target).into_iter().rev() {
                        pending.push_front(c);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(_) => exists = false,
            }
        }
        resolved.push(name);
    }
    let mut out = top.to_path_buf();
    out.extend(resolved);
    Some(out)
}

/// The path's components as names, with `.` and the root dropped and `..`
/// kept (it is applied during the walk, after links are followed).
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Whether an I/O error means "not there" (missing, or a middle component
/// that is not a directory).
pub fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Reads at most `cap` bytes of a regular file on the host: the one reader
/// for files named on the command line (`--archives`, a payload manifest,
/// a doctor document) and, through [`Root::read_to_string_capped`], for
/// every small file of a root. A FIFO, a device or a larger file is
/// refused (`refused: …`), never read; the error does not name the path
/// (callers add it).
pub fn read_capped(host: &Path, cap: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let f = open_regular(host)?;
    let mut bytes = Vec::new();
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("refused: larger than {cap} bytes"),
        ));
    }
    Ok(bytes)
}

/// A file named on the command line: its links are followed (the user
/// named it), then read as [`read_capped`] reads, as UTF-8 text.
pub fn read_named_file(path: &Path, cap: u64) -> io::Result<String> {
    let real = fs::canonicalize(path)?;
    read_text_capped(&real, cap)
}

/// [`read_capped`], as UTF-8 text.
pub fn read_text_capped(host: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read_capped(host, cap)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "refused: not UTF-8 text"))
}

/// At most `max` characters of `text` for an error message, marked when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], text.len()),
    }
}

/// What a file that is not a regular file is, for a refusal: `a FIFO`,
/// `a character device`, `a block device`, `a socket`, `a directory`, `a
/// symbolic link`.
pub fn kind_of(m: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = m.file_type();
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Opens `host` (a resolved host path) for reading only if it is a regular
/// file: checked before the open (a device is never opened), opened without
/// following a last link and without blocking (a FIFO swapped in meanwhile
/// cannot hang us), and checked again on the descriptor.
pub fn open_regular(host: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |m: &fs::Metadata| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refused: {}, not a regular file", kind_of(m)),
        )
    };
    let m = fs::symlink_metadata(host)?;
    if !m.is_file() {
        return Err(refuse(&m));
    }
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(host)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(refuse(&m));
    }
    Ok(f)
}

fn annotate(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("usr/lib/modules/6.1.0-18-amd64")).unwrap();
        fs::create_dir_all(r.join("usr/src/linux-headers-6.1.0-18-amd64")).unwrap();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("usr/lib/os-release"), "ID=inside\n").unwrap();
        symlink("/usr/lib/os-release", r.join("etc/os-release")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink(
            "/usr/src/linux-headers-6.1.0-18-amd64",
            r.join("usr/lib/modules/6.1.0-18-amd64/build"),
        )
        .unwrap();
        let root = Root::new(r).unwrap();
        (dir, root)
    }

    #[test]
    fn tool_paths_that_a_link_would_take_out_of_the_root_are_refused() {
        let (dir, root) = tree();
        let r = dir.path();
        let outside = tempfile::tempdir().unwrap();
        let o = outside.path().canonicalize().unwrap();
        fs::create_dir_all(r.join("var/lib")).unwrap();
        fs::create_dir_all(o.join("selinux")).unwrap();
        // Absolute: the host's kernel goes to the host's directory.
        symlink(o.join("selinux"), r.join("var/lib/selinux")).unwrap();
        // Climbing: as many `..` as it takes to leave the root.
        let up = "../".repeat(r.components().count() + 2);
        symlink(format!("{up}{}", o.display()), r.join("var/log")).unwrap();
        // Dangling and absolute: the kernel would create it on the host.
        symlink("/nonexistent-connector-test", r.join("var/cache")).unwrap();
        for (p, link) in [
            ("/var/lib/selinux/targeted/active", "/var/lib/selinux"),
            ("/var/log/dnf.log", "/var/log"),
            ("/var/log", "/var/log"),
            ("/var/cache/dnf", "/var/cache"),
        ] {
            let e = root.tool_path(p).unwrap_err();
            assert_eq!(e.link, Path::new(link), "{p}");
            assert!(
                !e.outside.starts_with(r.canonicalize().unwrap()),
                "{p}: {e}"
            );
            assert!(
                e.to_string()
                    .contains(&format!("refused: {link} in the root")),
                "{e}"
            );
        }
        assert!(root.check_tool_paths(["/etc", "/var/lib/selinux"]).is_err());
        // Links that stay inside resolve the same both ways, and what does
        // not exist yet is compared as written.
        for p in [
            "/lib/modules/6.1.0-18-amd64",
            "/usr/lib/os-release",
            "/var/lib/rpm/rpmdb.sqlite",
            "/not/there/yet",
        ] {
            assert_eq!(root.tool_path(p).unwrap(), root.host_path(p), "{p}");
        }
        // The absolute build link restarts at the root inside, at / outside.
        assert!(root.tool_path("/lib/modules/6.1.0-18-amd64/build").is_err());
        // On the live root nothing leads outside it.
        assert_eq!(
            Root::live().tool_path("/var/lib/selinux").unwrap(),
            Path::new("/var/lib/selinux")
        );
    }

    #[test]
    fn fifos_devices_and_huge_files_are_refused_not_read() {
        let (dir, root) = tree();
        let r = dir.path();
        let mk = |path: &std::path::Path, mode: libc::mode_t, dev: libc::dev_t| {
            let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            // SAFETY: mknod on a path in our scratch directory.
            let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
            assert_eq!(
                rc,
                0,
                "mknod {}: {}",
                path.display(),
                io::Error::last_os_error()
            );
        };
        mk(&r.join("etc/fifo"), libc::S_IFIFO | 0o644, 0);
        // A character device like /dev/zero (1, 5): endless if read.
        mk(
            &r.join("etc/zero"),
            libc::S_IFCHR | 0o644,
            libc::makedev(1, 5),
        );
        symlink("/etc/fifo", r.join("etc/os-release.fifo-link")).unwrap();
        let start = std::time::Instant::now();
        for (p, what) in [
            ("/etc/fifo", "a FIFO"),
            ("/etc/os-release.fifo-link", "a FIFO"),
            ("/etc/zero", "a character device"),
            ("/usr/lib", "a directory"),
        ] {
            let e = root.read_to_string(p).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{p}: refused: {what}")), "{msg}");
            assert_eq!(msg.matches(p).count(), 1, "the path once: {msg}");
            assert!(
                root.read_to_string_optional(p).is_err(),
                "not taken for missing"
            );
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "nothing blocked"
        );
        fs::write(r.join("etc/big"), vec![b'x'; READ_CAP as usize + 1]).unwrap();
        let e = root.read_to_string("/etc/big").unwrap_err();
        assert!(
            e.to_string().contains("refused: larger than 1048576 bytes"),
            "{e}"
        );
        fs::write(r.join("etc/fits"), vec![b'x'; READ_CAP as usize]).unwrap();
        assert_eq!(
            root.read_to_string("/etc/fits").unwrap().len(),
            READ_CAP as usize
        );
        assert!(root.read_to_string_capped("/etc/fits", 10).is_err());
        fs::write(r.join("etc/binary"), [0xff, 0xfe, 0x00]).unwrap();
        assert!(root
            .read_to_string("/etc/binary")
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
    }

    #[test]
    fn absolute_symlink_restarts_at_the_root() {
        let (dir, root) = tree();
        assert_eq!(
            root.read_to_string("/etc/os-release").unwrap(),
            "ID=inside\n"
        );
        assert_eq!(
            root.resolve("etc/os-release").unwrap(),
            dir.path()
                .canonicalize()
                .unwrap()
                .join("usr/lib/os-release")
        );
    }

    #[test]
    fn usr_merge_and_build_link_resolve_inside() {
        let (_dir, root) = tree();
        assert_eq!(
            root.resolve_in_root("/lib/modules/6.1.0-18-amd64/build")
                .unwrap(),
            Path::new("/usr/src/linux-headers-6.1.0-18-amd64")
        );
        assert_eq!(
            root.read_dir_names("/lib/modules").unwrap(),
            vec![OsString::from("6.1.0-18-amd64")]
        );
    }

    #[test]
    fn dotdot_never_climbs_above_the_root() {
        let (dir, root) = tree();
        fs::write(dir.path().join("etc/hostname"), "inside\n").unwrap();
        symlink(
            "../../../../../../../etc/hostname",
            dir.path().join("usr/escape"),
        )
        .unwrap();
        assert_eq!(root.read_to_string("/usr/escape").unwrap(), "inside\n");
        assert_eq!(
            root.read_to_string("/../../etc/hostname").unwrap(),
            "inside\n"
        );
    }

    #[test]
    fn a_link_to_a_host_file_missing_from_the_root_is_missing() {
        let (dir, root) = tree();
        // /etc/passwd exists on every host; it does not exist in the root.
        assert!(Path::new("/etc/passwd").exists());
        symlink("/etc/passwd", dir.path().join("etc/pw")).unwrap();
        symlink("../../../../etc/passwd", dir.path().join("etc/pw2")).unwrap();
        for p in ["/etc/pw", "/etc/pw2", "/etc/passwd"] {
            let err = root.read_to_string(p).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{p}: {err}");
            assert_eq!(root.read_to_string_optional(p).unwrap(), None);
        }
    }

    #[test]
    fn dangling_link_is_missing_and_loops_are_errors() {
        let (dir, root) = tree();
        symlink("/usr/src/kernels/nope", dir.path().join("usr/dangling")).unwrap();
        assert!(root.resolve_optional("/usr/dangling").unwrap().is_none());
        assert_eq!(
            root.read_link_optional("/usr/dangling").unwrap(),
            Some(PathBuf::from("/usr/src/kernels/nope"))
        );
        symlink("b", dir.path().join("usr/a")).unwrap();
        symlink("a", dir.path().join("usr/b")).unwrap();
        let err = root.resolve("/usr/a").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn file_in_the_middle_is_not_a_directory() {
        let (_dir, root) = tree();
        assert!(root
            .resolve_optional("/etc/os-release/x")
            .unwrap()
            .is_none());
        assert!(!root.exists("/usr/lib/os-release/x").unwrap());
    }

    /// The kernel's resolution and the walk (the fallback for kernels
    /// without openat2) give the same answer, or the same error, for every
    /// kind of path the other tests use, following the last link or not.
    #[test]
    fn the_kernel_and_the_walk_agree() {
        let (dir, root) = tree();
        let r = dir.path();
        fs::write(r.join("etc/hostname"), "inside\n").unwrap();
        symlink("../../../../../../../etc/hostname", r.join("usr/escape")).unwrap();
        symlink("/etc/passwd", r.join("etc/pw")).unwrap();
        symlink("/usr/src/kernels/nope", r.join("usr/dangling")).unwrap();
        symlink("b", r.join("usr/a")).unwrap();
        symlink("a", r.join("usr/b")).unwrap();
        symlink("../src", r.join("usr/lib/up")).unwrap();
        let paths = [
            "/",
            "",
            "/etc/os-release",
            "etc/os-release",
            "/lib/modules/6.1.0-18-amd64/build",
            "/lib/modules/6.1.0-18-amd64/build/..",
            "/lib/modules/../../..",
            "/usr/escape",
            "/../../etc/hostname",
            "/etc/pw",
            "/etc/passwd",
            "/usr/dangling",
            "/usr/a",
            "/etc/os-release/x",
            "/usr/lib/up/linux-headers-6.1.0-18-amd64",
            "/usr/lib/./os-release",
            "/missing/deeper",
        ];
        for p in paths {
            for follow in [true, false] {
                let kernel = root
                    .resolve_kernel(Path::new(p), follow)
                    .expect("this kernel has openat2 (Linux 5.6+)");
                let walk = root.walk(Path::new(p), follow);
                match (&kernel, &walk) {
                    (Ok(k), Ok(w)) => {
                        assert_eq!(k, w, "{p} (follow {follow})");
                        // The descriptor is of the file the walk names.
                        use std::os::unix::fs::MetadataExt;
                        let fd = root.open_kernel(Path::new(p), follow).unwrap().unwrap();
                        let by_fd = fs::File::from(fd).metadata().unwrap();
                        let by_walk = fs::symlink_metadata(root.join_rel(w)).unwrap();
                        assert_eq!(
                            (by_fd.dev(), by_fd.ino()),
                            (by_walk.dev(), by_walk.ino()),
                            "{p}"
                        );
                    }
                    (Err(k), Err(w)) => assert_eq!(
                        k.raw_os_error(),
                        w.raw_os_error(),
                        "{p} (follow {follow}): {k} / {w}"
                    ),
                    _ => panic!("{p} (follow {follow}): kernel {kernel:?}, walk {walk:?}"),
                }
            }
        }
    }

    #[test]
    fn host_path_never_escapes() {
        let root = Root::new("/tmp").unwrap();
        let canon = Path::new("/tmp").canonicalize().unwrap();
        assert_eq!(root.host_path("/etc/x"), canon.join("etc/x"));
        assert_eq!(root.host_path("../../etc/x"), canon.join("etc/x"));
    }

    #[test]
    fn live_root_is_slash() {
        assert!(Root::new("/").unwrap().is_live());
        assert!(Root::live().is_live());
        let dir = tempfile::tempdir().unwrap();
        assert!(!Root::new(dir.path()).unwrap().is_live());
        assert!(Root::new(dir.path().join("missing")).is_err());
    }
}
