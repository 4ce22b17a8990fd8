//! Builds a fixture system root on disk, for benchmarks and for poking at
//! `doctor` by hand:
//!
//!     make-root OUT OS LAYOUT KERNEL[+h]... [--db]
//!
//! OS names a file in fixtures/os-release; LAYOUT is el8, el7, debian or
//! ubuntu; a kernel release ending in `+h` gets its headers too. With `--db`
//! the kernel and header packages are built as real .rpm/.deb files and
//! installed with the real rpm/dpkg, so the root has a package database.

use std::path::PathBuf;
use std::process::exit;

use connector_tests::{dpkg_initdb, rpm_initdb, Fixture, Kernel, Layout};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let db = if let Some(i) = args.iter().position(|a| a == "--db") {
        args.remove(i);
        true
    } else {
        false
    };
    if args.len() < 4 {
        eprintln!("usage: make-root OUT OS LAYOUT KERNEL[+h]... [--db]");
        exit(2);
    }
    let out = PathBuf::from(&args[0]);
    let layout = match args[2].as_str() {
        "el8" => Layout::El8,
        "el7" => Layout::El7,
        "debian" => Layout::Debian,
        "ubuntu" => Layout::Ubuntu,
        other => {
            eprintln!("unknown layout {other}: el8, el7, debian or ubuntu");
            exit(2);
        }
    };
    let f = Fixture::new();
    f.os_release(&args[1]);
    let rpm_family = matches!(layout, Layout::El8 | Layout::El7);
    if db {
        if rpm_family {
            rpm_initdb(f.path());
        } else {
            dpkg_initdb(f.path());
        }
    }
    for spec in &args[3..] {
        let (release, with_headers) = match spec.strip_suffix("+h") {
            Some(r) => (r, true),
            None => (spec.as_str(), false),
        };
        let k = Kernel::new(release, layout);
        if db {
            k.kernel_package().install(f.path());
            if with_headers {
                for p in k.header_packages() {
                    p.install(f.path());
                }
            }
        } else {
            f.kernel(&k);
            if with_headers {
                f.headers(&k);
            }
        }
    }
    if let Err(e) = std::fs::rename(f.path(), &out) {
        eprintln!("moving the root to {}: {e}", out.display());
        exit(1);
    }
    println!("{}", out.display());
}
