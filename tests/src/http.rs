//! A small HTTP/1.1 file server on loopback, for archive tests: serves a
//! directory (with `Range` support, so resumed downloads can be tested) and
//! misbehaves on request — hangs, cuts a transfer short, redirects, corrupts
//! bytes — the way real mirrors and proxies do. Only 127.0.0.1 is used.
//!
//! It is also the archive's proxy for tests that need one: a request in
//! proxy form (`GET http://archive.invalid/x HTTP/1.1`) is recorded with
//! its whole URL and its `Proxy-Authorization`, and served from the same
//! directory, so an archive on a name that does not resolve is reached
//! only through it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How the server answers one path.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Accept, read the request, never answer.
    Hang,
    /// Announce the full length, send this many bytes, close. Only for the
    /// first `times` requests; later ones are served normally.
    Truncate { after: usize, times: usize },
    /// Answer 302 to this location.
    Redirect(String),
    /// Flip one byte in the middle of the body.
    Corrupt,
    /// Answer with this status and no body.
    Status(u16),
    /// Announce the full length, then send `chunk` bytes every `every`
    /// (a mirror that trickles: never silent long enough to time out).
    Trickle { chunk: usize, every: Duration },
}

#[derive(Default)]
struct State {
    faults: HashMap<String, Fault>,
    /// Every request: (path, Range header).
    log: Vec<(String, Option<String>)>,
    /// Requests in proxy form: (the URL asked for, Proxy-Authorization).
    proxied: Vec<(String, Option<String>)>,
}

/// The running server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// Serves `dir` on 127.0.0.1 at a free port.
    pub fn start(dir: &Path) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, root) = (state.clone(), stop.clone(), dir.to_path_buf());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, sp, root) = (st.clone(), sp.clone(), root.clone());
                thread::spawn(move || {
                    let _ = serve(conn, &root, &st, &sp);
                });
            }
        });
        TestServer { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT/` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Makes `path` (URL path, no leading slash) misbehave.
    pub fn fault(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(path.trim_start_matches('/').to_string(), fault);
    }

    /// The requests served so far: (path, Range header).
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().log.clone()
    }

    /// The requests that came as to a proxy: (URL, Proxy-Authorization).
    pub fn proxied(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().proxied.clone()
    }

    /// `http://127.0.0.1:PORT/`, for use as a proxy.
    pub fn proxy_url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(
    mut conn: TcpStream,
    root: &Path,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range = None;
    let mut proxy_auth = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            } else if k.eq_ignore_ascii_case("proxy-authorization") {
                proxy_auth = Some(v.trim().to_string());
            }
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    // Proxy form: scheme://host[:port]/path; the path is what is served.
    let absolute = target.contains("://");
    let path = if absolute {
        let rest = target.split_once("://").map(|(_, r)| r).unwrap_or("");
        rest.split_once('/')
            .map(|(_, p)| p)
            .unwrap_or("")
            .to_string()
    } else {
        target.trim_start_matches('/').to_string()
    };
    let fault = {
        let mut s = state.lock().unwrap();
        if absolute {
            s.proxied.push((target.clone(), proxy_auth.clone()));
        }
        s.log.push((path.clone(), range.clone()));
        let f = s.faults.get(&path).cloned();
        if let Some(Fault::Truncate { after, times }) = &f {
            if *times <= 1 {
                s.faults.remove(&path);
            } else {
                s.faults.insert(
                    path.clone(),
                    Fault::Truncate {
                        after: *after,
                        times: times - 1,
                    },
                );
            }
        }
        f
    };
    match fault {
        Some(Fault::Hang) => {
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
        Some(Fault::Redirect(to)) => {
            return write!(conn, "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        Some(Fault::Status(code)) => {
            return write!(
                conn,
                "HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        _ => {}
    }
    let file: PathBuf = root.join(&path);
    // A body served as it is goes straight from the file (sendfile): the
    // benches measure the client, not this server's copies.
    if fault.is_none() {
        if let Ok(mut f) = std::fs::File::open(&file) {
            let total = f.metadata()?.len();
            if f.metadata()?.is_file() {
                let (head, start) = response_head(range.as_deref(), total);
                conn.write_all(head.as_bytes())?;
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))?;
                std::io::copy(&mut f, &mut conn)?;
                return conn.flush();
            }
        }
    }
    let Ok(mut body) = std::fs::read(&file) else {
        return write!(
            conn,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    };
    if let Some(Fault::Corrupt) = fault {
        let mid = body.len() / 2;
        if let Some(b) = body.get_mut(mid) {
            *b ^= 0xff;
        }
    }
    let (head, start) = response_head(range.as_deref(), body.len() as u64);
    let part = &body[start as usize..];
    conn.write_all(head.as_bytes())?;
    match fault {
        Some(Fault::Truncate { after, .. }) => {
            conn.write_all(&part[..after.min(part.len())])?;
            conn.flush()?;
            // Close without sending the rest.
            return Ok(());
        }
        Some(Fault::Trickle { chunk, every }) => {
            for piece in part.chunks(chunk.max(1)) {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                conn.write_all(piece)?;
                conn.flush()?;
                thread::sleep(every);
            }
        }
        _ => conn.write_all(part)?,
    }
    conn.flush()
}

/// The response head for a file of `total` bytes and the `Range` asked
/// (only `bytes=N-`), and where the body starts.
fn response_head(range: Option<&str>, total: u64) -> (String, u64) {
    let (status, start) = match range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
    {
        Some(n) => match n.parse::<u64>() {
            Ok(n) if n < total => ("206 Partial Content", n),
            _ => ("416 Range Not Satisfiable", total),
        },
        None => ("200 OK", 0),
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        total - start
    );
    if start > 0 {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{total}\r\n",
            total.saturating_sub(1)
        ));
    }
    head.push_str("\r\n");
    (head, start)
}
