//! The crate against outside references, byte for byte:
//! - TQ2_0, TQ1_0 and Q8_0 against gguf-py (`gguf.quants.quantize`/`dequantize`);
//! - bitnet-hf against a numpy port of transformers' `pack_weights`/`unpack_weights`.
//!
//! The vectors come from `tests/oracle/gen_vectors.py OUT_DIR` (see its docs for the
//! format). The tests that read them are ignored by default; run them with
//! `TQ_ORACLE_DIR=OUT_DIR cargo test --test oracle -- --ignored` (scripts/test.sh does
//! both steps). Run that way, a missing or empty vector directory fails the tests.

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;

use half::f16;
use ternary_quant::{
    quantize_int8, quantize_ternary, Backend, Int8Layout, Int8Options, Int8Tensor, ScaleRule, Scope, TernaryLayout,
    TernaryOptions, TernaryTensor,
};

const ENV: &str = "TQ_ORACLE_DIR";

// ------------------------------------------------------------------------------------
// The manifest and the vector files.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Tq2_0,
    Tq1_0,
    Q8_0,
}

impl Format {
    fn parse(s: &str) -> Format {
        match s {
            "TQ2_0" => Format::Tq2_0,
            "TQ1_0" => Format::Tq1_0,
            "Q8_0" => Format::Q8_0,
            _ => panic!("manifest: unknown format {s:?}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Tq2_0 => "TQ2_0",
            Format::Tq1_0 => "TQ1_0",
            Format::Q8_0 => "Q8_0",
        }
    }

    /// (values per block, bytes per block)
    fn block(self) -> (usize, usize) {
        match self {
            Format::Tq2_0 => (256, 66),
            Format::Tq1_0 => (256, 54),
            Format::Q8_0 => (32, 34),
        }
    }
}

#[derive(Debug)]
struct QuantCase {
    name: String,
    rows: usize,
    cols: usize,
    formats: Vec<Format>,
}

#[derive(Debug)]
struct BitnetCase {
    name: String,
    out: usize,
    inp: usize,
    scale: f32,
}

struct Vectors {
    dir: PathBuf,
    quant: Vec<QuantCase>,
    bitnet: Vec<BitnetCase>,
}

impl Vectors {
    fn bytes(&self, file: &str) -> Vec<u8> {
        let path = self.dir.join(file);
        fs::read(&path).unwrap_or_else(|e| panic!("cannot read oracle file {}: {e}", path.display()))
    }

    fn f32s(&self, file: &str, len: usize) -> Vec<f32> {
        let bytes = self.bytes(file);
        assert_eq!(bytes.len(), 4 * len, "{file}: expected {len} f32 values");
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }

    fn i8s(&self, file: &str, len: usize) -> Vec<i8> {
        let bytes = self.bytes(file);
        assert_eq!(bytes.len(), len, "{file}: expected {len} bytes");
        bytes.into_iter().map(|b| b as i8).collect()
    }

    fn cases(&self, format: Format) -> Vec<&QuantCase> {
        let cases: Vec<&QuantCase> = self.quant.iter().filter(|c| c.formats.contains(&format)).collect();
        assert!(!cases.is_empty(), "the oracle manifest has no {} cases", format.name());
        cases
    }
}

/// Loads the vectors named by `dir` (the value of TQ_ORACLE_DIR). Panics, naming the
/// fix, when it is unset, missing, unreadable or holds no cases: these tests never pass
/// for lack of vectors.
fn load_from(dir: Option<OsString>) -> Vectors {
    let dir = PathBuf::from(dir.unwrap_or_else(|| {
        panic!(
            "{ENV} is not set. Generate the vectors with `python tests/oracle/gen_vectors.py DIR` \
             (gguf-py in a venv) and run `{ENV}=DIR cargo test --test oracle -- --ignored`, \
             or run scripts/test.sh, which does both"
        )
    }));
    let manifest = dir.join("manifest.txt");
    let text = fs::read_to_string(&manifest).unwrap_or_else(|e| {
        panic!("{ENV}={}: cannot read {}: {e}; generate the vectors first", dir.display(), manifest.display())
    });
    let mut quant = Vec::new();
    let mut bitnet = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("{}:{}: malformed record {line:?}", manifest.display(), n + 1);
        let num = |s: &str| s.parse::<usize>().unwrap_or_else(|_| panic!("{}", bad()));
        match fields.as_slice() {
            ["quant", name, rows, cols, formats] => quant.push(QuantCase {
                name: name.to_string(),
                rows: num(rows),
                cols: num(cols),
                formats: formats.split(',').map(Format::parse).collect(),
            }),
            ["bitnet", name, out, inp, bits] => bitnet.push(BitnetCase {
                name: name.to_string(),
                out: num(out),
                inp: num(inp),
                scale: f32::from_bits(u32::from_str_radix(bits, 16).unwrap_or_else(|_| panic!("{}", bad()))),
            }),
            _ => panic!("{}", bad()),
        }
    }
    assert!(!quant.is_empty(), "{} lists no gguf-py cases", manifest.display());
    assert!(!bitnet.is_empty(), "{} lists no bitnet-hf cases", manifest.display());
    Vectors { dir, quant, bitnet }
}

