//! The module on base policies that name less than Debian's: the project's
//! own small bases (`connector_tests::selinux_base`), each made a real store
//! by semodule, the module installed by the installer's own call
//! (`Store::install`, i.e. `semodule -p ROOT -s TYPE -n -X 200 -i`), and the
//! result read back with sesearch/seinfo and with our policydb reader.
//!
//! - RHEL/OL 7 and Amazon Linux 2, RHEL/OL 8.0-8.3, RHEL 9: hand-written
//!   lists of what each lacks and exactly which rights must drop.
//! - Every name the module uses beyond the core, alone and all together:
//!   the module links and exactly the rules of the blocks using that name
//!   drop (derived from the module's text).
//! - Mutants: each `optional` unwrapped in turn must make its fixture fail,
//!   so these tests catch a block that goes missing.
//!
//! Tier: real tools in scratch roots (~0.3 s per store here).
#![cfg(feature = "real-tools")]

use std::collections::BTreeSet;
use std::time::Duration;

use connector_host::Root;
use connector_policy::policydb::{HandleUnknown, PolicyNames};
use connector_policy::rights::{self, KernelAnswer, RightState};
use connector_policy::{ModuleState, PolicyError, Store, MODULE_CIL, MODULE_NAME};
use connector_tests::selinux_base::{
    self as sb, base_cil, policy_attributes, policy_path, policy_rules, store_root, ModuleShape,
    Name, Unknown,
};
use connector_tests::{require_tool, Fixture};

const OUR_TYPES: &[&str] = &[
    "connectord_t",
    "connectord_exec_t",
    "connectord_var_lib_t",
    "connectord_log_t",
    "connectord_conf_t",
];

fn tools() {
    for t in ["semodule", "sesearch", "seinfo"] {
        require_tool(t);
    }
}

fn shape() -> ModuleShape {
    ModuleShape::parse(MODULE_CIL)
}

fn set(names: &[Name]) -> BTreeSet<Name> {
    names.iter().cloned().collect()
}

/// What RHEL/OL 7 and Amazon Linux 2 (policy 3.13.1) lack, and `tracefs_t`
/// as well (EL7 policies before 7.3 lack it): the widest EL7-era gap.
fn el7() -> BTreeSet<Name> {
    let mut lacks = sb::el7_lacks();
    lacks.insert(Name::ty("tracefs_t"));
    lacks
}

/// What RHEL/OL 8.0-8.3 lack (the f30-based policy).
fn el80() -> BTreeSet<Name> {
    set(&[
        Name::class("perf_event"),
        Name::perm("capability2", "bpf"),
        Name::perm("capability2", "perfmon"),
        Name::class("lockdown"),
    ])
}

/// The probe rights (`class perm`) an RHEL 8.0-8.3 base cannot name.
fn el80_lost_rights() -> BTreeSet<String> {
    let mut out = strings(&[
        "capability2 bpf",
        "capability2 perfmon",
        "lockdown confidentiality",
        "lockdown integrity",
    ]);
    for p in ["open", "cpu", "kernel", "read", "write", "tracepoint"] {
        out.insert(format!("perf_event {p}"));
    }
    out
}

/// What RHEL 9.3 lacks.
fn el93() -> BTreeSet<Name> {
    set(&[Name::class("lockdown")])
}

/// Installs `text` as the connector's module into a fixture store lacking
/// `lacks`, the installer's way.
fn install_into(
    lacks: &BTreeSet<Name>,
    text: &str,
    unknown: Unknown,
) -> (Fixture, Result<(), PolicyError>) {
    let f = store_root(&base_cil(&shape(), lacks, unknown));
    let store = Store::open(&Root::new(f.path()).unwrap()).unwrap().unwrap();
    let r = store
        .install_module(MODULE_NAME, text, Duration::from_secs(30))
        .map(|_| ());
    (f, r)
}

/// Installs the shipped module and checks the linked policy against what
/// the module's text says must be in force; returns the rules.
fn check_links(lacks: &BTreeSet<Name>) -> (Fixture, BTreeSet<String>) {
    let sh = shape();
    let f = store_root(&base_cil(&sh, lacks, Unknown::Allow));
    let store = Store::open(&Root::new(f.path()).unwrap()).unwrap().unwrap();
    let what: Vec<String> = lacks.iter().map(|n| n.to_string()).collect();
    store
        .install(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("lacking {what:?}: {e}"));
    assert!(
        matches!(
            store.module_state().unwrap(),
            ModuleState::Installed { current: true, .. }
        ),
        "lacking {what:?}"
    );
    let policy = policy_path(&f);
    let rules = policy_rules(&policy, &["connectord_t", "init_t"]);
    let want = sh.expected_rules(lacks);
    let extra: Vec<_> = rules.difference(&want).collect();
    let lost: Vec<_> = want.difference(&rules).collect();
    assert!(
        extra.is_empty() && lost.is_empty(),
        "lacking {what:?}: rules beyond the module {extra:?}, rules the base could name but lost {lost:?}"
    );
    let attrs = policy_attributes(&policy, OUR_TYPES);
    assert_eq!(
        attrs,
        sh.expected_attributes(lacks),
        "lacking {what:?}: attributes"
    );
    (f, rules)
}

