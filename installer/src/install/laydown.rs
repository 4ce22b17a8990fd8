//! Laying the connector's files down into a root from a payload directory:
//! `PAYLOAD/manifest` plus `PAYLOAD/files/<path>`.
//!
//! ```text
//! # connector payload manifest 1
//! dir  0755 /opt/connector
//! file 0755 <sha256> /opt/connector/bin/connectord
//! conf 0640 <sha256> /etc/connector/connector.conf
//! ```
//!
//! Order of business, so that bad input changes nothing:
//! 1. parse and validate every entry: absolute, normalized, no `..`;
//! 2. hash every payload file and compare with the manifest;
//! 3. walk every destination inside the root: an existing component that is
//!    a symlink (absolute, or climbing out) or not a directory refuses the
//!    whole lay-down;
//! 4. only then write: each file to a temporary name in its directory, mode
//!    and SELinux label set on the descriptor, fsync, rename; directories
//!    created with their mode and label. A file already identical is not
//!    touched.
//!
//! Configuration (`conf`) is never overwritten once changed by an
//! administrator: the new version is written beside it as `NAME.new`. What
//! was shipped is remembered in `/var/lib/connector/installed.manifest`, so
//! "changed" means "differs from what we installed".

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use connector_host::layout::INSTALL_RECORD;
use connector_host::{layout, Root};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Kinds of manifest entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Dir,
    File,
    Conf,
}

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub kind: EntryKind,
    pub mode: u32,
    pub sha256: Option<String>,
    pub path: String,
}

/// Why a payload or a root is refused. Typed: the hook reports these.
#[derive(Debug, thiserror::Error)]
pub enum LaydownError {
    #[error("manifest line {line}: {detail}")]
    Manifest { line: usize, detail: String },
    #[error(
        "the manifest does not lay down {missing}, which every connector payload has; \
         nothing was written (rebuild the payload with its manifest)"
    )]
    Incomplete { missing: String },
    #[error("{path}: the payload file's sha256 is {actual}, the manifest says {expected}")]
    Digest {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: refused: {detail}")]
    Unsafe { path: String, detail: String },
    #[error(
        "no room for {path}: {dir} has {available} bytes{} free, the connector's files need {need}; \
         free some space there and run this again (nothing was written)",
        inodes.map(|i| format!(" and {i} inodes")).unwrap_or_default()
    )]
    NoSpace {
        path: String,
        dir: String,
        need: u64,
        available: u64,
        inodes: Option<u64>,
    },
}

/// Parses a manifest.
///
/// The manifest is checked as a whole before anything is written: every
/// line's syntax, each entry's place and mode ([`check_entry`]), and files
/// that would be the parents of other entries.
pub fn parse_manifest(text: &str) -> Result<Vec<Entry>, LaydownError> {
    let mut out: Vec<Entry> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |detail: String| LaydownError::Manifest {
            line: i + 1,
            detail,
        };
        let w: Vec<&str> = line.split_whitespace().collect();
        let kind = match w.first().copied() {
            Some("dir") => EntryKind::Dir,
            Some("file") => EntryKind::File,
            Some("conf") => EntryKind::Conf,
            other => return Err(err(format!("unknown kind {other:?}"))),
        };
        let want = if kind == EntryKind::Dir { 3 } else { 4 };
        if w.len() != want {
            return Err(err(format!("expected {want} fields, got {}", w.len())));
        }
        let mode = u32::from_str_radix(w[1], 8).map_err(|_| err(format!("bad mode {:?}", w[1])))?;
        if mode & !0o7777 != 0 || mode & 0o6000 != 0 {
            return Err(err(format!("mode {:o}: no setuid/setgid files here", mode)));
        }
        let (sha256, path) = if kind == EntryKind::Dir {
            (None, w[2])
        } else {
            let sum = w[2].to_ascii_lowercase();
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(format!("bad sha256 {:?}", w[2])));
            }
            (Some(sum), w[3])
        };
        check_path(path).map_err(|d| err(format!("{path}: {d}")))?;
        if out.iter().any(|e| e.path == path) {
            return Err(err(format!("{path} listed twice")));
        }
        let entry = Entry {
            kind,
            mode,
            sha256,
            path: path.to_string(),
        };
        check_entry(&entry).map_err(|d| err(format!("{path}: {d}")))?;
        // A parent listed above must be a directory, and this one must not
        // be the parent of an entry listed above.
        for (other, other_line) in out.iter().zip(&lines) {
            if other.kind != EntryKind::Dir && is_below(path, &other.path) {
                return Err(err(format!(
                    "{path} is below {}, which line {other_line} makes a {}",
                    other.path,
                    if other.kind == EntryKind::Conf {
                        "configuration file"
                    } else {
                        "file"
                    }
                )));
            }
            if kind != EntryKind::Dir && is_below(&other.path, path) {
                return Err(err(format!(
                    "{path} is a file, but line {other_line} puts {} below it",
                    other.path
                )));
            }
        }
        out.push(entry);
        lines.push(i + 1);
    }
    Ok(out)
}

