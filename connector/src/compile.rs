//! The probe's compile, as the connector does it at every start: the probe
//! source (`connector/probe/connector_probe.bpf.c`, built into the binary)
//! compiled with `clang -target bpf` against the running kernel's header
//! tree. A failure here *is* fault 11.
//!
//! The tree is found where kbuild and the distributions put it
//! (`connector_host::headers::candidate_paths`, the source tree by
//! `connector_host::headers::source_tree`); whether it is usable is decided
//! by the compiler alone, never by a check of ours.
//!
//! Compiling costs a few hundred milliseconds, so the object is cached under
//! [`layout::PROBE_CACHE`] (labelled `connectord_var_lib_t` like the rest of
//! the state directory), keyed on the kernel release, the probe source and
//! the compiler: `<release>-<key>.o`. Beside it, `<release>-<key>.deps`
//! lists every file the compile read (clang's dependency file) with its size
//! and modification time; the object is reused only while every one of them
//! is unchanged, so a header tree removed or replaced after the compile is
//! noticed at the next start, exactly as a fresh compile would notice it.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use connector_host::cmd::{Cmd, CmdError};
use connector_host::headers::{candidate_paths, release_arch, source_tree, tree_arch};
use connector_host::{layout, Root};
use sha2::{Digest, Sha256};

/// The probe's source, as shipped.
pub const SOURCE: &str = include_str!("../probe/connector_probe.bpf.c");
/// Its file name in the cache's build directory.
pub const SOURCE_NAME: &str = "connector_probe.bpf.c";
/// How long one compile may take (emulated machines are slow).
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);
/// Bump when the flags change: part of the cache key.
const FLAGS_VERSION: u32 = 1;
/// The largest object or dependency list read back from the cache.
const CACHE_READ_CAP: u64 = 4 << 20;

/// Where the compiler was looked for, in order, when none is configured.
pub fn compiler_candidates() -> Vec<OsString> {
    std::iter::once(OsString::from("clang"))
        .chain(
            (11..=20)
                .rev()
                .map(|v| OsString::from(format!("clang-{v}"))),
        )
        .collect()
}

/// The compiler in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiler {
    /// The program, as run (a path).
    pub path: PathBuf,
}

