//! The fetcher against a loopback server that misbehaves on purpose.

use std::time::{Duration, Instant};

use connector_fetch::{sha256_bytes, Expect, FetchError, FetchPolicy, Fetcher};
use connector_tests::http::{Fault, TestServer};

fn setup(size: usize) -> (tempfile::TempDir, TestServer, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("pkg.rpm"), &body).unwrap();
    let server = TestServer::start(dir.path());
    (dir, server, body)
}

fn fetcher(server: &TestServer) -> Fetcher {
    Fetcher::new(FetchPolicy {
        allow_http: vec![server.url("")],
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(800),
        attempts: 3,
        ..FetchPolicy::default()
    })
    .unwrap()
}

/// A tap that keeps what it is shown.
#[derive(Default)]
struct Collect {
    bytes: Vec<u8>,
    resets: usize,
}

impl connector_fetch::Tap for Collect {
    fn update(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }
    fn reset(&mut self) {
        self.bytes.clear();
        self.resets += 1;
    }
}

fn expect(body: &[u8]) -> Expect {
    Expect {
        sha256: Some(sha256_bytes(body)),
        size: Some(body.len() as u64),
    }
}

#[test]
fn download_verifies_size_and_digest() {
    let (_d, server, body) = setup(300_000);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.rpm");
    let mut calls = 0;
    let got = fetcher(&server)
        .download(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| calls += 1,
        )
        .unwrap();
    assert_eq!(got.size, body.len() as u64);
    assert_eq!(got.sha256, sha256_bytes(&body));
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(calls > 0, "progress reported");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn digest_mismatch_deletes_the_file() {
    let (_d, server, body) = setup(100_000);
    server.fault("pkg.rpm", Fault::Corrupt);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.rpm");
    let err = fetcher(&server)
        .download(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(
        matches!(&err, FetchError::DigestMismatch { expected, .. } if *expected == sha256_bytes(&body)),
        "{err}"
    );
    assert!(!dest.exists(), "a file that failed verification is deleted");
}

#[test]
fn broken_transfer_is_resumed_with_range() {
    let (_d, server, body) = setup(500_000);
    server.fault(
        "pkg.rpm",
        Fault::Truncate {
            after: 123_456,
            times: 1,
        },
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.rpm");
    // A tap sees the stream across the break, once, in order.
    let mut tap = Collect::default();
    let got = fetcher(&server)
        .download_tapped(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| {},
            Some(&mut tap),
        )
        .unwrap();
    assert_eq!(got.sha256, sha256_bytes(&body));
    assert_eq!(tap.resets, 0);
    assert!(tap.bytes == body, "the tap saw the body whole");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(
        reqs[1].1.as_deref(),
        Some("bytes=123456-"),
        "resumed, not restarted"
    );
}

#[test]
fn a_transfer_that_keeps_breaking_fails_after_bounded_attempts() {
    let (_d, server, body) = setup(200_000);
    server.fault(
        "pkg.rpm",
        Fault::Truncate {
            after: 1000,
            times: 100,
        },
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.rpm");
    let err = fetcher(&server)
        .download(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(err, FetchError::Transport { .. }), "{err}");
    assert_eq!(server.requests().len(), 3, "three attempts");
    assert!(!dest.exists());
}

#[test]
fn a_server_that_hangs_times_out() {
    let (_d, server, body) = setup(1000);
    server.fault("pkg.rpm", Fault::Hang);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.rpm");
    let start = Instant::now();
    let f = Fetcher::new(FetchPolicy {
        allow_http: vec![server.url("")],
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(500),
        attempts: 2,
        ..FetchPolicy::default()
    })
    .unwrap();
    let err = f
        .download(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(!dest.exists());
}

#[test]
fn plain_http_is_refused_unless_allowed() {
    let (_d, server, _body) = setup(10);
    let f = Fetcher::new(FetchPolicy::default()).unwrap();
    let err = f.get(&server.url("pkg.rpm"), 1000).unwrap_err();
    assert!(matches!(err, FetchError::InsecureUrl { .. }), "{err}");
    assert!(err.to_string().contains("allow-http"));
    assert!(server.requests().is_empty(), "no request was made");
}

#[test]
fn redirect_to_plain_http_elsewhere_is_refused() {
    let (_d, server, _body) = setup(10);
    // Allowed: only the /mirror/ prefix; the redirect leaves it.
    server.fault("mirror/pkg.rpm", Fault::Redirect(server.url("pkg.rpm")));
    let f = Fetcher::new(FetchPolicy {
        allow_http: vec![server.url("mirror/")],
        ..FetchPolicy::default()
    })
    .unwrap();
    let err = f.get(&server.url("mirror/pkg.rpm"), 1000).unwrap_err();
    assert!(matches!(err, FetchError::InsecureUrl { .. }), "{err}");
    assert_eq!(
        server.requests().len(),
        1,
        "the redirect target was never requested"
    );
}

#[test]
fn http_errors_and_size_limits() {
    let (_d, server, body) = setup(5000);
    let f = fetcher(&server);
    let err = f.get(&server.url("missing.xml"), 1000).unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }),
        "{err}"
    );
    let err = f.get(&server.url("pkg.rpm"), 100).unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 100, .. }),
        "{err}"
    );
    assert_eq!(f.get(&server.url("pkg.rpm"), 10_000).unwrap(), body);
}

