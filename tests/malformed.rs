//! The malformed-file corpus (tests/malformed/): every file gives its manifest's typed
//! error, at the stage the manifest names, and nothing panics.
//!
//! Each file is read as a streaming caller reads it (from an empty prefix, following
//! `NeedMoreBytes` up to the whole file); where reading succeeds, it is planned (GGUF
//! output, TQ2_0, unless the manifest says otherwise) and every op is converted from
//! its input bytes.
#![cfg(feature = "model-files")]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use ternary_quant::io::hf::{ModelFolder, TokenizerFiles};
use ternary_quant::io::{convert_tensor, plan_conversion, read_model, ModelHeader, OutputFormat, PlanOptions};
use ternary_quant::layout::TernaryLayout;
use ternary_quant::Error;

#[derive(Deserialize, Debug)]
struct Manifest {
    cases: Vec<Case>,
    folders: Vec<FolderCase>,
}

/// A broken Hugging Face model folder (`folders/<dir>`).
#[derive(Deserialize, Debug)]
struct FolderCase {
    dir: String,
    what: String,
    category: String,
    stage: String,
    contains: Vec<String>,
}

#[derive(Deserialize, Debug)]
struct Case {
    file: String,
    what: String,
    category: String,
    stage: String,
    kind: String,
    contains: Vec<String>,
    tensor: Option<String>,
    output: Option<String>,
    layout: Option<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(corpus_dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json parses")
}

/// The variant name of an error, under any `Error::Tensor`.
fn kind(e: &Error) -> &'static str {
    match e.root() {
        Error::EmptyInput { .. } => "EmptyInput",
        Error::NonFinite { .. } => "NonFinite",
        Error::ShapeMismatch { .. } => "ShapeMismatch",
        Error::SizeOverflow { .. } => "SizeOverflow",
        Error::RowNotBlockAligned { .. } => "RowNotBlockAligned",
        Error::Unsupported(_) => "Unsupported",
        Error::InvalidOption { .. } => "InvalidOption",
        Error::ByteLength { .. } => "ByteLength",
        Error::Tensor { .. } => "Tensor",
        Error::InvalidCode { .. } => "InvalidCode",
        Error::NeedMoreBytes { .. } => "NeedMoreBytes",
        Error::Malformed { .. } => "Malformed",
        _ => "other",
    }
}

/// Reads from an empty prefix, following `NeedMoreBytes`; the result must equal a
/// read of the whole file at once.
fn read_streaming(bytes: &[u8]) -> Result<ModelHeader, Error> {
    let size = bytes.len() as u64;
    let mut have = 0usize;
    let streamed = loop {
        match read_model(&bytes[..have], size) {
            Err(Error::NeedMoreBytes { needed }) => {
                assert!(needed > have as u64 && needed <= size, "NeedMoreBytes {needed} with {have} of {size}");
                have = needed as usize;
            }
            other => break other,
        }
    };
    assert_eq!(streamed, read_model(bytes, size), "streamed and whole reads differ");
    streamed
}

fn plan_options(case: &Case) -> PlanOptions {
    let output = OutputFormat::from_name(case.output.as_deref().unwrap_or("gguf")).expect("output");
    let default_layout = if output == OutputFormat::Gguf { "tq2_0" } else { "bitnet-hf" };
    let layout = TernaryLayout::from_name(case.layout.as_deref().unwrap_or(default_layout)).expect("layout");
    PlanOptions { output, layout, ..PlanOptions::default() }
}

/// Where the file failed, and how; `None` when it converted whole.
fn run(case: &Case, bytes: &[u8]) -> Option<(&'static str, Error)> {
    let header = match read_streaming(bytes) {
        Ok(h) => h,
        Err(e) => return Some(("read", e)),
    };
    let plan = match plan_conversion(std::slice::from_ref(&header), &plan_options(case)) {
        Ok(p) => p,
        Err(e) => return Some(("plan", e)),
    };
    let mut first = None;
    for op in &plan.ops {
        let mut input = Vec::new();
        for r in &op.inputs {
            input.extend_from_slice(&bytes[r.offset as usize..(r.offset + r.length) as usize]);
        }
        match convert_tensor(op, &input, true) {
            Ok(c) => assert_eq!(c.bytes.len() as u64, op.output_length, "{}: converted length", op.name),
            Err(e) => {
                first.get_or_insert(("convert", e));
            }
        }
    }
    first
}

/// Checks one case; the reason it fails, if it does.
fn check(case: &Case) -> Result<(), String> {
    let bytes = std::fs::read(corpus_dir().join("files").join(&case.file)).map_err(|e| format!("cannot read: {e}"))?;
    let outcome = catch_unwind(AssertUnwindSafe(|| run(case, &bytes))).map_err(|_| "panicked".to_string())?;
    let Some((stage, e)) = outcome else {
        return Err(format!("expected a {} error at {}, but it converted", case.kind, case.stage));
    };
    let message = e.to_string();
    if stage != case.stage || kind(&e) != case.kind {
        return Err(format!("expected {} at {}, got {} at {stage}: {message}", case.kind, case.stage, kind(&e)));
    }
    if let Some(missing) = case.contains.iter().find(|c| !message.contains(c.as_str())) {
        return Err(format!("the message lacks {missing:?}: {message}"));
    }
    if let Some(tensor) = &case.tensor {
        if !matches!(&e, Error::Tensor { name, .. } if name == tensor) {
            return Err(format!("the error does not name tensor {tensor:?}: {message}"));
        }
    }
    if message.contains('\n') {
        return Err(format!("the message is not one line: {message:?}"));
    }
    Ok(())
}

