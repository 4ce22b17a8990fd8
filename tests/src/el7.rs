//! The real CentOS 7.7 userspace of `../shared/realdata` (rpm 4.11.3,
//! yum 3.4.3, glibc 2.17, python 2.7) extracted into a scratch root, and a
//! chroot into it with only `/dev/urandom` (and `/dev/null`) bound from the
//! host, as `../shared/realdata/README.md` measured: rpm 4.11 needs
//! urandom for NSS, nothing else. The mounts are undone when the value is
//! dropped, panics included.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Fixture;

/// An extracted EL7 userspace with its bind mounts.
pub struct El7 {
    pub fixture: Fixture,
    mounted: Vec<PathBuf>,
}

impl El7 {
    /// Extracts `shared/realdata/centos7-userspace.tar.xz` into a new root
    /// and makes its (empty) rpm database with its own rpm.
    pub fn new(shared: &Path) -> El7 {
        let fixture = Fixture::new();
        crate::run(
            Command::new("tar")
                .arg("-xJf")
                .arg(shared.join("realdata/centos7-userspace.tar.xz"))
                .arg("-C")
                .arg(fixture.path()),
        );
        let mut el7 = El7 {
            fixture,
            mounted: Vec::new(),
        };
        for dev in ["/dev/urandom", "/dev/null"] {
            let at = el7.fixture.host(dev);
            std::fs::write(&at, b"").expect("a mount point");
            let st = Command::new("mount")
                .args(["--bind", dev])
                .arg(&at)
                .status()
                .expect("mount runs");
            assert!(st.success(), "mount --bind {dev}");
            el7.mounted.push(at);
        }
        el7.ok(&["rpm", "--initdb"]);
        el7
    }

    pub fn path(&self) -> &Path {
        self.fixture.path()
    }

    /// Runs `args` inside the chroot with EL7's environment (`env -i`).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("chroot")
            .arg(self.path())
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
                "LANG=C",
            ])
            .args(args)
            .output()
            .expect("chroot runs")
    }

    /// [`El7::run`], which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "in the EL7 chroot: {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies `file` into the root's `/tmp`; its path inside.
    pub fn copy_in(&self, file: &Path) -> String {
        let name = file.file_name().expect("a file name").to_string_lossy();
        std::fs::copy(file, self.fixture.host(&format!("/tmp/{name}"))).expect("copy in");
        format!("/tmp/{name}")
    }

    /// Undoes the bind mounts now (before a snapshot of the tree).
    pub fn unmount(&mut self) {
        for at in self.mounted.drain(..).rev() {
            let _ = Command::new("umount").arg(&at).status();
            let _ = std::fs::remove_file(&at);
        }
    }
}

impl Drop for El7 {
    fn drop(&mut self) {
        self.unmount();
    }
}
