//! The manual pages and shell completions, generated from the clap
//! definitions of both binaries when the packages are built (never
//! checked in, so they cannot drift from `--help`): `connector-installer(8)`
//! and one page per subcommand (`connector-installer-doctor(8)`, …),
//! `connectord(8)`, and bash, zsh and fish completions for
//! `connector-installer`, each where the family's distributions look.
//!
//! A page is composed here from clap_mangen's title, NAME, OPTIONS and
//! SUBCOMMANDS sections and our own SYNOPSIS (every option with its value:
//! `[--root DIR]`), DESCRIPTION (the long help only: never NAME again),
//! ACTIONS (a subcommand's own subcommands, `selinux install|remove|
//! status`, folded into its page: their own page names would not fit an
//! 80-column header), EXAMPLES, EXIT STATUS, FILES and SEE ALSO. Every page
//! renders within 80 columns (the packaging tests run `man -l`).

use std::io::Write as _;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{bold, italic, roman, Inline, Roff};

use crate::Family;

/// One generated file: where it goes in the package, and its bytes.
pub struct Generated {
    pub path: String,
    pub contents: Vec<u8>,
}

/// gzip -9n: what lintian expects of a manual page, reproducible.
fn gzip9(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    e.write_all(bytes)?;
    Ok(e.finish()?)
}

/// The sections clap does not know: exit status, files, where to read on.
fn extra_sections(top: &str) -> String {
    let mut r = Roff::new();
    if top == "connector-installer" {
        r.control("SH", ["EXIT STATUS"]);
        for (code, meaning) in connector_installer::exit::TABLE {
            r.control("TP", []);
            r.text([bold(code.to_string())]);
            r.text([roman(format!(
                "{} \u{2014} {meaning}",
                connector_installer::exit::name(*code)
            ))]);
        }
        r.text([roman(
            "With --json, every exit (failures included) prints exactly one JSON document.",
        )]);
        r.control("SH", ["FILES"]);
        for (path, what) in [
            (
                "/etc/connector/archives.conf",
                "vendor archives to fall back on for header packages",
            ),
            (
                "/var/lib/connector/installer.lock",
                "one installer at a time (names the holder)",
            ),
            (
                "/var/lib/connector/install.journal",
                "the steps of a run that was interrupted",
            ),
            (
                "/var/lib/connector/pending",
                "work a package hook deferred until after its transaction",
            ),
            (
                "/var/lib/connector/status.json",
                "the connector's own status (faults 11 and 12)",
            ),
        ] {
            r.control("TP", []);
            r.text([bold(path)]);
            r.text([roman(what)]);
        }
    }
    r.to_roff() + &see_also(top)
}

/// SEE ALSO: the other binary, the tools it drives, the shipped docs.
fn see_also(top: &str) -> String {
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"]);
    let see: &[&str] = if top == "connectord" {
        &["connector-installer(8)", "systemctl(1)", "journalctl(1)"]
    } else {
        &[
            "connectord(8)",
            "systemctl(1)",
            "journalctl(1)",
            "semodule(8)",
        ]
    };
    r.text([roman(format!(
        "{}; /usr/share/doc/connector/ (the administrator's guide and troubleshooting).",
        see.join(", ")
    ))]);
    r.to_roff()
}

/// The manual's name in every page's header (centre): short, so that the
/// header of the longest page name fits 80 columns.
const MANUAL: &str = "connector";