impl Compiler {
    /// `configured` (connector.conf `clang =`), else the first of
    /// [`compiler_candidates`] on `PATH`.
    pub fn find(configured: Option<&Path>) -> Result<Compiler, CompileError> {
        if let Some(p) = configured {
            return if p.is_file() {
                Ok(Compiler {
                    path: p.to_path_buf(),
                })
            } else {
                Err(CompileError::NoCompiler {
                    looked: p.display().to_string(),
                })
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        for name in compiler_candidates() {
            for dir in std::env::split_paths(&path) {
                let p = dir.join(&name);
                if p.is_file() {
                    return Ok(Compiler { path: p });
                }
            }
        }
        Err(CompileError::NoCompiler {
            looked: format!(
                "clang or clang-11..clang-20 on PATH ({})",
                path.to_string_lossy()
            ),
        })
    }

    /// What identifies this compiler in the cache key: its resolved path,
    /// size and modification time (an upgrade changes them).
    fn identity(&self) -> String {
        let real = fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        match fs::metadata(&real) {
            Ok(m) => format!("{} {} {}", real.display(), m.len(), m.mtime()),
            Err(_) => real.display().to_string(),
        }
    }
}

/// Why there is no object.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// No compiler: the package's dependency was removed, or none is on PATH.
    #[error("no eBPF compiler: {looked} not found (install clang)")]
    NoCompiler { looked: String },
    /// No header tree at any of the places kbuild looks.
    #[error("no kernel header tree for {release} ({looked})")]
    NoTree { release: String, looked: String },
    /// The compiler refused the tree: its first error.
    #[error("compiling the probe against {tree} failed: {first_error}")]
    Failed { tree: String, first_error: String },
    /// The compiler could not be run, or timed out.
    #[error(transparent)]
    Run(#[from] CmdError),
    /// The cache could not be written or read.
    #[error("{what} {}: {source}", path.display())]
    Cache {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CompileError {
    /// The compile ran and failed for want of usable headers (fault 11);
    /// not a problem of the compiler or the cache.
    pub fn is_headers(&self) -> bool {
        matches!(
            self,
            CompileError::NoTree { .. } | CompileError::Failed { .. }
        )
    }
}

fn cache_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CompileError {
    let path = path.to_path_buf();
    move |source| CompileError::Cache { what, path, source }
}

/// A compiled probe.
#[derive(Debug, Clone)]
pub struct Object {
    /// The ELF object.
    pub bytes: Vec<u8>,
    /// Its path in the cache (inside the root).
    pub path: String,
    /// The build tree it was compiled against (inside the root).
    pub tree: String,
    /// Found in the cache, every input unchanged.
    pub cached: bool,
    /// The time taken (the cache check, or the compile).
    pub elapsed: Duration,
    /// The cache key (release, source, compiler).
    pub key: String,
}

/// The header trees one compile uses (host paths, as the compiler sees them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trees {
    /// The build tree (inside the root, as shown).
    pub shown: String,
    pub build: PathBuf,
    pub source: PathBuf,
    /// The kernel's architecture (`arch/<name>/`, `__TARGET_ARCH_<name>`):
    /// the kernel's, never this program's.
    pub arch: &'static str,
}

/// The trees to try for `release`, in kbuild's order, each once: every
/// candidate that resolves to a directory inside the root.
pub fn trees(root: &Root, release: &str) -> Result<Vec<Trees>, CompileError> {
    let kernel_arch = release_arch(root, release);
    let mut out: Vec<Trees> = Vec::new();
    let mut looked = Vec::new();
    for cand in candidate_paths(release) {
        let tree = match root.resolve_in_root(&cand) {
            Ok(t) if root.is_dir(&t).unwrap_or(false) => t,
            Ok(_) | Err(_) => {
                let note = match root.read_link_optional(&cand) {
                    Ok(Some(target)) => format!(
                        "{} points to {}, which does not exist",
                        cand.display(),
                        target.display()
                    ),
                    _ => format!("no {}", cand.display()),
                };
                looked.push(note);
                continue;
            }
        };
        if out.iter().any(|t| t.shown == tree.display().to_string()) {
            continue;
        }
        // A Makefile naming a missing -common tree still compiles (and
        // fails) against the build tree alone: the compiler says why.
        let source = match source_tree(root, &tree, release) {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => tree.clone(),
        };
        out.push(Trees {
            arch: tree_arch(kernel_arch, root, &tree),
            shown: tree.display().to_string(),
            build: root.host_path(&tree),
            source: root.host_path(&source),
        });
    }
    if out.is_empty() {
        return Err(CompileError::NoTree {
            release: release.to_string(),
            looked: looked.join("; "),
        });
    }
    Ok(out)
}

/// The compiler's arguments for one tree, but the input, output and
/// dependency file: what a kernel-headers build of a BPF program needs.
pub fn flags(trees: &Trees, release: &str, resource_include: Option<&Path>) -> Vec<OsString> {
    let (b, s) = (&trees.build, &trees.source);
    let arch = trees.arch;
    let mut args: Vec<OsString> = ["-target", "bpf", "-O2", "-nostdinc"]
        .iter()
        .map(OsString::from)
        .collect();
    if let Some(inc) = resource_include {
        args.push("-isystem".into());
        args.push(inc.into());
    }
    for dir in [
        s.join(format!("arch/{arch}/include")),
        b.join(format!("arch/{arch}/include/generated")),
        s.join("include"),
        b.join("include"),
        s.join(format!("arch/{arch}/include/uapi")),
        b.join(format!("arch/{arch}/include/generated/uapi")),
        s.join("include/uapi"),
        b.join("include/generated/uapi"),
    ] {
        let mut a = OsString::from("-I");
        a.push(dir);
        args.push(a);
    }
    args.push("-include".into());
    args.push(s.join("include/linux/kconfig.h").into());
    for d in [
        "-D__KERNEL__".to_string(),
        "-D__BPF_TRACING__".to_string(),
        format!("-D__TARGET_ARCH_{arch}"),
        format!("-DCONNECTOR_RELEASE=\"{release}\""),
    ] {
        args.push(d.into());
    }
    for w in [
        "-Wno-unused-value",
        "-Wno-pointer-sign",
        "-Wno-compare-distinct-pointer-types",
        "-Wno-gnu-variable-sized-type-not-at-end",
        "-Wno-address-of-packed-member",
        "-Wno-tautological-compare",
        "-Wno-unknown-warning-option",
        "-fno-stack-protector",
        "-ferror-limit=5",
        "-fno-color-diagnostics",
    ] {
        args.push(w.into());
    }
    args
}

/// The cache key of a compile: release, source, flags and compiler.
pub fn cache_key(release: &str, compiler: &Compiler) -> String {
    let mut h = Sha256::new();
    h.update(SOURCE.as_bytes());
    h.update(format!("\0{release}\0{FLAGS_VERSION}\0{}", compiler.identity()).as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// The first error the compiler printed, as one line.
pub fn first_error(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains("error:"))
        .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("the compiler failed without a message")
        .trim();
    let mut s: String = line.chars().take(400).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

/// The files a make-style dependency file (`clang -MD -MF`) lists.
pub fn parse_depfile(text: &str) -> Vec<PathBuf> {
    let joined = text.replace("\\\n", " ");
    let body = match joined.split_once(": ") {
        Some((_, b)) => b.to_string(),
        None => joined.clone(),
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            ' ' | '\t' | '\n' | '\r' => {
                if !cur.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut cur)));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(PathBuf::from(cur));
    }
    out
}

fn stamp(path: &Path) -> io::Result<String> {
    let m = fs::metadata(path)?;
    Ok(format!("{} {}.{:09}", m.len(), m.mtime(), m.mtime_nsec()))
}

/// The dependency list as stored: `SIZE MTIME PATH` per line.
fn stamps(paths: &[PathBuf]) -> io::Result<String> {
    let mut out = String::new();
    for p in paths {
        let _ = writeln!(out, "{} {}", stamp(p)?, p.display());
    }
    Ok(out)
}

/// True when every file of a stored dependency list is unchanged.
fn deps_unchanged(text: &str) -> bool {
    let mut any = false;
    for line in text.lines() {
        let mut it = line.splitn(3, ' ');
        let (Some(size), Some(mtime), Some(path)) = (it.next(), it.next(), it.next()) else {
            return false;
        };
        match stamp(Path::new(path)) {
            Ok(now) if now == format!("{size} {mtime}") => any = true,
            _ => return false,
        }
    }
    any
}

fn read_capped(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let f = fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut buf = Vec::new();
    f.take(CACHE_READ_CAP).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The cached object for `release`, when every input is unchanged.
fn cached(root: &Root, release: &str, key: &str) -> Option<(PathBuf, Vec<u8>, String)> {
    let dir = root.host_path(layout::PROBE_CACHE);
    let deps = read_capped(&dir.join(format!("{release}-{key}.deps"))).ok()?;
    let deps = String::from_utf8(deps).ok()?;
    let mut lines = deps.lines();
    let tree = lines.next()?.strip_prefix("tree ")?.to_string();
    if !deps_unchanged(&lines.collect::<Vec<_>>().join("\n")) {
        return None;
    }
    let obj = dir.join(format!("{release}-{key}.o"));
    let bytes = read_capped(&obj).ok()?;
    Some((obj, bytes, tree))
}

/// The probe's object for `release`: from the cache when nothing it was
/// compiled from has changed, else compiled against the first tree that
/// compiles. The error of the first tree is the one reported.
pub fn build(root: &Root, release: &str, compiler: &Compiler) -> Result<Object, CompileError> {
    let start = Instant::now();
    let key = cache_key(release, compiler);
    let shown = |p: &Path| {
        format!(
            "{}/{}",
            layout::PROBE_CACHE,
            p.file_name().unwrap_or_default().to_string_lossy()
        )
    };
    if let Some((path, bytes, tree)) = cached(root, release, &key) {
        return Ok(Object {
            bytes,
            path: shown(&path),
            tree,
            cached: true,
            elapsed: start.elapsed(),
            key,
        });
    }
    let candidates = trees(root, release)?;
    let dir = root.host_path(layout::PROBE_CACHE);
    fs::create_dir_all(&dir).map_err(cache_err("creating", &dir))?;
    // What an interrupted compile left (one connectord per root).
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".build-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let work = dir.join(format!(".build-{}", std::process::id()));
    fs::create_dir(&work).map_err(cache_err("creating", &work))?;
    let result = compile_in(&work, &candidates, release, compiler);
    let outcome = result.and_then(|(trees, deps)| {
        let obj = dir.join(format!("{release}-{key}.o"));
        let dep = dir.join(format!("{release}-{key}.deps"));
        let mut list = format!("tree {}\n", trees.shown);
        list.push_str(&stamps(&deps).map_err(cache_err("reading", &work))?);
        // Synced before it is named: a crash never leaves a torn object
        // that a later start would take from the cache.
        connector_host::atomic::place(&work.join("probe.o"), &obj)
            .map_err(cache_err("writing", &obj))?;
        write_atomic(&dep, list.as_bytes()).map_err(cache_err("writing", &dep))?;
        let bytes = read_capped(&obj).map_err(cache_err("reading", &obj))?;
        prune(&dir, release, &key);
        Ok(Object {
            bytes,
            path: shown(&obj),
            tree: trees.shown,
            cached: false,
            elapsed: start.elapsed(),
            key: key.clone(),
        })
    });
    let _ = fs::remove_dir_all(&work);
    outcome
}

/// The agent's own state is readable by its group only (the unit's
/// UMask=0027 gave the same).
fn write_atomic(path: &Path, body: &[u8]) -> io::Result<()> {
    connector_host::atomic::write(path, body, 0o640, None)
}

/// Removes this release's objects of other keys (an older probe or
/// compiler): the cache holds one object per release.
fn prune(dir: &Path, release: &str, key: &str) {
    let keep = [
        format!("{release}-{key}.o"),
        format!("{release}-{key}.deps"),
    ];
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(&format!("{release}-")) else {
            continue;
        };
        let ours = rest.len() == 16 + 2 && rest.ends_with(".o")
            || rest.len() == 16 + 5 && rest.ends_with(".deps");
        if ours && !keep.contains(&name) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Compiles in `work` against each tree in turn; the first that compiles
/// wins. Returns it and the files the compile read (the source excluded).
fn compile_in(
    work: &Path,
    candidates: &[Trees],
    release: &str,
    compiler: &Compiler,
) -> Result<(Trees, Vec<PathBuf>), CompileError> {
    let src = work.join(SOURCE_NAME);
    fs::write(&src, SOURCE).map_err(cache_err("writing", &src))?;
    let resource = Cmd::new(&compiler.path, "Asking clang for its resource directory")
        .arg("-print-resource-dir")
        .timeout(Duration::from_secs(60))
        .run()?
        .stdout
        .trim()
        .to_string();
    let resource_include = (!resource.is_empty()).then(|| Path::new(&resource).join("include"));
    let mut first: Option<CompileError> = None;
    for trees in candidates {
        let out = Cmd::new(&compiler.path, "Compiling the connector's eBPF probe")
            .args(flags(trees, release, resource_include.as_deref()))
            .args(["-MD", "-MF", "probe.d", "-c", SOURCE_NAME, "-o", "probe.o"])
            .current_dir(work)
            .env("TMPDIR", work)
            .env("LC_ALL", "C")
            .timeout(COMPILE_TIMEOUT)
            .output()?;
        if out.status.success() {
            let deps = fs::read_to_string(work.join("probe.d"))
                .map_err(cache_err("reading", &work.join("probe.d")))?;
            let deps = parse_depfile(&deps)
                .into_iter()
                .filter(|p| p.file_name() != Some(SOURCE_NAME.as_ref()))
                .map(|p| if p.is_relative() { work.join(p) } else { p })
                .filter(|p| !p.starts_with(work))
                .chain(std::iter::once(
                    fs::canonicalize(&compiler.path).unwrap_or_else(|_| compiler.path.clone()),
                ))
                .collect();
            return Ok((trees.clone(), deps));
        }
        first.get_or_insert(CompileError::Failed {
            tree: trees.shown.clone(),
            first_error: first_error(&out.stderr),
        });
    }
    Err(first.unwrap_or_else(|| CompileError::NoTree {
        release: release.to_string(),
        looked: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compile is for the kernel's architecture (its release, else its
    /// configuration), not this program's.
    #[test]
    fn the_compile_targets_the_kernels_architecture() {
        use connector_tests::{Fixture, Kernel, Layout};
        for (kernel, arch) in [
            (
                Kernel::new("6.1.72-96.166.amzn2023.aarch64", Layout::El8),
                "arm64",
            ),
            (Kernel::new("6.1.0-18-arm64", Layout::Debian), "arm64"),
            (
                Kernel::new("5.15.0-91-generic", Layout::Ubuntu).with_arch("arm64"),
                "arm64",
            ),
            (Kernel::new("5.15.0-91-generic", Layout::Ubuntu), "x86"),
            (Kernel::new("6.1.0-18-amd64", Layout::Debian), "x86"),
        ] {
            let f = Fixture::new();
            f.kernel(&kernel).headers(&kernel);
            let trees = trees(&f.root(), &kernel.release).unwrap();
            assert_eq!(trees[0].arch, arch, "{}", kernel.release);
            let args: Vec<String> = flags(&trees[0], &kernel.release, None)
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert!(
                args.contains(&format!("-D__TARGET_ARCH_{arch}")),
                "{args:?}"
            );
            assert!(
                args.iter()
                    .any(|a| a.ends_with(&format!("arch/{arch}/include/generated"))),
                "{args:?}"
            );
            let other = if arch == "x86" { "arm64" } else { "x86" };
            assert!(
                !args.iter().any(|a| a.contains(&format!("arch/{other}/"))),
                "{args:?}"
            );
        }
    }

    #[test]
    fn depfiles_with_continuations_and_escaped_spaces() {
        let d = "probe.o: connector_probe.bpf.c /a/b.h \\\n  /c/d\\ e.h\n /f.h\n";
        assert_eq!(
            parse_depfile(d),
            vec![
                PathBuf::from("connector_probe.bpf.c"),
                PathBuf::from("/a/b.h"),
                PathBuf::from("/c/d e.h"),
                PathBuf::from("/f.h"),
            ]
        );
    }

    #[test]
    fn the_first_error_line_is_reported() {
        let stderr = "In file included from x.c:1:\n/k/include/linux/types.h:5:10: fatal error: 'asm/types.h' file not found\n#include <asm/types.h>\n1 error generated.\n";
        assert_eq!(
            first_error(stderr),
            "/k/include/linux/types.h:5:10: fatal error: 'asm/types.h' file not found"
        );
        assert_eq!(first_error(""), "the compiler failed without a message");
    }

    #[test]
    fn a_changed_or_missing_input_invalidates_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.h");
        fs::write(&a, "one").unwrap();
        let list = stamps(std::slice::from_ref(&a)).unwrap();
        assert!(deps_unchanged(&list));
        fs::write(&a, "three").unwrap();
        assert!(!deps_unchanged(&list), "size changed");
        let list = stamps(std::slice::from_ref(&a)).unwrap();
        fs::remove_file(&a).unwrap();
        assert!(!deps_unchanged(&list), "file gone");
        assert!(!deps_unchanged(""), "an empty list proves nothing");
    }

    #[test]
    fn the_key_follows_the_release_and_the_compiler() {
        let c = Compiler {
            path: PathBuf::from("/nonexistent/clang"),
        };
        let d = Compiler {
            path: PathBuf::from("/nonexistent/clang-15"),
        };
        assert_eq!(cache_key("K", &c), cache_key("K", &c));
        assert_ne!(cache_key("K", &c), cache_key("L", &c));
        assert_ne!(cache_key("K", &c), cache_key("K", &d));
        assert_eq!(cache_key("K", &c).len(), 16);
    }
}
