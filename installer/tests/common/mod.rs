//! Scratch roots and connector packages shared by the lifecycle tests,
//! the hook tests and the lifecycle benchmark (examples/bench-lifecycle.rs
//! includes this file). Everything takes the installer binary's path:
//! `CARGO_BIN_EXE_*` exists for tests only.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use connector_packaging::{build_deb, build_rpm, connector_payload, Family, Item};
use connector_tests::{
    apt_repo, apt_root, copy_host_program, require_tool, rpm_initdb, rpm_repo, workspace_bin,
    yum_repo_file, Entry, Fixture, Kernel, Layout, Pkg,
};

pub const EL_K1: &str = "4.18.0-513.5.1.el8_9.x86_64";
pub const EL_K2: &str = "4.18.0-513.11.1.el8_9.x86_64";
pub const DEB_K1: &str = "6.1.0-18-amd64";
pub const DEB_K2: &str = "6.1.0-20-amd64";

pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The binaries the packages carry: this installer and connectord (built
/// next to it when `connectord` is given, else by cargo).
pub fn bins(installer: &Path, connectord: Option<&Path>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(installer, d.path().join("connector-installer")).unwrap();
    let agent = connectord
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_bin("connectord"));
    std::fs::copy(agent, d.path().join("connectord")).unwrap();
    // Debug builds carry ~150 MB of debug info: packaging it in every test
    // costs minutes. What runs is the same code.
    require_tool("strip");
    for b in ["connector-installer", "connectord"] {
        let st = std::process::Command::new("strip")
            .arg("--strip-debug")
            .arg(d.path().join(b))
            .status()
            .unwrap();
        assert!(st.success(), "strip --strip-debug {b}");
    }
    d
}

/// The connector package, version `version`, built into `out`.
pub fn package(family: Family, version: &str, out: &Path, bins: &Path) -> PathBuf {
    let p = connector_payload(family, version, "1", bins, &repo_dir()).unwrap();
    match family {
        Family::Rpm => build_rpm(&p, out).unwrap(),
        Family::Deb => build_deb(&p, out).unwrap(),
    }
}

/// A lay-down payload with exactly the package's files (symlinks aside).
pub fn payload(family: Family, bins: &Path) -> tempfile::TempDir {
    let p = connector_payload(family, "1.0.0", "1", bins, &repo_dir()).unwrap();
    let d = tempfile::tempdir().unwrap();
    let files = d.path().join("files");
    for item in &p.items {
        let (path, mode) = match item {
            Item::Dir { path, mode } => (path, *mode),
            Item::File { path, mode, .. } => (path, *mode),
            Item::Symlink { .. } => continue,
        };
        let h = files.join(path.trim_start_matches('/'));
        if let Item::File { contents, .. } = item {
            std::fs::create_dir_all(h.parent().unwrap()).unwrap();
            std::fs::write(&h, contents).unwrap();
        } else {
            std::fs::create_dir_all(&h).unwrap();
        }
        std::fs::set_permissions(&h, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let manifest = connector_installer::laydown::manifest_for(&files).unwrap();
    std::fs::write(d.path().join("manifest"), manifest).unwrap();
    d
}

/// An EL 8 root: `kernels` installed with rpm, the header packages of
/// `headers_in_repo` in a local repository dnf is pointed at, and empty
/// stand-ins for what the connector package requires.
pub fn el_root(
    f: Fixture,
    kernels: &[&str],
    headers_in_repo: &[&str],
) -> (Fixture, tempfile::TempDir) {
    require_tool("rpm");
    require_tool("dnf");
    require_tool("createrepo_c");
    f.os_release("rhel-8.9");
    rpm_initdb(f.path());
    // The shell the scriptlets need, as an installed package provides it.
    let sh = std::fs::read("/bin/sh").unwrap();
    Pkg::new(
        "bash",
        "5.1",
        "1",
        "x86_64",
        vec![Entry::file("/bin/sh", sh)],
    )
    .install(f.path());
    for k in kernels {
        Kernel::new(k, Layout::El8)
            .kernel_package()
            .install(f.path());
    }
    let repo = tempfile::tempdir().unwrap();
    let mut pkgs: Vec<Pkg> = headers_in_repo
        .iter()
        .flat_map(|k| Kernel::new(k, Layout::El8).header_packages())
        .collect();
    for name in ["systemd", "policycoreutils", "libselinux-utils", "clang"] {
        pkgs.push(Pkg::new(name, "1", "1", "x86_64", vec![]));
    }
    let url = rpm_repo(repo.path(), &pkgs);
    yum_repo_file(f.path(), "baseos", &url, true);
    (f, repo)
}

/// A Debian 12 root: DEB_K1 installed with dpkg, the header packages of
/// `headers_in_repo` in a local apt repository, installed stand-ins for
/// the connector package's dependencies.
pub fn debian_root(f: Fixture, headers_in_repo: &[&str]) -> (Fixture, tempfile::TempDir) {
    require_tool("apt-get");
    require_tool("dpkg-scanpackages");
    f.os_release("debian-12");
    let repo = tempfile::tempdir().unwrap();
    apt_root(f.path(), repo.path());
    for name in ["libc6", "libgcc-s1", "libselinux1", "systemd", "clang"] {
        Pkg::new(name, "99", "", "amd64", vec![]).install(f.path());
    }
    Kernel::new(DEB_K1, Layout::Debian)
        .kernel_package()
        .install(f.path());
    let pkgs: Vec<Pkg> = headers_in_repo
        .iter()
        .flat_map(|k| Kernel::new(k, Layout::Debian).header_packages())
        .collect();
    apt_repo(repo.path(), &pkgs);
    (f, repo)
}

/// The programs scriptlets run inside the root rpm chroots into: the
/// installer's libraries, a shell, systemctl (to enable the unit).
pub fn chroot_tools(root: &Path, installer: &Path) {
    // Its libraries are what is needed (the package brings the binary).
    let b = bins(installer, None);
    copy_host_program(root, &b.path().join("connector-installer"));
    copy_host_program(root, Path::new("/usr/bin/systemctl"));
}

/// What differs between two snapshots (both directions), for messages.
pub fn differences(a: &[(PathBuf, String)], b: &[(PathBuf, String)]) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .filter(|e| !b.contains(e))
        .map(|(p, d)| format!("- {} {d}", p.display()))
        .chain(
            b.iter()
                .filter(|e| !a.contains(e))
                .map(|(p, d)| format!("+ {} {d}", p.display())),
        )
        .collect();
    out.sort();
    out
}

/// rpm's read-only queries touch its shared-memory index: not ours.
pub const RPM_SHM: &str = "var/lib/rpm/rpmdb.sqlite-shm";

pub fn snapshot(f: &Fixture) -> Vec<(PathBuf, String)> {
    f.snapshot()
        .into_iter()
        .filter(|(p, _)| !p.starts_with(RPM_SHM))
        .collect()
}

pub fn assert_same(before: &[(PathBuf, String)], after: &[(PathBuf, String)], what: &str) {
    let d = differences(before, after);
    assert!(d.is_empty(), "{what}:\n{}", d.join("\n"));
}