/// The examples of each page: (command line, what it does).
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "connector-installer" => &[
            ("connector-installer doctor", "Diagnose this host (read-only)."),
            (
                "connector-installer repair",
                "Fix every fault found, restart the connector and wait for it to agree.",
            ),
            (
                "connector-installer install --root /mnt/image --prepare-image",
                "Install into a golden image mounted at /mnt/image.",
            ),
        ],
        "connector-installer-doctor" => &[
            ("connector-installer doctor", "Diagnose this host."),
            (
                "connector-installer doctor --json | jq .faults",
                "The faults, for a script or a fleet tool.",
            ),
            (
                "connector-installer doctor --format prometheus --output /var/lib/node_exporter/connector.prom",
                "Metrics for node_exporter's textfile collector.",
            ),
        ],
        "connector-installer-headers" => &[
            (
                "connector-installer headers --dry-run",
                "Show the package-manager command that would run.",
            ),
            (
                "connector-installer headers --kernel 5.15.0-200.131.27.el8uek.x86_64",
                "Install the headers of one kernel.",
            ),
            (
                "connector-installer headers --from /srv/bundle",
                "Take packages the repositories lack from a bundle.",
            ),
        ],
        "connector-installer-selinux" => &[
            ("connector-installer selinux status", "What the kernel allows connectord_t."),
            (
                "connector-installer selinux install --dry-run",
                "Show the semodule command that would run.",
            ),
        ],
        "connector-installer-laydown" => &[(
            "connector-installer laydown --payload /media/connector --root /mnt/image",
            "Lay the connector's files down into an image.",
        )],
        "connector-installer-install" => &[
            (
                "connector-installer install --dry-run",
                "Print the plan; change nothing.",
            ),
            (
                "connector-installer install --root /mnt/image --prepare-image",
                "Install into an image and clear its per-host state.",
            ),
        ],
        "connector-installer-repair" => &[
            ("connector-installer repair", "Fix every fault on this host."),
            ("connector-installer repair --dry-run", "Say what would be fixed."),
        ],
        "connector-installer-uninstall" => &[(
            "connector-installer uninstall --dry-run",
            "Say what would be removed.",
        )],
        "connector-installer-bundle" => &[
            (
                "connector-installer bundle --out /srv/bundle --doctor host1.json --doctor host2.json",
                "Download what two hosts' kernels need.",
            ),
            (
                "connector-installer bundle --out /srv/bundle --os rhel:8.9 --kernel 4.18.0-513.5.1.el8_9.x86_64",
                "Download the headers of one kernel of one distribution.",
            ),
        ],
        "connector-installer-hook" => &[(
            "connector-installer hook kernel-postinst 6.1.0-18-amd64",
            "What /etc/kernel/postinst.d/connector runs for a new kernel.",
        )],
        "connectord" => &[
            ("systemctl status connectord", "The agent's service."),
            ("connectord status", "The agent's published state."),
        ],
        _ => &[],
    }
}

/// `[--root DIR]`, `--payload DIR`, `[-v|--verbose]...`: an option as the
/// synopsis shows it, with its value.
fn synopsis_arg(arg: &clap::Arg) -> Vec<Inline> {
    let optional = !arg.is_required_set();
    let mut v = Vec::new();
    if optional {
        v.push(roman("["));
    }
    if arg.is_positional() {
        let name = arg
            .get_value_names()
            .map(|n| n.join(" "))
            .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
        v.push(italic(name));
    } else {
        match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => v.push(bold(format!("-{s}|--{l}"))),
            (Some(s), None) => v.push(bold(format!("-{s}"))),
            (None, Some(l)) => v.push(bold(format!("--{l}"))),
            (None, None) => {}
        }
        if arg.get_action().takes_values() {
            let name = arg
                .get_value_names()
                .map(|n| n.join(" "))
                .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
            // A no-break space: an option and its value stay on one line.
            v.push(roman("\u{a0}"));
            v.push(italic(name));
        }
    }
    if optional {
        v.push(roman("]"));
    }
    let repeats = matches!(
        arg.get_action(),
        clap::ArgAction::Count | clap::ArgAction::Append
    ) || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
    if repeats {
        v.push(roman("..."));
    }
    v
}

/// The synopsis line of `cmd` as invoked by `invocation`; `globals`:
/// with the global options (a page's own synopsis, not an action's).
fn synopsis_line(cmd: &clap::Command, invocation: &str, globals: bool) -> Vec<Inline> {
    let mut line = vec![bold(invocation.to_string())];
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| {
            !a.is_hide_set()
                && (globals || !a.is_global_set())
                && a.get_id() != "help"
                && a.get_id() != "version"
        })
        .collect();
    // Options first (required ones first), positionals last, as usage does.
    let mut opts: Vec<&&clap::Arg> = args.iter().filter(|a| !a.is_positional()).collect();
    opts.sort_by_key(|a| !a.is_required_set());
    for a in opts
        .into_iter()
        .chain(args.iter().filter(|a| a.is_positional()))
    {
        line.push(roman(" "));
        line.extend(synopsis_arg(a));
    }
    if cmd.has_subcommands() {
        line.push(roman(" "));
        line.push(italic("COMMAND"));
    }
    line
}

