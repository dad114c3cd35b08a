//! Kernel benchmark for the wasm builds (it also runs natively).
//!
//! Built for wasm32-wasip1 with and without SIMD128 and run under Node:
//!
//! ```text
//! CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128" \
//! CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings scripts/wasi-run.mjs" \
//! cargo run --release --target wasm32-wasip1 --example wasm_kernel_bench
//!
//! CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings scripts/wasi-run.mjs" \
//! cargo run --release --target wasm32-wasip1 --example wasm_kernel_bench
//!
//! CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128" \
//! CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings --experimental-wasm-relaxed-simd scripts/wasi-run.mjs" \
//! cargo run --release --target wasm32-wasip1 --example wasm_kernel_bench --features relaxed-simd
//! ```
//!
//! (Node 20 runs relaxed SIMD only behind its flag.)
//!
//! It prints G values/s (the best of several timed runs) for the quantization f32 -> TQ2_0
//! through the public API, the TQ2_0 x Q8_K dot kernel in cache, and ternary against f32
//! GEMV. The best backend of the build is measured, and the scalar backend of the same
//! build beside it. `--quick` runs fewer repetitions, `--runs=N` sets the number of timed
//! runs; the words `quantize`, `dot`, `gemv` and `kernels` select sections (all by
//! default).
//!
//! `--side-by-side` times the cases that `scripts/bench.sh` also times with ggml's
//! kernels, on the same generated 4096 x 4096 weights and activations (`DATA` prints their
//! checksum), as `RESULT ours <build> <case> <G values/s>` lines; `--bandwidth` adds the
//! single-core read bandwidth as `RESULT machine <build> read_bandwidth <G f32/s>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ternary_quant::kernels::Backend;
use ternary_quant::layout::blocks::{as_blocks, BlockQ8K, BlockTq2_0, QK_K};
use ternary_quant::{
    mat_vec_f32, quantize_ternary, ternary_mat_vec, PreparedWeights, ScaleRule, Scope, TernaryLayout, TernaryOptions,
};

#[path = "../tests/io_util/xorshift.rs"]
mod xorshift;

/// Deterministic, roughly Gaussian weights (sum of four uniforms), with a few outliers.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut uniform = xorshift::uniform(seed | 1);
    (0..n)
        .map(|i| {
            let g = uniform() + uniform() + uniform() + uniform() - 2.0;
            if i % 997 == 0 {
                g * 8.0
            } else {
                g * 0.02
            }
        })
        .collect()
}

/// Seconds per call of `f`: the fastest of `runs` timed runs of `reps` calls each, after
/// a warm-up. The fastest run is the one least disturbed by other work on the
/// machine.
fn time<R>(runs: usize, reps: usize, mut f: impl FnMut() -> R) -> f64 {
    // Warm up: V8 first runs wasm with its baseline compiler and swaps in optimized code
    // for later calls once a function is hot (compiled in the background, so later on a
    // busy machine). Run batches for at least half a second and until a batch is no longer
    // clearly faster than the best before it (at most 5 s).
    let mut run_batch = || {
        let start = Instant::now();
        for _ in 0..reps {
            black_box(f());
        }
        start.elapsed().as_secs_f64()
    };
    let start = Instant::now();
    let mut best = f64::INFINITY;
    loop {
        let t = run_batch();
        let improving = t < 0.97 * best;
        best = best.min(t);
        let elapsed = start.elapsed();
        if elapsed > Duration::from_secs(5) || (elapsed > Duration::from_millis(500) && !improving) {
            break;
        }
    }
    let mut per_call: Vec<f64> = (0..runs).map(|_| run_batch() / reps as f64).collect();
    per_call.sort_by(f64::total_cmp);
    per_call[0]
}

/// How many calls of about `secs_per_call` fill `target`.
fn reps_for(secs_per_call: f64, target: Duration) -> usize {
    ((target.as_secs_f64() / secs_per_call.max(1e-9)) as usize).clamp(1, 1 << 24)
}

