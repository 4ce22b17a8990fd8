//! Real `.rpm` and `.deb` packages of fixture files, their repositories
//! and archives (signed where the real ones are), and installing them into
//! a root with the real rpm and dpkg.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::{fixtures_dir, read_fixture, run, Fixture};
use crate::layout::Entry;

/// One package's identity and files.
#[derive(Debug, Clone)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    /// RPM release; empty for Debian.
    pub release: String,
    pub arch: String,
    pub entries: Vec<Entry>,
    /// Dependencies: Debian `Depends` entries as written (`name (= ver)`),
    /// RPM `Requires` by name.
    pub depends: Vec<String>,
    /// RPM `Provides` beyond its name (a stand-in for a file: `/bin/sh`).
    pub provides: Vec<String>,
    /// A post-install script (`%post` / `postinst`), run by /bin/sh.
    pub post_install: Option<String>,
    /// Sign the RPM with this fixture key (`fixtures/keys/NAME.sec.asc`).
    pub signing_key: Option<String>,
}

impl Pkg {
    pub fn new(name: &str, version: &str, release: &str, arch: &str, entries: Vec<Entry>) -> Pkg {
        Pkg {
            name: name.into(),
            version: version.into(),
            release: release.into(),
            arch: arch.into(),
            entries,
            depends: Vec::new(),
            provides: Vec::new(),
            post_install: None,
            signing_key: None,
        }
    }

    pub fn depends(mut self, dep: impl Into<String>) -> Pkg {
        self.depends.push(dep.into());
        self
    }

    pub fn provides(mut self, what: impl Into<String>) -> Pkg {
        self.provides.push(what.into());
        self
    }

    /// Signs the RPM with the fixture key NAME.
    pub fn signed(mut self, key: &str) -> Pkg {
        self.signing_key = Some(key.to_string());
        self
    }

    pub fn post_install(mut self, script: impl Into<String>) -> Pkg {
        self.post_install = Some(script.into());
        self
    }

    /// `name-version-release.arch` (RPM) or `name` (Debian): what the
    /// package database is asked about.
    pub fn query_name(&self) -> String {
        if self.release.is_empty() {
            self.name.clone()
        } else {
            format!(
                "{}-{}-{}.{}",
                self.name, self.version, self.release, self.arch
            )
        }
    }

    /// Builds it as a real package: `.rpm` when it has an RPM release, else `.deb`.
    pub fn build(&self, dir: &Path) -> PathBuf {
        if self.release.is_empty() {
            build_deb(dir, self)
        } else {
            build_rpm(dir, self)
        }
    }

    /// Builds it and installs it into `root` with the real rpm or dpkg.
    pub fn install(&self, root: &Path) {
        let dir = tempfile::tempdir().expect("package dir");
        let file = self.build(dir.path());
        if self.release.is_empty() {
            dpkg_install(root, &file);
        } else {
            rpm_install(root, &file);
        }
    }
}

/// Builds a real `.rpm` with the `rpm` crate.
pub fn build_rpm(dir: &Path, pkg: &Pkg) -> PathBuf {
    let mut b = rpm::PackageBuilder::new(
        &pkg.name,
        &pkg.version,
        "GPL-2.0-only",
        &pkg.arch,
        "connector test fixture",
    );
    b.release(&pkg.release);
    b.using_config(rpm::BuildConfig::v4().source_date(1_700_000_000u32));
    for e in &pkg.entries {
        match e {
            Entry::File {
                path,
                contents,
                mode,
            } => {
                b.with_file_contents(
                    contents.clone(),
                    rpm::FileOptions::new(path.clone()).permissions(*mode as u16),
                )
                .expect("adding a file to the rpm");
            }
            Entry::Dir { path } => {
                b.with_dir_entry(rpm::FileOptions::dir(path.clone()))
                    .expect("adding a dir to the rpm");
            }
            Entry::Symlink { path, target } => {
                b.with_symlink(rpm::FileOptions::symlink(path.clone(), target.clone()))
                    .expect("adding a symlink to the rpm");
            }
        }
    }
    // Kernel packages are install-only: several versions side by side.
    // The real ones say so with this Provides, which dnf reads.
    if pkg.name.starts_with("kernel") {
        b.provides(rpm::Dependency::any("installonlypkg(kernel)"));
    }
    for p in &pkg.provides {
        b.provides(rpm::Dependency::any(p.as_str()));
    }
    for d in &pkg.depends {
        b.requires(rpm::Dependency::any(
            d.split_whitespace().next().unwrap_or(d),
        ));
    }
    if let Some(script) = &pkg.post_install {
        b.post_install_script(script.as_str());
    }
    let built = match &pkg.signing_key {
        Some(key) => {
            let secret = read_fixture(&format!("keys/{key}.sec.asc"));
            let signer = rpm::signature::pgp::Signer::from_asc(&secret)
                .expect("loading the test signing key");
            b.build_and_sign(signer)
                .expect("building and signing the rpm")
        }
        None => b.build().expect("building the rpm"),
    };
    let out = dir.join(format!(
        "{}-{}-{}.{}.rpm",
        pkg.name, pkg.version, pkg.release, pkg.arch
    ));
    built.write_file(&out).expect("writing the rpm");
    out
}

