//! The policy a root's kernels will load, and how its own SELinux userspace
//! keeps its store.
//!
//! semodule writes the binary policy at *its* libsepol's highest version
//! (Debian 12's 3.4: `policy.33`) unless `semanage.conf` says otherwise, and
//! never deletes another version's file. At boot the loader takes the
//! highest `policy.N` it may: libselinux 2.x (RHEL/OL 7 and 8, Amazon Linux
//! 2) the highest up to its libsepol's maximum, downgraded in memory for
//! the kernel; libselinux 3.x the highest up to the kernel's own maximum. So
//! the version that counts is the *target's*: what its libsepol writes,
//! capped (3.x only) by its kernels. This module finds it from what the
//! root holds, never from the build host:
//!
//! 1. `policy-version = N` in the root's `semanage.conf` (the target's own
//!    libsemanage honours it too);
//! 2. the target's libsepol: `libsepol.so.1` is 2.x — 30 with an EL7-layout
//!    store (libsemanage 2.5/2.6), 31 with `var/lib/selinux` (2.7-2.9);
//!    Amazon Linux 2 patched its 2.5 to 31 and ships a `policy.31`, so an
//!    existing `policy.31` beside an EL7-layout store means 31. `libsepol.so.2`
//!    is 3.x: the highest `policy.32`-`policy.34` the root has, else 33;
//! 3. without a libsepol, the highest `policy.N` the root has, not capped by
//!    its kernels (nothing says which loader it has).

use connector_host::Root;
use serde::Serialize;

/// Where the store lives, as the target's libsemanage keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreLayout {
    /// `var/lib/selinux/TYPE` (libsemanage 2.7 and later).
    VarLib,
    /// `etc/selinux/TYPE/active` (libsemanage 2.5/2.6: RHEL/OL 7, Amazon
    /// Linux 2).
    EtcSelinux,
}

impl StoreLayout {
    /// `store-root` in semanage.conf terms.
    pub fn store_root(self) -> &'static str {
        match self {
            StoreLayout::VarLib => "/var/lib/selinux",
            StoreLayout::EtcSelinux => "/etc/selinux",
        }
    }
}

/// The policy version the target's userspace writes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Userspace {
    /// Its libsepol's `policy.N` (or semanage.conf's `policy-version`).
    pub version: u32,
    /// How that was found (for people).
    pub from: String,
    /// The kernels do not cap `version`: libselinux 2.x loads the highest
    /// file up to it whatever the kernel and downgrades it in memory (and a
    /// root without a libsepol keeps the version it has).
    pub downgrades: bool,
    /// Its libselinux is 2.x: a `file_contexts.bin` compiled by the build
    /// host's `sefcontext_compile` (pcre2 10.42, format 5) is not one it
    /// can read, and one it compiled itself no longer matches the text.
    pub old_libselinux: bool,
}

/// The highest version libsepol 3.x can have written, and the lowest.
const V3: std::ops::RangeInclusive<u32> = 32..=34;

/// Where the libraries of the distributions live.
const LIB_DIRS: &[&str] = &[
    "/usr/lib64",
    "/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/lib",
];

/// `policy-version` of the root's `/etc/selinux/semanage.conf`.
pub fn conf_policy_version(conf: &str) -> Option<u32> {
    conf_entries(conf)
        .into_iter()
        .rev()
        .find(|(k, _)| k == "policy-version")
        .and_then(|(_, v)| v.parse().ok())
}