fn gvals(values: usize, secs: f64) -> f64 {
    values as f64 / secs / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sections = ["quantize", "dot", "gemv", "kernels"];
    let all = !args.iter().any(|a| sections.contains(&a.as_str()));
    let run = |name: &str| all || args.iter().any(|a| a == name);
    let runs = args
        .iter()
        .find_map(|a| a.strip_prefix("--runs=").and_then(|n| n.parse::<usize>().ok()))
        .unwrap_or(if quick { 3 } else { 7 })
        .max(1);
    let best = Backend::best();
    let mut backends = vec![best];
    // The relaxed build keeps the SIMD128 table: both in one process.
    if best == Backend::RelaxedSimd {
        backends.push(Backend::Simd128);
    }
    if best != Backend::Scalar {
        backends.push(Backend::Scalar);
    }
    let build = if cfg!(target_arch = "wasm32") {
        if best == Backend::RelaxedSimd {
            "wasm32 +simd128 +relaxed-simd"
        } else if cfg!(target_feature = "simd128") {
            "wasm32 +simd128"
        } else {
            "wasm32 (no simd128)"
        }
    } else {
        std::env::consts::ARCH
    };
    if args.iter().any(|a| a == "--side-by-side") {
        let label = match build {
            "wasm32 +simd128" => "wasm-simd128",
            "wasm32 +simd128 +relaxed-simd" => "wasm-relaxed",
            "wasm32 (no simd128)" => "wasm-scalar",
            _ => "native",
        };
        if args.iter().any(|a| a == "--bandwidth") {
            read_bandwidth(label, runs);
        }
        let only = args.iter().find_map(|a| a.strip_prefix("--case=")).map(str::to_owned);
        side_by_side(label, best, runs, only.as_deref());
        // Ends through WASI's proc_exit: Node 20's WASI has crashed (SIGSEGV) after a
        // module returned from main having grown its memory to tens of MB.
        std::process::exit(0);
    }
    println!("build: {build}; best backend: {best}; best of {runs} runs; G values/s");

    if run("quantize") {
        bench_quantize(&backends, runs, quick);
    }
    if run("dot") {
        bench_dot(&backends, runs, quick);
    }
    if run("gemv") {
        bench_gemv(&backends, best, runs, quick);
    }
    if run("kernels") {
        bench_kernels(&backends, runs, quick);
    }
}

