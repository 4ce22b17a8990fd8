//! `run`: one arm per command. Each opens the root the way its command
//! needs (`open_root` to describe, `open_root_to_act` to change), starts
//! the audit trail, builds the command's options from its arguments, calls
//! the command and prints its report: `--json` as one document, else the
//! command's own `render_text`.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use connector_host::Root;
use serde::Serialize;

use super::error::ErrorDocument;
use super::{
    open_root, open_root_to_act, running_for, BundleArgs, Cli, Command, DoctorArgs, DoctorFormat,
    HeadersArgs, HookArgs, InstallArgs, LaydownArgs, RepairArgs, RootArg, SelinuxAction,
    SelinuxArgs, UninstallArgs,
};
use crate::doctor::{self, metrics, DoctorOptions};
use crate::fallback::bundle_build;
use crate::install::{self, headers, hook, laydown, repair, selinux, uninstall};
use crate::output::{print_json, say};
use crate::{exit, state::audit};

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    crate::output::set_quiet(cli.quiet);
    let root = RootArg { root: cli.root };
    match cli.command {
        Command::Install(args) => install_cmd(&root, args),
        Command::Repair(args) => repair_cmd(&root, args),
        Command::Uninstall(args) => uninstall_cmd(&root, args),
        Command::Headers(args) => headers_cmd(&root, args),
        Command::Bundle(args) => bundle_cmd(&root, args),
        Command::Hook(args) => Ok(hook_cmd(&root, args)),
        Command::Laydown(args) => laydown_cmd(&root, args),
        Command::Selinux(args) => selinux_cmd(&root, args),
        Command::Doctor(args) => doctor_cmd(&root, args),
    }
}

/// The root a command changes, its audit trail begun.
fn acting(arg: &RootArg, command: &str) -> Result<Root> {
    let root = open_root_to_act(arg)?;
    audit::begin(command, &root);
    Ok(root)
}

/// `report` on stdout: one JSON document, or `render` for people.
fn show<T: Serialize>(json: bool, report: &T, render: fn(&T) -> String) -> Result<()> {
    if json {
        print_json(report)
    } else {
        print!("{}", render(report));
        Ok(())
    }
}

/// An unsupported system: said on stderr (and as the one JSON document
/// with `--json`); exit 3.
fn unsupported(e: &anyhow::Error, json: bool) -> i32 {
    let message = format!("{e:#}");
    eprintln!("connector-installer: {message}");
    if json {
        ErrorDocument::new("unsupported", message, exit::UNSUPPORTED).print();
    }
    exit::UNSUPPORTED
}

fn install_cmd(arg: &RootArg, args: InstallArgs) -> Result<i32> {
    let root = acting(arg, "install")?;
    let opts = args.options(root)?;
    match install::run(&opts, &mut |l| say(l)) {
        Ok(report) => show(args.json, &report, install::render_text).map(|()| report.exit_code()),
        Err(e) if install::PlanError::is_unsupported(&e) => Ok(unsupported(&e, args.json)),
        Err(e) => Err(e),
    }
}

fn repair_cmd(arg: &RootArg, args: RepairArgs) -> Result<i32> {
    let root = acting(arg, "repair")?;
    let wait = Duration::from_secs(args.wait.unwrap_or(if root.is_live() { 60 } else { 0 }));
    // The verdict is doctor's, on the root as doctor sees it: a live host
    // whose running kernel is not installed is acted on as an image, but
    // judged with its running kernel, as `doctor` judges it.
    let seen = open_root(arg)?;
    let verdict = (seen.is_live() != root.is_live()).then(|| -> Result<DoctorOptions> {
        Ok(DoctorOptions {
            running: running_for(&seen)?,
            root: seen,
            kernel: None,
        })
    });
    let verdict = verdict.transpose()?;
    let opts = args.options(root)?;
    let report = repair::run(&opts, verdict.as_ref(), wait, &mut |l| say(l))?;
    show(args.json, &report, repair::render_text).map(|()| report.exit_code())
}

fn uninstall_cmd(arg: &RootArg, args: UninstallArgs) -> Result<i32> {
    let root = acting(arg, "uninstall")?;
    let timeout = Duration::from_secs(args.lock_timeout);
    let report = uninstall::run(&root, args.purge, timeout, args.dry_run)?;
    show(args.json, &report, uninstall::render_text).map(|()| exit::OK)
}

