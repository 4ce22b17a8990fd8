//! Are the kernel headers for one release usable by the connector's probe
//! build, on disk?
//!
//! "Present" means a tree the connector's compile step can use for *that exact*
//! release, found where kbuild and the distributions put it:
//! `lib/modules/K/build` (a symlink, usually absolute), `usr/src/kernels/K`
//! (RPM family) or `usr/src/linux-headers-K` (Debian family), all resolved
//! inside the root. The compile (connectord's `clang -target bpf`, see
//! `connector/src/compile.rs`) reads two trees:
//! - the **build tree** (the candidate): `include/generated/autoconf.h`,
//!   `include/generated/utsrelease.h`, `include/generated/uapi/linux/version.h`
//!   and `arch/<arch>/include/generated`;
//! - the **source tree**: the same directory on the RPM family; Debian's
//!   `linux-headers-V-common`, named by the build tree's one-line Makefile
//!   (`include /usr/src/linux-headers-V-common/Makefile`) or by
//!   `lib/modules/K/source`. It must hold `include/linux/kconfig.h`,
//!   `include/uapi/linux/types.h`, `include/uapi/linux/bpf.h`,
//!   `arch/<arch>/include/asm` and `arch/<arch>/include/uapi/asm`.
//!
//! The release the tree was configured for, where recorded, must equal K:
//! `UTS_RELEASE` in `include/generated/utsrelease.h` is authoritative
//! (Debian's `include/config/kernel.release` holds the *upstream* version,
//! "6.1.192" for 6.1.0-56-amd64, so it is read only when the former is
//! absent).
//!
//! kbuild's `scripts` (Debian's linux-kbuild package) and the Makefile itself
//! are not needed by the compile, so they are not required: the
//! doctor-versus-compiler matrix (`connector/tests/compile_matrix.rs`) runs
//! the real compile against real header packages and holds this verdict to
//! it.
//!
//! A dangling `build` link (kernel-core without kernel-devel), a partial tree
//! and a tree of another release are all "not present", each with its reason.
//! This module is shared by `doctor` and the connector daemon.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::root::{is_missing, Root};

/// Why one candidate tree is not usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TreeProblem {
    /// `lib/modules/K/build` points at something that does not exist.
    DanglingLink { link: String, target: String },
    /// A file or directory kbuild needs is missing.
    Missing { file: String },
    /// The tree was configured for another kernel release.
    OtherRelease { found: String },
    /// The Makefile includes a file that is not there (Debian's -common
    /// package missing).
    BrokenInclude { include: String },
    /// The place could not be read at all (permissions, SELinux, a service
    /// sandbox hiding it).
    Unreadable { error: String },
}

impl std::fmt::Display for TreeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeProblem::DanglingLink { link, target } => {
                write!(f, "{link} points to {target}, which does not exist")
            }
            TreeProblem::Missing { file } => write!(f, "{file} is missing (partial tree)"),
            TreeProblem::OtherRelease { found } => {
                write!(f, "the tree was built for kernel {found}")
            }
            TreeProblem::Unreadable { error } => write!(f, "cannot be read: {error}"),
            TreeProblem::BrokenInclude { include } => {
                write!(f, "its Makefile includes {include}, which does not exist")
            }
        }
    }
}

/// One place headers were looked for and what was found there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The path inside the root that was looked at.
    pub path: String,
    /// The tree it resolves to, inside the root.
    pub tree: Option<String>,
    pub problem: Option<TreeProblem>,
}

/// The on-disk verdict for one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeadersOnDisk {
    /// A usable tree exists.
    pub present: bool,
    /// The usable tree, inside the root.
    pub path: Option<String>,
    /// Its source tree, inside the root (the same as `path` but on Debian,
    /// where it is the `-common` tree).
    pub source: Option<String>,
    /// Every existing candidate that was rejected, with its reason.
    pub rejected: Vec<Candidate>,
}

/// The places headers for `release` can be, in kbuild's order of preference.
pub fn candidate_paths(release: &str) -> [PathBuf; 3] {
    [
        PathBuf::from(format!("/lib/modules/{release}/build")),
        PathBuf::from(format!("/usr/src/kernels/{release}")),
        PathBuf::from(format!("/usr/src/linux-headers-{release}")),
    ]
}