/// One `.TP` entry per option of an action (the global options are the
/// page's GLOBAL OPTIONS): its synopsis form, then its help.
fn option_list(r: &mut Roff, cmd: &clap::Command) {
    for a in cmd.get_arguments().filter(|a| {
        !a.is_hide_set() && !a.is_global_set() && a.get_id() != "help" && a.get_id() != "version"
    }) {
        r.control("TP", []);
        let mut head = synopsis_arg(a);
        // The entry's head without the optional brackets.
        if !a.is_required_set() {
            head.remove(0);
            if matches!(head.last(), Some(last) if *last == roman("...")) {
                head.pop();
                head.pop();
                head.push(roman("..."));
            } else {
                head.pop();
            }
        }
        r.text(head);
        let mut help = a
            .get_long_help()
            .or_else(|| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && a.get_action().takes_values() {
            help.push_str(&format!(" [default: {}]", defaults.join(", ")));
        }
        r.text([roman(help)]);
    }
}

/// Renders `cmd`'s page (section 8) and its subcommands' pages; the
/// subcommands of a subcommand are folded into its page (ACTIONS).
fn pages(cmd: clap::Command, top: &str, source_date: u32, out: &mut Vec<Generated>) -> Result<()> {
    fn render(
        cmd: &clap::Command,
        page: &str,
        invocation: &str,
        top: &str,
        day: &str,
        version: &str,
    ) -> Result<Vec<u8>> {
        let man = clap_mangen::Man::new(cmd.clone())
            .title(page)
            .section("8")
            .date(day)
            .source(format!("connector {version}"))
            .manual(MANUAL);
        let mut out = Vec::new();
        man.render_title(&mut out)?;
        // No hyphenation, ragged right: option names and paths stay whole.
        out.extend_from_slice(b".nh\n.ad l\n");
        man.render_name_section(&mut out)?;
        let mut r = Roff::new();
        r.control("SH", ["SYNOPSIS"]);
        r.text(synopsis_line(cmd, invocation, true));
        // The long help only: the short one is NAME's.
        if let Some(long) = cmd.get_long_about() {
            r.control("SH", ["DESCRIPTION"]);
            for (i, para) in long.to_string().split("\n\n").enumerate() {
                if i > 0 {
                    r.control("PP", []);
                }
                r.text([roman(para.replace('\n', " "))]);
            }
        }
        out.extend_from_slice(r.to_roff().as_bytes());
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut out)?;
        }
        let nested = page != top && cmd.has_subcommands();
        if cmd.has_subcommands() && !nested {
            man.render_subcommands_section(&mut out)?;
        }
        let mut r = Roff::new();
        if nested {
            r.control("SH", ["ACTIONS"]);
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let inv = format!("{invocation} {}", sub.get_name());
                r.control("SS", [inv.as_str()]);
                r.text(synopsis_line(sub, &inv, false));
                r.control("PP", []);
                if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
                    r.text([roman(about.to_string())]);
                }
                option_list(&mut r, sub);
            }
        }
        let examples = examples(page);
        if !examples.is_empty() {
            r.control("SH", ["EXAMPLES"]);
            for (command, what) in examples {
                r.control("TP", []);
                r.text([bold(*command)]);
                r.text([roman(*what)]);
            }
        }
        out.extend_from_slice(r.to_roff().as_bytes());
        if page == top {
            out.extend_from_slice(extra_sections(top).as_bytes());
        } else {
            out.extend_from_slice(see_also(top).as_bytes());
        }
        Ok(out)
    }
    let version = cmd.get_version().unwrap_or_default().to_string();
    // The man page's VERSION is the package's: `--version`'s machine and
    // commit are the build host's here, not the packaged binary's.
    let mut cmd = cmd.disable_help_subcommand(true).long_version(None::<&str>);
    cmd.build();
    let day = connector_host::time::date(u64::from(source_date));
    let mut emit = |c: &clap::Command, page: String, invocation: String| -> Result<()> {
        let roff = render(c, &page, &invocation, top, &day, &version)
            .with_context(|| format!("rendering {page}.8"))?;
        out.push(Generated {
            path: format!("/usr/share/man/man8/{page}.8.gz"),
            contents: gzip9(&roff)?,
        });
        Ok(())
    };
    emit(&cmd, top.to_string(), top.to_string())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        emit(
            sub,
            format!("{top}-{}", sub.get_name()),
            format!("{top} {}", sub.get_name()),
        )?;
    }
    Ok(())
}

