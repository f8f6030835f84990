//! The saboteur simulation (`sharegrid_node::sim::saboteurs`): every policy
//! against the same seeded populations of providers, some cheating, as a
//! Markdown table for `bench/RESULTS.md`. `bench/saboteurs.sh` runs it.
//!
//! Usage: `saboteurs [PROVIDERS] [JOBS] [TASKS] [SEED]` (default 300 20 100 1).

#![allow(clippy::expect_used)]

use sharegrid_node::sim::saboteurs::{Policy, SaboteurConfig, Strategy, run};

/// `n` providers: colluders (a share `colluding`), 5 % saboteurs lying at
/// 30 %, 5 % lazy guessers, 5 % rejoiners lying at 50 %, the rest honest.
fn population(n: usize, colluding: f64) -> Vec<Strategy> {
    let c = (n as f64 * colluding).round() as usize;
    (0..n)
        .map(|i| match i {
            i if i < c => Strategy::Colluder(1, 0.5),
            i if i < c + n / 20 => Strategy::Saboteur(0.3),
            i if i < c + n / 10 => Strategy::Lazy,
            i if i < c + 3 * n / 20 => Strategy::Rejoiner(0.5),
            _ => Strategy::Honest,
        })
        .collect()
}

fn main() {
    let arg = |i: usize, d: u64| std::env::args().nth(i).map_or(d, |s| s.parse().expect("a number"));
    let (n, jobs, tasks, seed) = (
        arg(1, 300) as usize,
        arg(2, 20) as usize,
        arg(3, 100) as usize,
        arg(4, 1),
    );
    let stake = 2_000_000;
    let policies = [
        Policy {
            name: "r=1, no stake (no verification)",
            replication: 1,
            quorum: 1,
            stake: 0,
            spot_check: None,
        },
        Policy {
            name: "r=2 q=2, no stake",
            replication: 2,
            quorum: 2,
            stake: 0,
            spot_check: None,
        },
        Policy {
            name: "r=2 q=2, stake",
            replication: 2,
            quorum: 2,
            stake,
            spot_check: None,
        },
        Policy {
            name: "r=3 q=2, stake",
            replication: 3,
            quorum: 2,
            stake,
            spot_check: None,
        },
        Policy {
            name: "credible alone, 10% spot checks, stake",
            replication: 2,
            quorum: 2,
            stake,
            spot_check: Some(0.1),
        },
    ];
    println!(
        "{n} providers, {jobs} jobs × {tasks} tasks, seed {seed}; price 1000/Gfuel, computing costs 400/Gfuel; stake {stake} where required; slash 50 % per fault\n"
    );
    for colluding in [0.2, 1.0 / 3.0] {
        let cfg = SaboteurConfig {
            providers: population(n, colluding),
            jobs,
            tasks,
            price: 1_000,
            cost: 400,
            seed,
        };
        println!(
            "### Colluders {:.0} % of providers (one group, lying on 50 % of tasks)\n",
            colluding * 100.0
        );
        println!(
            "| policy | accepted | wrong | error rate | bound | runs/task | honest | saboteur | lazy | colluder | rejoiner | slashes | false slashes | supply |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for p in &policies {
            let t = std::time::Instant::now();
            let o = run(&cfg, p);
            let profit = |s: &str| {
                o.strategies
                    .get(s)
                    .map_or("-".to_string(), |x| format!("{:+.0}", x.profit_per_slot))
            };
            println!(
                "| {} | {} | {} | {:.4} | {:.4} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
                o.policy,
                o.accepted,
                o.wrong,
                o.error_rate(),
                o.bound,
                o.redundancy,
                profit("honest"),
                profit("saboteur"),
                profit("lazy guesser"),
                profit("colluder"),
                profit("rejoiner"),
                o.slashes,
                o.false_slashes,
                if o.supply_exact { "exact" } else { "CHANGED" },
            );
            eprintln!("{}: {:.1} s", o.policy, t.elapsed().as_secs_f64());
        }
        println!();
    }
}
