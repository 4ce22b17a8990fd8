//! Downloads from vendor archives, verified while they stream.
//!
//! - TLS is verified against the system's CA store (rustls with the ring
//!   provider and the platform verifier); `http://` is refused unless the URL
//!   starts with a prefix the administrator allowed (an internal mirror), and
//!   a redirect may never lead to a plain-http URL outside those prefixes.
//! - The proxy is the caller's choice ([`Proxy`]): one named (the
//!   installer resolves it from archives.conf and the package manager's own
//!   configuration), none, or the environment's (`https_proxy`,
//!   `no_proxy`, …).
//! - sha256 is computed while the bytes are written, on a second thread (so
//!   the transfer and the hash overlap), with an optional [`Tap`] beside it
//!   that sees the same bytes (an RPM's payload digest); a broken transfer is
//!   resumed with `Range` (restarted when the server ignores it) and retried;
//!   a finished file whose size or digest differs from what the repository
//!   metadata promised is deleted and reported.
//! - No secret is ever shown: a proxy's credentials live apart from its URL
//!   ([`Proxy::from_url`] takes them out of `user:pw@`), and every URL an
//!   error or a log line carries goes through [`redact_url`].
//! - Every wait is bounded: connect timeout, an idle timeout per read, a
//!   minimum rate over a window (dnf's `minrate` over `timeout`: a mirror
//!   that trickles is given up), a total time per file, and a cap on
//!   metadata sizes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How downloads may be made.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// URL prefixes (`http://mirror.internal/`) under which plain http is
    /// allowed. Empty: https only.
    pub allow_http: Vec<String>,
    pub connect_timeout: Duration,
    /// The longest silence tolerated while reading.
    pub idle_timeout: Duration,
    /// Attempts per download (the first one included).
    pub attempts: u32,
    /// The slowest average rate tolerated (bytes/s) over `rate_window`
    /// (dnf's `minrate`, default 1000); 0 turns the check off.
    pub min_rate: u64,
    /// The window the rate is measured over (dnf's `timeout`).
    pub rate_window: Duration,
    /// The longest one file may take, every attempt included.
    pub max_time: Duration,
    /// Which proxy the requests go through.
    pub proxy: Proxy,
}

/// The proxy of a download.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Proxy {
    /// The environment's (`https_proxy`, `http_proxy`, `all_proxy`,
    /// `no_proxy`).
    #[default]
    Environment,
    /// No proxy at all (apt's `DIRECT`, dnf's `_none_`).
    Direct,
    /// A proxy setting that is not a usable proxy URL: the reason, already
    /// redacted. Every download through it fails with that reason, rather
    /// than going out another way.
    Invalid(String),
    /// This one, for every request. `url` never carries credentials: make
    /// it with [`Proxy::from_url`].
    Url {
        url: String,
        username: Option<String>,
        password: Option<String>,
    },
}

/// Never the password.
impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proxy::Environment => f.write_str("Environment"),
            Proxy::Direct => f.write_str("Direct"),
            Proxy::Invalid(why) => f.debug_tuple("Invalid").field(why).finish(),
            Proxy::Url {
                url,
                username,
                password,
            } => f
                .debug_struct("Url")
                .field("url", &redact_url(url))
                .field("username", username)
                .field("password", &password.as_ref().map(|_| "***"))
                .finish(),
        }
    }
}

/// Schemes a proxy may have.
const PROXY_SCHEMES: &[&str] = &["http", "https", "socks5", "socks5h"];

