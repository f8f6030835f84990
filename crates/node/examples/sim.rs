//! Runs the seeded multi-node simulation once and prints its report:
//! `cargo run --release -p sharegrid-node --example sim -- [SEED] [PROVIDERS] [JOBS] [TASKS]`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sharegrid_node::sim::{self, SimConfig};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("a number"));
    let seed = args.next().unwrap_or(1);
    let providers = args.next().unwrap_or(24) as usize;
    let jobs = args.next().unwrap_or(3) as usize;
    let tasks = args.next().unwrap_or(30) as usize;
    let t = std::time::Instant::now();
    let mut cfg = SimConfig::churn(seed, providers, jobs, tasks);
    if let Ok(l) = std::env::var("LIARS") {
        cfg.liars = l.parse().expect("LIARS");
        cfg.collude = std::env::var("COLLUDE").is_ok();
    }
    let r = sim::run(&cfg);
    println!("seed {seed}: {providers} providers, {jobs} jobs of {tasks} tasks (r = 2)");
    println!("  trace      {}", r.trace);
    println!(
        "  simulated  {:.1} s until every job was settled",
        r.ended_ms as f64 / 1e3
    );
    println!("  tasks      {} accepted, {} failed", r.accepted, r.failed);
    for f in &r.failures {
        println!("  failed     {f}");
    }
    println!(
        "  paid       {} (task, provider) pairs, ledger at block {}",
        r.paid, r.height
    );
    println!(
        "  network    {} events, {} messages, {} lost, {} crashes",
        r.stats.events, r.stats.messages, r.stats.lost, r.stats.crashes
    );
    println!("  wall time  {:.2} s", t.elapsed().as_secs_f64());
    if r.stats.violations.is_empty() {
        println!("  invariants hold");
    } else {
        for v in &r.stats.violations {
            println!("  VIOLATED   {v}");
        }
        std::process::exit(1);
    }
}
