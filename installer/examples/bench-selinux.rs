//! `selinux install` re-run on a root whose store holds the module and
//! whose files are labeled (issue 25): next to its anchor `semodule -l` on
//! the same store, run interleaved in one loop, as a ratio of medians; the
//! processes one re-run spawns (strace, successful execve) and the files
//! every re-run changes (inode, change and modification times of the whole
//! root). Goals: no process, nothing written, < 50 ms. Fails loudly when a
//! re-run writes anything.
//!
//!     scripts/bench-selinux [RUNS]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let installer = PathBuf::from(args.next().expect("usage: bench-selinux INSTALLER [RUNS]"));
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);

    let f = connector_tests::selinux_root("default");
    f.os_release("debian-12");
    f.file("/opt/connector/bin/connectord", "#!/bin/sh\n");
    f.file("/var/lib/connector/status.json", "{}");
    let root = f.path().to_str().unwrap().to_string();
    let ours: Vec<String> = ["selinux", "install", "--root", &root]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let anchor: Vec<String> = ["-p", &root, "-s", "default", "-l"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let t = Instant::now();
    run(&installer, &ours);
    let first = t.elapsed().as_secs_f64();

    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let before = connector_tests::stamps(f.path());
        mine.push(timed(&installer, &ours));
        let written = connector_tests::changed(&before, &connector_tests::stamps(f.path()));
        assert!(
            written.is_empty(),
            "re-run {i} of `selinux install` wrote {written:?}: a healthy re-run must write nothing"
        );
        theirs.push(timed(Path::new("semodule"), &anchor));
    }
    let (spawned, code) = connector_tests::processes_spawned(Command::new(&installer).args(&ours));
    assert_eq!(code, Some(0), "selinux install under strace");
    let (m, a) = (median(mine), median(theirs));
    println!("selinux install, Debian's policy store (scratch copy), release build");
    println!("  first run (module installed, files labeled): {first:.2} s");
    println!(
        "  re-run x{runs}: median {m:.1} ms (goal < 50 ms); {spawned} processes spawned (goal 0); \
         0 files changed (checked on every run)"
    );
    println!(
        "  anchor `semodule -l` on the same store: median {a:.1} ms; ratio {:.2}",
        m / a
    );
}

fn run(program: &Path, args: &[String]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Wall time of one run, in ms.
fn timed(program: &Path, args: &[String]) -> f64 {
    let t = Instant::now();
    let st = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(st.success(), "{} {args:?}", program.display());
    ms
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
