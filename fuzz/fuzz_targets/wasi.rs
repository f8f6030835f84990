//! The WASI calls with hostile pointers, lengths, descriptors and flags
//! (`sharegrid_sandbox::fuzzing::wasi_calls`): never a panic, never output
//! past the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: sharegrid_fuzz::seeds::write_if_asked("wasi"), |data: &[u8]| sharegrid_sandbox::fuzzing::wasi_calls(data));
