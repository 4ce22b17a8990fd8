//! Which proxy the vendor-archive fallback goes through, the way the host
//! already has it, first match wins:
//!
//! 1. archives.conf's `proxy=URL` (or `proxy=DIRECT`) on the archive's line;
//! 2. the package manager's own configuration in the root:
//!    - RPM family: the `proxy=` (`proxy_username`, `proxy_password`) of a
//!      repository file's section whose `baseurl`/`mirrorlist`/`metalink`
//!      is on the archive's host, else `[main]` of `/etc/dnf/dnf.conf`, else
//!      of `/etc/yum.conf`; `proxy=_none_` (or empty) means none;
//!    - Debian family: apt's `Acquire::SCHEME::Proxy::HOST` (per host),
//!      then `Acquire::SCHEME::Proxy`, from `/etc/apt/apt.conf` and
//!      `/etc/apt/apt.conf.d/*`, flat or nested; `DIRECT` (or `false`)
//!      means none;
//! 3. the environment (`https_proxy`, `http_proxy`, `no_proxy`).
//!
//! Every file is read inside the root, capped, regular files only.

use connector_fetch::Proxy;
use connector_host::Root;

/// The proxy for one archive URL, and where it came from (said in the
/// progress line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub proxy: Proxy,
    pub source: String,
}

/// The scheme and host of a URL (`https`, `mirror.corp`), lowercased.
fn scheme_host(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next()?.to_string()
    } else {
        host.split(':').next()?.to_string()
    };
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

fn direct_or(url: &str, username: Option<String>, password: Option<String>) -> Proxy {
    let v = url.trim();
    if v.is_empty()
        || v.eq_ignore_ascii_case("_none_")
        || v.eq_ignore_ascii_case("direct")
        || v.eq_ignore_ascii_case("false")
    {
        Proxy::Direct
    } else {
        // Credentials move out of the URL; a setting that is no proxy URL
        // fails the download, saying why, without its password.
        Proxy::from_url(v, username, password).unwrap_or_else(Proxy::Invalid)
    }
}

/// The proxy for `url`: archives.conf's `entry` option, else what the
/// root's package manager is configured with (`configured`: the family's
/// `ArchiveBackend::configured_proxy`, asked only when needed), else the
/// environment.
pub fn for_url(entry: Option<&str>, configured: impl FnOnce() -> Option<Chosen>) -> Chosen {
    if let Some(p) = entry {
        return Chosen {
            proxy: direct_or(p, None, None),
            source: "archives.conf proxy=".into(),
        };
    }
    configured().unwrap_or(Chosen {
        proxy: Proxy::Environment,
        source: "the environment".into(),
    })
}

// ---- RPM family: dnf.conf / yum.conf / repository files ----

/// One INI section: its name and its `key=value` settings (keys
/// lowercased, last one wins).
type Section = (String, Vec<(String, String)>);