fn load() -> Vectors {
    load_from(std::env::var_os(ENV))
}

// ------------------------------------------------------------------------------------
// Comparisons. Each returns a description of the first difference, so a failure says
// which case, backend and value went wrong.

/// The first difference of `got` from `expected` under `same`, with each side shown by
/// `show`; `units` and `place` name the elements and their position in the message.
fn compare<T: Copy>(
    expected: &[T],
    got: &[T],
    (units, place): (&str, &str),
    same: impl Fn(T, T) -> bool,
    show: impl Fn(T) -> String,
) -> Result<(), String> {
    if expected.len() != got.len() {
        return Err(format!("length differs: expected {} {units}, got {}", expected.len(), got.len()));
    }
    let diffs: Vec<usize> = (0..expected.len()).filter(|&i| !same(expected[i], got[i])).collect();
    match diffs.first() {
        None => Ok(()),
        Some(&i) => Err(format!(
            "{} of {} {units} differ; first at {place} {i}: expected {}, got {}",
            diffs.len(),
            expected.len(),
            show(expected[i]),
            show(got[i])
        )),
    }
}

/// Byte-exact comparison.
fn compare_bytes(expected: &[u8], got: &[u8]) -> Result<(), String> {
    compare(expected, got, ("bytes", "byte"), |a, b| a == b, |v| format!("{v:#04x}"))
}

/// Equal bits, except that any NaN equals any NaN (NaN payloads are not specified).
/// So +0.0 and -0.0 differ, and inf and NaN differ.
fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Bitwise, NaN-aware comparison of values.
fn compare_f32(expected: &[f32], got: &[f32]) -> Result<(), String> {
    compare(expected, got, ("values", "index"), same_f32, |v| format!("{v:e} ({:#010x})", v.to_bits()))
}

/// Collects failures so that one run reports every failing case.
#[derive(Default)]
struct Report {
    checks: usize,
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, what: impl FnOnce() -> String, result: Result<(), String>) {
        self.checks += 1;
        if let Err(e) = result {
            self.failures.push(format!("{}: {e}", what()));
        }
    }

    /// The tensor of a quantizer's run on `backend`, or `None` with its error reported.
    fn quantized<T>(&mut self, name: &str, backend: Backend, what: &str, run: ternary_quant::Result<T>) -> Option<T> {
        run.map_err(|e| self.check(|| format!("{name} [{backend}]"), Err(format!("{what} failed: {e}")))).ok()
    }

    /// Checks a run's bytes, dequantized values and scales against the oracle's.
    fn outputs(&mut self, name: &str, backend: Backend, want: (&[u8], &[f32], &[f32]), got: (&[u8], &[f32], &[f32])) {
        self.check(|| format!("{name} [{backend}] bytes"), compare_bytes(want.0, got.0));
        self.check(|| format!("{name} [{backend}] dequantize"), compare_f32(want.1, got.1));
        self.check(|| format!("{name} [{backend}] scales"), compare_f32(want.2, got.2));
    }

    fn finish(self, title: &str, least_checks: usize) {
        assert!(
            self.failures.is_empty(),
            "{title}: {} of {} checks failed:\n  {}",
            self.failures.len(),
            self.checks,
            self.failures.join("\n  ")
        );
        assert!(self.checks >= least_checks, "{title}: only {} checks ran, expected >= {least_checks}", self.checks);
        eprintln!("{title}: {} checks passed on backends {:?}", self.checks, Backend::supported());
    }
}

