//! Token amounts and prices. Money is integers only, in the token's smallest
//! unit; every operation is checked, never wrapping or saturating silently.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::Fuel;

/// An amount of tokens, in the smallest unit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub u128);

impl Amount {
    /// Zero tokens.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if it would go negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl FromStr for Amount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse()
            .map(Amount)
            .map_err(|_| format!("{s:?} is not a token amount (a non-negative integer)"))
    }
}

/// Serialized as a decimal string: JSON numbers and many CBOR decoders
/// cannot carry 128 bits.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A price: tokens per gigafuel.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, Debug)]
#[serde(transparent)]
pub struct PricePerGfuel(pub Amount);

impl PricePerGfuel {
    /// What `fuel` costs at this price, rounded up to the smallest unit (a
    /// provider is never paid less than the work it did), or `None` on
    /// overflow.
    pub fn cost(self, fuel: Fuel) -> Option<Amount> {
        let units = u128::from(fuel.0).checked_mul(self.0.0)?;
        Some(Amount(units.div_ceil(u128::from(Fuel::GIGA.0))))
    }
}

impl fmt::Display for PricePerGfuel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/Gfuel", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn costs_round_up_and_serialize_as_strings() {
        let p = PricePerGfuel(Amount(1000));
        assert_eq!(p.cost(Fuel(1_000_000_000)), Some(Amount(1000)));
        assert_eq!(p.cost(Fuel(1)), Some(Amount(1)), "rounded up");
        assert_eq!(p.cost(Fuel(0)), Some(Amount(0)));
        assert_eq!(PricePerGfuel(Amount(u128::MAX)).cost(Fuel(2)), None);
        assert_eq!(
            serde_json::to_string(&Amount(u128::MAX)).unwrap(),
            format!("\"{}\"", u128::MAX)
        );
        assert!("-1".parse::<Amount>().is_err());
    }

    proptest! {
        #[test]
        fn cost_is_monotone_and_exact_to_one_unit(f in 0u64..u64::MAX, a in 0u64..1_000_000_000_000u64, b in 0u64..u64::MAX) {
            let p = PricePerGfuel(Amount(u128::from(a)));
            let (lo, hi) = (f.min(b), f.max(b));
            let (c_lo, c_hi) = (p.cost(Fuel(lo)).unwrap(), p.cost(Fuel(hi)).unwrap());
            prop_assert!(c_lo <= c_hi);
            let exact = u128::from(hi) * u128::from(a);
            prop_assert!(c_hi.0 * 1_000_000_000 >= exact && c_hi.0 * 1_000_000_000 < exact + 1_000_000_000);
        }
    }
}
