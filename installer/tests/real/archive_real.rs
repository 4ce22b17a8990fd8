//! The vendor-archive fallback end to end: the configured repository lacks
//! the exact kernel-devel, dnf says "No match for argument", and the package
//! comes from an archive served on loopback and laid out like CentOS's vault,
//! verified (repomd -> primary -> sha256 -> header -> signature) and then
//! installed by the real dnf. Negative cases must leave the root's packages
//! unchanged and say what was wrong.
//!
//! Tier: real tools in scratch roots; the archive is a loopback server.
#![cfg(feature = "real-tools")]

use std::path::PathBuf;
use std::process::{Command, Output};

use connector_tests::http::{Fault, TestServer};
use connector_tests::{
    require_tool, rpm_initdb, rpm_repo, sha256_hex, trust_rpm_key, write_rpm_md, yum_repo_file,
    Fixture, Kernel, Layout, MdEntry, Pkg,
};
use serde_json::Value;

const TEST_KEY: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-test-archive";
const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");
const K: &str = "4.18.0-348.7.1.el8_5.x86_64";
const VAULT: &str = "8.5.2111/BaseOS/x86_64/os";

struct Setup {
    root: Fixture,
    _repo: tempfile::TempDir,
    vault: tempfile::TempDir,
    server: TestServer,
}

impl Setup {
    /// A CentOS 8 root with kernel K installed and a working repository
    /// that lacks its kernel-devel; a vault directory served on loopback.
    fn new() -> Setup {
        require_tool("rpm");
        require_tool("dnf");
        require_tool("createrepo_c");
        let root = Fixture::new();
        root.os_release("centos-8");
        rpm_initdb(root.path());
        Kernel::new(K, Layout::El8)
            .kernel_package()
            .install(root.path());
        trust_rpm_key(root.path(), "test-archive");
        // The distribution's repository moved on: only a newer kernel-devel.
        let repo = tempfile::tempdir().unwrap();
        let newer = Kernel::new("4.18.0-348.20.1.el8_5.x86_64", Layout::El8).header_packages();
        let url = rpm_repo(repo.path(), &newer);
        yum_repo_file(root.path(), "baseos", &url, true);
        let vault = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(vault.path().join(VAULT)).unwrap();
        let server = TestServer::start(vault.path());
        Setup {
            root,
            _repo: repo,
            vault,
            server,
        }
    }

    fn vault_dir(&self) -> PathBuf {
        self.vault.path().join(VAULT)
    }

    /// archives.conf in the root: the loopback vault only (no built-ins, so
    /// nothing leaves this machine), trusting the test key for it.
    fn configure(&self, extra: &str) {
        self.configure_keys(extra, &format!(" key={TEST_KEY}"));
    }

    /// archives.conf with `keys` (options) on the vault's line.
    fn configure_keys(&self, extra: &str, keys: &str) {
        let url = self
            .server
            .url(&format!("{}/", VAULT.replace("x86_64", "{arch}")));
        self.root.file(
            "/etc/connector/archives.conf",
            &format!("# test vault\ncentos 8 * {url} allow-http{keys}\n{extra}replace-builtin\n"),
        );
    }

    /// The real kernel-devel for K, signed by `key` (None: unsigned).
    fn devel(&self, key: Option<&str>) -> Pkg {
        let p = Kernel::new(K, Layout::El8).header_packages().remove(0);
        match key {
            Some(k) => p.signed(k),
            None => p,
        }
    }

    /// Publishes packages in the vault with the real createrepo_c.
    fn publish(&self, pkgs: &[Pkg]) {
        rpm_repo(&self.vault_dir(), pkgs);
    }

    fn run(&self, extra: &[&str]) -> (Output, Value) {
        connector_tests::run_json(
            Command::new(BIN)
                .args(["headers", "--json", "--download-timeout", "2", "--root"])
                .arg(self.root.path())
                .args(extra),
        )
    }

