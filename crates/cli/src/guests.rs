//! The example guests, embedded so `sharegrid demo` needs no files. Built
//! from `guests/src` by `guests/build.sh`; the bytes are committed because
//! fuel counts belong to the exact bytes.

pub(crate) const MANDELBROT: &[u8] = include_bytes!("../../../guests/wasm/mandelbrot.wasm");
pub(crate) const PI: &[u8] = include_bytes!("../../../guests/wasm/pi.wasm");
pub(crate) const WORDCOUNT: &[u8] = include_bytes!("../../../guests/wasm/wordcount.wasm");
pub(crate) const HASHCHAIN: &[u8] = include_bytes!("../../../guests/wasm/hashchain.wasm");
