//! Where a header package comes from when the repositories lack it, in
//! the order an administrator expects: `--from DIR` alone when given; else
//! the bundles archives.conf names, then the vendor archives (built in, or
//! archives.conf's), each copy verified end to end before it is handed to
//! the package manager (docs/headers.md "Fallback").
//!
//! - [`access`]: each family's archive layout, download and verification;
//! - [`bundle`]: an offline bundle read (manifest, signature, digests);
//! - [`bundle_build`]: the `bundle` command, which builds one through this
//!   fallback;
//! - [`proxy`]: which proxy each archive is reached through.

pub mod access;
pub mod bundle;
pub mod bundle_build;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use connector_host::os::OsInfo;
use connector_host::pkg::InstallError;
use connector_host::Root;
use serde::Serialize;

use crate::facts::archives_conf::{self, ArchiveConfig};
use crate::facts::KernelFacts;
use access::ArchiveBackend;

/// The bounds of every archive download (`--download-timeout`,
/// `--download-min-rate`, `--download-max-time`; dnf's `timeout` and
/// `minrate` semantics: the rate is averaged over the timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadLimits {
    /// The longest silence, and the window the rate is averaged over.
    pub timeout: Duration,
    /// Bytes per second; 0: no minimum.
    pub min_rate: u64,
    /// The longest one file may take.
    pub max_time: Duration,
}

impl Default for DownloadLimits {
    fn default() -> Self {
        DownloadLimits {
            timeout: Duration::from_secs(60),
            min_rate: 1000,
            max_time: Duration::from_secs(30 * 60),
        }
    }
}

/// Where an installed header package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The root's own configured repositories.
    Repository,
    /// A vendor archive (built-in or archives.conf), verified end to end.
    Archive,
    /// `--from DIR`.
    Local,
}

/// Why the vendor-archive fallback left a kernel without its package.
#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    #[error(
        "{0} is not in the configured repositories, and this system's package family has no \
         archive fallback yet; install it by hand or update the kernel"
    )]
    NoArchiveBackend(String),
    #[error(
        "{package} is not in the configured repositories, and no vendor archive is known for \
         {distro} {version}; add one to {config} (see /usr/share/doc/connector/headers.md) or \
         update the kernel",
        config = connector_host::layout::ARCHIVES_CONF
    )]
    NoArchiveKnown {
        package: String,
        distro: String,
        version: String,
    },
    #[error("{package} is not in the configured repositories; --from {}", dir.display())]
    FromDir {
        package: String,
        dir: PathBuf,
        #[source]
        cause: Box<access::ArchiveCause>,
    },
    #[error(
        "{package} was taken from no configured bundle ({}); then the archives",
        tried.join("; ")
    )]
    NotInBundles {
        package: String,
        tried: Vec<String>,
        #[source]
        then: Box<FallbackError>,
    },
    #[error("the offline bundle was refused")]
    Bundle(#[source] Box<bundle::BundleError>),
    #[error("setting up the downloads")]
    Fetcher(#[source] connector_fetch::FetchError),
    #[error(
        "{package} is not in the configured repositories, and no archive supplied a verified \
         copy. Tried:\n  {}\nEither point {config} at a mirror that has it, download it and pass \
         --from DIR, or update the kernel to one the distribution still supports",
        tried.iter().map(Tried::to_string).collect::<Vec<_>>().join("\n  "),
        config = connector_host::layout::ARCHIVES_CONF
    )]
    NoneVerified { package: String, tried: Vec<Tried> },
    #[error("installing the verified package failed")]
    Install(#[source] Box<InstallError>),
}

/// One archive root the fallback asked, and what it said.
#[derive(Debug)]
pub struct Tried {
    pub url: String,
    pub origin: String,
    pub failure: access::ArchiveFailure,
}

impl std::fmt::Display for Tried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.url,
            self.origin,
            connector_host::cmd::chain(&self.failure)
        )
    }
}

/// The files that make up one package, where they came from, and how to
/// name that to a person.
pub type Taken = (Vec<PathBuf>, Source, String);

/// One fallback run: the family's archive access and what it reads.
pub struct Fallback<'a> {
    /// The family's archive access.
    pub access: &'a dyn ArchiveBackend,
    /// The root the packages are for (its keys, proxies, bundle paths).
    pub root: &'a Root,
    /// The root's OS.
    pub os: &'a OsInfo,
    /// archives.conf (or `--archives FILE`), as the facts loaded it.
    pub config: &'a ArchiveConfig,
    /// The bounds of every download.
    pub limits: DownloadLimits,
    /// Where downloads go (private, removed after the run).
    pub download_dir: &'a Path,
}