    fn devel_installed(&self) -> bool {
        Command::new("rpm")
            .arg("--root")
            .arg(self.root.path())
            .args([
                "--dbpath",
                "/var/lib/rpm",
                "-q",
                &format!("kernel-devel-{K}"),
            ])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// The root's files, less what a failed `dnf install` legitimately
    /// leaves (its cache and logs) and sqlite's shared-memory index.
    fn package_state(&self) -> Vec<(PathBuf, String)> {
        let mut s = self.root.snapshot();
        s.retain(|(p, _)| {
            !(p.starts_with("var/cache")
                || p.starts_with("var/log")
                || p.starts_with("var/lib/dnf")
                || p.ends_with("rpmdb.sqlite-shm"))
        });
        s
    }

    /// Runs and asserts a clean failure: exit 1, nothing installed, the
    /// root's packages unchanged; returns the reason.
    fn fails(&self) -> String {
        let before = self.package_state();
        let (out, v) = self.run(&[]);
        assert_eq!(out.status.code(), Some(1), "{v}");
        let k = &v["kernels"][0];
        assert_eq!(k["state"], "failed", "{v}");
        assert!(!self.devel_installed(), "nothing installed");
        assert!(!self.root.host(&format!("/usr/src/kernels/{K}")).exists());
        assert_eq!(self.package_state(), before, "the root's packages changed");
        let reason = k["reason"].as_str().unwrap().to_string();
        assert!(
            reason.contains(&self.server.url("")),
            "names the URL tried: {reason}"
        );
        reason
    }
}

#[test]
fn missing_version_comes_from_the_archive_verified() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(Some("test-archive"))]);
    let (out, v) = s.run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k = &v["kernels"][0];
    assert_eq!(k["state"], "installed", "{v}");
    assert_eq!(k["source"], "archive");
    assert!(k["from"]
        .as_str()
        .unwrap()
        .starts_with(&s.server.url("8.5.2111/BaseOS/x86_64/os/")));
    assert!(s.devel_installed());
    assert!(s
        .root
        .host(&format!("/usr/src/kernels/{K}/Makefile"))
        .is_file());
    // The repository was tried first (and refreshed), then the archive.
    let cmds: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        cmds.last()
            .unwrap()
            .contains(&format!("kernel-devel-{K}.rpm")),
        "{cmds:?}"
    );
    let served: Vec<String> = s.server.requests().into_iter().map(|(p, _)| p).collect();
    assert!(
        served.iter().any(|p| p.ends_with("repodata/repomd.xml")),
        "{served:?}"
    );
    // Plain lines on a non-terminal stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("downloading kernel-devel-"), "{err}");
}

#[test]
fn offline_from_dir_is_verified_too() {
    let s = Setup::new();
    s.configure("");
    let dir = tempfile::tempdir().unwrap();
    let file = s.devel(Some("test-archive")).build(dir.path());
    assert_eq!(
        file.file_name().unwrap().to_string_lossy(),
        format!("kernel-devel-{K}.rpm")
    );
    let (out, v) = s.run(&["--from", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["kernels"][0]["source"], "local");
    assert!(s.devel_installed());
    assert!(s.server.requests().is_empty(), "offline: no network");

    // An unsigned file in DIR is refused.
    let s = Setup::new();
    s.configure("");
    let dir = tempfile::tempdir().unwrap();
    s.devel(None).build(dir.path());
    let (out, v) = s.run(&["--from", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        v["kernels"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not signed"),
        "{v}"
    );
    assert!(!s.devel_installed());
}

#[test]
fn sha256_mismatch_is_refused() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(Some("test-archive"))]);
    let loc = format!("{VAULT}/kernel-devel-{K}.rpm");
    s.server.fault(&loc, Fault::Corrupt);
    let reason = s.fails();
    assert!(reason.contains("does not match the repository"), "{reason}");
}

/// A mirror that serves a package whose payload was changed under its
/// signed header, with metadata made to match: the repository's sha256 and
/// the signature pass, the payload digest (taken as the package streamed)
/// does not.
#[test]
fn a_payload_changed_under_its_signed_header_is_refused() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(Some("test-archive"))]);
    let file = s.vault_dir().join(format!("kernel-devel-{K}.rpm"));
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let st = Command::new("createrepo_c")
        .arg("--quiet")
        .arg(s.vault_dir())
        .status()
        .unwrap();
    assert!(st.success());
    let reason = s.fails();
    assert!(
        reason.contains("payload sha256") && reason.contains("signed header"),
        "{reason}"
    );
}

