//! The seeded multi-node simulation (`sharegrid_node::sim`): whole nodes'
//! role machines over a simulated network and clock, with messages delayed
//! and lost, providers crashing and returning, and liars. Each run checks
//! the invariants (every task accepted or failed with a reason, only right
//! results accepted, no task paid twice to one provider, every escrow
//! settled, supply conserved, every chain agreeing with the validator's)
//! and a seed replays its run exactly (the same trace hash).
//!
//! A failing seed is printed; replay it with `SHAREGRID_SIM_SEED=<seed>
//! cargo test -p sharegrid-node --lib sim::`.
//!
//! (Unit tests of the library rather than a test binary of their own: each
//! test binary links the whole stack, and that link is most of its cost.)

use super::{SimConfig, run};

fn seeds() -> Vec<u64> {
    match std::env::var("SHAREGRID_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SHAREGRID_SIM_SEED is a number")],
        Err(_) => vec![1, 2],
    }
}

#[test]
fn twenty_four_nodes_under_churn_keep_every_invariant_and_replay_exactly() {
    for seed in seeds() {
        let cfg = SimConfig::churn(seed, 24, 3, 30);
        let a = run(&cfg);
        assert!(
            a.stats.violations.is_empty(),
            "seed {seed} (replay: SHAREGRID_SIM_SEED={seed}): {:#?}",
            a.stats.violations
        );
        assert_eq!(a.accepted + a.failed, 3 * 30, "seed {seed}");
        assert!(a.accepted >= 80, "seed {seed}: only {} of 90 accepted", a.accepted);
        assert!(
            a.paid >= 2 * a.accepted,
            "seed {seed}: {} pairs paid for {} tasks",
            a.paid,
            a.accepted
        );
        assert!(a.stats.crashes > 0 && a.stats.lost > 0, "seed {seed}: {:?}", a.stats);
        let b = run(&cfg);
        assert_eq!(a.trace, b.trace, "seed {seed} did not replay the same run");
        assert_eq!(a.stats.events, b.stats.events, "seed {seed}");
    }
}

#[test]
fn different_seeds_run_differently() {
    let a = run(&SimConfig::churn(11, 20, 1, 10));
    let b = run(&SimConfig::churn(12, 20, 1, 10));
    assert!(a.stats.violations.is_empty(), "seed 11: {:#?}", a.stats.violations);
    assert!(b.stats.violations.is_empty(), "seed 12: {:#?}", b.stats.violations);
    assert_ne!(a.trace, b.trace);
}

/// The checks are real: when most providers collude on the same wrong
/// result, r = 2 accepts some of them, and the run says so.
#[test]
fn the_invariant_checks_catch_colluding_liars_getting_a_wrong_result_accepted() {
    let mut cfg = SimConfig::churn(5, 20, 1, 20);
    cfg.liars = 15;
    cfg.collude = true;
    cfg.crashes = 0;
    let r = run(&cfg);
    assert!(
        r.stats.violations.iter().any(|v| v.contains("a wrong result accepted")),
        "{:#?}",
        r.stats.violations
    );
}
