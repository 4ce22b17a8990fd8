//! connectord: `run` the agent loop, or print its `status`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use connector_host::{inventory, Root};
use connectord::cli::{Cli, Command};
use connectord::config;
use connectord::{agent_id, now, publish, read_status, Agent, AgentFault, STATUS_PATH};

/// A line for the journal: sd-daemon priority prefix, then the text.
fn log(priority: u8, msg: &str) {
    // One write per line: the journal's stream reader sees whole lines.
    let line = format!("<{priority}>{msg}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
}

fn main() {
    let cli = Cli::parse();
    std::process::exit(match cli.command {
        Command::Status { root } => {
            let root = match Root::new(&root) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("connectord: {e}");
                    std::process::exit(2);
                }
            };
            match read_status(&root.host_path(STATUS_PATH)) {
                Ok(s) => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                    i32::from(!s.faults.is_empty())
                }
                Err(e) => {
                    eprintln!(
                        "connectord: no status at {STATUS_PATH}: {e} (is connectord running?)"
                    );
                    2
                }
            }
        }
        Command::Run {
            root,
            once,
            interval,
            kernel,
        } => run(root, once, interval, kernel),
    });
}

fn run(root: PathBuf, once: bool, interval: Option<u64>, kernel: Option<String>) -> i32 {
    let root = match Root::new(&root) {
        Ok(r) => r,
        Err(e) => {
            log(3, &format!("connectord: {e}"));
            return 2;
        }
    };
    // Read at start (systemctl restart connectord after a change); what
    // cannot be used is logged and published, never silently ignored.
    let (config, config_problems) = config::load(&root);
    for p in &config_problems {
        let at = p.line.map(|l| format!(":{l}")).unwrap_or_default();
        log(
            4,
            &format!(
                "{}{at}: {}",
                connector_host::layout::CONNECTOR_CONF,
                p.problem
            ),
        );
    }
    let interval = interval.unwrap_or(config.interval);
    let release = match kernel.map(Ok).unwrap_or_else(inventory::running_release) {
        Ok(r) => r,
        Err(e) => {
            log(3, &format!("reading the running kernel's release: {e}"));
            return 2;
        }
    };
    let path = root.host_path(STATUS_PATH);
    let id = match agent_id(&root) {
        Ok(id) => id,
        Err(e) => {
            log(3, &format!("reading or making the agent id: {e}"));
            String::new()
        }
    };
    let mut agent = Agent::new(root, release.clone(), config.clang.clone());
    log(
        6,
        &format!(
            "connectord {} starting on kernel {release}",
            env!("CARGO_PKG_VERSION")
        ),
    );
    let mut compiled: Option<String> = None;
    let mut last_error: Option<String> = None;
    let mut told: Option<String> = None;
    loop {
        let before: Vec<AgentFault> = agent.faults.clone();
        let mut status = agent.round(now());
        status.agent_id = id.clone();
        status.config_problems = config_problems.clone();
        for f in &status.faults {
            if !before.iter().any(|b| b.id == f.id) {
                log(3, &format!("fault {}: {} — {}", f.id, f.message, f.detail));
            }
        }
        for b in &before {
            if !status.faults.iter().any(|f| f.id == b.id) {
                log(5, &format!("fault {} cleared", b.id));
            }
        }
        if let Some(c) = &status.compile {
            if c.object.is_some() && compiled != c.object {
                log(
                    6,
                    &format!(
                        "probe {} against {} ({} ms){}",
                        if c.cached {
                            "from the cache, compiled earlier"
                        } else {
                            "compiled"
                        },
                        c.tree.as_deref().unwrap_or("?"),
                        c.millis,
                        if status.probe_loaded {
                            "; attached"
                        } else {
                            ""
                        }
                    ),
                );
                compiled = c.object.clone();
            }
        }
        if status.probe_error != last_error {
            if let Some(e) = &status.probe_error {
                log(4, &format!("probe: {e}"));
            }
            last_error = status.probe_error.clone();
        }
        if let Err(e) = publish(&path, &status) {
            log(3, &format!("writing {}: {e}", path.display()));
        }
        // systemd (Type=notify): ready once the first round has attached
        // the probe or published why not; the status line follows it.
        let line = match status.faults.first() {
            Some(f) => format!("fault {}: {}", f.id, f.message),
            None if status.probe_loaded => "probe attached".to_string(),
            None => "probe not attached".to_string(),
        };
        if told.as_ref() != Some(&line) {
            let mut state = vec![sd_notify::NotifyState::Status(&line)];
            if told.is_none() {
                state.push(sd_notify::NotifyState::Ready);
            }
            if let Err(e) = sd_notify::notify(false, &state) {
                log(4, &format!("telling systemd the agent's state: {e}"));
            }
            told = Some(line);
        }
        let faults = &agent.faults;
        if once {
            return i32::from(!faults.is_empty());
        }
        std::thread::sleep(Duration::from_secs(interval.max(1)));
    }
}
