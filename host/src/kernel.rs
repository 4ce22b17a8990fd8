//! Kernel releases: what a `uname -r` string says, which probe the connector
//! uses on it, and which package carries its headers.
//!
//! The rules are the seed's support matrix (docs/support-matrix.md):
//! - eBPF path: EL8/EL9 (RHCK), Oracle Linux 8+ RHCK, Oracle Linux 7/8/9 with
//!   UEK 6 (5.4) or newer, Amazon Linux with kernel 4.19 or newer, Amazon
//!   Linux 2023, Debian 10+, Ubuntu 18.04+;
//! - kernel-module path (no headers needed for fault 11): RHEL/CentOS 6 and 7,
//!   Oracle Linux 7 RHCK, UEK 5 and older, Amazon Linux with 4.14 and older.
//!
//! Header packages are named exactly as the distribution names them, so
//! that `dnf install -y <name>` / `apt-get install -y <name>` picks exactly
//! that build: `kernel-devel-4.18.0-513.5.1.el8_9.x86_64`,
//! `kernel-uek-devel-5.15.0-200.131.27.el8uek.x86_64`,
//! `kernel-debug-devel-…` for `+debug` kernels, `kernel-rt-devel-…` for
//! real-time kernels, `linux-headers-6.1.0-18-amd64`.

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

use crate::os::{Distro, OsInfo, Support};
use crate::vercmp::rpmvercmp;

/// How the connector monitors on a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// Compiled eBPF module: needs the exact headers (fault 11 otherwise).
    Ebpf,
    /// Prebuilt kernel module: headers are not needed.
    Kmod,
    /// The system is not one the connector supports.
    Unknown,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Probe::Ebpf => "ebpf",
            Probe::Kmod => "kmod",
            Probe::Unknown => "unknown",
        })
    }
}

/// Kernel build variants that have a header package of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Debug,
    Rt,
    RtDebug,
    /// aarch64 kernels built for 64 KiB pages (`+64k`).
    K64,
    K64Debug,
}

/// Everything the release string and the OS say about one kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelClass {
    pub probe: Probe,
    /// `rhck`, `uek6`, `uek7`, `amazon`, `debian-amd64`, `ubuntu-generic`,
    /// `ubuntu-aws`, … or `custom` for a kernel the distribution did not build.
    pub flavor: String,
    /// The UEK generation (6 for 5.4, 7 for 5.15), when UEK.
    pub uek: Option<u32>,
    /// Architecture, when the release says it.
    pub arch: Option<String>,
    pub variant: Option<Variant>,
    /// The exact header package; `None` on the kernel-module path, on an
    /// unsupported system, and for a kernel no distribution package exists for.
    pub header_package: Option<String>,
    /// False when the release does not follow the distribution's naming: a
    /// self-built or hypervisor-supplied kernel, for which no distribution
    /// package of headers can exist.
    pub distro_built: bool,
    /// Repositories that carry this kernel series' packages and may be
    /// configured but off: Oracle's `olN_UEKRM`, Amazon Linux 2's
    /// `amzn2extra-kernel-X.Y`. The backend enables the configured ones for
    /// the call.
    pub series_repos: Vec<String>,
}

impl KernelClass {
    /// A kernel about which nothing but the probe is known: no package can
    /// supply its headers.
    fn not_distro_built(probe: Probe, flavor: &str) -> KernelClass {
        KernelClass {
            probe,
            flavor: flavor.to_string(),
            uek: None,
            arch: None,
            variant: None,
            header_package: None,
            distro_built: false,
            series_repos: Vec::new(),
        }
    }
}

const RPM_ARCHES: &[&str] = &["x86_64", "aarch64", "ppc64le", "s390x", "i686"];

