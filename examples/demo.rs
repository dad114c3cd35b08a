//! Quantizes a small synthetic transformer with every preset and prints, per tensor,
//! the stored size and the error, then the totals of each preset.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! The model is built in memory from a seeded PRNG, so every run prints the same
//! figures. Tensors whose rows a preset's layout cannot store (the TQ layouts need a
//! multiple of 256 values per row) are stored as the converter would store them: Q8_0
//! when the row length is a multiple of 32, else F16.

use std::error::Error;

use ternary_quant::{
    error_stats, estimate_model_size, quantize_batch, quantize_int8, Backend, ErrorStats, Int8Layout, Int8Options,
    NamedTensor, Scope, StoredAs, TensorReport, PRESETS,
};

/// SplitMix64: small, seeded and good enough for synthetic weights.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1), never 0 (so that logs stay finite).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Laplace with unit variance.
    fn laplace(&mut self) -> f64 {
        let u = self.uniform() - 0.5;
        -u.signum() * (1.0 - 2.0 * u.abs()).ln() / std::f64::consts::SQRT_2
    }

    /// Student-t with `nu` degrees of freedom (> 2), scaled to unit variance.
    fn student_t(&mut self, nu: u32) -> f64 {
        let chi2: f64 = (0..nu).map(|_| self.normal().powi(2)).sum();
        let t = self.normal() / (chi2 / nu as f64).sqrt();
        t / (nu as f64 / (nu as f64 - 2.0)).sqrt()
    }
}

/// How a synthetic tensor's values are drawn.
#[derive(Clone, Copy)]
enum Dist {
    Gaussian,
    Laplace,
    StudentT(u32),
    /// Already ternary: {-std, 0, +std} with equal odds.
    Ternary,
}

impl Dist {
    fn name(self) -> String {
        match self {
            Dist::Gaussian => "gaussian".into(),
            Dist::Laplace => "laplace".into(),
            Dist::StudentT(nu) => format!("student-t({nu})"),
            Dist::Ternary => "ternary".into(),
        }
    }

    fn sample(self, rng: &mut Rng, n: usize, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let z = match self {
                    Dist::Gaussian => rng.normal(),
                    Dist::Laplace => rng.laplace(),
                    Dist::StudentT(nu) => rng.student_t(nu),
                    Dist::Ternary => (rng.next_u64() % 3) as f64 - 1.0,
                };
                (z * std) as f32
            })
            .collect()
    }
}

struct Tensor {
    name: &'static str,
    rows: usize,
    cols: usize,
    dist: Dist,
    data: Vec<f32>,
}

/// A one-layer model with the shapes of a small transformer, plus a 384-wide projector
/// (not a multiple of 256: Q8_0 fallback) and a 27-wide conv stem (not even a multiple
/// of 32: F16 fallback).
fn synthetic_model(seed: u64) -> Vec<Tensor> {
    // The ternary tensor's step is a power of two, so that f16 scales hold it exactly.
    let specs: [(&str, usize, usize, Dist, f64); 7] = [
        ("model.embed_tokens.weight", 1000, 256, Dist::Gaussian, 0.02),
        ("model.layers.0.self_attn.q_proj.weight", 256, 256, Dist::Gaussian, 0.02),
        ("model.layers.0.self_attn.o_proj.weight", 256, 256, Dist::Laplace, 0.02),
        ("model.layers.0.mlp.up_proj.weight", 512, 256, Dist::StudentT(3), 0.02),
        ("model.layers.0.mlp.down_proj.weight", 256, 512, Dist::Ternary, 0.015625),
        ("model.vision_proj.weight", 256, 384, Dist::Gaussian, 0.02),
        ("model.conv_stem.weight", 64, 27, Dist::Gaussian, 0.1),
    ];
    let mut rng = Rng(seed);
    specs
        .into_iter()
        .map(|(name, rows, cols, dist, std)| Tensor {
            name,
            rows,
            cols,
            dist,
            data: dist.sample(&mut rng, rows * cols, std),
        })
        .collect()
}

/// One printed row: a ternary report, or the fallback a tensor is stored as.
struct Row {
    name: String,
    rows: usize,
    cols: usize,
    layout: String,
    bytes_in: usize,
    bytes_out: usize,
    zero_fraction: f64,
    stats: ErrorStats,
}

impl From<&TensorReport> for Row {
    fn from(r: &TensorReport) -> Self {
        Row {
            name: r.name.clone(),
            rows: r.rows,
            cols: r.cols,
            layout: r.layout.name().into(),
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            zero_fraction: r.zero_fraction,
            stats: r.stats,
        }
    }
}

