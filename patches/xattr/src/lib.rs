//! The one function of the xattr 0.2 API that async-tar calls, written
//! against libc's `setxattr(2)`.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in xattr name or path"))
}

/// Sets the extended attribute `name` of `path` (following symlinks) to `value`.
pub fn set<N: AsRef<OsStr>, P: AsRef<Path>>(path: P, name: N, value: &[u8]) -> io::Result<()> {
    let path = cstr(path.as_ref().as_os_str().as_bytes())?;
    let name = cstr(name.as_ref().as_bytes())?;
    // SAFETY: both strings are NUL-terminated and live across the call;
    // value points at value.len() readable bytes.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