/// A transfer broken part-way is resumed (`Range`), and what is verified
/// is the whole package: the payload digest taken across both parts.
#[test]
fn a_resumed_download_is_verified_whole() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(Some("test-archive"))]);
    let loc = format!("{VAULT}/kernel-devel-{K}.rpm");
    let size = std::fs::metadata(s.vault_dir().join(format!("kernel-devel-{K}.rpm")))
        .unwrap()
        .len() as usize;
    // Broken inside the payload.
    s.server.fault(
        &loc,
        Fault::Truncate {
            after: size / 2,
            times: 1,
        },
    );
    let (out, v) = s.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["kernels"][0]["state"], "installed", "{v}");
    let ranges: Vec<Option<String>> = s
        .server
        .requests()
        .into_iter()
        .filter(|(p, _)| p.ends_with(".rpm"))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        ranges,
        vec![None, Some(format!("bytes={}-", size / 2))],
        "one resume"
    );
    assert!(s.devel_installed());
}

#[test]
fn truncated_download_is_refused() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(Some("test-archive"))]);
    s.server.fault(
        &format!("{VAULT}/kernel-devel-{K}.rpm"),
        Fault::Truncate {
            after: 100,
            times: 100,
        },
    );
    let reason = s.fails();
    assert!(
        reason.contains("transfer interrupted after") || reason.contains("connection closed after"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("kernel-devel-{K}.rpm")),
        "{reason}"
    );
}

#[test]
fn header_naming_another_version_is_refused() {
    let s = Setup::new();
    s.configure("");
    // The file at the wanted name is another build, and the (hand-made)
    // metadata vouches for its bytes: only the header check can tell.
    let other = Kernel::new("4.18.0-348.2.1.el8_5.x86_64", Layout::El8)
        .header_packages()
        .remove(0)
        .signed("test-archive");
    let tmp = tempfile::tempdir().unwrap();
    let built = other.build(tmp.path());
    let bytes = std::fs::read(&built).unwrap();
    let loc = format!("Packages/kernel-devel-{K}.rpm");
    std::fs::create_dir_all(s.vault_dir().join("Packages")).unwrap();
    std::fs::write(s.vault_dir().join(&loc), &bytes).unwrap();
    let (ver, rest) = K.split_once('-').unwrap();
    let (rel, arch) = rest.rsplit_once('.').unwrap();
    write_rpm_md(
        &s.vault_dir(),
        &[MdEntry {
            name: "kernel-devel".into(),
            version: ver.into(),
            release: rel.into(),
            arch: arch.into(),
            location: loc,
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
        }],
    );
    let reason = s.fails();
    assert!(
        reason.contains("header says release 348.2.1.el8_5"),
        "{reason}"
    );
}

#[test]
fn unsigned_package_is_refused() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(None)]);
    let reason = s.fails();
    assert!(reason.contains("not signed"), "{reason}");
}

#[test]
fn package_signed_by_an_untrusted_key_is_refused() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(Some("wrong"))]);
    let reason = s.fails();
    assert!(
        reason.contains("does not verify against any key trusted in the root"),
        "{reason}"
    );
    assert!(
        reason.contains("RPM-GPG-KEY-test-archive"),
        "names the keys tried: {reason}"
    );
}

#[test]
fn tampered_repository_metadata_is_refused() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(Some("test-archive"))]);
    // Change one byte of the primary metadata; repomd.xml still names the
    // old digest.
    let repodata = s.vault_dir().join("repodata");
    let primary = std::fs::read_dir(&repodata)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("primary.xml"))
        .unwrap();
    let mut bytes = std::fs::read(&primary).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&primary, bytes).unwrap();
    let reason = s.fails();
    assert!(
        reason.contains("tampered or inconsistent mirror"),
        "{reason}"
    );
}

