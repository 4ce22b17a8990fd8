//! Builds the header package(s) of kernel releases into a directory, as
//! real .rpm or .deb files (`build-pkgs OUT LAYOUT RELEASE...`), for
//! repositories made by hand or by scripts.

use std::path::PathBuf;
use std::process::exit;

use connector_tests::{Kernel, Layout};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: build-pkgs OUT LAYOUT RELEASE...");
        exit(2);
    }
    let out = PathBuf::from(&args[0]);
    let layout = match args[1].as_str() {
        "el8" => Layout::El8,
        "el7" => Layout::El7,
        "debian" => Layout::Debian,
        "ubuntu" => Layout::Ubuntu,
        other => {
            eprintln!("unknown layout {other}");
            exit(2);
        }
    };
    std::fs::create_dir_all(&out).expect("creating OUT");
    for release in &args[2..] {
        for p in Kernel::new(release, layout).header_packages() {
            println!("{}", p.build(&out).display());
        }
    }
}
