//! The safetensors header reader, directly and through `read_model`, from any prefix.
#![no_main]

use fuzz_support::{fuzz_reader, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_reader(Reader::Safetensors, data);
    fuzz_reader(Reader::Model, data);
});
