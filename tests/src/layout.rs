//! Kernel and header layouts, as the distributions' packages lay them out.

use crate::packages::Pkg;

/// One filesystem entry, path absolute inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        path: String,
        contents: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    pub fn file(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Entry {
        Entry::File {
            path: path.into(),
            contents: contents.into(),
            mode: 0o644,
        }
    }
    pub fn dir(path: impl Into<String>) -> Entry {
        Entry::Dir { path: path.into() }
    }
    pub fn link(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Dir { path } | Entry::Symlink { path, .. } => path,
        }
    }
}

/// How a distribution lays out a kernel and its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// EL8+/OL8+/AL2023: `vmlinuz` inside `lib/modules/K`; kernel-core owns
    /// the `build` link, so it dangles until kernel-devel is installed.
    El8,
    /// EL7/OL7/Amazon Linux 2: `boot/vmlinuz-K`; the `build` link is owned by
    /// the kernel package too.
    El7,
    /// Debian: the `build` link comes with linux-headers-K; the flavour tree
    /// is a wrapper around linux-headers-V-common and linux-kbuild-V.
    Debian,
    /// Ubuntu: like Debian, but the common package is linux-headers-V-ABI
    /// and the flavour tree links its Makefile into it.
    Ubuntu,
}

/// A kernel release and its layout.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub release: String,
    pub layout: Layout,
    /// The kernel's architecture, as kbuild names it (`x86`, `arm64`): its
    /// trees' `arch/<arch>/` and configuration.
    pub arch: &'static str,
}

impl Kernel {
    /// The architecture is the one the release names (`.aarch64`,
    /// `-arm64`), else x86.
    pub fn new(release: &str, layout: Layout) -> Kernel {
        let arch = connector_host::kernel::release_arch(release)
            .and_then(|a| connector_host::kernel::kbuild_arch(&a))
            .unwrap_or("x86");
        Kernel {
            release: release.to_string(),
            layout,
            arch,
        }
    }

    /// The same kernel built for `arch` (kbuild's name): for releases that
    /// do not say (Ubuntu's `-generic`).
    pub fn with_arch(mut self, arch: &'static str) -> Kernel {
        self.arch = arch;
        self
    }