/// A policy whose rate window is short enough for a test.
fn paced(server: &TestServer, min_rate: u64, window_ms: u64, max_time_ms: u64) -> Fetcher {
    Fetcher::new(FetchPolicy {
        allow_http: vec![server.url("")],
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(800),
        attempts: 3,
        min_rate,
        rate_window: Duration::from_millis(window_ms),
        max_time: Duration::from_millis(max_time_ms),
        ..FetchPolicy::default()
    })
    .unwrap()
}

#[test]
fn a_mirror_that_trickles_is_given_up_by_its_rate_not_retried() {
    // 10 bytes every 50 ms (200 B/s): never silent for the 800 ms idle
    // timeout, far below 1000 B/s.
    let (_d, server, body) = setup(100_000);
    let trickle = Fault::Trickle {
        chunk: 10,
        every: Duration::from_millis(50),
    };
    server.fault("pkg.rpm", trickle.clone());
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.rpm");
    let start = Instant::now();
    let err = paced(&server, 1000, 1000, 60_000)
        .download(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| {},
        )
        .unwrap_err();
    let took = start.elapsed();
    match &err {
        FetchError::TooSlow {
            url,
            bytes,
            min_rate,
            ..
        } => {
            assert_eq!(url, &server.url("pkg.rpm"));
            assert!(*bytes < 1000, "{err}");
            assert_eq!(*min_rate, 1000);
        }
        other => panic!("not TooSlow: {other}"),
    }
    assert!(
        err.to_string()
            .contains("below the minimum of 1000 bytes/s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
    // A verdict on the mirror: one request, no retries, nothing left.
    assert_eq!(server.requests().len(), 1);
    assert!(!dest.exists());

    // Metadata fetched into memory is held to the same rate.
    std::fs::write(_d.path().join("repomd.xml"), vec![b'x'; 50_000]).unwrap();
    server.fault("repomd.xml", trickle);
    let err = paced(&server, 1000, 1000, 60_000)
        .get(&server.url("repomd.xml"), 1 << 20)
        .unwrap_err();
    assert!(matches!(err, FetchError::TooSlow { .. }), "{err}");
}

#[test]
fn a_file_that_takes_longer_than_the_total_bound_is_given_up() {
    // 2000 B/s passes the 1000 B/s minimum, but 100 kB takes 50 s: over a
    // total bound of 1.5 s.
    let (_d, server, body) = setup(100_000);
    server.fault(
        "pkg.rpm",
        Fault::Trickle {
            chunk: 100,
            every: Duration::from_millis(50),
        },
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.rpm");
    let start = Instant::now();
    let err = paced(&server, 1000, 500, 1500)
        .download(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(
        matches!(&err, FetchError::TimeLimit { url, limit } if url == &server.url("pkg.rpm") && *limit == Duration::from_millis(1500)),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(!dest.exists());
}

#[test]
fn a_fast_enough_download_passes_the_rate_check() {
    let (_d, server, body) = setup(300_000);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.rpm");
    let got = paced(&server, 1000, 1, 60_000)
        .download(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| {},
        )
        .unwrap();
    assert_eq!(got.size, body.len() as u64);
}
