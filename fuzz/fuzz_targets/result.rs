//! The canonical result encoding, as a requestor fetches a provider's
//! result: whatever decodes must encode back to the same bytes (one
//! encoding per result) and so to the same hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharegrid_core::TaskResult;

fuzz_target!(init: sharegrid_fuzz::seeds::write_if_asked("result"), |data: &[u8]| {
    if let Ok(r) = TaskResult::decode(data) {
        assert_eq!(r.encode(), data, "a result decoded from bytes it does not encode to");
    }
});