impl Fallback<'_> {
    /// The header package `pkg` of kernel `k`: from `from` (`--from DIR`)
    /// alone when given; else the first configured bundle that has it and
    /// verifies, then the first archive that does.
    pub fn take(
        &self,
        from: Option<&Path>,
        k: &KernelFacts,
        pkg: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Taken, FallbackError> {
        if let Some(dir) = from {
            return self.in_dir(dir, pkg);
        }
        self.in_bundles(pkg, progress).or_else(|bundles| {
            match (self.in_archives(k, pkg, progress), bundles) {
                (Ok(got), _) => Ok(got),
                (Err(e), None) => Err(e),
                (Err(e), Some(tried)) => Err(FallbackError::NotInBundles {
                    package: pkg.into(),
                    tried,
                    then: Box::new(e),
                }),
            }
        })
    }

    /// A downloader bounded by [`Fallback::limits`], through `proxy`, that
    /// accepts plain http only for `allow_http`.
    fn fetcher(
        &self,
        allow_http: Vec<String>,
        proxy: connector_fetch::Proxy,
    ) -> Result<connector_fetch::Fetcher, connector_fetch::FetchError> {
        connector_fetch::Fetcher::new(connector_fetch::FetchPolicy {
            allow_http,
            idle_timeout: self.limits.timeout,
            rate_window: self.limits.timeout,
            min_rate: self.limits.min_rate,
            max_time: self.limits.max_time,
            proxy,
            ..connector_fetch::FetchPolicy::default()
        })
    }

    /// `--from DIR`: the package file must be there and verify. A bundle
    /// (`connector-installer bundle`) has its manifest verified first (its
    /// signature, when signed or when archives.conf names a `bundle-key`),
    /// then every file it lists for the package against its digest.
    pub fn in_dir(&self, dir: &Path, pkg: &str) -> Result<Taken, FallbackError> {
        let keys = archives_conf::local_keys(self.os, self.config);
        let failed = |cause: access::ArchiveCause| FallbackError::FromDir {
            package: pkg.into(),
            dir: dir.to_path_buf(),
            cause: Box::new(cause),
        };
        if !bundle::Bundle::is_bundle(dir) {
            let file = self.access.local_package(dir, pkg, &keys).map_err(failed)?;
            let shown = file.display().to_string();
            return Ok((vec![file], Source::Local, shown));
        }
        // A bundle's signature is the site's: only its bundle-key is trusted.
        let trusted = connector_deb::archive::keys_at(self.root, &self.config.bundle_keys);
        let bundle = bundle::Bundle::open(dir, &trusted, !self.config.bundle_keys.is_empty())
            .map_err(|e| FallbackError::Bundle(Box::new(e)))?;
        let files = bundle
            .files_for(self.os, pkg)
            .map_err(|e| FallbackError::Bundle(Box::new(e)))?;
        // Every file, not only the one named after the package: it is the
        // package or one it needs, and passes the family's own checks (RPM:
        // its signature); listed twice, it is handed over once.
        let files = self
            .access
            .bundle_files(&files, pkg, &keys, bundle.signed_by.is_some())
            .map_err(failed)?;
        let shown = match &bundle.signed_by {
            Some(k) => format!("{} (bundle signed by {k})", dir.display()),
            None => format!("{} (bundle)", dir.display()),
        };
        Ok((files, Source::Local, shown))
    }

    /// The bundles archives.conf names (`bundle LOCATION`), in order,
    /// before any archive: the first that has `pkg` and verifies wins.
    /// `Err(None)`: none is configured; `Err(Some(tried))`: what each said.
    pub fn in_bundles(
        &self,
        pkg: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Taken, Option<Vec<String>>> {
        if self.config.bundles.is_empty() {
            return Err(None);
        }
        let mut tried = Vec::new();
        for (n, b) in self.config.bundles.iter().enumerate() {
            let origin = format!(
                "bundle {} ({}:{})",
                b.location,
                connector_host::layout::ARCHIVES_CONF,
                b.line
            );
            progress(&format!("looking for {pkg} in {origin}"));
            let local = if b.is_url() {
                let copy = self.download_dir.join(format!("bundle-{n}"));
                let via = proxy::for_url(None, || self.access.configured_proxy(&b.location));
                let allow_http = if b.allow_http {
                    vec![b.location.clone()]
                } else {
                    Vec::new()
                };
                std::fs::create_dir_all(&copy)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        self.fetcher(allow_http, via.proxy)
                            .map_err(|e| connector_host::cmd::chain(&e))
                    })
                    .and_then(|fetcher| {
                        bundle::fetch_remote(&fetcher, &b.location, self.os, pkg, &copy)
                            .map_err(|e| connector_host::cmd::chain(&e))
                    })
                    .map(|()| copy)
            } else {
                self.root
                    .resolve(&b.location)
                    .map_err(|e| format!("{}: {e}", b.location))
            };
            let got = local.and_then(|d| {
                self.in_dir(&d, pkg)
                    .map_err(|e| connector_host::cmd::chain(&e))
            });
            match got {
                Ok((files, source, _)) => {
                    progress(&format!("{pkg}: verified from {origin}"));
                    return Ok((files, source, origin));
                }
                Err(e) => tried.push(format!("{origin}: {e}")),
            }
        }
        Err(Some(tried))
    }

    /// Tries every archive root of kernel `k` for `pkg`; the first
    /// verified download wins.
    pub fn in_archives(
        &self,
        k: &KernelFacts,
        pkg: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Taken, FallbackError> {
        let roots = archives_conf::roots_for(self.os, k.archive_vars(), self.config);
        if roots.is_empty() {
            return Err(FallbackError::NoArchiveKnown {
                package: pkg.into(),
                distro: self.os.id.clone(),
                version: self.os.version_id.clone(),
            });
        }
        let allow_http: Vec<String> = roots
            .iter()
            .filter(|r| r.allow_http)
            .map(|r| r.url.clone())
            .collect();
        let mut tried = Vec::new();
        for r in &roots {
            // Each archive through the proxy the host has for it (proxy.rs).
            let via = proxy::for_url(r.proxy.as_deref(), || self.access.configured_proxy(&r.url));
            let fetcher = self
                .fetcher(allow_http.clone(), via.proxy.clone())
                .map_err(FallbackError::Fetcher)?;
            let through = match &via.proxy {
                connector_fetch::Proxy::Environment => String::new(),
                connector_fetch::Proxy::Direct => format!(", no proxy ({})", via.source),
                connector_fetch::Proxy::Url { url, .. } => {
                    format!(
                        ", through {} ({})",
                        connector_fetch::redact_url(url),
                        via.source
                    )
                }
                connector_fetch::Proxy::Invalid(why) => {
                    format!(", through an unusable proxy ({}: {why})", via.source)
                }
            };
            // An archive URL may carry credentials too: never shown.
            let shown = connector_fetch::redact_url(&r.url);
            progress(&format!(
                "looking for {pkg} in {shown} ({}{through})",
                r.origin
            ));
            let mut bar = DownloadProgress::new(pkg);
            let got = self.access.fetch_verified(
                &fetcher,
                r,
                pkg,
                self.download_dir,
                &mut |done, total| bar.update(done, total),
            );
            bar.finish();
            match got {
                Ok(files) => {
                    progress(&format!("{pkg}: downloaded and verified from {shown}"));
                    return Ok((files, Source::Archive, shown));
                }
                Err(failure) => tried.push(Tried {
                    url: shown,
                    origin: r.origin.clone(),
                    failure,
                }),
            }
        }
        Err(FallbackError::NoneVerified {
            package: pkg.into(),
            tried,
        })
    }
}