/// `key = value` lines before the first `[section]` (the sections name
/// external programs).
fn conf_entries(conf: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in conf.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// The `policy.N` versions in `ROOT/etc/selinux/TYPE/policy`, ascending.
pub fn present_versions(root: &Root, policy_type: &str) -> Vec<u32> {
    let mut v: Vec<u32> = root
        .read_dir_names(format!("/etc/selinux/{policy_type}/policy"))
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.to_str()?.strip_prefix("policy.")?.parse().ok())
        .filter(|n| crate::policydb::VERSIONS.contains(n))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The version the root's own SELinux userspace writes (module docs).
pub fn userspace(
    root: &Root,
    layout: StoreLayout,
    conf: Option<&str>,
    present: &[u32],
) -> Userspace {
    let has_lib = |soname: &str| {
        LIB_DIRS
            .iter()
            .any(|d| root.exists(format!("{d}/{soname}")).unwrap_or(false))
    };
    let old_lib = has_lib("libsepol.so.1");
    if let Some(v) = conf.and_then(conf_policy_version) {
        return Userspace {
            version: v,
            from: "policy-version in /etc/selinux/semanage.conf".into(),
            downgrades: old_lib,
            old_libselinux: old_lib,
        };
    }
    if old_lib {
        let (version, from) = match layout {
            StoreLayout::EtcSelinux if present.contains(&31) => (
                31,
                "libsepol 2.x with an /etc/selinux store and a policy.31 (Amazon Linux 2)",
            ),
            StoreLayout::EtcSelinux => (30, "libsepol 2.5/2.6 (an /etc/selinux store)"),
            StoreLayout::VarLib => (31, "libsepol 2.7-2.9 (a /var/lib/selinux store)"),
        };
        return Userspace {
            version,
            from: from.into(),
            downgrades: true,
            old_libselinux: true,
        };
    }
    if has_lib("libsepol.so.2") {
        let version = present
            .iter()
            .copied()
            .filter(|v| V3.contains(v))
            .max()
            .unwrap_or(33);
        return Userspace {
            version,
            from: "libsepol 3.x".into(),
            downgrades: false,
            old_libselinux: false,
        };
    }
    // Nothing says which loader the root has: keep what it holds, and
    // let no kernel table lower it.
    match present.last() {
        Some(&v) => Userspace {
            version: v,
            from: format!("no libsepol in the root; its newest file is policy.{v}"),
            downgrades: true,
            old_libselinux: false,
        },
        None => Userspace {
            version: 33,
            from: "no libsepol and no policy file in the root".into(),
            downgrades: true,
            old_libselinux: false,
        },
    }
}

/// The file a loader with limit `limit` takes: the highest present version
/// not above it.
pub fn loaded_version(present: &[u32], limit: u32) -> Option<u32> {
    present.iter().copied().filter(|v| *v <= limit).max()
}

/// The `semanage.conf` semodule reads while it works on an image: the
/// image's own settings that shape the policy (never its `[section]`s,
/// which name programs the build host would run), with the image's store
/// root and the target's policy version.
pub fn tool_conf(image_conf: Option<&str>, layout: StoreLayout, version: u32) -> String {
    // libsemanage's keys that only shape the store and the policy.
    const KEEP: &[&str] = &[
        "module-store",
        "expand-check",
        "file-mode",
        "save-previous",
        "save-linked",
        "disable-genhomedircon",
        "handle-unknown",
        "usepasswd",
        "ignoredirs",
        "bzip-blocksize",
        "bzip-small",
        "remove-hll",
        "optimize-policy",
        "target-platform",
        "multiple-store-roots",
        "ignore-module-cache",
    ];
    let mut s = String::from("# written by connector-installer for one semodule run on an image\n");
    for (k, v) in image_conf.map(conf_entries).unwrap_or_default() {
        if KEEP.contains(&k.as_str()) && !v.contains(['\n', '\r']) {
            s.push_str(&format!("{k} = {v}\n"));
        }
    }
    s.push_str(&format!("store-root = {}\n", layout.store_root()));
    s.push_str(&format!("policy-version = {version}\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_version_and_entries() {
        let conf = "# c\nmodule-store = direct\npolicy-version = 31\n[setfiles]\npath = /tmp/evil\npolicy-version = 99\n[end]\n";
        assert_eq!(conf_policy_version(conf), Some(31));
        assert_eq!(conf_policy_version("expand-check=0\n"), None);
        let t = tool_conf(Some(conf), StoreLayout::EtcSelinux, 30);
        assert!(t.contains("module-store = direct\n"), "{t}");
        assert!(!t.contains("evil") && !t.contains("setfiles"), "{t}");
        assert!(t.contains("store-root = /etc/selinux\n"), "{t}");
        assert!(t.ends_with("policy-version = 30\n"), "{t}");
        assert_eq!(conf_policy_version(&t), Some(30));
    }

    #[test]
    fn the_loader_takes_the_highest_file_up_to_its_limit() {
        assert_eq!(loaded_version(&[31, 33], 31), Some(31));
        assert_eq!(loaded_version(&[31, 33], 33), Some(33));
        assert_eq!(loaded_version(&[33], 31), None);
        assert_eq!(loaded_version(&[], 33), None);
    }

    #[test]
    fn userspace_versions_from_what_the_root_holds() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let lib = |name: &str| {
            std::fs::create_dir_all(dir.path().join("usr/lib64")).unwrap();
            std::fs::write(dir.path().join("usr/lib64").join(name), b"").unwrap();
        };
        let u = userspace(&root, StoreLayout::VarLib, None, &[31, 33]);
        assert_eq!((u.version, u.downgrades), (33, true), "{u:?}");
        lib("libsepol.so.1");
        let u = userspace(&root, StoreLayout::EtcSelinux, None, &[30, 33]);
        assert_eq!((u.version, u.downgrades), (30, true), "{u:?}");
        let u = userspace(&root, StoreLayout::EtcSelinux, None, &[31]);
        assert_eq!(u.version, 31, "{u:?}");
        let u = userspace(&root, StoreLayout::VarLib, None, &[31, 33]);
        assert_eq!(u.version, 31, "{u:?}");
        let u = userspace(&root, StoreLayout::VarLib, Some("policy-version=30\n"), &[]);
        assert_eq!(u.version, 30, "{u:?}");
        std::fs::remove_file(dir.path().join("usr/lib64/libsepol.so.1")).unwrap();
        lib("libsepol.so.2");
        let u = userspace(&root, StoreLayout::VarLib, None, &[]);
        assert_eq!((u.version, u.downgrades), (33, false), "{u:?}");
        let u = userspace(&root, StoreLayout::VarLib, None, &[32]);
        assert_eq!(u.version, 32, "{u:?}");
    }
}
