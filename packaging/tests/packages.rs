//! The built packages, installed for real into scratch roots: `rpm
//! --root` and `dpkg --root`, with their scriptlets running; files, modes,
//! configuration rules across an upgrade, removal and purge.
//!
//! The binaries packaged here are small stand-ins that record how the
//! scriptlets call them: this tests the packages and their wiring; the
//! hook's own behaviour is tested with the real binary in installer/tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connector_packaging::{build_deb, build_rpm, connector_payload, Family, Item, Payload, CONFIG};
use connector_tests::{copy_host_program, dpkg_initdb, require_tool, rpm_initdb, Fixture};

/// Stand-in binaries: connector-installer logs its arguments.
fn bins() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("connector-installer"),
        "#!/bin/sh\necho \"hook-called $*\" >> \"${DPKG_ROOT}/var/log/connector/hooks.log\"\n",
    )
    .unwrap();
    std::fs::write(d.path().join("connectord"), "#!/bin/sh\nexit 0\n").unwrap();
    d
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn payload(family: Family, version: &str, conf: &str) -> Payload {
    let b = bins();
    let mut p = connector_payload(family, version, "1", b.path(), &repo()).unwrap();
    for item in &mut p.items {
        if let Item::File { path, contents, .. } = item {
            if path == "/etc/connector/connector.conf" {
                *contents = conf.as_bytes().to_vec();
            }
        }
    }
    p
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rpm(root: &Path, args: &[&str]) -> Output {
    Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn builds_are_reproducible() {
    let out1 = tempfile::tempdir().unwrap();
    let out2 = tempfile::tempdir().unwrap();
    for (fam, build) in [
        (
            Family::Rpm,
            build_rpm as fn(&Payload, &Path) -> anyhow::Result<PathBuf>,
        ),
        (Family::Deb, build_deb),
    ] {
        let a = build(&payload(fam, "1.0.0", CONFIG), out1.path()).unwrap();
        let b = build(&payload(fam, "1.0.0", CONFIG), out2.path()).unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{} differs",
            a.display()
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-packaging/real-tools (scripts/test)"
)]
fn rpm_installs_upgrades_and_removes_with_its_scriptlets() {
    require_tool("rpm");
    let out = tempfile::tempdir().unwrap();
    let v1 = build_rpm(
        &payload(Family::Rpm, "1.0.0", "interval = 30\n"),
        out.path(),
    )
    .unwrap();
    let v2 = build_rpm(
        &payload(Family::Rpm, "1.0.1", "interval = 20\n"),
        out.path(),
    )
    .unwrap();
    // Metadata.
    let scripts = ok(
        Command::new("rpm")
            .args(["-qp", "--scripts"])
            .arg(&v1)
            .output()
            .unwrap(),
        "rpm -qp --scripts",
    );
    for h in [
        "hook rpm-post",
        "hook rpm-preun",
        "hook rpm-postun",
        "hook rpm-posttrans",
    ] {
        assert!(scripts.contains(h), "{scripts}");
    }
    let k = ok(
        Command::new("rpm").arg("-K").arg(&v1).output().unwrap(),
        "rpm -K",
    );
    assert!(k.contains("digests OK"), "{k}");
    let reqs = ok(
        Command::new("rpm")
            .args(["-qp", "--requires"])
            .arg(&v1)
            .output()
            .unwrap(),
        "requires",
    );
    assert!(
        reqs.contains("policycoreutils") && reqs.contains("systemd"),
        "{reqs}"
    );
    // connectord compiles its probe: the compiler is a dependency.
    assert!(reqs.lines().any(|l| l.trim() == "clang"), "{reqs}");
    let cfg = ok(
        Command::new("rpm")
            .args(["-qpc"])
            .arg(&v1)
            .output()
            .unwrap(),
        "rpm -qpc",
    );
    assert_eq!(cfg.trim(), "/etc/connector/connector.conf");

    // Install into a scratch root; scriptlets run chrooted there.
    let f = Fixture::new();
    rpm_initdb(f.path());
    copy_host_program(f.path(), Path::new("/bin/sh"));
    ok(
        rpm(f.path(), &["-i", "--nodeps", v1.to_str().unwrap()]),
        "rpm -i",
    );
    let bin = f.host("/opt/connector/bin/connectord");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&f.host("/var/lib/connector")), 0o750);
    assert_eq!(
        std::fs::read_link(f.host("/usr/sbin/connector-installer")).unwrap(),
        Path::new("../../opt/connector/bin/connector-installer")
    );
    assert!(f
        .host("/usr/share/selinux/packages/connectord.cil")
        .is_file());
    assert!(f
        .host("/usr/lib/systemd/system/connectord.service")
        .is_file());
    let log = std::fs::read_to_string(f.host("/var/log/connector/hooks.log")).unwrap();
    assert!(log.contains("hook-called hook rpm-post 1"), "{log}");
    assert!(log.contains("hook-called hook rpm-posttrans"), "{log}");
    ok(rpm(f.path(), &["-V", "--nodeps", "connector"]), "rpm -V");

    // The administrator changes the config; the upgrade keeps it.
    std::fs::write(
        f.host("/etc/connector/connector.conf"),
        "interval = 5 # mine\n",
    )
    .unwrap();
    ok(
        rpm(f.path(), &["-U", "--nodeps", v2.to_str().unwrap()]),
        "rpm -U",
    );
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/connector/connector.conf")).unwrap(),
        "interval = 5 # mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/connector/connector.conf.rpmnew")).unwrap(),
        "interval = 20\n"
    );
    let log = std::fs::read_to_string(f.host("/var/log/connector/hooks.log")).unwrap();
    assert!(
        log.contains("hook-called hook rpm-post 2"),
        "upgrade: {log}"
    );
    assert!(
        log.contains("hook-called hook rpm-postun 1"),
        "old version's postun: {log}"
    );

    // Removal: everything goes but the changed configuration.
    ok(rpm(f.path(), &["-e", "--nodeps", "connector"]), "rpm -e");
    assert!(!bin.exists());
    assert!(!f
        .host("/usr/lib/systemd/system/connectord.service")
        .exists());
    assert!(
        f.host("/etc/connector/connector.conf.rpmsave").is_file(),
        "changed config saved"
    );
}