#[test]
fn a_hanging_archive_times_out() {
    let s = Setup::new();
    s.configure("");
    s.server
        .fault(&format!("{VAULT}/repodata/repomd.xml"), Fault::Hang);
    let start = std::time::Instant::now();
    let reason = s.fails();
    assert!(reason.contains("no answer within 2s"), "{reason}");
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn redirect_to_plain_http_is_refused() {
    let s = Setup::new();
    s.configure("");
    s.publish(&[s.devel(Some("test-archive"))]);
    // The package location redirects to a plain-http URL outside the
    // allowed archive root.
    std::fs::create_dir_all(s.vault.path().join("elsewhere")).unwrap();
    let pkg = std::fs::read_dir(s.vault_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rpm"))
        .unwrap();
    std::fs::copy(&pkg, s.vault.path().join("elsewhere/x.rpm")).unwrap();
    let name = pkg.file_name().unwrap().to_string_lossy().to_string();
    s.server.fault(
        &format!("{VAULT}/{name}"),
        Fault::Redirect(s.server.url("elsewhere/x.rpm")),
    );
    let reason = s.fails();
    assert!(reason.contains("plain http"), "{reason}");
    assert!(
        !s.server
            .requests()
            .iter()
            .any(|(p, _)| p == "elsewhere/x.rpm"),
        "never followed"
    );
}

#[test]
fn archive_without_the_version_names_what_was_tried() {
    let s = Setup::new();
    // Two roots, neither has it.
    let second = s.server.url("8.5.2111/AppStream/{arch}/os/");
    s.configure(&format!("centos 8 * {second} allow-http key={TEST_KEY}\n"));
    std::fs::create_dir_all(s.vault.path().join("8.5.2111/AppStream/x86_64/os")).unwrap();
    rpm_repo(&s.vault.path().join("8.5.2111/AppStream/x86_64/os"), &[]);
    s.publish(&[]);
    let reason = s.fails();
    assert!(reason.contains("Tried:"), "{reason}");
    assert!(reason.contains("8.5.2111/BaseOS/x86_64/os/"), "{reason}");
    assert!(reason.contains("8.5.2111/AppStream/x86_64/os/"), "{reason}");
    assert!(reason.contains("--from DIR"), "says what to do: {reason}");
}

#[test]
fn plain_http_archive_without_allow_http_is_a_config_error() {
    let s = Setup::new();
    s.root.file(
        "/etc/connector/archives.conf",
        &format!("centos 8 * {}\nreplace-builtin\n", s.server.url("x/")),
    );
    let out = Command::new(BIN)
        .args(["headers", "--root", s.root.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("archives.conf: line 1") && err.contains("allow-http"),
        "{err}"
    );
    assert!(s.server.requests().is_empty());
}

/// Amazon Linux 2023 with the 6.12 kernel: the configured repository has
/// moved on, and the archive is asked for the name the package database
/// derived (`kernel6.12-devel`), verified and installed.
#[test]
fn the_archive_is_asked_for_the_name_the_database_derived() {
    require_tool("rpm");
    require_tool("dnf");
    require_tool("createrepo_c");
    let k = "6.12.37-61.105.amzn2023.x86_64";
    let root = Fixture::new();
    root.os_release("amzn-2023");
    rpm_initdb(root.path());
    let kernel = Kernel::new(k, Layout::El8);
    let mut image = kernel.kernel_package();
    image.name = "kernel6.12".into();
    image.install(root.path());
    // The test key where Amazon Linux keeps its own: the built-in table
    // trusts that file for Amazon's archives (archives.conf names no key).
    root.file(
        "/etc/pki/rpm-gpg/RPM-GPG-KEY-amazon-linux-2023",
        &connector_tests::read_fixture("keys/test-archive.pub.asc"),
    );
    let repo = tempfile::tempdir().unwrap();
    let mut newer = Kernel::new("6.12.40-63.114.amzn2023.x86_64", Layout::El8).header_packages();
    newer[0].name = "kernel6.12-devel".into();
    let url = rpm_repo(repo.path(), &newer);
    yum_repo_file(root.path(), "amazonlinux", &url, true);
    let archive = tempfile::tempdir().unwrap();
    let dir = archive.path().join("al2023/x86_64");
    let mut devel = kernel.header_packages().remove(0).signed("test-archive");
    devel.name = "kernel6.12-devel".into();
    rpm_repo(&dir, &[devel]);
    let server = TestServer::start(archive.path());
    root.file(
        "/etc/connector/archives.conf",
        &format!(
            "amzn 2023 * {} allow-http\nreplace-builtin\n",
            server.url("al2023/{arch}/")
        ),
    );
    let (out, v) = connector_tests::run_json(
        Command::new(BIN)
            .args(["headers", "--json", "--download-timeout", "5", "--root"])
            .arg(root.path()),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kr = &v["kernels"][0];
    assert_eq!(kr["package"], format!("kernel6.12-devel-{k}"), "{v}");
    assert_eq!(kr["source"], "archive", "{v}");
    let q = Command::new("rpm")
        .arg("--root")
        .arg(root.path())
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-q",
            &format!("kernel6.12-devel-{k}"),
        ])
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stdout));
    let served: Vec<String> = server.requests().into_iter().map(|(p, _)| p).collect();
    assert!(
        served.iter().any(|p| p.contains("kernel6.12-devel-")),
        "{served:?}"
    );
}

