//! The connector's published state, `/var/lib/connector/status.json`: one
//! typed definition for the daemon that writes it and the installer that
//! reads it (`doctor`, `repair`).

use serde::{Deserialize, Serialize};

use crate::Root;

/// Where the status lives inside the root.
pub const PATH: &str = crate::layout::STATUS;

/// A fault as the connector publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFault {
    pub id: u32,
    pub message: String,
    pub detail: String,
    /// When it was first raised (seconds since the epoch).
    pub since: u64,
}

/// A line of `/etc/connector/connector.conf` the connector could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// 1-based; `None` when the file as a whole is the problem.
    pub line: Option<u32>,
    pub problem: String,
}

/// The connector's compile of its probe, as it went this round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileReport {
    /// The build tree compiled against (inside the root), when one was.
    pub tree: Option<String>,
    /// The object, in the probe cache, when there is one.
    pub object: Option<String>,
    /// Taken from the cache, every input unchanged.
    pub cached: bool,
    /// Milliseconds the cache check or the compile took.
    pub millis: u64,
    /// The compiler's first error (or why it could not run).
    pub error: Option<String>,
}

/// The published status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    /// This host's agent identity (`/var/lib/connector/agent-id`), made on
    /// first start; an image prepared with `install --prepare-image` has
    /// none, so every clone makes its own.
    #[serde(default)]
    pub agent_id: String,
    pub pid: u32,
    pub updated_at: u64,
    pub kernel: String,
    pub headers_present: bool,
    pub headers_path: Option<String>,
    pub headers_package: Option<String>,
    pub probe_loaded: bool,
    pub probe_error: Option<String>,
    pub faults: Vec<AgentFault>,
    /// What in connector.conf was not used, and why (empty: all of it was).
    #[serde(default)]
    pub config_problems: Vec<ConfigProblem>,
    /// The probe's compile (absent from connectors before the compile).
    #[serde(default)]
    pub compile: Option<CompileReport>,
    /// Events the attached probe has counted.
    #[serde(default)]
    pub probe_events: Option<u64>,
}

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The read error names the file.
    #[error(transparent)]
    Read(std::io::Error),
    #[error("{PATH} is not the connector's status document")]
    Parse(#[source] serde_json::Error),
}

/// Parses a status document.
pub fn parse(text: &str) -> Result<Status, StatusError> {
    serde_json::from_str(text).map_err(StatusError::Parse)
}

/// The root's status; `Ok(None)` when the connector has not published one.
/// The read is capped like every read of a root.
pub fn read(root: &Root) -> Result<Option<Status>, StatusError> {
    match root
        .read_to_string_optional(PATH)
        .map_err(StatusError::Read)?
    {
        None => Ok(None),
        Some(text) => parse(&text).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(text: Option<&str>) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = text {
            let p = dir.path().join(PATH.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let root = Root::new(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn missing_status_is_none_and_garbage_is_a_parse_error() {
        let (_d, root) = root_with(None);
        assert!(read(&root).unwrap().is_none());
        let (_d, root) = root_with(Some("{\"version\": 1"));
        assert!(matches!(read(&root), Err(StatusError::Parse(_))));
        // A document of another shape is refused, not half-read.
        let (_d, root) = root_with(Some("{\"faults\": []}"));
        assert!(matches!(read(&root), Err(StatusError::Parse(_))));
    }

    #[test]
    fn a_written_status_reads_back() {
        let s = Status {
            version: "1".into(),
            agent_id: "a".into(),
            pid: 7,
            updated_at: 9,
            kernel: "6.1.0-18-amd64".into(),
            headers_present: false,
            headers_path: None,
            headers_package: Some("linux-headers-6.1.0-18-amd64".into()),
            probe_loaded: false,
            probe_error: None,
            faults: vec![AgentFault {
                id: 11,
                message: "m".into(),
                detail: "d".into(),
                since: 3,
            }],
            config_problems: vec![ConfigProblem {
                line: Some(2),
                problem: "unknown key `x`".into(),
            }],
            compile: Some(CompileReport {
                tree: Some("/usr/src/linux-headers-6.1.0-18-amd64".into()),
                object: None,
                cached: false,
                millis: 310,
                error: Some("x.c:1:10: fatal error: 'linux/types.h' file not found".into()),
            }),
            probe_events: None,
        };
        let (_d, root) = root_with(Some(&serde_json::to_string(&s).unwrap()));
        assert_eq!(read(&root).unwrap(), Some(s));
    }
}
