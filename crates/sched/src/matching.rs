//! Which offers a job can use, and, when none can, why not — per provider,
//! summed into one line a requestor can act on ("12 providers: 7 over price
//! ceiling, 3 lack 4 GiB memory, 2 aarch64 only").

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, Arch, Determinism, GigafuelPerSec, Offer, PricePerGfuel};

/// A job's requirements of a provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    /// Highest price per gigafuel the job pays.
    pub price_ceiling: PricePerGfuel,
    /// Only this architecture (None: any; `native` replicas still share one).
    pub arch: Option<Arch>,
    /// Memory a task needs, bytes.
    pub min_memory: u64,
    /// Lowest benchmark speed accepted.
    pub min_speed: GigafuelPerSec,
    /// The job's determinism mode.
    pub mode: Determinism,
    /// The least stake a provider must have bonded (as the offer states
    /// it, which the requestor checks against the ledger).
    #[serde(default)]
    pub min_stake: Amount,
}

/// Why one offer does not qualify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mismatch {
    /// Asks more than the ceiling.
    OverPrice,
    /// Not enough memory for a task.
    LacksMemory,
    /// Another architecture.
    Arch(Arch),
    /// Slower than the minimum.
    TooSlow,
    /// Does not run the job's mode.
    Mode,
    /// Advertises no slots at all.
    NoSlots,
    /// Less stake bonded than the job requires.
    Unstaked,
}

impl Constraints {
    /// Whether `o` qualifies, or the first reason it does not.
    pub fn check(&self, o: &Offer) -> Result<(), Mismatch> {
        if o.price > self.price_ceiling {
            return Err(Mismatch::OverPrice);
        }
        if let Some(a) = self.arch
            && o.arch != a
        {
            return Err(Mismatch::Arch(o.arch));
        }
        if !o.modes.contains(&self.mode) {
            return Err(Mismatch::Mode);
        }
        // Memory given is for all slots; one task needs min_memory.
        if o.memory_bytes < self.min_memory {
            return Err(Mismatch::LacksMemory);
        }
        if o.speed.0 < self.min_speed.0 {
            return Err(Mismatch::TooSlow);
        }
        if o.cores == 0 {
            return Err(Mismatch::NoSlots);
        }
        if o.stake < self.min_stake {
            return Err(Mismatch::Unstaked);
        }
        Ok(())
    }
}

/// The why-no-match report: how many providers were seen and why each was
/// unusable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoMatch {
    /// Providers seen.
    pub providers: usize,
    /// Count per reason.
    pub reasons: BTreeMap<String, usize>,
}

impl NoMatch {
    /// Builds the report from offers (deduplicated by provider by the caller).
    pub fn of<'a>(c: &Constraints, offers: impl IntoIterator<Item = &'a Offer>) -> NoMatch {
        let mut r = NoMatch::default();
        for o in offers {
            r.providers += 1;
            if let Err(m) = c.check(o) {
                *r.reasons.entry(describe(c, m)).or_default() += 1;
            }
        }
        r
    }
}

fn describe(c: &Constraints, m: Mismatch) -> String {
    match m {
        Mismatch::OverPrice => format!("over price ceiling {}/Gfuel", c.price_ceiling.0),
        Mismatch::LacksMemory => format!("lack {}", human_bytes(c.min_memory)),
        Mismatch::Arch(a) => format!("{} only", arch_name(a)),
        Mismatch::TooSlow => format!("slower than {:.2} Gfuel/s", c.min_speed.0),
        Mismatch::Mode => format!("do not run {} mode", c.mode),
        Mismatch::NoSlots => "offer no slots".to_string(),
        Mismatch::Unstaked => format!("have less than {} staked", c.min_stake),
    }
}

fn arch_name(a: Arch) -> &'static str {
    match a {
        Arch::X86_64 => "x86_64",
        Arch::Aarch64 => "aarch64",
        Arch::Riscv64 => "riscv64",
        Arch::Other => "other-architecture",
    }
}

fn human_bytes(b: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if b >= GIB && b.is_multiple_of(GIB) {
        format!("{} GiB memory", b / GIB)
    } else {
        format!("{} MiB memory", b.div_ceil(MIB))
    }
}

impl fmt::Display for NoMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.providers == 0 {
            return f.write_str("no providers seen on the network");
        }
        let mut parts: Vec<(usize, &String)> = self.reasons.iter().map(|(k, v)| (*v, k)).collect();
        parts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let list: Vec<String> = parts.iter().map(|(n, why)| format!("{n} {why}")).collect();
        let s = if self.providers == 1 { "" } else { "s" };
        if list.is_empty() {
            write!(
                f,
                "{} provider{s}, all qualify but none could take work",
                self.providers
            )
        } else {
            write!(f, "{} provider{s}: {}", self.providers, list.join(", "))
        }
    }
}

/// A price of `n` units per gigafuel (for tests and examples).
pub fn price(n: u128) -> PricePerGfuel {
    PricePerGfuel(Amount(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharegrid_core::NodeKey;

    fn offer(seed: u8, arch: Arch, mem: u64, p: u128) -> Offer {
        Offer {
            version: sharegrid_core::WIRE_VERSION,
            provider: NodeKey::from_seed([seed; 32]).id(),
            arch,
            cores: 4,
            memory_bytes: mem,
            free_slots: 4,
            speed: GigafuelPerSec(10.0),
            price: price(p),
            stake: Amount(0),
            modes: vec![Determinism::Native],
            software: "test".into(),
            seq: 1,
            expires_at_ms: u64::MAX,
        }
    }

    #[test]
    fn the_report_says_why_per_provider() {
        let c = Constraints {
            min_stake: Amount(0),
            price_ceiling: price(10),
            arch: Some(Arch::X86_64),
            min_memory: 4 << 30,
            min_speed: GigafuelPerSec(1.0),
            mode: Determinism::Native,
        };
        let mut offers = Vec::new();
        for i in 0..7 {
            offers.push(offer(i, Arch::X86_64, 8 << 30, 50));
        }
        for i in 7..10 {
            offers.push(offer(i, Arch::X86_64, 1 << 30, 5));
        }
        for i in 10..12 {
            offers.push(offer(i, Arch::Aarch64, 8 << 30, 5));
        }
        let r = NoMatch::of(&c, &offers);
        assert_eq!(
            r.to_string(),
            "12 providers: 7 over price ceiling 10/Gfuel, 3 lack 4 GiB memory, 2 aarch64 only"
        );
        assert_eq!(NoMatch::of(&c, &[]).to_string(), "no providers seen on the network");
        assert!(c.check(&offer(1, Arch::X86_64, 4 << 30, 10)).is_ok());
    }
}
