//! What each distribution publishes for the installer to fall back on when
//! the root's repositories lack a kernel's header package: its vendor
//! archives (vaults, CDNs, suites) and the keys they are signed with. Data
//! about distributions, beside the OS detection and the release rules,
//! so that the orchestration above never branches on the distribution.

use crate::os::{Distro, OsInfo};

/// What a URL template may use.
pub struct Vars<'a> {
    pub arch: &'a str,
    pub major: u32,
    pub minor: Option<u32>,
    pub uek: Option<u32>,
    pub kver: (u32, u32, u32),
}

/// The minor release a kernel was built for, from its dist tag
/// (`…el8_5.x86_64` -> 5), else the OS's.
pub fn kernel_minor(release: &str, os: &OsInfo) -> Option<u32> {
    release
        .split('.')
        .find_map(|seg| {
            seg.strip_prefix("el")
                .and_then(|r| r.split_once('_'))
                .map(|(_, m)| m)
        })
        .and_then(|m| {
            m.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .ok()
        })
        .or(os.minor)
}

/// CentOS 8's vault directories by minor release.
const CENTOS8_VAULT: &[(u32, &str)] = &[
    (0, "8.0.1905"),
    (1, "8.1.1911"),
    (2, "8.2.2004"),
    (3, "8.3.2011"),
    (4, "8.4.2105"),
    (5, "8.5.2111"),
];

/// The built-in table: archive URL templates per distribution, version and
/// kernel flavour (field-notes §7), with the suite for apt archives.
pub fn archives(os: &OsInfo, v: &Vars<'_>) -> Vec<(String, Option<String>)> {
    let Some(distro) = os.distro else {
        return Vec::new();
    };
    let mut t: Vec<String> = Vec::new();
    let code = os.codename.clone().unwrap_or_default();
    let deb = |url: &str, suites: &[String]| -> Vec<(String, Option<String>)> {
        suites
            .iter()
            .map(|s| (url.to_string(), Some(s.clone())))
            .collect()
    };
    match distro {
        Distro::CentOs if v.major == 8 => {
            if let Some(dir) = v
                .minor
                .and_then(|m| CENTOS8_VAULT.iter().find(|(n, _)| *n == m))
            {
                for repo in ["BaseOS", "AppStream"] {
                    t.push(format!(
                        "https://vault.centos.org/{}/{repo}/{{arch}}/os/",
                        dir.1
                    ));
                }
            }
        }
        Distro::Rocky => {
            for repo in ["BaseOS", "AppStream"] {
                t.push(format!(
                    "https://dl.rockylinux.org/vault/rocky/{{major}}.{{minor}}/{repo}/{{arch}}/os/"
                ));
                t.push(format!(
                    "https://dl.rockylinux.org/pub/rocky/{{major}}/{repo}/{{arch}}/os/"
                ));
            }
        }
        Distro::Alma => {
            for repo in ["BaseOS", "AppStream"] {
                t.push(format!(
                    "https://vault.almalinux.org/{{major}}.{{minor}}/{repo}/{{arch}}/os/"
                ));
                t.push(format!(
                    "https://repo.almalinux.org/almalinux/{{major}}/{repo}/{{arch}}/os/"
                ));
            }
        }
        Distro::Oracle if v.uek.is_some() => {
            t.push("https://yum.oracle.com/repo/OracleLinux/OL{major}/UEKR{uek}/{arch}/".into());
        }
        Distro::Oracle => {
            t.push(
                "https://yum.oracle.com/repo/OracleLinux/OL{major}/baseos/latest/{arch}/".into(),
            );
            t.push("https://yum.oracle.com/repo/OracleLinux/OL{major}/appstream/{arch}/".into());
        }
        Distro::Amazon if v.major == 2 => {
            if v.kver >= (5, 4, 0) {
                t.push("https://cdn.amazonlinux.com/2/extras/kernel-{kmajmin}/latest/{arch}/mirror.list".into());
            }
            t.push("https://cdn.amazonlinux.com/2/core/latest/{arch}/mirror.list".into());
        }
        Distro::Amazon => {
            t.push(
                "https://cdn.amazonlinux.com/al2023/core/mirrors/latest/{arch}/mirror.list".into(),
            );
        }
        // Debian: the main archive and security; these serve the current
        // builds (useful when the root's sources are stale or incomplete).
        // Older builds: point archives.conf at a snapshot.debian.org date.
        Distro::Debian if !code.is_empty() => {
            let mut out = deb(
                "https://deb.debian.org/debian/",
                &[code.clone(), format!("{code}-updates")],
            );
            out.extend(deb(
                "https://security.debian.org/debian-security/",
                &[format!("{code}-security")],
            ));
            return out;
        }
        Distro::Ubuntu if !code.is_empty() => {
            let base = if v.arch == "x86_64" || v.arch == "i686" {
                "https://archive.ubuntu.com/ubuntu/"
            } else {
                "https://ports.ubuntu.com/ubuntu-ports/"
            };
            return deb(
                base,
                &[
                    code.clone(),
                    format!("{code}-updates"),
                    format!("{code}-security"),
                ],
            );
        }
        // RHEL has no public archive: its CDN needs a subscription.
        _ => {}
    }
    t.into_iter().map(|u| (u, None)).collect()
}

