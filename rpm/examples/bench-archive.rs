//! Download+verify throughput of a large signed RPM over loopback, next to
//! `curl -o` + `sha256sum` of the same file from the same server (issue 3:
//! ratio >= 0.9) and next to the machine's SHA-256 rate over the same bytes
//! in memory (sha2, SHA-NI where the CPU has it; issue 25: >= 0.5), each
//! measured in the same rounds, interleaved.
//!
//!     cargo run --release -p connector-rpm --example bench-archive -- [SIZE_MB] [ROUNDS]
//!
//! Ours is the whole archive path: repomd.xml -> primary -> package
//! download, its sha256 and its payload digest taken while it streams ->
//! header identity -> signature against the root's key -> payload digest
//! compared. The server sends files with sendfile, so `curl -o /dev/null`
//! would be the transfer's floor.

use std::process::Command;
use std::time::{Duration, Instant};

use connector_fetch::{FetchPolicy, Fetcher};
use connector_host::Root;
use connector_rpm::archive::{fetch_verified, find_in_repo, Nevra};
use connector_tests::http::TestServer;
use connector_tests::{read_fixture, trust_rpm_key};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mb: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);

    let repo = tempfile::tempdir().unwrap();
    // Incompressible content, stored uncompressed: the transfer is the
    // package size.
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let content: Vec<u8> = (0..size_mb * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut b =
        rpm::PackageBuilder::new("kernel-devel", "5.14.0", "GPL-2.0-only", "x86_64", "bench");
    b.release("362.8.1.el9_3");
    b.using_config(
        rpm::BuildConfig::v4()
            .source_date(1_700_000_000u32)
            .compression(rpm::CompressionType::None),
    );
    b.with_file_contents(content, rpm::FileOptions::new("/usr/src/kernels/blob"))
        .unwrap();
    let signer =
        rpm::signature::pgp::Signer::from_asc(&read_fixture("keys/test-archive.sec.asc")).unwrap();
    let pkg = b.build_and_sign(signer).unwrap();
    let file = repo
        .path()
        .join("kernel-devel-5.14.0-362.8.1.el9_3.x86_64.rpm");
    pkg.write_file(&file).unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    let st = Command::new("createrepo_c")
        .arg("--quiet")
        .arg(repo.path())
        .status()
        .unwrap();
    assert!(st.success(), "createrepo_c");

    let server = TestServer::start(repo.path());
    let base = server.url("");
    let root_dir = tempfile::tempdir().unwrap();
    trust_rpm_key(root_dir.path(), "test-archive");
    let root = Root::new(root_dir.path()).unwrap();
    let want = Nevra::parse("kernel-devel-5.14.0-362.8.1.el9_3.x86_64").unwrap();
    let fetcher = Fetcher::new(FetchPolicy {
        allow_http: vec![base.clone()],
        ..FetchPolicy::default()
    })
    .unwrap();

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut hashing = Vec::new();
    let bytes = std::fs::read(&file).unwrap();
    for _ in 0..rounds {
        use sha2::Digest;
        let t = Instant::now();
        std::hint::black_box(sha2::Sha256::digest(std::hint::black_box(&bytes)));
        hashing.push(t.elapsed());
        let out = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let found = find_in_repo(&fetcher, &base, &want).unwrap();
        let keys = connector_rpm::archive::keys_at(
            &root,
            &["/etc/pki/rpm-gpg/RPM-GPG-KEY-test-archive".to_string()],
        );
        fetch_verified(&fetcher, &found, &want, &keys, out.path(), &mut |_, _| {}).unwrap();
        ours.push(t.elapsed());

        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("x.rpm");
        let t = Instant::now();
        let st = Command::new("curl")
            .args(["-s", "-f", "-o"])
            .arg(&dest)
            .arg(&found.url)
            .status()
            .unwrap();
        assert!(st.success(), "curl");
        let sum = Command::new("sha256sum").arg(&dest).output().unwrap();
        assert!(sum.status.success());
        theirs.push(t.elapsed());
        assert!(String::from_utf8_lossy(&sum.stdout).starts_with(&found.sha256));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (o, c, h) = (median(&mut ours), median(&mut theirs), median(&mut hashing));
    let mbps = |d: Duration| size as f64 / (1024.0 * 1024.0) / d.as_secs_f64();
    println!(
        "package: {:.1} MiB signed RPM, loopback HTTP, {rounds} rounds (median)",
        size as f64 / 1048576.0
    );
    println!(
        "connector-installer download+verify: {:>8.1} ms  {:>7.1} MiB/s",
        o.as_secs_f64() * 1000.0,
        mbps(o)
    );
    println!(
        "curl -o + sha256sum:                 {:>8.1} ms  {:>7.1} MiB/s",
        c.as_secs_f64() * 1000.0,
        mbps(c)
    );
    println!(
        "SHA-256 of the same bytes in memory:  {:>8.1} ms  {:>7.1} MiB/s",
        h.as_secs_f64() * 1000.0,
        mbps(h)
    );
    println!(
        "throughput ratio (ours / curl+sha256sum): {:.2}  (target >= 0.9)",
        mbps(o) / mbps(c)
    );
    println!(
        "throughput ratio (ours / SHA-256 rate): {:.2}  (target >= 0.5)",
        mbps(o) / mbps(h)
    );
}