#[test]
fn every_corpus_file_gives_its_typed_error() {
    let manifest = manifest();
    let failures: Vec<String> = manifest
        .cases
        .iter()
        .filter_map(|case| check(case).err().map(|why| format!("{} ({}): {why}", case.file, case.what)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} corpus files fail:\n{}",
        failures.len(),
        manifest.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_manifest_lists_exactly_the_corpus_files() {
    let manifest = manifest();
    let mut listed: Vec<&str> = manifest.cases.iter().map(|c| c.file.as_str()).collect();
    listed.sort_unstable();
    let before = listed.len();
    listed.dedup();
    assert_eq!(listed.len(), before, "a file is listed twice");
    let mut present: Vec<String> = std::fs::read_dir(corpus_dir().join("files"))
        .expect("files/")
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8 name"))
        .collect();
    present.sort_unstable();
    assert_eq!(present, listed);
    assert!(listed.len() >= 30, "the corpus has {} files", listed.len());
    for case in &manifest.cases {
        assert!(["read", "plan", "convert"].contains(&case.stage.as_str()), "{}: stage {}", case.file, case.stage);
        assert!(!case.contains.is_empty() && !case.category.is_empty(), "{}", case.file);
    }
}

/// Every file also fails, without a panic, at every shorter length read as a whole
/// file (a truncated download), and given as a short prefix of its real size.
#[test]
fn every_prefix_of_every_corpus_file_reads_without_panic() {
    for case in manifest().cases {
        let bytes = std::fs::read(corpus_dir().join("files").join(&case.file)).expect("file");
        let step = (bytes.len() / 256).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let result = catch_unwind(|| {
                let _ = read_model(&bytes[..cut], cut as u64);
                let _ = read_model(&bytes[..cut], bytes.len() as u64);
            });
            assert!(result.is_ok(), "{} cut at {cut} panics", case.file);
        }
    }
}

/// A folder case as the converter meets it: config.json and the tokenizer files read
/// into a [`ModelFolder`], then the conversion of model.safetensors planned with it.
/// Returns the stage and message of the first error.
fn run_folder(dir: &Path) -> Option<(&'static str, Error)> {
    let read = |file: &str| std::fs::read(dir.join(file)).ok();
    let config = read("config.json")?;
    let weights = read("model.safetensors")?;
    let (tokenizer_json, tokenizer_model) = (read("tokenizer.json"), read("tokenizer.model"));
    let files = TokenizerFiles {
        tokenizer_json: tokenizer_json.as_deref(),
        tokenizer_model: tokenizer_model.as_deref(),
        ..Default::default()
    };
    let model = match ModelFolder::from_files(None, &config, files) {
        Ok(m) => m,
        Err(e) => return Some(("folder", e)),
    };
    let header = read_model(&weights, weights.len() as u64).expect("the folder's weights read");
    match plan_conversion(&[header], &PlanOptions { model: Some(model), ..PlanOptions::default() }) {
        Ok(_) => None,
        Err(e) => Some(("plan", e)),
    }
}

/// Every folder case that fails in the engine (at `folder` or `plan`) gives a one-line
/// `Error::ModelFolder` naming the file and the field, without a panic; `open` cases
/// (files the caller cannot find) lack what they say. The CLI runs every case
/// (pkg-tests/malformed.test.mjs).
#[test]
fn every_corpus_folder_gives_its_error() {
    let manifest = manifest();
    assert!(manifest.folders.len() >= 12, "{} folder cases", manifest.folders.len());
    let mut failures = Vec::new();
    for case in &manifest.folders {
        let dir = corpus_dir().join("folders").join(&case.dir);
        assert!(dir.is_dir() && !case.category.is_empty(), "{}", case.dir);
        let outcome = match catch_unwind(AssertUnwindSafe(|| run_folder(&dir))) {
            Ok(o) => o,
            Err(_) => {
                failures.push(format!("{}: panicked", case.dir));
                continue;
            }
        };
        match (case.stage.as_str(), outcome) {
            ("open", None) => {}
            ("open", Some((stage, e))) => failures.push(format!("{}: an open case failed at {stage}: {e}", case.dir)),
            (want, Some((stage, e))) => {
                let message = e.to_string();
                if stage != want || !matches!(e.root(), Error::ModelFolder { .. }) || message.contains('\n') {
                    failures.push(format!(
                        "{} ({}): expected a ModelFolder error at {want}, got {stage}: {message}",
                        case.dir, case.what
                    ));
                } else if let Some(missing) = case.contains.iter().find(|c| !message.contains(c.as_str())) {
                    failures.push(format!("{}: the message lacks {missing:?}: {message}", case.dir));
                }
            }
            (want, None) => failures.push(format!("{}: expected an error at {want}, got none", case.dir)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