/// Debian kernel flavours (the part after the ABI number).
const DEBIAN_FLAVOURS: &[&str] = &[
    "amd64",
    "cloud-amd64",
    "rt-amd64",
    "arm64",
    "cloud-arm64",
    "rt-arm64",
    "686",
    "686-pae",
    "rt-686-pae",
    "armmp",
    "armmp-lpae",
    "rt-armmp",
    "marvell",
    "rpi",
    "powerpc64le",
    "powerpc64le-64k",
    "s390x",
    "loong64",
    "riscv64",
    "mips64r2el",
    "mips32r2el",
    "octeon",
    "4kc-malta",
    "5kc-malta",
    "loongson-3",
];

/// Classifies `release` running on `os`.
pub fn classify(os: &OsInfo, release: &str) -> KernelClass {
    let unknown = |flavor| KernelClass::not_distro_built(Probe::Unknown, flavor);
    let Some(distro) = os.distro else {
        return unknown("unknown");
    };
    if os.support() != Support::Supported {
        return unknown("unsupported");
    }
    match distro {
        Distro::Debian | Distro::Ubuntu => classify_deb(distro, release),
        _ => classify_rpm(os, distro, release),
    }
}

fn classify_rpm(os: &OsInfo, distro: Distro, release: &str) -> KernelClass {
    let parsed = parse_rpm_release(release);
    let kver = upstream_version(release);
    let major = os.major.unwrap_or(0);
    let is_uek = parsed.as_ref().is_some_and(|p| p.dist.contains("uek"));
    let uek = is_uek.then(|| uek_generation(kver)).flatten();

    let probe = if distro == Distro::Amazon {
        // Amazon Linux 2 takes the eBPF path from kernel 4.19 on (5.4, 5.10,
        // 5.15 from the extras topics); 4.14 and the AMI stay on the module.
        if kver >= (4, 19, 0) {
            Probe::Ebpf
        } else {
            Probe::Kmod
        }
    } else if is_uek {
        // UEK 6 (5.4) and newer: eBPF on OL7, OL8 and OL9; UEK 5 and older
        // take the kernel-module path.
        if kver >= (5, 4, 0) {
            Probe::Ebpf
        } else {
            Probe::Kmod
        }
    } else if major <= 7 {
        // RHEL/CentOS 6 and 7, Oracle Linux 7 RHCK.
        Probe::Kmod
    } else {
        Probe::Ebpf
    };

    let Some(p) = parsed else {
        return KernelClass::not_distro_built(probe, "custom");
    };
    let flavor = if let Some(g) = uek {
        format!("uek{g}")
    } else if is_uek {
        "uek".to_string()
    } else if distro == Distro::Amazon {
        "amazon".to_string()
    } else {
        "rhck".to_string()
    };
    // Amazon Linux 2023 names every kernel series but its default 6.1 in a
    // namespace of its own: kernel6.12, kernel6.12-devel, ...
    let al2023_series = (p.dist.starts_with("amzn2023") && (kver.0, kver.1) != (6, 1))
        .then(|| format!("kernel{}.{}", kver.0, kver.1));
    let base = match (&al2023_series, is_uek) {
        (Some(ns), _) => ns.as_str(),
        (None, true) => "kernel-uek",
        (None, false) => "kernel",
    };
    let mut series_repos = Vec::new();
    if let (Some(g), Some(major)) = (uek, os.major) {
        series_repos.push(format!("ol{major}_UEKR{g}"));
    }
    // Amazon Linux 2's newer kernels come from the extras topics.
    if p.dist.starts_with("amzn2") && !p.dist.starts_with("amzn2023") && kver >= (5, 4, 0) {
        series_repos.push(format!("amzn2extra-kernel-{}.{}", kver.0, kver.1));
    }
    let name = match p.variant {
        None => format!("{base}-devel"),
        Some(Variant::Debug) => format!("{base}-debug-devel"),
        Some(Variant::Rt) => "kernel-rt-devel".to_string(),
        Some(Variant::RtDebug) => "kernel-rt-debug-devel".to_string(),
        Some(Variant::K64) => "kernel-64k-devel".to_string(),
        Some(Variant::K64Debug) => "kernel-64k-debug-devel".to_string(),
    };
    KernelClass {
        header_package: (probe == Probe::Ebpf).then(|| format!("{name}-{}", p.nvra)),
        probe,
        flavor,
        uek,
        arch: Some(p.arch),
        variant: p.variant,
        distro_built: true,
        series_repos,
    }
}

