//! How a task run ended. Every run ends in exactly one [`Outcome`]; the sandbox
//! never panics or hangs on a hostile module, it reports one of these.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of a WebAssembly trap, independent of the engine's own types.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrapKind {
    /// The call stack exceeded the task's stack limit.
    StackOverflow,
    /// A load or store outside linear memory.
    MemoryOutOfBounds,
    /// A table access out of bounds.
    TableOutOfBounds,
    /// `call_indirect` to an uninitialized table element.
    IndirectCallToNull,
    /// `call_indirect` with the wrong signature.
    BadSignature,
    /// Integer overflow (e.g. `i32.div_s` of `INT_MIN` by -1).
    IntegerOverflow,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// A float-to-int conversion of NaN or an out-of-range value.
    BadConversionToInteger,
    /// An `unreachable` instruction (also what `abort()` compiles to).
    Unreachable,
    /// A WebAssembly exception thrown and caught by no handler (the
    /// exception-handling proposal), escaping the entry export.
    UncaughtException,
    /// A trap the protocol does not name separately.
    Other,
}

impl TrapKind {
    /// The byte that stands for this kind in the canonical result encoding.
    pub const fn code(self) -> u8 {
        match self {
            TrapKind::StackOverflow => 1,
            TrapKind::MemoryOutOfBounds => 2,
            TrapKind::TableOutOfBounds => 3,
            TrapKind::IndirectCallToNull => 4,
            TrapKind::BadSignature => 5,
            TrapKind::IntegerOverflow => 6,
            TrapKind::IntegerDivisionByZero => 7,
            TrapKind::BadConversionToInteger => 8,
            TrapKind::Unreachable => 9,
            TrapKind::UncaughtException => 10,
            TrapKind::Other => 255,
        }
    }

    /// The kind a code stands for.
    pub const fn from_code(code: u8) -> Option<TrapKind> {
        Some(match code {
            1 => TrapKind::StackOverflow,
            2 => TrapKind::MemoryOutOfBounds,
            3 => TrapKind::TableOutOfBounds,
            4 => TrapKind::IndirectCallToNull,
            5 => TrapKind::BadSignature,
            6 => TrapKind::IntegerOverflow,
            7 => TrapKind::IntegerDivisionByZero,
            8 => TrapKind::BadConversionToInteger,
            9 => TrapKind::Unreachable,
            10 => TrapKind::UncaughtException,
            255 => TrapKind::Other,
            _ => return None,
        })
    }

    fn describe(self) -> &'static str {
        match self {
            TrapKind::StackOverflow => "call stack exhausted (stack limit)",
            TrapKind::MemoryOutOfBounds => "out-of-bounds memory access",
            TrapKind::TableOutOfBounds => "out-of-bounds table access",
            TrapKind::IndirectCallToNull => "indirect call to a null table entry",
            TrapKind::BadSignature => "indirect call signature mismatch",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::IntegerDivisionByZero => "integer division by zero",
            TrapKind::BadConversionToInteger => "invalid float-to-integer conversion",
            TrapKind::Unreachable => "unreachable instruction executed (abort)",
            TrapKind::UncaughtException => "uncaught WebAssembly exception",
            TrapKind::Other => "other trap",
        }
    }
}

/// How a run ended.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The module ran to completion: `_start` returned (exit code 0), a
    /// reactor's entry returned (its `i32` result, or 0), or it called
    /// `proc_exit`.
    Completed {
        /// The process exit code.
        exit_code: i32,
    },
    /// The task used all its fuel.
    OutOfFuel,
    /// The task tried to grow linear memory (or a table) past its limit, or
    /// declared a minimum larger than the limit.
    MemoryLimit,
    /// The task tried to emit more than its output limit.
    OutputLimit,
    /// The wall-clock timeout fired. Not deterministic: never evidence.
    Timeout,
    /// The module trapped.
    Trap {
        /// What kind of trap.
        trap: TrapKind,
    },
    /// The bytes are not a valid module for this sandbox: not WebAssembly,
    /// failed validation, uses a disabled feature, imports something the
    /// sandbox does not provide, or has no `_start`.
    InvalidModule {
        /// The validator's or linker's explanation.
        reason: String,
    },
}

impl Outcome {
    /// The byte that stands for this outcome in the canonical result encoding.
    pub const fn code(&self) -> u8 {
        match self {
            Outcome::Completed { .. } => 0,
            Outcome::OutOfFuel => 1,
            Outcome::MemoryLimit => 2,
            Outcome::OutputLimit => 3,
            Outcome::Timeout => 4,
            Outcome::Trap { .. } => 5,
            Outcome::InvalidModule { .. } => 6,
        }
    }

    /// True when honest replicas must reproduce this outcome exactly, so it
    /// can be compared and used as evidence. Only timeouts are not.
    pub const fn is_deterministic(&self) -> bool {
        !matches!(self, Outcome::Timeout)
    }

    /// The outcome's kind in one word, as its JSON tag says it
    /// (`completed`, `out_of_fuel`, …): a label for counters and logs.
    pub const fn kind(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::OutputLimit => "output_limit",
            Outcome::Timeout => "timeout",
            Outcome::Trap { .. } => "trap",
            Outcome::InvalidModule { .. } => "invalid_module",
        }
    }

    /// True for a run that completed with exit code 0.
    pub const fn is_success(&self) -> bool {
        matches!(self, Outcome::Completed { exit_code: 0 })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed { exit_code } => write!(f, "completed with exit code {exit_code}"),
            Outcome::OutOfFuel => f.write_str("out of fuel: the task used its whole fuel limit"),
            Outcome::MemoryLimit => {
                f.write_str("memory limit: the task tried to use more linear memory than its limit")
            }
            Outcome::OutputLimit => {
                f.write_str("output limit: the task tried to write more than its limit to stdout, stderr and /out")
            }
            Outcome::Timeout => f.write_str("timeout: the task ran past its wall-clock limit"),
            Outcome::Trap { trap } => write!(f, "trap: {}", trap.describe()),
            Outcome::InvalidModule { reason } => write!(f, "invalid module: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_render_as_one_line_and_as_json() {
        let cases = [
            (
                Outcome::Completed { exit_code: 3 },
                r#"{"kind":"completed","exit_code":3}"#,
            ),
            (Outcome::OutOfFuel, r#"{"kind":"out_of_fuel"}"#),
            (
                Outcome::Trap {
                    trap: TrapKind::StackOverflow,
                },
                r#"{"kind":"trap","trap":"stack_overflow"}"#,
            ),
            (
                Outcome::InvalidModule {
                    reason: "bad magic".into(),
                },
                r#"{"kind":"invalid_module","reason":"bad magic"}"#,
            ),
        ];
        for (o, json) in cases {
            assert_eq!(serde_json::to_string(&o).unwrap(), json);
            assert_eq!(serde_json::from_str::<Outcome>(json).unwrap(), o);
            assert!(!o.to_string().contains('\n'));
        }
        assert!(!Outcome::Timeout.is_deterministic());
        assert!(Outcome::OutOfFuel.is_deterministic());
    }
}
