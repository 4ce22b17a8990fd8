//! The command line: clap's definitions of every command and option, and
//! how `--root` is opened. [`run`] dispatches, one short arm per command;
//! [`error`] is the JSON error contract (docs/exit-codes.md).

mod error;
mod run;

pub use error::{error_kind, needs_root, ErrorDocument};
pub use run::run;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use connector_host::inventory::{foreign_running_kernel, running_release};
use connector_host::Root;

use crate::fallback::{bundle, bundle_build};
use crate::install::{self, headers};

/// Installs the connector, the kernel headers its eBPF probes need and the
/// SELinux policy that lets them run; diagnoses and repairs fault 11.
#[derive(Debug, Parser)]
#[command(
    name = "connector-installer",
    long_about = paragraphs(TOP_ABOUT),
    version,
    long_version = env!("CONNECTOR_LONG_VERSION"),
    max_term_width = 80
)]
pub struct Cli {
    /// Show every external command run (-v), and more (-vv)
    #[arg(
        short,
        long,
        action = clap::ArgAction::Count,
        global = true,
        help_heading = "Global options"
    )]
    pub verbose: u8,

    /// Print nothing but errors and warnings (no progress lines)
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub(crate) quiet: bool,

    /// System root to work on (a golden image, a chroot); default: this
    /// host. Accepted before or after the subcommand
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/",
        global = true,
        help_heading = "Global options"
    )]
    pub(crate) root: PathBuf,

    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Whether the command asked for one JSON document on stdout.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Doctor(a) => a.format() == DoctorFormat::Json && a.output.is_none(),
            Command::Headers(a) => a.json,
            Command::Selinux(a) => match &a.action {
                SelinuxAction::Install(o) | SelinuxAction::Remove(o) => o.json,
                SelinuxAction::Status(o) => o.json,
            },
            Command::Laydown(a) => a.json,
            Command::Install(a) => a.json,
            Command::Repair(a) => a.json,
            Command::Uninstall(a) => a.json,
            Command::Bundle(a) => a.json,
            Command::Hook(_) => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Diagnose a host or image: kernels, header packages, faults (read-only)
    #[command(long_about = paragraphs(DOCTOR_ABOUT))]
    Doctor(DoctorArgs),

    /// Install the exact kernel header package of every eBPF kernel
    #[command(long_about = paragraphs(HEADERS_ABOUT))]
    Headers(HeadersArgs),

    /// Install, remove or check the SELinux module for the eBPF probes
    #[command(long_about = paragraphs(SELINUX_ABOUT))]
    Selinux(SelinuxArgs),

    /// Lay the connector's files down from a verified payload directory
    #[command(long_about = paragraphs(LAYDOWN_ABOUT))]
    Laydown(LaydownArgs),

    /// Install everything: files, headers of every kernel, SELinux, service
    #[command(long_about = paragraphs(INSTALL_ABOUT))]
    Install(InstallArgs),

    /// Diagnose, fix every fault, restart, wait for the connector to agree
    #[command(long_about = paragraphs(REPAIR_ABOUT))]
    Repair(RepairArgs),

    /// Remove what `install --payload` laid down (not a packaged connector)
    #[command(long_about = paragraphs(UNINSTALL_ABOUT))]
    Uninstall(UninstallArgs),

    /// Download the header packages a fleet needs into a verified bundle
    #[command(long_about = paragraphs(BUNDLE_ABOUT))]
    Bundle(BundleArgs),

    /// Called by the connector's package scriptlets (never fails them)
    #[command(long_about = paragraphs(HOOK_ABOUT))]
    Hook(HookArgs),
}

const TOP_ABOUT: &str = "\
Installs the connector, the kernel headers its eBPF probes need and the
SELinux policy that lets them run; diagnoses and repairs fault 11.

The connector compiles its eBPF probe against the running kernel's headers at
every start and loads it from the connectord_t domain. connector-installer
installs the exact header package of every kernel that will run
(kernel-devel, kernel-uek-devel, linux-headers), from the repositories or,
verified, from the vendor's archive, and the SELinux module that lets
connectord_t load BPF programs. doctor says what is wrong and the command
that fixes it; repair runs that command. It is run by the connector's
package scriptlets and the kernels' hooks, in golden-image builds (--root),
by hand and by fleet tools; every command can print one JSON document
(--json).";

