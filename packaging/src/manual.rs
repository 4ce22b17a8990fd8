//! The manual pages and shell completions, generated from the clap
//! definitions of both binaries when the packages are built (never
//! checked in, so they cannot drift from `--help`): `connector-installer(8)`
//! and one page per subcommand (`connector-installer-doctor(8)`, …),
//! `connectord(8)`, and bash, zsh and fish completions for
//! `connector-installer`, each where the family's distributions look.

use std::io::Write as _;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{bold, roman, Roff};

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

/// Renders `cmd`'s page (section 8) and its subcommands' pages.
fn pages(cmd: clap::Command, top: &str, source_date: u32, out: &mut Vec<Generated>) -> Result<()> {
    fn walk(
        cmd: clap::Command,
        top: &str,
        day: &str,
        version: &str,
        out: &mut Vec<Generated>,
    ) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, top, day, version, out)?;
        }
        let man = clap_mangen::Man::new(cmd)
            .section("8")
            .date(day)
            .source(format!("connector {version}"))
            .manual("System Administration");
        let name = man.get_filename();
        let mut roff = Vec::new();
        man.render(&mut roff)
            .with_context(|| format!("rendering {name}"))?;
        if name == format!("{top}.8") {
            roff.extend_from_slice(extra_sections(top).as_bytes());
        }
        out.push(Generated {
            path: format!("/usr/share/man/man8/{name}.gz"),
            contents: gzip9(&roff)?,
        });
        Ok(())
    }
    let version = cmd.get_version().unwrap_or_default().to_string();
    // The man page's VERSION is the package's: `--version`'s machine and
    // commit are the build host's here, not the packaged binary's.
    let mut cmd = cmd.disable_help_subcommand(true).long_version(None::<&str>);
    cmd.build();
    walk(
        cmd,
        top,
        &connector_host::time::date(u64::from(source_date)),
        &version,
        out,
    )
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
            "/usr/share/man/man8/connector-installer-selinux-install.8.gz",
            "/usr/share/man/man8/connectord.8.gz",
            "/usr/share/man/man8/connectord-run.8.gz",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("-help")), "{names:?}");
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
            text.contains(&format!("v{}", env!("CARGO_PKG_VERSION"))) && !text.contains("commit"),
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
