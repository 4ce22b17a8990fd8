//! Where to look for a header package the configured repositories no
//! longer carry: the facts of `archives.conf` and the built-in table (the
//! family-specific find/fetch/verify is `crate::fallback::access`).
//!
//! Archive roots come from `/etc/connector/archives.conf` in the root (or
//! `--archives FILE`), tried first, then from the built-in table below
//! (unless the file says `replace-builtin`). docs/headers.md documents both.

use std::path::Path;

use anyhow::{Context, Result};
use connector_host::os::OsInfo;
use connector_host::vendor;
use connector_host::Root;

use connector_host::layout::ARCHIVES_CONF;

/// One place to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRoot {
    /// Repository base URL (rpm-md: the directory holding `repodata/`).
    pub url: String,
    /// The URL is a mirror list whose first line is the repository base
    /// (Amazon Linux).
    pub mirrorlist: bool,
    /// Plain http allowed for this root (only ever set by the config file).
    pub allow_http: bool,
    /// `built-in` or `archives.conf:LINE`.
    pub origin: String,
    /// Debian-format archives: the suite (default: the OS codename) and
    /// component (default: main).
    pub suite: Option<String>,
    pub component: Option<String>,
    /// The keys (paths inside the root) trusted for this archive: the
    /// entry's `key=` options, else the distribution's keys from the
    /// built-in table. The family adds the root's own trust for the same
    /// source (`gpgkey=` of its repositories; apt's `Signed-By`).
    pub keys: Vec<String>,
    /// archives.conf's `proxy=` for it (proxy.rs decides the rest).
    pub proxy: Option<String>,
}

/// One line of archives.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub distro: String,
    pub version: String,
    pub flavor: String,
    pub url: String,
    pub allow_http: bool,
    pub mirrorlist: bool,
    pub suite: Option<String>,
    pub component: Option<String>,
    /// `key=PATH` (repeatable): the keys trusted for this archive.
    pub keys: Vec<String>,
    /// `proxy=URL` or `proxy=DIRECT`: the proxy for this archive, before
    /// the package manager's and the environment's.
    pub proxy: Option<String>,
    pub line: usize,
}

/// The parsed configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveConfig {
    pub entries: Vec<ConfigEntry>,
    /// `replace-builtin`: the built-in table is not used.
    pub replace_builtin: bool,
    /// `bundle-key PATH`: the site's key offline bundles are signed with
    /// (`connector-installer bundle --sign-key`), absolute paths in the root.
    pub bundle_keys: Vec<String>,
    /// `bundle LOCATION [allow-http]`: offline bundles to take header
    /// packages from before any archive (a path in the root, or the URL of
    /// an internal mirror of one).
    pub bundles: Vec<BundleSource>,
}

/// One `bundle` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSource {
    pub location: String,
    pub allow_http: bool,
    pub line: usize,
}

impl BundleSource {
    pub fn is_url(&self) -> bool {
        self.location.contains("://")
    }
}

