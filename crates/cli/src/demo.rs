//! `sharegrid demo`: the embedded default. Until the network exists (see the
//! README's roadmap) it shows the property the network rests on: each example
//! task runs on two independent sandboxes (two "providers") and both produce
//! the same result hash and the same fuel, bit for bit.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use sharegrid_sandbox::{Sandbox, SandboxConfig, Task};

use crate::guests;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {}

fn task(module: &[u8], args: &[&str], inputs: &[(&str, &str)]) -> Task {
    let args = args.iter().map(|s| s.to_string()).collect();
    let inputs = inputs
        .iter()
        .map(|(p, d)| (p.to_string(), Arc::<[u8]>::from(d.as_bytes())))
        .collect();
    Task::local(module.to_vec(), args, Vec::new(), inputs)
}

pub(crate) fn main(_home: &Path, _a: DemoArgs) -> anyhow::Result<ExitCode> {
    println!("sharegrid demo: the peer-to-peer network is not built yet (see README, Roadmap);");
    println!("this runs each example task on two independent sandboxes and compares them.");
    println!("Run your own module with `sharegrid run MODULE.wasm -- ARGS`.\n");
    let tasks = [
        ("mandelbrot tile 3,2 of 8x8", task(guests::MANDELBROT, &["3", "2"], &[])),
        ("pi, seed 42, 2M samples", task(guests::PI, &["42", "2000000"], &[])),
        (
            "wordcount over 2 files",
            task(
                guests::WORDCOUNT,
                &[],
                &[
                    ("poem.txt", "the quick brown fox\njumps over\nthe lazy dog\n"),
                    ("notes/a.txt", "one two\n"),
                ],
            ),
        ),
        ("hashchain, 200k rounds", task(guests::HASHCHAIN, &["200000"], &[])),
    ];
    // Two sandboxes with nothing shared: separate engines, no shared cache.
    let provider_a = Sandbox::new(SandboxConfig::default())?;
    let provider_b = Sandbox::new(SandboxConfig::default())?;
    println!(
        "{:<28} {:<12} {:>16} {:<14} replica",
        "task", "outcome", "fuel", "result"
    );
    let mut agreed = 0;
    for (name, t) in &tasks {
        let a = provider_a.run(t)?;
        let b = provider_b.run(t)?;
        let same = a.result_hash == b.result_hash && a.fuel == b.fuel;
        agreed += usize::from(same);
        let outcome = match &a.result.outcome {
            sharegrid_core::Outcome::Completed { exit_code } => format!("exit {exit_code}"),
            other => other.to_string(),
        };
        println!(
            "{:<28} {:<12} {:>16} {:<14} {}",
            name,
            outcome,
            a.fuel.0,
            a.result_hash.short(),
            if same { "agrees" } else { "DISAGREES" }
        );
        if let Some(first) = a.result.stdout.split(|b| *b == b'\n').next() {
            println!("{:<28} stdout: {}", "", String::from_utf8_lossy(first));
        }
    }
    println!(
        "\n{agreed} of {} tasks reproduced bit for bit (same result hash, same fuel).",
        tasks.len()
    );
    Ok(if agreed == tasks.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
