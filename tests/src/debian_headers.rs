//! Debian's real kernel header packages, for tests that hold our verdict on
//! a header tree to the compiler's: `linux-headers-K` (the flavour's build
//! tree), `linux-headers-V-common` (the source tree), `linux-kbuild-V`, and
//! the `-cloud-ARCH` flavour of the same ABI (a tree of another release),
//! for amd64 and for arm64 (through multiarch: `dpkg --add-architecture
//! arm64`, which scripts/setup does).
//!
//! Downloaded once with `apt-get download` from the machine's Debian
//! mirror, as the VM's local repository is, into
//! `$CONNECTOR_TEST_CACHE/debian-headers/<ABI>/` (arm64:
//! `<ABI>-arm64/`; default `/var/cache/connector-tests`), under a lock
//! shared by the test binaries; a test unpacks them into its own root with
//! `dpkg -x`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The downloaded packages of one Debian kernel ABI.
#[derive(Debug, Clone)]
pub struct DebianHeaders {
    /// Debian's name of the architecture (`amd64`, `arm64`).
    pub arch: &'static str,
    /// The kernel's (`x86`, `arm64`): the trees' `arch/<name>/`.
    pub kernel_arch: &'static str,
    /// The release of the flavour tree (`6.1.0-57-amd64`).
    pub release: String,
    /// The release of the other flavour (`6.1.0-57-cloud-amd64`).
    pub other_release: String,
    /// `linux-headers-K`.
    pub flavour: PathBuf,
    /// `linux-headers-V-common`.
    pub common: PathBuf,
    /// `linux-kbuild-V`.
    pub kbuild: PathBuf,
    /// `linux-headers-K'` of the other flavour.
    pub other_flavour: PathBuf,
}

fn apt_cache_depends(pkg: &str) -> Vec<String> {
    let out = Command::new("apt-cache")
        .args(["depends", pkg])
        .output()
        .expect("apt-cache runs (scripts/setup --test)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        // `<virtual>` and `name:arch` (a foreign architecture's package).
        .map(|s| {
            let s = s.trim().trim_start_matches('<').trim_end_matches('>');
            s.split(':').next().unwrap_or(s).to_string()
        })
        .collect()
}

/// The amd64 packages, downloaded on first use.
pub fn debian_headers() -> &'static DebianHeaders {
    debian_headers_for("amd64")
}

/// The packages of `arch` (`amd64`, `arm64`), downloaded on first use.
pub fn debian_headers_for(arch: &'static str) -> &'static DebianHeaders {
    static AMD64: OnceLock<DebianHeaders> = OnceLock::new();
    static ARM64: OnceLock<DebianHeaders> = OnceLock::new();
    match arch {
        "amd64" => AMD64.get_or_init(|| download("amd64")),
        "arm64" => ARM64.get_or_init(|| download("arm64")),
        other => panic!("no Debian header packages for {other}"),
    }
}

fn download(arch: &'static str) -> DebianHeaders {
    crate::require_tool("apt-get");
    crate::require_tool("dpkg");
    let kernel_arch = if arch == "arm64" { "arm64" } else { "x86" };
    let suffix = format!("-{arch}");
    // A foreign architecture's packages are named with it (multiarch).
    let qualified = |name: &str| {
        if arch == "amd64" || name.ends_with("-common") {
            name.to_string()
        } else {
            format!("{name}:{arch}")
        }
    };
    let flavour = apt_cache_depends(&qualified(&format!("linux-headers-{arch}")))
        .into_iter()
        .find(|d| d.starts_with("linux-headers-") && d.ends_with(&suffix))
        .unwrap_or_else(|| {
            panic!(
                "apt-cache knows no linux-headers-{arch} (dpkg --add-architecture {arch}; apt-get update; scripts/setup --test)"
            )
        });
    let release = flavour.trim_start_matches("linux-headers-").to_string();
    let deps = apt_cache_depends(&qualified(&flavour));
    let common = deps
        .iter()
        .find(|d| d.starts_with("linux-headers-") && d.ends_with("-common"))
        .unwrap_or_else(|| panic!("{flavour} depends on no -common package: {deps:?}"))
        .clone();
    let kbuild = deps
        .iter()
        .find(|d| d.starts_with("linux-kbuild-"))
        .unwrap_or_else(|| panic!("{flavour} depends on no linux-kbuild: {deps:?}"))
        .clone();
    let abi = release.trim_end_matches(&suffix);
    let other_release = format!("{abi}-cloud-{arch}");
    let other = format!("linux-headers-{other_release}");
    let base = std::env::var_os("CONNECTOR_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/connector-tests"));
    let dir = base.join("debian-headers").join(if arch == "amd64" {
        abi.to_string()
    } else {
        format!("{abi}-{arch}")
    });
    fs::create_dir_all(&dir).expect("creating the header cache");
    let lock = fs::File::create(dir.join(".lock")).expect("the cache's lock file");
    // SAFETY: a valid descriptor; the lock is released when `lock` closes.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    assert_eq!(rc, 0, "locking the header cache");
    let names = [&flavour, &common, &kbuild, &other];
    let find = |name: &str| -> Option<PathBuf> {
        fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}_")) && n.ends_with(".deb"))
            })
    };
    let missing: Vec<&String> = names
        .iter()
        .copied()
        .filter(|n| find(n).is_none())
        .collect();
    if !missing.is_empty() {
        let out = Command::new("apt-get")
            .arg("download")
            .args(missing.iter().map(|n| qualified(n)))
            .current_dir(&dir)
            .output()
            .expect("apt-get runs");
        assert!(
            out.status.success(),
            "apt-get download {missing:?} failed (a Debian mirror is needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let get = |n: &str| find(n).unwrap_or_else(|| panic!("{n} was not downloaded"));
    DebianHeaders {
        arch,
        kernel_arch,
        flavour: get(&flavour),
        common: get(&common),
        kbuild: get(&kbuild),
        other_flavour: get(&other),
        release,
        other_release,
    }
}

/// Lays one package's files into `root` as `dpkg -x` would (no scripts,
/// no database): from a copy unpacked once with `dpkg -x` beside the
/// package, linked (`cp -al`; a test only ever removes or renames what it
/// was given, never writes a file in place) or copied when the root is on
/// another filesystem.
pub fn unpack(deb: &Path, root: &Path) {
    let unpacked = deb.with_extension("unpacked");
    if !unpacked.join(".done").exists() {
        let lock = fs::File::create(deb.with_extension("lock")).expect("the unpack lock");
        // SAFETY: a valid descriptor; released when `lock` closes.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        assert_eq!(rc, 0, "locking {}", unpacked.display());
        if !unpacked.join(".done").exists() {
            let _ = fs::remove_dir_all(&unpacked);
            fs::create_dir_all(&unpacked).unwrap();
            dpkg_x(deb, &unpacked);
            fs::write(unpacked.join(".done"), "").unwrap();
        }
    }
    fs::create_dir_all(root).unwrap();
    for flags in ["-al", "-a"] {
        let ok = Command::new("cp")
            .arg(flags)
            .arg("--no-target-directory")
            .arg(&unpacked)
            .arg(root)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let _ = fs::remove_file(root.join(".done"));
            return;
        }
    }
    panic!(
        "copying {} into {} failed",
        unpacked.display(),
        root.display()
    );
}

/// `dpkg -x DEB DIR`.
pub fn dpkg_x(deb: &Path, root: &Path) {
    let out = Command::new("dpkg")
        .arg("-x")
        .arg(deb)
        .arg(root)
        .output()
        .expect("dpkg runs");
    assert!(
        out.status.success(),
        "dpkg -x {}: {}",
        deb.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
