//! A fake package family for the orchestration tests: its "package
//! manager" is a shell script that copies a staged header tree into the
//! root, and logs what ran (the real-tool tiers drive dnf and apt).

use std::path::PathBuf;
use std::sync::Arc;

use connector_host::cmd::Output;
use connector_host::os::OsInfo;
use connector_host::pkg::{
    BackendError, DbQuery, InstallError, InstallPlan, KernelFiles, Owners, PackageBackend,
};
use connector_host::{Cmd, Root};
use connector_tests::{Fixture, Kernel, Layout};

use crate::facts::archives_conf::ArchiveRoot;
use crate::facts::BackendFor;
use crate::fallback::access::{ArchiveBackend, ArchiveCause, ArchiveFailure};

pub const K: &str = "5.14.0-362.8.1.el9_3.x86_64";

/// What the fake repository holds, before and after a refresh.
#[derive(Clone)]
pub struct Fake {
    root: PathBuf,
    stage: PathBuf,
    /// Available at once.
    now: Vec<String>,
    /// Available after `refresh_cmd` ran.
    after_refresh: Vec<String>,
    tracking: Vec<String>,
    /// Every command that ran, one line each, in order.
    log: PathBuf,
}

impl Fake {
    fn marker(&self) -> PathBuf {
        self.stage.join(".refreshed")
    }
}

impl PackageBackend for Fake {
    fn family(&self) -> connector_host::os::Family {
        connector_host::os::Family::Rpm
    }
    fn query_installed(&self, _: &[String]) -> Result<DbQuery, BackendError> {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stage.join("queries.log"))
            .expect("the fake's query log");
        writeln!(f, "query").expect("the fake's query log");
        Ok(DbQuery::NoDatabase)
    }
    fn install_command(&self, packages: &[String], _: bool) -> String {
        format!("fake install {}", packages.join(" "))
    }
    fn remove_command(&self, package: &str, _: bool) -> String {
        format!("fake remove {package}")
    }
    fn install_cmd(&self, plan: &InstallPlan) -> Cmd {
        // Each package: installed when available (now, or after a
        // refresh), else dnf's own words for a missing one.
        let mut script = String::from("set -e\nmissing=''\n");
        for p in &plan.packages {
            let later = self.after_refresh.contains(p);
            let now = self.now.contains(p) || self.tracking.contains(p);
            script.push_str(&format!(
                "if [ {now} = true ] || {{ [ {later} = true ] && [ -e '{m}' ]; }}; then :; \
                 else missing=\"$missing {p}\"; fi\n",
                m = self.marker().display()
            ));
        }
        script.push_str(&format!(
            "if [ -n \"$missing\" ]; then for p in $missing; do \
             echo \"No match for argument: $p\" >&2; done; exit 1; fi\n\
             cp -a '{}/.' '{}/'\n",
            self.stage.join("tree").display(),
            self.root.display()
        ));
        // What ran is logged by the command itself: asking for a
        // command (the plan shows it) is not running it.
        let what = if plan.local_files.is_empty() {
            format!("install {}", plan.packages.join(" "))
        } else {
            let names: Vec<String> = plan
                .local_files
                .iter()
                .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            format!("install-local {}", names.join(" "))
        };
        let log = format!("echo '{what}' >> '{}'\n", self.log.display());
        Cmd::new("sh", "fake install").args(["-c", &format!("{log}{script}")])
    }
    fn install_failure(&self, cmd: &Cmd, out: &Output, _: &InstallPlan) -> InstallError {
        let missing: Vec<String> = out
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("No match for argument: "))
            .map(String::from)
            .collect();
        if missing.is_empty() {
            InstallError::Failed(cmd.failed(out))
        } else {
            InstallError::NotFound {
                missing,
                source: cmd.failed(out),
            }
        }
    }
    fn refresh_cmd(&self) -> Option<Cmd> {
        Some(Cmd::new("sh", "fake refresh").args([
            "-c",
            &format!(
                "echo refresh >> '{}' && touch '{}'",
                self.log.display(),
                self.marker().display()
            ),
        ]))
    }
    fn tool_paths(&self) -> &'static [&'static str] {
        &[]
    }
    fn lock_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    fn tracking_packages(&self, _: &str) -> Result<Vec<String>, BackendError> {
        Ok(self.tracking.clone())
    }
    fn repos_to_enable(&self, _: &[String]) -> Vec<String> {
        Vec::new()
    }
    fn kernel_owners(&self, _: &[KernelFiles]) -> Result<Option<Owners>, BackendError> {
        Ok(None)
    }
}

