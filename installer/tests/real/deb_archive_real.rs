//! The Debian side of the vendor-archive fallback: the root's apt sources
//! lack linux-headers-K, and the package (with the -common and kbuild
//! packages it depends on) comes from a Debian-format archive on loopback,
//! verified from a clear-signed InRelease (real gpg) down to each .deb, then
//! installed by the real apt-get and dpkg.
//!
//! Tier: real tools in scratch roots; the archive is a loopback server.
#![cfg(feature = "real-tools")]

use std::process::{Command, Output};

use connector_tests::http::{Fault, TestServer};
use connector_tests::{
    apt_repo, apt_root, debian_archive, require_tool, trust_apt_key, Fixture, Kernel, Layout,
};
use serde_json::Value;

const TEST_KEY: &str = "/etc/apt/trusted.gpg.d/test-archive.asc";
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
        let s = Setup {
            root,
            _sources: sources,
            archive,
            server,
            kernel,
        };
        s.configure(&format!(" key={TEST_KEY}"));
        s
    }

    /// archives.conf: the loopback archive only, with `keys` (options).
    fn configure(&self, keys: &str) {
        self.root.file(
            "/etc/connector/archives.conf",
            &format!(
                "debian 12 * {} allow-http suite=bookworm{keys}\nreplace-builtin\n",
                self.server.url("debian/")
            ),
        );
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

/// Keys are trusted per archive (issue 13, class 8): a keyring that merely
/// lies in trusted.gpg.d is not enough; the one archives.conf names, the
/// distribution's own (built-in table), or the `Signed-By` of an apt
/// source for the same URI is.
#[test]
fn only_the_keys_named_for_the_archive_are_trusted() {
    let s = Setup::new("test-archive");
    // No key= and the test key is not the distribution's keyring.
    s.configure("");
    // apt's own lists and caches may change (its "refresh once"); nothing
    // else in the root may.
    let state = || {
        let mut snap = s.root.snapshot();
        snap.retain(|(p, _)| {
            !(p.starts_with("var/lib/apt/lists")
                || p.starts_with("var/cache/apt")
                || p.starts_with("var/log"))
        });
        snap
    };
    let before = state();
    let reason = s.fails();
    assert!(
        reason.contains("none of the keys trusted for this archive is in the root")
            && reason.contains("/usr/share/keyrings/debian-archive-keyring.gpg"),
        "{reason}"
    );
    assert!(
        !s.server.requests().iter().any(|(p, _)| p.ends_with(".deb")),
        "no package was downloaded"
    );
    assert_eq!(state(), before, "the root changed");

    // key= naming a file that is not there: the same refusal, naming it.
    s.configure(" key=/usr/share/keyrings/site.gpg");
    let reason = s.fails();
    assert!(
        reason.contains("looked for: /usr/share/keyrings/site.gpg"),
        "{reason}"
    );

    // The Signed-By of a source for this very URI is trusted.
    s.configure("");
    s.root.file(
        "/etc/apt/sources.list.d/vendor.sources",
        &format!(
            "Types: deb\nURIs: {}\nSuites: bookworm\nComponents: main\nSigned-By: {TEST_KEY}\n",
            s.server.url("debian/")
        ),
    );
    let (out, v) = s.run();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert!(s.installed("linux-headers-6.1.0-18-amd64"));
}

#[test]
fn a_signed_by_for_another_uri_is_not_trusted_for_this_one() {
    let s = Setup::new("test-archive");
    s.configure("");
    s.root.file(
        "/etc/apt/sources.list.d/other.list",
        &format!("deb [signed-by={TEST_KEY}] https://elsewhere.example/debian bookworm main\n"),
    );
    let reason = s.fails();
    assert!(
        reason.contains("none of the keys trusted for this archive"),
        "{reason}"
    );
    // The one-line form for the archive's URI is.
    s.root.file(
        "/etc/apt/sources.list.d/other.list",
        &format!(
            "deb [arch=amd64 signed-by={TEST_KEY}] {} bookworm main\n",
            s.server.url("debian")
        ),
    );
    let (out, v) = s.run();
    assert_eq!(out.status.code(), Some(0), "{v}");
}

/// apt's own proxy configuration in the root carries the archive request
/// (`Acquire::http::Proxy`, nested form, and the per-host form, which wins
/// over it); its `DIRECT` for the archive's host goes without one. The
/// archive is on a name that does not resolve: only the loopback proxy can
/// reach it.
#[test]
fn the_archive_is_reached_through_apts_proxy() {
    let cases: [(&str, &str, bool); 3] = [
        (
            "general, nested",
            "Acquire {\n  http {\n    Proxy \"PROXY\";\n  };\n};\n",
            true,
        ),
        (
            "per host over general",
            "Acquire::http::Proxy \"http://127.0.0.1:9/\";\n\
             Acquire::http::Proxy::archive.invalid \"PROXY\";\n",
            true,
        ),
        (
            "DIRECT for the host",
            "Acquire::http::Proxy \"PROXY\";\nAcquire::http::Proxy::archive.invalid \"DIRECT\";\n",
            false,
        ),
    ];
    for (name, conf, through) in cases {
        let s = Setup::new("test-archive");
        s.root.file(
            "/etc/connector/archives.conf",
            &format!(
                "debian 12 * http://archive.invalid/debian/ allow-http suite=bookworm key={TEST_KEY}\n\
                 replace-builtin\n"
            ),
        );
        s.root.file(
            "/etc/apt/apt.conf.d/80proxy",
            &conf.replace("PROXY", &s.server.proxy_url()),
        );
        let mut cmd = Command::new(BIN);
        cmd.args(["headers", "--json", "--download-timeout", "2", "--root"])
            .arg(s.root.path());
        connector_tests::without_proxy_env(&mut cmd);
        let (out, v) = connector_tests::run_json(&mut cmd);
        let proxied = s.server.proxied();
        if through {
            assert_eq!(out.status.code(), Some(0), "{name}: {v}");
            assert!(s.installed("linux-headers-6.1.0-18-amd64"), "{name}");
            assert!(
                proxied
                    .iter()
                    .any(|(u, _)| u == "http://archive.invalid/debian/dists/bookworm/InRelease"),
                "{name}: {proxied:?}"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("80proxy (acquire::http::proxy"),
                "{name}: {err}"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{name}: {v}");
            assert!(proxied.is_empty(), "{name}: {proxied:?}");
        }
    }
}
