//! Small SELinux base policies written here (CIL), for proving the
//! connector's module on policies that name less than Debian's: RHEL/OL 7
//! and Amazon Linux 2 (policy 3.13.1), RHEL/OL 8.0-8.3, and any base that
//! lacks one name the module uses.
//!
//! A base is built from what every policy of the EL7 era defines
//! ([`CORE_PERMS`], [`CORE_TYPES`]) plus every other name the module uses,
//! minus a chosen set of [`Name`]s, and made into a real policy store with
//! Debian's `semodule` (libsepol 3.x: as strict about unknown names as
//! EL7's 2.5). The module's own text says what it expects: [`ModuleShape`]
//! reads its statements and `optional` blocks, so a test can derive which
//! rules must survive a base that lacks some names.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::Command;

use crate::Fixture;

/// The store name of fixture roots.
pub const STORE: &str = "fixture";

/// Classes and permissions every supported base policy defines (the
/// kernel's classes of the EL7/3.10 era). Anything else the module uses
/// may be missing from some base, and must sit in an `optional` block.
pub const CORE_PERMS: &[(&str, &[&[&str]])] = &[
    (
        "file",
        &[
            FILE_SOCK_COMMON,
            FILE_ONLY,
            &[
                "execute_no_trans",
                "entrypoint",
                "execmod",
                "open",
                "audit_access",
            ],
        ],
    ),
    (
        "dir",
        &[
            FILE_SOCK_COMMON,
            FILE_ONLY,
            &[
                "add_name",
                "remove_name",
                "reparent",
                "search",
                "rmdir",
                "open",
                "audit_access",
            ],
        ],
    ),
    (
        "lnk_file",
        &[FILE_SOCK_COMMON, FILE_ONLY, &["open", "audit_access"]],
    ),
    (
        "chr_file",
        &[
            FILE_SOCK_COMMON,
            FILE_ONLY,
            &[
                "open",
                "audit_access",
                "execute_no_trans",
                "entrypoint",
                "execmod",
            ],
        ],
    ),
    (
        "sock_file",
        &[FILE_SOCK_COMMON, FILE_ONLY, &["open", "audit_access"]],
    ),
    (
        "fifo_file",
        &[FILE_SOCK_COMMON, FILE_ONLY, &["open", "audit_access"]],
    ),
    ("fd", &[&["use"]]),
    (
        "process",
        &[&[
            "fork",
            "transition",
            "sigchld",
            "sigkill",
            "sigstop",
            "signull",
            "signal",
            "ptrace",
            "getsched",
            "setsched",
            "getsession",
            "getpgid",
            "setpgid",
            "getcap",
            "setcap",
            "share",
            "getattr",
            "setexec",
            "setfscreate",
            "noatsecure",
            "siginh",
            "setrlimit",
            "rlimitinh",
            "dyntransition",
            "setcurrent",
            "execmem",
            "execstack",
            "execheap",
            "setkeycreate",
            "setsockcreate",
        ]],
    ),
    (
        "unix_stream_socket",
        &[
            FILE_SOCK_COMMON,
            SOCKET_ONLY,
            &["connectto", "newconn", "acceptfrom"],
        ],
    ),
    ("unix_dgram_socket", &[FILE_SOCK_COMMON, SOCKET_ONLY]),
    (
        "capability",
        &[&[
            "chown",
            "dac_override",
            "dac_read_search",
            "fowner",
            "fsetid",
            "kill",
            "setgid",
            "setuid",
            "setpcap",
            "linux_immutable",
            "net_bind_service",
            "net_broadcast",
            "net_admin",
            "net_raw",
            "ipc_lock",
            "ipc_owner",
            "sys_module",
            "sys_rawio",
            "sys_chroot",
            "sys_ptrace",
            "sys_pacct",
            "sys_admin",
            "sys_boot",
            "sys_nice",
            "sys_resource",
            "sys_time",
            "sys_tty_config",
            "mknod",
            "lease",
            "audit_write",
            "audit_control",
            "setfcap",
        ]],
    ),
    (
        "capability2",
        &[&[
            "mac_override",
            "mac_admin",
            "syslog",
            "wake_alarm",
            "block_suspend",
            "audit_read",
        ]],
    ),
];