/// A long help text as written in the source (hand-wrapped, paragraphs
/// apart) made into one line per paragraph, for clap to wrap at the
/// terminal's width and the manual pages to fill: a hand-wrapped line never
/// breaks mid-sentence when a line is edited. Indented lines (lists) stay
/// as they are.
pub(crate) fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|p| {
            if p.lines().any(|l| l.starts_with(' ')) {
                p.to_string()
            } else {
                p.lines().map(str::trim).collect::<Vec<_>>().join(" ")
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

const HOOK_ABOUT: &str = "\
Called by the connector's package scriptlets and by the kernel packages'
hooks, never by hand; it never fails the package transaction (it exits 0
and warns on stderr), and never waits on the package manager's lock: the
work that needs it (header packages) is recorded and done by
connector-setup.service once the transaction is over.

The connector's scriptlets: rpm-post, rpm-preun, rpm-postun, rpm-posttrans
(rpm, with rpm's count argument) and deb-postinst, deb-prerm, deb-postrm
(dpkg, with dpkg's action arguments).

The kernels' hooks, run when a kernel package is installed:
kernel-postinst VERSION [IMAGE] (/etc/kernel/postinst.d/connector: Debian,
Ubuntu, EL7, Amazon Linux 2) and kernel-install add VERSION ... (the
kernel-install plugin 90-connector.install: EL8 and later). Each records the
new kernel's headers as pending work unless they are already installed.

Exit status: 0 always.";

const BUNDLE_ABOUT: &str = "\
Download, for sites that reach no vendor mirror, the exact header package of
every kernel a fleet runs into DIR: the kernels come from doctor --json
documents collected from the hosts (--doctor, any number) or from --kernel
releases of the distribution --os names. Each package is found through the
same archives as `headers` (archives.conf, then the vendor's) and verified
end to end. The bundle holds per distribution the packages with metadata
dnf and apt read (createrepo_c, a Packages index) and a manifest with every
file's digest and origin, signed with --sign-key when the site gives one.
Running it again over DIR downloads only what is missing.

Use it with `headers --from DIR` (or `bundle DIR` in archives.conf, for the
package hooks), which verify the manifest before using a file.

Exit status: 0 every package is in the bundle, 1 some could not be found,
2 the command could not run.";

#[derive(Debug, Args)]
pub(crate) struct BundleArgs {
    /// The bundle directory (created; completed when it exists)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// A doctor --json document of a host (the Ansible facts
    /// connector_doctor); every eBPF kernel in it is covered
    #[arg(long, value_name = "FILE")]
    pub doctor: Vec<PathBuf>,

    /// The distribution of the --kernel releases: ID:VERSION[:CODENAME] as
    /// os-release says (rhel:8.9, debian:12:bookworm)
    #[arg(long, value_name = "ID:VERSION", requires = "kernel")]
    pub os: Option<String>,

    /// A kernel release to cover (as `uname -r` prints it); needs --os
    #[arg(long, value_name = "VER", requires = "os", value_parser = kernel_release)]
    pub kernel: Vec<String>,

    /// The site's secret OpenPGP key (armored) to sign the manifest with
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub sources: SourceArgs,
}

const INSTALL_ABOUT: &str = "\
Install the connector on this host or into an image (--root): lay its files
down (--payload), install the SELinux module and label its files, install
the exact header package of every installed kernel (any of them may boot),
enable connectord.service and, on a running systemd, start it.

One plan is computed first (--dry-run prints it and changes nothing), then
run step by step under /var/lib/connector/installer.lock, each step
recorded in /var/lib/connector/install.journal: a run that was killed is
resumed by the next. On a healthy root the plan is empty and nothing is
written. Run inside a chroot or container of an image, the running kernel
is recognised as the build host's and the root is treated as an image.

--prepare-image (an image only) also clears the connector's per-host state
(agent id, status, logs) so that clones do not share it.

Exit status: 0 done, 1 a step failed (the rest ran; see the report), 2 could
not run (nothing changed), 3 unsupported system, 4 headers deferred until
the package transaction is over.";

/// A kernel release as the command line names it: the characters a
/// distribution uses, no `/` or `..` (`connector_host::name`).
fn kernel_release(s: &str) -> Result<String, String> {
    connector_host::name::check("kernel release", s).map(|()| s.to_string())
}

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// Only this kernel's headers (default: every installed kernel)
    #[arg(long, value_name = "VER", conflicts_with = "all_kernels", value_parser = kernel_release)]
    pub kernel: Option<String>,

    /// Headers for every installed kernel (the default)
    #[arg(long)]
    pub all_kernels: bool,

    /// Lay the connector's files down from DIR (manifest + files/)
    #[arg(long, value_name = "DIR")]
    pub payload: Option<PathBuf>,

    /// Print the plan, change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON document on stdout (schema: /usr/share/doc/connector/lifecycle.md)
    #[arg(long)]
    pub json: bool,

    /// Golden image: clear the connector's per-host state
    #[arg(long)]
    pub prepare_image: bool,

    /// Enable the service but do not start it
    #[arg(long)]
    pub no_start: bool,

    /// Wait for a running package transaction to finish first (the
    /// after-transaction job that package hooks start)
    #[arg(long)]
    pub after_transaction: bool,

    #[command(flatten)]
    pub sources: SourceArgs,
}

const REPAIR_ABOUT: &str = "\
Run doctor, fix every fault it can (headers, SELinux module, labels, the
service), restart the connector, then wait for the connector's own status
(/var/lib/connector/status.json) to report no fault, and say what was done
and what is left.

Exit status: 0 repaired (no fault left), 1 faults left (listed), 2 could not
run.";

#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    /// Say what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to wait for the connector to report (default: 60 on this
    /// host, 0 for another root)
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub sources: SourceArgs,
}

const UNINSTALL_ABOUT: &str = "\
Stop and disable connectord, remove the SELinux module and the files
`install --payload` laid down (as recorded in
/var/lib/connector/installed.manifest). Configuration changed locally is
kept unless --purge, which also removes /etc/connector, the state and the
logs. A connector installed by its package is removed with the package
manager instead (this says which command).

Exit status: 0 removed (or nothing was there), 2 refused (installed by a
package, or what was laid down cannot be told) or could not run.";

#[derive(Debug, Args)]
pub(crate) struct UninstallArgs {
    /// Say what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Also remove configuration, state and logs
    #[arg(long)]
    pub purge: bool,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,

    /// Seconds to wait for the policy-store lock
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub lock_timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct HookArgs {
    /// rpm-post, rpm-preun, rpm-postun, rpm-posttrans, deb-postinst,
    /// deb-prerm, deb-postrm, kernel-postinst or kernel-install
    pub name: String,

    /// The scriptlet's own arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

const LAYDOWN_ABOUT: &str = "\
Lay the connector's files down into the root from PAYLOAD (PAYLOAD/manifest
listing kind, mode, sha256 and path; PAYLOAD/files/PATH). Every digest and
every destination is checked before anything is written; files are written
to a temporary name, labeled, synced and renamed. Changed configuration in
/etc/connector is kept (the shipped version goes beside it as .new). The
unit is enabled but nothing is started.

Exit status: 0 laid down, 2 refused (a bad payload, an unsafe root, no
room) with nothing changed.";

#[derive(Debug, Args)]
pub(crate) struct LaydownArgs {
    /// Say what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// The payload directory (manifest + files/)
    #[arg(long, value_name = "DIR")]
    pub payload: PathBuf,

    /// Do not enable connectord.service
    #[arg(long)]
    pub no_enable: bool,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

const SELINUX_ABOUT: &str = "\
Install, remove or check the SELinux policy module that lets the connector's
domain (connectord_t) load its eBPF probes. The store and policy type come
from ROOT/etc/selinux/config; with SELinux disabled or not configured there
is nothing to do. Install is one policy rebuild (semodule -X 200), skipped
when the store already holds this module; load_policy runs only on the
running system. Then the connector's files whose labels differ from the
root's file contexts are relabeled, in process (no tool runs; a healthy
re-run writes nothing). status asks the running kernel whether
connectord_t may load BPF programs and open perf events.

Exit status: 0 done (or nothing to do), 1 status found a problem,
2 the command failed (the reason is printed).";

#[derive(Debug, Args)]
pub(crate) struct SelinuxArgs {
    #[command(subcommand)]
    pub action: SelinuxAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SelinuxAction {
    /// Install or upgrade the module and label the connector's files
    Install(SelinuxOpts),
    /// Remove the module (a no-op when it is not installed)
    Remove(SelinuxOpts),
    /// Report the module, the kernel's answer and recent denials
    Status(StatusOpts),
}

/// `selinux status` changes nothing and takes no lock: only `--json`.
#[derive(Debug, Args)]
pub(crate) struct StatusOpts {
    /// Print one JSON document on stdout (schema: /usr/share/doc/connector/selinux.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SelinuxOpts {
    /// Say what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON document on stdout (schema: /usr/share/doc/connector/selinux.md)
    #[arg(long)]
    pub json: bool,

    /// Seconds to wait for the policy store lock held by another process
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub lock_timeout: u64,
}

const HEADERS_ABOUT: &str = "\
Install exactly the header package (kernel-devel, kernel-uek-devel,
linux-headers) of every kernel on the eBPF path whose headers are not usable,
through the system's own package manager, in one transaction. When the
repositories no longer carry that build, it is fetched from the vendor's
archive (or --from DIR) and verified end to end before it is installed. On
Debian and Ubuntu the kernel flavour's headers meta package comes along, so
that future kernels bring their headers. Kernels that are fine cause no transaction.

Inside a package transaction (a scriptlet) nothing is installed: the work is
reported as deferred. A package lock held by another process is waited for,
up to --lock-timeout.

Exit status: 0 every eBPF kernel has headers, 1 some kernel is left without,
2 the command could not run, 3 unsupported system, 4 deferred.";

#[derive(Debug, Args)]
pub(crate) struct HeadersArgs {
    /// Only this kernel release (as `uname -r` prints it)
    #[arg(long, value_name = "VER", value_parser = kernel_release)]
    pub kernel: Option<String>,

    /// Print the exact commands, change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON document on stdout (schema: /usr/share/doc/connector/headers.md)
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub sources: SourceArgs,

    /// Called from a package scriptlet: defer, never call the package manager
    #[arg(long, hide = true)]
    pub in_transaction: bool,
}

const DOCTOR_ABOUT: &str = "\
Diagnose a host or a system image, read-only: the OS, every kernel that will
run, the probe the connector uses on each (eBPF or kernel module), the exact
header package each eBPF kernel needs, whether it is usable on disk and
installed, and every fault 11 with the command that fixes it.

Exit status: 0 healthy, 1 faults found, 2 the diagnosis could not run,
3 the system is not supported by the connector.";

#[derive(Debug, Clone)]
pub(crate) struct RootArg {
    pub root: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Diagnose only this kernel release (as `uname -r` prints it)
    #[arg(long, value_name = "VER", value_parser = kernel_release)]
    pub kernel: Option<String>,

    /// Print one JSON document on stdout (schema: /usr/share/doc/connector/doctor.md); the
    /// same as --format json
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// text (for people), json (/usr/share/doc/connector/doctor.md) or prometheus
    /// (node_exporter textfile metrics, /usr/share/doc/connector/metrics.md)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<DoctorFormat>,

    /// Write the report to FILE (replaced atomically: for node_exporter's
    /// textfile directory) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// How doctor prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DoctorFormat {
    Text,
    Json,
    Prometheus,
}

impl DoctorArgs {
    /// The format asked for, `--json` included.
    pub fn format(&self) -> DoctorFormat {
        match (self.json, self.format) {
            (true, _) => DoctorFormat::Json,
            (false, Some(f)) => f,
            (false, None) => DoctorFormat::Text,
        }
    }
}

/// Where header packages come from and how long to wait for them: shared
/// by `headers`, `install` and `repair`.
#[derive(Debug, Args)]
pub(crate) struct SourceArgs {
    /// Seconds to wait for a package (or policy-store) lock held by
    /// another process
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub lock_timeout: u64,

    /// Archive list to use instead of ROOT/etc/connector/archives.conf
    #[arg(long, value_name = "FILE")]
    pub archives: Option<PathBuf>,

    /// Take packages the repositories lack from DIR (verified), not the network
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,

    /// Seconds of silence after which an archive download is given up; also
    /// the window --download-min-rate is averaged over
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub download_timeout: u64,

    /// Slowest average rate of an archive download (0: no minimum)
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = 1000)]
    pub download_min_rate: u64,

    /// Longest time one archive download may take, retries included
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub download_max_time: u64,
}

impl SourceArgs {
    /// `--archives FILE` read and checked before anything else runs (a
    /// FIFO, a device, a huge or malformed file is refused at once, exit 2).
    /// `bundle` reads it here; the commands that gather facts, with them
    /// (`Facts::gather_for`).
    fn check(&self) -> Result<()> {
        if let Some(f) = &self.archives {
            crate::facts::archives_conf::ArchiveConfig::load(&Root::live(), Some(f))?;
        }
        Ok(())
    }

    fn apply(&self, opts: &mut install::InstallOptions) {
        opts.lock_timeout = Duration::from_secs(self.lock_timeout);
        opts.downloads = self.limits();
        opts.archives = self.archives.clone();
        opts.from = self.from.clone();
    }

    fn limits(&self) -> headers::DownloadLimits {
        headers::DownloadLimits {
            timeout: std::time::Duration::from_secs(self.download_timeout),
            min_rate: self.download_min_rate,
            max_time: std::time::Duration::from_secs(self.download_max_time),
        }
    }
}

/// Opens `--root`, with a message that names the flag.
pub(crate) fn open_root(arg: &RootArg) -> Result<Root> {
    Root::new(&arg.root).map_err(|source| {
        error::BadRoot {
            path: arg.root.clone(),
            source,
        }
        .into()
    })
}

/// Opens `--root` for a command that acts on it (install, repair, headers,
/// selinux install/remove, laydown, uninstall, the hooks): `/` inside a
/// chroot or a container whose running kernel is not installed there is an
/// image being built (every installed kernel, nothing started, no policy
/// loaded into the build host's kernel, `systemctl --root`). `doctor` and
/// `selinux status` keep describing `/` as it is, with the note about the
/// foreign kernel. One rule for every acting command (issue 13, class 10).
pub(crate) fn open_root_to_act(arg: &RootArg) -> Result<Root> {
    let root = open_root(arg)?;
    if root.is_live() {
        if let Ok(running) = running_release() {
            if let Some(why) = foreign_running_kernel(&root, &running) {
                crate::output::say(&why);
                return Ok(root.as_image());
            }
        }
    }
    Ok(root)
}

/// The running kernel when the root is the live system.
pub(crate) fn running_for(root: &Root) -> Result<Option<String>> {
    if root.is_live() {
        Ok(Some(
            running_release().context("reading the running kernel's release")?,
        ))
    } else {
        Ok(None)
    }
}

impl InstallArgs {
    /// The options of `install` on `root`.
    fn options(&self, root: Root) -> Result<install::InstallOptions> {
        if self.prepare_image && root.is_live() {
            anyhow::bail!(
                "--prepare-image clears this host's own connector state: it is for an image \
                 (--root DIR, or a chroot of one)"
            );
        }
        let running = running_for(&root)?;
        let mut opts = install::InstallOptions::new(root, running);
        opts.kernel = self.kernel.clone();
        opts.payload = self.payload.clone();
        opts.dry_run = self.dry_run;
        opts.prepare_image = self.prepare_image;
        opts.start = !self.no_start;
        opts.after_transaction = self.after_transaction;
        self.sources.apply(&mut opts);
        Ok(opts)
    }
}

impl RepairArgs {
    /// The options of the install `repair` runs on `root`.
    fn options(&self, root: Root) -> Result<install::InstallOptions> {
        let running = running_for(&root)?;
        let mut opts = install::InstallOptions::new(root, running);
        self.sources.apply(&mut opts);
        opts.dry_run = self.dry_run;
        Ok(opts)
    }
}

impl HeadersArgs {
    /// The options of `headers` on `root`.
    fn options(&self, root: Root) -> Result<headers::HeadersOptions> {
        Ok(headers::HeadersOptions {
            running: running_for(&root)?,
            root,
            kernel: self.kernel.clone(),
            dry_run: self.dry_run,
            in_transaction: self.in_transaction,
            lock_timeout: Duration::from_secs(self.sources.lock_timeout),
            downloads: self.sources.limits(),
            archives: self.sources.archives.clone(),
            from: self.sources.from.clone(),
        })
    }
}

impl BundleArgs {
    /// The options of `bundle`: the targets from `--doctor FILE`s and
    /// `--os`/`--kernel`, at least one.
    fn options(&self) -> Result<bundle_build::BundleOptions> {
        self.sources.check()?;
        let mut targets = Vec::new();
        for f in &self.doctor {
            targets.extend(bundle::read_doctor(f)?);
        }
        if let Some(os) = &self.os {
            let os = bundle::parse_os(os)?;
            targets.extend(self.kernel.iter().map(|k| bundle::Target {
                os: os.clone(),
                release: k.clone(),
                package: None,
            }));
        }
        if targets.is_empty() {
            anyhow::bail!("no kernel to cover: give --doctor FILE or --os ID:VERSION --kernel VER");
        }
        Ok(bundle_build::BundleOptions {
            out: self.out.clone(),
            targets,
            archives: self.sources.archives.clone(),
            sign_key: self.sign_key.clone(),
            limits: self.sources.limits(),
        })
    }
}