/// Builds a real `.deb` with `dpkg-deb --build`.
pub fn build_deb(dir: &Path, pkg: &Pkg) -> PathBuf {
    let stage = tempfile::tempdir().expect("staging dir");
    let s = Fixture { dir: stage };
    s.lay(&pkg.entries);
    fs::create_dir_all(s.host("/DEBIAN")).expect("DEBIAN dir");
    let depends = if pkg.depends.is_empty() {
        String::new()
    } else {
        format!("Depends: {}\n", pkg.depends.join(", "))
    };
    fs::write(
        s.host("/DEBIAN/control"),
        format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Connector Tests <tests@example.invalid>\n\
             {depends}Section: kernel\nPriority: optional\nDescription: connector test fixture\n fixture package\n",
            pkg.name, pkg.version, pkg.arch
        ),
    )
    .expect("writing control");
    if let Some(script) = &pkg.post_install {
        let p = s.host("/DEBIAN/postinst");
        fs::write(&p, format!("#!/bin/sh\n{script}\n")).expect("writing postinst");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod postinst");
    }
    let out = dir.join(format!("{}_{}_{}.deb", pkg.name, pkg.version, pkg.arch));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(s.path())
        .arg(&out));
    out
}

/// A local RPM repository: builds `pkgs` into `dir` and runs the real
/// `createrepo_c`. Returns the `file://` URL.
pub fn rpm_repo(dir: &Path, pkgs: &[Pkg]) -> String {
    fs::create_dir_all(dir).expect("repo dir");
    for p in pkgs {
        p.build(dir);
    }
    run(Command::new("createrepo_c").arg("--quiet").arg(dir));
    format!("file://{}", dir.display())
}

/// Installs the fixture public key NAME as `/etc/pki/rpm-gpg/RPM-GPG-KEY-NAME`
/// in the root: the key the root trusts.
pub fn trust_rpm_key(root: &Path, key: &str) {
    let d = root.join("etc/pki/rpm-gpg");
    fs::create_dir_all(&d).expect("rpm-gpg dir");
    fs::write(
        d.join(format!("RPM-GPG-KEY-{key}")),
        read_fixture(&format!("keys/{key}.pub.asc")),
    )
    .expect("writing the key");
}

/// One package entry of a hand-written rpm-md repository: what the
/// metadata claims, and the bytes actually served at its location.
pub struct MdEntry {
    pub name: String,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub location: String,
    /// The sha256 the metadata states (hex).
    pub sha256: String,
    pub size: u64,
}

/// Writes `repodata/primary.xml.gz` and `repodata/repomd.xml` for `entries`
/// by hand (for hostile repositories createrepo_c would never produce).
/// Returns the primary file's path.
pub fn write_rpm_md(dir: &Path, entries: &[MdEntry]) -> PathBuf {
    use std::io::Write as _;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"",
    );
    xml.push_str(&format!("{}\">\n", entries.len()));
    for e in entries {
        xml.push_str(&format!(
            "<package type=\"rpm\"><name>{}</name><arch>{}</arch><version epoch=\"0\" ver=\"{}\" rel=\"{}\"/>\
             <checksum type=\"sha256\" pkgid=\"YES\">{}</checksum><summary>x</summary>\
             <size package=\"{}\" installed=\"0\" archive=\"0\"/><location href=\"{}\"/></package>\n",
            e.name, e.arch, e.version, e.release, e.sha256, e.size, e.location
        ));
    }
    xml.push_str("</metadata>\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(xml.as_bytes()).expect("gzip");
    let primary = gz.finish().expect("gzip");
    let digest = sha256_hex(&primary);
    fs::create_dir_all(dir.join("repodata")).expect("repodata");
    let name = format!("repodata/{digest}-primary.xml.gz");
    fs::write(dir.join(&name), &primary).expect("primary");
    fs::write(
        dir.join("repodata/repomd.xml"),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\">\
             <revision>1</revision><data type=\"primary\"><checksum type=\"sha256\">{digest}</checksum>\
             <location href=\"{name}\"/><size>{}</size></data></repomd>\n",
            primary.len()
        ),
    )
    .expect("repomd");
    dir.join(name)
}

/// sha256 of bytes, hex (via the real sha256sum, independent of the code
/// under test).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running sha256sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bytes)
        .expect("feeding sha256sum");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Writes `/etc/yum.repos.d/ID.repo` in the root.
pub fn yum_repo_file(root: &Path, id: &str, baseurl: &str, enabled: bool) {
    let d = root.join("etc/yum.repos.d");
    fs::create_dir_all(&d).expect("yum.repos.d");
    fs::write(
        d.join(format!("{id}.repo")),
        format!(
            "[{id}]\nname={id}\nbaseurl={baseurl}\nenabled={}\ngpgcheck=0\n",
            u8::from(enabled)
        ),
    )
    .expect("writing the repo file");
}