/// The permissions files and sockets share (the kernel's
/// COMMON_FILE_SOCK_PERMS), then each kind's own.
const FILE_SOCK_COMMON: &[&str] = &[
    "ioctl",
    "read",
    "write",
    "create",
    "getattr",
    "setattr",
    "lock",
    "relabelfrom",
    "relabelto",
    "append",
];
const FILE_ONLY: &[&str] = &[
    "unlink", "link", "rename", "execute", "swapon", "quotaon", "mounton",
];
const SOCKET_ONLY: &[&str] = &[
    "bind",
    "connect",
    "listen",
    "accept",
    "getopt",
    "setopt",
    "shutdown",
    "recvfrom",
    "sendto",
    "recv_msg",
    "send_msg",
    "name_bind",
];

/// Types and attributes every supported base policy has.
pub const CORE_TYPES: &[&str] = &["init_t", "domain", "file_type"];

/// A name a base policy defines (or lacks).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Name {
    /// A type or an attribute.
    Type(String),
    Class(String),
    Perm(String, String),
}

impl Name {
    pub fn ty(t: &str) -> Name {
        Name::Type(t.into())
    }
    pub fn class(c: &str) -> Name {
        Name::Class(c.into())
    }
    pub fn perm(c: &str, p: &str) -> Name {
        Name::Perm(c.into(), p.into())
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Type(t) => write!(f, "type {t}"),
            Name::Class(c) => write!(f, "class {c}"),
            Name::Perm(c, p) => write!(f, "{c} {p}"),
        }
    }
}

/// A CIL s-expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sx {
    Atom(String),
    List(Vec<Sx>),
}

impl Sx {
    fn atom(&self) -> Option<&str> {
        match self {
            Sx::Atom(a) => Some(a),
            Sx::List(_) => None,
        }
    }
    fn list(&self) -> &[Sx] {
        match self {
            Sx::List(l) => l,
            Sx::Atom(_) => &[],
        }
    }
    fn atoms(&self) -> Vec<String> {
        match self {
            Sx::Atom(a) => vec![a.clone()],
            Sx::List(l) => l
                .iter()
                .filter_map(|s| s.atom().map(String::from))
                .collect(),
        }
    }
}

/// Parses CIL text (comments, quoted strings, nested lists).
pub fn parse(text: &str) -> Vec<Sx> {
    let mut stack: Vec<Vec<Sx>> = vec![Vec::new()];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ';' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' => stack.push(Vec::new()),
            ')' => {
                let done = stack.pop().expect("balanced");
                stack.last_mut().expect("balanced").push(Sx::List(done));
            }
            '"' => {
                let mut s = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    s.push(c);
                }
                stack.last_mut().unwrap().push(Sx::Atom(s));
            }
            c if c.is_whitespace() => {}
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || n == '(' || n == ')' {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                stack.last_mut().unwrap().push(Sx::Atom(s));
            }
        }
    }
    assert_eq!(stack.len(), 1, "unbalanced CIL");
    stack.pop().unwrap()
}

/// The connector module's statements: the ones always in force and the
/// `optional` blocks.
#[derive(Debug, Clone)]
pub struct ModuleShape {
    /// Types the module declares itself.
    pub declared: BTreeSet<String>,
    pub core: Vec<Sx>,
    pub blocks: Vec<(String, Vec<Sx>)>,
}