/// A payload's manifest: [`parse_manifest`] plus the entries every payload
/// must have. (The install record, which `uninstall` shrinks as it removes
/// files, is parsed without this.)
pub fn parse_payload_manifest(text: &str) -> Result<Vec<Entry>, LaydownError> {
    let out = parse_manifest(text)?;
    for required in REQUIRED {
        if !out
            .iter()
            .any(|e| e.kind == EntryKind::File && e.path == *required)
        {
            return Err(LaydownError::Incomplete {
                missing: (*required).to_string(),
            });
        }
    }
    Ok(out)
}

/// What every manifest must lay down: without it there is no connector
/// (and an empty manifest would wipe the record of what was shipped).
pub const REQUIRED: &[&str] = &[layout::CONNECTORD];

/// Where a manifest may put things: the connector's own directories, and
/// the few files it places in system directories (units, the kernel hook,
/// the policy source, documentation).
const ALLOWED: &[Allowed] = &[
    Allowed::Below(layout::OPT_DIR),
    Allowed::Below(layout::CONF_DIR),
    Allowed::Below(layout::STATE_DIR),
    Allowed::Below(layout::LOG_DIR),
    Allowed::Below("/usr/share/doc/connector"),
    // THIRD-PARTY-NOTICES (the .rpm's %license file) and, in signed
    // builds, the public key the .rpm is signed with.
    Allowed::Below(layout::RPM_LICENSE_DIR),
    Allowed::Exact(layout::RPM_KEY),
    Allowed::Exact(layout::DEB_KEYRING),
    Allowed::Named("/usr/lib/systemd/system/", layout::UNITS),
    Allowed::Named("/lib/systemd/system/", layout::UNITS),
    Allowed::Named("/etc/kernel/postinst.d/", &["connector"]),
    Allowed::Named("/usr/lib/kernel/install.d/", &["90-connector.install"]),
    Allowed::Named("/usr/sbin/", &["connector-installer"]),
    Allowed::Named("/usr/share/lintian/overrides/", &["connector"]),
    Allowed::Named("/usr/share/selinux/packages/", &["connectord.cil"]),
    // The manual pages (one per subcommand) and the shell completions.
    Allowed::Pages(
        "/usr/share/man/man8/",
        &["connector-installer", "connectord"],
        ".8.gz",
    ),
    Allowed::Named(
        "/usr/share/bash-completion/completions/",
        &["connector-installer"],
    ),
    Allowed::Named(
        "/usr/share/zsh/vendor-completions/",
        &["_connector-installer"],
    ),
    Allowed::Named("/usr/share/zsh/site-functions/", &["_connector-installer"]),
    Allowed::Named(
        "/usr/share/fish/vendor_completions.d/",
        &["connector-installer.fish"],
    ),
];

/// The installer's own bookkeeping: never shipped.
const RESERVED: &[&str] = &[
    INSTALL_RECORD,
    connector_host::layout::INSTALLER_LOCK,
    connector_host::layout::JOURNAL,
    connector_host::layout::PENDING,
    layout::STATUS,
    layout::LAST_RUN,
    layout::MODULE_FAILURE,
    layout::INSTALL_STAMPS,
    layout::LABEL_CACHE,
    layout::DATABASE_CACHE,
];

