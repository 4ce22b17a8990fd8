//! Fixture roots for the tests: scratch system roots laid out the way the
//! real distributions lay them out, and real `.rpm` / `.deb` packages of the
//! same files, so a test can either write a tree directly or install it with
//! the real `rpm --root` / `dpkg --root` and get a package database too.
//!
//! The os-release files under `fixtures/os-release/` are the distributions'
//! own (see `fixtures/README.md`); the kernel and header layouts below follow
//! the real packages: `kernel-core` + `kernel-devel` (EL8+), `kernel` +
//! `kernel-devel` (EL7, Amazon Linux 2), `linux-image` +
//! `linux-headers-K` + `linux-headers-V-common` + `linux-kbuild-V` (Debian),
//! `linux-image` + `linux-modules` + `linux-headers-K` + `linux-headers-V`
//! (Ubuntu).

pub mod http;
pub mod json;
pub mod selinux_base;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use connector_host::Root;
use tempfile::TempDir;

/// The directory holding the fixture data files.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One filesystem entry, path absolute inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        path: String,
        contents: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    pub fn file(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Entry {
        Entry::File {
            path: path.into(),
            contents: contents.into(),
            mode: 0o644,
        }
    }
    pub fn dir(path: impl Into<String>) -> Entry {
        Entry::Dir { path: path.into() }
    }
    pub fn link(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Dir { path } | Entry::Symlink { path, .. } => path,
        }
    }
}

/// How a distribution lays out a kernel and its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// EL8+/OL8+/AL2023: `vmlinuz` inside `lib/modules/K`; kernel-core owns
    /// the `build` link, so it dangles until kernel-devel is installed.
    El8,
    /// EL7/OL7/Amazon Linux 2: `boot/vmlinuz-K`; the `build` link is owned by
    /// the kernel package too.
    El7,
    /// Debian: the `build` link comes with linux-headers-K; the flavour tree
    /// is a wrapper around linux-headers-V-common and linux-kbuild-V.
    Debian,
    /// Ubuntu: like Debian, but the common package is linux-headers-V-ABI
    /// and the flavour tree links its Makefile into it.
    Ubuntu,
}

/// A kernel release and its layout.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub release: String,
    pub layout: Layout,
}

impl Kernel {
    pub fn new(release: &str, layout: Layout) -> Kernel {
        Kernel {
            release: release.to_string(),
            layout,
        }
    }

    /// `4.18.0` of `4.18.0-513.5.1.el8_9.x86_64`.
    fn upstream(&self) -> &str {
        self.release.split('-').next().unwrap_or(&self.release)
    }