impl ArchiveConfig {
    /// Parses archives.conf:
    ///
    /// ```text
    /// # DISTRO  VERSION  FLAVOR  URL                       [OPTIONS]
    /// ol        8        uek7    https://mirror/OL8/UEKR7/{arch}/  key=/etc/pki/rpm-gpg/RPM-GPG-KEY-oracle
    /// rhel      *        *       http://mirror.internal/rhel{major}/{arch}/  allow-http
    /// amzn      2        *       https://mirror/amzn2/mirror.list            mirrorlist
    /// replace-builtin
    /// ```
    pub fn parse(text: &str) -> Result<ArchiveConfig, String> {
        let mut cfg = ArchiveConfig::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if line == "replace-builtin" {
                cfg.replace_builtin = true;
                continue;
            }
            if let Some(rest) = line.strip_prefix("bundle ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let (location, opts) = words.split_first().unwrap_or((&"", &[]));
                let allow_http = match opts {
                    [] => false,
                    ["allow-http"] => true,
                    other => {
                        return Err(format!(
                            "line {}: bundle {location}: unknown option {:?} (only allow-http)",
                            i + 1,
                            other.join(" ")
                        ))
                    }
                };
                let lower = location.to_ascii_lowercase();
                let ok = location.starts_with('/')
                    || lower.starts_with("https://")
                    || (lower.starts_with("http://") && allow_http);
                if !ok {
                    return Err(format!(
                        "line {}: bundle {}: give the bundle's absolute path in the root, or \
                         its https:// URL (http:// with allow-http)",
                        i + 1,
                        connector_fetch::redact_url(location)
                    ));
                }
                cfg.bundles.push(BundleSource {
                    location: location.to_string(),
                    allow_http,
                    line: i + 1,
                });
                continue;
            }
            if let Some(path) = line.strip_prefix("bundle-key ") {
                let path = path.trim();
                if !path.starts_with('/') || path.contains(char::is_whitespace) {
                    return Err(format!(
                        "line {}: bundle-key {path}: give the key file's absolute path in the root",
                        i + 1
                    ));
                }
                cfg.bundle_keys.push(path.to_string());
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() < 4 {
                return Err(format!(
                    "line {}: expected `DISTRO VERSION FLAVOR URL [allow-http] [mirrorlist]`, got {:?}",
                    i + 1,
                    connector_fetch::redact_url(line)
                ));
            }
            // The columns and suite=/component= become parts of paths and
            // URLs: a distribution's characters only (`*` matches any).
            for (what, v) in [
                ("DISTRO", words[0]),
                ("VERSION", words[1]),
                ("FLAVOR", words[2]),
            ] {
                if v != "*" {
                    connector_host::name::check(what, v)
                        .map_err(|e| format!("line {}: {e}", i + 1))?;
                }
            }
            let mut entry = ConfigEntry {
                distro: words[0].into(),
                version: words[1].into(),
                flavor: words[2].into(),
                url: words[3].into(),
                allow_http: false,
                mirrorlist: false,
                suite: None,
                component: None,
                keys: Vec::new(),
                proxy: None,
                line: i + 1,
            };
            for opt in &words[4..] {
                match *opt {
                    "allow-http" => entry.allow_http = true,
                    "mirrorlist" => entry.mirrorlist = true,
                    o if o.starts_with("suite=") || o.starts_with("component=") => {
                        let (key, v) = o.split_once('=').unwrap_or((o, ""));
                        connector_host::name::check(key, v)
                            .map_err(|e| format!("line {}: {e}", i + 1))?;
                        if key == "suite" {
                            entry.suite = Some(v.to_string());
                        } else {
                            entry.component = Some(v.to_string());
                        }
                    }
                    o if o.starts_with("key=") => {
                        let path = &o["key=".len()..];
                        if !path.starts_with('/') {
                            return Err(format!(
                                "line {}: key={path}: give the key file's absolute path in the root",
                                i + 1
                            ));
                        }
                        entry.keys.push(path.to_string());
                    }
                    o if o.starts_with("proxy=") => {
                        let p = &o["proxy=".len()..];
                        if p != "DIRECT" {
                            // Checked here (the error never quotes its
                            // credentials); proxy.rs parses it again.
                            connector_fetch::Proxy::from_url(p, None, None)
                                .map_err(|e| format!("line {}: proxy={e}", i + 1))?;
                        }
                        entry.proxy = Some(p.to_string());
                    }
                    other => {
                        return Err(format!(
                            "line {}: unknown option {:?}",
                            i + 1,
                            connector_fetch::redact_url(other)
                        ))
                    }
                }
            }
            let lower = entry.url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(format!(
                    "line {}: URL must be https:// or http:// (for local files use --from DIR): {}",
                    i + 1,
                    entry.url
                ));
            }
            if lower.starts_with("http://") && !entry.allow_http {
                return Err(format!(
                    "line {}: {} is plain http; add `allow-http` if this mirror is trusted to serve it",
                    i + 1,
                    entry.url
                ));
            }
            cfg.entries.push(entry);
        }
        Ok(cfg)
    }

    /// Reads `--archives FILE` or the root's archives.conf (absent: empty).
    pub fn load(root: &Root, file: Option<&Path>) -> Result<ArchiveConfig> {
        let (text, shown) = match file {
            Some(f) => (
                Some(
                    connector_host::root::read_named_file(f, connector_host::root::READ_CAP)
                        .with_context(|| format!("reading {}", f.display()))?,
                ),
                f.display().to_string(),
            ),
            None => (
                root.read_to_string_optional(ARCHIVES_CONF)
                    .context("reading the archive list")?,
                ARCHIVES_CONF.to_string(),
            ),
        };
        match text {
            None => Ok(ArchiveConfig::default()),
            // The message quotes the line: an excerpt of it.
            Some(t) => ArchiveConfig::parse(&t).map_err(|e| {
                anyhow::anyhow!("{shown}: {}", connector_host::root::excerpt(&e, 300))
            }),
        }
    }
}

fn expand(template: &str, v: &vendor::Vars<'_>) -> Option<String> {
    let mut s = template
        .replace("{arch}", v.arch)
        .replace("{major}", &v.major.to_string());
    if s.contains("{minor}") {
        s = s.replace("{minor}", &v.minor?.to_string());
    }
    if s.contains("{uek}") {
        s = s.replace("{uek}", &v.uek?.to_string());
    }
    if s.contains("{kmajmin}") {
        s = s.replace("{kmajmin}", &format!("{}.{}", v.kver.0, v.kver.1));
    }
    Some(s)
}

