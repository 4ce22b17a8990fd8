//! Issue 6's figures, measured on scratch roots with the real tools:
//!
//! 1. `install` re-run on a healthy root (EL 8, SELinux store, headers
//!    installed): wall time (target < 1 s), package transactions and
//!    policy rebuilds (target 0 each, counted by shims in front of every
//!    package and policy tool on PATH), files rewritten (target 0).
//! 2. The hook's added time in `dpkg -i` and `rpm -U` of the connector
//!    package when nothing needs doing (module loaded, headers present):
//!    the hooks' own reported time, and the whole command's.
//!
//!     scripts/bench-install [RUNS]
//!
//! Prints; asserts nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use connector_packaging::Family;
use connector_tests::{selinux_root, Fixture};

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let mut args = std::env::args().skip(1);
    let installer = PathBuf::from(
        args.next()
            .expect("usage: bench-lifecycle INSTALLER CONNECTORD [RUNS]"),
    );
    let connectord = PathBuf::from(args.next().expect("CONNECTORD"));
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let bins = common::bins(&installer, Some(&connectord));

    rerun(&installer, bins.path(), runs);
    headers_noop(&installer, runs);
    hook_dpkg(bins.path(), runs);
    hook_rpm(&installer, bins.path(), runs);
}

/// Every tool that changes packages or policy.
const SHIMMED: &[&str] = &[
    "dnf",
    "yum",
    "rpm",
    "apt-get",
    "dpkg",
    "semodule",
    "load_policy",
    "setfiles",
];

/// Shims for every tool that changes packages or policy: each logs its
/// command line, then runs the real tool.
fn shims() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("calls.log");
    for tool in SHIMMED {
        let Some(real) = which(tool) else { continue };
        let shim = d.path().join(tool);
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (d, log)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn median_ms(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[v.len() - 1])
}