/// The rights a profile drops: the full fixture's rules minus its own.
fn dropped(lacks: &BTreeSet<Name>) -> BTreeSet<String> {
    let (_, full) = check_links(&BTreeSet::new());
    let (_, got) = check_links(lacks);
    full.difference(&got).cloned().collect()
}

fn strings(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_rhel_family_gaps_are_among_the_names_the_module_keeps_optional() {
    let lackable = shape().lackable();
    for n in el7().iter().chain(el80().iter()) {
        assert!(
            lackable.contains(n),
            "{n} is used outside an optional block or not at all"
        );
    }
    // Every base type and attribute but the core is optional too.
    for t in [
        "daemon",
        "non_auth_file_type",
        "lib_t",
        "devlog_t",
        "system_map_t",
    ] {
        assert!(lackable.contains(&Name::ty(t)), "{t}");
    }
    assert!(!lackable.contains(&Name::ty("init_t")));
}

/// allowlist.txt is the reviewed copy of the module's own grants: the two
/// never drift apart (a rule added to one only fails here).
#[test]
fn the_allowlist_is_exactly_the_modules_own_rules() {
    let mut module: BTreeSet<String> = BTreeSet::new();
    for r in shape().expected_rules(&BTreeSet::new()) {
        // "SRC TGT:CLASS PERM"
        let mut w = r.split(' ');
        let (src, tc, perm) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
        if src == "connectord_t" {
            let tc = tc.replacen("connectord_t:", "self:", 1);
            module.insert(format!("{tc} {perm}"));
        }
    }
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/allowlist.txt")).unwrap();
    let mut listed = BTreeSet::new();
    for l in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut w = l.split_whitespace();
        let tc = w.next().unwrap();
        for p in w {
            listed.insert(format!("{tc} {p}"));
        }
    }
    let unlisted: Vec<_> = module.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&module).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "module rules not in allowlist.txt: {unlisted:?}; allowlist entries the module does not grant: {stale:?}"
    );
}

#[test]
fn el7_and_amazon_linux_2_drop_exactly_what_they_cannot_name() {
    tools();
    let got = dropped(&el7());
    let mut want = strings(&[
        "init_t connectord_exec_t:file map",
        "connectord_t connectord_exec_t:file map",
        "connectord_t lib_t:file map",
        "connectord_t bin_t:file map",
        "connectord_t src_t:file map",
        "connectord_t ld_so_t:file map",
        "connectord_t ld_so_cache_t:file map",
        "init_t connectord_t:process2 nnp_transition",
        "init_t connectord_t:process2 nosuid_transition",
        "connectord_t connectord_t:capability2 bpf",
        "connectord_t connectord_t:capability2 perfmon",
        "connectord_t connectord_t:lockdown confidentiality",
        "connectord_t connectord_t:lockdown integrity",
    ]);
    for p in [
        "map_create",
        "map_read",
        "map_write",
        "prog_load",
        "prog_run",
    ] {
        want.insert(format!("connectord_t connectord_t:bpf {p}"));
    }
    for p in ["open", "cpu", "kernel", "read", "write", "tracepoint"] {
        want.insert(format!("connectord_t connectord_t:perf_event {p}"));
    }
    for p in ["getattr", "search", "open", "read"] {
        want.insert(format!("connectord_t tracefs_t:dir {p}"));
    }
    for p in ["getattr", "open", "read"] {
        want.insert(format!("connectord_t tracefs_t:file {p}"));
    }
    for p in [
        "getattr",
        "search",
        "open",
        "read",
        "write",
        "add_name",
        "remove_name",
        "create",
        "rmdir",
    ] {
        want.insert(format!("connectord_t bpf_t:dir {p}"));
    }
    for p in [
        "getattr", "open", "read", "write", "create", "unlink", "rename",
    ] {
        want.insert(format!("connectord_t bpf_t:file {p}"));
    }
    assert_eq!(got, want);
}