/// The keys `--from DIR` packages may be signed with: the distribution's
/// (built-in) and every `key=` archives.conf names for this distribution.
pub fn local_keys(os: &OsInfo, cfg: &ArchiveConfig) -> Vec<String> {
    let mut keys = vendor::archive_keys(os);
    for e in &cfg.entries {
        if e.distro == "*" || e.distro == os.id {
            keys.extend(e.keys.iter().cloned());
        }
    }
    keys
}

/// What an archive's URL is made from, of one kernel.
#[derive(Debug, Clone, Copy)]
pub struct KernelVars<'a> {
    pub release: &'a str,
    /// As RPM names it (`x86_64`, `aarch64`), when the release says.
    pub arch: Option<&'a str>,
    pub uek: Option<u32>,
    pub flavor: &'a str,
}

/// Every archive root to try for kernel `k`, in order: configuration first.
pub fn roots_for(os: &OsInfo, k: KernelVars<'_>, cfg: &ArchiveConfig) -> Vec<ArchiveRoot> {
    let arch = k.arch.unwrap_or("x86_64").to_string();
    let vars = vendor::Vars {
        arch: &arch,
        major: os.major.unwrap_or(0),
        minor: vendor::kernel_minor(k.release, os),
        uek: k.uek,
        kver: connector_host::kernel::upstream_version(k.release),
    };
    let mut out = Vec::new();
    for e in &cfg.entries {
        let distro_ok = e.distro == "*" || e.distro == os.id;
        let version_ok = e.version == "*"
            || e.version == os.version_id
            || Some(e.version.as_str()) == os.major.map(|m| m.to_string()).as_deref();
        let flavor_ok = e.flavor == "*"
            || e.flavor == k.flavor
            || e.flavor
                .strip_suffix('*')
                .is_some_and(|p| k.flavor.starts_with(p));
        if distro_ok && version_ok && flavor_ok {
            if let Some(url) = expand(&e.url, &vars) {
                out.push(ArchiveRoot {
                    url,
                    mirrorlist: e.mirrorlist,
                    allow_http: e.allow_http,
                    origin: format!("archives.conf:{}", e.line),
                    suite: e.suite.clone(),
                    component: e.component.clone(),
                    keys: if e.keys.is_empty() {
                        vendor::archive_keys(os)
                    } else {
                        e.keys.clone()
                    },
                    proxy: e.proxy.clone(),
                });
            }
        }
    }
    if !cfg.replace_builtin {
        for (t, suite) in vendor::archives(os, &vars) {
            if let Some(url) = expand(&t, &vars) {
                out.push(ArchiveRoot {
                    mirrorlist: url.ends_with("mirror.list"),
                    url,
                    allow_http: false,
                    origin: "built-in".into(),
                    suite,
                    component: None,
                    keys: vendor::archive_keys(os),
                    proxy: None,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_lines() {
        let cfg = ArchiveConfig::parse(
            "bundle /srv/b\nbundle https://mirror.internal/b/\nbundle http://10.0.0.1/b allow-http\n\
             bundle-key /etc/connector/site.asc\n",
        )
        .unwrap();
        assert_eq!(cfg.bundles.len(), 3);
        assert!(!cfg.bundles[0].is_url());
        assert!(cfg.bundles[2].allow_http);
        assert_eq!(cfg.bundles[1].line, 2);
        assert_eq!(cfg.bundle_keys, vec!["/etc/connector/site.asc".to_string()]);
        for bad in [
            "bundle srv/b",
            "bundle http://10.0.0.1/b",
            "bundle /srv/b mirrorlist",
            "bundle-key site.asc",
            "bundle",
        ] {
            let e = ArchiveConfig::parse(bad).unwrap_err();
            assert!(e.starts_with("line 1: "), "{bad}: {e}");
        }
    }

    #[test]
    fn config_parsing() {
        let cfg = ArchiveConfig::parse(
            "# comment\nol 8 uek7 https://m/OL8/UEKR7/{arch}/\n\
             rhel * * http://m.internal/rhel{major}/{arch}/ allow-http # trailing\n\
             amzn 2 * https://m/amzn2/mirror.list mirrorlist\nreplace-builtin\n",
        )
        .unwrap();
        assert!(cfg.replace_builtin);
        assert_eq!(cfg.entries.len(), 3);
        assert!(cfg.entries[1].allow_http);
        assert_eq!(cfg.entries[1].line, 3);
        assert!(cfg.entries[2].mirrorlist);
        let err = ArchiveConfig::parse("rhel 8 * http://m/x/\n").unwrap_err();
        assert!(err.contains("allow-http"), "{err}");
        assert!(ArchiveConfig::parse("rhel 8 *\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(ArchiveConfig::parse("rhel 8 * ftp://m/\n").is_err());
        assert!(ArchiveConfig::parse("rhel 8 * https://m/ bogus\n")
            .unwrap_err()
            .contains("bogus"));
    }
}
