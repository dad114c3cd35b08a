//! Kernel benchmarks, one entry per kernel and backend (`Backend::supported()`).
//!
//! Run with `cargo bench --bench kernels` (add a filter such as `-- quantize_tq2_0`).
//! Throughput is in values (elements) per second. Kept short (10 samples, about 1.5 s
//! each) so that a full run stays a few minutes on a shared machine.
//!
//! `KERNELS_BENCH_CLOCK=cpu` measures the benchmark thread's CPU time instead of wall
//! time (Linux): on a machine shared with other work, wall time also counts the time
//! the thread waits for a core.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use ternary_quant::kernels::CodeRule;
use ternary_quant::layout::blocks::{BlockQ8K, BlockQ8_0, BlockTq2_0, QK8_0, QK_K};
use ternary_quant::{
    mat_vec_f32, quantize_ternary, ternary_mat_vec, Backend, ScaleRule, Scope, TernaryLayout, TernaryOptions,
};

#[path = "../tests/io_util/xorshift.rs"]
mod xorshift;

/// Deterministic weight-like data: sums of uniforms (close to a normal) times 0.02.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut next = xorshift::uniform(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n).map(|_| (next() + next() + next() - 1.5) * 0.04).collect()
}

/// Wall time, or the thread's CPU time with `KERNELS_BENCH_CLOCK=cpu`.
struct Clock {
    cpu: bool,
}

impl Clock {
    fn from_env() -> Self {
        Self { cpu: cfg!(target_os = "linux") && std::env::var("KERNELS_BENCH_CLOCK").as_deref() == Ok("cpu") }
    }
}

/// CPU time of the calling thread in nanoseconds (0 where unsupported).
fn thread_cpu_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: clock_gettime writes one timespec (two 64-bit fields on 64-bit Linux)
        // to a valid, exclusively borrowed location.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
    }
    #[cfg(not(target_os = "linux"))]
    0
}

impl Measurement for Clock {
    type Intermediate = (Instant, u64);
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        (Instant::now(), if self.cpu { thread_cpu_ns() } else { 0 })
    }
    fn end(&self, (wall, cpu): Self::Intermediate) -> Self::Value {
        if self.cpu {
            Duration::from_nanos(thread_cpu_ns() - cpu)
        } else {
            wall.elapsed()
        }
    }
    fn add(&self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        *a + *b
    }
    fn zero(&self) -> Self::Value {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

/// Formats nanoseconds, and throughput in elements per second.
struct Nanos;

impl ValueFormatter for Nanos {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e-3, "µs"),
            t if t < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        let count = match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Elements(n) => n as f64,
        };
        let (denominator, unit) = match count * 1e9 / typical {
            r if r < 1e6 => (1e3, "Kelem/s"),
            r if r < 1e9 => (1e6, "Melem/s"),
            _ => (1e9, "Gelem/s"),
        };
        values.iter_mut().for_each(|v| *v = count * 1e9 / *v / denominator);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

type Bench = Criterion<Clock>;

fn config() -> Bench {
    Criterion::default()
        .with_measurement(Clock::from_env())
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
}

/// Full passes over f32 data: in L2 (64 Ki values) and from DRAM (4096 x 4096).
fn scans(c: &mut Bench) {
    for n in [1 << 16, 4096 * 4096] {
        let x = weights(n, 1);
        let mut g = c.benchmark_group(format!("scan/{n}"));
        g.throughput(Throughput::Elements(n as u64));
        for b in Backend::supported() {
            let k = b.kernels().unwrap();
            g.bench_function(BenchmarkId::new("abs_sum", b), |bench| bench.iter(|| (k.abs_sum)(black_box(&x))));
            g.bench_function(BenchmarkId::new("abs_max", b), |bench| bench.iter(|| (k.abs_max)(black_box(&x))));
            g.bench_function(BenchmarkId::new("first_non_finite", b), |bench| {
                bench.iter(|| (k.first_non_finite)(black_box(&x)))
            });
        }
        g.finish();
    }
}

/// f32 -> TQ2_0 through the public API (validation, scales and packing), per rule and
/// scope, on a DRAM-size matrix and on L2-size ones.
fn quantize_tq2_0(c: &mut Bench) {
    let cases = [
        ("absmax_block", ScaleRule::AbsMax, Scope::Block(QK_K)),
        ("absmean_row", ScaleRule::AbsMean, Scope::Row),
        ("absmean_tensor", ScaleRule::AbsMean, Scope::Tensor),
        ("optimal_block", ScaleRule::Optimal, Scope::Block(QK_K)),
        ("optimal_row", ScaleRule::Optimal, Scope::Row),
        ("optimal_tensor", ScaleRule::Optimal, Scope::Tensor),
    ];
    for (rows, cols) in [(4096, 4096), (256, 1024), (64, 256)] {
        let w = weights(rows * cols, 2);
        for (name, rule, scope) in cases {
            let mut g = c.benchmark_group(format!("quantize_tq2_0/{name}/{rows}x{cols}"));
            g.throughput(Throughput::Elements((rows * cols) as u64));
            for backend in Backend::supported() {
                let opts = TernaryOptions { layout: TernaryLayout::Tq2_0, rule, scope, backend };
                g.bench_function(BenchmarkId::from_parameter(backend), |bench| {
                    bench.iter(|| quantize_ternary(black_box(&w), rows, cols, &opts).unwrap())
                });
            }
            g.finish();
        }
    }
}

