//! The Ansible collection (`ansible/ansible_collections/connector/installer`)
//! run by the real `ansible-playbook` (ansible-core from PyPI, installed by
//! scripts/setup --test) over scratch roots as separate inventory hosts:
//!
//! - `el8`: RHEL 8, the connector not installed, headers in its repository;
//! - `debian`: Debian 12, installed and healthy before the play;
//! - `faulty`: Debian 12 whose kernel's headers no repository or archive has;
//! - `image`: an AlmaLinux 8 golden image (`connector_prepare_image`).
//!
//! Check mode first (reports what would change, changes no file), then a
//! real run (changes exactly the hosts that need it, fails the faulty host
//! with its fault), then a second run (0 changed everywhere). And
//! `ansible-test sanity` on the collection.
#![cfg(feature = "real-tools")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use connector_packaging::Family;
use connector_tests::{copy_host_program, rpm_initdb, Fixture, Pkg};

use crate::common;
use crate::common::{DEB_K1, EL_K1};

const BIN: &str = env!("CARGO_BIN_EXE_connector-installer");

/// The virtual environment scripts/setup --test puts ansible-core in.
fn venv() -> PathBuf {
    let v = std::env::var_os("CONNECTOR_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/connector-tests/ansible-venv"));
    assert!(
        v.join("bin/ansible-playbook").is_file(),
        "no ansible-playbook in {}: run scripts/setup --test",
        v.display()
    );
    v
}

fn collections() -> PathBuf {
    common::repo_dir().join("ansible")
}

/// The installer's libraries, a shell and systemctl inside a root, for the
/// package scripts rpm and dpkg run chrooted there.
fn chroot_tools(root: &Path) {
    common::chroot_tools(root, Path::new(BIN));
    copy_host_program(root, Path::new("/bin/sh"));
}

/// Stand-ins for what the connector package requires, installed.
fn el_dependencies(root: &Path) {
    for name in ["systemd", "policycoreutils", "libselinux-utils", "clang"] {
        Pkg::new(name, "1", "1", "x86_64", vec![]).install(root);
    }
}

struct Host {
    name: &'static str,
    fixture: Fixture,
    _repo: tempfile::TempDir,
    package: PathBuf,
    vars: Vec<(&'static str, String)>,
}

/// Per host, the PLAY RECAP counters (`ok`, `changed`, `failed`, ...).
fn recap(out: &str) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut hosts = BTreeMap::new();
    let Some((_, tail)) = out.split_once("PLAY RECAP") else {
        panic!("no PLAY RECAP in:\n{out}");
    };
    for line in tail.lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let counts = counts
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect();
        hosts.insert(host.trim().to_string(), counts);
    }
    hosts
}

