//! The built packages, installed for real into scratch roots: `rpm
//! --root` and `dpkg --root`, with their scriptlets running; files, modes,
//! configuration rules across an upgrade, removal and purge.
//!
//! The binaries packaged here are small stand-ins that record how the
//! scriptlets call them: this tests the packages and their wiring; the
//! hook's own behaviour is tested with the real binary in installer/tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use connector_packaging::signing::{SigningKey, RPM_KEY_PATH};
use connector_packaging::{
    build_deb, build_rpm, connector_payload, Family, Item, Payload, CONFIG, RPM_LICENSE_DIR,
};
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

/// A throwaway RSA key made by gpg (scripts/test-signing-key), in `dir`.
fn test_key(dir: &Path) -> SigningKey {
    require_tool("gpg");
    let out = Command::new(repo().join("scripts/test-signing-key"))
        .arg(dir)
        .output()
        .unwrap();
    let path = ok(out, "scripts/test-signing-key");
    SigningKey::load(Path::new(path.trim())).unwrap()
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

    // Removal: everything goes but the changed configuration, with the
    // installer's bookkeeping (its lock, caches, pending work) and so the
    // state directory (EL7's rpm 4.11 left installer.lock behind).
    for tool in ["/bin/rm", "/bin/rmdir"] {
        copy_host_program(f.path(), Path::new(tool));
    }
    for file in [
        "installer.lock",
        "pending",
        "database.cache",
        "labels.cache",
    ] {
        std::fs::write(f.host(&format!("/var/lib/connector/{file}")), "x").unwrap();
    }
    let erased = ok(rpm(f.path(), &["-e", "--nodeps", "connector"]), "rpm -e");
    assert!(!f.host("/var/lib/connector").exists(), "{erased}");
    assert!(!bin.exists());
    assert!(!f
        .host("/usr/lib/systemd/system/connectord.service")
        .exists());
    assert!(
        f.host("/etc/connector/connector.conf.rpmsave").is_file(),
        "changed config saved"
    );

    // The agent's identity stays across an erase (dpkg keeps it until
    // purge); the installer's lock does not.
    ok(
        rpm(f.path(), &["-i", "--nodeps", v2.to_str().unwrap()]),
        "rpm -i again",
    );
    std::fs::write(f.host("/var/lib/connector/agent-id"), "host-1\n").unwrap();
    std::fs::write(f.host("/var/lib/connector/installer.lock"), "").unwrap();
    ok(
        rpm(f.path(), &["-e", "--nodeps", "connector"]),
        "rpm -e again",
    );
    assert!(f.host("/var/lib/connector/agent-id").is_file());
    assert!(!f.host("/var/lib/connector/installer.lock").exists());
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
    // Signed as check-packages signs them: rpmlint reports an unsigned .rpm.
    let key = test_key(&out.path().join("key"));
    let signed = |family| {
        let mut p = connector_payload(family, "1.0.0", "1", elf.path(), &repo()).unwrap();
        p.sign_with(key.clone());
        p
    };
    let rpm = build_rpm(&signed(Family::Rpm), out.path()).unwrap();
    let deb = build_deb(&signed(Family::Deb), out.path()).unwrap();
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
        // A no-break space keeps an option and its value together.
        let text = plain(&ok(out, &format!("man -l {}", page.display()))).replace('\u{a0}', " ");
        let name = page.file_name().unwrap().to_string_lossy();
        let title = name.trim_end_matches(".8.gz");
        assert!(text.contains("NAME"), "{name}: {text}");
        assert!(text.contains(title), "{name}: {text}");
        // groff's warnings go to stderr, which ok() folded into text.
        assert!(!text.contains("warning:"), "{name}: {text}");
        // 80 columns, the header (NAME(8) manual NAME(8)) included.
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{name}: over 80 columns: {line:?}"
            );
        }
        // SYNOPSIS shows every option's value; DESCRIPTION never repeats
        // NAME; every page has EXAMPLES.
        if title.starts_with("connector-installer") {
            assert!(text.contains("[--root DIR]"), "{name}: {text}");
        }
        let section = |heading: &str| {
            text.split(&format!("\n{heading}\n"))
                .nth(1)
                .map(|rest| rest.split("\n\n").next().unwrap_or_default().to_string())
        };
        let about = section("NAME").unwrap();
        if let Some(description) = section("DESCRIPTION") {
            assert_ne!(
                description.split_whitespace().collect::<Vec<_>>(),
                about.split_whitespace().skip(2).collect::<Vec<_>>(),
                "{name}: DESCRIPTION repeats NAME"
            );
        }
        if title.starts_with("connector-installer") || title == "connectord" {
            assert!(text.contains("\nEXAMPLES\n"), "{name}: {text}");
        }
    }
    for (page, option) in [
        ("connector-installer-laydown.8.gz", "--payload DIR"),
        ("connector-installer-doctor.8.gz", "[--format FORMAT]"),
        ("connector-installer-bundle.8.gz", "[--doctor FILE]..."),
        (
            "connector-installer-selinux.8.gz",
            "[--lock-timeout SECONDS]",
        ),
    ] {
        let out = Command::new("man")
            .arg("-l")
            .arg(man8.join(page))
            .env("MANWIDTH", "200")
            .output()
            .unwrap();
        let text = plain(&ok(out, page)).replace('\u{a0}', " ");
        assert!(text.contains(option), "{option} in {page}: {text}");
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

/// The .rpm signed at build time, checked by the real rpm (4.18): `rpm -K`
/// fails until the shipped public key is imported, then passes with the
/// signature and every digest, including the MD5 and the archive size EL7's
/// rpm 4.11 reads (tests/el7/run checks that rpm too); a copy with one byte
/// of its payload changed fails. Unsigned builds say so.
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-packaging/real-tools (scripts/test)"
)]
fn the_rpm_is_signed_and_rpm_k_checks_every_digest() {
    require_tool("rpm");
    require_tool("rpm2cpio");
    let b = bins();
    let out = tempfile::tempdir().unwrap();
    let key = test_key(&out.path().join("key"));
    let mut p = connector_payload(Family::Rpm, "1.0.0", "1", b.path(), &repo()).unwrap();
    p.sign_with(key.clone());
    let file = build_rpm(&p, out.path()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let rpm_k = |path: &Path| {
        Command::new("rpm")
            .arg("--dbpath")
            .arg(db.path())
            .args(["-Kv"])
            .arg(path)
            .output()
            .unwrap()
    };
    // No key imported: the signature cannot be checked.
    let o = rpm_k(&file);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!o.status.success(), "rpm -K without the key: {text}");
    assert!(text.contains("NOKEY"), "{text}");

    // The key the package ships, imported from the package itself.
    let unpacked = tempfile::tempdir().unwrap();
    let cpio = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "rpm2cpio '{}' | (cd '{}' && cpio -idm --quiet)",
            file.display(),
            unpacked.path().display()
        ))
        .output()
        .unwrap();
    ok(cpio, "rpm2cpio");
    let shipped = unpacked.path().join(RPM_KEY_PATH.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(&shipped).unwrap(),
        key.public_armored()
    );
    ok(
        Command::new("rpm")
            .arg("--dbpath")
            .arg(db.path())
            .arg("--import")
            .arg(&shipped)
            .output()
            .unwrap(),
        "rpm --import",
    );
    let o = rpm_k(&file);
    let text = ok(o, "rpm -K with the key");
    for line in [
        "Header V4 RSA/SHA256 Signature",
        "Header SHA256 digest: OK",
        "Header SHA1 digest: OK",
        "Payload SHA256 digest: OK",
        "MD5 digest: OK",
    ] {
        assert!(text.contains(line), "{line:?} in rpm -Kv:\n{text}");
    }
    assert!(!text.contains("NOT OK") && !text.contains("BAD"), "{text}");
    let short_id = &key.fingerprint()[key.fingerprint().len() - 8..];
    assert!(
        text.to_ascii_lowercase()
            .contains(&short_id.to_ascii_lowercase()),
        "signed by {}: {text}",
        key.fingerprint()
    );

    // The archive size rpm 4.11 draws its progress with: the cpio's.
    let archive = Command::new("sh")
        .arg("-c")
        .arg(format!("rpm2cpio '{}' | wc -c", file.display()))
        .output()
        .unwrap();
    let archive = ok(archive, "rpm2cpio | wc -c");
    let tag = Command::new("rpm")
        .args(["-qp", "--nosignature", "--qf", "%{LONGARCHIVESIZE}"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(ok(tag, "rpm -qp").trim(), archive.trim());

    // One byte of the payload changed: refused.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x55;
    let tampered = out.path().join("tampered.rpm");
    std::fs::write(&tampered, bytes).unwrap();
    let o = rpm_k(&tampered);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!o.status.success(), "rpm -K of the tampered copy: {text}");
    assert!(text.contains("MD5 digest: BAD"), "{text}");

    // Unsigned: no key shipped, rpm -K says so.
    let unsigned = tempfile::tempdir().unwrap();
    let p = connector_payload(Family::Rpm, "1.0.0", "1", b.path(), &repo()).unwrap();
    assert!(!p.items.iter().any(|i| i.path() == RPM_KEY_PATH));
    let file = build_rpm(&p, unsigned.path()).unwrap();
    let text = ok(rpm_k(&file), "rpm -K unsigned");
    assert!(!text.contains("Signature"), "{text}");
}