enum Allowed {
    /// The directory itself and everything below it.
    Below(&'static str),
    /// These names in that directory (files only).
    Named(&'static str, &'static [&'static str]),
    /// This file.
    Exact(&'static str),
    /// Manual pages in that directory: a name that is one of these, or
    /// one of these and `-SUBCOMMAND`, then the suffix (files only).
    Pages(&'static str, &'static [&'static str], &'static str),
}

/// Whether `p` is strictly below `dir`.
fn is_below(p: &str, dir: &str) -> bool {
    p.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// One entry on its own: an allowed place, a reserved name, its mode.
fn check_entry(e: &Entry) -> Result<(), String> {
    let allowed = ALLOWED.iter().any(|a| match a {
        Allowed::Below(d) => e.path == *d || is_below(&e.path, d),
        Allowed::Named(d, names) => {
            e.kind != EntryKind::Dir && e.path.strip_prefix(d).is_some_and(|n| names.contains(&n))
        }
        Allowed::Exact(p) => e.kind != EntryKind::Dir && e.path == *p,
        Allowed::Pages(d, names, suffix) => {
            e.kind != EntryKind::Dir
                && e.path
                    .strip_prefix(d)
                    .and_then(|n| n.strip_suffix(suffix))
                    .is_some_and(|stem| {
                        names.iter().any(|name| {
                            stem.strip_prefix(name).is_some_and(|rest| {
                                rest.is_empty()
                                    || rest.strip_prefix('-').is_some_and(|sub| {
                                        !sub.is_empty()
                                            && sub
                                                .chars()
                                                .all(|c| c.is_ascii_lowercase() || c == '-')
                                    })
                            })
                        })
                    })
        }
    });
    if !allowed {
        return Err(
            "not a place the connector's files go (see \"What a manifest may contain\" in \
             /usr/share/doc/connector/security.md)"
                .into(),
        );
    }
    if RESERVED.contains(&e.path.as_str()) {
        return Err("the installer's own record, never part of a payload".into());
    }
    if e.kind == EntryKind::Conf && !is_below(&e.path, layout::CONF_DIR) {
        return Err("configuration lives below /etc/connector".into());
    }
    if e.mode & 0o002 != 0 {
        return Err(format!("mode {:04o}: world-writable", e.mode));
    }
    if e.mode & 0o1000 != 0 {
        return Err(format!("mode {:04o}: no sticky bit here", e.mode));
    }
    Ok(())
}

/// An absolute, normalized path with no `..`, `.` or empty components.
fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p == "/" {
        return Err("must be absolute and not /".into());
    }
    if p.contains("//") || p.ends_with('/') {
        return Err("must be normalized".into());
    }
    // Split by hand: Path::components() silently drops `.`.
    for part in p[1..].split('/') {
        match part {
            ".." => return Err("`..` escapes the root".into()),
            "." | "" => return Err("must be normalized".into()),
            _ => {}
        }
    }
    Ok(())
}

/// What happened (or, in a preview, would happen) to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The file was not there.
    Created,
    /// Content or mode changed.
    Updated,
    /// Already the payload's, content and mode.
    Unchanged,
    /// Configuration changed by the administrator: kept; the new version
    /// is `PATH.new`.
    KeptNew,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::KeptNew => "kept-new",
        })
    }
}

/// What happened to one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    pub path: String,
    pub action: Action,
}

/// What `connector-installer laydown` did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct LaydownReport {
    pub schema_version: u32,
    pub root: String,
    pub dry_run: bool,
    /// Every entry of the payload and what became of it.
    pub files: Vec<Done>,
    /// The command that enabled the unit, when one ran.
    pub enabled: Option<String>,
}

/// `connector-installer laydown`: the payload at `payload` laid down in
/// `root`, labeled from the root's file_contexts, and the unit enabled
/// when the payload ships it (unless `enable` is false). With `dry_run`,
/// every check of a real run (digests, destinations, room), then what each
/// entry would become; nothing changed.
pub fn run(root: &Root, payload: &Path, dry_run: bool, enable: bool) -> Result<LaydownReport> {
    let labels: Box<dyn Labeler> = match FileContexts::open(root)? {
        Some(fc) => Box::new(fc),
        None => Box::new(NoLabels),
    };
    if enable && !root.is_live() {
        // `systemctl --root` enables the unit after the files are down: a
        // link that would take it out refuses both now.
        root.check_tool_paths(crate::install::service::SYSTEMCTL_PATHS)?;
    }
    let files = if dry_run {
        let p = prepare(root, payload)?;
        p.check_space()?;
        p.preview()?
    } else {
        laydown(root, payload, labels.as_ref())?
    };
    let unit = format!("/systemd/system/{}", layout::UNIT);
    let enabled = if !dry_run && enable && files.iter().any(|d| d.path.ends_with(&unit)) {
        crate::install::service::enable_unit(root, layout::UNIT)?
    } else {
        None
    };
    Ok(LaydownReport {
        schema_version: 1,
        root: root.path().display().to_string(),
        dry_run,
        files,
        enabled,
    })
}

/// The report for people.
pub fn render_text(r: &LaydownReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if r.dry_run {
        let _ = writeln!(s, "dry run: nothing was changed; each entry would be:");
    }
    for d in &r.files {
        let _ = writeln!(s, "{:<10} {}", d.action, d.path);
        if d.action == Action::KeptNew {
            let _ = writeln!(
                s,
                "           {} was changed locally: kept; the new version is {}.new",
                d.path, d.path
            );
        }
    }
    if let Some(c) = &r.enabled {
        let _ = writeln!(s, "ran: {c}");
    }
    s
}

use crate::labels::set_on_file as set_label;
pub use crate::labels::{FileContexts, Labeler, NoLabels};
use crate::stamps::Digests;

