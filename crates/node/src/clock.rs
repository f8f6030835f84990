//! The wall clock, read only by the I/O shells: the role machines and the
//! pure crates are handed `now` instead, so that a simulation can drive them
//! with a clock of its own.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (the wire's time unit).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
