//! What a requestor remembers of each provider: results that agreed with a
//! quorum, results that disagreed, attempts that failed. From it come a
//! weight for scheduling and a credibility for accepting a result alone.
//!
//! Credibility follows Sarmenta ("Sabotage-tolerance mechanisms for volunteer
//! computing systems", 2002): if at most a fraction `f` of providers are
//! saboteurs, a provider that has passed `k` verifications without being
//! caught has credibility `1 - f / ((1 - f) k)`; one caught even once has
//! none. A job may accept a result alone from a provider whose credibility
//! reaches its threshold, and still re-checks a random share of those.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sharegrid_core::NodeId;

/// One provider's record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Results that agreed with an accepted quorum.
    pub agreed: u64,
    /// Results that disagreed with an accepted quorum.
    pub disagreed: u64,
    /// Attempts that failed (refused, timed out, left mid-task).
    pub failed: u64,
    /// Fuel of the runs timed from dispatch to receipt (their speed is
    /// observed, not claimed). Not kept across restarts.
    #[serde(default)]
    pub timed_fuel: u64,
    /// Milliseconds those runs took, dispatch to receipt.
    #[serde(default)]
    pub timed_ms: u64,
}

/// Runs are timed for at least this long before their speed counts.
pub const MIN_TIMED_MS: u64 = 2_000;
/// A claimed speed above this many times the observed one is a false claim.
pub const OVERCLAIM_FACTOR: f64 = 4.0;

impl Record {
    /// Scheduling weight in (0, 1]: 1 for a clean record, lower with
    /// failures, low (not zero: it may be a bug it fixed) after a lie.
    pub fn weight(&self) -> f64 {
        if self.disagreed > 0 {
            return 0.05;
        }
        let n = (self.agreed + self.failed) as f64;
        if n == 0.0 {
            return 0.9;
        }
        (0.5 + 0.5 * (self.agreed as f64 + 1.0) / (n + 1.0)).min(1.0)
    }

    /// Whether this provider is not to be given work: more than one result
    /// in twenty disagreed with a quorum (one caught lie with no clean
    /// record behind it is enough).
    pub fn shunned(&self) -> bool {
        self.disagreed > 0 && self.disagreed * 20 > self.agreed
    }

    /// Notes a run of `fuel` that took `ms` from dispatch to receipt.
    pub fn timed(&mut self, fuel: u64, ms: u64) {
        self.timed_fuel = self.timed_fuel.saturating_add(fuel);
        self.timed_ms = self.timed_ms.saturating_add(ms);
    }

    /// The speed its receipts show, Gfuel/s (dispatch to receipt, so
    /// transfers and queueing count against it), once runs were timed for
    /// [`MIN_TIMED_MS`].
    pub fn observed_speed(&self) -> Option<f64> {
        (self.timed_ms >= MIN_TIMED_MS).then(|| self.timed_fuel as f64 / 1e9 / (self.timed_ms as f64 / 1e3))
    }

    /// Whether `claimed` (Gfuel/s) is far above the observed speed.
    pub fn overclaims(&self, claimed: f64) -> bool {
        self.observed_speed().is_some_and(|o| claimed > OVERCLAIM_FACTOR * o)
    }

    /// Sarmenta credibility for an assumed saboteur fraction `f` in (0, 1).
    pub fn credibility(&self, f: f64) -> f64 {
        if self.disagreed > 0 || self.agreed == 0 {
            return 0.0;
        }
        (1.0 - f / ((1.0 - f) * self.agreed as f64)).max(0.0)
    }
}

/// A job's credibility settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Credibility {
    /// Accept a result alone from a provider at least this credible.
    pub threshold: f64,
    /// Share of such results re-checked by another replica anyway.
    pub spot_check_rate: f64,
    /// Assumed fraction of saboteurs among providers.
    pub saboteur_fraction: f64,
}

impl Default for Credibility {
    fn default() -> Self {
        Credibility {
            threshold: 0.999,
            spot_check_rate: 0.1,
            saboteur_fraction: 0.1,
        }
    }
}

/// Records of every provider met, keyed by id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reputation {
    records: HashMap<NodeId, Record>,
}

impl Reputation {
    /// The record of `p` (clean if unknown).
    pub fn get(&self, p: &NodeId) -> Record {
        self.records.get(p).copied().unwrap_or_default()
    }

    /// Mutable record of `p`.
    pub fn entry(&mut self, p: NodeId) -> &mut Record {
        self.records.entry(p).or_default()
    }

    /// Every record.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Record)> {
        self.records.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credibility_grows_with_clean_results_and_dies_with_a_lie() {
        let f = 0.1;
        let mut r = Record::default();
        assert_eq!(r.credibility(f), 0.0);
        r.agreed = 1;
        let one = r.credibility(f);
        r.agreed = 1000;
        let many = r.credibility(f);
        assert!(one < many && many > 0.999 && many < 1.0, "{one} {many}");
        r.disagreed = 1;
        assert_eq!(r.credibility(f), 0.0);
        assert!(r.weight() < Record::default().weight());
    }
}