fn ini(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.trim().to_string(), Vec::new()));
        } else if let Some((k, v)) = line.split_once('=') {
            if let Some((_, kv)) = out.last_mut() {
                kv.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn section_proxy(kv: &[(String, String)]) -> Option<Proxy> {
    let p = get(kv, "proxy")?;
    Some(direct_or(
        p,
        get(kv, "proxy_username").map(String::from),
        get(kv, "proxy_password").map(String::from),
    ))
}

pub(crate) fn rpm_proxy(root: &Root, url: &str) -> Option<Chosen> {
    let (_, host) = scheme_host(url)?;
    // A repository on the archive's host: its own proxy setting.
    let dir = "/etc/yum.repos.d";
    let mut names: Vec<String> = root
        .read_dir_names(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".repo"))
        .collect();
    names.sort();
    for name in names {
        let path = format!("{dir}/{name}");
        let Ok(Some(text)) = root.read_to_string_optional(&path) else {
            continue;
        };
        for (section, kv) in ini(&text) {
            let on_host = ["baseurl", "mirrorlist", "metalink"].iter().any(|k| {
                get(&kv, k).is_some_and(|v| {
                    v.split_whitespace()
                        .any(|u| scheme_host(u).is_some_and(|(_, h)| h == host))
                })
            });
            if on_host {
                if let Some(proxy) = section_proxy(&kv) {
                    return Some(Chosen {
                        proxy,
                        source: format!("{path} [{section}]"),
                    });
                }
            }
        }
    }
    for path in ["/etc/dnf/dnf.conf", "/etc/yum.conf"] {
        let Ok(Some(text)) = root.read_to_string_optional(path) else {
            continue;
        };
        let main = ini(&text).into_iter().find(|(s, _)| s == "main");
        if let Some(proxy) = main.and_then(|(_, kv)| section_proxy(&kv)) {
            return Some(Chosen {
                proxy,
                source: format!("{path} [main]"),
            });
        }
    }
    None
}

// ---- Debian family: apt.conf ----

/// apt's configuration as flat `a::b::c` → value pairs (names lowercased),
/// from its flat (`Acquire::http::Proxy "…";`) and nested (`Acquire {
/// http { Proxy "…"; }; };`) forms; comments `//`, `#` and `/* */`.
fn apt_settings(text: &str) -> Vec<(String, String)> {
    // Tokens: words (names), quoted strings, `{`, `}`, `;`.
    let mut toks: Vec<(bool, String)> = Vec::new(); // (quoted, text)
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut s = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    s.push(c);
                }
                toks.push((true, s));
            }
            '{' | '}' | ';' => toks.push((false, c.to_string())),
            c if c.is_whitespace() => {}
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                toks.push((false, s));
            }
        }
    }
    let mut out = Vec::new();
    let mut scope: Vec<String> = Vec::new();
    let mut name: Option<String> = None;
    for (quoted, t) in toks {
        match (quoted, t.as_str()) {
            (false, "{") => {
                if let Some(n) = name.take() {
                    scope.push(n);
                }
            }
            (false, "}") => {
                scope.pop();
                name = None;
            }
            (false, ";") => name = None,
            (true, value) => {
                if let Some(n) = name.take() {
                    let mut key = scope.clone();
                    key.push(n);
                    out.push((key.join("::").to_ascii_lowercase(), value.to_string()));
                } else if !scope.is_empty() {
                    // `Acquire::http::Proxy { "host" "DIRECT"; }` is not a
                    // form apt writes; a bare value in a scope is skipped.
                }
            }
            (false, word) => {
                // `Proxy::"host.example"` arrives as `Proxy::` then a
                // string: join them.
                name = Some(match name.take() {
                    Some(prev) if prev.ends_with("::") => format!("{prev}{word}"),
                    _ => word.to_string(),
                });
            }
        }
    }
    out
}

