//! What the installer writes on stderr while it works, for whoever reads
//! it. A person at a terminal sees its progress lines, the package
//! manager's own output streaming through (indented, prefixed with the
//! tool's name) and a spinner line while it waits; a scriptlet, a pipe, a
//! log or `--json` gets plain lines, each with a UTC timestamp, and no
//! control characters at all. `-q` silences everything but errors and
//! warnings (those main and the hooks print themselves).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

static QUIET: AtomicBool = AtomicBool::new(false);
/// A transient status line is on the terminal (cleared before the next line).
static STATUS_SHOWN: AtomicBool = AtomicBool::new(false);
static SPIN: AtomicUsize = AtomicUsize::new(0);

/// `-q`.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q` was given.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

fn quiet() -> bool {
    is_quiet()
}

/// Whether stderr is a terminal (decided once).
pub fn is_tty() -> bool {
    static TTY: OnceLock<bool> = OnceLock::new();
    // SAFETY: isatty has no memory-safety preconditions.
    *TTY.get_or_init(|| unsafe { libc::isatty(2) } == 1)
}

/// `2026-12-02T04:31:00Z`.
fn timestamp() -> String {
    let now = connector_host::time::now();
    connector_host::time::rfc3339(now)
}

/// A line with no control characters: ANSI escape sequences dropped, a
/// carriage return keeps only what was drawn last, tabs become spaces.
pub fn plain(line: &str) -> String {
    let line = line.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: ESC [ parameters… final byte (@ to ~).
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: ESC ] text, ended by BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                // Others: ESC, intermediate bytes (space to /), a final byte.
                Some(c) if (' '..='/').contains(&c) => {
                    while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
                    chars.next();
                }
                _ => {}
            },
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn emit(text: &str) {
    let mut err = std::io::stderr().lock();
    if STATUS_SHOWN.swap(false, Ordering::Relaxed) {
        let _ = write!(err, "\r\u{1b}[K");
    }
    let _ = writeln!(err, "{text}");
}

/// One progress line of the installer's own.
pub fn say(line: &str) {
    if quiet() {
        return;
    }
    if is_tty() {
        emit(&format!("connector-installer: {line}"));
    } else {
        emit(&format!(
            "{} connector-installer: {}",
            timestamp(),
            plain(line)
        ));
    }
}

/// One line of an external tool's output (`dnf`, `apt-get`, …), as it
/// runs.
pub fn tool_line(tool: &str, line: &str) {
    if quiet() {
        return;
    }
    let text = plain(line);
    if text.trim().is_empty() {
        return;
    }
    if is_tty() {
        emit(&format!("    {tool}: {text}"));
    } else {
        emit(&format!("{} {tool}: {text}", timestamp()));
    }
}

/// The sink that streams `tool`'s output through [`tool_line`].
pub fn tool_sink(tool: &str) -> connector_host::cmd::LineSink {
    let tool = tool.to_string();
    Arc::new(move |line: &str| tool_line(&tool, line))
}

/// What is being waited for: on a terminal one line redrawn in place with
/// a spinner; elsewhere a plain line (callers say it every few seconds).
pub fn waiting(what: &str) {
    if quiet() {
        return;
    }
    if is_tty() {
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        let f = FRAMES[SPIN.fetch_add(1, Ordering::Relaxed) % FRAMES.len()];
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\u{1b}[K{f} {what}");
        let _ = err.flush();
        STATUS_SHOWN.store(true, Ordering::Relaxed);
    } else {
        say(what);
    }
}

/// Prints `value` as one JSON document on stdout (`--json`).
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_carry_no_control_characters() {
        assert_eq!(
            plain("\u{1b}[1mInstalling\u{1b}[0m: kernel-devel"),
            "Installing: kernel-devel"
        );
        assert_eq!(plain("  10%\r  50%\r 100% done"), " 100% done");
        assert_eq!(plain("a\tb\u{7}c"), "a bc");
        assert_eq!(plain("\u{1b}(Bplain"), "plain");
        assert_eq!(plain("\u{1b}]0;title\u{7}ok"), "ok");
        for s in ["\u{1b}[K", "x\r\n", "\u{1b}]0;title\u{1b}\\ok", "\u{1b}"] {
            assert!(!plain(s).chars().any(|c| c.is_control()), "{s:?}");
        }
    }
}
