//! Fuzz target: decoding arbitrary bytes as a batch must never panic, and whatever
//! decodes must re-encode to exactly the same bytes. The input is tried as is and with
//! its CRC fixed up, so the fuzzer also reaches the record decoder behind the CRC check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::format::decode_batch;

fn round_trip(data: &[u8]) {
    if let Ok((batch, used)) = decode_batch(data) {
        let again = batch.encode().expect("a decoded batch re-encodes");
        assert_eq!(&again[..], &data[..used]);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip(data);
    if data.len() >= 17 {
        let mut fixed = data.to_vec();
        let claimed = u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize;
        let end = claimed.clamp(17, fixed.len());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&fixed[17..end]), &fixed[..12]);
        fixed[13..17].copy_from_slice(&crc.to_le_bytes());
        round_trip(&fixed);
    }
});
