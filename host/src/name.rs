//! Names that become part of a path or a command line: a distribution's ID,
//! VERSION_ID and codename, a kernel release, a package name. Checked where
//! they are read (doctor documents, bundle manifests, archives.conf, the
//! command line), so that no value from outside can climb out of a
//! directory (`/`, `..`), pass for an option (a leading `-`), or carry a
//! control character into a log or a terminal.

/// The characters the distributions use in these names: ASCII letters and
/// digits and `.`, `_`, `+`, `~`, `-` (`4.18.0-513.5.1.el8_9.x86_64`,
/// `6.1.0-18+deb12-arm64`, `linux-headers-5.15.0-1048-aws`, `22.04`,
/// `bookworm`, `kernel6.12-devel`).
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~' | '-')
}

/// The longest name accepted (a kernel release is under 100).
const MAX: usize = 200;

/// Checks `value` as a `what` (`kernel release`, `os.version_id`, …); the
/// error quotes it escaped and cut short.
pub fn check(what: &str, value: &str) -> Result<(), String> {
    let why = if value.is_empty() {
        Some("empty")
    } else if value.len() > MAX {
        Some("too long")
    } else if value.contains("..") {
        Some("contains `..`")
    } else if value.starts_with(['-', '.']) {
        Some("starts with `-` or `.`")
    } else if let Some(c) = value.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "{what} {}: the character {c:?} is not one a distribution uses in a name \
             (letters, digits, `.`, `_`, `+`, `~`, `-`)",
            shown(value)
        ));
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(format!("{what} {}: {why}", shown(value))),
    }
}

/// Escaped (no control character reaches a terminal), at most 80 characters.
fn shown(value: &str) -> String {
    let esc: String = value.escape_debug().collect();
    match esc.char_indices().nth(80) {
        None => format!("\"{esc}\""),
        Some((i, _)) => format!("\"{}…\"", &esc[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn real_names_pass_and_hostile_ones_do_not() {
        for ok in [
            "4.18.0-513.5.1.el8_9.x86_64",
            "5.15.0-200.131.27.el8uek.x86_64",
            "6.1.0-18+deb12-arm64",
            "6.12.0-100.fc41.aarch64+64k",
            "linux-headers-5.15.0-1048-aws",
            "kernel6.12-devel-6.12.20-31.97.amzn2023.x86_64",
            "22.04",
            "bookworm",
            "1.2~rc1",
        ] {
            assert_eq!(check("name", ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "8/../../escaped",
            "..",
            "a..b",
            "x/y",
            "-rf",
            ".hidden",
            "a b",
            "a\nb",
            "a\u{1b}[31m",
            "ä",
            "x:y",
            "*",
        ] {
            let e = check("name", bad).unwrap_err();
            assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e}");
        }
        assert!(check("name", &"a".repeat(201)).is_err());
    }
}