/// The architecture a kernel release names, as RPM spells it (`x86_64`,
/// `aarch64`, …): `….el9_3.aarch64+64k`, `….amzn2023.x86_64`, Debian's
/// `6.1.0-18-arm64` and `…-cloud-amd64`, Ubuntu's `…-generic-64k`. None
/// when it names none (Ubuntu's `-generic`, most self-built kernels).
pub fn release_arch(release: &str) -> Option<String> {
    let base = release.split_once('+').map_or(release, |(b, _)| b);
    let base = base.strip_suffix(".debug").unwrap_or(base);
    if let Some((_, arch)) = base.rsplit_once('.') {
        if RPM_ARCHES.contains(&arch) {
            return Some(arch.to_string());
        }
    }
    parse_debian_release(release)
        .and_then(|(_, arch, _)| arch)
        .or_else(|| parse_ubuntu_release(release).and_then(|(_, arch, _)| arch))
}

/// The kernel's own name for an architecture given as RPM spells it: the
/// `arch/<name>/` of its header trees, the `__TARGET_ARCH_<name>` of a BPF
/// compile.
pub fn kbuild_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86_64" | "i686" | "x86" => "x86",
        "aarch64" => "arm64",
        "arm" | "armhf" => "arm",
        "ppc64le" | "powerpc64" | "powerpc" => "powerpc",
        "s390x" => "s390",
        "riscv64" => "riscv",
        "loongarch64" => "loongarch",
        _ => return None,
    })
}

/// The parts of an RPM-family kernel release.
#[derive(Debug, PartialEq, Eq)]
struct RpmRelease {
    /// `version-release.arch` without the variant suffix: what follows the
    /// package name in the header package's NEVRA.
    nvra: String,
    arch: String,
    /// The distribution tag: `el8_9`, `el7uek`, `amzn2`, `amzn2023`.
    dist: String,
    variant: Option<Variant>,
}

fn parse_rpm_release(release: &str) -> Option<RpmRelease> {
    // Variant suffixes: `+debug`, `+rt`, `+64k`, `+rt-debug`, `+64k-debug`
    // (EL8+); `.debug` (EL6/EL7).
    let (mut base, suffix) = match release.split_once('+') {
        Some((b, s)) => (b, Some(s)),
        None => (release, None),
    };
    let mut variant = match suffix {
        None => None,
        Some("debug") => Some(Variant::Debug),
        Some("rt") => Some(Variant::Rt),
        Some("rt-debug") => Some(Variant::RtDebug),
        Some("64k") => Some(Variant::K64),
        Some("64k-debug") => Some(Variant::K64Debug),
        Some(_) => return None,
    };
    if variant.is_none() {
        if let Some(b) = base.strip_suffix(".debug") {
            base = b;
            variant = Some(Variant::Debug);
        }
    }
    let (version, rel_arch) = base.split_once('-')?;
    if !version
        .split('.')
        .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let (rel, arch) = rel_arch.rsplit_once('.')?;
    if !RPM_ARCHES.contains(&arch) {
        return None;
    }
    let dist = rel.split('.').find(|s| is_dist_tag(s))?.to_string();
    // RHEL 8 real-time kernels carry `.rt<N>.` in the release itself.
    if rel
        .split('.')
        .any(|s| s.starts_with("rt") && s[2..].bytes().all(|b| b.is_ascii_digit()) && s.len() > 2)
    {
        variant = match variant {
            None => Some(Variant::Rt),
            Some(Variant::Debug) => Some(Variant::RtDebug),
            v => v,
        };
    }
    Some(RpmRelease {
        nvra: base.to_string(),
        arch: arch.to_string(),
        dist,
        variant,
    })
}