/// Single kernels on 65536 values (256 KiB of f32, in L2), called through the table.
fn bench_kernels(backends: &[Backend], runs: usize, quick: bool) {
    let n = 1 << 16;
    let x = weights(n, 5);
    let y = weights(n, 6);
    let halves: Vec<u16> = x.iter().map(|v| half::f16::from_f32(*v).to_bits()).collect();
    let codes: Vec<i8> = x.iter().map(|v| (v.signum() * (v.abs() > 0.02) as i32 as f32) as i8).collect();
    let xi8: Vec<i8> = y.iter().map(|v| (v * 3000.0).clamp(-127.0, 127.0) as i8).collect();
    let rule = ternary_quant::kernels::CodeRule::Scaled { inv: 50.0 };
    let mut tq2 = vec![BlockTq2_0 { qs: [0; 64], d: [0; 2] }; n / QK_K];
    let mut tq1 = vec![ternary_quant::layout::blocks::BlockTq1_0 { qs: [0; 48], qh: [0; 4], d: [0; 2] }; n / QK_K];
    let mut q8k = vec![BlockQ8K::default(); n / QK_K];
    let mut q80 = vec![ternary_quant::layout::blocks::BlockQ8_0 { d: [0; 2], qs: [0; 32] }; n / 32];
    let mut out_i8 = vec![0i8; n];
    let mut out_f32 = vec![0f32; n];
    let mut out_u16 = vec![0u16; n];
    let reps = if quick { 20 } else { 100 };
    for &backend in backends {
        let k = backend.kernels().expect("supported backend");
        let mut cases: Vec<(&str, f64)> = Vec::new();
        let mut bench = |name: &'static str, f: &mut dyn FnMut()| cases.push((name, time(runs, reps, f)));
        bench("first_non_finite", &mut || {
            black_box((k.first_non_finite)(black_box(&x)));
        });
        bench("abs_sum", &mut || {
            black_box((k.abs_sum)(black_box(&x)));
        });
        bench("abs_max", &mut || {
            black_box((k.abs_max)(black_box(&x)));
        });
        bench("min_max", &mut || {
            black_box((k.min_max)(black_box(&x)));
        });
        bench("ternary_codes", &mut || (k.ternary_codes)(black_box(&x), rule, &mut out_i8));
        bench("pack_tq2_0", &mut || (k.pack_tq2_0)(black_box(&x), rule, [0, 60], &mut tq2));
        bench("dequantize_tq2_0", &mut || (k.dequantize_tq2_0)(black_box(&tq2), &mut out_f32));
        bench("pack_tq1_0", &mut || (k.pack_tq1_0)(black_box(&x), rule, [0, 60], &mut tq1));
        bench("unpack_tq1_0", &mut || (k.unpack_tq1_0)(black_box(&tq1), &mut out_i8));
        bench("quantize_i8_symmetric", &mut || {
            (k.quantize_i8_symmetric)(black_box(&x), 300.0, f32::INFINITY, &mut out_i8)
        });
        bench("quantize_i8_asymmetric", &mut || {
            (k.quantize_i8_asymmetric)(black_box(&x), 0.004, -3, -0.5, 0.5, &mut out_i8)
        });
        bench("dequantize_i8", &mut || (k.dequantize_i8)(black_box(&xi8), 0.01, 3, &mut out_f32));
        bench("quantize_q8_0", &mut || (k.quantize_q8_0)(black_box(&x), &mut q80));
        bench("quantize_q8_k", &mut || (k.quantize_q8_k)(black_box(&x), &mut q8k));
        bench("f16_to_f32", &mut || (k.f16_to_f32)(black_box(&halves), &mut out_f32));
        bench("bf16_to_f32", &mut || (k.bf16_to_f32)(black_box(&halves), &mut out_f32));
        bench("f32_to_f16", &mut || (k.f32_to_f16)(black_box(&x), &mut out_u16));
        bench("metric_sums", &mut || {
            black_box((k.metric_sums)(black_box(&x), black_box(&y)));
        });
        bench("dot_f32", &mut || {
            black_box((k.dot_f32)(black_box(&x), black_box(&y)));
        });
        bench("dot_codes_i8", &mut || {
            black_box((k.dot_codes_i8)(black_box(&codes), black_box(&xi8)));
        });
        let list: Vec<String> = cases.iter().map(|(name, secs)| format!("{name} {:.2}", gvals(n, *secs))).collect();
        println!("kernels {backend}, {n} values in L2:");
        for chunk in list.chunks(6) {
            println!("  {}", chunk.join(", "));
        }
    }
}

/// Quantize f32 -> TQ2_0 through the public API (validation, scales, packing).
fn bench_quantize(backends: &[Backend], runs: usize, quick: bool) {
    let (rows, cols) = (1024, 4096);
    let w = weights(rows * cols, 0x9e37_79b9_7f4a_7c15);
    let quant_cases = [
        ("absmax/block", ScaleRule::AbsMax, Scope::Block(QK_K)),
        ("absmean/row", ScaleRule::AbsMean, Scope::Row),
        ("absmean/tensor", ScaleRule::AbsMean, Scope::Tensor),
        ("optimal/block", ScaleRule::Optimal, Scope::Block(QK_K)),
        ("optimal/row", ScaleRule::Optimal, Scope::Row),
        ("optimal/tensor", ScaleRule::Optimal, Scope::Tensor),
    ];
    for (name, rule, scope) in quant_cases {
        let mut line = format!("quantize f32->tq2_0 {name:<15} {rows}x{cols}:");
        for &backend in backends {
            let opts = TernaryOptions { layout: TernaryLayout::Tq2_0, rule, scope, backend };
            let once = time(1, 1, || quantize_ternary(&w, rows, cols, &opts).expect("quantize"));
            let reps = reps_for(once, Duration::from_millis(if quick { 100 } else { 300 }));
            let secs = time(runs, reps, || quantize_ternary(&w, rows, cols, &opts).expect("quantize"));
            line += &format!("  {backend} {:7.3}", gvals(rows * cols, secs));
        }
        println!("{line}");
    }
}