// ------------------------------------------------------------------------------------
// gguf-py: TQ2_0, TQ1_0, Q8_0.

fn ternary_layout(format: Format) -> TernaryLayout {
    match format {
        Format::Tq2_0 => TernaryLayout::Tq2_0,
        Format::Tq1_0 => TernaryLayout::Tq1_0,
        Format::Q8_0 => unreachable!("Q8_0 is not a ternary layout"),
    }
}

/// The f16 scale of every block of gguf bytes, as f32.
fn block_scales(format: Format, bytes: &[u8]) -> Vec<f32> {
    let (_, size) = format.block();
    let at = if format == Format::Q8_0 { 0 } else { size - 2 };
    bytes.chunks_exact(size).map(|b| f16::from_le_bytes([b[at], b[at + 1]]).to_f32()).collect()
}

/// Checks one TQ format over every case and backend: quantize (absmax, block of 256)
/// gives gguf-py's bytes and dequantizes to gguf-py's values; the same bytes read back
/// through `from_bytes` and repacked through `from_codes` agree too.
fn check_ternary_format(format: Format) {
    let v = load();
    let layout = ternary_layout(format);
    let cases = v.cases(format);
    let backends = Backend::supported();
    let mut report = Report::default();
    for case in &cases {
        let (rows, cols, name) = (case.rows, case.cols, case.name.as_str());
        let input = v.f32s(&format!("{name}.in.f32"), rows * cols);
        let expected = v.bytes(&format!("{name}.{}.bin", format.name()));
        let expected_deq = v.f32s(&format!("{name}.{}.deq.f32", format.name()), rows * cols);
        let expected_scales = block_scales(format, &expected);
        for &backend in &backends {
            let opts = TernaryOptions { layout, rule: ScaleRule::AbsMax, scope: Scope::Block(256), backend };
            let run = quantize_ternary(&input, rows, cols, &opts);
            let Some(t) = report.quantized(name, backend, "quantize_ternary", run) else { continue };
            let want = (&expected[..], &expected_deq[..], &expected_scales[..]);
            report.outputs(name, backend, want, (&t.bytes, &t.dequantize(), &t.scales));
        }
        // The reading side: gguf-py's bytes as they are.
        match TernaryTensor::from_bytes(expected.clone(), rows, cols, layout, Scope::Block(256), None) {
            Ok(t) => {
                report.check(|| format!("{name} from_bytes dequantize"), compare_f32(&expected_deq, &t.dequantize()));
                report.check(|| format!("{name} from_bytes scales"), compare_f32(&expected_scales, &t.scales));
                // Repacking the codes with the stored scales gives the same bytes (the f16
                // scale survives f16 -> f32 -> f16). from_codes rejects infinite scales.
                if t.scales.iter().all(|s| s.is_finite()) {
                    let repacked =
                        TernaryTensor::from_codes(&t.codes(), rows, cols, layout, Scope::Block(256), &t.scales);
                    report.check(
                        || format!("{name} from_codes"),
                        repacked.map_err(|e| e.to_string()).and_then(|r| compare_bytes(&expected, &r.bytes)),
                    );
                }
            }
            Err(e) => report.check(|| format!("{name} from_bytes"), Err(e.to_string())),
        }
    }
    report.finish(
        &format!("{} vs gguf-py ({} cases)", format.name(), cases.len()),
        cases.len() * (3 * backends.len() + 2),
    );
}

#[test]
#[ignore = "needs gguf-py vectors: run scripts/test.sh"]
fn tq2_0_matches_gguf_py() {
    check_ternary_format(Format::Tq2_0);
}

#[test]
#[ignore = "needs gguf-py vectors: run scripts/test.sh"]
fn tq1_0_matches_gguf_py() {
    check_ternary_format(Format::Tq1_0);
}

fn q8_0_options(backend: Backend) -> Int8Options {
    Int8Options {
        layout: Int8Layout::Q8_0,
        scope: Scope::Block(32),
        symmetric: true,
        clip: None,
        percentile: None,
        backend,
    }
}

