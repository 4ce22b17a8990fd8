//! The shipped `.rpm` on the real Enterprise Linux 7 userspace (CentOS
//! 7.7: rpm 4.11.3, yum 3.4.3, glibc 2.17, libselinux 2.5), in a chroot
//! with its own tools (`connector_tests::el7`):
//!
//! - rpm 4.11 checks the package's signature and digests with the public
//!   key it ships (`rpm -K`), and refuses a copy with one payload byte
//!   changed;
//! - rpm 4.11 installs and removes the connector (`-ivh` draws a bounded
//!   progress bar: the package carries its archive size); its scriptlets
//!   run the glibc-2.17 `connector-installer`, the transaction succeeds and
//!   the erase leaves no state directory behind;
//! - yum 3.4.3 installs it from a repository with `gpgcheck=1`, printing its
//!   "Installing" line without a terminal, and `yum erase` removes it;
//! - `connector-installer headers` inside installs a kernel's header
//!   package with the real yum 3.4.3 from a local repository (createrepo_c
//!   metadata);
//! - yum's own lock (`/var/run/yum.pid`, held for its whole run) is
//!   waited for, bounded, and a held one refused with its holder named.
//!
//! Tier: real tools, the target's userspace. Needs `../shared` and the
//! package built with the glibc-2.17 binaries: `tests/el7/run` builds it and
//! runs this file with `CONNECTOR_EL7_PACKAGES=DIR`; without either, each
//! test says it is skipped.
#![cfg(feature = "real-tools")]

use std::path::{Path, PathBuf};
use std::process::Command;

use connector_tests::el7::El7;
use connector_tests::{require_tool, rpm_repo, shared_dir, Kernel, Layout, Pkg};

/// Oracle Linux 7 with UEK 6: the eBPF path, so the headers are needed.
const UEK6: &str = "5.4.17-2136.329.3.1.el7uek.x86_64";

/// The public key built beside the shipped .rpm.
fn public_key(rpm: &Path) -> PathBuf {
    let key = rpm.with_file_name("RPM-GPG-KEY-connector");
    assert!(
        key.is_file(),
        "{}: the package is built signed (tests/el7/run gives a key)",
        key.display()
    );
    key
}

/// The shipped .rpm (glibc-2.17 binaries) and `../shared`, or why not.
fn inputs(test: &str) -> Option<(PathBuf, PathBuf)> {
    let shared = shared_dir(test)?;
    let Some(dir) = std::env::var_os("CONNECTOR_EL7_PACKAGES") else {
        eprintln!(
            "SKIPPED {test}: needs the package built with glibc-2.17 binaries; \
             tests/el7/run builds it and runs this file"
        );
        return None;
    };
    let rpm = std::fs::read_dir(&dir)
        .expect("CONNECTOR_EL7_PACKAGES is a directory")
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rpm"))
        .expect("a .rpm in CONNECTOR_EL7_PACKAGES");
    Some((shared, rpm))
}

