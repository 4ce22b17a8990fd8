//! The third-party notices both packages ship: every crate statically
//! linked into `connector-installer` and `connectord`, with its licence and
//! the licence and notice files it carries, generated at build time from
//! the lock file (`cargo metadata --locked`, the graph resolved for the
//! target machine, normal dependencies only: what is compiled in).
//!
//! The crates' own files are the source of the texts (`LICENSE*`,
//! `LICENCE*`, `COPYING*`, `NOTICE*`, `COPYRIGHT*`, `UNLICENSE`, the
//! manifest's `license-file`), read from cargo's registry cache; a text
//! shared by several crates is printed once. MPL-2.0 crates are linked
//! unmodified; their source's origin is named as the licence asks (§3.2).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The binaries whose statically linked crates are listed.
const SHIPPED: &[&str] = &["connector-installer", "connectord"];
/// The largest licence file read.
const TEXT_CAP: u64 = 1 << 20;

/// One crate linked into a shipped binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// The SPDX expression of its manifest (`license`), or `see FILE`.
    pub license: String,
    /// Where its source comes from: crates.io, or this repository (ours,
    /// and patches/).
    pub source: String,
    pub repository: Option<String>,
    /// (file name, text) of its licence and notice files.
    pub texts: Vec<(String, String)>,
}

/// The crates linked into the shipped binaries for `target` (a Rust
/// target triple), from `cargo metadata` run in `repo`.
pub fn linked_crates(repo: &Path, target: &str) -> Result<Vec<Crate>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--filter-platform",
            target,
        ])
        .current_dir(repo)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .context("cargo metadata: no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata: no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    // Walk normal dependencies from the shipped binaries' packages.
    let mut todo: Vec<&str> = packages
        .iter()
        .filter(|(_, p)| {
            p["targets"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    SHIPPED.contains(&t["name"].as_str().unwrap_or_default())
                        && t["kind"]
                            .as_array()
                            .is_some_and(|k| k.iter().any(|k| k == "bin"))
                })
            })
        })
        .map(|(id, _)| *id)
        .collect();
    if todo.len() != SHIPPED.len() {
        bail!("cargo metadata: the packages of {SHIPPED:?} not found");
    }
    let workspace: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes
            .get(id)
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
        {
            let normal = dep["dep_kinds"]
                .as_array()
                .is_some_and(|ks| ks.iter().any(|k| k["kind"].is_null()));
            if let (true, Some(pkg)) = (normal, dep["pkg"].as_str()) {
                todo.push(pkg);
            }
        }
    }
    let mut crates = Vec::new();
    for id in seen {
        if workspace.contains(id) {
            continue; // ours: the package's own licence
        }
        let p = packages[id];
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let version = p["version"].as_str().unwrap_or_default().to_string();
        let dir = Path::new(p["manifest_path"].as_str().unwrap_or_default())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let texts = licence_texts(&dir, p["license_file"].as_str())
            .with_context(|| format!("{name} {version}: reading its licence files"))?;
        let license = match p["license"].as_str() {
            Some(l) => l.to_string(),
            None => match p["license_file"].as_str() {
                Some(f) => format!("see {f}"),
                None => bail!("{name} {version} names no licence"),
            },
        };
        let source = match p["source"].as_str() {
            Some(s) if s.starts_with("registry+") => {
                format!("https://crates.io/crates/{name}/{version}")
            }
            Some(s) => s.to_string(),
            None => "this repository (patches/), modified".to_string(),
        };
        crates.push(Crate {
            name,
            version,
            license,
            source,
            repository: p["repository"].as_str().map(str::to_string),
            texts,
        });
    }
    crates.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(crates)
}

/// The licence and notice files at the top of a crate's source.
fn licence_texts(dir: &Path, license_file: Option<&str>) -> Result<Vec<(String, String)>> {
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_ascii_uppercase();
        let wanted = [
            "LICENSE",
            "LICENCE",
            "COPYING",
            "NOTICE",
            "COPYRIGHT",
            "UNLICENSE",
        ]
        .iter()
        .any(|w| name.starts_with(w));
        if wanted && e.file_type()?.is_file() {
            files.insert(e.path());
        }
    }
    if let Some(f) = license_file {
        files.insert(dir.join(f));
    }
    let mut texts = Vec::new();
    for f in files {
        let mut text = String::new();
        std::fs::File::open(&f)
            .and_then(|h| h.take(TEXT_CAP).read_to_string(&mut text))
            .with_context(|| format!("reading {}", f.display()))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        texts.push((name, text.trim_end().to_string()));
    }
    Ok(texts)
}

/// The SPDX licences the crates are under, one by one (an `OR` choice is
/// kept whole, in parentheses), sorted: for the RPM `License` tag.
pub fn licence_summary(crates: &[Crate]) -> Vec<String> {
    let mut set = BTreeSet::new();
    for c in crates {
        let l = c.license.replace('/', " OR ");
        for part in l.split(" AND ") {
            let part = part.trim().trim_start_matches('(').trim_end_matches(')');
            if part.starts_with("see ") {
                continue;
            }
            // `MIT OR Apache-2.0` and `Apache-2.0/MIT` are one choice.
            let mut choice: Vec<&str> = part.split(" OR ").map(str::trim).collect();
            choice.sort_unstable();
            choice.dedup();
            set.insert(match choice.as_slice() {
                [one] => one.to_string(),
                many => format!("({})", many.join(" OR ")),
            });
        }
    }
    set.into_iter().collect()
}

/// The notices file's text.
pub fn render(crates: &[Crate], target: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Third-party software in the connector package\n\
         =============================================\n\n\
         connector-installer and connectord (for {target}) are Apache-2.0; they link\n\
         statically the {} crates below, each under its own licence, with the C code\n\
         some of them build (ring: BoringSSL; zstd-sys, bzip2-sys, lzma-sys: zstd,\n\
         bzip2, xz). Generated from the lock file when the package was built.\n\n\
         Each crate's source is its crates.io page (its \"Source:\"), the exact\n\
         version linked. MPL-2.0 crates are linked unmodified; their source code is\n\
         available there, as MPL-2.0 section 3.2 requires.\n",
        crates.len()
    );
    let _ = writeln!(s, "Licences: {}\n", licence_summary(crates).join(", "));
    // Identical texts printed once, numbered.
    let mut numbered: Vec<&str> = Vec::new();
    let mut index = BTreeMap::new();
    for c in crates {
        for (_, t) in &c.texts {
            index.entry(t.as_str()).or_insert_with(|| {
                numbered.push(t);
                numbered.len()
            });
        }
    }
    let _ = writeln!(s, "Crates\n------\n");
    for c in crates {
        let _ = writeln!(s, "{} {}", c.name, c.version);
        let _ = writeln!(s, "  License: {}", c.license);
        let _ = writeln!(s, "  Source: {}", c.source);
        if let Some(r) = &c.repository {
            let _ = writeln!(s, "  Repository: {r}");
        }
        if c.texts.is_empty() {
            let _ = writeln!(
                s,
                "  Texts: none in the crate; the licence's standard text applies"
            );
        }
        for (name, t) in &c.texts {
            let _ = writeln!(s, "  {name}: text [{}] below", index[t.as_str()]);
        }
        s.push('\n');
    }
    let _ = writeln!(s, "Texts\n-----\n");
    for (i, t) in numbered.iter().enumerate() {
        let _ = writeln!(s, "[{}]\n\n{t}\n\n{}\n", i + 1, "-".repeat(72));
    }
    s
}