/// Every manual page of the package, gzipped, sorted by path.
pub fn manual_pages(source_date: u32) -> Result<Vec<Generated>> {
    let mut out = Vec::new();
    pages(
        connector_installer::cli::Cli::command(),
        "connector-installer",
        source_date,
        &mut out,
    )?;
    pages(
        connectord::cli::Cli::command(),
        "connectord",
        source_date,
        &mut out,
    )?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Where each shell looks for a completion of `name` on `family`'s
/// distributions (bash-completion's, zsh's vendor directory, fish's).
fn completion_path(shell: Shell, family: Family, name: &str) -> String {
    match shell {
        Shell::Bash => format!("/usr/share/bash-completion/completions/{name}"),
        Shell::Zsh => match family {
            Family::Deb => format!("/usr/share/zsh/vendor-completions/_{name}"),
            Family::Rpm => format!("/usr/share/zsh/site-functions/_{name}"),
        },
        Shell::Fish => format!("/usr/share/fish/vendor_completions.d/{name}.fish"),
        _ => unreachable!("only bash, zsh and fish are shipped"),
    }
}

/// Completions of `connector-installer` (the only binary on PATH) for
/// bash, zsh and fish.
pub fn completions(family: Family) -> Vec<Generated> {
    let name = "connector-installer";
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut cmd = connector_installer::cli::Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut buf);
            Generated {
                path: completion_path(shell, family, name),
                contents: buf,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_a_page_and_the_top_page_has_the_exit_table() {
        let pages = manual_pages(1_700_000_000).unwrap();
        let names: Vec<&str> = pages.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "/usr/share/man/man8/connector-installer.8.gz",
            "/usr/share/man/man8/connector-installer-doctor.8.gz",
            "/usr/share/man/man8/connector-installer-install.8.gz",
            "/usr/share/man/man8/connector-installer-selinux.8.gz",
            "/usr/share/man/man8/connectord.8.gz",
            "/usr/share/man/man8/connectord-run.8.gz",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("-help")), "{names:?}");
        // selinux's actions are folded into its page (ACTIONS).
        assert!(!names.iter().any(|n| n.contains("selinux-")), "{names:?}");
        let selinux = pages
            .iter()
            .find(|p| p.path.ends_with("/connector-installer-selinux.8.gz"))
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(selinux.contents.as_slice()),
            &mut text,
        )
        .unwrap();
        for want in [
            ".SH ACTIONS",
            ".SS \"connector-installer selinux install\"",
            ".SS \"connector-installer selinux status\"",
            // An option and its value joined by a no-break space.
            "\\fB\\-\\-lock\\-timeout\\fR\u{a0}\\fISECONDS\\fR",
            ".SH EXAMPLES",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        let top = pages
            .iter()
            .find(|p| p.path.ends_with("/connector-installer.8.gz"))
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(top.contents.as_slice()),
            &mut text,
        )
        .unwrap();
        assert!(
            text.contains(".TH connector-installer 8 2023-11-14 "),
            "{text}"
        );
        assert!(text.contains("EXIT STATUS"), "{text}");
        // The package's version, not `--version`'s build machine and commit.
        assert!(
            text.contains(&format!("\"connector {}\"", env!("CARGO_PKG_VERSION")))
                && !text.contains("commit"),
            "{text}"
        );
        for (code, _) in connector_installer::exit::TABLE {
            assert!(text.contains(&format!("\\fB{code}\\fR")), "{code}: {text}");
        }
        // The same bytes every build.
        let again = manual_pages(1_700_000_000).unwrap();
        assert!(pages
            .iter()
            .zip(&again)
            .all(|(a, b)| a.contents == b.contents));
    }

    #[test]
    fn completions_go_where_each_family_looks() {
        let deb: Vec<String> = completions(Family::Deb)
            .into_iter()
            .map(|g| g.path)
            .collect();
        assert!(deb.contains(&"/usr/share/zsh/vendor-completions/_connector-installer".into()));
        let rpm = completions(Family::Rpm);
        assert!(rpm
            .iter()
            .any(|g| g.path == "/usr/share/zsh/site-functions/_connector-installer"));
        let bash = rpm
            .iter()
            .find(|g| g.path.contains("bash-completion"))
            .unwrap();
        let text = String::from_utf8(bash.contents.clone()).unwrap();
        assert!(text.contains("complete -F"), "{text}");
        assert!(text.contains("doctor") && text.contains("--root"), "{text}");
    }
}
