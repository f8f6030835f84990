//! Inline gas: sharegrid's own metering by module instrumentation, measured
//! against wasmtime's fuel (see `docs/fuel.md`).
//!
//! The module is rewritten so it counts its own gas, with nothing but
//! WebAssembly: any engine (a browser's included) computes the same count
//! from the same bytes. Unlike `wasm-instrument`, the charge is emitted
//! inline and kept in a local variable (a register), and running out is a
//! trap rather than a call, so the hot path holds no call that would force
//! the compiler to spill registers:
//!
//! - a mutable `i64` global (exported as [`GAS_GLOBAL`]) holds the gas left
//!   between functions; each function copies it into a local on entry, writes
//!   it back before every call, return, function-level branch and
//!   `unreachable`, and reloads it after every call;
//! - the body is cut into metered segments at every point control can arrive
//!   at other than by falling through (function entry, loop heads, `if`/`else`
//!   arms, after `end`) and after every branch; each segment starts with
//!   `gas -= cost`, where cost is the number of operators in the segment (plus
//!   one per declared local in the entry segment);
//! - only the segments at function entry and at loop heads — which every
//!   cycle passes — also check: `if gas < 0 or interrupted { trap }`. Between
//!   checks gas can dip below zero by at most the acyclic code in between; a
//!   run that ends with negative gas is out of fuel, so the outcome stays a
//!   pure function of the count;
//! - out of gas leaves the all-ones sentinel (-1) in the global, so the host
//!   can tell it from a module's own `unreachable`;
//! - each check also reads an interrupt flag from a one-page memory the
//!   rewriter adds (exported as [`INTERRUPT_MEMORY`]; the guest's own code
//!   cannot name it). The host's watchdog sets the flag when the task's
//!   wall-clock timeout passes, and the next check traps. This replaces
//!   wasmtime's epoch interruption, whose check calls into the runtime from
//!   every loop and so costs as much as metering itself;
//! - the gas global starts at [`START_GAS`], the budget of the module's start
//!   function (if any); the host then sets the task's budget minus what the
//!   start function used.
//!
//! A segment is charged in full when it starts, so a trap inside it has
//! consumed the whole segment: still deterministic, which is what matters.

use wasm_encoder::reencode::{Error as ReError, Reencode, utils};
use wasm_encoder::{
    CodeSection, ConstExpr, ExportKind, ExportSection, Function, GlobalSection, GlobalType, Instruction, MemArg,
    MemorySection, MemoryType, Module, SectionId, ValType,
};
use wasmparser::{FunctionBody, Operator, Parser, Payload, TypeRef};

use crate::metering::{GAS_GLOBAL, INTERRUPT_MEMORY, START_GAS};

/// Counts gathered before rewriting.
#[derive(Default)]
struct Shape {
    /// Parameter count of each type index (0 for non-function types).
    type_params: Vec<u32>,
    /// Type index of each defined function, in order.
    func_types: Vec<u32>,
    imported_globals: u32,
    defined_globals: u32,
    memories: u32,
}

