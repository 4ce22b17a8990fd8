//! The one way this project runs an external tool.
//!
//! Every call of `rpm`, `dnf`, `dpkg-query`, `apt-get`, `semodule`, ... goes
//! through [`Cmd`]:
//! - stdin is `/dev/null` (an empty pipe in a chroot without /dev): a
//!   package scriptlet must never hang on a prompt;
//! - `LC_ALL=C`, so the messages we match on (field-notes §2) are stable;
//! - a timeout on every call (dnf inside dnf waits forever for its own lock);
//!   on expiry the whole process group is killed;
//! - the command line is logged at debug level, on one line;
//! - stderr is captured and its tail is part of the error, so the reason a tool
//!   failed travels with the error instead of being printed apart from it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Default timeout for a query (`rpm -q`, `dpkg-query`, `semodule -l`).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many bytes of stderr an error keeps (its tail).
const STDERR_TAIL_BYTES: usize = 2048;
/// How many lines of stderr an error keeps (its tail).
const STDERR_TAIL_LINES: usize = 12;

/// Errors of [`Cmd`]. A caller branches on these (a missing tool is not the
/// same as a tool that said no), so they are typed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program is not installed (not on `PATH`).
    #[error("{desc}: `{program}` was not found on PATH{hint}", hint = fmt_hint(hint))]
    NotFound {
        desc: String,
        program: String,
        /// What to install to get it, when the caller knows.
        hint: Option<String>,
    },
    /// The program exists but could not be started.
    #[error("{desc}: could not start `{cmdline}`: {error}")]
    Spawn {
        desc: String,
        cmdline: String,
        /// Shown in the message, so not also a `source()` (the chain would
        /// say it twice).
        error: io::Error,
    },
    /// The program ran longer than allowed and was killed.
    #[error("{desc}: `{cmdline}` did not finish within {}s and was killed{tail}",
        timeout.as_secs_f32(), tail = fmt_tail(stderr_tail))]
    Timeout {
        desc: String,
        cmdline: String,
        timeout: Duration,
        stderr_tail: String,
    },
    /// The program exited unsuccessfully (non-zero status or a signal).
    #[error("{desc}: `{cmdline}` {status}{tail}", status = fmt_status(code, signal), tail = fmt_tail(stderr_tail))]
    Failed {
        desc: String,
        cmdline: String,
        code: Option<i32>,
        signal: Option<i32>,
        stderr_tail: String,
        /// Captured stdout: some tools (dnf) print the reason there.
        stdout: String,
    },
    /// Reading the program's output failed.
    #[error("{desc}: reading the output of `{cmdline}`: {error}")]
    Io {
        desc: String,
        cmdline: String,
        error: io::Error,
    },
}

fn fmt_hint(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!(" ({h})"),
        None => String::new(),
    }
}

fn fmt_tail(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{tail}")
    }
}