    /// `6.1` of `6.1.0-18-amd64` (the linux-kbuild version).
    fn kbuild(&self) -> String {
        self.upstream()
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// `6.1.0-18` of `6.1.0-18-amd64`.
    fn abi(&self) -> String {
        self.release
            .splitn(3, '-')
            .take(2)
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The files of the kernel package(s) (no headers).
    pub fn kernel_files(&self) -> Vec<Entry> {
        let k = &self.release;
        let m = format!("/lib/modules/{k}");
        let mut e = vec![
            Entry::dir(format!("{m}/kernel/drivers")),
            Entry::file(format!("{m}/kernel/drivers/dummy.ko"), b"\x7fELF"),
            Entry::file(format!("{m}/modules.order"), "kernel/drivers/dummy.ko\n"),
        ];
        match self.layout {
            Layout::El8 => {
                e.push(Entry::file(format!("{m}/vmlinuz"), b"MZ kernel image"));
                e.push(Entry::link(
                    format!("{m}/build"),
                    format!("/usr/src/kernels/{k}"),
                ));
                e.push(Entry::link(format!("{m}/source"), "build"));
            }
            Layout::El7 => {
                e.push(Entry::file(
                    format!("/boot/vmlinuz-{k}"),
                    b"MZ kernel image",
                ));
                e.push(Entry::link(
                    format!("{m}/build"),
                    format!("/usr/src/kernels/{k}"),
                ));
                e.push(Entry::link(format!("{m}/source"), "build"));
            }
            Layout::Debian | Layout::Ubuntu => {
                e.push(Entry::file(
                    format!("/boot/vmlinuz-{k}"),
                    b"MZ kernel image",
                ));
                e.push(Entry::file(format!("/boot/config-{k}"), "CONFIG_BPF=y\n"));
            }
        }
        e
    }

    /// The files of the header package(s) for this kernel, as installed.
    pub fn header_files(&self) -> Vec<Entry> {
        let k = &self.release;
        let autoconf =
            "#define CONFIG_BPF 1\n#define CONFIG_BPF_SYSCALL 1\n#define CONFIG_KPROBES 1\n";
        let uts = format!("#define UTS_RELEASE \"{k}\"\n");
        match self.layout {
            Layout::El8 | Layout::El7 => {
                let t = format!("/usr/src/kernels/{k}");
                let (v, p, s) = {
                    let mut it = self.upstream().split('.');
                    (
                        it.next().unwrap_or("0").to_string(),
                        it.next().unwrap_or("0").to_string(),
                        it.next().unwrap_or("0").to_string(),
                    )
                };
                vec![
                    Entry::file(
                        format!("{t}/Makefile"),
                        format!("VERSION = {v}\nPATCHLEVEL = {p}\nSUBLEVEL = {s}\nEXTRAVERSION =\nNAME = fixture\n"),
                    ),
                    Entry::file(format!("{t}/.config"), "CONFIG_BPF=y\n"),
                    Entry::file(format!("{t}/Module.symvers"), ""),
                    Entry::file(format!("{t}/include/generated/autoconf.h"), autoconf),
                    Entry::file(format!("{t}/include/generated/utsrelease.h"), uts),
                    Entry::file(format!("{t}/include/config/kernel.release"), format!("{k}\n")),
                    Entry::file(format!("{t}/include/linux/bpf.h"), "/* bpf */\n"),
                    Entry::file(format!("{t}/scripts/Makefile.build"), "# kbuild\n"),
                    Entry::file(format!("{t}/arch/x86/Makefile"), "# arch\n"),
                ]
            }
            Layout::Debian => {
                let t = format!("/usr/src/linux-headers-{k}");
                let common = format!("/usr/src/linux-headers-{}-common", self.abi());
                let kb = format!("/usr/lib/linux-kbuild-{}", self.kbuild());
                vec![
                    // linux-headers-K
                    Entry::link(format!("/lib/modules/{k}/build"), t.clone()),
                    Entry::link(format!("/lib/modules/{k}/source"), common.clone()),
                    Entry::file(
                        format!("{t}/Makefile"),
                        format!("include {common}/Makefile\n"),
                    ),
                    Entry::file(format!("{t}/.config"), "CONFIG_BPF=y\n"),
                    Entry::file(format!("{t}/Module.symvers"), ""),
                    Entry::file(format!("{t}/include/generated/autoconf.h"), autoconf),
                    Entry::file(format!("{t}/include/generated/utsrelease.h"), uts),
                    // Debian records the upstream version here, not the release.
                    Entry::file(
                        format!("{t}/include/config/kernel.release"),
                        format!("{}\n", self.upstream()),
                    ),
                    Entry::link(
                        format!("{t}/scripts"),
                        format!("../../lib/linux-kbuild-{}/scripts", self.kbuild()),
                    ),
                    Entry::link(
                        format!("{t}/tools"),
                        format!("../../lib/linux-kbuild-{}/tools", self.kbuild()),
                    ),
                    // linux-headers-V-common
                    Entry::file(format!("{common}/Makefile"), "VERSION = 6\n"),
                    Entry::file(format!("{common}/include/linux/bpf.h"), "/* bpf */\n"),
                    Entry::link(
                        format!("{common}/scripts"),
                        format!("../../lib/linux-kbuild-{}/scripts", self.kbuild()),
                    ),
                    // linux-kbuild-V
                    Entry::file(format!("{kb}/scripts/Makefile.build"), "# kbuild\n"),
                    Entry::dir(format!("{kb}/tools")),
                ]
            }
            Layout::Ubuntu => {
                let t = format!("/usr/src/linux-headers-{k}");
                let common = format!("/usr/src/linux-headers-{}", self.abi());
                vec![
                    // linux-headers-K
                    Entry::link(format!("/lib/modules/{k}/build"), t.clone()),
                    Entry::link(
                        format!("{t}/Makefile"),
                        format!("../linux-headers-{}/Makefile", self.abi()),
                    ),
                    Entry::file(format!("{t}/.config"), "CONFIG_BPF=y\n"),
                    Entry::file(format!("{t}/Module.symvers"), ""),
                    Entry::file(format!("{t}/include/generated/autoconf.h"), autoconf),
                    Entry::file(format!("{t}/include/generated/utsrelease.h"), uts),
                    Entry::file(format!("{t}/scripts/Makefile.build"), "# kbuild\n"),
                    // linux-headers-V-ABI (all)
                    Entry::file(format!("{common}/Makefile"), "VERSION = 5\n"),
                    Entry::file(format!("{common}/include/linux/bpf.h"), "/* bpf */\n"),
                ]
            }
        }
    }

    /// The header packages of this kernel, split as the distribution ships
    /// them: one `kernel-devel`/`kernel-uek-devel` on the RPM side;
    /// `linux-headers-K` + `linux-headers-V-common` + `linux-kbuild-V` on
    /// Debian; `linux-headers-K` + `linux-headers-V-ABI` on Ubuntu.
    pub fn header_packages(&self) -> Vec<Pkg> {
        let k = &self.release;
        let files = self.header_files();
        match self.layout {
            Layout::El8 | Layout::El7 => {
                let (ver, rest) = k.split_once('-').expect("rpm release has a dash");
                let (rel, arch) = rest.rsplit_once('.').expect("rpm release has an arch");
                let name = if k.contains("uek") {
                    "kernel-uek-devel"
                } else {
                    "kernel-devel"
                };
                vec![Pkg::new(name, ver, rel, arch, files)]
            }
            Layout::Debian | Layout::Ubuntu => {
                let ver = format!("{}-1", self.upstream());
                let (own, rest): (Vec<Entry>, Vec<Entry>) = files
                    .into_iter()
                    .partition(|e| e.path().contains(k.as_str()));
                let own = Pkg::new(&format!("linux-headers-{k}"), &ver, "", "amd64", own);
                let mut pkgs = Vec::new();
                if self.layout == Layout::Debian {
                    let kb = format!("/usr/lib/linux-kbuild-{}", self.kbuild());
                    let (kbuild, common): (Vec<Entry>, Vec<Entry>) =
                        rest.into_iter().partition(|e| e.path().starts_with(&kb));
                    let common_name = format!("linux-headers-{}-common", self.abi());
                    let kbuild_name = format!("linux-kbuild-{}", self.kbuild());
                    pkgs.push(
                        own.depends(format!("{common_name} (= {ver})"))
                            .depends(format!("{kbuild_name} (>= {ver})")),
                    );
                    pkgs.push(Pkg::new(&common_name, &ver, "", "all", common));
                    pkgs.push(Pkg::new(&kbuild_name, &ver, "", "amd64", kbuild));
                } else {
                    let common_name = format!("linux-headers-{}", self.abi());
                    pkgs.push(own.depends(format!("{common_name} (= {ver})")));
                    pkgs.push(Pkg::new(&common_name, &ver, "", "all", rest));
                }
                // Dependencies first, as a package manager would unpack them.
                pkgs.reverse();
                pkgs
            }
        }
    }

    /// The kernel package itself (`kernel-core`, `kernel`, `linux-image-K`).
    pub fn kernel_package(&self) -> Pkg {
        let k = &self.release;
        let files = self.kernel_files();
        match self.layout {
            Layout::El8 | Layout::El7 => {
                let (ver, rest) = k.split_once('-').expect("rpm release has a dash");
                let (rel, arch) = rest.rsplit_once('.').expect("rpm release has an arch");
                let name = match (self.layout, k.contains("uek")) {
                    (_, true) => "kernel-uek-core",
                    (Layout::El8, false) => "kernel-core",
                    _ => "kernel",
                };
                Pkg::new(name, ver, rel, arch, files)
            }
            Layout::Debian | Layout::Ubuntu => Pkg::new(
                &format!("linux-image-{k}"),
                &format!("{}-1", self.upstream()),
                "",
                "amd64",
                files,
            ),
        }
    }
}

/// One package's identity and files.
#[derive(Debug, Clone)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    /// RPM release; empty for Debian.
    pub release: String,
    pub arch: String,
    pub entries: Vec<Entry>,
    /// Dependencies: Debian `Depends` entries as written (`name (= ver)`),
    /// RPM `Requires` by name.
    pub depends: Vec<String>,
    /// A post-install script (`%post` / `postinst`), run by /bin/sh.
    pub post_install: Option<String>,
    /// Sign the RPM with this fixture key (`fixtures/keys/NAME.sec.asc`).
    pub signing_key: Option<String>,
}

impl Pkg {
    pub fn new(name: &str, version: &str, release: &str, arch: &str, entries: Vec<Entry>) -> Pkg {
        Pkg {
            name: name.into(),
            version: version.into(),
            release: release.into(),
            arch: arch.into(),
            entries,
            depends: Vec::new(),
            post_install: None,
            signing_key: None,
        }
    }