#[test]
#[ignore = "needs gguf-py vectors: run scripts/test.sh"]
fn q8_0_matches_gguf_py() {
    let v = load();
    let cases = v.cases(Format::Q8_0);
    let backends = Backend::supported();
    let mut report = Report::default();
    for case in &cases {
        let (rows, cols, name) = (case.rows, case.cols, case.name.as_str());
        let input = v.f32s(&format!("{name}.in.f32"), rows * cols);
        let expected = v.bytes(&format!("{name}.Q8_0.bin"));
        let expected_deq = v.f32s(&format!("{name}.Q8_0.deq.f32"), rows * cols);
        let expected_scales = block_scales(Format::Q8_0, &expected);
        let expected_values: Vec<i8> =
            expected.chunks_exact(34).flat_map(|b| b[2..].iter().map(|&q| q as i8)).collect();
        for &backend in &backends {
            let run = quantize_int8(&input, rows, cols, &q8_0_options(backend));
            let Some(t) = report.quantized(name, backend, "quantize_int8", run) else { continue };
            let want = (&expected[..], &expected_deq[..], &expected_scales[..]);
            report.outputs(name, backend, want, (&t.bytes, &t.dequantize(), &t.scales));
            report.check(
                || format!("{name} [{backend}] values"),
                if t.values == expected_values { Ok(()) } else { Err("int8 values differ from the bytes' qs".into()) },
            );
        }
        match Int8Tensor::from_bytes(expected.clone(), rows, cols, Int8Layout::Q8_0) {
            Ok(t) => {
                report.check(|| format!("{name} from_bytes dequantize"), compare_f32(&expected_deq, &t.dequantize()))
            }
            Err(e) => report.check(|| format!("{name} from_bytes"), Err(e.to_string())),
        }
    }
    report.finish(&format!("Q8_0 vs gguf-py ({} cases)", cases.len()), cases.len() * (4 * backends.len() + 1));
}

// ------------------------------------------------------------------------------------
// bitnet-hf against the numpy port of transformers' packing.

#[test]
#[ignore = "needs gguf-py vectors: run scripts/test.sh"]
fn bitnet_hf_matches_transformers_port() {
    let v = load();
    let backends = Backend::supported();
    let mut report = Report::default();
    for case in &v.bitnet {
        let (out, inp, g, name) = (case.out, case.inp, case.scale, case.name.as_str());
        let codes = v.i8s(&format!("{name}.codes.i8"), out * inp);
        let packed = v.bytes(&format!("{name}.packed.u8"));
        assert_eq!(packed.len(), out.div_ceil(4) * inp, "{name}.packed.u8 has the wrong length");
        let unpacked = v.i8s(&format!("{name}.unpacked.i8"), out * inp);
        let expected_deq: Vec<f32> = unpacked.iter().map(|&q| q as f32 * g).collect();
        let same_codes = |got: &[i8]| match (0..unpacked.len()).find(|&i| got.get(i) != Some(&unpacked[i])) {
            None if got.len() == unpacked.len() => Ok(()),
            None => Err(format!("{} codes, expected {}", got.len(), unpacked.len())),
            Some(i) => Err(format!("code {i} is {:?}, unpack_weights gives {}", got.get(i), unpacked[i])),
        };

        match TernaryTensor::from_codes(&codes, out, inp, TernaryLayout::BitnetHf, Scope::Tensor, &[g]) {
            Ok(t) => {
                report.check(|| format!("{name} from_codes bytes vs pack_weights"), compare_bytes(&packed, &t.bytes));
                report.check(|| format!("{name} codes() vs unpack_weights"), same_codes(&t.codes()));
                report.check(|| format!("{name} dequantize"), compare_f32(&expected_deq, &t.dequantize()));
                report.check(|| format!("{name} scales"), compare_f32(&[g], &t.scales));
            }
            Err(e) => report.check(|| format!("{name} from_codes"), Err(e.to_string())),
        }
        match TernaryTensor::from_bytes(packed.clone(), out, inp, TernaryLayout::BitnetHf, Scope::Tensor, Some(&[g])) {
            Ok(t) => report.check(|| format!("{name} from_bytes codes() vs unpack_weights"), same_codes(&t.codes())),
            Err(e) => report.check(|| format!("{name} from_bytes"), Err(e.to_string())),
        }
        // Quantizing g * q with absmax over the tensor recovers q, so it packs to the same bytes.
        let weights: Vec<f32> = codes.iter().map(|&q| q as f32 * g).collect();
        for &backend in &backends {
            let opts = TernaryOptions {
                layout: TernaryLayout::BitnetHf,
                rule: ScaleRule::AbsMax,
                scope: Scope::Tensor,
                backend,
            };
            report.check(
                || format!("{name} [{backend}] quantize_ternary bytes vs pack_weights"),
                quantize_ternary(&weights, out, inp, &opts)
                    .map_err(|e| e.to_string())
                    .and_then(|t| compare_bytes(&packed, &t.bytes)),
            );
        }
    }
    let n = v.bitnet.len();
    report.finish(&format!("bitnet-hf vs transformers port ({n} cases)"), n * (5 + backends.len()));
}