#[test]
fn el8_before_8_4_drops_perf_event_and_the_new_capabilities_only() {
    tools();
    let (f, rules) = check_links(&el80());
    for keep in [
        "connectord_t connectord_t:bpf prog_load",
        "connectord_t connectord_t:capability2 syslog",
        "connectord_t connectord_t:capability sys_admin",
        "init_t connectord_t:process2 nnp_transition",
        "connectord_t connectord_exec_t:file map",
        "connectord_t bpf_t:file create",
    ] {
        assert!(rules.contains(keep), "{keep}");
    }
    let want: BTreeSet<String> = el80_lost_rights()
        .iter()
        .map(|r| {
            let (c, p) = r.split_once(' ').unwrap();
            format!("connectord_t connectord_t:{c} {p}")
        })
        .collect();
    assert_eq!(dropped(&el80()), want);

    // What the installer reports for this image: undefined rights are
    // the kernel's to allow (handle_unknown=allow), the rest granted.
    let root = Root::new(f.path()).unwrap();
    let (path, names) = rights::read_store_policy(&root, sb::STORE, None).unwrap();
    assert!(path.ends_with("policy.33"), "{path:?}");
    let r = rights::from_policy(&names, path.display().to_string(), true);
    assert_eq!(r.handle_unknown, HandleUnknown::Allow);
    for x in &r.rights {
        let undefined = el80().contains(&Name::class(&x.class))
            || el80().contains(&Name::perm(&x.class, &x.permission));
        let want = if undefined {
            RightState::NotDefined {
                kernel: KernelAnswer::Allowed,
            }
        } else {
            RightState::Granted
        };
        assert_eq!(x.state, want, "{}", x.name());
    }
}

#[test]
fn rhel9_drops_lockdown_only() {
    tools();
    assert_eq!(
        dropped(&el93()),
        strings(&[
            "connectord_t connectord_t:lockdown confidentiality",
            "connectord_t connectord_t:lockdown integrity",
        ])
    );
}

/// Each name alone, then all of them together: the module links, keeps
/// every rule the base can name, and drops exactly the blocks that use it.
#[test]
fn every_optional_name_alone_and_all_together() {
    tools();
    let lackable: Vec<Name> = shape().lackable().into_iter().collect();
    assert!(lackable.len() > 30, "{lackable:?}");
    let cases: Vec<BTreeSet<Name>> = lackable
        .iter()
        .map(|n| set(std::slice::from_ref(n)))
        .chain(std::iter::once(lackable.iter().cloned().collect()))
        .collect();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    std::thread::scope(|s| {
        for w in 0..workers {
            let cases = &cases;
            s.spawn(move || {
                for c in cases.iter().skip(w).step_by(workers) {
                    check_links(c);
                }
            });
        }
    });
}

/// A module whose block for a name is unwrapped (its rules made
/// unconditional) is rejected by the fixture that lacks the name: the
/// tests above fail if any one `optional` is removed.
#[test]
fn removing_any_optional_is_caught() {
    tools();
    let sh = shape();
    let text = MODULE_CIL;
    let blocks: Vec<(String, BTreeSet<Name>)> = sh
        .blocks
        .iter()
        .map(|(name, stmts)| {
            let uses: BTreeSet<Name> = stmts
                .iter()
                .flat_map(|s| sh.names_of(s))
                .filter(|n| !sb::is_core(n))
                .collect();
            (name.clone(), uses)
        })
        .collect();
    assert!(blocks.len() > 30);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    std::thread::scope(|s| {
        for w in 0..workers {
            let blocks = &blocks;
            s.spawn(move || {
                for (name, uses) in blocks.iter().skip(w).step_by(workers) {
                    assert!(
                        !uses.is_empty(),
                        "block {name} uses no name a base may lack"
                    );
                    let mutant = unwrap_optional(text, name);
                    assert_ne!(mutant, text);
                    let (_, r) = install_into(uses, &mutant, Unknown::Allow);
                    match r {
                        Err(PolicyError::Rejected { message }) => {
                            assert!(message.contains("Failed to resolve"), "{name}: {message}")
                        }
                        other => panic!(
                            "{name} unwrapped still links on a base lacking {uses:?}: {other:?}"
                        ),
                    }
                }
            });
        }
    });
}

/// The module text with `(optional NAME ...)` replaced by its body.
fn unwrap_optional(text: &str, name: &str) -> String {
    let head = format!("(optional {name}\n");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("block {name} not found"));
    let mut depth = 0;
    let mut end = start;
    for (i, c) in text[start..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i;
                    break;
                }
            }
            _ => {}
        }
    }
    format!(
        "{}{}{}",
        &text[..start],
        &text[start + head.len()..end],
        &text[end + 1..]
    )
}