    pub fn depends(mut self, dep: impl Into<String>) -> Pkg {
        self.depends.push(dep.into());
        self
    }

    /// Signs the RPM with the fixture key NAME.
    pub fn signed(mut self, key: &str) -> Pkg {
        self.signing_key = Some(key.to_string());
        self
    }

    pub fn post_install(mut self, script: impl Into<String>) -> Pkg {
        self.post_install = Some(script.into());
        self
    }

    /// `name-version-release.arch` (RPM) or `name` (Debian): what the
    /// package database is asked about.
    pub fn query_name(&self) -> String {
        if self.release.is_empty() {
            self.name.clone()
        } else {
            format!(
                "{}-{}-{}.{}",
                self.name, self.version, self.release, self.arch
            )
        }
    }

    /// Builds it as a real package: `.rpm` when it has an RPM release, else `.deb`.
    pub fn build(&self, dir: &Path) -> PathBuf {
        if self.release.is_empty() {
            build_deb(dir, self)
        } else {
            build_rpm(dir, self)
        }
    }

    /// Builds it and installs it into `root` with the real rpm or dpkg.
    pub fn install(&self, root: &Path) {
        let dir = tempfile::tempdir().expect("package dir");
        let file = self.build(dir.path());
        if self.release.is_empty() {
            dpkg_install(root, &file);
        } else {
            rpm_install(root, &file);
        }
    }
}

/// A scratch system root.
pub struct Fixture {
    dir: TempDir,
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

/// Builds a real `.rpm` with the `rpm` crate.
pub fn build_rpm(dir: &Path, pkg: &Pkg) -> PathBuf {
    let mut b = rpm::PackageBuilder::new(
        &pkg.name,
        &pkg.version,
        "GPL-2.0-only",
        &pkg.arch,
        "connector test fixture",
    );
    b.release(&pkg.release);
    b.using_config(rpm::BuildConfig::v4().source_date(1_700_000_000u32));
    for e in &pkg.entries {
        match e {
            Entry::File {
                path,
                contents,
                mode,
            } => {
                b.with_file_contents(
                    contents.clone(),
                    rpm::FileOptions::new(path.clone()).permissions(*mode as u16),
                )
                .expect("adding a file to the rpm");
            }
            Entry::Dir { path } => {
                b.with_dir_entry(rpm::FileOptions::dir(path.clone()))
                    .expect("adding a dir to the rpm");
            }
            Entry::Symlink { path, target } => {
                b.with_symlink(rpm::FileOptions::symlink(path.clone(), target.clone()))
                    .expect("adding a symlink to the rpm");
            }
        }
    }
    // Kernel packages are install-only: several versions side by side.
    // The real ones say so with this Provides, which dnf reads.
    if pkg.name.starts_with("kernel") {
        b.provides(rpm::Dependency::any("installonlypkg(kernel)"));
    }
    for d in &pkg.depends {
        b.requires(rpm::Dependency::any(
            d.split_whitespace().next().unwrap_or(d),
        ));
    }
    if let Some(script) = &pkg.post_install {
        b.post_install_script(script.as_str());
    }
    let built = match &pkg.signing_key {
        Some(key) => {
            let secret = read_fixture(&format!("keys/{key}.sec.asc"));
            let signer = rpm::signature::pgp::Signer::from_asc(&secret)
                .expect("loading the test signing key");
            b.build_and_sign(signer)
                .expect("building and signing the rpm")
        }
        None => b.build().expect("building the rpm"),
    };
    let out = dir.join(format!(
        "{}-{}-{}.{}.rpm",
        pkg.name, pkg.version, pkg.release, pkg.arch
    ));
    built.write_file(&out).expect("writing the rpm");
    out
}

/// Builds a real `.deb` with `dpkg-deb --build`.
pub fn build_deb(dir: &Path, pkg: &Pkg) -> PathBuf {
    let stage = tempfile::tempdir().expect("staging dir");
    let s = Fixture { dir: stage };
    s.lay(&pkg.entries);
    fs::create_dir_all(s.host("/DEBIAN")).expect("DEBIAN dir");
    let depends = if pkg.depends.is_empty() {
        String::new()
    } else {
        format!("Depends: {}\n", pkg.depends.join(", "))
    };
    fs::write(
        s.host("/DEBIAN/control"),
        format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Connector Tests <tests@example.invalid>\n\
             {depends}Section: kernel\nPriority: optional\nDescription: connector test fixture\n fixture package\n",
            pkg.name, pkg.version, pkg.arch
        ),
    )
    .expect("writing control");
    if let Some(script) = &pkg.post_install {
        let p = s.host("/DEBIAN/postinst");
        fs::write(&p, format!("#!/bin/sh\n{script}\n")).expect("writing postinst");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod postinst");
    }
    let out = dir.join(format!("{}_{}_{}.deb", pkg.name, pkg.version, pkg.arch));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(s.path())
        .arg(&out));
    out
}