/// A tensor stored as Q8_0 or F16, with its real error.
fn fallback_row(t: &Tensor, how: StoredAs) -> Result<Row, Box<dyn Error>> {
    let backend = Backend::best();
    let (layout, bytes_out, approx) = match how {
        StoredAs::Q8_0 => {
            let opts = Int8Options { layout: Int8Layout::Q8_0, scope: Scope::Block(32), ..Int8Options::default() };
            let q = quantize_int8(&t.data, t.rows, t.cols, &opts)?;
            ("q8_0 (fallback)", q.stored_bytes(), q.dequantize())
        }
        StoredAs::F16 => {
            let approx = t.data.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
            ("f16 (fallback)", t.data.len() * 2, approx)
        }
        StoredAs::Ternary => return Err("a ternary tensor has no fallback".into()),
    };
    let zeros = approx.iter().filter(|&&x| x == 0.0).count();
    Ok(Row {
        name: t.name.into(),
        rows: t.rows,
        cols: t.cols,
        layout: layout.into(),
        bytes_in: t.data.len() * 4,
        bytes_out,
        zero_fraction: zeros as f64 / t.data.len() as f64,
        stats: error_stats(&t.data, &approx, backend)?,
    })
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn snr(db: f64) -> String {
    if db.is_infinite() {
        "exact".into()
    } else {
        format!("{db:.2}")
    }
}

const NAME_W: usize = 40;

fn print_header() {
    println!(
        "  {:<NAME_W$} {:>10} {:<16} {:>8} {:>7} {:>8} {:>9} {:>6}",
        "tensor", "shape", "layout", "bits/w", "x f32", "SNR dB", "cosine", "zeros"
    );
    println!("  {}", "-".repeat(NAME_W + 71));
}

fn print_row(r: &Row) {
    let n = r.rows * r.cols;
    println!(
        "  {:<NAME_W$} {:>10} {:<16} {:>8.4} {:>7.2} {:>8} {:>9.6} {:>5.1}%",
        r.name,
        format!("{}x{}", r.rows, r.cols),
        r.layout,
        r.bytes_out as f64 * 8.0 / n as f64,
        r.bytes_in as f64 / r.bytes_out as f64,
        snr(r.stats.snr_db),
        r.stats.cosine,
        100.0 * r.zero_fraction,
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let model = synthetic_model(0x7e72_6e61_7279);
    let shapes: Vec<(u64, u64)> = model.iter().map(|t| (t.rows as u64, t.cols as u64)).collect();
    let values: u64 = shapes.iter().map(|&(r, c)| r * c).sum();

    println!("ternary-quant demo: a synthetic one-layer model, quantized with every preset");
    println!("backend: {}\n", Backend::best());
    println!("  {:<NAME_W$} {:>10} {:<14}", "tensor", "shape", "data");
    for t in &model {
        println!("  {:<NAME_W$} {:>10} {:<14}", t.name, format!("{}x{}", t.rows, t.cols), t.dist.name());
    }
    println!("  {} values, {} bytes as f32\n", thousands(values), thousands(values * 4));

    let mut totals = Vec::new();
    for preset in PRESETS {
        let estimate = estimate_model_size(&shapes, preset.layout, preset.scope)?;
        println!("preset {}: {}", preset.name, preset.description);
        print_header();

        // Ternary where the layout fits, in one batch; the rest as the estimate says.
        let fits: Vec<NamedTensor> = model
            .iter()
            .zip(&estimate.stored_as)
            .filter(|(_, &how)| how == StoredAs::Ternary)
            .map(|(t, _)| NamedTensor { name: t.name, data: &t.data, rows: t.rows, cols: t.cols })
            .collect();
        let (_, report) = quantize_batch(&fits, &preset.options())?;
        let mut ternary = report.tensors.iter();
        let mut bytes = 0u64;
        for (t, &how) in model.iter().zip(&estimate.stored_as) {
            let row = match how {
                StoredAs::Ternary => Row::from(ternary.next().ok_or("batch report is short")?),
                other => fallback_row(t, other)?,
            };
            bytes += row.bytes_out as u64;
            print_row(&row);
        }
        if bytes != estimate.bytes {
            return Err(format!("stored {bytes} bytes but estimate_model_size says {}", estimate.bytes).into());
        }
        println!(
            "  total: {} bytes ({:.4} bits/weight, {:.2}x smaller than f32, {:.2}x smaller than f16)\n",
            thousands(estimate.bytes),
            estimate.bits_per_weight,
            estimate.compression_vs_f32,
            estimate.f16_bytes as f64 / estimate.bytes as f64,
        );
        totals.push((preset.name, estimate));
    }

    println!("totals ({} values, {} bytes as f32)", thousands(values), thousands(values * 4));
    println!("  {:<10} {:<8} {:>12} {:>8} {:>7}", "preset", "layout", "bytes", "bits/w", "x f32");
    for (name, e) in &totals {
        println!(
            "  {:<10} {:<8} {:>12} {:>8.4} {:>7.2}",
            name,
            e.layout.name(),
            thousands(e.bytes),
            e.bits_per_weight,
            e.compression_vs_f32
        );
    }
    Ok(())
}
