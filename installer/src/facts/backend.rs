//! Picks the package-family backend for a root. With
//! `fallback::access::for_os` (the family's archive access) the only place
//! that maps a family to an implementation; everything else holds a
//! `dyn PackageBackend`.

use connector_deb::DebBackend;
use connector_host::os::{Family, OsInfo};
use connector_host::pkg::PackageBackend;
use connector_host::Root;
use connector_rpm::RpmBackend;

/// The backend for `os` in `root`; `None` when the OS is unknown.
pub fn for_os(os: &OsInfo, root: &Root) -> Option<Box<dyn PackageBackend>> {
    Some(match (os.family()?, os.pkg_tool()?) {
        (Family::Rpm, tool) => Box::new(RpmBackend::new(root.clone(), tool)),
        (Family::Deb, _) => Box::new(DebBackend::new(root.clone())),
    })
}
