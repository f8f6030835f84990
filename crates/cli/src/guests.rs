//! The example guest the demo runs, embedded so `sharegrid demo` needs no files. Built
//! from `guests/src` by `guests/build.sh`; the bytes are committed because
//! fuel counts belong to the exact bytes.

pub(crate) const MANDELBROT: &[u8] = include_bytes!("../../../guests/wasm/mandelbrot.wasm");
