//! Signed messages as they arrive: a `Signed` envelope, then its body as
//! each kind (offer, assignment, receipt, block header, transaction),
//! past the signature check so the body decoders are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharegrid_core::{Assignment, Offer, Receipt, Signed, decode_capped};
use sharegrid_ledger::{Header, Tx};

fuzz_target!(init: sharegrid_fuzz::seeds::write_if_asked("wire"), |data: &[u8]| {
    if let Ok(s) = decode_capped::<Signed>(data, 1 << 20) {
        let _ = s.open::<Offer>(4096);
        let _ = s.open_verified::<Offer>(4096);
        let _ = s.open_verified::<Assignment>(256 * 1024);
        let _ = s.open_verified::<Receipt>(16 * 1024);
        let _ = s.open_verified::<Header>(4096);
        let _ = s.open_verified::<Tx>(1 << 20);
    }
    // A body on its own, as the offer book and followers read it.
    let _ = decode_capped::<Offer>(data, 4096);
    let _ = decode_capped::<Assignment>(data, 256 * 1024);
    let _ = decode_capped::<Receipt>(data, 16 * 1024);
    let mut book = sharegrid_net::OfferBook::new(16);
    let _ = book.accept(data, None, 0);
});
