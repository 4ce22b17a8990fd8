//! Scratch system roots, their snapshots, and the helpers a test runs
//! tools with.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use connector_host::Root;
use tempfile::TempDir;

use crate::json;
use crate::layout::{Entry, Kernel};

/// The directory holding the fixture data files.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A scratch system root.
pub struct Fixture {
    pub(crate) dir: TempDir,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// An empty root in a fresh temporary directory.
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::Builder::new()
                .prefix("connector-root-")
                .tempdir()
                .expect("creating a temporary root"),
        }
    }

    /// An empty root in a fresh directory under `parent` (a file system of
    /// the test's choosing, e.g. a small tmpfs).
    pub fn at(parent: &Path) -> Fixture {
        Fixture {
            dir: tempfile::Builder::new()
                .prefix("root-")
                .tempdir_in(parent)
                .expect("creating a root directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> Root {
        Root::new(self.path()).expect("opening the fixture root")
    }

    /// The host path of an absolute path inside the root (no link following).
    pub fn host(&self, p: &str) -> PathBuf {
        self.path().join(p.trim_start_matches('/'))
    }

    /// Writes entries into the root (parents created, links replaced).
    pub fn lay(&self, entries: &[Entry]) -> &Self {
        for e in entries {
            let host = self.host(e.path());
            if let Some(parent) = host.parent() {
                fs::create_dir_all(parent).expect("creating parent directories");
            }
            match e {
                Entry::File { contents, mode, .. } => {
                    fs::write(&host, contents).expect("writing a fixture file");
                    fs::set_permissions(&host, fs::Permissions::from_mode(*mode)).expect("chmod");
                }
                Entry::Dir { .. } => {
                    fs::create_dir_all(&host).expect("creating a fixture directory")
                }
                Entry::Symlink { target, .. } => {
                    let _ = fs::remove_file(&host);
                    symlink(target, &host).expect("creating a fixture symlink");
                }
            }
        }
        self
    }

    pub fn file(&self, path: &str, contents: &str) -> &Self {
        self.lay(&[Entry::file(path, contents)])
    }

    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        self.lay(&[Entry::link(path, target)])
    }

    pub fn remove(&self, path: &str) -> &Self {
        let host = self.host(path);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&host).expect("removing a directory"),
            Ok(_) => fs::remove_file(&host).expect("removing a file"),
            Err(_) => {}
        }
        self
    }

    /// usr-merge: `/lib`, `/lib64`, `/bin`, `/sbin` are links into `/usr`.
    pub fn usr_merge(&self) -> &Self {
        for d in ["lib", "lib64", "bin", "sbin"] {
            fs::create_dir_all(self.host(&format!("/usr/{d}"))).expect("usr dirs");
        }
        for d in ["lib", "lib64", "bin", "sbin"] {
            self.symlink(&format!("/{d}"), &format!("usr/{d}"));
        }
        self
    }

    /// Installs `fixtures/os-release/NAME` the way the distributions do:
    /// `/usr/lib/os-release` with `/etc/os-release -> ../usr/lib/os-release`.
    pub fn os_release(&self, name: &str) -> &Self {
        self.os_release_linked(name, "../usr/lib/os-release")
    }

    /// Same, with the absolute link `/etc/os-release -> /usr/lib/os-release`.
    pub fn os_release_absolute(&self, name: &str) -> &Self {
        self.os_release_linked(name, "/usr/lib/os-release")
    }

    fn os_release_linked(&self, name: &str, link: &str) -> &Self {
        let text = read_fixture(&format!("os-release/{name}"));
        self.file("/usr/lib/os-release", &text);
        self.symlink("/etc/os-release", link)
    }

    /// Installs a legacy release file (`fixtures/release-files/NAME`) at `path`.
    pub fn release_file(&self, name: &str, path: &str) -> &Self {
        let text = read_fixture(&format!("release-files/{name}"));
        self.file(path, &text)
    }

    /// Lays down a kernel (no headers).
    pub fn kernel(&self, k: &Kernel) -> &Self {
        self.lay(&k.kernel_files())
    }

    /// Lays down a kernel's headers (no package database entry).
    pub fn headers(&self, k: &Kernel) -> &Self {
        self.lay(&k.header_files())
    }

    /// Lists every file under the root with its type, size and mode, for
    /// "nothing changed" assertions.
    pub fn snapshot(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        walk(self.path(), self.path(), &mut out);
        out.sort();
        out
    }

    /// The tree by content only (type, mode, size, digest, link target; no
    /// times), leaving out paths under any of `skip` (root-relative, no
    /// leading `/`): "the same tree, byte for byte" across separate runs.
    pub fn contents(&self, skip: &[&str]) -> Vec<(PathBuf, String)> {
        self.snapshot()
            .into_iter()
            .filter(|(p, _)| !skip.iter().any(|s| p.starts_with(s)))
            .map(|(p, d)| {
                let d = match d.rfind(" Some(") {
                    Some(i) if d.starts_with("file ") => d[..i].to_string(),
                    _ => d,
                };
                (p, d)
            })
            .collect()
    }
}

