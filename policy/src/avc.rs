//! SELinux AVC denials, as the three places an administrator finds them
//! print them:
//! - raw `/var/log/audit/audit.log`: `type=AVC msg=audit(1586260134.952:97):
//!   avc:  denied  { map_create } for  pid=1387 comm="x" … tclass=bpf
//!   permissive=0` (two spaces after `avc:` and `denied`; optional
//!   `permissive=`, `capability=`, `lockdown_reason="…"`);
//! - the journal and dmesg: `… audit: type=1400 audit(1586260134.952:97):
//!   avc:  denied …`;
//! - `ausearch -i`: `type=AVC msg=audit(11/26/2026 10:00:00.952:97) : avc:
//!   denied …` with a human timestamp and unquoted values.

use std::collections::BTreeMap;

use serde::Serialize;

/// One parsed denial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Denial {
    pub permissions: Vec<String>,
    pub scontext: String,
    pub tcontext: String,
    pub tclass: String,
    pub comm: Option<String>,
    pub permissive: Option<bool>,
    pub capability: Option<u32>,
    pub lockdown_reason: Option<String>,
    /// The timestamp as printed (`1586260134.952` or `11/26/2026 10:00:00.952`).
    pub time: Option<String>,
    /// Seconds since the epoch, when the line carries them.
    pub epoch: Option<f64>,
}

impl Denial {
    /// The type of the source context (`connectord_t`).
    pub fn source_type(&self) -> Option<&str> {
        self.scontext.split(':').nth(2)
    }
}

/// Parses one line; `None` when it is not an AVC denial.
pub fn parse_line(line: &str) -> Option<Denial> {
    let avc_at = line.find("avc:")?;
    let rest = line[avc_at + 4..].trim_start();
    let rest = rest.strip_prefix("denied")?.trim_start();
    let rest = rest.strip_prefix('{')?;
    let close = rest.find('}')?;
    let permissions: Vec<String> = rest[..close].split_whitespace().map(String::from).collect();
    if permissions.is_empty() {
        return None;
    }
    let fields = parse_fields(&rest[close + 1..]);
    let get = |k: &str| fields.get(k).cloned();
    let (time, epoch) = timestamp(&line[..avc_at]);
    Some(Denial {
        permissions,
        scontext: get("scontext")?,
        tcontext: get("tcontext")?,
        tclass: get("tclass")?,
        comm: get("comm"),
        permissive: get("permissive").map(|v| v == "1"),
        capability: get("capability").and_then(|c| c.parse().ok()),
        lockdown_reason: get("lockdown_reason"),
        time,
        epoch,
    })
}

/// `key=value` pairs; values may be double-quoted with spaces inside.
fn parse_fields(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        // A key is the last word before '=' (skips "for", stray words).
        let key = key.rsplit(char::is_whitespace).next().unwrap_or(key);
        out.insert(key.to_string(), value.to_string());
        rest = next.trim_start();
    }
    out
}

/// The `audit(TIME:SERIAL)` stamp before the `avc:`.
fn timestamp(prefix: &str) -> (Option<String>, Option<f64>) {
    let Some(start) = prefix.rfind("audit(") else {
        return (None, None);
    };
    let inner = &prefix[start + 6..];
    let Some(end) = inner.find(')') else {
        return (None, None);
    };
    let stamp = &inner[..end];
    let time = stamp
        .rsplit_once(':')
        .map(|(t, _serial)| t)
        .unwrap_or(stamp)
        .trim();
    (Some(time.to_string()), time.parse::<f64>().ok())
}

/// Denials of one permission, aggregated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeniedPermission {
    pub tclass: String,
    pub permission: String,
    pub target_type: String,
    pub count: u64,
    /// The latest timestamp seen, as printed.
    pub last_time: Option<String>,
    /// The same, in seconds since the epoch, when the lines carry it.
    pub last_epoch: Option<f64>,
    pub permissive: bool,
    pub lockdown_reason: Option<String>,
}