impl Proxy {
    /// A proxy from its URL as an administrator wrote it. Credentials in it
    /// (`user:password@`, percent-decoded) are taken out into `username`
    /// and `password` (ones given apart win), so the URL kept can be shown.
    /// The error never quotes the credentials.
    pub fn from_url(
        raw: &str,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<Proxy, String> {
        let raw = raw.trim();
        let shown = redact_url(raw);
        let mut u = reqwest::Url::parse(raw).map_err(|e| format!("{shown}: not a URL ({e})"))?;
        if !PROXY_SCHEMES.contains(&u.scheme()) {
            return Err(format!(
                "{shown}: a proxy is http://HOST:PORT/ (or https://, socks5://), not {}://",
                u.scheme()
            ));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(format!("{shown}: no host"));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = (!u.username().is_empty()).then(|| decode(u.username()));
        let pass = u.password().map(decode);
        // Setting them cannot fail on a URL with a host.
        let _ = u.set_username("");
        let _ = u.set_password(None);
        Ok(Proxy::Url {
            url: u.to_string(),
            username: username.or(user),
            password: password.or(pass),
        })
    }
}

/// A URL as it may be shown: any user information (`user:password@`)
/// replaced by `***@`. Cut at the *last* `@` of the whole text, so a
/// password holding `@`, `/`, `:` or a space never survives in part; a
/// text with an `@` and no scheme is cut the same way.
pub fn redact_url(raw: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, raw),
    };
    let Some(at) = rest.rfind('@') else {
        return raw.to_string();
    };
    let tail = &rest[at + 1..];
    match scheme {
        Some(s) => format!("{s}://***@{tail}"),
        None => format!("***@{tail}"),
    }
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_http: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            attempts: 4,
            min_rate: 1000,
            rate_window: Duration::from_secs(30),
            max_time: Duration::from_secs(30 * 60),
            proxy: Proxy::Environment,
        }
    }
}

/// Errors a caller branches on (try the next archive, give up, tell the user).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("refusing {url}: plain http is allowed only for archives configured with allow-http")]
    InsecureUrl { url: String },
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: no answer within {}s", timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    #[error(
        "{url}: {bytes} bytes in {}s, below the minimum of {min_rate} bytes/s: this mirror is \
         too slow (another one is tried; --download-min-rate sets the minimum)",
        window.as_secs()
    )]
    TooSlow {
        url: String,
        bytes: u64,
        window: Duration,
        min_rate: u64,
    },
    #[error(
        "{url}: not complete after {}s (--download-max-time): this mirror is too slow",
        limit.as_secs()
    )]
    TimeLimit { url: String, limit: Duration },
    #[error("{url}: more than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: sha256 {actual} does not match the repository's {expected}")]
    DigestMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: {actual} bytes, the repository says {expected}")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        /// Shown in the message, so not also a `source()`.
        error: io::Error,
    },
}

impl FetchError {
    /// Worth another attempt (the network), as opposed to a verdict.
    fn is_transient(&self) -> bool {
        matches!(
            self,
            FetchError::Timeout { .. } | FetchError::Transport { .. }
        ) || matches!(self, FetchError::Status { status, .. } if *status >= 500)
    }
}

/// What was expected of a download.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Lowercase hex sha256.
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// Something that reads a download as it streams, beside its sha256, on a
/// thread of its own: [`update`](Tap::update) gets every byte in order,
/// [`reset`](Tap::reset) says the transfer starts over from byte 0 (a
/// server that ignored `Range`). A resumed transfer just goes on.
pub trait Tap: Send {
    fn update(&mut self, bytes: &[u8]);
    fn reset(&mut self);
}

/// What the transfer hands the readers of the stream (the sha256 and the
/// tap, each on its own thread).
#[derive(Clone)]
enum Chunk {
    Bytes(Arc<Vec<u8>>, usize),
    Restart,
}

/// The readers of one transfer's stream, and the buffers they have read.
struct Readers {
    senders: Vec<mpsc::SyncSender<Chunk>>,
    /// Buffers handed out, oldest first; one no reader holds any more is
    /// filled again.
    pool: std::collections::VecDeque<Arc<Vec<u8>>>,
}

impl Readers {
    fn send(&self, chunk: Chunk) -> Result<(), ()> {
        for s in &self.senders {
            s.send(chunk.clone()).map_err(|_| ())?;
        }
        Ok(())
    }

    /// A buffer to read into: the oldest handed out if every reader is
    /// done with it, else a new one.
    fn buffer(&mut self) -> Arc<Vec<u8>> {
        if self.pool.front().is_some_and(|b| Arc::strong_count(b) == 1) {
            return self.pool.pop_front().expect("just looked");
        }
        Arc::new(vec![0u8; CHUNK])
    }
}

/// The transfer's buffer size: a few reads' worth of what reqwest hands
/// over per read.
const CHUNK: usize = 256 * 1024;