impl ModuleShape {
    pub fn parse(text: &str) -> ModuleShape {
        let mut declared = BTreeSet::new();
        let mut core = Vec::new();
        let mut blocks = Vec::new();
        for s in parse(text) {
            let l = s.list();
            match l.first().and_then(Sx::atom) {
                Some("optional") => {
                    let name = l[1].atom().expect("optional name").to_string();
                    assert!(
                        l[2..]
                            .iter()
                            .all(|x| x.list().first().and_then(Sx::atom) != Some("optional")),
                        "nested optional in {name}: keep blocks flat"
                    );
                    blocks.push((name, l[2..].to_vec()));
                }
                Some("type") => {
                    declared.insert(l[1].atom().unwrap().to_string());
                    core.push(s);
                }
                _ => core.push(s),
            }
        }
        ModuleShape {
            declared,
            core,
            blocks,
        }
    }

    /// The base names one statement uses.
    pub fn names_of(&self, s: &Sx) -> BTreeSet<Name> {
        let l = s.list();
        let mut out = BTreeSet::new();
        let ty = |t: &str, out: &mut BTreeSet<Name>| {
            if t != "self" && !self.declared.contains(t) {
                out.insert(Name::ty(t));
            }
        };
        match l.first().and_then(Sx::atom) {
            Some("allow") => {
                ty(l[1].atom().unwrap(), &mut out);
                ty(l[2].atom().unwrap(), &mut out);
                let cp = l[3].list();
                let class = cp[0].atom().unwrap();
                out.insert(Name::class(class));
                for p in cp[1].atoms() {
                    out.insert(Name::perm(class, &p));
                }
            }
            Some("typeattributeset") => {
                ty(l[1].atom().unwrap(), &mut out);
                for t in l[2].atoms() {
                    ty(&t, &mut out);
                }
            }
            Some("typetransition") => {
                for t in l[1..3].iter().chain(l[4..].iter()) {
                    ty(t.atom().unwrap(), &mut out);
                }
                out.insert(Name::class(l[3].atom().unwrap()));
            }
            _ => {}
        }
        out
    }

    /// Every base name the module uses.
    pub fn all_names(&self) -> BTreeSet<Name> {
        self.core
            .iter()
            .chain(self.blocks.iter().flat_map(|(_, b)| b.iter()))
            .flat_map(|s| self.names_of(s))
            .collect()
    }

    /// The names some supported base may lack: all but the core.
    pub fn lackable(&self) -> BTreeSet<Name> {
        self.all_names()
            .into_iter()
            .filter(|n| !is_core(n))
            .collect()
    }

    /// The attributes the module puts its types in.
    pub fn attributes(&self) -> BTreeSet<String> {
        self.core
            .iter()
            .chain(self.blocks.iter().flat_map(|(_, b)| b.iter()))
            .filter_map(|s| {
                let l = s.list();
                (l.first().and_then(Sx::atom) == Some("typeattributeset"))
                    .then(|| l[1].atom().unwrap().to_string())
            })
            .collect()
    }

    /// The statements in force on a base that lacks `lacks`: the core, and
    /// every block none of whose statements uses a lacking name.
    pub fn in_force(&self, lacks: &BTreeSet<Name>) -> Vec<&Sx> {
        let mut out: Vec<&Sx> = self.core.iter().collect();
        for (_, b) in &self.blocks {
            let uses: BTreeSet<Name> = b.iter().flat_map(|s| self.names_of(s)).collect();
            if uses.is_disjoint(lacks) {
                out.extend(b.iter());
            }
        }
        out
    }

    /// `SRC TGT:CLASS PERM` for every permission the statements in force
    /// grant (`self` spelled as the source, as sesearch prints it).
    pub fn expected_rules(&self, lacks: &BTreeSet<Name>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for s in self.in_force(lacks) {
            let l = s.list();
            if l.first().and_then(Sx::atom) != Some("allow") {
                continue;
            }
            let src = l[1].atom().unwrap();
            let tgt = match l[2].atom().unwrap() {
                "self" => src,
                t => t,
            };
            let cp = l[3].list();
            let class = cp[0].atom().unwrap();
            for p in cp[1].atoms() {
                out.insert(format!("{src} {tgt}:{class} {p}"));
            }
        }
        out
    }

