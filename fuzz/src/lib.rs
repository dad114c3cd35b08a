//! Helpers shared by the fuzz targets: reading a file the way a streaming caller does
//! (a growing prefix, following `NeedMoreBytes`), and invariants of read headers and
//! conversion plans.

use ternary_quant::io::gguf::read_gguf;
use ternary_quant::io::safetensors::read_safetensors;
use ternary_quant::io::{
    convert_tensor, plan_conversion, read_model, ConversionPlan, DType, Format, ModelHeader, OutputFormat, PlanOptions,
    ScaleSemantics,
};
use ternary_quant::io::hf::{ModelFolder, TokenizerFiles};
use ternary_quant::layout::TernaryLayout;
use ternary_quant::{Backend, Error, Result, ScaleRule, Scope};

/// Which reader to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    Model,
    Safetensors,
    Gguf,
}

impl Reader {
    fn read(self, prefix: &[u8], file_size: u64) -> Result<ModelHeader> {
        match self {
            Reader::Model => read_model(prefix, file_size),
            Reader::Safetensors => read_safetensors(prefix, file_size),
            Reader::Gguf => read_gguf(prefix, file_size),
        }
    }
}

/// A file split from a fuzz input: two control bytes, then the file's known bytes.
/// The file's size is at least the bytes given (more when the first control byte asks,
/// to exercise headers whose data lies past the bytes in memory); the first read uses
/// a prefix whose length the second control byte chooses.
pub struct FuzzFile<'a> {
    pub bytes: &'a [u8],
    pub file_size: u64,
    pub first_prefix: usize,
}

impl<'a> FuzzFile<'a> {
    pub fn split(data: &'a [u8]) -> Option<FuzzFile<'a>> {
        let (&[size_ctl, prefix_ctl], bytes) = data.split_first_chunk::<2>()?;
        let extra = match size_ctl {
            0..=191 => 0,
            192..=223 => (size_ctl - 191) as u64,
            224..=254 => 1u64 << (size_ctl - 224 + 8),
            255 => u64::MAX - bytes.len() as u64,
        };
        let file_size = bytes.len() as u64 + extra;
        let first_prefix = bytes.len() * prefix_ctl as usize / 255;
        Some(FuzzFile { bytes, file_size, first_prefix })
    }
}

/// Reads a header as a streaming caller does: start from `first_prefix` bytes and
/// follow `NeedMoreBytes` (which must ask for more than it was given, and no more than
/// the file) until the reader answers. Past the bytes in memory the answer is `None`.
pub fn read_following(reader: Reader, file: &FuzzFile<'_>) -> Option<Result<ModelHeader>> {
    let mut have = file.first_prefix;
    for _ in 0..200 {
        match reader.read(&file.bytes[..have], file.file_size) {
            Err(Error::NeedMoreBytes { needed }) => {
                assert!(needed > have as u64, "NeedMoreBytes asks for {needed} bytes with {have} given");
                assert!(needed <= file.file_size, "NeedMoreBytes asks for {needed} of a {}-byte file", file.file_size);
                if needed > file.bytes.len() as u64 {
                    return None;
                }
                have = needed as usize;
            }
            other => return Some(other),
        }
    }
    panic!("NeedMoreBytes did not converge in 200 rounds");
}

/// Invariants of a header read from a file of `file_size` bytes.
pub fn check_header(h: &ModelHeader, file_size: u64) {
    assert_eq!(h.file_size, file_size);
    assert!(h.header_len <= file_size, "header of {} bytes in a {file_size}-byte file", h.header_len);
    assert!(h.header_len <= h.data_offset);
    let mut ranges = Vec::new();
    for t in &h.tensors {
        let end = t.offset.checked_add(t.byte_len).expect("tensor end overflows");
        assert!(t.offset >= h.data_offset, "tensor {:?} starts before the data section", t.name);
        assert!(end <= file_size, "tensor {:?} ends at {end}, past the {file_size}-byte file", t.name);
        if t.dtype != DType::BitnetHf {
            assert_eq!(t.dtype.tensor_bytes(&t.shape).ok(), Some(t.byte_len), "tensor {:?} byte length", t.name);
        }
        if t.byte_len > 0 {
            ranges.push((t.offset, end));
        }
        if h.format == Format::Gguf {
            let a = h.alignment.expect("GGUF has an alignment") as u64;
            assert_eq!((t.offset - h.data_offset) % a, 0, "tensor {:?} is not aligned", t.name);
        }
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "tensor ranges {:?} and {:?} overlap", w[0], w[1]);
    }
    let mut names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert!(names.windows(2).all(|w| w[0] != w[1]), "duplicate tensor names");
}