fn scan(wasm: &[u8]) -> Result<Shape, String> {
    let mut s = Shape::default();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| e.to_string())? {
            Payload::TypeSection(r) => {
                for ty in r.into_iter_err_on_gc_types() {
                    s.type_params.push(ty.map_err(|e| e.to_string())?.params().len() as u32);
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    match imp.map_err(|e| e.to_string())?.ty {
                        TypeRef::Global(_) => s.imported_globals += 1,
                        TypeRef::Memory(_) => s.memories += 1,
                        _ => {}
                    }
                }
            }
            Payload::MemorySection(r) => s.memories += r.count(),
            Payload::FunctionSection(r) => {
                for f in r {
                    s.func_types.push(f.map_err(|e| e.to_string())?);
                }
            }
            Payload::GlobalSection(r) => s.defined_globals = r.count(),
            // The rewrite exports the gas counter and the interrupt flag
            // under these names: a module using one cannot be metered (its
            // rewrite would export a name twice). Found by fuzzing.
            Payload::ExportSection(r) => {
                for e in r {
                    let name = e.map_err(|e| e.to_string())?.name;
                    if name == GAS_GLOBAL || name == INTERRUPT_MEMORY {
                        return Err(format!("the export name `{name}` is reserved by the sandbox"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Rewrites `wasm` to meter itself (see the module docs). The input must
/// already be valid.
pub(crate) fn instrument_inline(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let shape = scan(wasm)?;
    if shape.memories > 1 {
        return Err("modules with more than one memory are not supported".into());
    }
    let mut r = Rewriter {
        gas: shape.imported_globals + shape.defined_globals,
        interrupt: shape.memories,
        shape,
        next_func: 0,
        global_done: false,
        memory_done: false,
        export_done: false,
    };
    let mut module = Module::new();
    r.parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| match e {
            ReError::UserError(msg) => msg,
            other => other.to_string(),
        })?;
    Ok(module.finish())
}

struct Rewriter {
    shape: Shape,
    /// Index of the gas global.
    gas: u32,
    /// Index of the interrupt memory.
    interrupt: u32,
    next_func: usize,
    global_done: bool,
    memory_done: bool,
    export_done: bool,
}

/// Position of a section in a module's required order.
fn rank(id: SectionId) -> u8 {
    match id {
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
        _ => 0,
    }
}

impl Rewriter {
    fn add_global(&mut self, globals: &mut GlobalSection) {
        let ty = GlobalType {
            val_type: ValType::I64,
            mutable: true,
            shared: false,
        };
        globals.global(ty, &ConstExpr::i64_const(START_GAS as i64));
        self.global_done = true;
    }

    fn add_memory(&mut self, memories: &mut MemorySection) {
        memories.memory(MemoryType {
            minimum: 1,
            maximum: Some(1),
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        self.memory_done = true;
    }

    fn add_export(&mut self, exports: &mut ExportSection) {
        exports.export(GAS_GLOBAL, ExportKind::Global, self.gas);
        exports.export(INTERRUPT_MEMORY, ExportKind::Memory, self.interrupt);
        self.export_done = true;
    }
}

/// Whether control can arrive right after `op` other than by falling
/// through from it, or `op` ends straight-line execution: a segment starts
/// after it.
fn ends_segment(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Else
            | Operator::End
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::Return
            | Operator::Unreachable
            | Operator::Throw { .. }
            | Operator::ThrowRef
    )
}

/// Where a caught exception arrives, and so where the gas local must be
/// reloaded from the global (a throw leaves the count there, from whichever
/// function threw), and where every other arrival must first store it.
#[derive(Default)]
struct Landings {
    /// Store the local into the global before op `i`.
    sync_out_before: Vec<bool>,
    /// Reload the local from the global after op `i`.
    sync_in_after: Vec<bool>,
}

/// A label's opener: the index of its `block`/`loop`/`if`/`try_table`/`try`,
/// or `None` for the function's own label.
fn label(stack: &[usize], depth: u32) -> Option<usize> {
    stack.len().checked_sub(1 + depth as usize).map(|k| stack[k])
}

/// Finds the landings of the exception-handling proposal in `ops`:
/// `try_table`'s catch clauses branch to a label of the enclosing code.
/// Arriving there from a catch, the count is in the global; arriving any
/// other way (falling through, a branch), it is in the local. So every
/// arrival at such a label stores first, and the label reloads: at a
/// block's `end` (for an `if`, also before the `if` and `else`, whose arms
/// arrive there), at a loop's head. (The legacy form, `try`/`catch`, is not
/// enabled: wasmtime 48 does not compile it.)
///
/// Throws store before they throw (see `syncs_out`), so the global is right
/// wherever a throw lands.
fn landings(ops: &[Operator]) -> Landings {
    let n = ops.len();
    let mut l = Landings {
        sync_out_before: vec![false; n],
        sync_in_after: vec![false; n],
    };
    let mut stack: Vec<usize> = Vec::new();
    let mut end_of = vec![usize::MAX; n];
    let mut else_of = vec![usize::MAX; n];
    let mut caught = vec![false; n];
    let mut branches: Vec<(usize, Vec<Option<usize>>)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => stack.push(i),
            Operator::TryTable { try_table } => {
                for c in &try_table.catches {
                    let (wasmparser::Catch::One { label: d, .. }
                    | wasmparser::Catch::OneRef { label: d, .. }
                    | wasmparser::Catch::All { label: d }
                    | wasmparser::Catch::AllRef { label: d }) = *c;
                    if let Some(at) = label(&stack, d) {
                        caught[at] = true;
                    }
                }
                stack.push(i);
            }
            Operator::Else => {
                if let Some(&at) = stack.last() {
                    else_of[at] = i;
                }
            }
            Operator::End => {
                if let Some(at) = stack.pop() {
                    end_of[at] = i;
                }
            }
            Operator::Br { relative_depth } | Operator::BrIf { relative_depth } => {
                branches.push((i, vec![label(&stack, *relative_depth)]));
            }
            Operator::BrTable { targets } => {
                let mut to: Vec<Option<usize>> = targets.targets().flatten().map(|d| label(&stack, d)).collect();
                to.push(label(&stack, targets.default()));
                branches.push((i, to));
            }
            _ => {}
        }
    }
    for (i, to) in branches {
        if to.into_iter().flatten().any(|at| caught[at]) {
            l.sync_out_before[i] = true;
        }
    }
    for at in (0..n).filter(|&at| caught[at]) {
        if matches!(ops[at], Operator::Loop { .. }) {
            l.sync_out_before[at] = true;
            l.sync_in_after[at] = true;
            continue;
        }
        let end = end_of[at];
        if end < n {
            l.sync_out_before[end] = true;
            l.sync_in_after[end] = true;
        }
        if matches!(ops[at], Operator::If { .. }) {
            // Without an `else`, a false condition arrives at the `end`
            // straight from the `if`.
            l.sync_out_before[at] = true;
            if else_of[at] < n {
                l.sync_out_before[else_of[at]] = true;
            }
        }
    }
    l
}

/// Bytes of a bulk memory operator (`memory.fill`, `memory.copy`,
/// `memory.init`) charged one gas each, as a power of two.
pub(crate) const BULK_BYTES_PER_GAS_LOG2: u32 = 2;

/// For a bulk operator, whose length is the operand on top of the stack:
/// how far to shift that length right to get its gas (`None` for any other
/// operator). Memory operators are charged per [`BULK_BYTES_PER_GAS_LOG2`]
/// bytes, table operators per element.
fn bulk_shift(op: &Operator) -> Option<u32> {
    match op {
        Operator::MemoryFill { .. } | Operator::MemoryCopy { .. } | Operator::MemoryInit { .. } => {
            Some(BULK_BYTES_PER_GAS_LOG2)
        }
        Operator::TableFill { .. } | Operator::TableCopy { .. } | Operator::TableInit { .. } => Some(0),
        _ => None,
    }
}

impl Reencode for Rewriter {
    type Error = String;

    fn intersperse_section_hook(
        &mut self,
        module: &mut Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), ReError<String>> {
        let next = before.map(rank).unwrap_or(u8::MAX);
        if next == 0 {
            return Ok(());
        }
        if !self.memory_done && next > rank(SectionId::Memory) {
            let mut memories = MemorySection::new();
            self.add_memory(&mut memories);
            module.section(&memories);
        }
        if !self.global_done && next > rank(SectionId::Global) {
            let mut globals = GlobalSection::new();
            self.add_global(&mut globals);
            module.section(&globals);
        }
        if !self.export_done && next > rank(SectionId::Export) {
            let mut exports = ExportSection::new();
            self.add_export(&mut exports);
            module.section(&exports);
        }
        Ok(())
    }

    fn parse_memory_section(
        &mut self,
        memories: &mut MemorySection,
        section: wasmparser::MemorySectionReader<'_>,
    ) -> Result<(), ReError<String>> {
        utils::parse_memory_section(self, memories, section)?;
        self.add_memory(memories);
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), ReError<String>> {
        utils::parse_global_section(self, globals, section)?;
        self.add_global(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), ReError<String>> {
        utils::parse_export_section(self, exports, section)?;
        self.add_export(exports);
        Ok(())
    }

    fn parse_function_body(&mut self, code: &mut CodeSection, func: FunctionBody<'_>) -> Result<(), ReError<String>> {
        let ty = *self
            .shape
            .func_types
            .get(self.next_func)
            .ok_or_else(|| ReError::UserError("function count".into()))?;
        self.next_func += 1;
        let params = *self
            .shape
            .type_params
            .get(ty as usize)
            .ok_or_else(|| ReError::UserError("type index".into()))?;
        let mut locals = Vec::new();
        let mut declared = 0u32;
        for pair in func.get_locals_reader()? {
            let (count, ty) = pair?;
            declared = declared.saturating_add(count);
            locals.push((count, self.val_type(ty)?));
        }
        let gas_local = params
            .checked_add(declared)
            .ok_or_else(|| ReError::UserError("too many locals".into()))?;
        locals.push((1, ValType::I64));

        let mut ops = Vec::new();
        let mut reader = func.get_operators_reader()?;
        while !reader.eof() {
            ops.push(reader.read()?);
        }
        // Bulk operators are charged by their length too: a scratch local
        // holds it (only in functions that have one, so others are
        // rewritten exactly as before).
        let scratch = gas_local + 1;
        if ops.iter().any(|op| bulk_shift(op).is_some()) {
            locals.push((1, ValType::I32));
        }
        let mut f = Function::new(locals);
        if ops.is_empty() {
            return Err(ReError::UserError("a function body without `end`".into()));
        }
        // Segment costs: cost[i] is charged before op i when a segment starts there.
        let mut starts = vec![0u64; ops.len()];
        let mut seg = 0usize;
        starts[0] = u64::from(declared);
        for (i, op) in ops.iter().enumerate() {
            starts[seg] += 1;
            if ends_segment(op) && i + 1 < ops.len() {
                seg = i + 1;
            }
        }

        let g = self.gas;
        let flag = MemArg {
            offset: 0,
            align: 2,
            memory_index: self.interrupt,
        };
        let sync_out = |f: &mut Function| {
            f.instruction(&Instruction::LocalGet(gas_local));
            f.instruction(&Instruction::GlobalSet(g));
        };
        let sync_in = |f: &mut Function| {
            f.instruction(&Instruction::GlobalGet(g));
            f.instruction(&Instruction::LocalSet(gas_local));
        };
        sync_in(&mut f);
        let landings = landings(&ops);
        // Open blocks inside the function body; a branch whose relative
        // depth equals this leaves the function.
        let mut depth = 0u32;
        let last = ops.len() - 1;
        for (i, op) in ops.iter().enumerate() {
            let cost = starts[i];
            // Checks sit where every cycle passes: function entry and loop
            // heads. Elsewhere the segment is only subtracted; the gas may
            // dip below zero until the next check, by at most the acyclic
            // code between two checks.
            let check = i == 0 || matches!(ops[i - 1], Operator::Loop { .. });
            if cost > 0 {
                f.instruction(&Instruction::LocalGet(gas_local));
                f.instruction(&Instruction::I64Const(cost as i64));
                f.instruction(&Instruction::I64Sub);
                f.instruction(&Instruction::LocalSet(gas_local));
            }
            if check {
                // if (gas < 0) | interrupted {
                //     gas_global = gas < 0 ? -1 : gas   ;; -1: out-of-gas sentinel
                //     unreachable
                // }
                f.instruction(&Instruction::LocalGet(gas_local));
                f.instruction(&Instruction::I64Const(0));
                f.instruction(&Instruction::I64LtS);
                // The flag's address is `gas >> 63`: 0 whenever this load
                // matters (gas < 0 takes the branch anyway). Computed, not
                // constant, so the compiler cannot treat the load as
                // redundant with the previous check's and hoist it out of
                // the loop, as non-shared memory would otherwise entitle it to.
                f.instruction(&Instruction::LocalGet(gas_local));
                f.instruction(&Instruction::I64Const(63));
                f.instruction(&Instruction::I64ShrU);
                f.instruction(&Instruction::I32WrapI64);
                f.instruction(&Instruction::I32Load(flag));
                f.instruction(&Instruction::I32Or);
                f.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
                f.instruction(&Instruction::I64Const(-1));
                f.instruction(&Instruction::LocalGet(gas_local));
                f.instruction(&Instruction::LocalGet(gas_local));
                f.instruction(&Instruction::I64Const(0));
                f.instruction(&Instruction::I64LtS);
                f.instruction(&Instruction::Select);
                f.instruction(&Instruction::GlobalSet(g));
                f.instruction(&Instruction::Unreachable);
                f.instruction(&Instruction::End);
            }
            let leaves_function = match op {
                Operator::Return | Operator::Unreachable => true,
                Operator::Br { relative_depth } | Operator::BrIf { relative_depth } => *relative_depth == depth,
                Operator::BrTable { targets } => {
                    targets.default() == depth || targets.targets().any(|t| t.is_ok_and(|t| t == depth))
                }
                Operator::End => i == last,
                _ => false,
            };
            let is_call = matches!(
                op,
                Operator::Call { .. } | Operator::CallIndirect { .. } | Operator::CallRef { .. }
            );
            // Leaving by a tail call or a throw: the count goes with it (a
            // throw's handler, here or in a caller, reloads it).
            let syncs_out = matches!(
                op,
                Operator::ReturnCall { .. }
                    | Operator::ReturnCallIndirect { .. }
                    | Operator::ReturnCallRef { .. }
                    | Operator::Throw { .. }
                    | Operator::ThrowRef
            );
            if leaves_function || is_call || syncs_out || landings.sync_out_before[i] {
                sync_out(&mut f);
            }
            match op {
                Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } | Operator::TryTable { .. } => {
                    depth += 1
                }
                Operator::End if i != last => depth = depth.saturating_sub(1),
                Operator::Try { .. } | Operator::Delegate { .. } | Operator::Catch { .. } | Operator::CatchAll => {
                    return Err(ReError::UserError(
                        "the legacy exception-handling form is not supported".into(),
                    ));
                }
                _ => {}
            }
            if let Some(shift) = bulk_shift(op) {
                // The length is the operand on top: charge it, keep it.
                //   gas -= (u64) n >> shift
                f.instruction(&Instruction::LocalTee(scratch));
                f.instruction(&Instruction::LocalGet(gas_local));
                f.instruction(&Instruction::LocalGet(scratch));
                f.instruction(&Instruction::I64ExtendI32U);
                if shift > 0 {
                    f.instruction(&Instruction::I64Const(i64::from(shift)));
                    f.instruction(&Instruction::I64ShrU);
                }
                f.instruction(&Instruction::I64Sub);
                f.instruction(&Instruction::LocalSet(gas_local));
            }
            f.instruction(&self.instruction(op.clone())?);
            if is_call || landings.sync_in_after[i] {
                sync_in(&mut f);
            }
        }
        code.function(&f);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(wasm: &[u8]) {
        let mut config = wasmtime::Config::new();
        config.wasm_multi_memory(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        wasmtime::Module::validate(&engine, wasm).unwrap();
    }

    #[test]
    fn rewritten_modules_validate() {
        for src in [
            r#"(module (func (export "_start")))"#,
            r#"(module (global (mut i32) (i32.const 0)) (func $f (param i32) (result i32)
                 (block (drop (br_if 1 (local.get 0) (i32.const 1)))) (if (local.get 0) (then (return (i32.const 2))))
                 (loop $l (br_if $l (i32.const 0))) (br_table 0 0 (i32.const 7) (i32.const 0)))
               (func (export "_start") (drop (call $f (i32.const 1)))))"#,
            r#"(module (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
               (memory 1) (func (export "_start") (local i64 f64) (drop (call 0)) (unreachable)))"#,
            r#"(module (func $s) (start $s) (func (export "_start")))"#,
        ] {
            let wasm = wat::parse_str(src).unwrap();
            validate(&wasm);
            let out = instrument_inline(&wasm).unwrap();
            validate(&out);
            assert!(out.len() > wasm.len());
        }
        let two = wat::parse_str(r#"(module (memory 1) (memory 1) (func (export "_start")))"#).unwrap();
        assert!(instrument_inline(&two).unwrap_err().contains("more than one memory"));
    }
}