/// The pack kernel alone (codes and bytes, scale given), in L2 (64 Ki values) and from
/// DRAM (4096 x 4096).
fn pack_tq2_0_kernel(c: &mut Bench) {
    for n in [1 << 16, 4096 * 4096] {
        let x = weights(n, 3);
        let mut out = vec![BlockTq2_0 { qs: [0; 64], d: [0; 2] }; n / QK_K];
        let rule = CodeRule::Scaled { inv: 1.0 / 0.02 };
        let mut g = c.benchmark_group(format!("pack_tq2_0_kernel/{n}"));
        g.throughput(Throughput::Elements(n as u64));
        for b in Backend::supported() {
            let k = b.kernels().unwrap();
            g.bench_function(BenchmarkId::from_parameter(b), |bench| {
                bench.iter(|| (k.pack_tq2_0)(black_box(&x), rule, [0, 0x3c], &mut out))
            });
        }
        g.finish();
    }
}

/// f32 -> Q8_0, in L2 (64 Ki values) and from DRAM (4096 x 4096).
fn quantize_q8_0(c: &mut Bench) {
    for n in [1 << 16, 4096 * 4096] {
        let x = weights(n, 4);
        let mut out = vec![BlockQ8_0 { d: [0; 2], qs: [0; QK8_0] }; n / QK8_0];
        let mut g = c.benchmark_group(format!("quantize_q8_0/{n}"));
        g.throughput(Throughput::Elements(n as u64));
        for b in Backend::supported() {
            let k = b.kernels().unwrap();
            g.bench_function(BenchmarkId::from_parameter(b), |bench| {
                bench.iter(|| (k.quantize_q8_0)(black_box(&x), &mut out))
            });
        }
        g.finish();
    }
}

/// TQ2_0 x Q8_K in cache: one 4096-value row (16 blocks), and 64 such rows (66 KiB of
/// weights, in L2) against the same activations.
fn dot_tq2_0_q8_k(c: &mut Bench) {
    let cols = 4096;
    for rows in [1, 64] {
        let w = quantize_ternary(
            &weights(rows * cols, 5),
            rows,
            cols,
            &TernaryOptions {
                layout: TernaryLayout::Tq2_0,
                rule: ScaleRule::AbsMax,
                scope: Scope::Block(QK_K),
                backend: Backend::Scalar,
            },
        )
        .unwrap();
        let blocks = ternary_quant::layout::blocks::as_blocks::<BlockTq2_0>(&w.bytes);
        let mut xq = vec![BlockQ8K::default(); cols / QK_K];
        ternary_quant::kernels::scalar::quantize_q8_k(&weights(cols, 6), &mut xq);
        let mut g = c.benchmark_group(format!("dot_tq2_0_q8_k/{rows}x{cols}"));
        g.throughput(Throughput::Elements((rows * cols) as u64));
        for b in Backend::supported() {
            let k = b.kernels().unwrap();
            g.bench_function(BenchmarkId::from_parameter(b), |bench| {
                bench.iter(|| {
                    let mut acc = 0f32;
                    for row in blocks.chunks_exact(cols / QK_K) {
                        acc += (k.dot_tq2_0_q8_k)(black_box(row), black_box(&xq));
                    }
                    acc
                })
            });
        }
        g.finish();
    }
}

/// f32 dot products of 4096 values (the rows of the f32 GEMV), in L1.
fn dot_f32(c: &mut Bench) {
    let n = 4096;
    let (a, b) = (weights(n, 9), weights(n, 10));
    let mut g = c.benchmark_group(format!("dot_f32/{n}"));
    g.throughput(Throughput::Elements(n as u64));
    for backend in Backend::supported() {
        let k = backend.kernels().unwrap();
        g.bench_function(BenchmarkId::from_parameter(backend), |bench| {
            bench.iter(|| (k.dot_f32)(black_box(&a), black_box(&b)))
        });
    }
    g.finish();
}

/// y = W x at 4096 x 4096: ternary (TQ2_0 weights, Q8_K activations) against f32.
fn gemv(c: &mut Bench) {
    let (rows, cols) = (4096, 4096);
    let w = weights(rows * cols, 7);
    let x = weights(cols, 8);
    let opts = TernaryOptions {
        layout: TernaryLayout::Tq2_0,
        rule: ScaleRule::AbsMean,
        scope: Scope::Tensor,
        backend: Backend::Scalar,
    };
    let t = quantize_ternary(&w, rows, cols, &opts).unwrap();
    let mut g = c.benchmark_group(format!("gemv/{rows}x{cols}"));
    g.throughput(Throughput::Elements((rows * cols) as u64));
    for b in Backend::supported() {
        g.bench_function(BenchmarkId::new("ternary_tq2_0", b), |bench| {
            bench.iter(|| ternary_mat_vec(&t, black_box(&x), b).unwrap())
        });
        g.bench_function(BenchmarkId::new("f32", b), |bench| {
            bench.iter(|| mat_vec_f32(black_box(&w), rows, cols, black_box(&x), b).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = scans, quantize_tq2_0,  pack_tq2_0_kernel, quantize_q8_0, dot_tq2_0_q8_k, dot_f32, gemv
}
criterion_main!(benches);