/// The TQ2_0 x Q8_K dot product, 4096 values, in cache.
fn bench_dot(backends: &[Backend], runs: usize, quick: bool) {
    let n = 4096;
    let wq = quantize_ternary(
        &weights(n, 7),
        1,
        n,
        &TernaryOptions {
            layout: TernaryLayout::Tq2_0,
            rule: ScaleRule::AbsMean,
            scope: Scope::Tensor,
            backend: Backend::Scalar,
        },
    )
    .expect("quantize");
    let wb = as_blocks::<BlockTq2_0>(&wq.bytes);
    let x = weights(n, 11);
    let mut xq = vec![BlockQ8K::default(); n / QK_K];
    (Backend::Scalar.kernels().expect("scalar").quantize_q8_k)(&x, &mut xq);
    let mut line = format!("dot tq2_0 x q8_k {n} values (in cache):");
    for &backend in backends {
        let k = backend.kernels().expect("supported backend");
        let reps = if quick { 20_000 } else { 100_000 };
        let secs = time(runs, reps, || (k.dot_tq2_0_q8_k)(black_box(wb), black_box(&xq)));
        line += &format!("  {backend} {:7.3}", gvals(n, secs));
    }
    println!("{line}");
}

/// GEMV 4096 x 4096: ternary (TQ2_0, absmean/tensor) against f32.
fn bench_gemv(backends: &[Backend], best: Backend, runs: usize, quick: bool) {
    let (rows, cols) = (4096, 4096);
    let w = weights(rows * cols, 0x1234_5678);
    let x = weights(cols, 99);
    let wt = quantize_ternary(
        &w,
        rows,
        cols,
        &TernaryOptions { layout: TernaryLayout::Tq2_0, rule: ScaleRule::AbsMean, scope: Scope::Tensor, backend: best },
    )
    .expect("quantize");
    for &backend in backends {
        let k = backend.kernels().expect("supported backend");
        let reps = if quick { 3 } else { 10 };
        let prepared = PreparedWeights::new(wt.clone(), backend).expect("prepare");
        let t_ternary = time(runs, reps, || prepared.mat_vec(&x).expect("gemv"));
        let t_f32 = time(runs, reps, || mat_vec_f32(&w, rows, cols, &x, backend).expect("gemv"));
        // The f32 API validates its 64 MB of weights on every call; the bare kernel loop
        // shows the product alone.
        let t_f32_kernel = time(runs, reps, || w.chunks_exact(cols).map(|r| (k.dot_f32)(r, &x)).sum::<f32>());
        println!(
            "gemv {rows}x{cols} {backend}: ternary {:7.3}, f32 api {:7.3}, f32 kernel {:7.3}; \
             ternary/f32 api {:5.2}x, ternary/f32 kernel {:5.2}x",
            gvals(rows * cols, t_ternary),
            gvals(rows * cols, t_f32),
            gvals(rows * cols, t_f32_kernel),
            t_f32 / t_ternary,
            t_f32_kernel / t_ternary,
        );
    }
}

/// The side-by-side shape: the issue's and llama.cpp's usual 4096 x 4096.
const SIDE_BY_SIDE: (usize, usize) = (4096, 4096);

/// The side-by-side data, and a checksum that the other harness prints for its copy
/// (the sum of the values' bits), so a table never compares runs on different data.
fn side_by_side_data() -> (Vec<f32>, Vec<f32>, u64) {
    let (rows, cols) = SIDE_BY_SIDE;
    let (w, x) = (weights(rows * cols, 0x1234_5678), weights(cols, 99));
    let checksum = w.iter().chain(&x).map(|v| u64::from(v.to_bits())).sum();
    (w, x, checksum)
}