fn rerun(installer: &Path, bins: &Path, runs: usize) {
    let (f, _repo) = common::el_root(selinux_root("default"), &[common::EL_K1], &[common::EL_K1]);
    let p = common::payload(Family::Rpm, bins);
    let first = Instant::now();
    let out = Command::new(installer)
        .args(["install", "-v", "--root"])
        .arg(f.path())
        .arg("--payload")
        .arg(p.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = first.elapsed().as_secs_f64();
    // Its debug lines: the facts are gathered once for plan and steps alike.
    let first_count = |line: &str| {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains(line))
            .count()
    };
    let first_diagnoses = first_count("debug: diagnosing ");
    let first_os = first_count("debug: detecting the operating system");
    let first_stores = first_count("debug: opening the SELinux store");
    let (shim_dir, log) = shims();
    let path = format!(
        "{}:{}",
        shim_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let before = f.snapshot();
    // Interleaved with doctor on the same root, its anchor (issue 25: a
    // re-run costs at most 1.5x doctor's CPU): CPU of the child and its
    // children, from getrusage.
    let mut times = Vec::new();
    let (mut cpu, mut doctor_cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let c0 = children_cpu_ms();
        let t = Instant::now();
        let out = Command::new(installer)
            .args(["install", "--json", "--root"])
            .arg(f.path())
            .arg("--payload")
            .arg(p.path())
            .output()
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        cpu.push(children_cpu_ms() - c0);
        assert!(out.status.success());
        // Once more with every package and policy tool behind a shim that
        // logs it (not timed: the shims cost a shell each).
        let out = Command::new(installer)
            .args(["install", "--json", "--root"])
            .arg(f.path())
            .arg("--payload")
            .arg(p.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let c0 = children_cpu_ms();
        let out = Command::new(installer)
            .args(["doctor", "--json", "--root"])
            .arg(f.path())
            .output()
            .unwrap();
        doctor_cpu.push(children_cpu_ms() - c0);
        assert!(out.status.success());
    }
    let (procs, code) = connector_tests::processes_spawned(
        Command::new(installer)
            .args(["install", "--root"])
            .arg(f.path())
            .arg("--payload")
            .arg(p.path()),
    );
    assert_eq!(code, Some(0), "install under strace");
    // One more run with -v: how often it diagnosed and read the audit log
    // (its debug lines say so; targets 1 and at most 1).
    let out = Command::new(installer)
        .args(["install", "-v", "--json", "--root"])
        .arg(f.path())
        .arg("--payload")
        .arg(p.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let debug = String::from_utf8_lossy(&out.stderr);
    let diagnoses = debug
        .lines()
        .filter(|l| l.contains("debug: diagnosing "))
        .count();
    let audit_reads = debug
        .lines()
        .filter(|l| l.contains("debug: reading the audit log"))
        .count();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let transactions = calls
        .lines()
        .filter(|l| {
            l.starts_with("dnf ") && l.contains(" install")
                || l.starts_with("yum ") && l.contains(" install")
                || l.starts_with("apt-get ") && l.contains(" install")
                || l.starts_with("rpm ") && (l.contains(" -i") || l.contains(" -U"))
                || l.starts_with("dpkg ") && l.contains(" -i")
        })
        .count();
    let rebuilds = calls.lines().filter(|l| l.starts_with("semodule ")).count();
    // One line per call (a query's --qf format may hold a newline: its
    // continuation lines start with no tool's name).
    let all_calls = calls
        .lines()
        .filter(|l| SHIMMED.iter().any(|t| l.starts_with(&format!("{t} "))))
        .count();
    let queries = all_calls - transactions - rebuilds;
    let after = f.snapshot();
    let rewritten = after
        .iter()
        .filter(|e| !before.contains(e))
        .filter(|(p, _)| !p.starts_with("var/lib/rpm/rpmdb.sqlite-shm"))
        .count();
    let (med, max) = median_ms(times);
    let (cpu, _) = median_ms(cpu);
    let (doctor_cpu, _) = median_ms(doctor_cpu);
    println!(
        "install on a healthy root (EL 8, SELinux store, 1 kernel with headers), release build"
    );
    println!(
        "  first install (lay-down, module, labels, headers, enable): {first:.2} s, \
         {first_diagnoses} diagnosis, {first_os} OS detection, {first_stores} SELinux store opened (targets 1)"
    );
    println!(
        "  re-run x{runs}: median {med:.1} ms, max {max:.1} ms (target < 1000 ms); \
         {transactions} package transactions, {rebuilds} policy rebuilds (targets 0); \
         {queries} read-only tool calls in all; {rewritten} files changed (target 0)"
    );
    println!(
        "  per re-run: {diagnoses} diagnosis (target 1), {audit_reads} audit-log reads (target <= 1), \
         {procs} processes spawned"
    );
    println!(
        "  CPU (user+sys, median, interleaved): re-run {cpu:.1} ms, doctor {doctor_cpu:.1} ms: \
         {:.2}x doctor (target <= 1.5)",
        cpu / doctor_cpu
    );
}

/// CPU time (user + system) of the waited-for children so far, in ms.
fn children_cpu_ms() -> f64 {
    // SAFETY: a zeroed rusage is valid; RUSAGE_CHILDREN is a constant.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(r.ru_utime) + ms(r.ru_stime)
}

/// `headers` when every kernel has its headers, next to the vendor note's
/// own check, `dnf install -y kernel-devel-K` finding nothing to do on the
/// same root (issue 25: at most 0.05x), interleaved.
fn headers_noop(installer: &Path, runs: usize) {
    let (f, _repo) = common::el_root(Fixture::new(), &[common::EL_K1], &[common::EL_K1]);
    let ours = || {
        let t = Instant::now();
        let out = Command::new(installer)
            .args(["headers", "--root"])
            .arg(f.path())
            .arg("--kernel")
            .arg(common::EL_K1)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64() * 1000.0
    };
    ours();
    // dnf's view of the root's database, as the installer gives it.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".rpmmacros"), "%_dbpath /var/lib/rpm\n").unwrap();
    let dnf = || {
        let t = Instant::now();
        let out = Command::new("dnf")
            .arg("-y")
            .arg(format!("--installroot={}", f.path().display()))
            .arg("install")
            .arg(format!("kernel-devel-{}", common::EL_K1))
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("Nothing to do"), "dnf had work: {said}");
        t.elapsed().as_secs_f64() * 1000.0
    };
    dnf();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        a.push(ours());
        b.push(dnf());
    }
    let (a, _) = median_ms(a);
    let (b, _) = median_ms(b);
    println!(
        "headers with nothing to do (EL 8 root, kernel-devel installed), x{runs}, interleaved"
    );
    println!(
        "  headers median {a:.1} ms, dnf install -y kernel-devel-K {b:.1} ms: {:.3}x (target <= 0.05)",
        a / b
    );
}

/// The hooks' own reported times, summed; panics when none ran.
fn hook_times(out: &str) -> f64 {
    let times: Vec<f64> = out
        .lines()
        .filter_map(|l| {
            l.split_once(" done in ")
                .filter(|(a, _)| a.contains("connector-installer: hook "))
                .and_then(|(_, b)| b.trim_end_matches(" ms").trim().parse::<f64>().ok())
        })
        .collect();
    assert!(!times.is_empty(), "no hook ran: {out}");
    times.iter().sum()
}

fn hook_dpkg(bins: &Path, runs: usize) {
    let (f, _repo) = common::debian_root(selinux_root("default"), &[common::DEB_K1]);
    let out = tempfile::tempdir().unwrap();
    let deb = common::package(Family::Deb, "1.0.0", out.path(), bins);
    let dpkg = |f: &Fixture| {
        let t = Instant::now();
        let o = Command::new("dpkg")
            .arg(format!("--root={}", f.path().display()))
            .args(["--force-script-chrootless", "--force-depends", "-i"])
            .arg(&deb)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stderr).into_owned();
        (t.elapsed().as_secs_f64() * 1000.0, hook_times(&text))
    };
    dpkg(&f);
    let job = Command::new(bins.join("connector-installer"))
        .args(["install", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(
        job.status.success(),
        "{}",
        String::from_utf8_lossy(&job.stderr)
    );
    let (mut total, mut hooks) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, h) = dpkg(&f);
        total.push(t);
        hooks.push(h);
    }
    let (tm, _) = median_ms(total);
    let (hm, hx) = median_ms(hooks);
    println!("dpkg -i of the installed connector .deb again (nothing to do), x{runs}");
    println!("  dpkg -i median {tm:.1} ms; the hooks' own time (prerm + postinst): median {hm:.1} ms, max {hx:.1} ms");
}

