//! `connector-installer bundle`: building a bundle of the header packages
//! a fleet needs (docs/bundle.md). Each package is found through the same
//! archives as `headers` and verified end to end the same way; the bundle
//! holds, per distribution, the packages and the metadata the
//! distribution's own tools read, and a manifest with every file's digest,
//! signed with the site's key when one is given. Reading a bundle is
//! `crate::fallback::bundle`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use connector_host::os::Family;
use connector_host::{Cmd, Root};
use serde::Serialize;

use crate::facts::archives_conf::ArchiveConfig;
use crate::facts::KernelFacts;
use crate::fallback::access::{self, ArchiveBackend, IndexSignature};
use crate::fallback::bundle::{
    digest, os_dir, read_capped, Entry, Manifest, Target, MANIFEST, MANIFEST_CAP, SCHEMA_VERSION,
    SIGNATURE,
};
use crate::fallback::{DownloadLimits, Fallback};

/// What `bundle` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BundleReport {
    pub schema_version: u32,
    pub out: String,
    /// Header packages downloaded by this run.
    pub downloaded: Vec<String>,
    /// Header packages the bundle already had, verified.
    pub present: Vec<String>,
    /// Header packages no archive had, with the reason.
    pub failed: Vec<Missing>,
    pub signed: bool,
}

impl BundleReport {
    /// 0 when the bundle has every package asked for, else 2 (docs/exit-codes.md).
    pub fn exit_code(&self) -> i32 {
        if self.failed.is_empty() {
            crate::exit::OK
        } else {
            crate::exit::NOT_DONE
        }
    }
}

/// The report for people.
pub fn render_text(r: &BundleReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for p in &r.downloaded {
        let _ = writeln!(s, "downloaded {p}");
    }
    for p in &r.present {
        let _ = writeln!(s, "already in the bundle: {p}");
    }
    for m in &r.failed {
        let _ = writeln!(s, "NOT FOUND {}: {}", m.package, m.reason);
    }
    let _ = writeln!(
        s,
        "{}: {} package(s){}",
        r.out,
        r.downloaded.len() + r.present.len(),
        if r.signed { ", signed" } else { "" }
    );
    s
}

/// A header package the bundle lacks.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub package: String,
    pub reason: String,
}

/// How `bundle` was asked.
pub struct BundleOptions {
    pub out: PathBuf,
    pub targets: Vec<Target>,
    /// archives.conf to use; default this host's.
    pub archives: Option<PathBuf>,
    /// The site's secret key (armored) to sign the manifest and the
    /// repository metadata with.
    pub sign_key: Option<PathBuf>,
    /// The bounds of every download (through this host's proxies).
    pub limits: DownloadLimits,
}

/// Builds or completes the bundle at `opts.out`.
/// Holds `OUT/.bundle.lock` (a record lock, released when the run ends,
/// however it ends); another run writing the same bundle is refused.
fn lock_out(out: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = out.join(".bundle.lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    anyhow::ensure!(
        file.metadata()?.is_file(),
        "{}: not a regular file",
        path.display()
    );
    match connector_host::lock::try_record_lock(&file, &path)? {
        Ok(()) => Ok(file),
        Err(holder) => anyhow::bail!(
            "another bundle run is writing {}: {holder}; let it finish",
            out.display()
        ),
    }
}

/// Removes the `.download-*` directories an interrupted run left in `out`
/// (only real directories: a link of that name is left alone, never
/// followed); their names.
fn remove_partial_downloads(out: &Path) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for e in std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(".download-") {
            continue;
        }
        let path = e.path();
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

