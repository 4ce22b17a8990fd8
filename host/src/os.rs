//! Which operating system a root holds.
//!
//! Read from `etc/os-release`, falling back to `usr/lib/os-release`, and for
//! systems too old to have one (RHEL/CentOS/Oracle Linux 6, Amazon Linux AMI)
//! from `etc/oracle-release`, `etc/redhat-release`, `etc/system-release`, in
//! that order (Oracle Linux 6 ships a `redhat-release` that says "Red Hat").
//! Only the distributions the connector supports are recognised; anything
//! else is reported as unknown with what it said about itself, never guessed
//! from `ID_LIKE`.

use std::fmt;
use std::io;

use serde::Serialize;

use crate::root::Root;

/// The distributions of the connector's support matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    Rhel,
    CentOs,
    Rocky,
    Alma,
    Oracle,
    Amazon,
    Debian,
    Ubuntu,
}

impl Distro {
    /// The `ID=` of os-release for this distribution.
    pub fn from_id(id: &str) -> Option<Distro> {
        Some(match id {
            "rhel" => Distro::Rhel,
            "centos" => Distro::CentOs,
            "rocky" => Distro::Rocky,
            "almalinux" => Distro::Alma,
            "ol" => Distro::Oracle,
            "amzn" => Distro::Amazon,
            "debian" => Distro::Debian,
            "ubuntu" => Distro::Ubuntu,
            _ => return None,
        })
    }

    pub fn family(self) -> Family {
        match self {
            Distro::Debian | Distro::Ubuntu => Family::Deb,
            _ => Family::Rpm,
        }
    }
}

/// The package family, which picks the backend (`rpm/` or `deb/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Rpm,
    Deb,
}

/// The front-end an administrator of that system uses to install packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PkgTool {
    Dnf,
    Yum,
    AptGet,
}

impl PkgTool {
    pub fn command(self) -> &'static str {
        match self {
            PkgTool::Dnf => "dnf",
            PkgTool::Yum => "yum",
            PkgTool::AptGet => "apt-get",
        }
    }
}

/// What the root says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsInfo {
    /// os-release `ID` (or the equivalent derived from a legacy release file).
    pub id: String,
    /// os-release `VERSION_ID`; empty when the system does not say.
    pub version_id: String,
    /// `PRETTY_NAME`, or the legacy release file's line.
    pub pretty_name: String,
    /// `ID_LIKE`, reported for unknown systems.
    pub id_like: Vec<String>,
    /// The file it was read from, inside the root.
    pub source: String,
    /// The recognised distribution, `None` when unknown.
    pub distro: Option<Distro>,
    /// Major version (`8` for "8.9", `2` for Amazon Linux 2, `18` for Ubuntu
    /// 18.04); `None` when absent (Debian testing/unstable).
    pub major: Option<u32>,
    /// Minor version where the distribution has one (`4` for Ubuntu 18.04).
    pub minor: Option<u32>,
    /// `VERSION_CODENAME` (or `UBUNTU_CODENAME`): `bookworm`, `jammy`.
    pub codename: Option<String>,
}

/// Why the OS could not be determined at all.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    #[error(
        "no os-release in {root}: looked for /etc/os-release, /usr/lib/os-release, \
         /etc/oracle-release, /etc/redhat-release and /etc/system-release; \
         is --root pointing at a system root?"
    )]
    NotFound { root: String },
    /// `error` names the path already (reads inside a root say which).
    #[error("{error} (in {root})")]
    Read {
        root: String,
        path: String,
        error: io::Error,
    },
    #[error("{path} in {root} names no ID or version: {line:?}")]
    Malformed {
        root: String,
        path: String,
        line: String,
    },
}

impl OsInfo {
    /// Detects the OS of `root`.
    pub fn detect(root: &Root) -> Result<OsInfo, OsError> {
        // Counted by the lifecycle test and scripts/bench-install (once a run).
        log::debug!(
            "detecting the operating system of {}",
            root.path().display()
        );
        let read = |path: &str| {
            root.read_to_string_optional(path)
                .map_err(|error| OsError::Read {
                    root: root.path().display().to_string(),
                    path: path.to_string(),
                    error,
                })
        };
        for path in ["/etc/os-release", "/usr/lib/os-release"] {
            if let Some(text) = read(path)? {
                return Ok(Self::from_os_release(&text, path, root));
            }
        }
        for path in [
            "/etc/oracle-release",
            "/etc/redhat-release",
            "/etc/system-release",
        ] {
            if let Some(text) = read(path)? {
                let line = text.lines().next().unwrap_or("").trim().to_string();
                return Self::from_release_line(&line, path).ok_or(OsError::Malformed {
                    root: root.path().display().to_string(),
                    path: path.to_string(),
                    line,
                });
            }
        }
        Err(OsError::NotFound {
            root: root.path().display().to_string(),
        })
    }