fn hook_rpm(installer: &Path, bins: &Path, runs: usize) {
    let (f, _repo) = common::el_root(Fixture::new(), &[common::EL_K1], &[common::EL_K1]);
    common::chroot_tools(f.path(), installer);
    let out = tempfile::tempdir().unwrap();
    let pkg = common::package(Family::Rpm, "1.0.0", out.path(), bins);
    let rpm = |args: &[&str]| {
        let t = Instant::now();
        let o = Command::new("rpm")
            .arg("--root")
            .arg(f.path())
            .args(["--dbpath", "/var/lib/rpm", "--nodeps"])
            .args(args)
            .arg(&pkg)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stderr).into_owned();
        (t.elapsed().as_secs_f64() * 1000.0, hook_times(&text))
    };
    rpm(&["-i"]);
    let job = Command::new(bins.join("connector-installer"))
        .args(["install", "--root"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(
        job.status.success(),
        "{}",
        String::from_utf8_lossy(&job.stderr)
    );
    let (mut total, mut hooks) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, h) = rpm(&["-U", "--replacepkgs"]);
        total.push(t);
        hooks.push(h);
    }
    let (tm, _) = median_ms(total);
    let (hm, hx) = median_ms(hooks);
    println!("rpm -U --replacepkgs of the installed connector .rpm (nothing to do; chroot root without SELinux), x{runs}");
    println!("  rpm -U median {tm:.1} ms; the hooks' own time (post + preun + postun + posttrans): median {hm:.1} ms, max {hx:.1} ms");
}