fn is_dist_tag(s: &str) -> bool {
    let digits_from = |rest: &str| rest.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if let Some(rest) = s.strip_prefix("el") {
        // el7, el8_9, el9_3, el7uek, el8uek
        return digits_from(rest);
    }
    if let Some(rest) = s.strip_prefix("amzn") {
        return digits_from(rest);
    }
    false
}

/// The UEK generation of an upstream kernel version.
fn uek_generation(v: (u32, u32, u32)) -> Option<u32> {
    Some(match (v.0, v.1) {
        (2, 6) if v.2 == 32 => 1,
        (2, 6) if v.2 == 39 => 2,
        (3, 8) => 3,
        (4, 1) => 4,
        (4, 14) => 5,
        (5, 4) => 6,
        (5, 15) => 7,
        (6, 12) => 8,
        _ => return None,
    })
}

fn classify_deb(distro: Distro, release: &str) -> KernelClass {
    let parsed = match distro {
        Distro::Debian => parse_debian_release(release),
        _ => parse_ubuntu_release(release),
    };
    let prefix = if distro == Distro::Debian {
        "debian"
    } else {
        "ubuntu"
    };
    match parsed {
        Some((flavour, arch, variant)) => KernelClass {
            probe: Probe::Ebpf,
            flavor: format!("{prefix}-{flavour}"),
            uek: None,
            arch,
            variant,
            header_package: Some(format!("linux-headers-{release}")),
            distro_built: true,
            series_repos: Vec::new(),
        },
        None => KernelClass::not_distro_built(Probe::Ebpf, "custom"),
    }
}

type DebParse = (String, Option<String>, Option<Variant>);

/// `6.1.0-18-amd64`, `6.5.0-0.deb12.4-cloud-amd64` (backports),
/// `6.12.33+deb13-amd64` (trixie).
fn parse_debian_release(release: &str) -> Option<DebParse> {
    let flavour = DEBIAN_FLAVOURS
        .iter()
        .filter(|f| {
            release
                .strip_suffix(**f)
                .is_some_and(|head| head.ends_with('-'))
        })
        .max_by_key(|f| f.len())?;
    let head = &release[..release.len() - flavour.len() - 1];
    let (version, abi) = match head.split_once('-') {
        Some((v, abi)) => (v, Some(abi)),
        None => (head, None),
    };
    let version_ok = match version.split_once("+deb") {
        Some((v, n)) => is_dotted_number(v) && is_dotted_number(n),
        None => is_dotted_number(version),
    };
    let abi_ok = match abi {
        // plain ABI `18`, or backports `0.deb12.4`
        Some(a) => {
            is_dotted_number(a)
                || a.split_once(".deb")
                    .is_some_and(|(z, rest)| z == "0" && is_dotted_number(rest))
        }
        // trixie: the ABI moved into `+debNN`
        None => version.contains("+deb"),
    };
    if !version_ok || !abi_ok {
        return None;
    }
    let arch = deb_arch(flavour);
    let variant = flavour.starts_with("rt-").then_some(Variant::Rt);
    Some((flavour.to_string(), arch, variant))
}

/// `5.15.0-91-generic`, `6.5.0-1014-aws`, `5.15.0-1052-azure`.
fn parse_ubuntu_release(release: &str) -> Option<DebParse> {
    let mut parts = release.splitn(3, '-');
    let version = parts.next()?;
    let abi = parts.next()?;
    let flavour = parts.next()?;
    if !is_dotted_number(version) || !abi.bytes().all(|b| b.is_ascii_digit()) || abi.is_empty() {
        return None;
    }
    if flavour.is_empty()
        || !flavour.as_bytes()[0].is_ascii_lowercase()
        || !flavour
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return None;
    }
    let arch = if flavour.ends_with("-64k") || flavour == "raspi" {
        Some("aarch64".to_string())
    } else if flavour.ends_with("-lpae") {
        Some("armhf".to_string())
    } else {
        None
    };
    let variant = if flavour.starts_with("realtime") {
        Some(Variant::Rt)
    } else if flavour.ends_with("-64k") {
        Some(Variant::K64)
    } else {
        None
    };
    Some((flavour.to_string(), arch, variant))
}