    /// `TYPE ATTRIBUTE` for every attribute membership in force.
    pub fn expected_attributes(&self, lacks: &BTreeSet<Name>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for s in self.in_force(lacks) {
            let l = s.list();
            if l.first().and_then(Sx::atom) == Some("typeattributeset") {
                let attr = l[1].atom().unwrap();
                for t in l[2].atoms() {
                    out.insert(format!("{t} {attr}"));
                }
            }
        }
        out
    }
}

/// Is `n` defined by every supported base policy?
pub fn is_core(n: &Name) -> bool {
    let core_class = |c: &str| CORE_PERMS.iter().find(|(k, _)| *k == c);
    match n {
        Name::Type(t) => CORE_TYPES.contains(&t.as_str()),
        Name::Class(c) => core_class(c).is_some(),
        Name::Perm(c, p) => {
            core_class(c).is_some_and(|(_, sets)| sets.iter().any(|s| s.contains(&p.as_str())))
        }
    }
}

/// How the fixture's kernel policy treats undefined classes/permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    Allow,
    Deny,
}

/// A base policy in CIL defining the core, every name `shape` uses, minus
/// `lacks`. Each attribute gets two members of its own and a rule that
/// uses it, so the compiled policy keeps it (CIL drops unused attributes).
pub fn base_cil(shape: &ModuleShape, lacks: &BTreeSet<Name>, unknown: Unknown) -> String {
    let mut classes: BTreeMap<String, BTreeSet<String>> = CORE_PERMS
        .iter()
        .map(|(c, sets)| {
            (
                c.to_string(),
                sets.iter()
                    .flat_map(|s| s.iter().map(|p| p.to_string()))
                    .collect(),
            )
        })
        .collect();
    let mut types: BTreeSet<String> = CORE_TYPES.iter().map(|t| t.to_string()).collect();
    for n in shape.all_names() {
        match n {
            Name::Type(t) => {
                types.insert(t);
            }
            Name::Class(c) => {
                classes.entry(c).or_default();
            }
            Name::Perm(c, p) => {
                classes.entry(c).or_default().insert(p);
            }
        }
    }
    for n in lacks {
        match n {
            Name::Type(t) => {
                types.remove(t);
            }
            Name::Class(c) => {
                classes.remove(c);
            }
            Name::Perm(c, p) => {
                if let Some(ps) = classes.get_mut(c) {
                    ps.remove(p);
                }
            }
        }
    }
    let mut attrs = shape.attributes();
    attrs.extend(["domain".to_string(), "file_type".to_string()]);
    let mut s = String::new();
    let hu = match unknown {
        Unknown::Allow => "allow",
        Unknown::Deny => "deny",
    };
    let _ = writeln!(
        s,
        "; fixture base policy (connector tests)\n(handleunknown {hu})\n(mls false)"
    );
    for (c, perms) in &classes {
        let p: Vec<&str> = perms.iter().map(String::as_str).collect();
        let _ = writeln!(s, "(class {c} ({}))", p.join(" "));
    }
    let order: Vec<&str> = classes.keys().map(String::as_str).collect();
    let _ = writeln!(s, "(classorder ({}))", order.join(" "));
    s.push_str(
        "(sensitivity s0)\n(sensitivityorder (s0))\n(user system_u)\n(role system_r)\n\
         (role object_r)\n(userrole system_u system_r)\n(userrole system_u object_r)\n\
         (userlevel system_u (s0))\n(userrange system_u ((s0) (s0)))\n\
         (type kernel_t)\n(roletype system_r kernel_t)\n(sid kernel)\n(sidorder (kernel))\n\
         (sidcontext kernel (system_u system_r kernel_t ((s0) (s0))))\n\
         (allow kernel_t self (process (fork)))\n",
    );
    for t in &types {
        if attrs.contains(t) {
            let _ = writeln!(
                s,
                "(typeattribute {t})\n(type fixture_{t}_a)\n(type fixture_{t}_b)\n\
                 (typeattributeset {t} (fixture_{t}_a fixture_{t}_b))\n\
                 (allow kernel_t {t} (fd (use)))"
            );
        } else {
            let _ = writeln!(s, "(type {t})\n(roletype object_r {t})");
        }
    }
    if types.contains("init_t") {
        s.push_str("(roletype system_r init_t)\n");
    }
    s
}

