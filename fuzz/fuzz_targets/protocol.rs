//! Every request-response message a peer can send or answer with, decoded
//! as the codec decodes it (CBOR under the protocol's cap).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharegrid_core::decode_capped;
use sharegrid_net::{
    BlobRequest, BlobResponse, LedgerRequest, LedgerResponse, MAX_BLOB_REQUEST_BYTES, MAX_BLOB_RESPONSE_BYTES,
    MAX_LEDGER_REQUEST_BYTES, MAX_LEDGER_RESPONSE_BYTES, MAX_TASK_REQUEST_BYTES, MAX_TASK_RESPONSE_BYTES, TaskRequest,
    TaskResponse,
};

fuzz_target!(init: sharegrid_fuzz::seeds::write_if_asked("protocol"), |data: &[u8]| {
    let cap = |c: u64| c as usize;
    let _ = decode_capped::<TaskRequest>(data, cap(MAX_TASK_REQUEST_BYTES));
    let _ = decode_capped::<TaskResponse>(data, cap(MAX_TASK_RESPONSE_BYTES));
    let _ = decode_capped::<BlobRequest>(data, cap(MAX_BLOB_REQUEST_BYTES));
    let _ = decode_capped::<BlobResponse>(data, cap(MAX_BLOB_RESPONSE_BYTES));
    if let Ok(LedgerRequest::Submit(tx)) = decode_capped::<LedgerRequest>(data, cap(MAX_LEDGER_REQUEST_BYTES)) {
        let _ = tx.open::<sharegrid_ledger::Tx>(sharegrid_ledger::MAX_TX_BYTES);
    }
    let _ = decode_capped::<LedgerResponse>(data, cap(MAX_LEDGER_RESPONSE_BYTES));
});