pub fn build(opts: &BundleOptions, progress: &mut dyn FnMut(&str)) -> Result<BundleReport> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let out = std::fs::canonicalize(&opts.out)?;
    // One run at a time per bundle; then what an interrupted run left
    // (its `.download-*` directories) is ours to remove.
    let _lock = lock_out(&out)?;
    for left in remove_partial_downloads(&out)? {
        progress(&format!(
            "removed {left}: a partial download an interrupted run left"
        ));
    }
    let host = Root::live();
    let cfg = ArchiveConfig::load(&host, opts.archives.as_deref())?;
    let mut manifest = match read_capped(&out.join(MANIFEST), MANIFEST_CAP) {
        Ok(bytes) => Manifest::parse(&bytes, &out.join(MANIFEST))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest {
            schema_version: SCHEMA_VERSION,
            packages: Vec::new(),
        },
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}", out.join(MANIFEST).display()))
        }
    };
    // An entry whose file is gone or changed is downloaded again.
    manifest.packages.retain(|e| {
        digest(&out.join(&e.file))
            .is_ok_and(|(sha, size)| size == e.size && sha.eq_ignore_ascii_case(&e.sha256))
    });
    let mut report = BundleReport {
        schema_version: SCHEMA_VERSION,
        out: out.display().to_string(),
        ..BundleReport::default()
    };
    // The archives.conf keys are this host's files; so are the proxies.
    let mut touched: BTreeSet<(String, Family)> = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for t in &opts.targets {
        let mut k = KernelFacts::named(&t.os, &t.release);
        if let Some(p) = &t.package {
            k.headers.package = Some(p.clone());
        }
        let Some(pkg) = k.headers.package.clone() else {
            report.failed.push(Missing {
                package: t.release.clone(),
                reason: format!(
                    "no distribution package carries the headers of {} on {}",
                    t.release, t.os.id
                ),
            });
            continue;
        };
        if !seen.insert((t.os.id.clone(), t.os.version_id.clone(), pkg.clone())) {
            continue;
        }
        let dir_name = os_dir(&t.os);
        if manifest
            .packages
            .iter()
            .any(|e| e.serves == pkg && e.distro == t.os.id && e.version == t.os.version_id)
        {
            report.present.push(pkg);
            continue;
        }
        let Some(family) = t.os.family() else {
            report.failed.push(Missing {
                package: pkg,
                reason: format!("{} is not a supported distribution", t.os.id),
            });
            continue;
        };
        let archive: Box<dyn ArchiveBackend> =
            access::for_os(&t.os, &host).expect("a family has an archive");
        let download = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(&out)
            .context("creating a download directory in the bundle")?;
        progress(&format!(
            "{pkg} ({} {}, kernel {})",
            t.os.id, t.os.version_id, t.release
        ));
        let fallback = Fallback {
            access: archive.as_ref(),
            root: &host,
            os: &t.os,
            config: &cfg,
            limits: opts.limits,
            download_dir: download.path(),
        };
        match fallback.in_archives(&k, &pkg, progress) {
            Ok((files, _, from)) => {
                let dest_dir = out.join(&dir_name);
                std::fs::create_dir_all(&dest_dir)
                    .with_context(|| format!("creating {}", dest_dir.display()))?;
                for f in files {
                    let name = f
                        .file_name()
                        .context("a downloaded file without a name")?
                        .to_string_lossy()
                        .into_owned();
                    let dest = dest_dir.join(&name);
                    // Downloads are not synced; what the bundle keeps is.
                    connector_host::atomic::place(&f, &dest)
                        .with_context(|| format!("moving {name} into the bundle"))?;
                    let (sha256, size) = digest(&dest)?;
                    manifest.packages.push(Entry {
                        file: format!("{dir_name}/{name}"),
                        serves: pkg.clone(),
                        distro: t.os.id.clone(),
                        version: t.os.version_id.clone(),
                        kernel: t.release.clone(),
                        sha256,
                        size,
                        source: from.clone(),
                    });
                }
                touched.insert((dir_name, family));
                report.downloaded.push(pkg);
            }
            Err(e) => report.failed.push(Missing {
                package: pkg,
                reason: connector_host::cmd::chain(&e),
            }),
        }
    }
    // Every distribution directory gets metadata its own tools read, when
    // something changed in it or it has none yet.
    for (d, fam) in dirs(&manifest) {
        if !out
            .join(&d)
            .join(access::for_family(fam, &host, None).index_file())
            .exists()
        {
            touched.insert((d, fam));
        }
    }
    for (d, fam) in &touched {
        access::for_family(*fam, &host, None).write_index(&out.join(d))?;
    }
    manifest
        .packages
        .sort_by(|a, b| (&a.distro, &a.version, &a.file).cmp(&(&b.distro, &b.version, &b.file)));
    manifest.packages.dedup_by(|a, b| a.file == b.file);
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    connector_host::atomic::write(&out.join(MANIFEST), text.as_bytes(), 0o644, None)?;
    if let Some(key) = &opts.sign_key {
        // The manifest, and every distribution's metadata: repomd.xml.asc
        // for dnf, InRelease for apt.
        let mut detached = vec![out.join(MANIFEST)];
        let mut clear = Vec::new();
        for (d, fam) in &dirs(&manifest) {
            let family = access::for_family(*fam, &host, None);
            let index = out.join(d).join(family.index_file());
            match family.index_signature() {
                IndexSignature::Detached => detached.push(index),
                IndexSignature::ClearInto(name) => clear.push((index, out.join(d).join(name))),
            }
        }
        sign(key, &detached, &clear)?;
        report.signed = true;
    } else if !touched.is_empty() || !report.downloaded.is_empty() {
        // An old signature no longer covers the new manifest.
        let _ = std::fs::remove_file(out.join(SIGNATURE));
    }
    report.signed = report.signed || out.join(SIGNATURE).exists();
    Ok(report)
}

/// The distribution directories of a manifest, with their family.
fn dirs(m: &Manifest) -> BTreeSet<(String, Family)> {
    m.packages
        .iter()
        .map(|e| {
            let fam = if e.file.ends_with(".rpm") {
                Family::Rpm
            } else {
                Family::Deb
            };
            (
                e.file.split('/').next().unwrap_or_default().to_string(),
                fam,
            )
        })
        .collect()
}

/// Detached, armored signatures (`FILE.asc`) with the site's secret key,
/// by gpg in a private home.
fn sign(key: &Path, files: &[PathBuf], clear: &[(PathBuf, PathBuf)]) -> Result<()> {
    let home = tempfile::tempdir().context("creating a private GnuPG home")?;
    let gpg = |desc: &str| {
        Cmd::new("gpg", desc)
            .missing_hint("install gnupg")
            .arg("--homedir")
            .arg(home.path())
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
    };
    gpg("Importing the site's signing key")
        .arg("--import")
        .arg(key)
        .run()
        .with_context(|| format!("importing {}", key.display()))?;
    for f in files {
        let mut asc = f.clone().into_os_string();
        asc.push(".asc");
        gpg("Signing the bundle")
            .args(["--armor", "--detach-sign", "--output"])
            .arg(&asc)
            .arg(f)
            .run()
            .with_context(|| format!("signing {}", f.display()))?;
    }
    for (input, output) in clear {
        gpg("Signing the bundle's apt Release")
            .args(["--armor", "--clearsign", "--output"])
            .arg(output)
            .arg(input)
            .run()
            .with_context(|| format!("signing {}", input.display()))?;
    }
    Ok(())
}
