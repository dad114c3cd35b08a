//! Hugging Face model folders: `config.json` and the tokenizer files, turned into the
//! GGUF metadata and tensor names llama.cpp needs to run the model.
//!
//! The keys, names and transformations follow llama.cpp's own converter
//! (`convert_hf_to_gguf.py`) and gguf-py's constants, so that a folder converted here
//! and one converted there give llama.cpp the same model.

pub mod arch;
pub mod config;
pub mod sentencepiece;
pub mod tensors;
pub mod tokenizer;

pub use arch::{Architecture, TensorName};
pub use config::{ModelConfig, RopeScaling};
pub use tensors::{ModelFolder, RopeRowOrder};
pub use tokenizer::{tokenizer_metadata, TokenizerFiles};

#[cfg(test)]
mod tests;