fn deb_arch(flavour: &str) -> Option<String> {
    let last = flavour.rsplit('-').next()?;
    Some(
        match last {
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            "686" | "pae" => "i686",
            "powerpc64le" | "64k" => "ppc64le",
            "s390x" => "s390x",
            "armmp" | "lpae" | "rpi" | "marvell" => "arm",
            "loong64" => "loongarch64",
            "riscv64" => "riscv64",
            _ => return None,
        }
        .to_string(),
    )
}

fn is_dotted_number(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The header package of a kernel, derived from the package that owns its
/// files (RPM: the owner's name and its `version-release.arch`). The
/// owner's name carries what the release string cannot: a namespace
/// (`kernel6.12`), a flavour (`kernel-rt-core`, `kernel-uek-core`), a
/// third-party build (`kernel-ml-core`). `None` when the name is not a
/// kernel package's.
pub fn rpm_header_from_owner(name: &str, vra: &str) -> Option<String> {
    const SPLITS: &[&str] = &["-modules-core", "-modules-extra", "-modules", "-core"];
    let base = SPLITS
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    let is_kernel = base == "kernel"
        || base.starts_with("kernel-")
        || base
            .strip_prefix("kernel")
            .is_some_and(|ns| ns.starts_with(|c: char| c.is_ascii_digit()));
    if !is_kernel || base.ends_with("-devel") || base.ends_with("-headers") || vra.is_empty() {
        return None;
    }
    Some(format!("{base}-devel-{vra}"))
}

/// The header package of a Debian/Ubuntu kernel, derived from the package
/// that owns its files: `linux-image-K`, `linux-image-unsigned-K`,
/// `linux-image-K-unsigned`, `linux-modules-K` → `linux-headers-K`.
pub fn deb_header_from_owner(name: &str) -> Option<String> {
    let rest = name
        .strip_prefix("linux-image-unsigned-")
        .or_else(|| name.strip_prefix("linux-image-uc-"))
        .or_else(|| name.strip_prefix("linux-image-"))
        .or_else(|| name.strip_prefix("linux-modules-"))?;
    let release = rest
        .strip_suffix("-unsigned")
        .or_else(|| rest.strip_suffix("-dbg"))
        .unwrap_or(rest);
    // A release starts with its version: meta packages (linux-image-amd64,
    // linux-image-generic) own no kernel's files, and are not kernels.
    release
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| format!("linux-headers-{release}"))
}

/// The upstream version at the start of a release (`5.15.0-…` -> (5, 15, 0)).
pub fn upstream_version(release: &str) -> (u32, u32, u32) {
    let head = release.split(['-', '+']).next().unwrap_or("");
    let mut nums = head.split('.').map(|p| {
        let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<u32>().unwrap_or(0)
    });
    (
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
    )
}

/// The highest SELinux policy version (`policy.N`) a kernel can load, as a
/// lower bound read from its release: the mainline release that first
/// loaded each version (29 in 3.14, 30 in 4.3, 31 in 4.13, 32 in 5.5, 33 in
/// 5.7, 34 in 6.13). Vendors backport: Enterprise Linux 7's 3.10 kernels
/// load 31 (RHEL 7's own policy is 30 and its libsepol stops there). A live
/// kernel says its own in `/sys/fs/selinux/policyvers`; this is for kernels
/// that are not running (an image's, the next boot's).
pub fn selinux_policy_max(release: &str) -> u32 {
    let v = upstream_version(release);
    let (maj, min) = (v.0, v.1);
    let el7 = release.contains(".el7") && !release.contains("uek");
    match (maj, min) {
        _ if (maj, min) >= (6, 13) => 34,
        _ if (maj, min) >= (5, 7) => 33,
        _ if (maj, min) >= (5, 5) => 32,
        _ if (maj, min) >= (4, 13) || el7 => 31,
        _ if (maj, min) >= (4, 3) => 30,
        _ if (maj, min) >= (3, 14) => 29,
        _ => 28,
    }
}

