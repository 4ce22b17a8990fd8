use clap::Parser;
use connector_installer::{cli, doctor, logging};

fn main() {
    let cli = cli::Cli::parse();
    logging::init(cli.verbose);
    match cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("connector-installer: error: {e:#}");
            std::process::exit(doctor::exit::ERROR);
        }
    }
}