/// Keys are trusted per archive (issue 13, class 8): a key that merely lies
/// in /etc/pki/rpm-gpg is not enough.
#[test]
fn only_the_keys_named_for_the_archive_are_trusted() {
    let s = Setup::new();
    s.publish(&[s.devel(Some("test-archive"))]);
    // No key=: the built-in table's key for CentOS, which the root lacks.
    s.configure_keys("", "");
    let reason = s.fails();
    assert!(
        reason.contains("none of the keys trusted for this archive is in the root")
            && reason.contains("looked for: /etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial"),
        "{reason}"
    );
    assert!(
        !reason.contains("RPM-GPG-KEY-test-archive"),
        "the key that merely lies there is not tried: {reason}"
    );
    // key= naming another key: refused the same way.
    s.configure_keys("", " key=/etc/pki/rpm-gpg/RPM-GPG-KEY-site");
    let reason = s.fails();
    assert!(
        reason.contains("looked for: /etc/pki/rpm-gpg/RPM-GPG-KEY-site"),
        "{reason}"
    );
    // The test key under the distribution's own name is trusted by the
    // built-in table.
    s.configure_keys("", "");
    s.root.file(
        "/etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial",
        &connector_tests::read_fixture("keys/test-archive.pub.asc"),
    );
    let (out, v) = s.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert!(s.devel_installed());
}

#[test]
fn the_gpgkey_of_the_roots_own_repositories_is_trusted() {
    let s = Setup::new();
    s.publish(&[s.devel(Some("test-archive"))]);
    s.configure_keys("", "");
    s.root.file(
        "/etc/yum.repos.d/vendor.repo",
        &format!(
            "[vendor]\nname=Vendor\nbaseurl=file:///nonexistent\nenabled=0\ngpgcheck=1\n\
             gpgkey=https://vendor.example/key.asc\n       file://{TEST_KEY}\n"
        ),
    );
    let (out, v) = s.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert!(s.devel_installed());
}