/// The signing keys of a distribution's own archives, as the distribution
/// installs them (paths inside the root; a trailing `*` matches the rest of
/// a name). Only these are trusted for the built-in archives, and for
/// archives.conf entries that name no `key=`.
pub fn archive_keys(os: &OsInfo) -> Vec<String> {
    let keys: &[&str] = match os.distro {
        Some(Distro::Rhel) => &["/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release"],
        Some(Distro::CentOs) => &["/etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial"],
        Some(Distro::Rocky) => &[
            "/etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-*",
            "/etc/pki/rpm-gpg/RPM-GPG-KEY-rockyofficial",
        ],
        Some(Distro::Alma) => &["/etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux*"],
        Some(Distro::Oracle) => &["/etc/pki/rpm-gpg/RPM-GPG-KEY-oracle"],
        Some(Distro::Amazon) => &["/etc/pki/rpm-gpg/RPM-GPG-KEY-amazon-linux-2*"],
        Some(Distro::Debian) => &[
            "/usr/share/keyrings/debian-archive-keyring.gpg",
            "/etc/apt/trusted.gpg.d/debian-archive-*",
        ],
        Some(Distro::Ubuntu) => &[
            "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
            "/etc/apt/trusted.gpg.d/ubuntu-keyring-*",
        ],
        None => &[],
    };
    keys.iter().map(|k| k.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_minor_comes_from_the_dist_tag_else_the_os() {
        let os = OsInfo {
            id: "centos".into(),
            version_id: "8".into(),
            pretty_name: String::new(),
            id_like: vec![],
            source: String::new(),
            distro: Some(Distro::CentOs),
            major: Some(8),
            minor: None,
            codename: None,
        };
        assert_eq!(kernel_minor("4.18.0-348.7.1.el8_5.x86_64", &os), Some(5));
        assert_eq!(kernel_minor("4.18.0-80.el8.x86_64", &os), None);
        let os = OsInfo {
            minor: Some(9),
            ..os
        };
        assert_eq!(kernel_minor("4.18.0-80.el8.x86_64", &os), Some(9));
    }

    #[test]
    fn every_distribution_but_rhel_has_an_archive_and_each_has_keys() {
        for (distro, id) in [
            (Distro::CentOs, "centos"),
            (Distro::Rocky, "rocky"),
            (Distro::Alma, "almalinux"),
            (Distro::Oracle, "ol"),
            (Distro::Amazon, "amzn"),
            (Distro::Debian, "debian"),
            (Distro::Ubuntu, "ubuntu"),
            (Distro::Rhel, "rhel"),
        ] {
            let os = OsInfo {
                id: id.into(),
                version_id: "8".into(),
                pretty_name: String::new(),
                id_like: vec![],
                source: String::new(),
                distro: Some(distro),
                major: Some(8),
                minor: Some(4),
                codename: Some("bookworm".into()),
            };
            let v = Vars {
                arch: "x86_64",
                major: 8,
                minor: Some(4),
                uek: None,
                kver: (4, 18, 0),
            };
            assert_eq!(archives(&os, &v).is_empty(), distro == Distro::Rhel, "{id}");
            assert!(!archive_keys(&os).is_empty(), "{id}");
        }
    }
}