fn headers_cmd(arg: &RootArg, args: HeadersArgs) -> Result<i32> {
    let root = acting(arg, "headers")?;
    let opts = args.options(root)?;
    match headers::run(&opts, &mut |l| say(l)) {
        Ok(report) => show(args.json, &report, headers::render_text).map(|()| report.exit_code()),
        Err(e) if e.downcast_ref::<headers::HeadersError>().is_some() => {
            Ok(unsupported(&e, args.json))
        }
        Err(e) => Err(e),
    }
}

fn bundle_cmd(root: &RootArg, args: BundleArgs) -> Result<i32> {
    // A bundle is built from this host's archives.conf, keys and proxies,
    // for the fleet the targets name: no root is read or changed.
    if root.root != std::path::Path::new("/") {
        anyhow::bail!(
            "bundle does not take --root: it builds from this host's configuration for the \
             kernels --doctor/--os name; run it without --root"
        );
    }
    let opts = args.options()?;
    let report = bundle_build::build(&opts, &mut |l| say(l))?;
    show(args.json, &report, bundle_build::render_text).map(|()| report.exit_code())
}

/// A hook never fails the transaction, not even on a bad `--root`.
fn hook_cmd(arg: &RootArg, args: HookArgs) -> i32 {
    // `--root` after the scriptlet's arguments would be taken as one of
    // them and the hook would act on `/`: refuse, do nothing.
    if args
        .args
        .iter()
        .any(|a| a == "--root" || a.starts_with("--root="))
    {
        eprintln!(
            "connector-installer: warning: hook {}: --root must come before the scriptlet's \
             arguments; nothing done",
            args.name
        );
        return exit::OK;
    }
    match acting(arg, &format!("hook {}", args.name)) {
        Ok(root) => hook::run(&args.name, &args.args, &root),
        Err(e) => {
            eprintln!("connector-installer: warning: hook {}: {e:#}", args.name);
            exit::OK
        }
    }
}

fn laydown_cmd(arg: &RootArg, args: LaydownArgs) -> Result<i32> {
    let root = acting(arg, "laydown")?;
    let report = laydown::run(&root, &args.payload, args.dry_run, !args.no_enable)?;
    show(args.json, &report, laydown::render_text).map(|()| exit::OK)
}

fn selinux_cmd(arg: &RootArg, args: SelinuxArgs) -> Result<i32> {
    let (opts, which) = match &args.action {
        SelinuxAction::Install(o) => (o, "install"),
        SelinuxAction::Remove(o) => (o, "remove"),
        SelinuxAction::Status(o) => {
            // Describes the root as it is (a chroot's `/` included).
            let root = open_root(arg)?;
            audit::begin("selinux status", &root);
            let report = selinux::status(&root)?;
            show(o.json, &report, selinux::render_text)?;
            return Ok(match report.healthy() {
                true => exit::OK,
                false => exit::NOT_DONE,
            });
        }
    };
    // Acting treats a chroot's `/` as an image like every other acting
    // command.
    let root = acting(arg, &format!("selinux {which}"))?;
    let timeout = Duration::from_secs(opts.lock_timeout);
    let report = match which {
        "install" => selinux::install(&root, timeout, opts.dry_run)?,
        _ => selinux::remove(&root, timeout, opts.dry_run)?,
    };
    show(opts.json, &report, selinux::render_text).map(|()| exit::OK)
}

fn doctor_cmd(arg: &RootArg, args: DoctorArgs) -> Result<i32> {
    let format = args.format();
    let now = connector_host::time::now();
    let diagnosed = open_root(arg).and_then(|root| {
        let running = running_for(&root)?;
        doctor::diagnose(&DoctorOptions {
            root,
            kernel: args.kernel,
            running,
        })
    });
    let report = match diagnosed {
        Ok(r) => r,
        Err(e) => {
            // A metrics file that stays behind would be read as the truth:
            // say that the diagnosis failed instead.
            if let (DoctorFormat::Prometheus, Some(file)) = (format, &args.output) {
                if let Err(w) = metrics::write_atomically(file, &metrics::render_failure(now)) {
                    log::warn!("{w:#}");
                }
            }
            return Err(e);
        }
    };
    let text = match format {
        DoctorFormat::Text => doctor::render_text(&report),
        DoctorFormat::Json => {
            serde_json::to_string_pretty(&report).context("encoding the report")? + "\n"
        }
        DoctorFormat::Prometheus => metrics::render(&report, now),
    };
    match &args.output {
        Some(file) => metrics::write_atomically(file, &text)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(report.exit_code())
}