/// Checks whether usable headers for `release` exist in `root`. Never
/// fails: anything that goes wrong with one candidate (a symlink loop, an
/// unreadable directory, a file that is not text) is that candidate's
/// rejection, and the other candidates — and the other kernels — are still
/// checked.
pub fn check(root: &Root, release: &str) -> HeadersOnDisk {
    let kernel_arch = release_arch(root, release);
    let mut rejected = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let unreadable = |path: String, tree: Option<String>, e: io::Error| Candidate {
        path,
        tree,
        problem: Some(TreeProblem::Unreadable {
            error: e.to_string(),
        }),
    };
    for cand in candidate_paths(release) {
        let shown = cand.display().to_string();
        let tree = match root.resolve_in_root(&cand) {
            Ok(t) => t,
            Err(e) if is_missing(&e) => {
                match root.read_link_optional(&cand) {
                    Ok(Some(target)) => rejected.push(Candidate {
                        path: shown.clone(),
                        tree: None,
                        problem: Some(TreeProblem::DanglingLink {
                            link: shown,
                            target: target.display().to_string(),
                        }),
                    }),
                    Ok(None) => {}
                    Err(e) => rejected.push(unreadable(shown, None, e)),
                }
                continue;
            }
            Err(e) => {
                rejected.push(unreadable(shown, None, e));
                continue;
            }
        };
        if seen.contains(&tree) {
            continue;
        }
        seen.push(tree.clone());
        let tree_shown = tree.display().to_string();
        let problem = match check_tree(root, &tree, release, kernel_arch) {
            Ok(p) => p,
            Err(e) => Err(TreeProblem::Unreadable {
                error: e.to_string(),
            }),
        };
        match problem {
            Ok(source) => {
                return HeadersOnDisk {
                    present: true,
                    path: Some(tree_shown),
                    source: Some(source.display().to_string()),
                    rejected,
                }
            }
            Err(p) => rejected.push(Candidate {
                path: shown,
                tree: Some(tree_shown),
                problem: Some(p),
            }),
        }
    }
    HeadersOnDisk {
        present: false,
        path: None,
        source: None,
        rejected,
    }
}

/// The kernel's name for the architecture this program was built for: the
/// last resort of [`tree_arch`].
pub fn machine_arch() -> &'static str {
    crate::kernel::kbuild_arch(std::env::consts::ARCH).unwrap_or(std::env::consts::ARCH)
}

/// The architecture of kernel `release` in `root` (its `arch/<name>/`), as
/// far as the kernel itself says: its release (`.aarch64`, `-arm64`,
/// `-generic-64k`), else its configuration (`/boot/config-K`). None when
/// neither says (then each header tree's own configuration decides: see
/// [`tree_arch`]). Never this machine's: an x86_64 host judges an aarch64
/// image by the image's kernels.
pub fn release_arch(root: &Root, release: &str) -> Option<&'static str> {
    if let Some(arch) = crate::kernel::release_arch(release) {
        return crate::kernel::kbuild_arch(&arch);
    }
    let config = root
        .read_to_string_capped(format!("/boot/config-{release}"), CONFIG_CAP)
        .ok()?;
    config_arch(&config)
}

/// The architecture to check (and compile) tree `tree` for: the kernel's
/// (`kernel`: [`release_arch`], asked once per release by the caller),
/// else what the tree was configured for (its
/// `include/generated/autoconf.h`), else this machine's.
pub fn tree_arch(kernel: Option<&'static str>, root: &Root, tree: &Path) -> &'static str {
    kernel
        .or_else(|| {
            let autoconf = root
                .read_to_string_capped(tree.join("include/generated/autoconf.h"), CONFIG_CAP)
                .ok()?;
            config_arch(&autoconf)
        })
        .unwrap_or_else(machine_arch)
}

/// A kernel configuration is a few hundred KiB; more is not one.
const CONFIG_CAP: u64 = 4 * 1024 * 1024;

/// The architecture a kernel configuration (`.config` lines `CONFIG_X=y`,
/// or `autoconf.h` lines `#define CONFIG_X 1`) was made for.
fn config_arch(text: &str) -> Option<&'static str> {
    const KEYS: &[(&str, &str)] = &[
        ("CONFIG_X86_64", "x86"),
        ("CONFIG_X86_32", "x86"),
        ("CONFIG_ARM64", "arm64"),
        ("CONFIG_ARM", "arm"),
        ("CONFIG_PPC64", "powerpc"),
        ("CONFIG_S390", "s390"),
        ("CONFIG_RISCV", "riscv"),
        ("CONFIG_LOONGARCH", "loongarch"),
    ];
    text.lines().find_map(|line| {
        let line = line.trim();
        let key = match line.strip_prefix("#define ") {
            Some(rest) => rest.strip_suffix(" 1")?,
            None => line.strip_suffix("=y")?,
        };
        KEYS.iter().find(|(k, _)| *k == key).map(|(_, arch)| *arch)
    })
}

/// The files of the build tree the probe's compile reads (`{arch}` is
/// [`tree_arch`]); `true` for a directory.
pub const BUILD_TREE_NEEDS: &[(&str, bool)] = &[
    ("include/generated/autoconf.h", false),
    ("include/generated/utsrelease.h", false),
    ("include/generated/uapi/linux/version.h", false),
    ("arch/{arch}/include/generated", true),
];

/// The files of the source tree the probe's compile reads.
pub const SOURCE_TREE_NEEDS: &[(&str, bool)] = &[
    ("include/linux/kconfig.h", false),
    // Not include/linux/types.h: without it `<linux/types.h>` is found in
    // include/uapi, and the probe still compiles (the matrix's "cut off
    // halfway" row).
    ("include/uapi/linux/types.h", false),
    ("include/uapi/linux/bpf.h", false),
    ("arch/{arch}/include/asm", true),
    ("arch/{arch}/include/uapi/asm", true),
];

