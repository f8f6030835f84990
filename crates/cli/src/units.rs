//! Parsing the units people type on the command line: sizes (`256MiB`),
//! durations (`30s`, `2m`), fuel (`5G`, `100000`).

use std::time::Duration;

use sharegrid_core::Fuel;

/// A byte size: `4096`, `64KiB`, `256 MiB`, `1GB`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("{s:?} is not a size (examples: 4096, 64KiB, 256MiB, 1GiB)"))
}

/// A duration: `500ms`, `30s`, `2m`, `1h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| format!("{s:?} is not a duration (examples: 500ms, 30s, 2m)"))?;
    if d.is_zero() {
        return Err("the timeout must be longer than zero".into());
    }
    Ok(d)
}

/// Fuel: a plain count, or with a decimal suffix `k`, `M`, `G`, `T`.
pub(crate) fn parse_fuel(s: &str) -> Result<Fuel, String> {
    let t = s.trim();
    let err = || format!("{s:?} is not an amount of fuel (examples: 1000000, 500M, 20G)");
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000u64),
        Some((i, 'M')) => (&t[..i], 1_000_000),
        Some((i, 'G')) => (&t[..i], 1_000_000_000),
        Some((i, 'T')) => (&t[..i], 1_000_000_000_000),
        _ => (t, 1),
    };
    let n: u64 = num.trim().replace('_', "").parse().map_err(|_| err())?;
    n.checked_mul(mult).map(Fuel).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_fail_clearly() {
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").unwrap_err().contains("\"lots\""));
        assert_eq!(parse_duration("1500ms").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_fuel("20G").unwrap(), Fuel(20_000_000_000));
        assert_eq!(parse_fuel("1_000").unwrap(), Fuel(1000));
        assert!(parse_fuel("99999999999T").is_err());
        assert!(parse_fuel("-5").is_err());
    }
}