/// Reads a fuzz file with `reader`: following `NeedMoreBytes` from the chosen prefix
/// must give what reading the whole known prefix at once gives.
pub fn fuzz_reader(reader: Reader, data: &[u8]) {
    let Some(file) = FuzzFile::split(data) else { return };
    let whole = reader.read(file.bytes, file.file_size);
    if let Ok(h) = &whole {
        check_header(h, file.file_size);
    }
    if let Some(streamed) = read_following(reader, &file) {
        match (&streamed, &whole) {
            // The whole prefix may still be short of the header.
            (_, Err(Error::NeedMoreBytes { .. })) => panic!("a streamed read ended where the whole prefix is short"),
            // Debug text, so that NaN metadata values compare equal.
            (Ok(s), Ok(w)) => assert_eq!(format!("{s:?}"), format!("{w:?}"), "streamed and whole reads differ"),
            (s, w) => assert_eq!(s, w, "streamed and whole reads differ"),
        }
    }
}

/// Plan options from four control bytes.
pub fn plan_options(ctl: [u8; 4], tensor_names: &[&str]) -> (PlanOptions, bool) {
    let (output, layout) = match ctl[0] % 8 {
        0 | 1 => (OutputFormat::Gguf, TernaryLayout::Tq2_0),
        2 => (OutputFormat::Gguf, TernaryLayout::Tq1_0),
        3 => (OutputFormat::Gguf, TernaryLayout::I2S),
        4 | 5 => (OutputFormat::BitnetHf, TernaryLayout::BitnetHf),
        // Combinations the plan must refuse.
        6 => (OutputFormat::Gguf, TernaryLayout::ALL[(ctl[0] / 8 % 5) as usize]),
        _ => (OutputFormat::BitnetHf, TernaryLayout::ALL[(ctl[0] / 8 % 5) as usize]),
    };
    let rule = ScaleRule::ALL[(ctl[1] % 4) as usize];
    let scope = match ctl[1] / 4 % 8 {
        0..=3 => Scope::Tensor,
        4 => Scope::Row,
        5 => Scope::Block(256),
        6 => Scope::Block(ctl[1] as usize / 32),
        _ => Scope::Block(128),
    };
    let bitnet_scale = match ctl[2] % 3 {
        0 => None,
        1 => Some(ScaleSemantics::Multiply),
        _ => Some(ScaleSemantics::Divide),
    };
    let backend = match ctl[2] / 3 % 4 {
        0 => Backend::Scalar,
        1 => Backend::ALL[(ctl[2] / 12 % 4) as usize],
        _ => Backend::best(),
    };
    let measure = ctl[2] & 0x80 != 0;
    let mut opts = PlanOptions { output, layout, rule, scope, bitnet_scale, backend, ..PlanOptions::default() };
    for (i, name) in tensor_names.iter().enumerate().take(4) {
        if ctl[3] & (1 << i) != 0 {
            opts.force_ternary.insert(name.to_string());
        }
        if ctl[3] & (0x10 << i) != 0 {
            opts.force_keep.insert(name.to_string());
        }
    }
    (opts, measure)
}

/// Invariants of a plan over `inputs`.
pub fn check_plan(plan: &ConversionPlan, inputs: &[ModelHeader], opts: &PlanOptions) {
    assert_eq!(plan.output, opts.output);
    let header_len = plan.header.len() as u64;
    assert!(header_len <= plan.output_size);
    let mut ranges: Vec<(u64, u64, &str)> = Vec::new();
    for op in &plan.ops {
        let end = op.output_offset.checked_add(op.output_length).expect("op end overflows");
        assert!(op.output_offset >= header_len, "op {:?} writes into the header", op.name);
        assert!(end <= plan.output_size, "op {:?} ends at {end}, past the output size {}", op.name, plan.output_size);
        for r in &op.inputs {
            let input = &inputs[r.file];
            assert!(
                r.offset.checked_add(r.length).is_some_and(|e| e <= input.file_size),
                "op {:?} input range",
                op.name
            );
        }
        if op.output_length > 0 {
            ranges.push((op.output_offset, end, &op.name));
        }
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "output ranges of {:?} and {:?} overlap", w[0].2, w[1].2);
    }
    // The output header reads back, and describes exactly the ops' ranges.
    let out = read_model(&plan.header, plan.output_size)
        .unwrap_or_else(|e| panic!("the planned output header does not read back: {e}"));
    check_header(&out, plan.output_size);
    let mut expected: Vec<(String, u64, u64)> = Vec::new();
    for op in &plan.ops {
        match &op.scale_name {
            Some(scale) => {
                expected.push((op.name.clone(), op.output_offset, op.output_length - 4));
                expected.push((scale.clone(), op.output_offset + op.output_length - 4, 4));
            }
            None => expected.push((op.name.clone(), op.output_offset, op.output_length)),
        }
    }
    let mut got: Vec<(String, u64, u64)> = out.tensors.iter().map(|t| (t.name.clone(), t.offset, t.byte_len)).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "the output header and the ops disagree");
}