/// The source tree of the build tree `tree` (both inside the root): the
/// directory Debian's one-line Makefile includes from, else
/// `lib/modules/K/source` when it resolves, else the tree itself. Err: the
/// Makefile names a file that is not there (Debian's -common missing).
pub fn source_tree(
    root: &Root,
    tree: &Path,
    release: &str,
) -> io::Result<Result<PathBuf, TreeProblem>> {
    if let Some(text) = root.read_to_string_optional(tree.join("Makefile"))? {
        if let Some(include) = wrapper_include(&text) {
            if !root.is_file(include)? {
                return Ok(Err(TreeProblem::BrokenInclude {
                    include: include.to_string(),
                }));
            }
            let dir = Path::new(include).parent().unwrap_or(Path::new("/"));
            return Ok(Ok(root.resolve_in_root(dir)?));
        }
    }
    // A `source` link that does not resolve (missing, a loop, outside the
    // root) leaves the tree as its own source: the compile finds what it
    // finds there.
    match root.resolve_in_root(format!("/lib/modules/{release}/source")) {
        Ok(s) if root.is_dir(&s).unwrap_or(false) => Ok(Ok(s)),
        Ok(_) | Err(_) => Ok(Ok(tree.to_path_buf())),
    }
}

fn check_tree(
    root: &Root,
    tree: &Path,
    release: &str,
    kernel_arch: Option<&'static str>,
) -> io::Result<Result<PathBuf, TreeProblem>> {
    if !root.is_dir(tree)? {
        return Ok(Err(TreeProblem::Missing {
            file: tree.display().to_string(),
        }));
    }
    let source = match source_tree(root, tree, release)? {
        Ok(s) => s,
        Err(p) => return Ok(Err(p)),
    };
    let arch = tree_arch(kernel_arch, root, tree);
    for (base, needs) in [
        (tree, BUILD_TREE_NEEDS),
        (source.as_path(), SOURCE_TREE_NEEDS),
    ] {
        for (rel, want_dir) in needs {
            let p = base.join(rel.replace("{arch}", arch));
            let ok = if *want_dir {
                root.is_dir(&p)?
            } else {
                root.is_file(&p)?
            };
            if !ok {
                // There but not a regular file (a FIFO, a device): say so.
                if !*want_dir {
                    if let Some(host) = root.resolve_optional(&p)? {
                        crate::root::open_regular(&host)?;
                    }
                }
                return Ok(Err(TreeProblem::Missing {
                    file: p.display().to_string(),
                }));
            }
        }
    }
    if let Some(found) = recorded_release(root, tree)? {
        if found != release {
            return Ok(Err(TreeProblem::OtherRelease { found }));
        }
    }
    Ok(Ok(source))
}

/// Debian's flavour Makefile is one line: `include /usr/src/…-common/Makefile`.
fn wrapper_include(text: &str) -> Option<&str> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    let path = first.strip_prefix("include ")?.trim();
    path.starts_with('/').then_some(path)
}

/// The release a tree was configured for: `UTS_RELEASE` from
/// `include/generated/utsrelease.h`, else `include/config/kernel.release`.
pub fn recorded_release(root: &Root, tree: &Path) -> io::Result<Option<String>> {
    if let Some(text) = root.read_to_string_optional(tree.join("include/generated/utsrelease.h"))? {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("#define") && words.next() == Some("UTS_RELEASE") {
                let value: String = words.collect::<Vec<_>>().join(" ");
                return Ok(Some(value.trim_matches('"').to_string()));
            }
        }
    }
    Ok(root
        .read_to_string_optional(tree.join("include/config/kernel.release"))?
        .map(|t| t.lines().next().unwrap_or("").trim().to_string())
        .filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_names_its_architecture_by_its_exact_symbol() {
        assert_eq!(
            config_arch("CONFIG_ARM64_4K_PAGES=y\nCONFIG_ARM64=y\n"),
            Some("arm64")
        );
        assert_eq!(
            config_arch("# CONFIG_X86_64 is not set\nCONFIG_X86_32=y\n"),
            Some("x86")
        );
        assert_eq!(config_arch("#define CONFIG_ARM64 1\n"), Some("arm64"));
        assert_eq!(config_arch("#define CONFIG_X86_64 1\n"), Some("x86"));
        assert_eq!(
            config_arch("#define CONFIG_ARM64_PAGE_SHIFT 12\nCONFIG_BPF=y\n"),
            None
        );
        assert_eq!(config_arch(""), None);
    }

    #[test]
    fn wrapper_makefile_detection() {
        assert_eq!(
            wrapper_include("include /usr/src/linux-headers-6.1.0-56-common/Makefile\n"),
            Some("/usr/src/linux-headers-6.1.0-56-common/Makefile")
        );
        assert_eq!(wrapper_include("VERSION = 4\ninclude foo\n"), None);
        assert_eq!(wrapper_include("include relative/Makefile\n"), None);
    }
}
