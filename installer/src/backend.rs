//! Picks the package-family backend for a root. The only place that maps a
//! family to an implementation; everything else holds a `dyn PackageBackend`.

use connector_deb::DebBackend;
use connector_host::os::{Family, OsInfo};
use connector_host::pkg::PackageBackend;
use connector_host::Root;
use connector_rpm::RpmBackend;

/// The archive access of the family of `os`; `None` where the family has
/// no archive fallback yet.
pub fn archive_for_os(os: &OsInfo, root: &Root) -> Option<Box<dyn crate::archive::ArchiveBackend>> {
    match os.family()? {
        Family::Rpm => Some(Box::new(crate::archive::RpmArchive { root: root.clone() })),
        Family::Deb => Some(Box::new(crate::archive::DebArchiveBackend {
            root: root.clone(),
            codename: os.codename.clone(),
        })),
    }
}

/// The backend for `os` in `root`; `None` when the OS is unknown.
pub fn for_os(os: &OsInfo, root: &Root) -> Option<Box<dyn PackageBackend>> {
    Some(match (os.family()?, os.pkg_tool()?) {
        (Family::Rpm, tool) => Box::new(RpmBackend::new(root.clone(), tool)),
        (Family::Deb, _) => Box::new(DebBackend::new(root.clone())),
    })
}
