//! How fuel is counted.
//!
//! [`Metering::Inline`] is the protocol's definition of fuel
//! (`docs/fuel.md`): the module counts its own gas after sharegrid's inline
//! instrumentation (`gas.rs`) rewrote it, plus the sandbox's charge for WASI
//! calls. The count is defined by WebAssembly alone, so any engine (a
//! browser's included) reproduces it, and it costs next to nothing: the
//! charge is inline, the counter lives in a local between calls, and running
//! out is a trap, not a call. Its wall-clock timeout is an interrupt flag the
//! same checks read, so it needs no epoch interruption either.
//!
//! The other strategies exist so benchmarks can compare costs side by side
//! in one build:
//! - [`Metering::WasmtimeFuel`]: wasmtime's `consume_fuel` (default operator
//!   costs), with epoch interruption for the timeout. Defined by wasmtime's
//!   version alone.
//! - [`Metering::Instrumented`]: `wasm-instrument` 0.4 (mutable-global
//!   backend, one unit per instruction, charged per block through an
//!   injected function), compiled with cross-function inlining.
//! - [`Metering::Off`]: no counting at all; the speed baseline. Fuel reads 0
//!   and **no fuel limit is enforced** — never run an untrusted module that
//!   way.
//!
//! The wall-clock timeout is a separate switch,
//! [`SandboxConfig::wall_clock_timeout`](crate::SandboxConfig), so benchmarks
//! can measure each cost alone. `wasm-instrument`'s gas starts at zero, so
//! under it a module's start function (which C and Rust toolchains never
//! emit) runs out at once; inline gas gives start functions [`START_GAS`].
//!
//! Counts under different strategies are not comparable with each other:
//! only `Inline` may be used between providers.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use wasm_instrument::gas_metering::{self, ConstantCostRules};
use wasm_instrument::parity_wasm;
use wasmtime::{AsContextMut, Global, Trap, Val};

/// Name of the exported global that holds the gas left in instrumented modules.
pub(crate) const GAS_GLOBAL: &str = "sharegrid_gas_left";
/// Name of the exported one-page memory whose first word is the interrupt
/// flag of inline-gas modules.
pub(crate) const INTERRUPT_MEMORY: &str = "sharegrid_interrupt";
/// Gas an inline-gas module's start function may use (before the host can
/// set the task's budget).
pub(crate) const START_GAS: u64 = 1_000_000_000;

/// A fuel-counting strategy (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metering {
    /// Gas counted by the module itself after sharegrid's inline
    /// instrumentation rewrote it (`gas.rs`): the protocol's definition.
    #[default]
    Inline,
    /// wasmtime's built-in fuel (benchmark comparison).
    WasmtimeFuel,
    /// Gas counted by the module itself after `wasm-instrument` rewrote it
    /// (benchmark comparison).
    Instrumented,
    /// No metering (benchmark baseline only).
    Off,
}

impl Metering {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Metering::WasmtimeFuel => "fuel",
            Metering::Instrumented => "instrumented",
            Metering::Inline => "inline",
            Metering::Off => "off",
        }
    }

    /// Names this strategy in cache keys: bumped with any change to an
    /// instrumentation, so no stale rewritten module is ever loaded.
    pub(crate) fn cache_tag(self) -> &'static str {
        match self {
            Metering::Inline => "inline-v1",
            other => other.tag(),
        }
    }
}

impl fmt::Display for Metering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl FromStr for Metering {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fuel" => Ok(Metering::WasmtimeFuel),
            "instrumented" => Ok(Metering::Instrumented),
            "inline" => Ok(Metering::Inline),
            "off" => Ok(Metering::Off),
            _ => Err(format!(
                "unknown metering {s:?}: expected fuel, instrumented, inline or off"
            )),
        }
    }
}

/// Rewrites `wasm` to count its own gas (one unit per instruction) in the
/// exported global [`GAS_GLOBAL`]. `Err` says why the module cannot be
/// instrumented (parity-wasm parses only the MVP plus a few proposals).
pub(crate) fn instrument(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let module: parity_wasm::elements::Module =
        parity_wasm::deserialize_buffer(wasm).map_err(|e| format!("cannot parse for gas instrumentation: {e}"))?;
    let rules = ConstantCostRules::new(1, 0, 0);
    let backend = gas_metering::mutable_global::Injector::new(GAS_GLOBAL);
    let module = gas_metering::inject(module, backend, &rules)
        .map_err(|_| "gas instrumentation failed (unsupported instruction)".to_string())?;
    parity_wasm::serialize(module).map_err(|e| format!("cannot serialize the instrumented module: {e}"))
}

/// The per-run meter: where fuel lives while a task runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Meter {
    /// In wasmtime's store fuel counter.
    Fuel,
    /// In the instrumented module's gas global (set after instantiation).
    Global(Option<Global>),
    /// Nowhere.
    Off,
}

impl Meter {
    /// Takes `cost` units for host work; out of fuel is a trap, exactly as if
    /// guest code had run out.
    pub(crate) fn charge(self, mut store: impl AsContextMut, cost: u64) -> wasmtime::Result<()> {
        let mut store = store.as_context_mut();
        match self {
            Meter::Fuel => {
                let left = store.get_fuel()?;
                if left < cost {
                    store.set_fuel(0)?;
                    return Err(wasmtime::Error::new(Trap::OutOfFuel));
                }
                store.set_fuel(left - cost)
            }
            Meter::Global(Some(g)) => {
                // Budgets stay below 2^63; a negative count (the -1
                // sentinel, or inline gas that dipped below zero) is spent.
                let left = g.get(&mut store).i64().unwrap_or(-1);
                let cost = i64::try_from(cost).unwrap_or(i64::MAX);
                if left < cost {
                    g.set(&mut store, Val::I64(-1))?;
                    return Err(wasmtime::Error::new(Trap::OutOfFuel));
                }
                g.set(&mut store, Val::I64(left - cost))
            }
            Meter::Global(None) | Meter::Off => Ok(()),
        }
    }

    /// Fuel left, or `None` when the meter ran out (instrumented gas marks
    /// that with a negative count: the -1 sentinel, or inline gas below zero)
    /// or does not count.
    pub(crate) fn left(self, mut store: impl AsContextMut) -> Option<u64> {
        let mut store = store.as_context_mut();
        match self {
            Meter::Fuel => store.get_fuel().ok(),
            Meter::Global(Some(g)) => u64::try_from(g.get(&mut store).i64()?).ok(),
            Meter::Global(None) | Meter::Off => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metering_parses_and_instruments() {
        assert_eq!("instrumented".parse::<Metering>().unwrap(), Metering::Instrumented);
        assert!("fast".parse::<Metering>().is_err());
        let wasm = wat::parse_str(r#"(module (func (export "_start") (drop (i32.const 1))))"#).unwrap();
        let out = instrument(&wasm).unwrap();
        assert!(out.len() > wasm.len());
        assert!(instrument(b"not wasm").is_err());
    }
}
