//! Builds the connector's `.rpm` (with the `rpm` crate) and `.deb` (ar +
//! tar written here: debian-packaging's `DebBuilder` writes raw bytes into
//! `md5sums`, field-notes §5), reproducibly: every timestamp is
//! `SOURCE_DATE_EPOCH`, every owner root, every list sorted.
//!
//! Both packages carry the same payload: the two binaries, the systemd
//! unit, the SELinux module source, a configuration file marked as such
//! (`%config(noreplace)`, `conffiles`), docs, and scriptlets that hand over
//! to `connector-installer hook …`.

pub mod manual;
pub mod notices;
pub mod signing;

use connector_host::layout;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use md5::{Digest as _, Md5};

/// One entry of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        contents: Vec<u8>,
        config: bool,
        doc: bool,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Item {
    pub fn path(&self) -> &str {
        match self {
            Item::Dir { path, .. } | Item::File { path, .. } | Item::Symlink { path, .. } => path,
        }
    }
}

/// The machine a package's binaries are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// As RPM names it (`connector-V-R.aarch64.rpm`), and as scripts/build-compat takes it.
    pub fn rpm(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The Rust target the binaries are built for.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// As Debian names it (`connector_V-R_arm64.deb`).
    pub fn deb(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The machine an ELF executable is for (its `e_machine`); None for
    /// anything else.
    pub fn of_elf(bytes: &[u8]) -> Option<Arch> {
        if bytes.get(..4)? != b"\x7fELF" || bytes.get(5)? != &1 {
            return None;
        }
        match u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]) {
            62 => Some(Arch::X86_64),
            183 => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

/// What goes into a package.
#[derive(Debug, Clone)]
pub struct Payload {
    pub version: String,
    pub release: String,
    /// The binaries' machine: read from connectord's ELF header (a stand-in
    /// that is not ELF, as in the packaging tests, is packaged for x86_64).
    pub arch: Arch,
    pub items: Vec<Item>,
    pub source_date: u32,
    /// The family the payload is shaped for.
    pub family: Family,
    /// The licences of everything linked in (ours first): the RPM
    /// `License` tag, as an SPDX `AND` of them.
    pub licences: Vec<String>,
    /// The key the `.rpm` is signed with (none: unsigned).
    pub signing: Option<signing::SigningKey>,
}

impl Payload {
    /// Signs the `.rpm` built from this payload with `key`, and ships the
    /// public key (`/etc/pki/rpm-gpg/` for rpm, `/usr/share/keyrings/`
    /// for apt's `Signed-By`).
    pub fn sign_with(&mut self, key: signing::SigningKey) {
        let path = match self.family {
            Family::Rpm => signing::RPM_KEY_PATH,
            Family::Deb => signing::DEB_KEY_PATH,
        };
        self.items.retain(|i| i.path() != path);
        self.items.push(Item::File {
            path: path.into(),
            mode: 0o644,
            contents: key.public_armored().as_bytes().to_vec(),
            config: false,
            doc: false,
        });
        self.items.sort_by(|a, b| a.path().cmp(b.path()));
        self.signing = Some(key);
    }
}

/// The family a payload is shaped for (unit directory, doc conventions):
/// the host model's one family enum.
pub use connector_host::os::Family;

/// The reference pages shipped in `/usr/share/doc/connector/` (from
/// `docs/`): every page the help, the manual pages and the installer's
/// messages name.
pub const REFERENCE_DOCS: &[&str] = &[
    "audit.md",
    "bundle.md",
    "doctor.md",
    "exit-codes.md",
    "headers.md",
    "lifecycle.md",
    "metrics.md",
    "security.md",
    "selinux.md",
    "support-matrix.md",
];

/// Where the `.rpm` puts licence files (`%license`, Fedora's layout).
pub const RPM_LICENSE_DIR: &str = layout::RPM_LICENSE_DIR;

/// The shipped configuration file.
pub const CONFIG: &str = "\
# /etc/connector/connector.conf — configuration of the connector.
# Changes here are kept across upgrades (the new default is installed
# beside this file as .rpmnew / .dpkg-dist).

# Read by connectord at start (systemctl restart connectord after a
# change). A key it does not know or a value it cannot use is reported in
# its status (connector-installer doctor shows it) and the default used.

# Seconds between the agent's checks of headers and probes (5 to 3600).
interval = 30

# The compiler of the eBPF probe, an absolute path. Unset: clang, else the
# newest clang-N, on PATH (the package depends on clang).
# clang = /usr/bin/clang
";

const README: &str = "\
connector: eBPF endpoint security agent (reference daemon) and
connector-installer, which installs the kernel headers and the SELinux
policy module its eBPF probes need, diagnoses fault 11 and repairs it.

  connector-installer doctor      diagnose (read-only)
  connector-installer repair      fix every fault, restart, wait for the agent
  connector-installer install     everything (also into an image: --root)
  connector-installer headers     install the exact kernel header packages
  connector-installer selinux     install/remove/check the SELinux module
  connectord status               the agent's published state
";

/// `SOURCE_DATE_EPOCH`; without it, the date of the commit built (the
/// date the manual pages and the changelog carry, reproducible for that
/// commit); outside a checkout, a fixed date.
pub fn source_date() -> u32 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .or_else(commit_date)
        .unwrap_or(1_700_000_000)
}

/// The committer date of this checkout's HEAD.
fn commit_date() -> Option<u32> {
    let out = std::process::Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .flatten()
}

/// The connector's payload, with binaries from `bin_dir`
/// (`connectord`, `connector-installer`) and sources from `repo`.
pub fn connector_payload(
    family: Family,
    version: &str,
    release: &str,
    bin_dir: &Path,
    repo: &Path,
) -> Result<Payload> {
    let read = |p: PathBuf| std::fs::read(&p).with_context(|| format!("reading {}", p.display()));
    let unit_dir = match family {
        Family::Rpm => "/usr/lib/systemd/system",
        Family::Deb => "/lib/systemd/system",
    };
    let mut items = vec![
        Item::Dir {
            path: layout::OPT_DIR.into(),
            mode: 0o755,
        },
        Item::Dir {
            path: layout::BIN_DIR.into(),
            mode: 0o755,
        },
        Item::File {
            path: layout::CONNECTORD.into(),
            mode: 0o755,
            contents: read(bin_dir.join("connectord"))?,
            config: false,
            doc: false,
        },
        Item::File {
            path: layout::INSTALLER.into(),
            mode: 0o755,
            contents: read(bin_dir.join("connector-installer"))?,
            config: false,
            doc: false,
        },
        // Debian policy wants links between top-level directories absolute;
        // Fedora's rpmlint wants them relative.
        Item::Symlink {
            path: "/usr/sbin/connector-installer".into(),
            target: match family {
                Family::Rpm => "../../opt/connector/bin/connector-installer".into(),
                Family::Deb => layout::INSTALLER.into(),
            },
        },
        Item::File {
            path: format!("{unit_dir}/{}", layout::UNIT),
            mode: 0o644,
            contents: read(repo.join("connector/connectord.service"))?,
            config: false,
            doc: false,
        },
        // The after-transaction job the hooks start (headers, restart).
        Item::File {
            path: format!("{unit_dir}/{}", layout::SETUP_UNIT),
            mode: 0o644,
            contents: read(repo.join("installer/dist/connector-setup.service"))?,
            config: false,
            doc: false,
        },
        // node_exporter textfile metrics (docs/metrics.md), disabled until
        // the administrator enables the timer.
        Item::File {
            path: format!("{unit_dir}/{}", layout::METRICS_UNIT),
            mode: 0o644,
            contents: read(repo.join("installer/dist/connector-metrics.service"))?,
            config: false,
            doc: false,
        },
        Item::File {
            path: format!("{unit_dir}/{}", layout::METRICS_TIMER),
            mode: 0o644,
            contents: read(repo.join("installer/dist/connector-metrics.timer"))?,
            config: false,
            doc: false,
        },
        // Kernel hooks: a new kernel's headers before the reboot into it.
        Item::File {
            path: "/etc/kernel/postinst.d/connector".into(),
            mode: 0o755,
            contents: read(repo.join("installer/dist/kernel-postinst"))?,
            // Debian: everything in /etc is a conffile (an administrator may
            // disable the hook by emptying it). RPM: an executable is not
            // configuration (rpmlint), it is replaced on upgrade.
            config: family == Family::Deb,
            doc: false,
        },
        Item::File {
            path: "/usr/share/selinux/packages/connectord.cil".into(),
            mode: 0o644,
            contents: read(repo.join("policy/connectord.cil"))?,
            config: false,
            doc: false,
        },
        Item::Dir {
            path: layout::CONF_DIR.into(),
            mode: 0o755,
        },
        Item::File {
            path: layout::CONNECTOR_CONF.into(),
            mode: 0o644,
            contents: CONFIG.as_bytes().to_vec(),
            config: true,
            doc: false,
        },
        Item::Dir {
            path: layout::STATE_DIR.into(),
            mode: 0o750,
        },
        Item::Dir {
            path: layout::LOG_DIR.into(),
            mode: 0o750,
        },
        // The administrator's guide and troubleshooting page (docs/admin).
        Item::File {
            path: "/usr/share/doc/connector/guide.md".into(),
            mode: 0o644,
            contents: read(repo.join("docs/admin/guide.md"))?,
            config: false,
            doc: true,
        },
        Item::File {
            path: connector_host::fault::TROUBLESHOOTING.into(),
            mode: 0o644,
            contents: read(repo.join("docs/admin/troubleshooting.md"))?,
            config: false,
            doc: true,
        },
        // Alert rules for the metrics (docs/metrics.md).
        Item::File {
            path: "/usr/share/doc/connector/connector-alerts.yml".into(),
            mode: 0o644,
            contents: read(repo.join("installer/dist/connector-alerts.yml"))?,
            config: false,
            doc: true,
        },
        Item::File {
            path: "/usr/share/doc/connector/README".into(),
            mode: 0o644,
            contents: README.as_bytes().to_vec(),
            config: false,
            doc: true,
        },
    ];
    // The reference the help, the manual pages and the messages point at
    // (`/usr/share/doc/connector/NAME.md`), shipped beside the guide.
    for name in REFERENCE_DOCS {
        items.push(Item::File {
            path: format!("/usr/share/doc/connector/{name}"),
            mode: 0o644,
            contents: read(repo.join("docs").join(name))?,
            config: false,
            doc: true,
        });
    }
    if family == Family::Rpm {
        // EL8+ run kernel-install plugins (EL7 and AL2: postinst.d above).
        items.push(Item::File {
            path: "/usr/lib/kernel/install.d/90-connector.install".into(),
            mode: 0o755,
            contents: read(repo.join("installer/dist/90-connector.install"))?,
            config: false,
            doc: false,
        });
    }
    if family == Family::Deb {
        items.push(Item::File {
            path: "/usr/share/lintian/overrides/connector".into(),
            mode: 0o644,
            contents: read(repo.join("packaging/lintian-overrides"))?,
            config: false,
            doc: false,
        });
        items.push(Item::File {
            path: "/usr/share/doc/connector/copyright".into(),
            mode: 0o644,
            contents: String::from(
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                 Upstream-Name: connector\n\nFiles: *\nCopyright: 2026 the connector-installer authors\n\
                 License: Apache-2.0\n On Debian systems, the full text of the Apache License 2.0 can be \
                 found in\n /usr/share/common-licenses/Apache-2.0.\nComment: connector-installer and \
                 connectord link statically the Rust crates, and the C\n code some of them build, listed \
                 with their licences and licence texts in\n /usr/share/doc/connector/THIRD-PARTY-NOTICES.\n"
            )
            .into_bytes(),
            config: false,
            doc: true,
        });
        let changelog = format!(
            "connector ({version}-{release}) unstable; urgency=medium\n\n  * Release {version}.\n\n \
             -- connector-installer authors <connector@example.invalid>  {}\n",
            rfc2822(source_date())
        );
        items.push(Item::File {
            path: "/usr/share/doc/connector/changelog.Debian.gz".into(),
            mode: 0o644,
            contents: gzip(changelog.as_bytes(), source_date())?,
            config: false,
            doc: true,
        });
    }
    // Generated from the clap definitions now, never checked in.
    for g in manual::manual_pages(source_date())? {
        items.push(Item::File {
            path: g.path,
            mode: 0o644,
            contents: g.contents,
            config: false,
            doc: true,
        });
    }
    for g in manual::completions(family) {
        items.push(Item::File {
            path: g.path,
            mode: 0o644,
            contents: g.contents,
            config: false,
            doc: false,
        });
    }
    let arches: Vec<Option<Arch>> = ["connectord", "connector-installer"]
        .iter()
        .map(|b| Ok(Arch::of_elf(&read(bin_dir.join(b))?)))
        .collect::<Result<_>>()?;
    if arches[0] != arches[1] {
        anyhow::bail!(
            "{}: connectord is for {:?} and connector-installer for {:?}",
            bin_dir.display(),
            arches[0],
            arches[1]
        );
    }
    let arch = arches[0].unwrap_or(Arch::X86_64);
    // What the binaries link statically, for the machine they are for.
    let crates = notices::linked_crates(repo, arch.rust_target())
        .context("listing the crates linked into the binaries (THIRD-PARTY-NOTICES)")?;
    items.push(Item::File {
        path: match family {
            Family::Rpm => format!("{}/THIRD-PARTY-NOTICES", RPM_LICENSE_DIR),
            Family::Deb => "/usr/share/doc/connector/THIRD-PARTY-NOTICES".into(),
        },
        mode: 0o644,
        contents: notices::render(&crates, arch.rust_target()).into_bytes(),
        config: false,
        doc: true,
    });
    let mut licences = vec!["Apache-2.0".to_string()];
    licences.extend(
        notices::licence_summary(&crates)
            .into_iter()
            .filter(|l| l != "Apache-2.0"),
    );
    items.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(Payload {
        version: version.into(),
        release: release.into(),
        arch,
        items,
        source_date: source_date(),
        family,
        licences,
        signing: None,
    })
}

/// Scriptlet bodies: each hands its own arguments to the hook, and never
/// fails the transaction (the hook reports problems itself).
fn rpm_script(hook: &str) -> String {
    format!(
        "if [ -x /opt/connector/bin/connector-installer ]; then\n  \
         CONNECTOR_INSTALLER_IN_TRANSACTION=1 /opt/connector/bin/connector-installer hook {hook} \"$@\" || :\nfi\n"
    )
}

fn deb_script(hook: &str) -> String {
    // DPKG_ROOT: dpkg --root with --force-script-chrootless runs scripts
    // outside the root; honour it as Debian policy asks.
    format!(
        "#!/bin/sh\nset -e\nif [ -x \"$DPKG_ROOT/opt/connector/bin/connector-installer\" ]; then\n  \
         CONNECTOR_INSTALLER_IN_TRANSACTION=1 \"$DPKG_ROOT/opt/connector/bin/connector-installer\" hook {hook} \
         --root \"${{DPKG_ROOT:-/}}\" \"$@\" || true\nfi\n#DEBHELPER#\nexit 0\n"
    )
    .replace("#DEBHELPER#\n", "")
}

/// %postun: the hook (an upgrade's old package; on erase the binary is
/// already gone), then, on erase (`$1 = 0`), the installer's own
/// bookkeeping in the state directory (its lock, journal, caches: nothing
/// without the installer), and the directory if that leaves it empty. The
/// agent's identity and status stay, as dpkg's `remove` keeps them until
/// `purge`; `rm -rf /var/lib/connector` forgets them. No redirection:
/// an image root being built may have no /dev/null.
fn rpm_postun() -> String {
    let files: Vec<String> = layout::BOOKKEEPING
        .iter()
        .map(|f| format!("'{f}'"))
        .collect();
    format!(
        "{}if [ \"$1\" = 0 ]; then\n  rm -f {}\n  \
         if [ -d '{dir}' ]; then rmdir --ignore-fail-on-non-empty '{dir}' || :; fi\nfi\n",
        rpm_script("rpm-postun"),
        files.join(" "),
        dir = layout::STATE_DIR
    )
}

/// postrm runs after the package's files are gone: the installer cannot
/// run any more (the module went in prerm). Purge removes the state and
/// logs the connector made, the rest is dpkg's.
fn deb_postrm() -> String {
    "#!/bin/sh\nset -e\nif [ \"$1\" = purge ]; then\n  \
     rm -rf \"$DPKG_ROOT/var/lib/connector\" \"$DPKG_ROOT/var/log/connector\"\nfi\nexit 0\n"
        .to_string()
}

/// Builds `connector-VERSION-RELEASE.ARCH.rpm` in `out`.
pub fn build_rpm(p: &Payload, out: &Path) -> Result<PathBuf> {
    let licence = p.licences.join(" AND ");
    let mut b = rpm::PackageBuilder::new(
        "connector",
        &p.version,
        &licence,
        p.arch.rpm(),
        "Endpoint security agent (eBPF) and its SELinux-aware installer",
    );
    b.release(&p.release)
        .description(
            "The connector monitors file moves and network flows with an eBPF module\n\
             it compiles on the host. connector-installer installs the kernel headers\n\
             and the SELinux policy module that module needs, diagnoses fault 11 and\n\
             repairs it.",
        )
        .build_host("reproducible")
        .url("https://example.invalid/connector")
        .vendor("connector-installer authors")
        .packager("connector-installer authors <connector@example.invalid>")
        .group("System Environment/Daemons");
    b.using_config(rpm::BuildConfig::v4().source_date(p.source_date));
    b.add_changelog_entry(
        "connector-installer authors <connector@example.invalid> - ".to_string()
            + &p.version
            + "-"
            + &p.release,
        format!("- Release {}.", p.version),
        rpm::Timestamp::from(p.source_date),
    );
    for item in &p.items {
        match item {
            Item::Dir { path, mode } => {
                b.with_dir_entry(rpm::FileOptions::dir(path.clone()).permissions(*mode as u16))?;
            }
            Item::File {
                path,
                mode,
                contents,
                config,
                doc,
            } => {
                let mut o = rpm::FileOptions::new(path.clone()).permissions(*mode as u16);
                if *config {
                    o = o.config().noreplace();
                }
                if path.starts_with(RPM_LICENSE_DIR) {
                    o = o.license();
                } else if *doc {
                    o = o.doc();
                }
                b.with_file_contents(contents.clone(), o)?;
            }
            Item::Symlink { path, target } => {
                b.with_symlink(rpm::FileOptions::symlink(path.clone(), target.clone()))?;
            }
        }
    }
    b.requires(rpm::Dependency::any("systemd"));
    // connectord compiles its eBPF probe at start (AppStream on EL8/EL9,
    // EPEL or llvm-toolset on EL7).
    b.requires(rpm::Dependency::any("clang"));
    // semodule and restorecon in the scriptlets, as Fedora's SELinux
    // packaging requires them.
    // (the module is removed in %preun, while the installer is still there)
    for tool in ["policycoreutils", "libselinux-utils"] {
        b.requires(rpm::Dependency::script_post(tool));
        b.requires(rpm::Dependency::script_preun(tool));
    }
    b.requires(rpm::Dependency::script_post("systemd"));
    b.requires(rpm::Dependency::script_preun("systemd"));
    b.requires(rpm::Dependency::script_postun("systemd"));
    b.post_install_script(rpm_script("rpm-post"));
    b.pre_uninstall_script(rpm_script("rpm-preun"));
    b.post_uninstall_script(rpm_postun());
    b.post_trans_script(rpm_script("rpm-posttrans"));
    let mut pkg = b.build()?;
    signing::finish(&mut pkg, p.signing.as_ref(), p.source_date)?;
    let file = out.join(format!(
        "connector-{}-{}.{}.rpm",
        p.version,
        p.release,
        p.arch.rpm()
    ));
    pkg.write_file(&file)?;
    Ok(file)
}

/// Builds `connector_VERSION-RELEASE_ARCH.deb` in `out`.
pub fn build_deb(p: &Payload, out: &Path) -> Result<PathBuf> {
    let mtime = u64::from(p.source_date);
    // data.tar.gz
    let mut data = tar::Builder::new(Vec::new());
    data.mode(tar::HeaderMode::Deterministic);
    let mut md5sums = String::new();
    let mut installed_size: u64 = 0;
    let mut conffiles = String::new();
    // Parent directories of everything, for a well-formed tree.
    let mut dirs: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
    for item in &p.items {
        let mut parent = Path::new(item.path()).parent();
        while let Some(d) = parent {
            if d == Path::new("/") {
                break;
            }
            dirs.entry(d.display().to_string()).or_insert(0o755);
            parent = d.parent();
        }
        if let Item::Dir { path, mode } = item {
            dirs.insert(path.clone(), *mode);
        }
    }
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root").ok();
        h.set_groupname("root").ok();
        h.set_mtime(mtime);
        h.set_size(size);
        h
    };
    let mut root_h = header(tar::EntryType::Directory, 0o755, 0);
    data.append_data(&mut root_h, "./", std::io::empty())?;
    for (d, mode) in &dirs {
        let mut h = header(tar::EntryType::Directory, *mode, 0);
        data.append_data(&mut h, format!(".{d}/"), std::io::empty())?;
    }
    for item in &p.items {
        match item {
            Item::Dir { .. } => {}
            Item::File {
                path,
                mode,
                contents,
                config,
                ..
            } => {
                let mut h = header(tar::EntryType::Regular, *mode, contents.len() as u64);
                data.append_data(&mut h, format!(".{path}"), contents.as_slice())?;
                md5sums.push_str(&format!("{:x}  {}\n", Md5::digest(contents), &path[1..]));
                installed_size += (contents.len() as u64).div_ceil(1024);
                if *config {
                    conffiles.push_str(path);
                    conffiles.push('\n');
                }
            }
            Item::Symlink { path, target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                data.append_link(&mut h, format!(".{path}"), target)?;
            }
        }
    }
    let data = gzip(&data.into_inner()?, p.source_date)?;

    // control.tar.gz
    let control = format!(
        "Package: connector\nVersion: {}-{}\nArchitecture: {}\n\
         Maintainer: connector-installer authors <connector@example.invalid>\n\
         Installed-Size: {installed_size}\nDepends: libc6 (>= 2.17), libgcc-s1 | libgcc1, libselinux1, systemd, clang\n\
         Recommends: policycoreutils, semodule-utils, selinux-utils\nSection: admin\nPriority: optional\n\
         Homepage: https://example.invalid/connector\n\
         Description: eBPF endpoint security agent and its SELinux-aware installer\n \
         The connector monitors file moves and network flows with an eBPF module it\n \
         compiles on the host. connector-installer installs the kernel headers and the\n \
         SELinux policy module that module needs, diagnoses fault 11 and repairs it.\n",
        p.version,
        p.release,
        p.arch.deb()
    );
    let mut ctl = tar::Builder::new(Vec::new());
    ctl.mode(tar::HeaderMode::Deterministic);
    let mut dir_h = header(tar::EntryType::Directory, 0o755, 0);
    ctl.append_data(&mut dir_h, "./", std::io::empty())?;
    let mut add = |name: &str, body: &[u8], mode: u32| -> Result<()> {
        let mut h = header(tar::EntryType::Regular, mode, body.len() as u64);
        ctl.append_data(&mut h, format!("./{name}"), body)?;
        Ok(())
    };
    add("control", control.as_bytes(), 0o644)?;
    add("conffiles", conffiles.as_bytes(), 0o644)?;
    add("md5sums", md5sums.as_bytes(), 0o644)?;
    add("postinst", deb_script("deb-postinst").as_bytes(), 0o755)?;
    add("prerm", deb_script("deb-prerm").as_bytes(), 0o755)?;
    add("postrm", deb_postrm().as_bytes(), 0o755)?;
    let control = gzip(&ctl.into_inner()?, p.source_date)?;

    // The ar archive.
    let file = out.join(format!(
        "connector_{}-{}_{}.deb",
        p.version,
        p.release,
        p.arch.deb()
    ));
    let mut f =
        std::fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?;
    f.write_all(b"!<arch>\n")?;
    for (name, body) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", control),
        ("data.tar.gz", data),
    ] {
        writeln!(
            f,
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`",
            name,
            mtime,
            0,
            0,
            "100644",
            body.len()
        )?;
        f.write_all(&body)?;
        if body.len() % 2 == 1 {
            f.write_all(b"\n")?;
        }
    }
    f.sync_all()?;
    Ok(file)
}

/// gzip with a fixed header time and no file name: reproducible.
fn gzip(bytes: &[u8], mtime: u32) -> Result<Vec<u8>> {
    let mut e = flate2::GzBuilder::new()
        .mtime(mtime)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::best());
    e.write_all(bytes)?;
    Ok(e.finish()?)
}

fn rfc2822(t: u32) -> String {
    connector_host::time::rfc2822(u64::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without SOURCE_DATE_EPOCH the pages carry the commit's date, not a
    /// date from before the project (issue 28: every page said 2023-11-14).
    #[test]
    fn the_source_date_is_the_commits_without_source_date_epoch() {
        if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
            eprintln!("skipped: SOURCE_DATE_EPOCH is set");
            return;
        }
        match commit_date() {
            Some(d) => {
                assert_eq!(source_date(), d);
                assert!(d > 1_700_000_000, "{d}");
            }
            None => assert_eq!(source_date(), 1_700_000_000),
        }
    }

    /// Every page the help, the manual pages and the installer's messages
    /// point at is in the package: each `/usr/share/doc/connector/NAME`
    /// named anywhere in them (the help of every command, every manual
    /// page, every source file of the installer and of connectord) is a
    /// file the payload ships; and none points into the source tree's
    /// `docs/`, which no host has.
    #[test]
    fn every_page_pointed_at_is_shipped() {
        use clap::CommandFactory;
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bins = tempfile::tempdir().unwrap();
        for b in ["connectord", "connector-installer"] {
            std::fs::write(bins.path().join(b), b"").unwrap();
        }
        let payload = connector_payload(Family::Deb, "1.0.0", "1", bins.path(), &repo).unwrap();
        let shipped: Vec<String> = payload.items.iter().map(|i| i.path().to_string()).collect();
        let mut texts = Vec::new();
        fn helps(cmd: &mut clap::Command, out: &mut Vec<String>) {
            out.push(cmd.render_long_help().to_string());
            for sub in cmd.get_subcommands_mut() {
                helps(sub, out);
            }
        }
        helps(&mut connector_installer::cli::Cli::command(), &mut texts);
        for page in crate::manual::manual_pages(1_700_000_000).unwrap() {
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(page.contents.as_slice()),
                &mut text,
            )
            .unwrap();
            assert!(
                !text.contains("docs/"),
                "{}: points into the source tree",
                page.path
            );
            texts.push(text);
        }
        for t in &texts[..] {
            assert!(!t.contains(" docs/") && !t.contains("(docs/"), "{t}");
        }
        for dir in ["installer/src", "connector/src", "host/src"] {
            for f in walk(&repo.join(dir)) {
                texts.push(std::fs::read_to_string(f).unwrap());
            }
        }
        let prefix = "/usr/share/doc/connector/";
        let mut named = 0;
        for t in &texts {
            for (i, _) in t.match_indices(prefix) {
                let name: String = t[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                    .collect();
                let name = name.trim_end_matches('.');
                if name.is_empty() {
                    continue;
                }
                named += 1;
                let path = format!("{prefix}{name}");
                assert!(shipped.contains(&path), "{path} is named but not shipped");
            }
        }
        assert!(named >= 8, "only {named} pointers found");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        out
    }

    /// The shipped troubleshooting page explains every fault cause doctor
    /// can name (under the heading doctor points at), fault 12, every exit
    /// code with its name, and the deferred job's states.
    #[test]
    fn the_troubleshooting_page_covers_every_fault_and_exit_code() {
        use connector_host::fault::{FaultCause, FAULT_12_SECTION};
        let page = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/admin/troubleshooting.md"),
        )
        .unwrap();
        let headings: Vec<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix("### "))
            .collect();
        for cause in FaultCause::ALL {
            assert!(
                headings.contains(&cause.doc_section()),
                "{cause:?}: {headings:?}"
            );
        }
        assert!(headings.contains(&FAULT_12_SECTION), "{headings:?}");
        for (code, _) in connector_installer::exit::TABLE {
            let row = format!("| {code} | {} |", connector_installer::exit::name(*code));
            assert!(page.contains(&row), "no row {row}");
        }
        for state in ["activating", "inactive (dead)", "failed", "never started"] {
            assert!(page.contains(state), "deferred-job state {state}");
        }
    }

    /// The shipped connector.conf is read without a problem, and it and the
    /// guide document every key connectord knows.
    #[test]
    fn the_shipped_configuration_is_clean_and_every_key_is_documented() {
        let (cfg, problems) = connectord::config::parse(CONFIG);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(cfg, connectord::config::Config::default());
        let guide = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/admin/guide.md"),
        )
        .unwrap();
        for (key, _) in connectord::config::KEYS {
            assert!(
                CONFIG.contains(&format!("\n{key} = "))
                    || CONFIG.contains(&format!("\n# {key} = ")),
                "{key} in the shipped file"
            );
            assert!(guide.contains(&format!("`{key}`")), "{key} in the guide");
        }
    }

    #[test]
    fn changelog_dates() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
    }
}