/// A local RPM repository: builds `pkgs` into `dir` and runs the real
/// `createrepo_c`. Returns the `file://` URL.
pub fn rpm_repo(dir: &Path, pkgs: &[Pkg]) -> String {
    fs::create_dir_all(dir).expect("repo dir");
    for p in pkgs {
        p.build(dir);
    }
    run(Command::new("createrepo_c").arg("--quiet").arg(dir));
    format!("file://{}", dir.display())
}

/// Installs the fixture public key NAME as `/etc/pki/rpm-gpg/RPM-GPG-KEY-NAME`
/// in the root: the key the root trusts.
pub fn trust_rpm_key(root: &Path, key: &str) {
    let d = root.join("etc/pki/rpm-gpg");
    fs::create_dir_all(&d).expect("rpm-gpg dir");
    fs::write(
        d.join(format!("RPM-GPG-KEY-{key}")),
        read_fixture(&format!("keys/{key}.pub.asc")),
    )
    .expect("writing the key");
}

/// One package entry of a hand-written rpm-md repository: what the
/// metadata claims, and the bytes actually served at its location.
pub struct MdEntry {
    pub name: String,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub location: String,
    /// The sha256 the metadata states (hex).
    pub sha256: String,
    pub size: u64,
}

/// Writes `repodata/primary.xml.gz` and `repodata/repomd.xml` for `entries`
/// by hand (for hostile repositories createrepo_c would never produce).
/// Returns the primary file's path.
pub fn write_rpm_md(dir: &Path, entries: &[MdEntry]) -> PathBuf {
    use std::io::Write as _;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"",
    );
    xml.push_str(&format!("{}\">\n", entries.len()));
    for e in entries {
        xml.push_str(&format!(
            "<package type=\"rpm\"><name>{}</name><arch>{}</arch><version epoch=\"0\" ver=\"{}\" rel=\"{}\"/>\
             <checksum type=\"sha256\" pkgid=\"YES\">{}</checksum><summary>x</summary>\
             <size package=\"{}\" installed=\"0\" archive=\"0\"/><location href=\"{}\"/></package>\n",
            e.name, e.arch, e.version, e.release, e.sha256, e.size, e.location
        ));
    }
    xml.push_str("</metadata>\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(xml.as_bytes()).expect("gzip");
    let primary = gz.finish().expect("gzip");
    let digest = sha256_hex(&primary);
    fs::create_dir_all(dir.join("repodata")).expect("repodata");
    let name = format!("repodata/{digest}-primary.xml.gz");
    fs::write(dir.join(&name), &primary).expect("primary");
    fs::write(
        dir.join("repodata/repomd.xml"),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\">\
             <revision>1</revision><data type=\"primary\"><checksum type=\"sha256\">{digest}</checksum>\
             <location href=\"{name}\"/><size>{}</size></data></repomd>\n",
            primary.len()
        ),
    )
    .expect("repomd");
    dir.join(name)
}