#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-packaging/real-tools (scripts/test)"
)]
fn deb_installs_upgrades_removes_and_purges_with_its_scripts() {
    require_tool("dpkg");
    require_tool("dpkg-deb");
    let out = tempfile::tempdir().unwrap();
    let v1 = build_deb(
        &payload(Family::Deb, "1.0.0", "interval = 30\n"),
        out.path(),
    )
    .unwrap();
    let v2 = build_deb(
        &payload(Family::Deb, "1.0.1", "interval = 20\n"),
        out.path(),
    )
    .unwrap();
    let info = ok(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&v1)
            .output()
            .unwrap(),
        "dpkg-deb -I",
    );
    assert!(
        info.contains("Package: connector") && info.contains("Version: 1.0.0-1"),
        "{info}"
    );
    let depends = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .unwrap_or("");
    assert!(
        depends.split(", ").any(|d| d == "clang"),
        "the probe's compiler is a dependency: {depends}"
    );
    let contents = ok(
        Command::new("dpkg-deb")
            .arg("-c")
            .arg(&v1)
            .output()
            .unwrap(),
        "dpkg-deb -c",
    );
    assert!(
        contents.contains("opt/connector/bin/connectord"),
        "{contents}"
    );
    assert!(contents.contains("root/root"), "{contents}");

    let f = Fixture::new();
    dpkg_initdb(f.path());
    let dpkg = |args: &[&str]| {
        Command::new("dpkg")
            .arg(format!("--root={}", f.path().display()))
            .args(["--force-script-chrootless", "--force-depends"])
            .args(args)
            .output()
            .unwrap()
    };
    ok(dpkg(&["-i", v1.to_str().unwrap()]), "dpkg -i");
    assert_eq!(
        mode(&f.host("/opt/connector/bin/connector-installer")),
        0o755
    );
    assert!(f.host("/lib/systemd/system/connectord.service").is_file());
    let log = std::fs::read_to_string(f.host("/var/log/connector/hooks.log")).unwrap();
    assert!(
        log.contains(&format!(
            "hook-called hook deb-postinst --root {} configure",
            f.path().display()
        )),
        "{log}"
    );
    // dpkg's own check of the installed files (md5sums).
    let verify = dpkg(&["--verify", "connector"]);
    assert!(
        verify.status.success() && verify.stdout.is_empty(),
        "dpkg --verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );

    std::fs::write(
        f.host("/etc/connector/connector.conf"),
        "interval = 5 # mine\n",
    )
    .unwrap();
    ok(
        dpkg(&["--force-confold", "-i", v2.to_str().unwrap()]),
        "dpkg -i (upgrade)",
    );
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/connector/connector.conf")).unwrap(),
        "interval = 5 # mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.host("/etc/connector/connector.conf.dpkg-dist")).unwrap(),
        "interval = 20\n"
    );

    ok(dpkg(&["-r", "connector"]), "dpkg -r");
    assert!(!f.host("/opt/connector/bin/connectord").exists());
    assert!(
        f.host("/etc/connector/connector.conf").is_file(),
        "remove keeps conffiles"
    );
    let log = std::fs::read_to_string(f.host("/var/log/connector/hooks.log")).unwrap();
    assert!(log.contains("deb-prerm") && log.contains("remove"), "{log}");
    ok(dpkg(&["-P", "connector"]), "dpkg -P");
    assert!(
        !f.host("/etc/connector/connector.conf").exists(),
        "purge removes conffiles"
    );
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn payload_lists_the_config_once_and_marks_it() {
    let confs = |p: &Payload| -> Vec<String> {
        p.items
            .iter()
            .filter(|i| matches!(i, Item::File { config: true, .. }))
            .map(|i| i.path().to_string())
            .collect()
    };
    let p = payload(Family::Rpm, "1.0.0", CONFIG);
    assert_eq!(confs(&p), vec!["/etc/connector/connector.conf"]);
    // Debian: every file under /etc is a conffile, the kernel hook too.
    assert_eq!(
        confs(&payload(Family::Deb, "1.0.0", CONFIG)),
        vec![
            "/etc/connector/connector.conf",
            "/etc/kernel/postinst.d/connector"
        ]
    );
    assert!(
        p.items.windows(2).all(|w| w[0].path() < w[1].path()),
        "sorted"
    );
}