pub(crate) fn apt_proxy(root: &Root, url: &str) -> Option<Chosen> {
    let (scheme, host) = scheme_host(url)?;
    let mut files = vec!["/etc/apt/apt.conf".to_string()];
    let mut parts: Vec<String> = root
        .read_dir_names("/etc/apt/apt.conf.d")
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        // apt's rule: letters, digits, `_-.`, no extension or `.conf`.
        .filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                && (!n.contains('.') || n.ends_with(".conf"))
        })
        .collect();
    parts.sort();
    files.extend(
        parts
            .into_iter()
            .map(|n| format!("/etc/apt/apt.conf.d/{n}")),
    );
    // Later files override earlier ones; remember where each came from.
    let mut settings: Vec<(String, String, String)> = Vec::new();
    for f in files {
        if let Ok(Some(text)) = root.read_to_string_optional(&f) {
            for (k, v) in apt_settings(&text) {
                settings.push((k, v, f.clone()));
            }
        }
    }
    let lookup = |key: &str| {
        settings
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, f)| (v.clone(), f.clone()))
    };
    let per_host = format!("acquire::{scheme}::proxy::{host}");
    let general = format!("acquire::{scheme}::proxy");
    for key in [per_host, general] {
        if let Some((v, file)) = lookup(&key) {
            return Some(Chosen {
                proxy: direct_or(&v, None, None),
                source: format!("{file} ({key})"),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_host::os::Family;

    /// The proxy for `url` as the fallback asks it: through the family's
    /// archive access.
    fn via(root: &Root, family: Family, entry: Option<&str>, url: &str) -> Chosen {
        let access = crate::fallback::access::for_family(family, root, None);
        for_url(entry, || access.configured_proxy(url))
    }

    fn root_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let h = d.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(h.parent().unwrap()).unwrap();
            std::fs::write(h, text).unwrap();
        }
        let r = Root::new(d.path()).unwrap();
        (d, r)
    }

    fn url_of(c: &Chosen) -> Option<&str> {
        match &c.proxy {
            Proxy::Url { url, .. } => Some(url),
            _ => None,
        }
    }

    #[test]
    fn apt_forms_and_per_host_overrides() {
        let (_d, root) = root_with(&[
            (
                "/etc/apt/apt.conf.d/01proxy",
                "Acquire::http::Proxy \"http://general:3128/\";\n\
                 Acquire { https { Proxy \"http://tls:3128/\"; }; };\n",
            ),
            (
                "/etc/apt/apt.conf.d/02hosts",
                "// the archive goes direct\nAcquire::http::Proxy::deb.example.org \"DIRECT\";\n\
                 /* a comment */ Acquire::http::Proxy::mirror.corp \"http://corp:8080/\";\n",
            ),
            (
                "/etc/apt/apt.conf.d/99ignored.bak",
                "Acquire::http::Proxy \"http://no:1/\";",
            ),
        ]);
        let deb = Family::Deb;
        let c = via(&root, deb, None, "http://other.example/debian/");
        assert_eq!(url_of(&c), Some("http://general:3128/"), "{c:?}");
        assert!(c.source.contains("01proxy"), "{c:?}");
        let c = via(&root, deb, None, "https://other.example/debian/");
        assert_eq!(url_of(&c), Some("http://tls:3128/"), "nested form: {c:?}");
        let c = via(&root, deb, None, "http://deb.example.org/debian/");
        assert_eq!(c.proxy, Proxy::Direct, "{c:?}");
        let c = via(&root, deb, None, "http://mirror.corp:80/x/");
        assert_eq!(url_of(&c), Some("http://corp:8080/"), "{c:?}");
        // archives.conf comes first; without any, the environment.
        let c = via(&root, deb, Some("DIRECT"), "http://other.example/");
        assert_eq!(c.proxy, Proxy::Direct);
        let (_e, bare) = root_with(&[]);
        assert_eq!(
            via(&bare, deb, None, "https://x/").proxy,
            Proxy::Environment
        );
    }

    #[test]
    fn dnf_main_repo_sections_and_none() {
        let (_d, root) = root_with(&[
            (
                "/etc/dnf/dnf.conf",
                "[main]\ngpgcheck=1\nproxy=http://main:3128\nproxy_username=u\nproxy_password=p w\n",
            ),
            (
                "/etc/yum.repos.d/corp.repo",
                "[corp-baseos]\nbaseurl=https://mirror.corp/el8/\nproxy=_none_\n\n\
                 [other]\nbaseurl=https://elsewhere/\nproxy=http://repo:1\n",
            ),
        ]);
        let rpm = Family::Rpm;
        let c = via(&root, rpm, None, "https://mirror.corp/vault/");
        assert_eq!(c.proxy, Proxy::Direct, "the repository on that host: {c:?}");
        assert!(c.source.contains("corp.repo [corp-baseos]"), "{c:?}");
        let c = via(&root, rpm, None, "https://yum.oracle.com/repo/");
        assert_eq!(
            c.proxy,
            Proxy::Url {
                url: "http://main:3128/".into(),
                username: Some("u".into()),
                password: Some("p w".into()),
            }
        );
        assert!(c.source.contains("dnf.conf [main]"), "{c:?}");
        // yum.conf where there is no dnf.conf.
        let (_y, yum) = root_with(&[("/etc/yum.conf", "[main]\nproxy=http://yum:3128/\n")]);
        let c = via(&yum, rpm, None, "https://x/");
        assert_eq!(url_of(&c), Some("http://yum:3128/"), "{c:?}");
    }

    #[test]
    fn hosts_come_out_of_every_url_form() {
        assert_eq!(
            scheme_host("HTTPS://user:pw@Mirror.Corp:8443/x").unwrap(),
            ("https".into(), "mirror.corp".into())
        );
        assert_eq!(scheme_host("http://[::1]:80/").unwrap().1, "::1");
        assert!(scheme_host("not a url").is_none());
    }
}
