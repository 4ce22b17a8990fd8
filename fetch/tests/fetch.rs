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
    })
    .unwrap()
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
    let got = fetcher(&server)
        .download(
            &server.url("pkg.rpm"),
            &dest,
            &expect(&body),
            &mut |_, _| {},
        )
        .unwrap();
    assert_eq!(got.sha256, sha256_bytes(&body));
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