    /// A system known by name only (a fleet's doctor document, a command
    /// line): `debian`, `12`, and the codename when it is known.
    pub fn named(id: &str, version_id: &str, codename: Option<&str>) -> OsInfo {
        let mut info = Self::from_os_release(
            &format!("ID={id}\nVERSION_ID={version_id}\n"),
            "(named)",
            // Read only for a Debian without a version, which callers refuse.
            &Root::live(),
        );
        info.pretty_name = format!("{id} {version_id}");
        info.codename = codename
            .filter(|c| !c.is_empty())
            .or_else(|| release_codename(id, version_id))
            .map(String::from);
        info
    }

    fn from_os_release(text: &str, source: &str, root: &Root) -> OsInfo {
        let fields = parse_os_release(text);
        let get = |k: &str| {
            fields
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let id = get("ID");
        let mut version_id = get("VERSION_ID");
        let distro = Distro::from_id(&id);
        if distro == Some(Distro::Debian) && version_id.is_empty() {
            // Debian testing/unstable have no VERSION_ID; debian_version says
            // e.g. "trixie/sid". Kept for the report, not parsed as a number.
            if let Ok(Some(v)) = root.read_to_string_optional("/etc/debian_version") {
                version_id = v.trim().to_string();
            }
        }
        let (major, minor) = split_version(&version_id);
        let pretty = get("PRETTY_NAME");
        let codename = [get("VERSION_CODENAME"), get("UBUNTU_CODENAME")]
            .into_iter()
            .find(|c| !c.is_empty());
        OsInfo {
            codename,
            pretty_name: if pretty.is_empty() {
                get("NAME")
            } else {
                pretty
            },
            id_like: get("ID_LIKE")
                .split_whitespace()
                .map(String::from)
                .collect(),
            source: source.to_string(),
            distro,
            major,
            minor,
            id,
            version_id,
        }
    }

    /// Parses the one-line release files of systems without os-release.
    fn from_release_line(line: &str, source: &str) -> Option<OsInfo> {
        let (_, after) = line.split_once(" release ")?;
        let version_id = after.split_whitespace().next()?.to_string();
        let lower = line.to_ascii_lowercase();
        let id = if lower.starts_with("oracle linux") {
            "ol"
        } else if lower.starts_with("red hat enterprise linux") {
            "rhel"
        } else if lower.starts_with("centos") {
            "centos"
        } else if lower.starts_with("amazon linux") {
            "amzn"
        } else if lower.starts_with("rocky linux") {
            "rocky"
        } else if lower.starts_with("almalinux") {
            "almalinux"
        } else {
            // Reported as unknown with its own words.
            line.split_whitespace().next()?
        };
        let (major, minor) = split_version(&version_id);
        Some(OsInfo {
            codename: None,
            id: id.to_string(),
            distro: Distro::from_id(id),
            pretty_name: line.to_string(),
            id_like: Vec::new(),
            source: source.to_string(),
            major,
            minor,
            version_id,
        })
    }

    /// The package family, when the distribution is known.
    pub fn family(&self) -> Option<Family> {
        self.distro.map(Distro::family)
    }

    /// The installer front-end: `yum` on EL7 and older and on Amazon Linux
    /// 2 / AMI, `dnf` on EL8+ and Amazon Linux 2023, `apt-get` on Debian/Ubuntu.
    pub fn pkg_tool(&self) -> Option<PkgTool> {
        let major = self.major.unwrap_or(u32::MAX);
        Some(match self.distro? {
            Distro::Debian | Distro::Ubuntu => PkgTool::AptGet,
            Distro::Amazon if major >= 2022 => PkgTool::Dnf,
            Distro::Amazon => PkgTool::Yum,
            _ if major <= 7 => PkgTool::Yum,
            _ => PkgTool::Dnf,
        })
    }

    /// Whether this release is one the connector supports at all. Older
    /// releases of known distributions are reported, not diagnosed.
    pub fn support(&self) -> Support {
        let Some(distro) = self.distro else {
            return Support::UnknownDistro;
        };
        let major = self.major;
        let ok = match distro {
            Distro::Rhel | Distro::CentOs | Distro::Oracle => major.is_some_and(|m| m >= 6),
            Distro::Rocky | Distro::Alma => major.is_some_and(|m| m >= 8),
            // Amazon Linux AMI (2018.03), 2, 2023.
            Distro::Amazon => major.is_some(),
            // Testing/unstable carry no number and are newer than any release.
            Distro::Debian => major.is_none_or(|m| m >= 10),
            Distro::Ubuntu => major.is_some_and(|m| m >= 18),
        };
        if ok {
            Support::Supported
        } else {
            Support::UnsupportedVersion
        }
    }
}

/// Whether the connector supports a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Support {
    Supported,
    UnknownDistro,
    UnsupportedVersion,
}

impl fmt::Display for OsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {})", self.pretty_name, self.id, self.version_id)
    }
}

/// "8.9" -> (8, 9); "2" -> (2, None); "18.04" -> (18, 4); "trixie/sid" -> None.
fn split_version(v: &str) -> (Option<u32>, Option<u32>) {
    let mut parts = v.split('.');
    let major = parts.next().and_then(|p| p.parse().ok());
    let minor = major.and(parts.next().and_then(|p| p.parse().ok()));
    (major, minor)
}