pub(crate) fn sha256_file(p: &Path) -> io::Result<String> {
    crate::stamps::sha256_reader(&mut connector_host::root::open_regular(p)?)
}

/// Walks `path` inside the root: every existing component must be a real
/// directory (the last one: a directory for dirs, a regular file for
/// files), never a symlink. Returns the host path.
fn safe_host_path(root: &Root, path: &str, kind: EntryKind) -> Result<PathBuf, LaydownError> {
    let unsafe_err = |detail: String| LaydownError::Unsafe {
        path: path.to_string(),
        detail,
    };
    let mut host = root.path().to_path_buf();
    let comps: Vec<_> = Path::new(path).components().skip(1).collect();
    for (i, c) in comps.iter().enumerate() {
        host.push(c.as_os_str());
        let last = i + 1 == comps.len();
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&host).unwrap_or_default();
                // usr-merge links (`lib -> usr/lib`) are relative and stay
                // inside; anything absolute or climbing is refused.
                let inside = target.is_relative()
                    && !target.components().any(|c| c == Component::ParentDir)
                    && !last;
                if !inside {
                    return Err(unsafe_err(format!(
                        "{} is a symlink to {} in the root",
                        host.strip_prefix(root.path()).unwrap_or(&host).display(),
                        target.display()
                    )));
                }
                host = root
                    .resolve(host.strip_prefix(root.path()).unwrap_or(&host))
                    .map_err(|e| unsafe_err(e.to_string()))?;
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(unsafe_err(format!("{} is not a directory", host.display())))
            }
            Ok(m) if last && kind == EntryKind::Dir && !m.is_dir() => {
                return Err(unsafe_err("exists and is not a directory".into()))
            }
            Ok(m) if last && kind != EntryKind::Dir && !m.is_file() => {
                return Err(unsafe_err("exists and is not a regular file".into()))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(unsafe_err(e.to_string())),
        }
    }
    Ok(host)
}

/// A payload checked against a root: every digest verified and every
/// destination found safe. Nothing has been written yet.
#[derive(Debug)]
pub struct Prepared {
    payload: PathBuf,
    text: String,
    entries: Vec<Entry>,
    hosts: Vec<PathBuf>,
    shipped: BTreeMap<String, String>,
    record: PathBuf,
    /// The stamps of the files laid down (`crate::stamps`).
    stamps: PathBuf,
    root: Root,
    /// The installed files' digests, hashed only when their stamps do not
    /// vouch for them.
    digests: Digests,
    /// What each entry becomes, found once.
    planned: Vec<Action>,
}

/// The largest payload manifest read (one line per file; the connector's
/// has a few dozen).
const MANIFEST_CAP: u64 = 4 * 1024 * 1024;

/// The largest payload file written (the connector's largest, connectord,
/// is a few MiB).
const PAYLOAD_FILE_CAP: u64 = 1 << 30;

