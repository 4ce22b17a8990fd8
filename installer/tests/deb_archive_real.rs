//! The Debian side of the vendor-archive fallback: the root's apt sources
//! lack linux-headers-K, and the package (with the -common and kbuild
//! packages it depends on) comes from a Debian-format archive on loopback,
//! verified from a clear-signed InRelease (real gpg) down to each .deb, then
//! installed by the real apt-get and dpkg.
//!
//! Tier: real tools in scratch roots; the archive is a loopback server.

use std::process::{Command, Output};

use connector_tests::http::{Fault, TestServer};
use connector_tests::{
    apt_repo, apt_root, debian_archive, require_tool, trust_apt_key, Fixture, Kernel, Layout,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

struct Setup {
    root: Fixture,
    _sources: tempfile::TempDir,
    archive: tempfile::TempDir,
    server: TestServer,
    kernel: Kernel,
}

impl Setup {
    fn new(signing_key: &str) -> Setup {
        for t in [
            "apt-get",
            "dpkg",
            "dpkg-scanpackages",
            "apt-ftparchive",
            "gpg",
        ] {
            require_tool(t);
        }
        let root = Fixture::new();
        root.os_release("debian-12");
        let sources = tempfile::tempdir().unwrap();
        apt_root(root.path(), sources.path());
        apt_repo(sources.path(), &[]); // the configured sources lack the headers
        let kernel = Kernel::new("6.1.0-18-amd64", Layout::Debian);
        kernel.kernel_package().install(root.path());
        trust_apt_key(root.path(), "test-archive");
        let archive = tempfile::tempdir().unwrap();
        debian_archive(
            &archive.path().join("debian"),
            "bookworm",
            &kernel.header_packages(),
            signing_key,
        );
        let server = TestServer::start(archive.path());
        root.file(
            "/etc/connector/archives.conf",
            &format!(
                "debian 12 * {} allow-http suite=bookworm\nreplace-builtin\n",
                server.url("debian/")
            ),
        );
        Setup {
            root,
            _sources: sources,
            archive,
            server,
            kernel,
        }
    }

    fn run(&self) -> (Output, Value) {
        connector_tests::run_json(
            Command::new(BIN)
                .args(["headers", "--json", "--download-timeout", "2", "--root"])
                .arg(self.root.path()),
        )
    }

    fn installed(&self, pkg: &str) -> bool {
        let out = Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}/var/lib/dpkg",
                self.root.path().display()
            ))
            .args(["-W", "-f", "${db:Status-Abbrev}", pkg])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).starts_with("ii")
    }

    fn fails(&self) -> String {
        let (out, v) = self.run();
        assert_eq!(out.status.code(), Some(1), "{v}");
        assert_eq!(v["kernels"][0]["state"], "failed", "{v}");
        for p in [
            "linux-headers-6.1.0-18-amd64",
            "linux-headers-6.1.0-18-common",
            "linux-kbuild-6.1",
        ] {
            assert!(!self.installed(p), "{p} must not be installed");
        }
        v["kernels"][0]["reason"].as_str().unwrap().to_string()
    }
}

#[test]
fn headers_and_their_kernel_dependencies_come_from_the_signed_archive() {
    let s = Setup::new("test-archive");
    let (out, v) = s.run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k = &v["kernels"][0];
    assert_eq!(k["release"], s.kernel.release);
    assert_eq!(k["state"], "installed", "{v}");
    assert_eq!(k["source"], "archive");
    assert_eq!(k["path"], "/usr/src/linux-headers-6.1.0-18-amd64");
    for p in [
        "linux-headers-6.1.0-18-amd64",
        "linux-headers-6.1.0-18-common",
        "linux-kbuild-6.1",
    ] {
        assert!(s.installed(p), "{p} installed from the archive");
    }
    let served: Vec<String> = s.server.requests().into_iter().map(|(p, _)| p).collect();
    assert!(
        served.contains(&"debian/dists/bookworm/InRelease".to_string()),
        "{served:?}"
    );
}

#[test]
fn inrelease_signed_by_an_untrusted_key_is_refused() {
    let s = Setup::new("wrong");
    let reason = s.fails();
    assert!(
        reason.contains("does not verify against any key trusted in the root"),
        "{reason}"
    );
    assert!(
        !s.server.requests().iter().any(|(p, _)| p.ends_with(".deb")),
        "no package was downloaded"
    );
}

#[test]
fn tampered_packages_index_is_refused() {
    let s = Setup::new("test-archive");
    let idx = s
        .archive
        .path()
        .join("debian/dists/bookworm/main/binary-amd64/Packages.gz");
    let mut bytes = std::fs::read(&idx).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&idx, bytes).unwrap();
    let reason = s.fails();
    assert!(reason.contains("does not match the signed"), "{reason}");
}

#[test]
fn corrupted_deb_is_refused() {
    let s = Setup::new("test-archive");
    s.server.fault(
        "debian/pool/main/l/linux/linux-headers-6.1.0-18-amd64_6.1.0-1_amd64.deb",
        Fault::Corrupt,
    );
    let reason = s.fails();
    assert!(reason.contains("does not match the repository"), "{reason}");
}
