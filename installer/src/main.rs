//! The `connector-installer` binary: parses the command line, sets up
//! logging and dispatches to `cli`; every exit goes through `exit`'s table
//! (a bad command line is 64), and with `--json` through one document.

use clap::Parser;
use connector_installer::audit;
use connector_installer::cli::{self, ErrorDocument};
use connector_installer::{exit, logging};

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and --version are not errors; a bad command line is
            // EX_USAGE (64), never confused with "could not run" (2).
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            if code == exit::USAGE && std::env::args().any(|a| a == "--json") {
                ErrorDocument::new("usage", e.to_string().trim().to_string(), code).print();
            }
            let _ = e.print();
            std::process::exit(code);
        }
    };
    logging::init(cli.verbose);
    let json = cli.json();
    let code = match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("connector-installer: error: {message}");
            if cli::needs_root(&e) {
                eprintln!(
                    "connector-installer: this command needs root: run it as root (sudo \
                     connector-installer ...)"
                );
            }
            if json {
                ErrorDocument::new(cli::error_kind(&e), message, exit::ERROR).print();
            }
            exit::ERROR
        }
    };
    // What the run changed is on record, failures included.
    audit::finish(code);
    std::process::exit(code);
}
