//! The host model shared by the installer and the connector daemon: the
//! system root, what OS it holds, its kernels, whether their headers are
//! usable, and the fault model. Also the one command runner every external
//! tool goes through, and the backend trait the package families implement.
//!
//! Read-only by design: nothing in this crate writes to a root.

pub mod atomic;
pub mod cmd;
pub mod fault;
pub mod headers;
pub mod inventory;
pub mod kernel;
pub mod layout;
pub mod lock;
pub mod name;
pub mod os;
pub mod pkg;
pub mod root;
pub mod stamp;
pub mod status;
pub mod time;
pub mod vendor;
pub mod vercmp;

pub use cmd::{Cmd, CmdError};
pub use root::Root;
