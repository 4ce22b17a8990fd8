//! Builds the connector's `.rpm` and `.deb` (`cargo run -p connector-packaging`).
//! Empty until the packaging issue; the crate exists so the workspace shows
//! where it goes.