/// Checks `payload` against `root` (steps 1–3): nothing is written.
pub fn prepare(root: &Root, payload: &Path) -> Result<Prepared> {
    let manifest_path = payload.join("manifest");
    let text = connector_host::root::read_named_file(&manifest_path, MANIFEST_CAP)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let entries = parse_payload_manifest(&text)?;

    // 2. The payload holds a regular file for every file entry; its digest
    // is checked below, for the files that will be written.
    for e in entries.iter().filter(|e| e.kind != EntryKind::Dir) {
        let src = payload.join("files").join(e.path.trim_start_matches('/'));
        let meta =
            fs::symlink_metadata(&src).with_context(|| format!("payload file for {}", e.path))?;
        if !meta.is_file() {
            bail!(LaydownError::Unsafe {
                path: e.path.clone(),
                detail: "the payload entry is not a regular file".into()
            });
        }
    }
    // 3. Every destination is safe to write.
    let mut hosts = Vec::new();
    for e in &entries {
        hosts.push(safe_host_path(root, &e.path, e.kind)?);
    }
    let record = safe_host_path(root, INSTALL_RECORD, EntryKind::File)?;
    let stamps = safe_host_path(
        root,
        connector_host::layout::INSTALL_STAMPS,
        EntryKind::File,
    )?;
    // What we shipped last time (for config files).
    let shipped: BTreeMap<String, String> = root
        .read_to_string_optional(INSTALL_RECORD)
        .ok()
        .flatten()
        .and_then(|t| parse_manifest(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.sha256.map(|s| (e.path, s)))
        .collect();
    let mut p = Prepared {
        payload: payload.to_path_buf(),
        text,
        entries,
        hosts,
        shipped,
        record,
        stamps,
        root: root.clone(),
        digests: Digests::load(root),
        planned: Vec::new(),
    };
    // What each entry becomes; the payload's files that will be written
    // are what the manifest says (the others are not read at all).
    for (e, host) in p.entries.iter().zip(&p.hosts) {
        let action = match e.kind {
            EntryKind::Dir => match fs::metadata(host) {
                Ok(m) if m.permissions().mode() & 0o7777 == e.mode => Action::Unchanged,
                Ok(_) => Action::Updated,
                Err(_) => Action::Created,
            },
            EntryKind::File | EntryKind::Conf => {
                let (action, write) = file_action(host, e, p.shipped.get(&e.path), &p.digests)?;
                if write {
                    let src = p.src(e);
                    let actual =
                        sha256_file(&src).with_context(|| format!("hashing {}", src.display()))?;
                    check_digest(e, actual)?;
                }
                action
            }
        };
        p.planned.push(action);
    }
    Ok(p)
}

/// Refuses payload content that is not what the manifest says.
fn check_digest(e: &Entry, actual: String) -> Result<()> {
    let expected = e.sha256.clone().unwrap_or_default();
    if actual != expected {
        bail!(LaydownError::Digest {
            path: e.path.clone(),
            expected,
            actual
        });
    }
    Ok(())
}

impl Prepared {
    fn src(&self, e: &Entry) -> PathBuf {
        self.payload
            .join("files")
            .join(e.path.trim_start_matches('/'))
    }

    /// The manifest's entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The directories files are written into (for cleaning up after a
    /// killed run).
    pub fn dirs(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .entries
            .iter()
            .filter_map(|e| Path::new(&e.path).parent())
            .map(|p| p.display().to_string())
            .chain(std::iter::once(layout::STATE_DIR.to_string()))
            .collect();
        d.sort();
        d.dedup();
        d
    }

    /// What `apply` would do to every entry, without doing it. The last
    /// item is the record of what was shipped, when it would change.
    pub fn preview(&self) -> Result<Vec<Done>> {
        let mut out: Vec<Done> = self
            .entries
            .iter()
            .zip(&self.planned)
            .map(|(e, &action)| Done {
                path: e.path.clone(),
                action,
            })
            .collect();
        if fs::read(&self.record).ok().as_deref() != Some(self.text.as_bytes()) {
            out.push(Done {
                path: INSTALL_RECORD.into(),
                action: if self.record.exists() {
                    Action::Updated
                } else {
                    Action::Created
                },
            });
        }
        Ok(out)
    }

    /// Refuses, before anything is written, when a file system the files
    /// go to has not the room (bytes and inodes) for them.
    pub fn check_space(&self) -> Result<()> {
        self.space_needed()?.check()
    }

    /// Everything `apply` writes, per file system: each new or changed file
    /// (its temporary copy exists beside the old one until the rename), the
    /// `.new` copies of kept configuration, every directory it creates on
    /// the way, and the record of what was shipped.
    pub fn space_needed(&self) -> Result<Space> {
        let preview = self.preview()?;
        let mut space = Space::default();
        for ((e, host), d) in self.entries.iter().zip(&self.hosts).zip(&preview) {
            if d.action == Action::Unchanged
                || (e.kind == EntryKind::Dir && d.action == Action::Updated)
            {
                continue;
            }
            let bytes = if e.kind == EntryKind::Dir {
                0
            } else {
                fs::metadata(self.src(e))?.len()
            };
            let is_dir = e.kind == EntryKind::Dir;
            space.add(&e.path, host, bytes, is_dir);
        }
        if preview.last().is_some_and(|d| d.path == INSTALL_RECORD) {
            space.add(INSTALL_RECORD, &self.record, self.text.len() as u64, false);
        }
        Ok(space)
    }

    /// Writes (step 4).
    pub fn apply(&self, labels: &dyn Labeler) -> Result<Vec<Done>> {
        let mut done = Vec::new();
        for (e, host) in self.entries.iter().zip(&self.hosts) {
            let action = match e.kind {
                EntryKind::Dir => ensure_dir(host, &e.path, e.mode, labels)?,
                EntryKind::File | EntryKind::Conf => write_file(
                    host,
                    &self.src(e),
                    e,
                    self.shipped.get(&e.path),
                    labels,
                    &self.digests,
                )?,
            };
            done.push(Done {
                path: e.path.clone(),
                action,
            });
        }
        let changed: Vec<String> = done
            .iter()
            .filter(|d| d.action != Action::Unchanged)
            .map(|d| d.path.clone())
            .collect();
        if !changed.is_empty() {
            crate::state::audit::record(
                crate::state::audit::ChangeKind::FilesLaidDown,
                format!("laid down {} connector file(s)", changed.len()),
                changed,
            );
        }
        // Remember what was shipped.
        let rec = &self.record;
        if fs::read(rec).ok().as_deref() != Some(self.text.as_bytes()) {
            if let Some(parent) = rec.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            atomic_write(rec, self.text.as_bytes(), 0o644, None)?;
        }
        self.remember();
        Ok(done)
    }

    /// Writes the stamps of the files as they are now, when they changed
    /// (`crate::stamps`): after a lay-down, or after a run that found
    /// nothing to lay down but had to hash (no stamps yet, or a file
    /// touched). Best effort: the stamps are a cache.
    pub fn remember(&self) {
        let news: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Conf)
            .map(|e| format!("{}.new", e.path))
            .collect();
        let paths: Vec<&str> = self
            .entries
            .iter()
            .filter(|e| e.kind != EntryKind::Dir)
            .map(|e| e.path.as_str())
            .chain(news.iter().map(String::as_str))
            .collect();
        self.digests.save(&self.root, &self.stamps, &paths);
    }
}