/// A key rpm 4.11 cannot verify, or that is not a secret key, is refused
/// before anything is built, and the error never prints the key.
#[test]
fn a_key_el7_cannot_verify_is_refused() {
    require_tool("gpg");
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&str]| {
        Command::new("gpg")
            .arg("--homedir")
            .arg(home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap()
    };
    ok(
        gpg(&[
            "--quick-gen-key",
            "ed <ed@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ]),
        "gpg ed25519",
    );
    let secret = gpg(&["--armor", "--export-secret-keys"]).stdout;
    let public = gpg(&["--armor", "--export"]).stdout;
    let ed = dir.path().join("ed.asc");
    std::fs::write(&ed, &secret).unwrap();
    let err = format!("{:#}", SigningKey::load(&ed).unwrap_err());
    assert!(err.contains("RSA"), "{err}");
    let pubfile = dir.path().join("public.asc");
    std::fs::write(&pubfile, &public).unwrap();
    let err = format!("{:#}", SigningKey::load(&pubfile).unwrap_err());
    assert!(err.contains("not an armored OpenPGP secret key"), "{err}");
    let err = format!(
        "{:#}",
        SigningKey::load(&dir.path().join("missing.asc")).unwrap_err()
    );
    assert!(err.contains("missing.asc"), "{err}");
    let _ = std::fs::remove_dir_all(home.path());
    let secret = String::from_utf8_lossy(&secret);
    let body = secret.lines().nth(2).unwrap_or_default();
    assert!(!err.contains(body));
}

/// THIRD-PARTY-NOTICES lists exactly the crates `cargo tree` shows the
/// shipped binaries depend on (normal dependencies, for the binaries'
/// machine), each with its licence and source; both packages ship it, the
/// .rpm as a licence file; its License tag names every licence.
#[test]
#[cfg_attr(
    not(feature = "real-tools"),
    ignore = "real tools: cargo test --features connector-packaging/real-tools (scripts/test)"
)]
fn the_notices_list_every_linked_crate_and_its_licence() {
    let b = bins();
    let p = connector_payload(Family::Deb, "1.0.0", "1", b.path(), &repo()).unwrap();
    let notices = p
        .items
        .iter()
        .find_map(|i| match i {
            Item::File { path, contents, .. }
                if path == "/usr/share/doc/connector/THIRD-PARTY-NOTICES" =>
            {
                Some(String::from_utf8(contents.clone()).unwrap())
            }
            _ => None,
        })
        .expect("the .deb ships THIRD-PARTY-NOTICES");
    let listed: std::collections::BTreeSet<String> = notices
        .split("\nCrates\n")
        .nth(1)
        .unwrap()
        .split("\nTexts\n")
        .next()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(' ') && l.contains(' '))
        .map(str::to_string)
        .collect();
    let tree = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--target",
            "x86_64-unknown-linux-gnu",
            "-p",
            "connector-installer",
            "-p",
            "connectord",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    ok(tree.clone(), "cargo tree");
    let tree = String::from_utf8(tree.stdout).unwrap();
    let expected: std::collections::BTreeSet<String> = tree
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("(/"))
        .map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next().unwrap();
            let version = w.next().unwrap().trim_start_matches('v');
            format!("{name} {version}")
        })
        .collect();
    // cargo tree resolves features for these two packages; the notices for
    // the whole workspace (a superset when another member turns on an
    // optional dependency): every crate cargo tree names must be listed.
    let missing: Vec<_> = expected.difference(&listed).collect();
    assert!(missing.is_empty(), "not in the notices: {missing:?}");
    assert!(listed.len() < expected.len() + 20, "{listed:?}");
    // The MPL-2.0 crates, with where their source is.
    for name in ["debian-packaging", "pgp-cleartext"] {
        let block = notices
            .split("\n\n")
            .find(|b| b.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in the notices"));
        assert!(block.contains("License: MPL-2.0"), "{block}");
        assert!(
            block.contains(&format!("Source: https://crates.io/crates/{name}/")),
            "{block}"
        );
    }
    // C code's licences come with the crates that build it.
    assert!(notices.contains("BoringSSL"), "ring's licence text");
    assert!(notices.contains("bzip2"), "bzip2's licence");
    // The .rpm: a %license file, and every licence in the License tag.
    let out = tempfile::tempdir().unwrap();
    let rp = connector_payload(Family::Rpm, "1.0.0", "1", b.path(), &repo()).unwrap();
    assert!(
        rp.licences.contains(&"MPL-2.0".to_string()),
        "{:?}",
        rp.licences
    );
    let file = build_rpm(&rp, out.path()).unwrap();
    let q = Command::new("rpm")
        .args([
            "-qp",
            "--nosignature",
            "--qf",
            "%{LICENSE}",
            "--licensefiles",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let text = ok(q, "rpm -qp");
    assert!(
        text.contains(&format!("{RPM_LICENSE_DIR}/THIRD-PARTY-NOTICES")),
        "{text}"
    );
    for l in ["Apache-2.0 AND ", "MPL-2.0", "Unicode-3.0", "bzip2-1.0.6"] {
        assert!(text.contains(l), "{l} in License: {text}");
    }
}

/// One reviewed list of licences: rpmlint's ValidLicenses (the .rpm's
/// License tag) and cargo deny's allow list (the supply-chain check) agree.
#[test]
fn rpmlint_and_cargo_deny_allow_the_same_licences() {
    fn list(file: &str, key: &str) -> Vec<String> {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let start = text
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{key} = [")))
            .unwrap_or_else(|| panic!("{key} in {file}"));
        let mut out: Vec<String> = text
            .lines()
            .skip(start + 1)
            .take_while(|l| l.trim() != "]")
            .filter_map(|l| l.trim().strip_prefix('"'))
            .map(|l| l.trim_end_matches(',').trim_end_matches('"').to_string())
            .collect();
        out.sort();
        out
    }
    let rpmlint = list("packaging/rpmlint.toml", "ValidLicenses");
    let deny = list("deny.toml", "allow");
    assert!(rpmlint.contains(&"MPL-2.0".to_string()), "{rpmlint:?}");
    assert_eq!(rpmlint, deny);
}