/// A base that denies what it does not define: our reader says so, and
/// the rights the old base cannot name are refused.
#[test]
fn handle_unknown_deny_is_read_from_the_binary_policy() {
    tools();
    let (f, r) = install_into(&el80(), MODULE_CIL, Unknown::Deny);
    r.unwrap();
    let root = Root::new(f.path()).unwrap();
    let (path, names) = rights::read_store_policy(&root, sb::STORE, None).unwrap();
    assert_eq!(names.handle_unknown, HandleUnknown::Deny);
    let rights = rights::from_policy(&names, path.display().to_string(), true);
    let refused: BTreeSet<String> = rights
        .rights
        .iter()
        .filter(|r| r.refused())
        .map(|r| r.name())
        .collect();
    assert_eq!(refused, el80_lost_rights());
    // Without our module every right the policy defines is missing.
    let none = rights::from_policy(&names, String::new(), false);
    assert!(none
        .rights
        .iter()
        .filter(|r| r.class == "bpf")
        .all(|r| r.state == RightState::Missing));
}

/// Our policydb reader agrees with seinfo on every class and permission of
/// the fixture policies and of Debian's own, at every policy version the
/// fixtures can be written in.
#[test]
fn the_policydb_reader_agrees_with_seinfo() {
    tools();
    require_tool("secilc");
    let mut policies = Vec::new();
    let el7_store = store_root(&base_cil(&shape(), &el7(), Unknown::Deny));
    policies.push(policy_path(&el7_store));
    for ty in ["default", "mls"] {
        let dir = std::path::PathBuf::from(format!("/etc/selinux/{ty}/policy"));
        if let Some(p) = std::fs::read_dir(&dir).ok().and_then(|d| {
            d.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("policy.")
            })
        }) {
            policies.push(p);
        }
    }
    assert!(
        policies.len() >= 3,
        "Debian's default and mls policies: scripts/setup --test"
    );
    // The same base written at older policy versions (EL7 loads 31).
    let tmp = tempfile::tempdir().unwrap();
    {
        let base = tmp.path().join("base.cil");
        std::fs::write(&base, base_cil(&shape(), &BTreeSet::new(), Unknown::Allow)).unwrap();
        for v in [24, 27, 28, 29, 30, 31, 33] {
            let out = tmp.path().join(format!("policy.{v}"));
            let st = std::process::Command::new("secilc")
                .args(["-c", &v.to_string(), "-o"])
                .arg(&out)
                .arg("-f")
                .arg(tmp.path().join("fc"))
                .arg(&base)
                .status()
                .unwrap();
            assert!(st.success());
            policies.push(out);
        }
    }
    for p in &policies {
        let names = PolicyNames::read(std::fs::File::open(p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(names.classes, seinfo_classes(p), "{}", p.display());
        let info = std::process::Command::new("seinfo")
            .arg(p)
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        let hu = info
            .lines()
            .find_map(|l| l.split("Handle unknown classes:").nth(1))
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            format!("{:?}", names.handle_unknown).to_lowercase(),
            hu,
            "{}",
            p.display()
        );
        assert!(names.types.contains("init_t"), "{}", p.display());
    }
}

/// `seinfo -c -x` and `seinfo --common -x`: each class with its own and
/// its common's permissions.
fn seinfo_classes(p: &std::path::Path) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let run = |what: &str| {
        let o = std::process::Command::new("seinfo")
            .args([what, "-x"])
            .arg(p)
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // "   class NAME" / "   common NAME", then "inherits C", then "{ perms }".
    let blocks = |text: &str, kw: &str| {
        let mut out: Vec<(String, Option<String>, BTreeSet<String>)> = Vec::new();
        for l in text.lines().map(str::trim) {
            if let Some(n) = l.strip_prefix(kw) {
                out.push((n.trim().to_string(), None, BTreeSet::new()));
            } else if let Some(c) = l.strip_prefix("inherits ") {
                out.last_mut().unwrap().1 = Some(c.trim().to_string());
            } else if !l.is_empty() && !l.contains(' ') && l != "{" && l != "}" {
                if let Some(last) = out.last_mut() {
                    last.2.insert(l.to_string());
                }
            }
        }
        out
    };
    let commons: std::collections::BTreeMap<String, BTreeSet<String>> =
        blocks(&run("--common"), "common ")
            .into_iter()
            .map(|(n, _, ps)| (n, ps))
            .collect();
    blocks(&run("-c"), "class ")
        .into_iter()
        .map(|(n, inh, mut ps)| {
            if let Some(c) = inh {
                ps.extend(commons[&c].iter().cloned());
            }
            (n, ps)
        })
        .collect()
}
