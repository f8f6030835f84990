//! How fuel is counted.
//!
//! [`Metering::WasmtimeFuel`] is the protocol's definition of fuel
//! (`docs/fuel.md`): wasmtime's `consume_fuel`, with its default operator
//! costs, plus the sandbox's charge for WASI calls. The other strategies exist
//! so benchmarks can compare costs side by side in one build:
//! - [`Metering::Instrumented`]: the module is rewritten by `wasm-instrument`
//!   (mutable-global backend, one unit per instruction) to count its own gas
//!   in an exported global, and compiled with cross-function inlining so the
//!   per-block charge call disappears. Any engine, including a browser's,
//!   would compute the same count from the same instrumented bytes.
//! - [`Metering::Off`]: no counting at all; the speed baseline. Fuel reads 0.
//!
//! The two benchmark strategies also run without epoch interruption, so
//! they measure their own cost alone: under them **neither the fuel limit
//! (for `Off`) nor the wall-clock timeout is enforced** — never run an
//! untrusted module that way. Instrumented modules also start with no gas
//! while their start function (if any) runs; C and Rust toolchains emit none.
//!
//! Results under different strategies are not comparable with each other:
//! only `WasmtimeFuel` may be used between providers.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use wasm_instrument::gas_metering::{self, ConstantCostRules};
use wasm_instrument::parity_wasm;
use wasmtime::{AsContextMut, Global, Trap, Val};

/// Name of the exported global that holds the gas left in instrumented modules.
pub(crate) const GAS_GLOBAL: &str = "sharegrid_gas_left";

/// A fuel-counting strategy (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metering {
    /// wasmtime's built-in fuel: the protocol's definition.
    #[default]
    WasmtimeFuel,
    /// Gas counted by the module itself after `wasm-instrument` rewrote it.
    Instrumented,
    /// No metering (benchmark baseline only).
    Off,
}

impl Metering {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Metering::WasmtimeFuel => "fuel",
            Metering::Instrumented => "instrumented",
            Metering::Off => "off",
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
            "off" => Ok(Metering::Off),
            _ => Err(format!("unknown metering {s:?}: expected fuel, instrumented or off")),
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
                let left = g.get(&mut store).i64().unwrap_or(0) as u64;
                if left < cost {
                    g.set(&mut store, Val::I64(-1))?;
                    return Err(wasmtime::Error::new(Trap::OutOfFuel));
                }
                g.set(&mut store, Val::I64((left - cost) as i64))
            }
            Meter::Global(None) | Meter::Off => Ok(()),
        }
    }

    /// Fuel left, or `None` when the meter ran out (instrumented gas marks
    /// that with the all-ones sentinel) or does not count.
    pub(crate) fn left(self, mut store: impl AsContextMut) -> Option<u64> {
        let mut store = store.as_context_mut();
        match self {
            Meter::Fuel => store.get_fuel().ok(),
            Meter::Global(Some(g)) => match g.get(&mut store).i64()? as u64 {
                u64::MAX => None,
                left => Some(left),
            },
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
