//! connectord, the reference connector daemon. For now it only reports
//! whether the running kernel's headers are usable, with the same code
//! `doctor` uses; the daemon proper (eBPF probe, faults, status file) comes
//! with the packaging issue.

use connector_host::{headers, inventory, Root};

fn main() {
    let root = Root::live();
    let release = match inventory::running_release() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("connectord: reading the running kernel: {e}");
            std::process::exit(2);
        }
    };
    match headers::check(&root, &release) {
        Ok(h) => {
            println!(
                "{}",
                serde_json::json!({ "kernel": release, "headers_present": h.present, "path": h.path })
            );
            std::process::exit(if h.present { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("connectord: checking headers of {release}: {e}");
            std::process::exit(2);
        }
    }
}