/// Orders kernel releases the way the package managers do (rpmvercmp: the
/// same order as dpkg's for every release string the distributions use).
pub fn compare_releases(a: &str, b: &str) -> Ordering {
    rpmvercmp(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_names_the_architecture_when_it_can() {
        for (release, arch) in [
            ("5.14.0-362.8.1.el9_3.aarch64+64k", Some("aarch64")),
            ("5.14.0-362.8.1.el9_3.x86_64+debug", Some("x86_64")),
            ("3.10.0-1160.el7.x86_64.debug", Some("x86_64")),
            ("5.15.0-200.131.27.el8uek.aarch64", Some("aarch64")),
            ("6.1.72-96.166.amzn2023.aarch64", Some("aarch64")),
            ("6.1.0-18-amd64", Some("x86_64")),
            ("6.1.0-18-cloud-arm64", Some("aarch64")),
            ("6.12.33+deb13-arm64", Some("aarch64")),
            ("6.8.0-31-generic-64k", Some("aarch64")),
            ("5.15.0-91-generic", None),
            ("6.6.6-custom", None),
        ] {
            assert_eq!(release_arch(release).as_deref(), arch, "{release}");
        }
        assert_eq!(kbuild_arch("aarch64"), Some("arm64"));
        assert_eq!(kbuild_arch("x86_64"), Some("x86"));
        assert_eq!(kbuild_arch("ppc64le"), Some("powerpc"));
        assert_eq!(kbuild_arch("vax"), None);
    }

    #[test]
    fn selinux_policy_versions_follow_the_release() {
        for (release, want) in [
            ("3.10.0-1160.el7.x86_64", 31),
            ("3.10.0-1062.el7.x86_64", 31),
            ("3.13.0-170-generic", 28),
            ("4.1.12-124.48.6.el7uek.x86_64", 29),
            ("4.14.355-275.582.amzn2.x86_64", 31),
            ("4.14.35-2047.543.3.el7uek.x86_64", 31),
            ("4.18.0-513.5.1.el8_9.x86_64", 31),
            ("5.4.17-2136.329.3.1.el8uek.x86_64", 31),
            ("5.4.0-150-generic", 31),
            ("5.6.19-300.fc32.x86_64", 32),
            ("5.10.215-203.850.amzn2.x86_64", 33),
            ("5.14.0-362.8.1.el9_3.x86_64", 33),
            ("5.15.0-200.131.27.el8uek.x86_64", 33),
            ("6.1.0-18-amd64", 33),
            ("6.13.2-200.fc41.x86_64", 34),
            ("6.14.0-1-arm64", 34),
            ("", 28),
        ] {
            assert_eq!(selinux_policy_max(release), want, "{release}");
        }
    }

    #[test]
    fn rpm_release_parts() {
        let p = parse_rpm_release("4.18.0-513.5.1.el8_9.x86_64+debug").unwrap();
        assert_eq!(p.nvra, "4.18.0-513.5.1.el8_9.x86_64");
        assert_eq!(p.variant, Some(Variant::Debug));
        assert_eq!(p.dist, "el8_9");
        let p = parse_rpm_release("3.10.0-1160.119.1.el7.x86_64.debug").unwrap();
        assert_eq!(p.nvra, "3.10.0-1160.119.1.el7.x86_64");
        assert_eq!(p.variant, Some(Variant::Debug));
        let p = parse_rpm_release("4.18.0-513.5.1.rt7.307.el8_9.x86_64").unwrap();
        assert_eq!(p.variant, Some(Variant::Rt));
        assert!(parse_rpm_release("6.18.44-fc-v669").is_none());
        assert!(parse_rpm_release("6.6.8-1.el8.elrepo.x86_64+weird").is_none());
        assert!(parse_rpm_release("5.10.0-27-amd64").is_none());
    }

    fn os(os_release: &str) -> OsInfo {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/os-release"), os_release).unwrap();
        OsInfo::detect(&crate::Root::new(dir.path()).unwrap()).unwrap()
    }

    #[test]
    fn amazon_linux_2023_names_every_series_but_6_1_in_its_own_namespace() {
        let al2023 = os("NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2023\"\n");
        for (release, want) in [
            (
                "6.1.72-96.166.amzn2023.x86_64",
                "kernel-devel-6.1.72-96.166.amzn2023.x86_64",
            ),
            (
                "6.1.72-96.166.amzn2023.aarch64",
                "kernel-devel-6.1.72-96.166.amzn2023.aarch64",
            ),
            (
                "6.12.37-61.105.amzn2023.x86_64",
                "kernel6.12-devel-6.12.37-61.105.amzn2023.x86_64",
            ),
            (
                "6.12.37-61.105.amzn2023.aarch64",
                "kernel6.12-devel-6.12.37-61.105.amzn2023.aarch64",
            ),
            (
                "6.18.2-7.20.amzn2023.x86_64",
                "kernel6.18-devel-6.18.2-7.20.amzn2023.x86_64",
            ),
            (
                "7.1.0-1.1.amzn2023.aarch64",
                "kernel7.1-devel-7.1.0-1.1.amzn2023.aarch64",
            ),
        ] {
            let c = classify(&al2023, release);
            assert_eq!(c.probe, Probe::Ebpf, "{release}");
            assert_eq!(c.header_package.as_deref(), Some(want), "{release}");
            assert!(c.series_repos.is_empty(), "{release}");
        }
        // Amazon Linux 2's extras kernels keep the plain names, from a topic
        // repository of their series.
        let al2 = os("NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2\"\n");
        let c = classify(&al2, "5.10.205-195.807.amzn2.x86_64");
        assert_eq!(
            c.header_package.as_deref(),
            Some("kernel-devel-5.10.205-195.807.amzn2.x86_64")
        );
        assert_eq!(c.series_repos, ["amzn2extra-kernel-5.10"]);
        assert_eq!(
            classify(&al2, "5.15.160-104.158.amzn2.aarch64").series_repos,
            ["amzn2extra-kernel-5.15"]
        );
        assert!(classify(&al2, "4.14.336-257.562.amzn2.x86_64")
            .series_repos
            .is_empty());
        let ol8 = os("NAME=\"Oracle Linux Server\"\nID=\"ol\"\nVERSION_ID=\"8.9\"\n");
        assert_eq!(
            classify(&ol8, "5.15.0-200.131.27.el8uek.x86_64").series_repos,
            ["ol8_UEKR7"]
        );
        assert!(classify(&ol8, "4.18.0-513.5.1.el8_9.x86_64")
            .series_repos
            .is_empty());
    }

    #[test]
    fn header_names_from_the_owning_package() {
        let vra = "6.12.37-61.105.amzn2023.x86_64";
        for (owner, want) in [
            ("kernel-core", "kernel-devel"),
            ("kernel", "kernel-devel"),
            ("kernel-uek-core", "kernel-uek-devel"),
            ("kernel-uek", "kernel-uek-devel"),
            ("kernel6.12", "kernel6.12-devel"),
            ("kernel6.12-core", "kernel6.12-devel"),
            ("kernel6.18-modules", "kernel6.18-devel"),
            ("kernel-rt-core", "kernel-rt-devel"),
            ("kernel-debug-core", "kernel-debug-devel"),
            ("kernel-64k-core", "kernel-64k-devel"),
            ("kernel-rt-debug-modules-core", "kernel-rt-debug-devel"),
            ("kernel-ml-core", "kernel-ml-devel"),
            ("kernel-lt", "kernel-lt-devel"),
        ] {
            assert_eq!(
                rpm_header_from_owner(owner, vra).as_deref(),
                Some(format!("{want}-{vra}").as_str()),
                "{owner}"
            );
        }
        for not in [
            "kernel-devel",
            "kernel-headers",
            "kernelshark",
            "linux-firmware",
            "glibc",
        ] {
            assert_eq!(rpm_header_from_owner(not, vra), None, "{not}");
        }
        assert_eq!(rpm_header_from_owner("kernel-core", ""), None);
        for (owner, want) in [
            ("linux-image-6.1.0-18-amd64", "linux-headers-6.1.0-18-amd64"),
            (
                "linux-image-6.1.0-18-amd64-unsigned",
                "linux-headers-6.1.0-18-amd64",
            ),
            (
                "linux-image-unsigned-6.8.0-1012-aws",
                "linux-headers-6.8.0-1012-aws",
            ),
            (
                "linux-modules-5.15.0-91-generic",
                "linux-headers-5.15.0-91-generic",
            ),
            (
                "linux-image-6.12.33+deb13-arm64",
                "linux-headers-6.12.33+deb13-arm64",
            ),
        ] {
            assert_eq!(
                deb_header_from_owner(owner).as_deref(),
                Some(want),
                "{owner}"
            );
        }
        for not in [
            "linux-image-amd64",
            "linux-image-generic",
            "linux-headers-6.1.0-18-amd64",
            "libc6",
        ] {
            assert_eq!(deb_header_from_owner(not), None, "{not}");
        }
    }

    #[test]
    fn upstream_versions() {
        assert_eq!(
            upstream_version("5.15.0-200.131.27.el8uek.x86_64"),
            (5, 15, 0)
        );
        assert_eq!(upstream_version("6.12.33+deb13-amd64"), (6, 12, 33));
        assert_eq!(upstream_version("4.19"), (4, 19, 0));
        assert_eq!(upstream_version("garbage"), (0, 0, 0));
    }

    #[test]
    fn debian_and_ubuntu_release_shapes() {
        assert_eq!(
            parse_debian_release("6.1.0-18-cloud-amd64").unwrap().0,
            "cloud-amd64"
        );
        assert_eq!(
            parse_debian_release("6.5.0-0.deb12.4-amd64").unwrap().0,
            "amd64"
        );
        assert_eq!(
            parse_debian_release("6.12.33+deb13-arm64")
                .unwrap()
                .1
                .as_deref(),
            Some("aarch64")
        );
        assert_eq!(
            parse_debian_release("6.1.0-18-rt-amd64").unwrap().2,
            Some(Variant::Rt)
        );
        assert!(parse_debian_release("6.18.44-fc-v669").is_none());
        assert!(parse_debian_release("5.15.0-91-generic").is_none());
        assert!(parse_debian_release("6.1.0-amd64").is_none());
        assert_eq!(
            parse_ubuntu_release("5.15.0-1052-azure").unwrap().0,
            "azure"
        );
        assert_eq!(
            parse_ubuntu_release("6.8.0-31-generic-64k").unwrap().2,
            Some(Variant::K64)
        );
        assert!(parse_ubuntu_release("6.18.44-fc-v669").is_none());
        assert!(parse_ubuntu_release("6.1.0-18").is_none());
    }

    #[test]
    fn release_order() {
        assert_eq!(
            compare_releases(
                "4.18.0-513.5.1.el8_9.x86_64",
                "4.18.0-477.27.1.el8_8.x86_64"
            ),
            Ordering::Greater
        );
        assert_eq!(
            compare_releases("6.1.0-9-amd64", "6.1.0-18-amd64"),
            Ordering::Less
        );
    }
}