fn fmt_status(code: &Option<i32>, signal: &Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        (None, None) => "failed".to_string(),
    }
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code, or `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The last lines of stderr, as kept in errors.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr)
    }
}

/// A command to run, built up like [`std::process::Command`] but with a
/// human description and a timeout.
#[derive(Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    env_removes: Vec<OsString>,
    current_dir: Option<PathBuf>,
    desc: String,
    timeout: Duration,
    hint: Option<String>,
    lines: Option<LineSink>,
}

/// Where a command's output lines go as they come (stdout and stderr
/// alike), besides being captured.
pub type LineSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cmd")
            .field("cmdline", &self.cmdline())
            .field("desc", &self.desc)
            .field("timeout", &self.timeout)
            .field("streams", &self.lines.is_some())
            .finish()
    }
}

impl Cmd {
    /// A command running `program`. `desc` says what it is for, in words a
    /// person reads in an error: "Querying the rpm database".
    pub fn new(program: impl AsRef<OsStr>, desc: impl Into<String>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            env_removes: Vec::new(),
            current_dir: None,
            desc: desc.into(),
            timeout: QUERY_TIMEOUT,
            hint: None,
            lines: None,
        }
    }

    /// Hands every line of output to `sink` as it is written (a package
    /// manager's progress, shown while it runs); the output is still
    /// captured whole for the caller.
    pub fn stream_lines(mut self, sink: LineSink) -> Self {
        self.lines = Some(sink);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), val.as_ref().to_owned()));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_removes.push(key.as_ref().to_owned());
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to tell the user when the program is not installed, e.g.
    /// "install it with: apt-get install rpm".
    pub fn missing_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The program name as given.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The human description.
    pub fn desc(&self) -> &str {
        &self.desc
    }

    /// The command line, shell-quoted, for logs and errors.
    pub fn cmdline(&self) -> String {
        std::iter::once(&self.program)
            .chain(self.args.iter())
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command; a non-zero exit is an error ([`CmdError::Failed`]).
    pub fn run(&self) -> Result<Output, CmdError> {
        let out = self.output()?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failed(&out))
        }
    }

    /// Runs the command and returns its output whatever the exit status: for
    /// tools whose status carries an answer (`rpm -q` counts the packages
    /// that are not installed). Only "could not run" and timeouts are errors.
    pub fn output(&self) -> Result<Output, CmdError> {
        let cmdline = self.cmdline();
        log::debug!("running: {cmdline} ({})", self.desc);
        let mut command = Command::new(&self.program);
        // A chroot without /dev (what `rpm --root` gives its scriptlets)
        // has no /dev/null: an empty pipe is the same to the child.
        let devnull = Path::new("/dev/null").exists();
        command
            .args(&self.args)
            .stdin(if devnull {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE")
            // A group of its own, so a timeout kills the children too
            // (dnf spawns helpers; a scriptlet may spawn anything).
            .process_group(0);
        for key in &self.env_removes {
            command.env_remove(key);
        }
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let start = Instant::now();
        let mut child = match command.spawn() {
            Ok(mut c) => {
                // Closing our end of the pipe: the child reads EOF at once.
                drop(c.stdin.take());
                c
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CmdError::NotFound {
                    desc: self.desc.clone(),
                    program: self.program.to_string_lossy().into_owned(),
                    hint: self.hint.clone(),
                })
            }
            Err(source) => {
                return Err(CmdError::Spawn {
                    desc: self.desc.clone(),
                    cmdline,
                    error: source,
                })
            }
        };
        let (tx, rx) = mpsc::channel::<(bool, io::Result<Vec<u8>>)>();
        let spawn_reader = |mut pipe: Box<dyn Read + Send>, is_stdout: bool| {
            let tx = tx.clone();
            let sink = self.lines.clone();
            thread::spawn(move || {
                let mut buf = Vec::new();
                let res = match sink {
                    None => pipe.read_to_end(&mut buf).map(|_| buf),
                    Some(sink) => read_lines(pipe.as_mut(), &mut buf, sink.as_ref()).map(|_| buf),
                };
                let _ = tx.send((is_stdout, res));
            });
        };
        if let Some(out) = child.stdout.take() {
            spawn_reader(Box::new(out), true);
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(Box::new(err), false);
        }
        drop(tx);

        // Wait for the exit without polling: a thread blocks in waitid(2)
        // with WNOWAIT (the child is seen to exit but not reaped, so its
        // pid, and its process group, stay ours), this thread waits for
        // that word with the timeout, then kills the group if it must and
        // reaps. Works on every kernel the installer runs on (no pidfd).
        let pid = child.id();
        let (exited_tx, exited_rx) = mpsc::channel::<io::Result<()>>();
        thread::spawn(move || {
            let _ = exited_tx.send(wait_exited(pid));
        });
        let timed_out = match exited_rx.recv_timeout(self.timeout) {
            Ok(Ok(())) => false,
            Ok(Err(source)) => {
                kill_group(pid);
                let _ = child.wait();
                return Err(CmdError::Io {
                    desc: self.desc.clone(),
                    cmdline,
                    error: source,
                });
            }
            Err(_) => {
                kill_group(pid);
                // The waiter sees the kill before the child is reaped.
                let _ = exited_rx.recv();
                true
            }
        };
        let status = match child.wait() {
            Ok(status) if !timed_out => Some(status),
            Ok(_) => None,
            Err(source) => {
                return Err(CmdError::Io {
                    desc: self.desc.clone(),
                    cmdline,
                    error: source,
                })
            }
        };

        // Collect the pipes. A grandchild that left our process group may
        // still hold them open: never wait for it for long.
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let drain_deadline = Instant::now() + Duration::from_secs(2);
        for _ in 0..2 {
            let left = drain_deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, Ok(b))) => stdout = b,
                Ok((false, Ok(b))) => stderr = b,
                Ok((_, Err(source))) => {
                    return Err(CmdError::Io {
                        desc: self.desc.clone(),
                        cmdline,
                        error: source,
                    })
                }
                Err(_) => break,
            }
        }
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        log::debug!(
            "finished in {:.1} ms: {cmdline} -> {:?}",
            start.elapsed().as_secs_f64() * 1000.0,
            status.map(|s| s.into_raw())
        );
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => Err(CmdError::Timeout {
                desc: self.desc.clone(),
                cmdline,
                timeout: self.timeout,
                stderr_tail: tail(&stderr),
            }),
        }
    }

    /// The error for an unsuccessful [`Output`] of this command.
    pub fn failed(&self, out: &Output) -> CmdError {
        CmdError::Failed {
            desc: self.desc.clone(),
            cmdline: self.cmdline(),
            code: out.status.code(),
            signal: out.status.signal(),
            stderr_tail: out.stderr_tail(),
            stdout: out.stdout.clone(),
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cmdline())
    }
}

/// Reads `pipe` to the end into `buf`, handing each complete line (and a
/// last one without its newline) to `sink` as it arrives.
fn read_lines(
    pipe: &mut dyn Read,
    buf: &mut Vec<u8>,
    sink: &(dyn Fn(&str) + Send + Sync),
) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    let mut start = 0;
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            sink(&String::from_utf8_lossy(&buf[start..start + nl]));
            start += nl + 1;
        }
    }
    if start < buf.len() {
        sink(&String::from_utf8_lossy(&buf[start..]));
    }
    Ok(())
}

/// Blocks until child `pid` has exited, leaving it to be reaped
/// (`waitid(P_PID, pid, WEXITED | WNOWAIT)`).
fn wait_exited(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: waitid(2) writes only into the siginfo_t we own; with
        // WNOWAIT it changes nothing about the child.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn kill_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals the process group we
    // created for this child; it has no memory-safety preconditions.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

/// The last lines of a tool's stderr, bounded in lines and bytes.
pub fn tail(text: &str) -> String {
    let trimmed = text.trim_end();
    let lines: Vec<&str> = trimmed.lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let mut out = lines[start..].join("\n");
    if out.len() > STDERR_TAIL_BYTES {
        let mut cut = out.len() - STDERR_TAIL_BYTES;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("…{}", &out[cut..]);
    }
    out
}

/// Quotes one word for a POSIX shell when it needs it, so a logged or
/// printed command line can be pasted back into a shell.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Joins words into one shell command line, quoting where needed.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error and its sources, `: `-joined (anyhow's `{:#}` for a borrowed
/// `std::error::Error`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_captures_stdout_and_stderr() {
        let out = Cmd::new("sh", "Testing output capture")
            .args(["-c", "echo out; echo err >&2"])
            .run()
            .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.code(), Some(0));
    }

    #[test]
    fn failure_carries_status_description_and_stderr_tail() {
        let err = Cmd::new("sh", "Failing on purpose")
            .args([
                "-c",
                "for i in $(seq 1 30); do echo line$i >&2; done; exit 3",
            ])
            .run()
            .unwrap_err();
        match &err {
            CmdError::Failed {
                code, stderr_tail, ..
            } => {
                assert_eq!(*code, Some(3));
                assert!(stderr_tail.ends_with("line30"), "{stderr_tail}");
                assert!(!stderr_tail.contains("line18\n"), "tail keeps 12 lines");
                assert!(stderr_tail.contains("line19"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.starts_with("Failing on purpose: `sh -c"), "{msg}");
        assert!(msg.contains("exited with status 3"), "{msg}");
    }

    #[test]
    fn output_returns_nonzero_status_without_error() {
        let out = Cmd::new("sh", "status")
            .args(["-c", "exit 2"])
            .output()
            .unwrap();
        assert_eq!(out.code(), Some(2));
    }

    #[test]
    fn signal_is_reported() {
        let err = Cmd::new("sh", "Killing itself")
            .args(["-c", "kill -TERM $$"])
            .run()
            .unwrap_err();
        assert!(
            matches!(
                err,
                CmdError::Failed {
                    signal: Some(15),
                    code: None,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("killed by signal 15"));
    }

    #[test]
    fn missing_program_is_typed_and_hinted() {
        let err = Cmd::new("connector-no-such-tool", "Looking for a tool")
            .missing_hint("install it with: apt-get install nothing")
            .run()
            .unwrap_err();
        assert!(matches!(err, CmdError::NotFound { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("`connector-no-such-tool` was not found"),
            "{msg}"
        );
        assert!(msg.contains("apt-get install nothing"), "{msg}");
    }

    #[test]
    fn hanging_command_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-alive");
        let start = Instant::now();
        // The shell starts a grandchild that would touch the marker after
        // 2 s; killing the group must take it down too.
        let script = format!(
            "(sleep 2; touch {}) & echo started >&2; sleep 30",
            marker.display()
        );
        let err = Cmd::new("sh", "Hanging on purpose")
            .args(["-c", &script])
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        let elapsed = start.elapsed();
        match &err {
            CmdError::Timeout { stderr_tail, .. } => assert_eq!(stderr_tail, "started"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild survived the timeout");
    }

    #[test]
    fn stdin_is_null_and_locale_is_c() {
        let out = Cmd::new("sh", "Reading stdin")
            .args(["-c", "cat; echo \"lc=$LC_ALL\""])
            .timeout(Duration::from_secs(5))
            .run()
            .unwrap();
        assert_eq!(out.stdout, "lc=C\n");
    }

    #[test]
    fn env_and_cwd_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let out = Cmd::new("sh", "env")
            .args(["-c", "echo \"$FOO $(pwd)\""])
            .env("FOO", "bar")
            .current_dir(dir.path())
            .run()
            .unwrap();
        let want = format!("bar {}\n", dir.path().canonicalize().unwrap().display());
        assert_eq!(out.stdout, want);
    }

    #[test]
    fn quoting_round_trips_through_a_shell() {
        for word in ["plain", "with space", "it's", "", "a\"b", "$HOME", "*"] {
            let out = Cmd::new("sh", "quote")
                .args(["-c", &format!("printf %s {}", shell_quote(word))])
                .run()
                .unwrap();
            assert_eq!(out.stdout, word);
        }
        assert_eq!(shell_quote("--root=/x"), "--root=/x");
    }

    #[test]
    fn tail_is_bounded_in_bytes() {
        let long = "x".repeat(10_000);
        let t = tail(&long);
        assert!(t.len() <= STDERR_TAIL_BYTES + '…'.len_utf8());
        assert!(t.starts_with('…'));
    }

    #[test]
    fn chain_joins_an_error_and_its_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), "outer: inner");
    }

    #[test]
    fn streamed_lines_arrive_as_written_and_are_still_captured() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = seen.clone();
        let out = Cmd::new("sh", "streaming")
            .args(["-c", "echo one; echo two >&2; printf 'three'"])
            .stream_lines(std::sync::Arc::new(move |l: &str| {
                sink.lock().unwrap().push(l.to_string())
            }))
            .run()
            .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, ["one", "three", "two"]);
        assert_eq!(out.stdout, "one\nthree");
        assert_eq!(out.stderr, "two\n");
    }
}