/// rpmlint and lintian on the packages as shipped: no error, and every
/// warning filtered by a reviewed, commented override.
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-packaging/real-tools (scripts/test)"
)]
fn rpmlint_and_lintian_are_clean() {
    require_tool("rpmlint");
    require_tool("lintian");
    // Real, stripped ELF executables in place of the binaries (the linters
    // inspect them); scripts/lint-packages lints the real build.
    let elf = tempfile::tempdir().unwrap();
    std::fs::copy("/usr/bin/true", elf.path().join("connectord")).unwrap();
    std::fs::copy("/usr/bin/false", elf.path().join("connector-installer")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let rpm = build_rpm(
        &connector_payload(Family::Rpm, "1.0.0", "1", elf.path(), &repo()).unwrap(),
        out.path(),
    )
    .unwrap();
    let deb = build_deb(
        &connector_payload(Family::Deb, "1.0.0", "1", elf.path(), &repo()).unwrap(),
        out.path(),
    )
    .unwrap();
    let r = Command::new("rpmlint")
        .arg("-c")
        .arg(repo().join("packaging/rpmlint.toml"))
        .arg("-r")
        .arg(repo().join("packaging/connector.rpmlintrc"))
        .arg(&rpm)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(text.contains("0 errors, 0 warnings"), "rpmlint:\n{text}");
    let l = Command::new("lintian")
        .args(["--no-cfg", "--fail-on", "error,warning"])
        .arg(&deb)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&l.stdout),
        String::from_utf8_lossy(&l.stderr)
    );
    assert!(l.status.success(), "lintian:\n{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("E: ") || l.starts_with("W: ")),
        "lintian:\n{text}"
    );
}