/// A tmpfs of a given size mounted on a fresh directory (the tests run as
/// root), unmounted when dropped: a disk that fills up.
pub struct Tmpfs(TempDir);

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        require_tool("mount");
        let d = tempfile::tempdir().expect("mount point");
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(d.path()));
        Tmpfs(d)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A binary of this workspace (`connectord`, …), built if needed: tests of
/// one crate cannot name another crate's binaries.
pub fn workspace_bin(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .args(["build", "-q", "--bin", name, "--manifest-path"])
        .arg(&manifest));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("debug").join(name);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap_or(&p).to_path_buf();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let desc = if m.file_type().is_symlink() {
            format!(
                "link -> {}",
                fs::read_link(&p)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default()
            )
        } else if m.is_dir() {
            format!("dir {:o}", m.permissions().mode())
        } else if !m.is_file() {
            // FIFOs and devices planted by hostile-image tests: never read
            // (a FIFO would block, a device never end).
            use std::os::unix::fs::MetadataExt;
            format!("special {:o} rdev {}", m.mode(), m.rdev())
        } else {
            let digest = fs::read(&p).map(|b| fnv(&b)).unwrap_or(0);
            format!(
                "file {:o} {} {digest:x} {:?}",
                m.permissions().mode(),
                m.len(),
                m.modified().ok()
            )
        };
        let desc = match label_of(&p) {
            Some(l) => format!("{desc} label {l}"),
            None => desc,
        };
        out.push((rel, desc));
        if m.is_dir() {
            walk(base, &p, out);
        }
    }
}

/// Every entry under `dir` with what any write to it changes: its inode
/// (a rename over it), its change time (content, mode, owner, label, a
/// directory's entries) and its modification time.
pub type Stamps = std::collections::BTreeMap<PathBuf, (u64, i64, i64)>;

/// [`Stamps`] of everything under `dir` (links not followed).
pub fn stamps(dir: &Path) -> Stamps {
    use std::os::unix::fs::MetadataExt;
    let mut out = Stamps::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&d) else {
            continue;
        };
        let rel = d.strip_prefix(dir).unwrap_or(&d).to_path_buf();
        out.insert(
            rel,
            (
                m.ino(),
                m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ),
        );
        if m.is_dir() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// The paths created, removed or written between two [`stamps`].
pub fn changed(before: &Stamps, after: &Stamps) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = before
        .iter()
        .filter(|(p, s)| after.get(*p) != Some(s))
        .map(|(p, _)| p.clone())
        .collect();
    out.extend(after.keys().filter(|p| !before.contains_key(*p)).cloned());
    out.sort();
    out
}

/// Sets `p`'s modification time (a cache file dated back or forward, so
/// the tests can plant answers or make them as new as their sources).
pub fn set_mtime(p: &Path, when: std::time::SystemTime) {
    fs::File::options()
        .write(true)
        .open(p)
        .and_then(|f| f.set_modified(when))
        .unwrap_or_else(|e| panic!("setting the mtime of {}: {e}", p.display()));
}

/// The processes `cmd` spawns, counted by strace (successful execve calls,
/// less its own), and its exit code. Its output is discarded.
pub fn processes_spawned(cmd: &Command) -> (usize, Option<i32>) {
    require_tool("strace");
    let log = tempfile::NamedTempFile::new().expect("strace log");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o"])
        .arg(log.path())
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("strace runs");
    let text = fs::read_to_string(log.path()).unwrap_or_default();
    let execs = text
        .lines()
        .filter(|l| l.contains("execve(") && l.trim_end().ends_with("= 0"))
        .count();
    (execs.saturating_sub(1), status.code())
}

/// [`Fixture::snapshot`] of any directory (the victim outside a root).
pub fn snapshot_dir(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The SELinux label (`security.selinux`) of `p` itself, if it has one:
/// snapshots include labels, so a relabel outside a root is seen.
pub fn label_of(p: &Path) -> Option<String> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let mut buf = vec![0u8; 1024];
    // SAFETY: valid NUL-terminated path and name; buf is writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"security.selinux".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(
        String::from_utf8_lossy(&buf)
            .trim_end_matches('\0')
            .to_string(),
    )
}