/// sha256 of bytes, hex (via the real sha256sum, independent of the code
/// under test).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running sha256sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bytes)
        .expect("feeding sha256sum");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Writes `/etc/yum.repos.d/ID.repo` in the root.
pub fn yum_repo_file(root: &Path, id: &str, baseurl: &str, enabled: bool) {
    let d = root.join("etc/yum.repos.d");
    fs::create_dir_all(&d).expect("yum.repos.d");
    fs::write(
        d.join(format!("{id}.repo")),
        format!(
            "[{id}]\nname={id}\nbaseurl={baseurl}\nenabled={}\ngpgcheck=0\n",
            u8::from(enabled)
        ),
    )
    .expect("writing the repo file");
}

/// A local apt repository (flat, `deb [trusted=yes] file:DIR ./`): builds
/// `pkgs` into `dir` and indexes it with the real `dpkg-scanpackages`.
pub fn apt_repo(dir: &Path, pkgs: &[Pkg]) {
    fs::create_dir_all(dir).expect("repo dir");
    for p in pkgs {
        p.build(dir);
    }
    let out = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "."])
        .current_dir(dir)
        .output()
        .expect("running dpkg-scanpackages");
    assert!(
        out.status.success(),
        "dpkg-scanpackages: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(dir.join("Packages"), out.stdout).expect("writing Packages");
}

