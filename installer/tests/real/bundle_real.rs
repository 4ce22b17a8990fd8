//! `connector-installer bundle` end to end: header packages for three
//! distributions (CentOS 8 from an rpm-md vault, Debian 12 and Ubuntu 22.04
//! from clear-signed apt archives, all on loopback, signed with the test
//! key) gathered from a fleet's doctor document and `--kernel` lists,
//! verified, written with createrepo_c and dpkg-scanpackages metadata and
//! a manifest; a second run downloads nothing; `headers --from BUNDLE` then
//! installs them in roots that reach no network, and refuses a tampered
//! package or manifest with nothing changed.
#![cfg(feature = "real-tools")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connector_tests::http::TestServer;
use connector_tests::{
    apt_repo, apt_root, debian_archive, fixtures_dir, require_tool, rpm_initdb, rpm_repo, run_json,
    trust_rpm_key, yum_repo_file, Fixture, Kernel, Layout, Pkg,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");
const EL_K: &str = "4.18.0-348.7.1.el8_5.x86_64";
const VAULT: &str = "centos/8.5.2111/BaseOS/x86_64/os";
const DEB_K: &str = "6.1.0-18-amd64";
const UBU_K: &str = "5.15.0-91-generic";
const RPM_KEY: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-test-archive";

use crate::common;

fn key(name: &str) -> PathBuf {
    fixtures_dir().join(format!("keys/{name}"))
}

/// The three archives on loopback, and the archives.conf that names them.
struct Archives {
    _dir: tempfile::TempDir,
    server: TestServer,
    conf: tempfile::NamedTempFile,
}

fn archives() -> Archives {
    for t in [
        "createrepo_c",
        "dpkg-scanpackages",
        "apt-ftparchive",
        "gpg",
        "rpm",
    ] {
        require_tool(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let el = Kernel::new(EL_K, Layout::El8).header_packages().remove(0);
    rpm_repo(&dir.path().join(VAULT), &[el.signed("test-archive")]);
    debian_archive(
        &dir.path().join("debian"),
        "bookworm",
        &Kernel::new(DEB_K, Layout::Debian).header_packages(),
        "test-archive",
    );
    debian_archive(
        &dir.path().join("ubuntu"),
        "jammy",
        &Kernel::new(UBU_K, Layout::Ubuntu).header_packages(),
        "test-archive",
    );
    let server = TestServer::start(dir.path());
    let pubkey = key("test-archive.pub.asc");
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        conf.path(),
        format!(
            "centos 8 * {} allow-http key={k}\n\
             debian 12 * {} allow-http suite=bookworm key={k}\n\
             ubuntu 22.04 * {} allow-http suite=jammy key={k}\n\
             replace-builtin\n",
            server.url(&format!("{}/", VAULT.replace("x86_64", "{arch}"))),
            server.url("debian/"),
            server.url("ubuntu/"),
            k = pubkey.display()
        ),
    )
    .unwrap();
    Archives {
        _dir: dir,
        server,
        conf,
    }
}

fn bundle(a: &Archives, out: &Path, args: &[&str]) -> (Output, Value) {
    run_json(
        Command::new(BIN)
            .args(["bundle", "--json", "--download-timeout", "5", "--out"])
            .arg(out)
            .arg("--archives")
            .arg(a.conf.path())
            .args(args),
    )
}

/// A CentOS 8 host of the fleet, without the headers of its kernel: its
/// doctor document is what the bundle covers.
fn fleet_doctor(dir: &Path) -> PathBuf {
    let f = Fixture::new();
    f.os_release("centos-8");
    f.kernel(&Kernel::new(EL_K, Layout::El8));
    let out = Command::new(BIN)
        .args(["doctor", "--json", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the host has fault 11");
    let file = dir.join("centos-host.json");
    std::fs::write(&file, &out.stdout).unwrap();
    file
}

/// Builds the bundle for the three distributions.
fn built(a: &Archives, out: &Path, extra: &[&str]) -> Value {
    let docs = tempfile::tempdir().unwrap();
    let doc = fleet_doctor(docs.path());
    let (o, v) = bundle(
        a,
        out,
        &[&["--doctor", doc.to_str().unwrap()], extra].concat(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (os, k) in [("debian:12:bookworm", DEB_K), ("ubuntu:22.04:jammy", UBU_K)] {
        let (o, v) = bundle(a, out, &[&["--os", os, "--kernel", k], extra].concat());
        assert_eq!(
            o.status.code(),
            Some(0),
            "{v}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap()
}

fn headers_from(root: &Path, dir: &Path) -> (Output, Value) {
    run_json(
        Command::new(BIN)
            .args(["headers", "--json", "--download-timeout", "2", "--root"])
            .arg(root)
            .arg("--from")
            .arg(dir),
    )
}

/// A Debian-family root reaching no archive, its kernel installed.
fn deb_root(os: &str, k: &Kernel) -> (Fixture, tempfile::TempDir) {
    let root = Fixture::new();
    root.os_release(os);
    let sources = tempfile::tempdir().unwrap();
    apt_root(root.path(), sources.path());
    apt_repo(sources.path(), &[]);
    k.kernel_package().install(root.path());
    root.file("/etc/connector/archives.conf", "replace-builtin\n");
    (root, sources)
}

/// A CentOS 8 root reaching no archive, trusting the test key.
fn el_root() -> (Fixture, tempfile::TempDir) {
    let root = Fixture::new();
    root.os_release("centos-8");
    rpm_initdb(root.path());
    Kernel::new(EL_K, Layout::El8)
        .kernel_package()
        .install(root.path());
    trust_rpm_key(root.path(), "test-archive");
    let repo = tempfile::tempdir().unwrap();
    let url = rpm_repo(repo.path(), &[]);
    yum_repo_file(root.path(), "baseos", &url, true);
    root.file(
        "/etc/connector/archives.conf",
        &format!("centos 8 * https://archive.invalid/ key={RPM_KEY}\nreplace-builtin\n"),
    );
    (root, repo)
}

/// Trusts the site's bundle key in a root (`bundle-key` in archives.conf),
/// with `extra` lines before it.
fn trust_site_key(root: &Fixture, extra: &str) {
    root.file(
        "/etc/connector/bundle.asc",
        &std::fs::read_to_string(key("test-archive.pub.asc")).unwrap(),
    );
    root.file(
        "/etc/connector/archives.conf",
        &format!("{extra}bundle-key /etc/connector/bundle.asc\nreplace-builtin\n"),
    );
}

fn doctor_code(root: &Path) -> Option<i32> {
    Command::new(BIN)
        .args(["doctor", "--root"])
        .arg(root)
        .output()
        .unwrap()
        .status
        .code()
}

#[test]
fn a_bundle_for_three_distributions_serves_roots_without_network() {
    let a = archives();
    let b = tempfile::tempdir().unwrap();
    let m = built(&a, b.path(), &[]);
    let entries = m["packages"].as_array().unwrap();
    for (distro, version) in [("centos", "8"), ("debian", "12"), ("ubuntu", "22.04")] {
        assert!(
            entries
                .iter()
                .any(|e| e["distro"] == distro && e["version"] == version),
            "{distro} {version} in {m:#}"
        );
    }
    for e in entries {
        let file = b.path().join(e["file"].as_str().unwrap());
        assert!(file.is_file(), "{e}");
        assert_eq!(
            connector_tests::sha256_hex(&std::fs::read(&file).unwrap()),
            e["sha256"].as_str().unwrap()
        );
        assert!(
            e["source"].as_str().unwrap().contains("127.0.0.1"),
            "where it came from: {e}"
        );
    }
    // Metadata the distributions' own tools read.
    assert!(b.path().join("centos-8/repodata/repomd.xml").is_file());
    let packages = std::fs::read_to_string(b.path().join("debian-12/Packages")).unwrap();
    assert!(
        packages.contains(&format!("Package: linux-headers-{DEB_K}")),
        "{packages}"
    );
    assert!(b.path().join("ubuntu-22.04/Packages").is_file());

    // Again: everything is there, nothing is downloaded.
    let served = a.server.requests().len();
    let m2 = built(&a, b.path(), &[]);
    assert_eq!(m, m2, "the manifest is unchanged");
    let again: Vec<_> = a.server.requests()[served..]
        .iter()
        .filter(|(p, _)| p.ends_with(".rpm") || p.ends_with(".deb"))
        .cloned()
        .collect();
    assert!(again.is_empty(), "a re-run downloads nothing: {again:?}");

    // A package gone from the bundle is downloaded again, alone.
    let gone = b.path().join(entries[0]["file"].as_str().unwrap());
    std::fs::remove_file(&gone).unwrap();
    let served = a.server.requests().len();
    built(&a, b.path(), &[]);
    assert!(gone.is_file());
    let fetched: Vec<_> = a.server.requests()[served..]
        .iter()
        .filter(|(p, _)| p.ends_with(".rpm") || p.ends_with(".deb"))
        .cloned()
        .collect();
    assert_eq!(fetched.len(), 1, "{fetched:?}");

    // issue 24, class 6: what an interrupted run left is cleaned up by the
    // next one; a link of that name is not followed.
    let stale = b.path().join(".download-interrupted");
    std::fs::create_dir_all(stale.join("sub")).unwrap();
    std::fs::write(stale.join("sub/partial.rpm"), b"half").unwrap();
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("keep"), b"keep").unwrap();
    let planted = b.path().join(".download-link");
    std::os::unix::fs::symlink(victim.path(), &planted).unwrap();
    let victim_before = connector_tests::snapshot_dir(victim.path());
    built(&a, b.path(), &[]);
    assert!(!stale.exists(), "the partial download is gone");
    assert_eq!(connector_tests::snapshot_dir(victim.path()), victim_before);
    std::fs::remove_file(&planted).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(b.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".download-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The roots: no archive reachable, the bundle only.
    let signed = tempfile::tempdir().unwrap();
    built(
        &a,
        signed.path(),
        &["--sign-key", key("test-archive.sec.asc").to_str().unwrap()],
    );
    let served = a.server.requests().len();
    let (el, _repo) = el_root();
    let (o, v) = headers_from(el.path(), b.path());
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["kernels"][0]["source"], "local");
    assert_eq!(doctor_code(el.path()), Some(0));
    // A .deb has no signature of its own: an unsigned bundle verifies
    // nothing for Debian, and is refused there; the signed one serves.
    for (os, k) in [
        ("debian-12", Kernel::new(DEB_K, Layout::Debian)),
        ("ubuntu-22.04", Kernel::new(UBU_K, Layout::Ubuntu)),
    ] {
        let (root, _sources) = deb_root(os, &k);
        refused(&root, b.path(), "the bundle is unsigned");
        trust_site_key(&root, "");
        let (o, v) = headers_from(root.path(), signed.path());
        assert_eq!(o.status.code(), Some(0), "{os}: {v:#}");
        assert!(
            v["kernels"][0]["from"]
                .as_str()
                .unwrap()
                .contains("(bundle signed by /etc/connector/bundle.asc)"),
            "{v:#}"
        );
        assert_eq!(doctor_code(root.path()), Some(0), "{os}");
    }
    assert_eq!(
        a.server.requests().len(),
        served,
        "no network while consuming"
    );
}

/// A copy of the bundle to spoil.
fn copy(b: &Path) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", b.display()))
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    d
}

/// The root's state, the package managers' metadata caches, logs and
/// database files aside (the repositories are asked, and refreshed, before
/// any bundle is opened).
fn state(root: &Fixture) -> Vec<(PathBuf, String)> {
    common::snapshot(root)
        .into_iter()
        .filter(|(p, _)| {
            ![
                "var/lib/apt/lists",
                "var/cache",
                "var/log",
                "var/lib/dnf",
                "var/lib/rpm",
            ]
            .iter()
            .any(|s| p.starts_with(s))
        })
        .collect()
}

fn refused(root: &Fixture, dir: &Path, says: &str) {
    let before = state(root);
    let (o, v) = headers_from(root.path(), dir);
    assert_eq!(o.status.code(), Some(1), "{v:#}");
    let reason = v["kernels"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(says), "{says:?} in {reason}");
    common::assert_same(&before, &state(root), "a refused bundle changes nothing");
}

#[test]
fn tampered_packages_and_manifests_are_refused_with_nothing_changed() {
    let a = archives();
    let b = tempfile::tempdir().unwrap();
    built(
        &a,
        b.path(),
        &["--sign-key", key("test-archive.sec.asc").to_str().unwrap()],
    );
    assert!(b.path().join("manifest.json.asc").is_file());
    // The distributions' metadata is signed too, as gpg itself checks.
    let home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&str]| {
        Command::new("gpg")
            .arg("--homedir")
            .arg(home.path())
            .arg("--batch")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        gpg(&["--import", key("test-archive.pub.asc").to_str().unwrap()])
            .status
            .success()
    );
    for (sig, data) in [
        (
            "centos-8/repodata/repomd.xml.asc",
            Some("centos-8/repodata/repomd.xml"),
        ),
        ("debian-12/InRelease", None),
        ("ubuntu-22.04/InRelease", None),
        ("manifest.json.asc", Some("manifest.json")),
    ] {
        let sig = b.path().join(sig);
        let mut args = vec!["--verify".to_string(), sig.display().to_string()];
        if let Some(d) = data {
            args.push(b.path().join(d).display().to_string());
        }
        let out = gpg(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}: {out:?}", sig.display());
    }
    let release = std::fs::read_to_string(b.path().join("debian-12/Release")).unwrap();
    let packages = std::fs::read(b.path().join("debian-12/Packages")).unwrap();
    assert!(
        release.contains(&connector_tests::sha256_hex(&packages)),
        "Release carries the Packages digest: {release}"
    );
    let k = Kernel::new(DEB_K, Layout::Debian);

    // apt and dnf take the bundle as a repository of their own, apt with
    // the site's key (signed-by), not trusted=yes.
    let (root, _s) = deb_root("debian-12", &k);
    root.file(
        "/etc/apt/keyrings/site.asc",
        &std::fs::read_to_string(key("test-archive.pub.asc")).unwrap(),
    );
    root.file(
        "/etc/apt/sources.list",
        &format!(
            "deb [signed-by={}] file:{}/debian-12 ./\n",
            root.host("/etc/apt/keyrings/site.asc").display(),
            b.path().display()
        ),
    );
    let (o, v) = run_json(
        Command::new(BIN)
            .args(["headers", "--json", "--root"])
            .arg(root.path()),
    );
    assert_eq!(o.status.code(), Some(0), "apt reads the bundle: {v:#}");
    assert_eq!(v["kernels"][0]["source"], "repository", "{v:#}");
    let (el, _repo) = el_root();
    connector_tests::yum_repo_file(
        el.path(),
        "baseos",
        &format!("file://{}/centos-8", b.path().display()),
        true,
    );
    let (o, v) = run_json(
        Command::new(BIN)
            .args(["headers", "--json", "--root"])
            .arg(el.path()),
    );
    assert_eq!(o.status.code(), Some(0), "dnf reads the bundle: {v:#}");
    assert_eq!(v["kernels"][0]["source"], "repository", "{v:#}");

    // The site's key in a root, named in archives.conf.
    let site_root = || {
        let (root, s) = deb_root("debian-12", &k);
        root.file(
            "/etc/connector/bundle.asc",
            &std::fs::read_to_string(key("test-archive.pub.asc")).unwrap(),
        );
        root.file(
            "/etc/connector/archives.conf",
            "bundle-key /etc/connector/bundle.asc\nreplace-builtin\n",
        );
        (root, s)
    };

    // One byte of a package changed.
    let (root, _s) = site_root();
    let spoilt = copy(b.path());
    let deb = std::fs::read_dir(spoilt.path().join("debian-12"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy()
                .contains(&format!("linux-headers-{DEB_K}_"))
        })
        .unwrap();
    let mut bytes = std::fs::read(&deb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&deb, bytes).unwrap();
    refused(&root, spoilt.path(), "does not match the manifest");

    // The site requires its signature: the signed bundle is used...
    let (root, _s) = site_root();
    let (o, v) = headers_from(root.path(), copy(b.path()).path());
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert!(
        v["kernels"][0]["from"]
            .as_str()
            .unwrap()
            .contains("signed by /etc/connector/bundle.asc"),
        "{v:#}"
    );

    // ...a manifest edited after signing is not,
    let (root, _s) = site_root();
    let spoilt = copy(b.path());
    let m = spoilt.path().join("manifest.json");
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("127.0.0.1", "127.0.0.2");
    std::fs::write(&m, text).unwrap();
    refused(&root, spoilt.path(), "manifest.json.asc");
    // nor one without its signature,
    let spoilt = copy(b.path());
    std::fs::remove_file(spoilt.path().join("manifest.json.asc")).unwrap();
    refused(&root, spoilt.path(), "bundles must be signed");
    // nor one signed by another key,
    let other = copy(b.path());
    let st = Command::new(BIN)
        .args(["bundle", "--out"])
        .arg(other.path())
        .arg("--archives")
        .arg(a.conf.path())
        .args([
            "--os",
            "debian:12:bookworm",
            "--kernel",
            DEB_K,
            "--sign-key",
        ])
        .arg(key("wrong.sec.asc"))
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    refused(&root, other.path(), "manifest.json.asc");
    // and a manifest that is not one is refused by name.
    let spoilt = copy(b.path());
    std::fs::write(spoilt.path().join("manifest.json"), "{\"packages\": 3}").unwrap();
    std::fs::remove_file(spoilt.path().join("manifest.json.asc")).unwrap();
    let (root, _s) = deb_root("debian-12", &k);
    refused(&root, spoilt.path(), "not a bundle manifest");
    // A signed bundle where no key is configured says what to configure.
    let (root, _s) = deb_root("debian-12", &k);
    refused(&root, copy(b.path()).path(), "bundle-key PATH");
}

/// archives.conf `bundle LOCATION`: what the package hooks' deferred job
/// (`install --after-transaction`) and a plain `headers` use, before any
/// archive. A bundle inside the root, and one mirrored over HTTP.
#[test]
fn configured_bundles_serve_headers_without_from() {
    let a = archives();
    let b = tempfile::tempdir().unwrap();
    built(
        &a,
        b.path(),
        &["--sign-key", key("test-archive.sec.asc").to_str().unwrap()],
    );
    let k = Kernel::new(DEB_K, Layout::Debian);

    // In the root, at /srv/connector-bundle.
    let (root, _s) = deb_root("debian-12", &k);
    std::fs::create_dir_all(root.host("/srv")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(b.path())
        .arg(root.host("/srv/connector-bundle"))
        .status()
        .unwrap();
    assert!(st.success());
    trust_site_key(&root, "bundle /srv/connector-bundle\n");
    let (o, v) = run_json(
        Command::new(BIN)
            .args(["headers", "--json", "--root"])
            .arg(root.path()),
    );
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert!(
        v["kernels"][0]["from"]
            .as_str()
            .unwrap()
            .starts_with("bundle /srv/connector-bundle"),
        "{v:#}"
    );
    assert_eq!(doctor_code(root.path()), Some(0));

    // Mirrored on an internal web server; only this kernel's files fetched.
    let mirror = TestServer::start(b.path());
    let (root, _s) = deb_root("debian-12", &k);
    trust_site_key(&root, &format!("bundle {} allow-http\n", mirror.url("")));
    let (o, v) = run_json(
        Command::new(BIN)
            .args(["headers", "--json", "--root"])
            .arg(root.path()),
    );
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(doctor_code(root.path()), Some(0));
    let fetched: Vec<String> = mirror.requests().into_iter().map(|(p, _)| p).collect();
    assert!(
        fetched.iter().any(|p| p.ends_with("manifest.json")),
        "{fetched:?}"
    );
    assert!(
        fetched
            .iter()
            .filter(|p| p.ends_with(".deb") || p.ends_with(".rpm"))
            .all(|p| p.starts_with("debian-12/")),
        "only what this root needs: {fetched:?}"
    );

    // A mirror that serves a changed file is refused, and says so.
    let spoilt = copy(b.path());
    let deb = std::fs::read_dir(spoilt.path().join("debian-12"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy()
                .contains(&format!("linux-headers-{DEB_K}_"))
        })
        .unwrap();
    let mut bytes = std::fs::read(&deb).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&deb, bytes).unwrap();
    let bad = TestServer::start(spoilt.path());
    let (root, _s) = deb_root("debian-12", &k);
    trust_site_key(&root, &format!("bundle {} allow-http\n", bad.url("")));
    let before = state(&root);
    let (o, v) = run_json(
        Command::new(BIN)
            .args(["headers", "--json", "--root"])
            .arg(root.path()),
    );
    assert_eq!(o.status.code(), Some(1), "{v:#}");
    let reason = v["kernels"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("was taken from no configured bundle"),
        "{reason}"
    );
    assert!(reason.contains("sha256"), "{reason}");
    common::assert_same(&before, &state(&root), "a refused mirror changes nothing");
}

/// Adds `file` to a copy of the bundle's manifest as serving `serves`
/// (an unsigned bundle: nothing covers the manifest), `times` times.
fn smuggle(
    dir: &Path,
    file: &Path,
    into: &str,
    serves: &str,
    distro: &str,
    version: &str,
    times: usize,
) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let rel = format!("{into}/{name}");
    if file != dir.join(&rel) {
        std::fs::copy(file, dir.join(&rel)).unwrap();
    }
    let bytes = std::fs::read(dir.join(&rel)).unwrap();
    let m_path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&m_path).unwrap()).unwrap();
    let kernel = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["serves"] == serves)
        .map(|e| e["kernel"].clone())
        .expect("the package is in the bundle");
    for _ in 0..times {
        m["packages"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "file": rel,
                "serves": serves,
                "distro": distro,
                "version": version,
                "kernel": kernel,
                "sha256": connector_tests::sha256_hex(&bytes),
                "size": bytes.len(),
                "source": "smuggled",
            }));
    }
    std::fs::write(&m_path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// issue 24, class 1: a file that is not the package asked for (nor one it
/// needs), or not verified by the family's own checks, never reaches the
/// package manager, whatever the manifest lists; a file listed many times
/// is handed over once.
#[test]
fn a_bundle_hands_the_package_manager_only_what_it_was_asked_for() {
    let a = archives();
    let b = tempfile::tempdir().unwrap();
    built(&a, b.path(), &[]);
    assert!(!b.path().join("manifest.json.asc").exists(), "unsigned");
    let devel = format!("kernel-devel-{EL_K}");
    let pkgs = tempfile::tempdir().unwrap();

    // RPM: an unsigned stranger, a signed-looking stranger (the devel of
    // another kernel, signed by the archive's key), and a file that claims
    // to be the package under another name.
    let stranger = Pkg::new("zz-other", "1", "1", "x86_64", vec![]).build(pkgs.path());
    let other_kernel = Kernel::new("4.18.0-305.3.1.el8.x86_64", Layout::El8)
        .header_packages()
        .into_iter()
        .next()
        .unwrap()
        .signed("test-archive")
        .build(pkgs.path());
    for (what, file, says) in [
        (
            "an unsigned stranger",
            &stranger,
            "zz-other-1-1.x86_64 is neither",
        ),
        ("another kernel's devel", &other_kernel, "is neither"),
    ] {
        let d = copy(b.path());
        smuggle(d.path(), file, "centos-8", &devel, "centos", "8", 1);
        let (el, _repo) = el_root();
        let before = state(&el);
        let (o, v) = headers_from(el.path(), d.path());
        assert_eq!(o.status.code(), Some(1), "{what}: {v:#}");
        let reason = v["kernels"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(says), "{what}: {says:?} in {reason}");
        common::assert_same(&before, &state(&el), "a refused bundle changes nothing");
        let q = Command::new("rpm")
            .arg("--root")
            .arg(el.path())
            .args(["--dbpath", "/var/lib/rpm", "-q", "zz-other"])
            .output()
            .unwrap();
        assert!(!q.status.success(), "{what}: zz-other was installed");
    }

    // The package itself listed 2,000 times more: handed over once.
    let d = copy(b.path());
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("manifest.json")).unwrap())
            .unwrap();
    let own = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["serves"] == devel.as_str())
        .map(|e| d.path().join(e["file"].as_str().unwrap()))
        .unwrap();
    let into = own
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    smuggle(d.path(), &own, &into, &devel, "centos", "8", 2000);
    let (el, _repo) = el_root();
    let (o, v) = headers_from(el.path(), d.path());
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    let cmds = v["kernels"][0].to_string() + &v["commands"].to_string();
    let name = own.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        cmds.matches(&name).count() <= 2,
        "the file is handed over once: {}",
        cmds.len()
    );

    // Debian: a stranger listed for the headers package.
    let d = copy(b.path());
    let deb_stranger = Pkg::new("zz-other", "1", "", "amd64", vec![]).build(pkgs.path());
    smuggle(
        d.path(),
        &deb_stranger,
        "debian-12",
        &format!("linux-headers-{DEB_K}"),
        "debian",
        "12",
        1,
    );
    let k = Kernel::new(DEB_K, Layout::Debian);
    let (root, _s) = deb_root("debian-12", &k);
    refused(&root, d.path(), "the bundle is unsigned");
}