/// A cheap content fingerprint for snapshots (not a security digest).
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Reads a fixture data file.
pub fn read_fixture(rel: &str) -> String {
    let p = fixtures_dir().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading fixture {}: {e}", p.display()))
}

/// `../shared` beside the project (real data of the targets, their old
/// tools; CI always has it), or `$CONNECTOR_SHARED`. `None` when it is
/// absent, after saying on stderr that the calling test (`what`) is
/// skipped for that reason.
pub fn shared_dir(what: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CONNECTOR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("selinux").is_dir() && dir.join("realdata").is_dir() {
        return Some(dir.canonicalize().unwrap_or(dir));
    }
    eprintln!(
        "SKIPPED {what}: needs ../shared (the targets' real userspace; {} is absent)",
        dir.display()
    );
    None
}

/// Whether a tool is on PATH. Real-tool tests require their tools: the test
/// command installs them, so a missing tool fails the test rather than
/// skipping it silently.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is required by this test; run scripts/setup --test"
    );
}

/// A root holding a scratch copy of this machine's SELinux policy store of
/// type `ty` (`default` or `mls`, from Debian's selinux-policy-* packages)
/// and an `/etc/selinux/config` selecting it: semodule -p works on it
/// without an SELinux kernel.
pub fn selinux_root(ty: &str) -> Fixture {
    let src_store = PathBuf::from(format!("/var/lib/selinux/{ty}"));
    assert!(
        src_store.is_dir(),
        "{} missing: scripts/setup --test installs selinux-policy-{ty}",
        src_store.display()
    );
    let f = Fixture::new();
    fs::create_dir_all(f.host("/var/lib/selinux")).expect("store dir");
    fs::create_dir_all(f.host("/etc/selinux")).expect("etc/selinux");
    for (from, to) in [
        (format!("/var/lib/selinux/{ty}"), f.host("/var/lib/selinux")),
        (format!("/etc/selinux/{ty}"), f.host("/etc/selinux")),
        (
            "/etc/selinux/semanage.conf".to_string(),
            f.host("/etc/selinux"),
        ),
    ] {
        run(Command::new("cp").args(["-a", &from]).arg(&to));
    }
    f.file(
        "/etc/selinux/config",
        &format!("SELINUX=enforcing\nSELINUXTYPE={ty}\n"),
    );
    f
}

/// Runs `cmd` and parses its stdout as one JSON document; panics with both
/// streams when it is not one.
pub fn run_json(cmd: &mut Command) -> (std::process::Output, serde_json::Value) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    // Strict: one document, no key twice in any object.
    let v = json::parse_strict(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?}: stdout is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, v)
}

/// Sets the raw `security.selinux` label of `p` itself (a link is not
/// followed), as a file left mislabeled would carry it.
pub fn set_label(p: &Path, label: &str) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path and name; the value is readable for its length.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"security.selinux".as_ptr(),
            label.as_ptr().cast(),
            label.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "labeling {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// The raw `security.selinux` label of a file (as setfiles or our lay-down
/// wrote it; no SELinux kernel needed to read it); panics when it has none.
pub fn selinux_label(p: &Path) -> String {
    label_of(p).unwrap_or_else(|| panic!("no security.selinux label on {}", p.display()))
}

/// Copies a host program into the root at the same path, with the shared
/// libraries `ldd` names and `/bin/sh`, so that a scriptlet chrooted into
/// the root by `rpm --root` can run it.
pub fn copy_host_program(root: &Path, program: &Path) {
    for prog in [program, Path::new("/bin/sh")] {
        let real = fs::canonicalize(prog).expect("program path");
        let dest = root.join(prog.strip_prefix("/").unwrap_or(prog));
        fs::create_dir_all(dest.parent().unwrap()).expect("program dir");
        fs::copy(&real, &dest).expect("copying the program");
        let out = Command::new("ldd")
            .arg(&real)
            .output()
            .expect("running ldd");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let lib = line
                .split("=>")
                .nth(1)
                .unwrap_or(line)
                .split_whitespace()
                .next()
                .unwrap_or("");
            if let Some(rel) = lib.strip_prefix('/') {
                let d = root.join(rel);
                fs::create_dir_all(d.parent().unwrap()).expect("lib dir");
                fs::copy(fs::canonicalize(lib).expect("lib path"), &d).expect("copying a library");
            }
        }
    }
}

/// Runs `cmd`; panics with its output when it fails; its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Clears every proxy variable from `cmd`'s environment, so that a proxy
/// test sees only the proxy it configured.
pub fn without_proxy_env(cmd: &mut Command) -> &mut Command {
    for e in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(e);
    }
    cmd
}