/// A Debian-format archive under `dir` (`dists/SUITE/InRelease`, `main`
/// component, `binary-amd64` index, `pool/`), built with the real
/// dpkg-scanpackages and apt-ftparchive and clear-signed by the real gpg
/// with the fixture key `key`.
pub fn debian_archive(dir: &Path, suite: &str, pkgs: &[Pkg], key: &str) {
    let pool = dir.join("pool/main/l/linux");
    fs::create_dir_all(&pool).expect("pool");
    for p in pkgs {
        p.build(&pool);
    }
    let bin = dir.join(format!("dists/{suite}/main/binary-amd64"));
    fs::create_dir_all(&bin).expect("dists");
    let out = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "pool"])
        .current_dir(dir)
        .output()
        .expect("dpkg-scanpackages");
    assert!(out.status.success());
    fs::write(bin.join("Packages"), &out.stdout).expect("Packages");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &out.stdout).expect("gzip");
    fs::write(bin.join("Packages.gz"), gz.finish().expect("gzip")).expect("Packages.gz");
    let release = Command::new("apt-ftparchive")
        .args([
            "-o",
            &format!("APT::FTPArchive::Release::Suite={suite}"),
            "-o",
            &format!("APT::FTPArchive::Release::Codename={suite}"),
            "-o",
            "APT::FTPArchive::Release::Components=main",
            "-o",
            "APT::FTPArchive::Release::Architectures=amd64",
            "release",
        ])
        .arg(format!("dists/{suite}"))
        .current_dir(dir)
        .output()
        .expect("apt-ftparchive");
    assert!(
        release.status.success(),
        "apt-ftparchive: {}",
        String::from_utf8_lossy(&release.stderr)
    );
    let dists = dir.join(format!("dists/{suite}"));
    fs::write(dists.join("Release"), &release.stdout).expect("Release");
    clearsign(&dists.join("Release"), &dists.join("InRelease"), key);
}

