//! The SELinux policy module for the connector and the code that installs
//! and verifies it (`connector-installer selinux …`). Empty until the policy
//! issue; the crate exists so the workspace shows where it goes.