/// An EL7 userspace without the network repositories, with stand-ins for
/// what the connector requires (the image's own packages are in yum's
/// records only, not in its rpm database).
fn el7_root(shared: &Path) -> El7 {
    require_tool("createrepo_c");
    let el7 = El7::new(shared);
    for e in std::fs::read_dir(el7.fixture.host("/etc/yum.repos.d")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for p in [
        Pkg::new("bash", "4.2.46", "33.el7", "x86_64", vec![]).provides("/bin/sh"),
        Pkg::new("systemd", "219", "67.el7", "x86_64", vec![]),
        Pkg::new("policycoreutils", "2.5", "33.el7", "x86_64", vec![]),
        Pkg::new("libselinux-utils", "2.5", "14.1.el7", "x86_64", vec![]),
        Pkg::new("clang", "3.4.2", "9.el7", "x86_64", vec![]),
    ] {
        files.push(el7.copy_in(&p.build(dir.path())));
    }
    let mut args = vec!["rpm", "-i"];
    args.extend(files.iter().map(String::as_str));
    el7.ok(&args);
    el7
}

fn rpm_q(el7: &El7, name: &str) -> bool {
    el7.run(&["rpm", "-q", name]).status.success()
}

#[test]
fn rpm_4_11_and_yum_3_4_3_install_and_remove_the_connector() {
    let Some((shared, rpm)) = inputs("the .rpm with rpm 4.11 and yum 3.4.3") else {
        return;
    };
    let el7 = el7_root(&shared);
    let inside = el7.copy_in(&rpm);
    let bin = el7.fixture.host("/opt/connector/bin/connector-installer");

    // rpm 4.11's -K: the key is missing, then imported; every digest,
    // MD5 over header and payload included, and the RSA signature.
    // 4.11 writes a check it could not pass in capitals.
    let out = el7.run(&["rpm", "-K", &inside]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "rpm -K without the key: {text}");
    assert!(text.contains("RSA sha1 md5 NOT OK"), "{text}");
    let out = el7.run(&["rpm", "-Kv", &inside]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("Signature, key ID") && text.contains("NOKEY"),
        "{text}"
    );
    let key = el7.copy_in(&public_key(&rpm));
    el7.ok(&["rpm", "--import", &key]);
    let text = el7.ok(&["rpm", "-K", &inside]);
    assert!(text.contains(": rsa sha1 md5 OK"), "rpm 4.11 -K: {text}");
    let verbose = el7.ok(&["rpm", "-Kv", &inside]);
    for line in [
        "V4 RSA/SHA256 Signature",
        "Header SHA1 digest: OK",
        "MD5 digest: OK",
    ] {
        assert!(
            verbose.contains(line),
            "{line:?} in rpm 4.11 -Kv: {verbose}"
        );
    }
    let mut bytes = std::fs::read(&rpm).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x55;
    let tampered = el7.fixture.host("/tmp/tampered.rpm");
    std::fs::write(&tampered, bytes).unwrap();
    let out = el7.run(&["rpm", "-K", "/tmp/tampered.rpm"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !out.status.success(),
        "rpm 4.11 -K of a tampered copy: {text}"
    );
    assert!(text.contains("rsa sha1 MD5 NOT OK"), "{text}");

    // rpm 4.11: scriptlets run the glibc-2.17 installer (rpm-post,
    // rpm-posttrans); `-ivh` draws its bar from the archive size (without
    // it, one '#' per byte of the package: 4.9 MB).
    let out = el7.run(&["rpm", "-ivh", &inside]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rpm -ivh: {stderr}");
    assert!(
        out.stdout.len() < 4096,
        "rpm -ivh printed {} bytes",
        out.stdout.len()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("connector-"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("scriptlet failed"), "{stderr}");
    assert!(rpm_q(&el7, "connector"));
    let verify = el7.run(&["rpm", "-V", "connector"]);
    assert!(
        verify.status.success() && verify.stdout.is_empty(),
        "rpm -V: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let version = el7.ok(&["/opt/connector/bin/connector-installer", "--version"]);
    assert!(version.starts_with("connector-installer "), "{version}");
    let doctor = el7.run(&["/opt/connector/bin/connector-installer", "doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json in the chroot: {e}: {}",
            String::from_utf8_lossy(&doctor.stderr)
        )
    });
    assert_eq!(v["os"]["id"], "centos", "{v}");

    let out = el7.run(&["rpm", "-e", "connector"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rpm -e: {stderr}");
    assert!(!stderr.contains("scriptlet failed"), "{stderr}");
    assert!(!rpm_q(&el7, "connector"));
    assert!(!bin.exists());
    // The installer's lock, caches and journal go with it, and so the
    // state directory it made.
    assert!(
        !el7.fixture.host("/var/lib/connector").exists(),
        "{:?}",
        std::fs::read_dir(el7.fixture.host("/var/lib/connector"))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
    );

    // yum 3.4.3 from a repository with gpgcheck=1 (the key imported by
    // yum from gpgkey=): the signed package is accepted, and yum, with no
    // terminal, prints its "Installing" line once rpm reports the whole
    // archive written.
    el7.ok(&["rpm", "-e", "gpg-pubkey"]);
    let repo = el7.fixture.host("/srv/connector");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::copy(&rpm, repo.join(rpm.file_name().unwrap())).unwrap();
    std::fs::copy(public_key(&rpm), repo.join("RPM-GPG-KEY-connector")).unwrap();
    connector_tests::run(Command::new("createrepo_c").arg("-q").arg(&repo));
    el7.fixture.file(
        "/etc/yum.repos.d/connector.repo",
        "[connector]\nname=connector\nbaseurl=file:///srv/connector\nenabled=1\n\
         gpgcheck=1\ngpgkey=file:///srv/connector/RPM-GPG-KEY-connector\n",
    );
    let out = el7.ok(&[
        "yum",
        "-y",
        "--disablerepo=*",
        "--enablerepo=connector",
        "install",
        "connector",
    ]);
    assert!(
        out.contains("Installing : connector-"),
        "yum install: {out}"
    );
    assert!(rpm_q(&el7, "connector"));
    assert!(bin.is_file());
    el7.ok(&["yum", "-y", "--disablerepo=*", "erase", "connector"]);
    assert!(!rpm_q(&el7, "connector"));
    assert!(!bin.exists());
}

/// The EL7 root with the connector installed, UEK 6 installed by rpm 4.11
/// without its headers, and a local repository holding them.
fn uek_root(shared: &Path, rpm: &Path) -> (El7, Kernel) {
    let el7 = el7_root(shared);
    let inside = el7.copy_in(rpm);
    el7.ok(&["rpm", "-i", &inside]);
    el7.fixture.os_release("ol-7.9");
    let k = Kernel::new(UEK6, Layout::El7);
    let dir = tempfile::tempdir().unwrap();
    let kpkg = el7.copy_in(&k.kernel_package().build(dir.path()));
    el7.ok(&["rpm", "-i", "--nodeps", &kpkg]);
    rpm_repo(&el7.fixture.host("/srv/repo"), &k.header_packages());
    el7.fixture.file(
        "/etc/yum.repos.d/local.repo",
        "[local]\nname=local\nbaseurl=file:///srv/repo\nenabled=1\ngpgcheck=0\n",
    );
    (el7, k)
}

fn headers(el7: &El7, k: &Kernel, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let mut args = vec![
        "/opt/connector/bin/connector-installer",
        "headers",
        "--kernel",
        &k.release,
        "--json",
    ];
    args.extend(extra);
    let out = el7.run(&args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "headers --json: {e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, v)
}

#[test]
fn headers_installs_kernel_devel_with_yum_3_4_3_and_waits_for_its_lock() {
    let Some((shared, rpm)) = inputs("headers with yum 3.4.3") else {
        return;
    };
    let (el7, k) = uek_root(&shared, &rpm);
    let devel = k
        .header_packages()
        .into_iter()
        .map(|p| p.name)
        .find(|n| n.contains("devel"))
        .expect("a devel package");
    assert!(!rpm_q(&el7, &devel));

    // Another yum holds its lock (a live process in /var/run/yum.pid):
    // refused after a bounded wait, its holder named, nothing installed.
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    el7.fixture
        .file("/var/run/yum.pid", &format!("{}\n", holder.id()));
    let (out, v) = headers(&el7, &k, &["--lock-timeout", "2"]);
    assert!(!out.status.success(), "{v}");
    let text = v.to_string();
    assert!(
        text.contains("yum.pid") && text.contains(&holder.id().to_string()),
        "{v}"
    );
    assert!(!rpm_q(&el7, &devel));
    holder.kill().unwrap();
    holder.wait().unwrap();

    // Free (a stale pidfile is no lock): yum 3.4.3 installs it.
    let (out, v) = headers(&el7, &k, &[]);
    assert!(
        out.status.success(),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rpm_q(&el7, &devel), "{v}");
    assert!(
        v.to_string().contains("yum -y"),
        "installed through yum: {v}"
    );
    assert!(el7
        .fixture
        .host(&format!("/usr/src/kernels/{}", k.release))
        .is_dir());
    // Nothing left to do on a re-run.
    let (out, v) = headers(&el7, &k, &[]);
    assert!(out.status.success(), "{v}");
    assert!(!v.to_string().contains("yum -y"), "{v}");
}