/// Clear-signs `input` into `output` with the real gpg and fixture key `key`.
pub fn clearsign(input: &Path, output: &Path, key: &str) {
    let home = tempfile::tempdir().expect("GNUPGHOME");
    let sec = fixtures_dir().join(format!("keys/{key}.sec.asc"));
    run(Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args(["--batch", "--quiet", "--import"])
        .arg(&sec));
    let _ = fs::remove_file(output);
    run(Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args([
            "--batch",
            "--quiet",
            "--yes",
            "--digest-algo",
            "SHA256",
            "--clearsign",
            "--output",
        ])
        .arg(output)
        .arg(input));
}

/// Makes the root trust fixture key NAME for apt
/// (`/etc/apt/trusted.gpg.d/NAME.asc`).
pub fn trust_apt_key(root: &Path, key: &str) {
    let d = root.join("etc/apt/trusted.gpg.d");
    fs::create_dir_all(&d).expect("trusted.gpg.d");
    fs::write(
        d.join(format!("{key}.asc")),
        read_fixture(&format!("keys/{key}.pub.asc")),
    )
    .expect("key");
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

/// The raw `security.selinux` label of a file (as setfiles or our lay-down
/// wrote it; no SELinux kernel needed to read it); panics when it has none.
pub fn selinux_label(p: &Path) -> String {
    label_of(p).unwrap_or_else(|| panic!("no security.selinux label on {}", p.display()))
}

/// Prepares a root for apt: the directories apt and dpkg expect, and a
/// sources.list naming the repository.
pub fn apt_root(root: &Path, repo: &Path) {
    dpkg_initdb(root);
    for d in [
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "etc/apt/trusted.gpg.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/log/apt",
    ] {
        fs::create_dir_all(root.join(d)).expect("apt dirs");
    }
    fs::write(
        root.join("etc/apt/sources.list"),
        format!("deb [trusted=yes] file:{} ./\n", repo.display()),
    )
    .expect("sources.list");
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

/// Initialises an empty rpm database inside the root at `/var/lib/rpm`.
pub fn rpm_initdb(root: &Path) {
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "--initdb"]));
}

/// Installs an .rpm into the root with the real rpm (no scripts, no deps;
/// `--oldpackage` so kernels of several versions install side by side, as
/// they do on a real system).
pub fn rpm_install(root: &Path, rpm_file: &Path) {
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--nodeps",
            "--noscripts",
            "--notriggers",
            "--oldpackage",
            "--ignorearch",
        ])
        .arg(rpm_file));
}

/// Prepares an empty dpkg database inside the root.
pub fn dpkg_initdb(root: &Path) {
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        fs::create_dir_all(admin.join(d)).expect("dpkg admin dirs");
    }
    for f in ["status", "available"] {
        let p = admin.join(f);
        if !p.exists() {
            fs::write(p, "").expect("dpkg status");
        }
    }
}

/// Installs a .deb into the root with the real dpkg.
pub fn dpkg_install(root: &Path, deb: &Path) {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg("-i")
        .arg(deb));
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