/// Largest op input converted (bytes), so that one run stays fast.
pub const MAX_CONVERT_BYTES: u64 = 1 << 18;
/// Largest op converted (values).
pub const MAX_CONVERT_VALUES: u64 = 1 << 17;

/// Plans `inputs` (each file's bytes, fully known) and converts every op from the
/// bytes of its input ranges.
pub fn plan_and_convert(files: &[&[u8]], ctl: [u8; 4]) {
    let mut inputs = Vec::new();
    for f in files {
        match read_model(f, f.len() as u64) {
            Ok(h) => {
                check_header(&h, f.len() as u64);
                inputs.push(h);
            }
            Err(_) => return,
        }
    }
    let names: Vec<&str> = inputs.iter().flat_map(|h| h.tensors.iter().map(|t| t.name.as_str())).collect();
    let (opts, measure) = plan_options(ctl, &names);
    let Ok(plan) = plan_conversion(&inputs, &opts) else { return };
    check_plan(&plan, &inputs, &opts);
    for op in &plan.ops {
        if op.input_length() > MAX_CONVERT_BYTES || op.element_count() > MAX_CONVERT_VALUES {
            continue;
        }
        let mut input = Vec::with_capacity(op.input_length() as usize);
        for r in &op.inputs {
            input.extend_from_slice(&files[r.file][r.offset as usize..(r.offset + r.length) as usize]);
        }
        match convert_tensor(op, &input, measure) {
            Ok(c) => {
                assert_eq!(c.bytes.len() as u64, op.output_length, "op {:?}: converted length", op.name);
                assert_eq!(c.stats.is_some(), measure);
            }
            Err(e) => {
                assert!(matches!(&e, Error::Tensor { name, .. } if name == &op.name), "error does not name the tensor");
                assert!(
                    !matches!(
                        e.root(),
                        Error::ByteLength { .. } | Error::ShapeMismatch { .. } | Error::SizeOverflow { .. }
                    ),
                    "op {:?} ({:?} {} -> {}) given its planned input fails with {e}",
                    op.name,
                    op.kind,
                    op.in_type,
                    op.out_type
                );
            }
        }
        // One byte short is refused, naming the tensor.
        if let Some((_, short)) = input.split_last() {
            let e = convert_tensor(op, short, false).expect_err("a short input converts");
            assert!(matches!(e.root(), Error::ByteLength { .. }), "short input: {e}");
        }
    }
}

/// The `model_folder` target: see its input format there. A folder that does not read
/// must give a one-line error naming a file; one that reads must plan (or refuse) its
/// weights without a panic, every op of the plan must convert from its planned input,
/// and the output must carry the architecture.
pub fn model_folder(data: &[u8]) {
    let mut rest = data;
    let mut files: [Option<&[u8]>; 4] = [None; 4];
    for file in &mut files {
        let Some((&len, after)) = rest.split_first_chunk::<2>() else { return };
        let (bytes, after) = after.split_at((u16::from_le_bytes(len) as usize).min(after.len()));
        *file = (!bytes.is_empty()).then_some(bytes);
        rest = after;
    }
    let [config, tokenizer_json, tokenizer_model, tokenizer_config_json] = files;
    let Some(config) = config else { return };
    let tokenizer = TokenizerFiles { tokenizer_json, tokenizer_model, tokenizer_config_json, ..Default::default() };
    let model = match ModelFolder::from_files(None, config, tokenizer) {
        Ok(model) => model,
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "a multi-line error: {message}");
            assert!(matches!(e, Error::ModelFolder { .. }), "not a model-folder error: {e:?}");
            return;
        }
    };
    let Ok(header) = read_model(rest, rest.len() as u64) else { return };
    let opts = PlanOptions { model: Some(model), ..PlanOptions::default() };
    let plan = match plan_conversion(std::slice::from_ref(&header), &opts) {
        Ok(plan) => plan,
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
            return;
        }
    };
    check_plan(&plan, std::slice::from_ref(&header), &opts);
    for op in &plan.ops {
        if op.input_length() > MAX_CONVERT_BYTES || op.element_count() > MAX_CONVERT_VALUES {
            continue;
        }
        let mut input = Vec::new();
        for r in &op.inputs {
            input.extend_from_slice(&rest[r.offset as usize..(r.offset + r.length) as usize]);
        }
        if let Ok(c) = convert_tensor(op, &input, false) {
            assert_eq!(c.bytes.len() as u64, op.output_length, "op {:?}: converted length", op.name);
        }
    }
}