    /// The configuration symbol of the architecture.
    fn arch_symbol(&self) -> &'static str {
        match self.arch {
            "arm64" => "CONFIG_ARM64",
            "powerpc" => "CONFIG_PPC64",
            "s390" => "CONFIG_S390",
            _ => "CONFIG_X86_64",
        }
    }

    /// `4.18.0` of `4.18.0-513.5.1.el8_9.x86_64`.
    fn upstream(&self) -> &str {
        self.release.split('-').next().unwrap_or(&self.release)
    }

    /// `6.1` of `6.1.0-18-amd64` (the linux-kbuild version).
    fn kbuild(&self) -> String {
        self.upstream()
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// `6.1.0-18` of `6.1.0-18-amd64`.
    fn abi(&self) -> String {
        self.release
            .splitn(3, '-')
            .take(2)
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The files of the kernel package(s) (no headers).
    pub fn kernel_files(&self) -> Vec<Entry> {
        let k = &self.release;
        let m = format!("/lib/modules/{k}");
        let mut e = vec![
            Entry::dir(format!("{m}/kernel/drivers")),
            Entry::file(format!("{m}/kernel/drivers/dummy.ko"), b"\x7fELF"),
            Entry::file(format!("{m}/modules.order"), "kernel/drivers/dummy.ko\n"),
        ];
        match self.layout {
            Layout::El8 => {
                e.push(Entry::file(format!("{m}/vmlinuz"), b"MZ kernel image"));
                e.push(Entry::link(
                    format!("{m}/build"),
                    format!("/usr/src/kernels/{k}"),
                ));
                e.push(Entry::link(format!("{m}/source"), "build"));
            }
            Layout::El7 => {
                e.push(Entry::file(
                    format!("/boot/vmlinuz-{k}"),
                    b"MZ kernel image",
                ));
                e.push(Entry::link(
                    format!("{m}/build"),
                    format!("/usr/src/kernels/{k}"),
                ));
                e.push(Entry::link(format!("{m}/source"), "build"));
            }
            Layout::Debian | Layout::Ubuntu => {
                e.push(Entry::file(
                    format!("/boot/vmlinuz-{k}"),
                    b"MZ kernel image",
                ));
                e.push(Entry::file(
                    format!("/boot/config-{k}"),
                    format!("{}=y\nCONFIG_BPF=y\n", self.arch_symbol()),
                ));
            }
        }
        e
    }

    /// What the probe's compile reads from a build tree (`host::headers`).
    fn build_tree_files(t: &str, k: &str, arch: &str) -> Vec<Entry> {
        vec![
            Entry::file(
                format!("{t}/include/generated/uapi/linux/version.h"),
                "#define LINUX_VERSION_CODE 0x041200\n",
            ),
            Entry::file(
                format!("{t}/arch/{arch}/include/generated/uapi/asm/types.h"),
                format!("/* {k} */\n"),
            ),
        ]
    }

    /// What the probe's compile reads from a source tree: small, but real
    /// C, so connectord's real compile (clang -target bpf) succeeds against
    /// a fixture tree as against a distribution's.
    fn source_tree_files(t: &str, arch: &str) -> Vec<Entry> {
        [
            ("include/linux/kconfig.h", "#include <generated/autoconf.h>\n"),
            (
                "include/uapi/linux/types.h",
                "typedef unsigned int __u32;\ntypedef unsigned long long __u64;\n",
            ),
            ("include/uapi/linux/limits.h", "#define PATH_MAX 4096\n"),
            (
                "include/uapi/linux/bpf.h",
                "enum bpf_map_type { BPF_MAP_TYPE_ARRAY = 2 };\nenum bpf_func_id { BPF_FUNC_map_lookup_elem = 1 };\n",
            ),
            ("arch/{arch}/include/asm/posix_types.h", "/* header */\n"),
            ("arch/{arch}/include/uapi/asm/posix_types_64.h", "/* header */\n"),
        ]
        .iter()
        .map(|(f, body)| Entry::file(format!("{t}/{}", f.replace("{arch}", arch)), *body))
        .collect()
    }

    /// The files of the header package(s) for this kernel, as installed.
    pub fn header_files(&self) -> Vec<Entry> {
        let k = &self.release;
        let autoconf = format!(
            "#define {} 1\n#define CONFIG_BPF 1\n#define CONFIG_BPF_SYSCALL 1\n#define CONFIG_KPROBES 1\n",
            self.arch_symbol()
        );
        let uts = format!("#define UTS_RELEASE \"{k}\"\n");
        match self.layout {
            Layout::El8 | Layout::El7 => {
                let t = format!("/usr/src/kernels/{k}");
                let (v, p, s) = {
                    let mut it = self.upstream().split('.');
                    (
                        it.next().unwrap_or("0").to_string(),
                        it.next().unwrap_or("0").to_string(),
                        it.next().unwrap_or("0").to_string(),
                    )
                };
                vec![
                    Entry::file(
                        format!("{t}/Makefile"),
                        format!("VERSION = {v}\nPATCHLEVEL = {p}\nSUBLEVEL = {s}\nEXTRAVERSION =\nNAME = fixture\n"),
                    ),
                    Entry::file(format!("{t}/.config"), "CONFIG_BPF=y\n"),
                    Entry::file(format!("{t}/Module.symvers"), ""),
                    Entry::file(format!("{t}/include/generated/autoconf.h"), autoconf.clone()),
                    Entry::file(format!("{t}/include/generated/utsrelease.h"), uts),
                    Entry::file(format!("{t}/include/config/kernel.release"), format!("{k}\n")),
                    Entry::file(format!("{t}/include/linux/bpf.h"), "/* bpf */\n"),
                    Entry::file(format!("{t}/scripts/Makefile.build"), "# kbuild\n"),
                    Entry::file(format!("{t}/arch/{}/Makefile", self.arch), "# arch\n"),
                ]
                .into_iter()
                .chain(Self::build_tree_files(&t, k, self.arch))
                .chain(Self::source_tree_files(&t, self.arch))
                .collect()
            }
            Layout::Debian => {
                let t = format!("/usr/src/linux-headers-{k}");
                let common = format!("/usr/src/linux-headers-{}-common", self.abi());
                let kb = format!("/usr/lib/linux-kbuild-{}", self.kbuild());
                vec![
                    // linux-headers-K
                    Entry::link(format!("/lib/modules/{k}/build"), t.clone()),
                    Entry::link(format!("/lib/modules/{k}/source"), common.clone()),
                    Entry::file(
                        format!("{t}/Makefile"),
                        format!("include {common}/Makefile\n"),
                    ),
                    Entry::file(format!("{t}/.config"), "CONFIG_BPF=y\n"),
                    Entry::file(format!("{t}/Module.symvers"), ""),
                    Entry::file(
                        format!("{t}/include/generated/autoconf.h"),
                        autoconf.clone(),
                    ),
                    Entry::file(format!("{t}/include/generated/utsrelease.h"), uts),
                    // Debian records the upstream version here, not the release.
                    Entry::file(
                        format!("{t}/include/config/kernel.release"),
                        format!("{}\n", self.upstream()),
                    ),
                    Entry::link(
                        format!("{t}/scripts"),
                        format!("../../lib/linux-kbuild-{}/scripts", self.kbuild()),
                    ),
                    Entry::link(
                        format!("{t}/tools"),
                        format!("../../lib/linux-kbuild-{}/tools", self.kbuild()),
                    ),
                    // linux-headers-V-common
                    Entry::file(format!("{common}/Makefile"), "VERSION = 6\n"),
                    Entry::file(format!("{common}/include/linux/bpf.h"), "/* bpf */\n"),
                    Entry::link(
                        format!("{common}/scripts"),
                        format!("../../lib/linux-kbuild-{}/scripts", self.kbuild()),
                    ),
                    // linux-kbuild-V
                    Entry::file(format!("{kb}/scripts/Makefile.build"), "# kbuild\n"),
                    Entry::dir(format!("{kb}/tools")),
                ]
                .into_iter()
                .chain(Self::build_tree_files(&t, k, self.arch))
                .chain(Self::source_tree_files(&common, self.arch))
                .collect()
            }
            Layout::Ubuntu => {
                let t = format!("/usr/src/linux-headers-{k}");
                let common = format!("/usr/src/linux-headers-{}", self.abi());
                vec![
                    // linux-headers-K
                    Entry::link(format!("/lib/modules/{k}/build"), t.clone()),
                    Entry::link(
                        format!("{t}/Makefile"),
                        format!("../linux-headers-{}/Makefile", self.abi()),
                    ),
                    Entry::file(format!("{t}/.config"), "CONFIG_BPF=y\n"),
                    Entry::file(format!("{t}/Module.symvers"), ""),
                    Entry::file(
                        format!("{t}/include/generated/autoconf.h"),
                        autoconf.clone(),
                    ),
                    Entry::file(format!("{t}/include/generated/utsrelease.h"), uts),
                    Entry::file(format!("{t}/scripts/Makefile.build"), "# kbuild\n"),
                    // linux-headers-V-ABI (all)
                    Entry::file(format!("{common}/Makefile"), "VERSION = 5\n"),
                    Entry::file(format!("{common}/include/linux/bpf.h"), "/* bpf */\n"),
                ]
                .into_iter()
                .chain(Self::build_tree_files(&t, k, self.arch))
                // Ubuntu's flavour tree links the common tree's directories.
                .chain(Self::source_tree_files(&t, self.arch))
                .collect()
            }
        }
    }

    /// The header packages of this kernel, split as the distribution ships
    /// them: one `kernel-devel`/`kernel-uek-devel` on the RPM side;
    /// `linux-headers-K` + `linux-headers-V-common` + `linux-kbuild-V` on
    /// Debian; `linux-headers-K` + `linux-headers-V-ABI` on Ubuntu.
    pub fn header_packages(&self) -> Vec<Pkg> {
        let k = &self.release;
        let files = self.header_files();
        match self.layout {
            Layout::El8 | Layout::El7 => {
                let (ver, rest) = k.split_once('-').expect("rpm release has a dash");
                let (rel, arch) = rest.rsplit_once('.').expect("rpm release has an arch");
                let name = if k.contains("uek") {
                    "kernel-uek-devel"
                } else {
                    "kernel-devel"
                };
                vec![Pkg::new(name, ver, rel, arch, files)]
            }
            Layout::Debian | Layout::Ubuntu => {
                let ver = format!("{}-1", self.upstream());
                let (own, rest): (Vec<Entry>, Vec<Entry>) = files
                    .into_iter()
                    .partition(|e| e.path().contains(k.as_str()));
                let own = Pkg::new(&format!("linux-headers-{k}"), &ver, "", "amd64", own);
                let mut pkgs = Vec::new();
                if self.layout == Layout::Debian {
                    let kb = format!("/usr/lib/linux-kbuild-{}", self.kbuild());
                    let (kbuild, common): (Vec<Entry>, Vec<Entry>) =
                        rest.into_iter().partition(|e| e.path().starts_with(&kb));
                    let common_name = format!("linux-headers-{}-common", self.abi());
                    let kbuild_name = format!("linux-kbuild-{}", self.kbuild());
                    pkgs.push(
                        own.depends(format!("{common_name} (= {ver})"))
                            .depends(format!("{kbuild_name} (>= {ver})")),
                    );
                    pkgs.push(Pkg::new(&common_name, &ver, "", "all", common));
                    pkgs.push(Pkg::new(&kbuild_name, &ver, "", "amd64", kbuild));
                } else {
                    let common_name = format!("linux-headers-{}", self.abi());
                    pkgs.push(own.depends(format!("{common_name} (= {ver})")));
                    pkgs.push(Pkg::new(&common_name, &ver, "", "all", rest));
                }
                // Dependencies first, as a package manager would unpack them.
                pkgs.reverse();
                pkgs
            }
        }
    }

    /// The kernel package itself (`kernel-core`, `kernel`, `linux-image-K`).
    pub fn kernel_package(&self) -> Pkg {
        let k = &self.release;
        let files = self.kernel_files();
        match self.layout {
            Layout::El8 | Layout::El7 => {
                let (ver, rest) = k.split_once('-').expect("rpm release has a dash");
                let (rel, arch) = rest.rsplit_once('.').expect("rpm release has an arch");
                let name = match (self.layout, k.contains("uek")) {
                    (_, true) => "kernel-uek-core",
                    (Layout::El8, false) => "kernel-core",
                    _ => "kernel",
                };
                Pkg::new(name, ver, rel, arch, files)
            }
            Layout::Debian | Layout::Ubuntu => Pkg::new(
                &format!("linux-image-{k}"),
                &format!("{}-1", self.upstream()),
                "",
                "amd64",
                files,
            ),
        }
    }
}