/// Room a run needs, per file system: bytes (in 4 KiB blocks) and inodes,
/// directories created on the way included. Checked before the first write.
#[derive(Debug, Default)]
pub struct Space {
    /// Per device: (an existing directory on it, an example path, bytes,
    /// inodes), and the directories already counted.
    need: BTreeMap<u64, (PathBuf, String, u64, u64)>,
    new_dirs: std::collections::BTreeSet<PathBuf>,
}

impl Space {
    /// Counts writing `bytes` at `host` (`path` inside the root, for the
    /// message): a file (one inode, one more for its temporary copy) or a
    /// directory, and each missing directory above it.
    pub fn add(&mut self, path: &str, host: &Path, bytes: u64, is_dir: bool) {
        let Some((dir, dev)) = existing_ancestor(host) else {
            return;
        };
        let mut missing = 0u64;
        let mut cur = host.parent();
        while let Some(c) = cur {
            if c == dir {
                break;
            }
            if self.new_dirs.insert(c.to_path_buf()) {
                missing += 1;
            }
            cur = c.parent();
        }
        let (blocks, inodes) = if is_dir {
            if host.exists() || !self.new_dirs.insert(host.to_path_buf()) {
                (0, 0)
            } else {
                (1, 1)
            }
        } else {
            (bytes.div_ceil(4096), 2)
        };
        let slot = self
            .need
            .entry(dev)
            .or_insert((dir, path.to_string(), 0, 0));
        // A directory takes a block on most file systems (not on tmpfs).
        slot.2 += (blocks + missing) * 4096;
        slot.3 += inodes + missing;
    }

    /// Refuses when any file system lacks the room.
    pub fn check(&self) -> Result<()> {
        for (dir, example, bytes, inodes) in self.need.values() {
            let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
            // SAFETY: zeroed statvfs is valid; c is NUL-terminated.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
                continue;
            }
            let avail = st.f_bavail as u64 * st.f_frsize as u64;
            // f_files == 0: the file system does not count inodes.
            let inodes_ok = st.f_files == 0 || st.f_favail as u64 >= *inodes;
            if avail < *bytes || !inodes_ok {
                bail!(LaydownError::NoSpace {
                    path: example.clone(),
                    dir: dir.display().to_string(),
                    need: *bytes,
                    available: avail,
                    inodes: if inodes_ok {
                        None
                    } else {
                        Some(st.f_favail as u64)
                    },
                });
            }
        }
        Ok(())
    }
}

/// The nearest existing ancestor of `p` and its device.
fn existing_ancestor(p: &Path) -> Option<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut cur = Some(p);
    while let Some(c) = cur {
        if let Ok(m) = fs::metadata(c) {
            let dir = if m.is_dir() { c } else { c.parent()? };
            return Some((dir.to_path_buf(), m.dev()));
        }
        cur = c.parent();
    }
    None
}

/// What writing entry `e` at `host` means: the action and, for
/// `kept-new`, whether the `.new` file must be (re)written.
fn file_action(
    host: &Path,
    e: &Entry,
    shipped: Option<&String>,
    digests: &Digests,
) -> Result<(Action, bool)> {
    let new_sum = e.sha256.clone().unwrap_or_default();
    if !host.exists() {
        return Ok((Action::Created, true));
    }
    let current = digests
        .sha256(&e.path, host)
        .with_context(|| format!("hashing {}", host.display()))?;
    let mode = fs::metadata(host)?.permissions().mode() & 0o7777;
    if current == new_sum {
        return Ok((
            if mode == e.mode {
                Action::Unchanged
            } else {
                Action::Updated
            },
            false,
        ));
    }
    if e.kind == EntryKind::Conf && shipped != Some(&current) {
        // Changed by the administrator: kept; ours goes beside it, once.
        let beside = new_beside(host);
        let same = beside.is_file()
            && digests.sha256(&format!("{}.new", e.path), &beside)? == new_sum
            && fs::metadata(&beside)?.permissions().mode() & 0o7777 == e.mode;
        return Ok(if same {
            (Action::Unchanged, false)
        } else {
            (Action::KeptNew, true)
        });
    }
    Ok((Action::Updated, true))
}