/// The archive's proxy, from each place the host keeps one, and in that
/// order: archives.conf's `proxy=`, then the package manager's own
/// configuration (a repository on the archive's host, then dnf.conf's
/// [main] with its credentials), then the environment. The archive is on
/// a name that does not resolve, so only a request through the loopback
/// proxy (which records what passed through it) can reach it.
#[test]
fn the_archive_is_reached_through_the_proxy_the_host_configured() {
    const HOST: &str = "http://archive.invalid/";
    let dead = "http://127.0.0.1:9/"; // discard: nothing listens
                                      // (case, archives.conf option, files in the root, environment, expect
                                      // the proxy to carry the request, expected Proxy-Authorization)
    struct Case {
        name: &'static str,
        option: String,
        files: Vec<(&'static str, String)>,
        env: Option<String>,
        through: bool,
        auth: Option<&'static str>,
    }
    let run_case = |c: Case| {
        let s = Setup::new();
        let url = format!("{HOST}{}/", VAULT.replace("x86_64", "{arch}"));
        let option = c.option.replace("PROXY", &s.server.proxy_url());
        s.root.file(
            "/etc/connector/archives.conf",
            &format!("centos 8 * {url} allow-http key={TEST_KEY}{option}\nreplace-builtin\n"),
        );
        for (path, text) in &c.files {
            s.root
                .file(path, &text.replace("PROXY", &s.server.proxy_url()));
        }
        s.publish(&[s.devel(Some("test-archive"))]);
        let mut cmd = Command::new(BIN);
        cmd.args(["headers", "--json", "--download-timeout", "2", "--root"])
            .arg(s.root.path());
        connector_tests::without_proxy_env(&mut cmd);
        if let Some(e) = &c.env {
            cmd.env("http_proxy", e.replace("PROXY", &s.server.proxy_url()));
        }
        let (out, v) = connector_tests::run_json(&mut cmd);
        let proxied = s.server.proxied();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if c.through {
            assert_eq!(out.status.code(), Some(0), "{}: {v}\n{err}", c.name);
            assert!(s.devel_installed(), "{}", c.name);
            assert!(
                proxied
                    .iter()
                    .any(|(u, _)| u.starts_with(HOST) && u.ends_with("repodata/repomd.xml")),
                "{}: {proxied:?}",
                c.name
            );
            assert!(
                proxied.iter().all(|(u, _)| u.starts_with(HOST)),
                "{proxied:?}"
            );
            let auth = proxied.iter().find_map(|(_, a)| a.clone());
            assert_eq!(auth.as_deref(), c.auth, "{}", c.name);
        } else {
            assert_eq!(out.status.code(), Some(1), "{}: {v}\n{err}", c.name);
            assert!(proxied.is_empty(), "{}: {proxied:?}", c.name);
            assert!(!s.devel_installed());
        }
        err
    };
    let dnf_main = |proxy: &str, auth: bool| {
        (
            "/etc/dnf/dnf.conf",
            format!(
                "[main]\ngpgcheck=1\nproxy={proxy}\n{}",
                if auth {
                    "proxy_username=fleet\nproxy_password=s3cret\n"
                } else {
                    ""
                }
            ),
        )
    };
    // 1. archives.conf's proxy=, over a dead one in dnf.conf.
    let err = run_case(Case {
        name: "archives.conf",
        option: " proxy=PROXY".into(),
        files: vec![dnf_main(dead, false)],
        env: Some(dead.into()),
        through: true,
        auth: None,
    });
    assert!(
        err.contains("archives.conf proxy="),
        "the source is said: {err}"
    );
    // 2. dnf.conf's [main], with its credentials, over the environment.
    let err = run_case(Case {
        name: "dnf.conf",
        option: String::new(),
        files: vec![dnf_main("PROXY", true)],
        env: Some(dead.into()),
        through: true,
        // base64("fleet:s3cret")
        auth: Some("Basic ZmxlZXQ6czNjcmV0"),
    });
    assert!(err.contains("/etc/dnf/dnf.conf [main]"), "{err}");
    assert!(
        !err.contains("s3cret"),
        "the password is never shown: {err}"
    );
    // 3. A repository on the archive's host, over [main].
    run_case(Case {
        name: "repo file",
        option: String::new(),
        files: vec![
            dnf_main(dead, false),
            (
                "/etc/yum.repos.d/archive.repo",
                format!("[archive]\nbaseurl={HOST}8.5.2111/\nenabled=0\nproxy=PROXY\n"),
            ),
        ],
        env: None,
        through: true,
        auth: None,
    });
    // 4. The environment, when nothing else names one.
    run_case(Case {
        name: "environment",
        option: String::new(),
        files: vec![],
        env: Some("PROXY".into()),
        through: true,
        auth: None,
    });
    // archives.conf's DIRECT wins over everything: no proxy, and the name
    // does not resolve.
    run_case(Case {
        name: "DIRECT",
        option: " proxy=DIRECT".into(),
        files: vec![dnf_main("PROXY", false)],
        env: Some("PROXY".into()),
        through: false,
        auth: None,
    });
}

/// issue 24, class 3: a proxy password never leaves the process, whatever
/// the URL looks like (`@`, `:`, `/`, `%40`, a space) and wherever it comes
/// from, whether the proxy is unreachable, its port impossible or its
/// scheme wrong: not in stdout, stderr (`-v` included), the JSON documents
/// of `headers` and `doctor`, nor any file the installer writes.
#[test]
fn proxy_passwords_never_leave_the_process() {
    const HOST: &str = "http://archive.invalid/";
    // (password as written in the URL, the password itself)
    let passwords = [
        ("p%40ss:w0rd", "p@ss:w0rd"),
        ("s3cr3t@x", "s3cr3t@x"),
        ("plainpw1", "plainpw1"),
        ("with space", "with space"),
        ("%2Fslash%2F", "/slash/"),
    ];
    for (written, pw) in passwords {
        // (where, archives.conf option, files, http_proxy)
        type Case<'a> = (&'a str, String, Vec<(&'a str, String)>, Option<String>);
        let mut cases: Vec<Case> = vec![
            (
                "dnf.conf, unreachable",
                String::new(),
                vec![(
                    "/etc/dnf/dnf.conf",
                    format!("[main]\ngpgcheck=1\nproxy=http://fleet:{written}@127.0.0.1:9/\n"),
                )],
                None,
            ),
            (
                "the environment, unreachable",
                String::new(),
                vec![],
                Some(format!("http://fleet:{written}@127.0.0.1:9/")),
            ),
        ];
        if !written.contains(' ') {
            cases.push((
                "archives.conf, impossible port",
                format!(" proxy=http://fleet:{written}@127.0.0.1:99999/"),
                vec![],
                None,
            ));
            cases.push((
                "archives.conf, wrong scheme",
                format!(" proxy=ftp://fleet:{written}@proxy.invalid/"),
                vec![],
                None,
            ));
        }
        for (name, option, files, env) in cases {
            let s = Setup::new();
            let url = format!("{HOST}{}/", VAULT.replace("x86_64", "{arch}"));
            s.root.file(
                "/etc/connector/archives.conf",
                &format!("centos 8 * {url} allow-http key={TEST_KEY}{option}\nreplace-builtin\n"),
            );
            for (path, text) in &files {
                s.root.file(path, text);
            }
            s.publish(&[s.devel(Some("test-archive"))]);
            let mut seen = String::new();
            for args in [
                &["headers", "--json", "-v", "--download-timeout", "2"][..],
                &["headers", "-v", "--download-timeout", "2"][..],
                &["doctor", "--json"][..],
                &["doctor"][..],
            ] {
                let mut cmd = Command::new(BIN);
                cmd.args(args).arg("--root").arg(s.root.path());
                connector_tests::without_proxy_env(&mut cmd);
                if let Some(e) = &env {
                    cmd.env("http_proxy", e);
                }
                let out = cmd.output().unwrap();
                seen.push_str(&String::from_utf8_lossy(&out.stdout));
                seen.push_str(&String::from_utf8_lossy(&out.stderr));
            }
            let mut state = String::new();
            for (p, _) in connector_tests::snapshot_dir(&s.root.host("/var/lib/connector")) {
                let file = s.root.host("/var/lib/connector").join(&p);
                if file.is_file() {
                    state.push_str(&String::from_utf8_lossy(&std::fs::read(&file).unwrap()));
                }
            }
            for (what, text) in [("output", &seen), ("state files", &state)] {
                for secret in [pw, written] {
                    assert!(
                        !text.contains(secret),
                        "{name}, password {pw:?}: {secret:?} in the {what}:\n{text}"
                    );
                }
            }
            assert!(!s.devel_installed(), "{name}");
        }
    }
}

/// issue 24, class 4: `--from DIR` whose header package is a FIFO (or a
/// device) is refused, never read: the run ends at once, the root is as it
/// was.
#[test]
fn a_from_dir_package_that_is_not_a_regular_file_is_refused() {
    for (what, mode, dev) in [
        ("a FIFO", libc::S_IFIFO, 0),
        ("a character device", libc::S_IFCHR, libc::makedev(1, 5)),
    ] {
        let s = Setup::new();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(format!("kernel-devel-{K}.rpm"));
        let c = std::ffi::CString::new(target.to_str().unwrap()).unwrap();
        // SAFETY: mknod in a scratch directory (the tests run as root).
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), mode | 0o644, dev) }, 0);
        // dnf itself ran first (its cache, logs and database files are its
        // own); nothing else may change.
        let skip = ["var/cache", "var/log", "var/lib/rpm"];
        let before = s.root.contents(&skip);
        let start = std::time::Instant::now();
        let out = Command::new("timeout")
            .args(["60", BIN, "headers", "--root"])
            .arg(s.root.path())
            .arg("--from")
            .arg(dir.path())
            .output()
            .unwrap();
        let err = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(124), "{what}: hung");
        assert_ne!(out.status.code(), Some(0), "{what}: {err}");
        assert!(err.contains(what), "{what}: {err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        assert!(!s.devel_installed());
        assert_eq!(s.root.contents(&skip), before, "{what}: the root changed");
    }
}
