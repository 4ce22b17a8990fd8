//! `/etc/connector/connector.conf`: the connector's configuration, read at
//! start. `KEY = VALUE` lines, `#` comments, blank lines. A key it does not
//! know, a value out of range or a line it cannot read is not ignored: it
//! is published in `status.json` (`config_problems`, which `doctor` shows)
//! and the default is used in its place.

use connector_host::layout::CONNECTOR_CONF;
use connector_host::status::ConfigProblem;
use connector_host::Root;

/// Every key, with what it means (the shipped file and the guide say the
/// same).
pub const KEYS: &[(&str, &str)] = &[
    (
        "interval",
        "seconds between the agent's checks of headers and probes (5 to 3600; default 30)",
    ),
    (
        "clang",
        "the compiler of the eBPF probe, an absolute path (default: clang, else the newest clang-N, on PATH)",
    ),
];

/// The bounds of `interval`.
pub const INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 5..=3600;

/// The configuration in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub interval: u64,
    pub clang: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: crate::INTERVAL_SECS,
            clang: None,
        }
    }
}

/// Parses the file's text: the configuration (defaults where a line was
/// wrong) and every problem found, with its line.
pub fn parse(text: &str) -> (Config, Vec<ConfigProblem>) {
    let mut cfg = Config::default();
    let mut problems = Vec::new();
    let mut seen: Vec<(&str, u32)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let mut problem = |what: String| {
            problems.push(ConfigProblem {
                line: Some(line),
                problem: what,
            })
        };
        let Some((key, value)) = body.split_once('=') else {
            problem(format!("`{body}` is not KEY = VALUE"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            problem(format!(
                "`{key}` is set again (first on line {first}); this line wins"
            ));
        }
        match key {
            "interval" => match value.parse::<u64>() {
                Ok(v) if INTERVAL_RANGE.contains(&v) => cfg.interval = v,
                Ok(v) => problem(format!(
                    "interval = {v} is outside {}..={} seconds; using {}",
                    INTERVAL_RANGE.start(),
                    INTERVAL_RANGE.end(),
                    cfg.interval
                )),
                Err(_) => problem(format!(
                    "interval = `{value}` is not a number of seconds; using {}",
                    cfg.interval
                )),
            },
            "clang" if value.starts_with('/') => cfg.clang = Some(value.into()),
            "clang" => problem(format!(
                "clang = `{value}` is not an absolute path; looking for clang on PATH"
            )),
            _ => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                problem(format!("unknown key `{key}` (known: {})", known.join(", ")));
                continue;
            }
        }
        seen.push((key, line));
    }
    (cfg, problems)
}

/// Reads the root's file; a missing file is the defaults, an unreadable
/// one a problem (and the defaults).
pub fn load(root: &Root) -> (Config, Vec<ConfigProblem>) {
    match root.read_to_string_optional(CONNECTOR_CONF) {
        Ok(None) => (Config::default(), Vec::new()),
        Ok(Some(text)) => parse(&text),
        Err(e) => (
            Config::default(),
            vec![ConfigProblem {
                line: None,
                problem: format!("unreadable, defaults used: {e}"),
            }],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_has_no_problem_and_every_key_is_known() {
        let shipped = "# comment\n\ninterval = 30\n";
        assert_eq!(
            parse(shipped),
            (
                Config {
                    interval: 30,
                    clang: None
                },
                vec![]
            )
        );
        let (cfg, p) = parse("clang = /usr/bin/clang-15\n");
        assert_eq!((cfg.clang, p.len()), (Some("/usr/bin/clang-15".into()), 0));
        let (cfg, p) = parse("clang = clang-15\n");
        assert_eq!(cfg.clang, None);
        assert!(p[0].problem.contains("not an absolute path"), "{p:?}");
        let (cfg, p) = parse("interval=120   # two minutes\n");
        assert_eq!((cfg.interval, p.len()), (120, 0));
    }

    #[test]
    fn unknown_keys_bad_values_and_bad_lines_are_reported_with_their_line() {
        let (cfg, p) = parse("interval = 2\nintervall = 60\njust words\ninterval = soon\n");
        assert_eq!(cfg, Config::default(), "no valid interval: the default");
        let lines: Vec<Option<u32>> = p.iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            [Some(1), Some(2), Some(3), Some(4), Some(4)],
            "{p:?}"
        );
        assert!(p[0].problem.contains("outside 5..=3600"), "{p:?}");
        assert!(p[1].problem.contains("unknown key `intervall`"), "{p:?}");
        assert!(p[2].problem.contains("not KEY = VALUE"), "{p:?}");
        assert!(
            p[3].problem.contains("set again (first on line 1)"),
            "{p:?}"
        );
        assert!(p[4].problem.contains("not a number"), "{p:?}");
    }

    #[test]
    fn a_key_set_twice_is_told_and_the_last_wins() {
        let (cfg, p) = parse("interval = 10\ninterval = 20\n");
        assert_eq!(cfg.interval, 20);
        assert_eq!(p.len(), 1);
        assert!(p[0].problem.contains("first on line 1"), "{p:?}");
    }

    #[test]
    fn a_missing_file_is_the_defaults_and_a_fifo_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        assert_eq!(load(&root), (Config::default(), vec![]));
        let p = dir.path().join(CONNECTOR_CONF.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let (cfg, problems) = load(&root);
        assert_eq!(cfg, Config::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].problem.contains("unreadable"), "{problems:?}");
    }
}