/// Where a kept configuration file's new version goes.
fn new_beside(host: &Path) -> PathBuf {
    let mut name = host.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// Lays `payload` down into `root`. Nothing is written unless every check
/// passes, including room on the file systems written to.
pub fn laydown(root: &Root, payload: &Path, labels: &dyn Labeler) -> Result<Vec<Done>> {
    let p = prepare(root, payload)?;
    p.check_space()?;
    p.apply(labels)
}

fn ensure_dir(host: &Path, path: &str, mode: u32, labels: &dyn Labeler) -> Result<Action> {
    if host.is_dir() {
        let current = fs::metadata(host)?.permissions().mode() & 0o7777;
        if current != mode {
            fs::set_permissions(host, fs::Permissions::from_mode(mode))?;
            return Ok(Action::Updated);
        }
        return Ok(Action::Unchanged);
    }
    if let Some(parent) = host.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::DirBuilder::new()
        .mode(mode)
        .create(host)
        .with_context(|| format!("creating {}", host.display()))?;
    fs::set_permissions(host, fs::Permissions::from_mode(mode))?;
    if let Some(label) = labels.label_for(path, libc::S_IFDIR) {
        let d = fs::File::open(host)?;
        set_label(&d, &label).with_context(|| format!("labeling {path} {label}"))?;
    }
    Ok(Action::Created)
}

fn write_file(
    host: &Path,
    src: &Path,
    e: &Entry,
    shipped: Option<&String>,
    labels: &dyn Labeler,
    digests: &Digests,
) -> Result<Action> {
    let label = labels.label_for(&e.path, libc::S_IFREG);
    let (action, write) = file_action(host, e, shipped, digests)?;
    // The payload's bytes, checked again as they are written (they were
    // checked when planned; this closes the gap between).
    let verified = || -> Result<Vec<u8>> {
        let bytes = connector_host::root::read_capped(src, PAYLOAD_FILE_CAP)
            .with_context(|| format!("reading {}", src.display()))?;
        check_digest(e, hex::encode(Sha256::digest(&bytes)))?;
        Ok(bytes)
    };
    let sum = e.sha256.as_deref().unwrap_or_default();
    match (action, write) {
        (Action::Updated, false) => {
            use std::os::unix::fs::MetadataExt;
            if fs::symlink_metadata(host)?.nlink() > 1 {
                // Another name shares this inode (maybe outside the root):
                // a new file takes our name; the other keeps its mode.
                atomic_write(host, &verified()?, e.mode, label.as_deref())?;
            } else {
                fs::set_permissions(host, fs::Permissions::from_mode(e.mode))?;
            }
            digests.written(&e.path, host, sum)?;
        }
        (_, false) => {}
        (Action::KeptNew, true) => {
            let beside = new_beside(host);
            atomic_write(&beside, &verified()?, e.mode, label.as_deref())?;
            digests.written(&format!("{}.new", e.path), &beside, sum)?;
        }
        (_, true) => {
            if let Some(parent) = host.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            atomic_write(host, &verified()?, e.mode, label.as_deref())?;
            digests.written(&e.path, host, sum)?;
        }
    }
    Ok(action)
}

/// [`connector_host::atomic::write`], the label set on the descriptor
/// before anything is in the file.
pub(crate) fn atomic_write(
    dest: &Path,
    bytes: &[u8],
    mode: u32,
    label: Option<&str>,
) -> Result<()> {
    let set_label = |f: &fs::File| match label {
        Some(l) => set_label(f, l).map_err(|e| io::Error::other(format!("labeling {l}: {e}"))),
        None => Ok(()),
    };
    connector_host::atomic::write(dest, bytes, mode, Some(&set_label))?;
    Ok(())
}

/// Builds a manifest for the files under `files_dir` (for packaging and
/// tests): the directories the connector owns and every file, with modes
/// and digests; paths under `/etc/connector/` are configuration.
pub fn manifest_for(files_dir: &Path) -> io::Result<String> {
    let mut out = String::from("# connector payload manifest 1\n");
    let mut stack = vec![files_dir.to_path_buf()];
    let mut lines = Vec::new();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            let rel = format!("/{}", p.strip_prefix(files_dir).unwrap_or(&p).display());
            let m = fs::symlink_metadata(&p)?;
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                if layout::OWNED_DIRS
                    .iter()
                    .any(|o| rel == *o || rel.starts_with(&format!("{o}/")))
                {
                    lines.push(format!("dir {mode:04o} {rel}"));
                }
                stack.push(p);
            } else if m.is_file() {
                let kind = if is_below(&rel, layout::CONF_DIR) {
                    "conf"
                } else {
                    "file"
                };
                lines.push(format!("{kind} {mode:04o} {} {rel}", sha256_file(&p)?));
            }
        }
    }
    lines.sort_by(|a, b| {
        let pa = a.rsplit(' ').next().unwrap_or("");
        let pb = b.rsplit(' ').next().unwrap_or("");
        pa.cmp(pb)
    });
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_validation() {
        let sum = "a".repeat(64);
        assert!(
            parse_manifest(&format!("file 0755 {sum} /opt/connector/bin/connectord\n")).is_ok()
        );
        for bad in [
            format!("file 0755 {sum} /opt/../etc/passwd"),
            format!("file 0755 {sum} opt/x"),
            format!("file 0755 {sum} /opt//x"),
            format!("file 0755 {sum} /opt/./x"),
            format!("file 4755 {sum} /opt/x"),
            "file 0755 nothex /opt/x".to_string(),
            "dir 0755 /".to_string(),
            "link 0777 /x".to_string(),
            format!("file 0755 {sum} /opt/x\nfile 0755 {sum} /opt/x"),
        ] {
            assert!(parse_manifest(&bad).is_err(), "accepted {bad:?}");
        }
        // A payload must lay the binary down; the record may be smaller.
        assert!(matches!(
            parse_payload_manifest("# connector payload manifest 1\n"),
            Err(LaydownError::Incomplete { .. })
        ));

        assert!(
            parse_manifest(&format!("conf 0640 {sum} /etc/connector/connector.conf\n")).is_ok()
        );
    }

    #[test]
    fn manual_pages_and_completions_are_allowed_by_name_only() {
        let sum = "a".repeat(64);
        let one = |p: &str| parse_manifest(&format!("file 0644 {sum} {p}\n"));
        for good in [
            "/usr/share/man/man8/connector-installer.8.gz",
            "/usr/share/man/man8/connector-installer-selinux-install.8.gz",
            "/usr/share/man/man8/connectord.8.gz",
            "/usr/share/man/man8/connectord-run.8.gz",
            "/usr/share/bash-completion/completions/connector-installer",
            "/usr/share/zsh/vendor-completions/_connector-installer",
            "/usr/share/zsh/site-functions/_connector-installer",
            "/usr/share/fish/vendor_completions.d/connector-installer.fish",
        ] {
            assert!(one(good).is_ok(), "refused {good}");
        }
        for bad in [
            // Another program's page, or ours in another form or place.
            "/usr/share/man/man8/semodule.8.gz",
            "/usr/share/man/man8/connector-installerx.8.gz",
            "/usr/share/man/man8/connector-installer-.8.gz",
            "/usr/share/man/man8/connector-installer-../x.8.gz",
            "/usr/share/man/man8/connector-installer-X.8.gz",
            "/usr/share/man/man8/connector-installer.8",
            "/usr/share/man/man1/connector-installer.1.gz",
            "/usr/share/bash-completion/completions/apt",
            "/usr/share/zsh/site-functions/_dnf",
        ] {
            assert!(one(bad).is_err(), "accepted {bad}");
        }
        // The directories themselves are the system's, never ours.
        assert!(parse_manifest("dir 0755 /usr/share/man/man8/connectord.8.gz\n").is_err());
    }

    #[test]
    fn the_notices_and_the_package_key_are_allowed_and_no_other_key() {
        let sum = "a".repeat(64);
        let one = |p: &str| parse_manifest(&format!("file 0644 {sum} {p}\n"));
        for good in [
            "/usr/share/licenses/connector/THIRD-PARTY-NOTICES",
            "/etc/pki/rpm-gpg/RPM-GPG-KEY-connector",
            "/usr/share/keyrings/connector-archive-keyring.asc",
        ] {
            assert!(one(good).is_ok(), "refused {good}");
        }
        for bad in [
            // Another vendor's key, or a keyring apt trusts for everything.
            "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release",
            "/usr/share/keyrings/debian-archive-keyring.gpg",
            "/etc/apt/trusted.gpg.d/connector.asc",
            "/usr/share/licenses/other/LICENSE",
        ] {
            assert!(one(bad).is_err(), "accepted {bad}");
        }
        assert!(parse_manifest("dir 0755 /etc/pki/rpm-gpg/RPM-GPG-KEY-connector\n").is_err());
    }
}
