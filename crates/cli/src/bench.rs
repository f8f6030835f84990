//! `sharegrid bench`: the node benchmark (gigafuel per second on the
//! standard kernel), as offers will report it.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use sharegrid_sandbox::node_benchmark;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Timed rounds (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn main(home: &Path, a: BenchArgs) -> anyhow::Result<ExitCode> {
    let sandbox = crate::home::sandbox(home, false, sharegrid_sandbox::Metering::Inline, true)?;
    if !a.json {
        eprintln!("running the standard kernel {} times...", a.rounds);
    }
    let r = node_benchmark(&sandbox, a.rounds as usize)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let times: Vec<String> = r
            .round_times
            .iter()
            .map(|t| format!("{:.0} ms", t.as_secs_f64() * 1e3))
            .collect();
        println!("speed   {}", r.speed);
        println!("kernel  {} per round; rounds: {}", r.fuel_per_round, times.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