// ------------------------------------------------------------------------------------
// The checks can fail: mutations of the right answer are reported as mismatches.

/// ggml's Q8_0 rule written out here, with a choice of rounding, to show that the tie
/// cases tell round-half-away (ggml, C `roundf`) from round-half-even (SIMD `nearest`).
fn q8_0_by_hand(x: &[f32], round: fn(f32) -> f32) -> Vec<u8> {
    let mut out = Vec::new();
    for block in x.chunks_exact(32) {
        let d = block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|&v| round(v * id) as i8 as u8));
    }
    out
}

#[test]
#[ignore = "needs gguf-py vectors: run scripts/test.sh"]
fn comparisons_detect_mutations() {
    let v = load();
    let mut mutations = 0;
    for format in [Format::Tq2_0, Format::Tq1_0, Format::Q8_0] {
        let case = v.cases(format)[0];
        let (rows, cols, name) = (case.rows, case.cols, case.name.as_str());
        let input = v.f32s(&format!("{name}.in.f32"), rows * cols);
        let expected = v.bytes(&format!("{name}.{}.bin", format.name()));
        let expected_deq = v.f32s(&format!("{name}.{}.deq.f32", format.name()), rows * cols);
        let (ours, ours_deq) = match format {
            Format::Q8_0 => {
                let t = quantize_int8(&input, rows, cols, &q8_0_options(Backend::Scalar)).unwrap();
                (t.bytes.clone(), t.dequantize())
            }
            _ => {
                let opts = TernaryOptions {
                    layout: ternary_layout(format),
                    rule: ScaleRule::AbsMax,
                    scope: Scope::Block(256),
                    backend: Backend::Scalar,
                };
                let t = quantize_ternary(&input, rows, cols, &opts).unwrap();
                (t.bytes.clone(), t.dequantize())
            }
        };
        compare_bytes(&expected, &ours).unwrap();
        compare_f32(&expected_deq, &ours_deq).unwrap();
        // Every single-bit flip, at the first, a middle and the last byte, is caught.
        for at in [0, ours.len() / 2, ours.len() - 1] {
            for bit in 0..8 {
                let mut mutated = ours.clone();
                mutated[at] ^= 1 << bit;
                let err = compare_bytes(&expected, &mutated).expect_err("a flipped bit must be reported");
                assert!(err.contains(&format!("byte {at}")), "{err}");
                mutations += 1;
            }
        }
        let mut truncated = ours.clone();
        truncated.pop();
        compare_bytes(&expected, &truncated).expect_err("a missing byte must be reported");
        // The lowest bit of the first dequantized value and the sign bit of the last.
        for (i, mask) in [(0, 1u32), (expected_deq.len() - 1, 0x8000_0000)] {
            let mut mutated = ours_deq.clone();
            mutated[i] = f32::from_bits(mutated[i].to_bits() ^ mask);
            compare_f32(&expected_deq, &mutated).expect_err("a flipped value bit must be reported");
            mutations += 1;
        }
    }
    // A quantizer that rounds ties to even fails on the Q8_0 tie cases (ties at k + 0.5
    // with k even among them), while the same rule
    // with round-half-away matches gguf-py there.
    let ties: Vec<&QuantCase> = v.cases(Format::Q8_0).into_iter().filter(|c| c.name.contains("q8_ties")).collect();
    assert!(!ties.is_empty(), "the manifest has no Q8_0 tie cases");
    for case in ties {
        let name = case.name.as_str();
        let input = v.f32s(&format!("{name}.in.f32"), case.rows * case.cols);
        let expected = v.bytes(&format!("{name}.Q8_0.bin"));
        compare_bytes(&expected, &q8_0_by_hand(&input, f32::round)).unwrap();
        compare_bytes(&expected, &q8_0_by_hand(&input, f32::round_ties_even))
            .expect_err("round-half-even must differ from gguf-py on the tie cases");
        mutations += 1;
    }
    // Quantizing with another rule changes the bytes of a case of normal data.
    let case = v.quant.iter().find(|c| c.name.starts_with("normal_")).expect("a normal_ case");
    let input = v.f32s(&format!("{}.in.f32", case.name), case.rows * case.cols);
    let expected = v.bytes(&format!("{}.TQ2_0.bin", case.name));
    let opts = TernaryOptions {
        layout: TernaryLayout::Tq2_0,
        rule: ScaleRule::AbsMean,
        scope: Scope::Block(256),
        backend: Backend::Scalar,
    };
    let wrong_rule = quantize_ternary(&input, case.rows, case.cols, &opts).unwrap();
    compare_bytes(&expected, &wrong_rule.bytes).expect_err("absmean must differ from gguf-py's absmax");
    mutations += 1;
    eprintln!("{mutations} mutations detected");
}