/// Download progress on stderr: a bar on a terminal, two plain lines
/// otherwise (scriptlets, logs).
struct DownloadProgress {
    name: String,
    tty: bool,
    started: bool,
    last_pct: Option<u64>,
}

impl DownloadProgress {
    fn new(name: &str) -> Self {
        let tty = crate::output::is_tty();
        DownloadProgress {
            name: name.to_string(),
            tty,
            started: false,
            last_pct: None,
        }
    }

    fn update(&mut self, done: u64, total: Option<u64>) {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        if !self.started {
            self.started = true;
            if !self.tty {
                match total {
                    Some(t) => crate::output::say(&format!(
                        "downloading {} ({:.1} MiB)",
                        self.name,
                        mib(t)
                    )),
                    None => crate::output::say(&format!("downloading {}", self.name)),
                }
            }
        }
        if self.tty && !crate::output::is_quiet() {
            let pct = total.filter(|t| *t > 0).map(|t| (done * 100 / t).min(100));
            if pct != self.last_pct || pct.is_none() {
                self.last_pct = pct;
                let width = 30u64;
                let filled = pct.unwrap_or(0) * width / 100;
                eprint!(
                    "\r{} [{}{}] {:>3}% {:.1} MiB",
                    self.name,
                    "#".repeat(filled as usize),
                    " ".repeat((width - filled) as usize),
                    pct.unwrap_or(0),
                    mib(done)
                );
            }
        }
    }

    fn finish(&mut self) {
        if self.tty && self.started && !crate::output::is_quiet() {
            eprintln!();
        }
    }
}