/// The collection, and every file ansible writes, in `dir`.
fn ansible_env<'a>(cmd: &'a mut Command, dir: &Path) -> &'a mut Command {
    cmd.env("ANSIBLE_COLLECTIONS_PATH", collections())
        .env("ANSIBLE_HOME", dir.join("home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", dir.join("tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
}

fn playbook(
    dir: &Path,
    inventory: &Path,
    check: bool,
) -> (String, BTreeMap<String, BTreeMap<String, u32>>) {
    let venv = venv();
    let mut cmd = Command::new(venv.join("bin/ansible-playbook"));
    ansible_env(
        cmd.arg("-i")
            .arg(inventory)
            .arg(common::repo_dir().join("tests/ansible/site.yml")),
        dir,
    )
    .env("ANSIBLE_FORCE_COLOR", "0")
    .env("ANSIBLE_RETRY_FILES_ENABLED", "0");
    if check {
        cmd.arg("--check");
    }
    let out = cmd.output().expect("running ansible-playbook");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = recap(&text);
    // 2: a host failed; anything else is the play itself going wrong.
    assert!(
        matches!(out.status.code(), Some(0) | Some(2)),
        "ansible-playbook exited {:?}:\n{text}",
        out.status.code()
    );
    (text, r)
}

fn snapshot(f: &Fixture) -> Vec<(PathBuf, String)> {
    common::snapshot(f)
}

#[test]
fn the_role_rolls_out_over_an_inventory_of_roots() {
    let bins = common::bins(Path::new(BIN), None);
    let pkgs = tempfile::tempdir().unwrap();
    let rpm = common::package(Family::Rpm, "1.0.0", pkgs.path(), bins.path());
    let deb = common::package(Family::Deb, "1.0.0", pkgs.path(), bins.path());

    // RHEL 8, nothing of the connector yet.
    let (el8, el8_repo) = common::el_root(Fixture::new(), &[EL_K1], &[EL_K1]);
    el_dependencies(el8.path());
    chroot_tools(el8.path());

    // An AlmaLinux 8 image, prepared for cloning.
    let (image, image_repo) = common::el_root(Fixture::new(), &[EL_K1], &[EL_K1]);
    image.os_release("almalinux-8.9");
    el_dependencies(image.path());
    chroot_tools(image.path());
    image.file("/var/lib/connector/agent-id", "built-on-the-image-host\n");

    // Debian 12, installed and healthy before the play.
    let (debian, debian_repo) = common::debian_root(Fixture::new(), &[DEB_K1]);
    chroot_tools(debian.path());
    let st = Command::new("dpkg")
        .arg(format!("--root={}", debian.path().display()))
        .arg("-i")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(st.status.success(), "dpkg -i: {st:?}");
    let st = Command::new(BIN)
        .args(["install", "--root"])
        .arg(debian.path())
        .output()
        .unwrap();
    assert!(st.status.success(), "install: {st:?}");
    assert_eq!(
        Command::new(BIN)
            .args(["doctor", "--root"])
            .arg(debian.path())
            .status()
            .unwrap()
            .code(),
        Some(0),
        "the healthy host is healthy"
    );

    // Debian 12 whose headers nothing can supply.
    let (faulty, faulty_repo) = common::debian_root(Fixture::new(), &[]);
    chroot_tools(faulty.path());
    faulty.file("/etc/connector/archives.conf", "replace-builtin\n");

    let hosts = vec![
        Host {
            name: "el8",
            fixture: el8,
            _repo: el8_repo,
            package: rpm.clone(),
            vars: vec![],
        },
        Host {
            name: "image",
            fixture: image,
            _repo: image_repo,
            package: rpm.clone(),
            vars: vec![("connector_prepare_image", "true".into())],
        },
        Host {
            name: "debian",
            fixture: debian,
            _repo: debian_repo,
            package: deb.clone(),
            vars: vec![],
        },
        Host {
            name: "faulty",
            fixture: faulty,
            _repo: faulty_repo,
            package: deb.clone(),
            vars: vec![],
        },
    ];
    let work = tempfile::tempdir().unwrap();
    let python = venv().join("bin/python");
    let mut inventory = String::from("[connector_hosts]\n");
    for h in &hosts {
        inventory.push_str(&format!(
            "{} ansible_connection=local ansible_python_interpreter={} connector_root={} \
             connector_package_file={} connector_installer={}",
            h.name,
            python.display(),
            h.fixture.path().display(),
            h.package.display(),
            // The managed host's installer (never the image's own).
            BIN
        ));
        for (k, v) in &h.vars {
            inventory.push_str(&format!(" {k}={v}"));
        }
        inventory.push('\n');
    }
    let inv = work.path().join("inventory.ini");
    std::fs::write(&inv, inventory).unwrap();
    let host = |n: &str| hosts.iter().find(|h| h.name == n).unwrap();

    // Check mode: what would change, and not a file changed.
    let before: Vec<_> = hosts.iter().map(|h| snapshot(&h.fixture)).collect();
    let (text, r) = playbook(work.path(), &inv, true);
    for (h, b) in hosts.iter().zip(&before) {
        common::assert_same(
            b,
            &snapshot(&h.fixture),
            &format!("check mode on {}", h.name),
        );
    }
    for n in ["el8", "image", "faulty"] {
        assert!(r[n]["changed"] > 0, "{n} would change:\n{text}");
    }
    assert_eq!(r["debian"]["changed"], 0, "the healthy host:\n{text}");
    assert!(
        r.values().all(|c| c["failed"] == 0),
        "check mode fails nobody:\n{text}"
    );

    // The real run: exactly the hosts that need it change; the faulty
    // host fails with its fault.
    let (text, r) = playbook(work.path(), &inv, false);
    for n in ["el8", "image"] {
        assert!(r[n]["changed"] > 0, "{n}:\n{text}");
        assert_eq!(r[n]["failed"], 0, "{n}:\n{text}");
        let d = Command::new(BIN)
            .args(["doctor", "--root"])
            .arg(host(n).fixture.path())
            .output()
            .unwrap();
        assert_eq!(
            d.status.code(),
            Some(0),
            "{n} healthy after the play:\n{text}"
        );
    }
    assert_eq!(r["debian"]["changed"], 0, "{text}");
    assert_eq!(r["debian"]["failed"], 0, "{text}");
    assert_eq!(r["faulty"]["failed"], 1, "{text}");
    assert!(
        text.contains(&format!(
            "fault 11 (Required kernel-devel package is missing) on {DEB_K1}"
        )),
        "the faulty host fails with its fault:\n{text}"
    );
    assert!(
        text.contains(&format!("\"faulty: fault 11 on {DEB_K1}: ")),
        "the summary names it:\n{text}"
    );
    assert!(
        !host("image")
            .fixture
            .host("/var/lib/connector/agent-id")
            .exists(),
        "the image was prepared for cloning"
    );
    assert!(
        host("el8")
            .fixture
            .host("/opt/connector/bin/connectord")
            .exists(),
        "the package was installed"
    );

    // The second run changes nothing anywhere; the fault is still a failure.
    let (text, r) = playbook(work.path(), &inv, false);
    for (n, c) in &r {
        assert_eq!(c["changed"], 0, "{n} changed on the second run:\n{text}");
    }
    assert_eq!(r["faulty"]["failed"], 1, "{text}");
    for n in ["el8", "image", "debian"] {
        assert_eq!(r[n]["failed"], 0, "{n}:\n{text}");
    }
}

/// `ansible-test sanity` over a copy of the collection (it must sit under
/// `ansible_collections/NAMESPACE/NAME`, outside any git work tree whose
/// untracked files it would skip). Its per-test virtual environments come
/// from PyPI; its pip bootstrap from the wheel scripts/setup --test cached.
#[test]
fn ansible_test_sanity_passes() {
    let venv = venv();
    let home = std::env::var_os("CONNECTOR_ANSIBLE_TEST_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/connector-tests/ansible-test-home"));
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("ansible_collections/connector/installer");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(collections().join("ansible_collections/connector/installer"))
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    let _ = std::fs::remove_dir_all(dest.join("tests/output"));
    let out = Command::new(venv.join("bin/ansible-test"))
        .args([
            "sanity",
            "--requirements",
            "--python",
            "3.11",
            "--color",
            "no",
        ])
        .current_dir(&dest)
        .env("HOME", &home)
        .env(
            "PATH",
            format!(
                "{}:{}",
                venv.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("running ansible-test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ansible-test sanity:\n{text}");
    for test in [
        "validate-modules",
        "pylint",
        "yamllint",
        "pep8",
        "ansible-doc",
    ] {
        assert!(
            text.contains(&format!("Running sanity test \"{test}\"")),
            "{test} ran:\n{text}"
        );
    }
}

/// Runs one module of the collection on localhost: (exit code, output).
fn module(dir: &Path, name: &str, args: &str, check: bool) -> (Option<i32>, String) {
    let venv = venv();
    let mut cmd = Command::new(venv.join("bin/ansible"));
    ansible_env(
        cmd.args(["localhost", "-m", name, "-a", args])
            .arg("-e")
            .arg(format!(
                "ansible_python_interpreter={}",
                venv.join("bin/python").display()
            )),
        dir,
    )
    .env("ANSIBLE_LOCALHOST_WARNING", "0")
    .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "0");
    if check {
        cmd.arg("--check");
    }
    let out = cmd.output().expect("running ansible");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// issue 24, class 7: the modules never let an argument become an option,
/// and never run a binary from inside an image unless told to.
#[test]
fn the_modules_run_nothing_an_image_or_a_file_name_chose() {
    let work = tempfile::tempdir().unwrap();
    let victim = tempfile::tempdir().unwrap();
    let marker = victim.path().join("ran");

    // A package path that reads as an rpm option: a file named
    // `--eval=%(cd;touch ran)` in the current directory (a name has no
    // `/`: `cd` goes to HOME, the victim directory here).
    let cwd = tempfile::tempdir().unwrap();
    let evil_name = "--eval=%(cd;touch ran)".to_string();
    std::fs::write(cwd.path().join(&evil_name), b"not a package").unwrap();
    let image = Fixture::new();
    image.os_release("rhel-8.9");
    rpm_initdb(image.path());
    let venv = venv();
    let mut cmd = Command::new(venv.join("bin/ansible"));
    let out = ansible_env(&mut cmd, work.path())
        .current_dir(cwd.path())
        .args([
            "localhost",
            "-m",
            "connector.installer.connector_package",
            "-a",
        ])
        .arg(format!(
            "path='{evil_name}' root={}",
            image.path().display()
        ))
        .arg("-e")
        .arg(format!(
            "ansible_python_interpreter={}",
            venv.join("bin/python").display()
        ))
        .env("HOME", victim.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(!marker.exists(), "rpm ran the file name as --eval: {text}");

    // An image whose own installer is a script that would run as root here.
    let image = Fixture::new();
    image.os_release("rhel-8.9");
    image.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    image.file(
        "/opt/connector/bin/connector-installer",
        &format!("#!/bin/sh\ntouch {}\necho '{{}}'\n", marker.display()),
    );
    Command::new("chmod")
        .arg("755")
        .arg(image.host("/opt/connector/bin/connector-installer"))
        .status()
        .unwrap();
    let root = format!("root={}", image.path().display());
    for check in [true, false] {
        for state in ["present", "diagnosed"] {
            let (_, text) = module(
                work.path(),
                "connector.installer.connector",
                &format!("{root} state={state}"),
                check,
            );
            assert!(
                !marker.exists(),
                "the image's installer ran ({state}, check {check}): {text}"
            );
        }
    }
    // Only when asked, explicitly.
    let (_, text) = module(
        work.path(),
        "connector.installer.connector",
        &format!("{root} state=diagnosed use_image_installer=true"),
        false,
    );
    assert!(marker.exists(), "use_image_installer runs it: {text}");
}