/// The manual pages, completions and the administrator's docs, as the
/// packages ship them: listed by
/// `rpm -qlp` and `dpkg -c`, every page rendered by `man -l` without a
/// warning, and the bash completion loaded (`complete -p`).
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-packaging/real-tools (scripts/test)"
)]
fn manual_pages_and_completions_are_shipped_and_load() {
    require_tool("man");
    require_tool("rpm");
    require_tool("dpkg-deb");
    let out = tempfile::tempdir().unwrap();
    let b = bins();
    let rpm_file = build_rpm(
        &connector_payload(Family::Rpm, "1.0.0", "1", b.path(), &repo()).unwrap(),
        out.path(),
    )
    .unwrap();
    let deb_file = build_deb(
        &connector_payload(Family::Deb, "1.0.0", "1", b.path(), &repo()).unwrap(),
        out.path(),
    )
    .unwrap();
    let rpm_list = ok(
        Command::new("rpm")
            .arg("-qlp")
            .arg(&rpm_file)
            .output()
            .unwrap(),
        "rpm -qlp",
    );
    let deb_list = ok(
        Command::new("dpkg-deb")
            .arg("-c")
            .arg(&deb_file)
            .output()
            .unwrap(),
        "dpkg -c",
    );
    for (list, zsh) in [
        (
            &rpm_list,
            "/usr/share/zsh/site-functions/_connector-installer",
        ),
        (
            &deb_list,
            "/usr/share/zsh/vendor-completions/_connector-installer",
        ),
    ] {
        for want in [
            "/usr/share/man/man8/connector-installer.8.gz",
            "/usr/share/man/man8/connector-installer-doctor.8.gz",
            "/usr/share/man/man8/connector-installer-repair.8.gz",
            "/usr/share/man/man8/connectord.8.gz",
            "/usr/share/bash-completion/completions/connector-installer",
            "/usr/share/fish/vendor_completions.d/connector-installer.fish",
            "/usr/share/doc/connector/guide.md",
            "/usr/share/doc/connector/troubleshooting.md",
            "/usr/share/doc/connector/connector-alerts.yml",
            zsh,
        ] {
            // rpm lists /usr/…, dpkg-deb usr/….
            let want = want.trim_start_matches('/');
            assert!(list.contains(want), "{want} not in\n{list}");
        }
        // The units, where each family keeps them.
        for unit in connector_host::layout::UNITS {
            let want = format!("systemd/system/{unit}");
            assert!(list.contains(&want), "{want} not in\n{list}");
        }
    }
    // Unpack the .deb and read what it carries.
    let tree = tempfile::tempdir().unwrap();
    ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb_file)
            .arg(tree.path())
            .output()
            .unwrap(),
        "dpkg-deb -x",
    );
    let man8 = tree.path().join("usr/share/man/man8");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&man8)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert!(pages.len() >= 10, "{pages:?}");
    // man formats bold and underline with backspaces when not on a tty.
    let plain = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            if c == '\u{8}' {
                out.pop();
            } else {
                out.push(c);
            }
        }
        out
    };
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .unwrap();
        let text = plain(&ok(out, &format!("man -l {}", page.display())));
        let name = page.file_name().unwrap().to_string_lossy();
        let title = name.trim_end_matches(".8.gz");
        assert!(text.contains("NAME"), "{name}: {text}");
        assert!(text.contains(title), "{name}: {text}");
        // groff's warnings go to stderr, which ok() folded into text.
        assert!(!text.contains("warning:"), "{name}: {text}");
    }
    let top = Command::new("man")
        .arg("-l")
        .arg(man8.join("connector-installer.8.gz"))
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let top = plain(&ok(top, "man -l connector-installer.8.gz"));
    assert!(
        top.contains("EXIT STATUS") && top.contains("FILES"),
        "{top}"
    );
    let bash = tree
        .path()
        .join("usr/share/bash-completion/completions/connector-installer");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p connector-installer",
            bash.display()
        ))
        .output()
        .unwrap();
    let text = ok(out, "bash complete -p");
    assert!(text.contains("connector-installer"), "{text}");
}

/// A package is for the machine its binaries' ELF headers name.
#[test]
fn the_package_is_for_the_machine_of_its_binaries() {
    use connector_packaging::Arch;
    let x86 = std::fs::read("/usr/bin/true").unwrap();
    assert_eq!(Arch::of_elf(&x86), Some(Arch::X86_64));
    // The cross C library scripts/setup installs is an aarch64 ELF.
    let arm_lib = Path::new("/usr/aarch64-linux-gnu/lib/libc.so.6");
    if arm_lib.exists() {
        assert_eq!(
            Arch::of_elf(&std::fs::read(arm_lib).unwrap()),
            Some(Arch::Aarch64)
        );
    }
    assert_eq!(Arch::of_elf(b"#!/bin/sh\nexit 0\n"), None);
    assert_eq!(Arch::of_elf(b"\x7fELF"), None);

    // A payload of aarch64 binaries is named and labelled for aarch64.
    if arm_lib.exists() {
        let b = tempfile::tempdir().unwrap();
        for name in ["connectord", "connector-installer"] {
            std::fs::copy(arm_lib, b.path().join(name)).unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let p = connector_payload(Family::Rpm, "1.0.0", "1", b.path(), &repo()).unwrap();
        assert_eq!(p.arch, Arch::Aarch64);
        let rpm = build_rpm(&p, out.path()).unwrap();
        assert!(
            rpm.ends_with("connector-1.0.0-1.aarch64.rpm"),
            "{}",
            rpm.display()
        );
        let p = connector_payload(Family::Deb, "1.0.0", "1", b.path(), &repo()).unwrap();
        let deb = build_deb(&p, out.path()).unwrap();
        assert!(
            deb.ends_with("connector_1.0.0-1_arm64.deb"),
            "{}",
            deb.display()
        );
        // Binaries of two machines are refused.
        std::fs::copy("/usr/bin/true", b.path().join("connectord")).unwrap();
        let err = connector_payload(Family::Rpm, "1.0.0", "1", b.path(), &repo()).unwrap_err();
        assert!(err.to_string().contains("connectord is for"), "{err}");
    }
}
