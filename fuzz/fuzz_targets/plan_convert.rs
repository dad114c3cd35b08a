//! Read -> plan with options from the input -> convert every op from its input bytes.
//!
//! Input: four option bytes (see `plan_options`), then a model file. When the first
//! option byte is >= 0x80, four more bytes (u32 LE) give a split point and the rest is
//! read as two files, planned together as the shards of one model.
#![no_main]

use fuzz_support::plan_and_convert;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first_chunk::<4>() else { return };
    if ctl[0] >= 0x80 {
        let Some((&at, rest)) = rest.split_first_chunk::<4>() else { return };
        let at = (u32::from_le_bytes(at) as usize).min(rest.len());
        let (a, b) = rest.split_at(at);
        plan_and_convert(&[a, b], ctl);
    } else {
        plan_and_convert(&[rest], ctl);
    }
});