/// A root whose SELinux store (`fixture`, enforcing) holds only `base` as
/// its base module, built by the real semodule.
pub fn store_root(base: &str) -> Fixture {
    let f = Fixture::new();
    f.file(
        "/etc/selinux/config",
        &format!("SELINUX=enforcing\nSELINUXTYPE={STORE}\n"),
    );
    f.file(
        "/etc/selinux/semanage.conf",
        "module-store = direct\nexpand-check = 0\n",
    );
    std::fs::create_dir_all(f.host(&format!("/etc/selinux/{STORE}"))).unwrap();
    std::fs::create_dir_all(f.host("/var/lib/selinux")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("base.cil");
    std::fs::write(&file, base).unwrap();
    let out = Command::new("semodule")
        .arg("-p")
        .arg(f.path())
        .args(["-s", STORE, "-n", "-X", "100", "-i"])
        .arg(&file)
        .output()
        .expect("semodule runs");
    assert!(
        out.status.success(),
        "fixture base rejected: {}\n{base}",
        String::from_utf8_lossy(&out.stderr)
    );
    f
}

/// The binary policy of a fixture root.
pub fn policy_path(f: &Fixture) -> std::path::PathBuf {
    f.host(&format!("/etc/selinux/{STORE}/policy/policy.33"))
}

/// `SRC TGT:CLASS PERM` for every allow rule of the policy whose source is
/// one of `sources` (as sesearch prints them).
pub fn policy_rules(policy: &std::path::Path, sources: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for src in sources {
        let o = Command::new("sesearch")
            .args(["-A", "-s", src, "-ds"])
            .arg(policy)
            .output()
            .expect("sesearch runs");
        assert!(
            o.status.success(),
            "sesearch: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out.extend(parse_sesearch(&String::from_utf8_lossy(&o.stdout)));
    }
    out
}

/// Parses `allow S T:C { p q };` lines into `S T:C p` items.
pub fn parse_sesearch(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.trim().trim_end_matches(';').strip_prefix("allow ") else {
            continue;
        };
        let mut w = rest.splitn(3, ' ');
        let (Some(src), Some(tc), Some(perms)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        for p in perms
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .split_whitespace()
        {
            out.insert(format!("{src} {tc} {p}"));
        }
    }
    out
}

/// `TYPE ATTRIBUTE` for every attribute of `types` (seinfo -x), generated
/// CIL attributes left out.
pub fn policy_attributes(policy: &std::path::Path, types: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in types {
        let o = Command::new("seinfo")
            .args(["-x", "-t", t])
            .arg(policy)
            .output()
            .expect("seinfo runs");
        let text = String::from_utf8_lossy(&o.stdout);
        let Some(line) = text.lines().find(|l| l.contains(&format!("type {t}"))) else {
            continue;
        };
        for a in line
            .trim()
            .trim_end_matches(';')
            .split(',')
            .skip(1)
            .map(str::trim)
        {
            if !a.contains("_typeattr_") {
                out.insert(format!("{t} {a}"));
            }
        }
    }
    out
}

/// What the real RHEL/OL 7 and Amazon Linux 2 policy (3.13.1) lacks of the
/// names the module uses, as measured on a CentOS 7 policy with seinfo
/// (`../shared/selinux/README.md`): it does define `tracefs_t`.
pub fn el7_lacks() -> BTreeSet<Name> {
    [
        Name::class("bpf"),
        Name::class("perf_event"),
        Name::class("process2"),
        Name::class("lockdown"),
        Name::perm("file", "map"),
        Name::perm("capability2", "bpf"),
        Name::perm("capability2", "perfmon"),
        Name::ty("bpf_t"),
    ]
    .into_iter()
    .collect()
}
