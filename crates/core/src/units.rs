//! Units: fuel (the protocol's measure of work) and node speed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of fuel: the deterministic count of work a task did
/// (see `docs/fuel.md`). Replicas of a task must agree on it exactly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fuel(pub u64);

impl Fuel {
    /// One gigafuel, the unit prices are quoted in.
    pub const GIGA: Fuel = Fuel(1_000_000_000);

    /// Fuel as a number of gigafuel, for display only (never for money).
    pub fn as_giga_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl fmt::Display for Fuel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0 as f64;
        if v >= 1e9 {
            write!(f, "{:.3} Gfuel", v / 1e9)
        } else if v >= 1e6 {
            write!(f, "{:.3} Mfuel", v / 1e6)
        } else {
            write!(f, "{} fuel", self.0)
        }
    }
}

impl fmt::Debug for Fuel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fuel({})", self.0)
    }
}

/// A node's measured speed on the standard benchmark kernel. Informational
/// (it feeds scheduling estimates), so a float is fine here; money never is.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GigafuelPerSec(pub f64);

impl fmt::Display for GigafuelPerSec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} Gfuel/s", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuel_displays_in_readable_units() {
        assert_eq!(Fuel(12).to_string(), "12 fuel");
        assert_eq!(Fuel(40_000_708).to_string(), "40.001 Mfuel");
        assert_eq!(Fuel(2_500_000_000).to_string(), "2.500 Gfuel");
    }
}
