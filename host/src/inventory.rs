//! Which kernels will run on a root.
//!
//! On the live root (`/`): the running kernel (`uname -r`) and every installed
//! kernel. On any other root: only the installed kernels of that root — the
//! build host's `uname -r` says nothing about an image.
//!
//! "Installed" means `lib/modules/K` holds a kernel: `vmlinuz` in it (EL8+,
//! Fedora layout), `boot/vmlinuz-K` (EL7, Amazon Linux 2, Debian, Ubuntu), or
//! its modules (`kernel/`, `modules.dep`). A directory left behind by a
//! removed kernel (only `extra/`, `weak-updates/`, DKMS leftovers) is
//! reported as stale and not diagnosed.

use std::io;

use crate::kernel::compare_releases;
use crate::root::Root;

/// One kernel found on the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEntry {
    pub release: String,
    /// It is the kernel running now (live root only).
    pub running: bool,
    /// Its files are installed in the root.
    pub installed: bool,
}

/// The kernels of a root, running one first, then newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The running kernel, when the root is the live system.
    pub running: Option<String>,
    pub kernels: Vec<KernelEntry>,
    /// `lib/modules` directories that hold no kernel.
    pub stale: Vec<String>,
}

impl Inventory {
    /// The newest installed kernel, when it is not the running one.
    pub fn pending_reboot(&self) -> Option<&str> {
        let running = self.running.as_deref()?;
        let newest = self
            .kernels
            .iter()
            .filter(|k| k.installed)
            .map(|k| k.release.as_str())
            .max_by(|a, b| compare_releases(a, b))?;
        (compare_releases(newest, running) == std::cmp::Ordering::Greater).then_some(newest)
    }
}

/// The release of the running kernel (`uname -r`).
pub fn running_release() -> io::Result<String> {
    // SAFETY: uname(2) fills the struct we pass; a zeroed utsname is valid.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel NUL-terminates `release` within its bounds.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

/// Why `uname -r` does not belong to the root `/` we run in, if it does
/// not: we are in a chroot or a container (of an image being built) and
/// the running kernel is not installed here. Then `/` is an image.
pub fn foreign_running_kernel(root: &Root, running: &str) -> Option<String> {
    if !root.is_live() {
        return None;
    }
    let installed = root
        .exists(format!("/lib/modules/{running}/kernel"))
        .unwrap_or(false)
        || root
            .exists(format!("/lib/modules/{running}/modules.order"))
            .unwrap_or(false);
    if installed {
        return None;
    }
    let place = if in_chroot() {
        "a chroot"
    } else if in_container() {
        "a container"
    } else {
        return None;
    };
    Some(format!(
        "running in {place} whose kernel {running} is not installed here: this root is treated \
         as an image (every installed kernel, nothing started)"
    ))
}

/// `/` is not the root of PID 1 (a chroot). A root without `/proc` at all
/// (what `rpm --root` and plain `chroot` give their scriptlets) is not a
/// booted system either.
pub fn in_chroot() -> bool {
    use std::os::unix::fs::MetadataExt;
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match (std::fs::metadata("/"), std::fs::metadata("/proc/1/root/.")) {
        (Ok(a), Ok(b)) => a.dev() != b.dev() || a.ino() != b.ino(),
        // /proc/1/root unreadable: not ours to see (a container), or no /proc.
        _ => false,
    }
}

/// systemd's and the container managers' own markers.
pub fn in_container() -> bool {
    std::path::Path::new("/run/systemd/container").exists()
        || std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
        || std::env::var_os("container").is_some()
}

/// Lists the kernels of `root`. `running` is the running kernel's release
/// when `root` is the live system (the caller passes `uname -r`), `None` for
/// an image. `only` restricts the result to one release, which is listed
/// even when it is not installed (to check a kernel before installing it).
pub fn inventory(root: &Root, running: Option<&str>, only: Option<&str>) -> io::Result<Inventory> {
    let mut kernels = Vec::new();
    let mut stale = Vec::new();
    for name in root.read_dir_names("/lib/modules")? {
        let Some(release) = name.to_str() else {
            continue;
        };
        if !root.is_dir(format!("/lib/modules/{release}"))? {
            continue;
        }
        if is_installed(root, release)? {
            kernels.push(KernelEntry {
                release: release.to_string(),
                running: running == Some(release),
                installed: true,
            });
        } else if running != Some(release) {
            stale.push(release.to_string());
        }
    }
    if let Some(run) = running {
        if !kernels.iter().any(|k| k.release == run) {
            let installed = is_installed(root, run)?;
            kernels.push(KernelEntry {
                release: run.to_string(),
                running: true,
                installed,
            });
        }
    }
    if let Some(only) = only {
        kernels.retain(|k| k.release == only);
        stale.retain(|s| s == only);
        if kernels.is_empty() {
            kernels.push(KernelEntry {
                release: only.to_string(),
                running: running == Some(only),
                installed: false,
            });
        }
    }
    kernels.sort_by(|a, b| {
        b.running
            .cmp(&a.running)
            .then_with(|| compare_releases(&b.release, &a.release))
    });
    Ok(Inventory {
        running: running.map(String::from),
        kernels,
        stale,
    })
}

fn is_installed(root: &Root, release: &str) -> io::Result<bool> {
    let dir = format!("/lib/modules/{release}");
    for p in [
        format!("{dir}/vmlinuz"),
        format!("/boot/vmlinuz-{release}"),
        format!("{dir}/modules.dep"),
        format!("{dir}/modules.order"),
    ] {
        if root.is_file(&p)? {
            return Ok(true);
        }
    }
    root.is_dir(format!("{dir}/kernel"))
}
