//! A Hugging Face model folder: config.json and the tokenizer files read into a model,
//! then the conversion of its weights planned and run with it.
//!
//! Input: four files, each as a u16 LE length then its bytes (config.json,
//! tokenizer.json, tokenizer.model, tokenizer_config.json; length 0: the file is
//! absent), then model.safetensors.
#![no_main]

use fuzz_support::model_folder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| model_folder(data));