/// A finished, verified download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// An HTTP(S) client bound to a policy.
pub struct Fetcher {
    client: reqwest::blocking::Client,
    policy: FetchPolicy,
}

static PROVIDER: Once = Once::new();

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Result<Fetcher, FetchError> {
        PROVIDER.call_once(|| {
            // Another crate may have installed one already: either is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let allow = policy.allow_http.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                attempt.error("too many redirects")
            } else if !url_allowed(attempt.url().as_str(), &allow) {
                let url = attempt.url().to_string();
                attempt.error(format!("redirect to {url}: plain http is not allowed here"))
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::blocking::Client::builder();
        match &policy.proxy {
            Proxy::Environment => {}
            Proxy::Direct => builder = builder.no_proxy(),
            Proxy::Invalid(why) => {
                return Err(FetchError::Transport {
                    url: String::new(),
                    detail: format!("the proxy setting is not usable: {why}"),
                })
            }
            Proxy::Url {
                url,
                username,
                password,
            } => {
                let shown = redact_url(url);
                let bad = |detail: String| FetchError::Transport {
                    url: shown.clone(),
                    detail,
                };
                // A SOCKS proxy takes its credentials from the URL; an HTTP
                // one in Proxy-Authorization.
                let mut target =
                    reqwest::Url::parse(url).map_err(|e| bad(format!("not a proxy URL: {e}")))?;
                let socks = target.scheme().starts_with("socks");
                if socks {
                    if let Some(user) = username {
                        let _ = target.set_username(user);
                        let _ = target.set_password(password.as_deref());
                    }
                }
                let mut p = reqwest::Proxy::all(target.as_str()).map_err(|e| {
                    bad(format!(
                        "not a proxy URL: {}",
                        error_chain(&e.without_url())
                    ))
                })?;
                if let (Some(user), false) = (username, socks) {
                    p = p.basic_auth(user, password.as_deref().unwrap_or(""));
                }
                builder = builder.proxy(p);
            }
        }
        let client = builder
            .connect_timeout(policy.connect_timeout)
            // The blocking client applies this to the request and then to
            // each read of the body: an idle timeout, not a total one.
            .timeout(policy.idle_timeout)
            .redirect(redirect)
            .user_agent(concat!("connector-installer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport {
                url: String::new(),
                detail: format!("building the HTTP client: {e}"),
            })?;
        Ok(Fetcher { client, policy })
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    fn check_url(&self, url: &str) -> Result<(), FetchError> {
        if url_allowed(url, &self.policy.allow_http) {
            Ok(())
        } else {
            Err(FetchError::InsecureUrl {
                url: redact_url(url),
            })
        }
    }

    fn send(&self, url: &str, from: u64) -> Result<reqwest::blocking::Response, FetchError> {
        self.check_url(url)?;
        log::debug!(
            "GET {}{}",
            redact_url(url),
            if from > 0 {
                format!(" from byte {from}")
            } else {
                String::new()
            }
        );
        let mut req = self.client.get(url);
        if from > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let resp = req.send().map_err(|e| self.transport(url, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(FetchError::Status {
                url: redact_url(url),
                status,
            });
        }
        Ok(resp)
    }

    fn transport(&self, url: &str, e: reqwest::Error) -> FetchError {
        // Its text would carry the URL as given; ours is redacted.
        let e = e.without_url();
        if e.is_timeout() {
            return FetchError::Timeout {
                url: redact_url(url),
                timeout: self.policy.idle_timeout,
            };
        }
        if e.is_redirect() {
            // The policy's own message says why.
            return FetchError::InsecureUrl {
                url: format!("{} ({})", redact_url(url), error_chain(&e)),
            };
        }
        FetchError::Transport {
            url: redact_url(url),
            detail: error_chain(&e),
        }
    }

    /// Fetches a small document (repository metadata) into memory, at most
    /// `limit` bytes, retrying transient failures.
    pub fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let mut last = None;
        for _ in 0..self.policy.attempts.max(1) {
            match self.get_once(url, limit) {
                Ok(b) => return Ok(b),
                Err(e) if e.is_transient() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn get_once(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let mut resp = self.send(url, 0)?.take(limit + 1);
        let mut pace = Pace::new(&self.policy);
        let mut body = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = resp.read(&mut buf).map_err(|e| self.read_error(url, e))?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
            pace.account(url, n as u64)?;
        }
        if body.len() as u64 > limit {
            return Err(FetchError::TooLarge {
                url: redact_url(url),
                limit,
            });
        }
        Ok(body)
    }

    fn read_error(&self, url: &str, e: io::Error) -> FetchError {
        let text = error_chain(&e);
        if e.kind() == io::ErrorKind::TimedOut || text.contains("timed out") {
            FetchError::Timeout {
                url: redact_url(url),
                timeout: self.policy.idle_timeout,
            }
        } else {
            FetchError::Transport {
                url: redact_url(url),
                detail: text,
            }
        }
    }

    /// Downloads `url` to `dest` (created with mode 0600), hashing as it
    /// goes; resumes and retries broken transfers. On any verification
    /// failure the file is deleted.
    pub fn download(
        &self,
        url: &str,
        dest: &Path,
        expect: &Expect,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Downloaded, FetchError> {
        self.download_tapped(url, dest, expect, progress, None)
    }

    /// [`download`](Fetcher::download), with `tap` reading the bytes as they
    /// stream (its result is the caller's; it is fed only bytes that were
    /// written).
    pub fn download_tapped(
        &self,
        url: &str,
        dest: &Path,
        expect: &Expect,
        progress: &mut dyn FnMut(u64, Option<u64>),
        tap: Option<&mut dyn Tap>,
    ) -> Result<Downloaded, FetchError> {
        let result = self.download_streams(url, dest, expect, progress, tap);
        if result.is_err() {
            let _ = fs::remove_file(dest);
        }
        result
    }

    fn download_streams(
        &self,
        url: &str,
        dest: &Path,
        expect: &Expect,
        progress: &mut dyn FnMut(u64, Option<u64>),
        tap: Option<&mut dyn Tap>,
    ) -> Result<Downloaded, FetchError> {
        // The hash and the tap each run on their own thread, fed the
        // buffers the transfer has written: the transfer and the two
        // hashes overlap.
        let (to_hash, chunks) = mpsc::sync_channel::<Chunk>(16);
        let mut readers = Readers {
            senders: vec![to_hash],
            pool: Default::default(),
        };
        let tap_chunks = tap.is_some().then(|| {
            let (to_tap, tap_chunks) = mpsc::sync_channel::<Chunk>(16);
            readers.senders.push(to_tap);
            tap_chunks
        });
        std::thread::scope(|scope| {
            let hashing = scope.spawn(move || {
                let mut hasher = Sha256::new();
                for chunk in chunks {
                    match chunk {
                        Chunk::Bytes(buf, n) => hasher.update(&buf[..n]),
                        Chunk::Restart => hasher = Sha256::new(),
                    }
                }
                hex::encode(hasher.finalize())
            });
            if let (Some(tap), Some(tap_chunks)) = (tap, tap_chunks) {
                scope.spawn(move || {
                    for chunk in tap_chunks {
                        match chunk {
                            Chunk::Bytes(buf, n) => tap.update(&buf[..n]),
                            Chunk::Restart => tap.reset(),
                        }
                    }
                });
            }
            let transferred = self.download_inner(url, dest, expect, progress, &mut readers);
            drop(readers);
            let digest = hashing.join().expect("the hashing thread does not panic");
            transferred.and_then(|size| self.check(url, dest, expect, size, digest))
        })
    }

    /// The finished transfer against what was expected of it.
    fn check(
        &self,
        url: &str,
        dest: &Path,
        expect: &Expect,
        written: u64,
        actual: String,
    ) -> Result<Downloaded, FetchError> {
        if let Some(want) = expect.size {
            if written != want {
                return Err(FetchError::SizeMismatch {
                    url: redact_url(url),
                    expected: want,
                    actual: written,
                });
            }
        }
        if let Some(want) = &expect.sha256 {
            if !want.eq_ignore_ascii_case(&actual) {
                return Err(FetchError::DigestMismatch {
                    url: redact_url(url),
                    expected: want.to_ascii_lowercase(),
                    actual,
                });
            }
        }
        Ok(Downloaded {
            path: dest.to_path_buf(),
            sha256: actual,
            size: written,
        })
    }

    /// The transfer: every attempt, writing `dest` and handing each written
    /// buffer to the hashing thread. Returns the bytes written.
    fn download_inner(
        &self,
        url: &str,
        dest: &Path,
        expect: &Expect,
        progress: &mut dyn FnMut(u64, Option<u64>),
        readers: &mut Readers,
    ) -> Result<u64, FetchError> {
        let io_err = |error| FetchError::Io {
            path: dest.to_path_buf(),
            error,
        };
        let hashing_gone = || FetchError::Io {
            path: dest.to_path_buf(),
            error: io::Error::other("a reader of the download stopped"),
        };
        let mut file = create_private(dest).map_err(io_err)?;
        let mut written: u64 = 0;
        let mut last: Option<FetchError>;
        let mut attempts = 0;
        let mut pace = Pace::new(&self.policy);
        loop {
            attempts += 1;
            pace.restart_window();
            match self.send(url, written) {
                Ok(mut resp) => {
                    if written > 0 && resp.status().as_u16() != 206 {
                        // The server ignored Range: start over.
                        log::debug!("{url}: server ignored Range, restarting");
                        file.set_len(0).map_err(io_err)?;
                        file = create_private(dest).map_err(io_err)?;
                        readers.send(Chunk::Restart).map_err(|_| hashing_gone())?;
                        written = 0;
                    }
                    let total = resp.content_length().map(|l| l + written).or(expect.size);
                    if let (Some(t), Some(want)) = (total, expect.size) {
                        if t > want {
                            return Err(FetchError::SizeMismatch {
                                url: redact_url(url),
                                expected: want,
                                actual: t,
                            });
                        }
                    }
                    let read_result: Result<(), FetchError> = loop {
                        let mut buf = readers.buffer();
                        let filled =
                            resp.read(Arc::get_mut(&mut buf).expect("a buffer no reader holds"));
                        match filled {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                file.write_all(&buf[..n]).map_err(io_err)?;
                                readers
                                    .send(Chunk::Bytes(buf.clone(), n))
                                    .map_err(|_| hashing_gone())?;
                                readers.pool.push_back(buf);
                                written += n as u64;
                                if let Some(want) = expect.size {
                                    if written > want {
                                        break Err(FetchError::SizeMismatch {
                                            url: redact_url(url),
                                            expected: want,
                                            actual: written,
                                        });
                                    }
                                }
                                progress(written, total);
                                if let Err(e) = pace.account(url, n as u64) {
                                    break Err(e);
                                }
                            }
                            Err(e) => {
                                break Err(match self.read_error(url, e) {
                                    FetchError::Transport { url, detail } => {
                                        FetchError::Transport {
                                            url,
                                            detail: format!(
                                        "transfer interrupted after {written} bytes: {detail}"
                                    ),
                                        }
                                    }
                                    other => other,
                                })
                            }
                        }
                    };
                    match read_result {
                        Ok(()) => {
                            let complete = match total {
                                Some(t) => written >= t,
                                None => true,
                            };
                            if complete {
                                break;
                            }
                            last = Some(FetchError::Transport {
                                url: redact_url(url),
                                detail: format!(
                                    "connection closed after {written} of {} bytes",
                                    total.unwrap_or(0)
                                ),
                            });
                        }
                        Err(e) if e.is_transient() => last = Some(e),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.is_transient() => last = Some(e),
                Err(e) => return Err(e),
            }
            if attempts >= self.policy.attempts.max(1) {
                return Err(last.expect("a failed attempt left an error"));
            }
            log::debug!(
                "{url}: attempt {attempts} failed ({:?}); resuming at byte {written}",
                last
            );
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempts)));
        }
        // Not synced: a download is a temporary file, verified and then
        // handed to the package manager or removed; whoever keeps it (a
        // bundle being built) syncs it where it keeps it.
        Ok(written)
    }
}

/// The rate and time bounds of one transfer (every attempt of one file).
struct Pace {
    start: Instant,
    window_start: Instant,
    window_bytes: u64,
    min_rate: u64,
    window: Duration,
    max_time: Duration,
}

impl Pace {
    fn new(policy: &FetchPolicy) -> Pace {
        let now = Instant::now();
        Pace {
            start: now,
            window_start: now,
            window_bytes: 0,
            min_rate: policy.min_rate,
            window: policy.rate_window,
            max_time: policy.max_time,
        }
    }

    /// A new attempt: the rate is measured afresh (not the total time).
    fn restart_window(&mut self) {
        self.window_start = Instant::now();
        self.window_bytes = 0;
    }

    /// Counts `n` bytes just read; an error when the transfer is too slow.
    fn account(&mut self, url: &str, n: u64) -> Result<(), FetchError> {
        if self.start.elapsed() > self.max_time {
            return Err(FetchError::TimeLimit {
                url: redact_url(url),
                limit: self.max_time,
            });
        }
        self.window_bytes += n;
        let elapsed = self.window_start.elapsed();
        if self.min_rate > 0 && !self.window.is_zero() && elapsed >= self.window {
            let floor = (self.min_rate as f64 * elapsed.as_secs_f64()) as u64;
            if self.window_bytes < floor {
                return Err(FetchError::TooSlow {
                    url: redact_url(url),
                    bytes: self.window_bytes,
                    window: elapsed,
                    min_rate: self.min_rate,
                });
            }
            self.restart_window();
        }
        Ok(())
    }
}

/// Opens `dest` for appending, creating it 0600.
fn create_private(dest: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dest)
}

/// https always; http only under an allowed prefix; nothing else.
pub fn url_allowed(url: &str, allow_http: &[String]) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return true;
    }
    lower.starts_with("http://") && allow_http.iter().any(|p| url.starts_with(p.as_str()))
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// sha256 of bytes, hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_no_part_of_a_password() {
        for (raw, want) in [
            ("http://proxy:3128/", "http://proxy:3128/"),
            ("http://u:pw@proxy:3128/", "http://***@proxy:3128/"),
            ("http://u:p@ss@proxy:3128/", "http://***@proxy:3128/"),
            ("http://u:pa/ss@proxy/", "http://***@proxy/"),
            ("http://u:with space@proxy/", "http://***@proxy/"),
            ("https://u:p%40ss@mirror/x/", "https://***@mirror/x/"),
            ("u:pw@proxy:3128", "***@proxy:3128"),
            ("no scheme", "no scheme"),
        ] {
            assert_eq!(redact_url(raw), want, "{raw}");
        }
    }

    #[test]
    fn proxy_urls_give_up_their_credentials() {
        let p = Proxy::from_url("http://fleet:p%40ss%3Aw%2Frd@proxy:3128/", None, None).unwrap();
        assert_eq!(
            p,
            Proxy::Url {
                url: "http://proxy:3128/".into(),
                username: Some("fleet".into()),
                password: Some("p@ss:w/rd".into()),
            }
        );
        let shown = format!("{p:?}");
        assert!(!shown.contains("p@ss") && shown.contains("***"), "{shown}");
        // Ones given apart win.
        let p = Proxy::from_url("http://a:b@proxy/", Some("u".into()), Some("v".into())).unwrap();
        assert!(matches!(p, Proxy::Url { ref username, ref password, .. }
            if username.as_deref() == Some("u") && password.as_deref() == Some("v")));
        for bad in [
            "ftp://fleet:s3cret@proxy/",
            "http://fleet:s3cret@proxy:99999/",
            "fleet:s3cret@proxy",
            "http://fleet:s3cret@/",
        ] {
            let e = Proxy::from_url(bad, None, None).unwrap_err();
            assert!(!e.contains("s3cret"), "{bad}: {e}");
        }
        let e = Proxy::from_url("ftp://proxy/", None, None).unwrap_err();
        assert!(e.contains("not ftp://"), "{e}");
        // An unusable setting never builds a client that would go out
        // another way.
        let policy = FetchPolicy {
            proxy: Proxy::Invalid("x".into()),
            ..FetchPolicy::default()
        };
        assert!(Fetcher::new(policy).is_err());
    }
}
