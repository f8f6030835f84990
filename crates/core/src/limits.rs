//! What a task may consume, and how deterministic its floating point must be.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::Fuel;

/// How replicas of a task are made to agree (see `shared/DESIGN.md` §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Determinism {
    /// NaN bit patterns are left to the CPU, so replicas must run on the same
    /// architecture class. Full speed. The default.
    #[default]
    Native,
    /// NaNs are canonicalized, so any architecture computes the same bits.
    /// Costs up to ~5x on float-heavy code, hence opt-in.
    Portable,
}

impl fmt::Display for Determinism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Determinism::Native => "native",
            Determinism::Portable => "portable",
        })
    }
}

impl FromStr for Determinism {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(Determinism::Native),
            "portable" => Ok(Determinism::Portable),
            other => Err(format!(
                "unknown determinism mode {other:?}: expected \"native\" or \"portable\""
            )),
        }
    }
}

/// Per-task limits. Every run ends within them, with a typed outcome naming
/// the one it hit.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel the task may burn (deterministic work count).
    pub fuel: Fuel,
    /// Largest linear memory the task may grow to, in bytes.
    pub memory_bytes: u64,
    /// Bytes the task may emit in total: stdout + stderr + files in `/out`.
    pub output_bytes: u64,
    /// WebAssembly call-stack budget, in bytes of host stack.
    pub stack_bytes: u64,
    /// Wall-clock safety net, in milliseconds. Unlike the others this limit is
    /// not deterministic: a timeout is never evidence of anything.
    pub timeout_ms: u64,
}

impl Limits {
    /// Default fuel: 100 gigafuel, roughly a minute on a laptop core.
    pub const DEFAULT_FUEL: Fuel = Fuel(100_000_000_000);
    /// Default memory: 256 MiB.
    pub const DEFAULT_MEMORY_BYTES: u64 = 256 << 20;
    /// Default output: 64 MiB.
    pub const DEFAULT_OUTPUT_BYTES: u64 = 64 << 20;
    /// Default stack: 1 MiB.
    pub const DEFAULT_STACK_BYTES: u64 = 1 << 20;
    /// Largest stack a task may ask for: 64 MiB.
    pub const MAX_STACK_BYTES: u64 = 64 << 20;
    /// Default wall-clock timeout: 10 minutes.
    pub const DEFAULT_TIMEOUT_MS: u64 = 600_000;

    /// The wall-clock timeout as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: Self::DEFAULT_FUEL,
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            output_bytes: Self::DEFAULT_OUTPUT_BYTES,
            stack_bytes: Self::DEFAULT_STACK_BYTES,
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn determinism_parses_and_rejects_clearly() {
        assert_eq!("portable".parse::<Determinism>().unwrap(), Determinism::Portable);
        let err = "fast".parse::<Determinism>().unwrap_err();
        assert!(err.contains("\"fast\""), "{err}");
        assert_eq!(Determinism::default(), Determinism::Native);
    }
}