/// Aggregates the denials of source type `domain` found in `text`, one
/// entry per (class, permission, target type), most frequent first.
pub fn summarize(text: &str, domain: &str) -> Vec<DeniedPermission> {
    let mut map: BTreeMap<(String, String, String), DeniedPermission> = BTreeMap::new();
    let mut order: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for d in text.lines().filter_map(parse_line) {
        if d.source_type() != Some(domain) {
            continue;
        }
        let target = d.tcontext.split(':').nth(2).unwrap_or("").to_string();
        for p in &d.permissions {
            let key = (d.tclass.clone(), p.clone(), target.clone());
            let e = map.entry(key.clone()).or_insert_with(|| DeniedPermission {
                tclass: d.tclass.clone(),
                permission: p.clone(),
                target_type: target.clone(),
                count: 0,
                last_time: None,
                last_epoch: None,
                permissive: d.permissive.unwrap_or(false),
                lockdown_reason: d.lockdown_reason.clone(),
            });
            e.count += 1;
            let t = d
                .epoch
                .unwrap_or(f64::from(u32::try_from(e.count).unwrap_or(u32::MAX)));
            let last = order.entry(key).or_insert(f64::MIN);
            if t >= *last {
                *last = t;
                e.last_time = d.time.clone();
                e.last_epoch = d.epoch;
            }
        }
    }
    let mut v: Vec<DeniedPermission> = map.into_values().collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.tclass.cmp(&b.tclass)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = r#"type=AVC msg=audit(1586260134.952:97): avc:  denied  { map_create } for  pid=1387 comm="connectord" scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 tclass=bpf permissive=0"#;
    const CAP: &str = r#"type=AVC msg=audit(1586260135.001:98): avc:  denied  { bpf } for  pid=1387 comm="connectord" capability=39  scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 tclass=capability2 permissive=0"#;
    const LOCKDOWN: &str = r#"type=AVC msg=audit(1700000000.5:12): avc:  denied  { confidentiality } for  pid=99 comm="connectord" lockdown_reason="use of bpf to read kernel RAM" scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 tclass=lockdown permissive=0"#;
    const JOURNAL: &str = r#"Nov 26 10:00:00 host kernel: audit: type=1400 audit(1700000100.250:40): avc:  denied  { open } for  pid=7 comm="connectord" scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 tclass=perf_event"#;
    const DMESG: &str = r#"[   12.345678] audit: type=1400 audit(1700000200.000:41): avc:  denied  { read write } for  pid=7 comm="connectord" scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 tclass=perf_event permissive=1"#;
    const AUSEARCH: &str = r#"type=AVC msg=audit(11/26/2026 10:00:00.952:97) : avc:  denied  { prog_load } for  pid=1387 comm=connectord scontext=system_u:system_r:connectord_t:s0 tcontext=system_u:system_r:connectord_t:s0 tclass=bpf permissive=0 "#;
    const OTHER: &str = r#"type=AVC msg=audit(1700000300.0:50): avc:  denied  { relabelfrom } for  pid=1 comm="systemd-tmpfile" scontext=system_u:system_r:systemd_tmpfiles_t:s0 tcontext=system_u:object_r:var_t:s0 tclass=dir permissive=0"#;

    #[test]
    fn raw_audit_log() {
        let d = parse_line(RAW).unwrap();
        assert_eq!(d.permissions, vec!["map_create"]);
        assert_eq!(d.tclass, "bpf");
        assert_eq!(d.comm.as_deref(), Some("connectord"));
        assert_eq!(d.permissive, Some(false));
        assert_eq!(d.time.as_deref(), Some("1586260134.952"));
        assert_eq!(d.epoch, Some(1586260134.952));
        assert_eq!(d.source_type(), Some("connectord_t"));
        let c = parse_line(CAP).unwrap();
        assert_eq!(c.capability, Some(39));
        assert_eq!(c.tclass, "capability2");
        let l = parse_line(LOCKDOWN).unwrap();
        assert_eq!(
            l.lockdown_reason.as_deref(),
            Some("use of bpf to read kernel RAM")
        );
        assert_eq!(l.tclass, "lockdown");
    }

    #[test]
    fn journal_dmesg_and_ausearch() {
        let j = parse_line(JOURNAL).unwrap();
        assert_eq!(j.permissions, vec!["open"]);
        assert_eq!(j.permissive, None);
        assert_eq!(j.epoch, Some(1700000100.25));
        let d = parse_line(DMESG).unwrap();
        assert_eq!(d.permissions, vec!["read", "write"]);
        assert_eq!(d.permissive, Some(true));
        let a = parse_line(AUSEARCH).unwrap();
        assert_eq!(a.permissions, vec!["prog_load"]);
        assert_eq!(a.comm.as_deref(), Some("connectord"));
        assert_eq!(a.time.as_deref(), Some("11/26/2026 10:00:00.952"));
        assert_eq!(a.epoch, None);
    }

    #[test]
    fn non_denials_are_ignored() {
        assert!(parse_line("type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=321").is_none());
        assert!(parse_line(
            r#"type=AVC msg=audit(1.0:1): avc:  granted  { setenforce } for pid=1"#
        )
        .is_none());
        assert!(parse_line("avc:  denied  { } for").is_none());
        assert!(parse_line("").is_none());
    }

    #[test]
    fn summary_counts_per_permission_for_one_domain() {
        let log = [RAW, RAW, CAP, LOCKDOWN, JOURNAL, DMESG, AUSEARCH, OTHER].join("\n");
        let s = summarize(&log, "connectord_t");
        let find = |c: &str, p: &str| {
            s.iter()
                .find(|d| d.tclass == c && d.permission == p)
                .unwrap()
        };
        assert_eq!(find("bpf", "map_create").count, 2);
        assert_eq!(
            find("bpf", "map_create").last_time.as_deref(),
            Some("1586260134.952")
        );
        assert_eq!(find("perf_event", "open").count, 1);
        assert_eq!(find("perf_event", "read").count, 1);
        assert!(find("perf_event", "write").permissive);
        assert_eq!(
            find("lockdown", "confidentiality")
                .lockdown_reason
                .as_deref(),
            Some("use of bpf to read kernel RAM")
        );
        assert!(
            !s.iter().any(|d| d.permission == "relabelfrom"),
            "other domains are left out"
        );
        assert_eq!(s[0].permission, "map_create", "most frequent first");
    }
}