/// A local apt repository (flat, `deb [trusted=yes] file:DIR ./`): builds
/// `pkgs` into `dir` and indexes it with the real `dpkg-scanpackages`.
pub fn apt_repo(dir: &Path, pkgs: &[Pkg]) {
    fs::create_dir_all(dir).expect("repo dir");
    for p in pkgs {
        p.build(dir);
    }
    let out = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "."])
        .current_dir(dir)
        .output()
        .expect("running dpkg-scanpackages");
    assert!(
        out.status.success(),
        "dpkg-scanpackages: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(dir.join("Packages"), out.stdout).expect("writing Packages");
}

/// A Debian-format archive under `dir` (`dists/SUITE/InRelease`, `main`
/// component, `binary-amd64` index, `pool/`), built with the real
/// dpkg-scanpackages and apt-ftparchive and clear-signed by the real gpg
/// with the fixture key `key`.
pub fn debian_archive(dir: &Path, suite: &str, pkgs: &[Pkg], key: &str) {
    let pool = dir.join("pool/main/l/linux");
    fs::create_dir_all(&pool).expect("pool");
    for p in pkgs {
        p.build(&pool);
    }
    let bin = dir.join(format!("dists/{suite}/main/binary-amd64"));
    fs::create_dir_all(&bin).expect("dists");
    let out = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "pool"])
        .current_dir(dir)
        .output()
        .expect("dpkg-scanpackages");
    assert!(out.status.success());
    fs::write(bin.join("Packages"), &out.stdout).expect("Packages");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &out.stdout).expect("gzip");
    fs::write(bin.join("Packages.gz"), gz.finish().expect("gzip")).expect("Packages.gz");
    let release = Command::new("apt-ftparchive")
        .args([
            "-o",
            &format!("APT::FTPArchive::Release::Suite={suite}"),
            "-o",
            &format!("APT::FTPArchive::Release::Codename={suite}"),
            "-o",
            "APT::FTPArchive::Release::Components=main",
            "-o",
            "APT::FTPArchive::Release::Architectures=amd64",
            "release",
        ])
        .arg(format!("dists/{suite}"))
        .current_dir(dir)
        .output()
        .expect("apt-ftparchive");
    assert!(
        release.status.success(),
        "apt-ftparchive: {}",
        String::from_utf8_lossy(&release.stderr)
    );
    let dists = dir.join(format!("dists/{suite}"));
    fs::write(dists.join("Release"), &release.stdout).expect("Release");
    clearsign(&dists.join("Release"), &dists.join("InRelease"), key);
}

/// Clear-signs `input` into `output` with the real gpg and fixture key `key`.
pub fn clearsign(input: &Path, output: &Path, key: &str) {
    let home = tempfile::tempdir().expect("GNUPGHOME");
    let sec = fixtures_dir().join(format!("keys/{key}.sec.asc"));
    run(Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args(["--batch", "--quiet", "--import"])
        .arg(&sec));
    let _ = fs::remove_file(output);
    run(Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args([
            "--batch",
            "--quiet",
            "--yes",
            "--digest-algo",
            "SHA256",
            "--clearsign",
            "--output",
        ])
        .arg(output)
        .arg(input));
}

/// Makes the root trust fixture key NAME for apt
/// (`/etc/apt/trusted.gpg.d/NAME.asc`).
pub fn trust_apt_key(root: &Path, key: &str) {
    let d = root.join("etc/apt/trusted.gpg.d");
    fs::create_dir_all(&d).expect("trusted.gpg.d");
    fs::write(
        d.join(format!("{key}.asc")),
        read_fixture(&format!("keys/{key}.pub.asc")),
    )
    .expect("key");
}

/// Prepares a root for apt: the directories apt and dpkg expect, and a
/// sources.list naming the repository.
pub fn apt_root(root: &Path, repo: &Path) {
    dpkg_initdb(root);
    for d in [
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "etc/apt/trusted.gpg.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/log/apt",
    ] {
        fs::create_dir_all(root.join(d)).expect("apt dirs");
    }
    fs::write(
        root.join("etc/apt/sources.list"),
        format!("deb [trusted=yes] file:{} ./\n", repo.display()),
    )
    .expect("sources.list");
}

/// Initialises an empty rpm database inside the root at `/var/lib/rpm`.
pub fn rpm_initdb(root: &Path) {
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "--initdb"]));
}

/// Installs an .rpm into the root with the real rpm (no scripts, no deps;
/// `--oldpackage` so kernels of several versions install side by side, as
/// they do on a real system).
pub fn rpm_install(root: &Path, rpm_file: &Path) {
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--nodeps",
            "--noscripts",
            "--notriggers",
            "--oldpackage",
            "--ignorearch",
        ])
        .arg(rpm_file));
}

/// Prepares an empty dpkg database inside the root.
pub fn dpkg_initdb(root: &Path) {
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        fs::create_dir_all(admin.join(d)).expect("dpkg admin dirs");
    }
    for f in ["status", "available"] {
        let p = admin.join(f);
        if !p.exists() {
            fs::write(p, "").expect("dpkg status");
        }
    }
}

/// Installs a .deb into the root with the real dpkg.
pub fn dpkg_install(root: &Path, deb: &Path) {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg("-i")
        .arg(deb));
}