/// A RHEL 9.3 root with kernel K and no headers, and a stage holding
/// K's header tree for the fake to "install".
pub fn setup(now: &[&str], after_refresh: &[&str], tracking: &[&str]) -> (Fixture, Fixture, Fake) {
    let root = Fixture::new();
    root.os_release("rhel-9.3");
    let k = Kernel::new(K, Layout::El8);
    root.kernel(&k);
    let stage = Fixture::new();
    std::fs::create_dir_all(stage.host("/tree")).unwrap();
    let tree = Fixture::at(stage.path());
    tree.headers(&k);
    std::fs::rename(tree.path(), stage.host("/tree")).unwrap();
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    let fake = Fake {
        root: root.path().to_path_buf(),
        stage: stage.path().to_path_buf(),
        now: owned(now),
        after_refresh: owned(after_refresh),
        tracking: owned(tracking),
        log: stage.path().join("ran.log"),
    };
    std::mem::forget(tree);
    (root, stage, fake)
}

pub fn devel() -> String {
    format!("kernel-devel-{K}")
}

impl Fake {
    /// The commands that ran, in order.
    pub fn ran(&self) -> Vec<String> {
        lines(&self.log)
    }

    /// How often the package database was asked (each gathering of facts
    /// asks once).
    pub fn queries(&self) -> usize {
        lines(&self.stage.join("queries.log")).len()
    }

    /// A chooser that gives this fake for any OS.
    pub fn backend_for(&self) -> Arc<BackendFor> {
        let fake = self.clone();
        Arc::new(
            move |_: &OsInfo, _: &Root| -> Option<Box<dyn PackageBackend>> {
                Some(Box::new(fake.clone()))
            },
        )
    }
}

fn lines(p: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// A fake vendor archive: each root's URL says what it does — `…/missing/`
/// has no copy, `…/tampered/` has one that fails verification, anything
/// else hands over a "verified" file. Records the URLs it was asked, in
/// order.
#[derive(Default)]
pub struct FakeArchive {
    pub asked: std::sync::Mutex<Vec<String>>,
}

impl ArchiveBackend for FakeArchive {
    fn fetch_verified(
        &self,
        _: &connector_fetch::Fetcher,
        root: &ArchiveRoot,
        package: &str,
        dir: &std::path::Path,
        _: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Vec<PathBuf>, ArchiveFailure> {
        self.asked.lock().unwrap().push(root.url.clone());
        if root.url.ends_with("/missing/") {
            Err(ArchiveFailure::NotThere(ArchiveCause::NoFile(
                format!("{}{package}.rpm", root.url).into(),
            )))
        } else if root.url.ends_with("/tampered/") {
            Err(ArchiveFailure::Rejected(ArchiveCause::NotNevra(
                package.to_string(),
            )))
        } else {
            let f = dir.join(format!("{package}.rpm"));
            std::fs::write(&f, b"verified").unwrap();
            Ok(vec![f])
        }
    }

    fn local_package(
        &self,
        dir: &std::path::Path,
        package: &str,
        _: &[String],
    ) -> Result<PathBuf, ArchiveCause> {
        let f = dir.join(format!("{package}.rpm"));
        if f.is_file() {
            Ok(f)
        } else {
            Err(ArchiveCause::NoFile(f))
        }
    }

    fn bundle_files(
        &self,
        files: &[PathBuf],
        _: &str,
        _: &[String],
        _: bool,
    ) -> Result<Vec<PathBuf>, ArchiveCause> {
        Ok(files.to_vec())
    }
}
