//! `selinux install` on a store that already holds the module: how many
//! policy rebuilds (semodule runs) and how long. Target (issue 4): zero
//! rebuilds, under 300 ms. Also the first install, for scale.
//!
//!     cargo run --release -p connector-policy --example bench-install -- [RUNS]

use std::time::{Duration, Instant};

use connector_host::Root;
use connector_policy::Store;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let f = connector_tests::selinux_root("default");
    let store = Store::open(&Root::new(f.path()).unwrap())
        .unwrap()
        .expect("configured");
    let t = Instant::now();
    let first = store
        .install(Duration::from_secs(60))
        .unwrap()
        .expect("first install runs semodule");
    let first_time = t.elapsed();
    let first_rebuilds = first.iter().filter(|c| c.starts_with("semodule")).count();
    let mut times = Vec::new();
    let mut rebuilds = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let ran = store.install(Duration::from_secs(60)).unwrap();
        times.push(t.elapsed());
        rebuilds += ran
            .map(|r| r.iter().filter(|c| c.starts_with("semodule")).count())
            .unwrap_or(0);
    }
    times.sort();
    println!(
        "first install: {} semodule run(s), {:.2} s",
        first_rebuilds,
        first_time.as_secs_f64()
    );
    println!(
        "re-run with the module present, {runs} runs: {rebuilds} semodule runs (target 0); \
         median {:.3} ms, max {:.3} ms (target < 300 ms)",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
}