// ------------------------------------------------------------------------------------
// Without vectors: the comparisons themselves, and the loud failure when vectors are missing.

#[test]
fn compare_f32_is_bitwise_and_nan_aware() {
    assert!(compare_f32(&[1.0, f32::NAN, f32::INFINITY], &[1.0, f32::NAN, f32::INFINITY]).is_ok());
    // NaN payloads and signs are not specified; any NaN equals any NaN.
    assert!(compare_f32(&[f32::NAN], &[f32::from_bits(0xffc0_0000)]).is_ok());
    assert!(compare_f32(&[0.0], &[-0.0]).is_err());
    assert!(compare_f32(&[f32::NAN], &[f32::INFINITY]).is_err());
    assert!(compare_f32(&[f32::INFINITY], &[f32::NEG_INFINITY]).is_err());
    assert!(compare_f32(&[1.0], &[1.0 + f32::EPSILON]).is_err());
    assert!(compare_f32(&[1.0], &[1.0, 1.0]).is_err());
    let err = compare_f32(&[1.0, 2.0, 3.0], &[1.0, 2.5, 3.5]).unwrap_err();
    assert!(err.contains("2 of 3 values differ") && err.contains("index 1"), "{err}");
}

#[test]
fn compare_bytes_reports_the_first_difference() {
    assert!(compare_bytes(&[1, 2, 3], &[1, 2, 3]).is_ok());
    let err = compare_bytes(&[1, 2, 3], &[1, 0, 3]).unwrap_err();
    assert!(err.contains("1 of 3 bytes differ") && err.contains("byte 1"), "{err}");
    assert!(compare_bytes(&[1, 2, 3], &[1, 2]).is_err());
}

#[test]
fn ties_even_and_away_differ_by_hand() {
    // The by-hand Q8_0 of the mutation test tells the two roundings apart on a tie:
    // amax = 127 gives d = 1 and id = 1, so 2.5 scales to exactly 2.5.
    let mut x = [0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    let away = q8_0_by_hand(&x, f32::round);
    let even = q8_0_by_hand(&x, f32::round_ties_even);
    assert_eq!((away[3], even[3]), (3, 2));
    let ours = quantize_int8(&x, 1, 32, &q8_0_options(Backend::Scalar)).unwrap();
    assert_eq!(ours.bytes, away);
}

#[test]
#[should_panic(expected = "TQ_ORACLE_DIR is not set")]
fn missing_env_var_fails_loudly() {
    load_from(None);
}

#[test]
#[should_panic(expected = "cannot read")]
fn missing_vector_dir_fails_loudly() {
    load_from(Some(OsString::from("/nonexistent/ternary-quant-oracle-vectors")));
}

#[test]
#[should_panic(expected = "lists no gguf-py cases")]
fn empty_manifest_fails_loudly() {
    let dir = std::env::temp_dir().join(format!("tq-oracle-empty-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("manifest.txt"), "# nothing\n").unwrap();
    let result = std::panic::catch_unwind(|| load_from(Some(dir.clone().into_os_string())));
    let _ = fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