/// The cases ggml's kernels are timed on, through our public API where one exists (as a
/// user calls it) and through the kernel table otherwise.
fn side_by_side(build: &str, backend: Backend, runs: usize, only: Option<&str>) {
    let (rows, cols) = SIDE_BY_SIDE;
    let n = rows * cols;
    let (w, x, checksum) = side_by_side_data();
    println!("DATA ours {build} {checksum}");
    let k = backend.kernels().expect("supported backend");
    let report = |case: &str, secs: f64| println!("RESULT ours {build} {case} {:.4}", gvals(n, secs));
    let time = |case: &str, runs: usize, f: &mut dyn FnMut()| {
        if only.is_none_or(|o| o == case) {
            report(case, time(runs, 1, f));
        }
    };
    let absmax =
        TernaryOptions { layout: TernaryLayout::Tq2_0, rule: ScaleRule::AbsMax, scope: Scope::Block(QK_K), backend };
    time("quantize_tq2_0_absmax_block", runs, &mut || {
        black_box(quantize_ternary(&w, rows, cols, &absmax).expect("quantize"));
    });
    // Each int8 quantizer twice: the scalar spec (ggml's `_ref` counterpart) and the backend.
    let scalar = Backend::Scalar.kernels().expect("scalar");
    let mut q8k = vec![BlockQ8K::default(); n / QK_K];
    let mut q80 = vec![ternary_quant::layout::blocks::BlockQ8_0 { d: [0; 2], qs: [0; 32] }; n / 32];
    for (suffix, kernels) in [("_ref", scalar), ("", k)] {
        time(&format!("quantize_q8_k{suffix}"), runs, &mut || {
            (kernels.quantize_q8_k)(black_box(&w), &mut q8k);
            black_box(&mut q8k);
        });
        time(&format!("quantize_q8_0{suffix}"), runs, &mut || {
            (kernels.quantize_q8_0)(black_box(&w), &mut q80);
            black_box(&mut q80);
        });
    }
    let wt = quantize_ternary(&w, rows, cols, &absmax).expect("quantize");
    // As inference multiplies: weights prepared once (ggml repacks at load likewise),
    // then GEMVs. The one-off products and the preparation (of a copy, the copy included)
    // are timed beside it.
    time("gemv_tq2_0_unprepared", runs, &mut || {
        black_box(ternary_mat_vec(&wt, &x, backend).expect("gemv"));
    });
    time("prepare_tq2_0", runs, &mut || {
        black_box(PreparedWeights::new(wt.clone(), backend).expect("prepare"));
    });
    let prepared = PreparedWeights::new(wt, backend).expect("prepare");
    time("gemv_tq2_0", runs, &mut || {
        black_box(prepared.mat_vec(&x).expect("gemv"));
    });
    let mut halves = vec![0u16; n];
    time("f32_to_f16", runs, &mut || {
        (k.f32_to_f16)(black_box(&w), &mut halves);
        black_box(&mut halves);
    });
    time("gemv_f32", runs, &mut || {
        black_box(w.chunks_exact(cols).map(|r| (k.dot_f32)(r, &x)).sum::<f32>());
    });
}

/// The single-core read bandwidth in G f32 values/s: over 256 MiB (from DRAM), and over
/// a buffer the size of the side-by-side TQ2_0 weights (4.3 MB, which a GEMV reads from
/// the cache when it is called again), as a loop that only loads and folds the bits (16
/// independent lanes, so that it waits on memory, not on itself).
fn read_bandwidth(build: &str, runs: usize) {
    let (rows, cols) = SIDE_BY_SIDE;
    let tq2_0_words = rows * cols / QK_K * core::mem::size_of::<BlockTq2_0>() / 4;
    for (name, words, reps) in [("read_bandwidth", 1 << 26, 1), ("read_bandwidth_tq2_0_weights", tq2_0_words, 20)] {
        let buffer = vec![0x3fc0_0000u32; words];
        let fold = |v: &[u32]| {
            let mut lanes = [0u32; 16];
            for part in v.chunks_exact(16) {
                for (lane, &b) in lanes.iter_mut().zip(part) {
                    *lane ^= b;
                }
            }
            lanes.iter().fold(0, |a, &b| a ^ b)
        };
        let secs = time(runs, reps, || fold(black_box(&buffer)));
        println!("RESULT machine {build} {name} {:.4}", gvals(words, secs));
    }
}