/// Parses os-release(5): `KEY=value` lines, values optionally in single or
/// double quotes, backslash escapes inside double quotes, `#` comments.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        out.push((key.to_string(), unquote(raw.trim())));
    }
    out
}

fn unquote(raw: &str) -> String {
    let bytes = raw.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'\'' && bytes[bytes.len() - 1] == b'\'' {
        return raw[1..raw.len() - 1].to_string();
    }
    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
        let inner = &raw[1..raw.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    raw.to_string()
}

/// The codename of a Debian or Ubuntu release, for systems known by name
/// only (their apt suite): what their os-release says.
pub fn release_codename(id: &str, version_id: &str) -> Option<&'static str> {
    Some(match (id, version_id) {
        ("debian", "9") => "stretch",
        ("debian", "10") => "buster",
        ("debian", "11") => "bullseye",
        ("debian", "12") => "bookworm",
        ("debian", "13") => "trixie",
        ("ubuntu", "16.04") => "xenial",
        ("ubuntu", "18.04") => "bionic",
        ("ubuntu", "20.04") => "focal",
        ("ubuntu", "22.04") => "jammy",
        ("ubuntu", "24.04") => "noble",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_escapes_and_comments() {
        let f = parse_os_release(
            "# comment\nNAME=\"Oracle Linux Server\"\nID='ol'\nVERSION_ID=8.9\n\
             X=\"a \\\"q\\\" \\$b\"\nbad line\n=novalue\n",
        );
        assert_eq!(
            f,
            vec![
                ("NAME".into(), "Oracle Linux Server".into()),
                ("ID".into(), "ol".into()),
                ("VERSION_ID".into(), "8.9".into()),
                ("X".into(), "a \"q\" $b".into()),
            ]
        );
    }

    #[test]
    fn legacy_release_lines() {
        let cases = [
            (
                "Red Hat Enterprise Linux Server release 6.10 (Santiago)",
                "rhel",
                Some(6),
                Some(10),
            ),
            ("CentOS release 6.10 (Final)", "centos", Some(6), Some(10)),
            (
                "CentOS Linux release 7.9.2009 (Core)",
                "centos",
                Some(7),
                Some(9),
            ),
            ("Oracle Linux Server release 6.10", "ol", Some(6), Some(10)),
            (
                "Amazon Linux AMI release 2018.03",
                "amzn",
                Some(2018),
                Some(3),
            ),
        ];
        for (line, id, major, minor) in cases {
            let os = OsInfo::from_release_line(line, "/etc/redhat-release").unwrap();
            assert_eq!(
                (os.id.as_str(), os.major, os.minor),
                (id, major, minor),
                "{line}"
            );
            assert!(os.distro.is_some());
        }
        let other =
            OsInfo::from_release_line("Scientific Linux release 6.10 (Carbon)", "x").unwrap();
        assert_eq!(other.distro, None);
        assert_eq!(other.id, "Scientific");
        assert!(OsInfo::from_release_line("garbage", "x").is_none());
    }

    #[test]
    fn tools_per_release() {
        let os = |id: &str, v: &str| OsInfo {
            id: id.into(),
            version_id: v.into(),
            pretty_name: String::new(),
            id_like: vec![],
            source: String::new(),
            distro: Distro::from_id(id),
            major: split_version(v).0,
            minor: split_version(v).1,
            codename: None,
        };
        assert_eq!(os("ol", "7.9").pkg_tool(), Some(PkgTool::Yum));
        assert_eq!(os("ol", "8.9").pkg_tool(), Some(PkgTool::Dnf));
        assert_eq!(os("amzn", "2").pkg_tool(), Some(PkgTool::Yum));
        assert_eq!(os("amzn", "2023").pkg_tool(), Some(PkgTool::Dnf));
        assert_eq!(os("ubuntu", "22.04").pkg_tool(), Some(PkgTool::AptGet));
        assert_eq!(os("fedora", "39").pkg_tool(), None);
        assert_eq!(os("fedora", "39").support(), Support::UnknownDistro);
        assert_eq!(os("debian", "9").support(), Support::UnsupportedVersion);
        assert_eq!(os("ubuntu", "16.04").support(), Support::UnsupportedVersion);
        assert_eq!(os("debian", "trixie/sid").support(), Support::Supported);
        assert_eq!(os("rhel", "6.10").support(), Support::Supported);
    }

    #[test]
    fn systems_known_by_name_get_their_codename() {
        assert_eq!(
            OsInfo::named("debian", "12", None).codename.as_deref(),
            Some("bookworm")
        );
        assert_eq!(
            OsInfo::named("ubuntu", "22.04", Some(""))
                .codename
                .as_deref(),
            Some("jammy")
        );
        assert_eq!(
            OsInfo::named("ubuntu", "22.04", Some("custom"))
                .codename
                .as_deref(),
            Some("custom"),
            "a codename given wins"
        );
        assert_eq!(OsInfo::named("rhel", "8.9", None).codename, None);
        let d = OsInfo::named("debian", "12", None);
        assert_eq!(d.major, Some(12));
        assert_eq!(d.family(), Some(Family::Deb));
    }
}
