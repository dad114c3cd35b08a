// ggml's side of the side-by-side benchmark in scripts/bench.sh: the cases that
// examples/wasm_kernel_bench.rs --side-by-side times with our kernels, timed with ggml's,
// on the same generated 4096 x 4096 data. Built natively against libggml-base and
// libggml-cpu, and for wasm32-wasi from ggml's quantization sources alone
// (scripts/ggml-harness/build.sh).
//
// Usage: harness RUNS. Prints `DATA ggml <build> <checksum>` and one
// `RESULT ggml <build> <case> <G values/s>` line per case, the best of RUNS timed runs.
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GGML_COMMON_DECL_C
#include "ggml-common.h"
#include "ggml.h"
#include "ggml-quants.h"
#include "ggml-impl.h"

#if defined(__wasm__)
#include "ggml-cpu/quants.h"
#ifdef __wasm_simd128__
#define BUILD "wasm-simd128"
#else
#define BUILD "wasm-scalar"
#endif
#else
#include "ggml-cpu.h"
#define BUILD "native"
#endif

enum { ROWS = 4096, COLS = 4096, N = ROWS * COLS };

// The bench's xorshift64 uniform draws and weights(): the same values, bit for bit.
static uint64_t state;
static float uniform(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (float)(state >> 40) / (float)(1u << 24);
}
static void weights(float *out, size_t n, uint64_t seed) {
    state = seed | 1;
    for (size_t i = 0; i < n; i++) {
        // One draw per statement: C leaves the order of calls within an expression open.
        float g = uniform();
        g += uniform();
        g += uniform();
        g += uniform();
        g -= 2.0f;
        out[i] = i % 997 == 0 ? g * 8.0f : g * 0.02f;
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile float sink;
static int runs;
static const char *only;

// Seconds per call: warm up for at least half a second (and until a call is no longer
// clearly faster than the best before it, at most 5 s), then the fastest of `runs`, as
// the Rust side's time().
static double best_of(void (*f)(void)) {
    double start = now(), best = 1e30;
    for (;;) {
        double t0 = now();
        f();
        double t = now() - t0;
        int improving = t < 0.97 * best;
        if (t < best) best = t;
        double elapsed = now() - start;
        if (elapsed > 5.0 || (elapsed > 0.5 && !improving)) break;
    }
    best = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        f();
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

static void report(const char *name, void (*f)(void)) {
    if (only && strcmp(only, name) != 0) return;
    printf("RESULT ggml " BUILD " %s %.4f\n", name, (double)N / best_of(f) / 1e9);
    fflush(stdout);
}

static float *w, *x;
static block_tq2_0 *tq2;
static block_q8_K *q8k, *xq;
static block_q8_0 *q80;

#if defined(__wasm__)
// The f16 -> f32 table that ggml-cpu.c (not built for wasm here) defines and fills in
// ggml_cpu_init(); the CPU quantizers and dots read their f16 scales through it.
float ggml_table_f32_f16[1 << 16];
static void fill_f16_table(void) {
    for (uint32_t h = 0; h < (1u << 16); h++) ggml_table_f32_f16[h] = ggml_compute_fp16_to_fp32((ggml_fp16_t)h);
}
static void q8_k_simd(const float *src, void *dst, int64_t n) { quantize_row_q8_K(src, dst, n); }
static void q8_0_simd(const float *src, void *dst, int64_t n) { quantize_row_q8_0(src, dst, n); }
static void tq2_dot(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc) {
    ggml_vec_dot_tq2_0_q8_K(n, s, bs, vx, bx, vy, by, nrc);
}
#else
static ggml_from_float_t q8_k_simd_fn, q8_0_simd_fn;
static ggml_vec_dot_t tq2_dot_fn, f32_dot_fn;
static void q8_k_simd(const float *src, void *dst, int64_t n) { q8_k_simd_fn(src, dst, n); }
static void q8_0_simd(const float *src, void *dst, int64_t n) { q8_0_simd_fn(src, dst, n); }
static void tq2_dot(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc) {
    tq2_dot_fn(n, s, bs, vx, bx, vy, by, nrc);
}
static ggml_fp16_t *halves;
static void case_f32_to_f16(void) { ggml_cpu_fp32_to_fp16(w, halves, N); }
static void case_gemv_f32(void) {
    float total = 0;
    for (int r = 0; r < ROWS; r++) {
        float s;
        f32_dot_fn(COLS, &s, 0, w + (size_t)r * COLS, 0, x, 0, 1);
        total += s;
    }
    sink = total;
}
#endif

// Row by row, as a converter calls them (ggml's quantizers take whole rows).
static void case_tq2_0_ref(void) {
    for (int r = 0; r < ROWS; r++) quantize_row_tq2_0_ref(w + (size_t)r * COLS, tq2 + (size_t)r * (COLS / QK_K), COLS);
}
static void case_q8_k_ref(void) {
    for (int r = 0; r < ROWS; r++) quantize_row_q8_K_ref(w + (size_t)r * COLS, q8k + (size_t)r * (COLS / QK_K), COLS);
}
static void case_q8_k(void) {
    for (int r = 0; r < ROWS; r++) q8_k_simd(w + (size_t)r * COLS, q8k + (size_t)r * (COLS / QK_K), COLS);
}
static void case_q8_0_ref(void) {
    for (int r = 0; r < ROWS; r++) quantize_row_q8_0_ref(w + (size_t)r * COLS, q80 + (size_t)r * (COLS / QK8_0), COLS);
}
static void case_q8_0(void) {
    for (int r = 0; r < ROWS; r++) q8_0_simd(w + (size_t)r * COLS, q80 + (size_t)r * (COLS / QK8_0), COLS);
}
// The activations to Q8_K, then one TQ2_0 x Q8_K dot per row: what a GEMV costs.
static void case_gemv_tq2_0(void) {
    q8_k_simd(x, xq, COLS);
    float total = 0;
    for (int r = 0; r < ROWS; r++) {
        float s;
        tq2_dot(COLS, &s, 0, tq2 + (size_t)r * (COLS / QK_K), 0, xq, 0, 1);
        total += s;
    }
    sink = total;
}

int main(int argc, char **argv) {
    runs = argc > 1 ? atoi(argv[1]) : 7;
    only = argc > 2 ? argv[2] : NULL;
    if (runs < 1) runs = 1;
    w = malloc(sizeof(float) * N);
    x = malloc(sizeof(float) * COLS);
    tq2 = malloc(sizeof(block_tq2_0) * (N / QK_K));
    q8k = malloc(sizeof(block_q8_K) * (N / QK_K));
    xq = malloc(sizeof(block_q8_K) * (COLS / QK_K));
    q80 = malloc(sizeof(block_q8_0) * (N / QK8_0));
    if (!w || !x || !tq2 || !q8k || !xq || !q80) {
        fprintf(stderr, "harness: out of memory\n");
        return 1;
    }
    weights(w, N, 0x12345678);
    weights(x, COLS, 99);
    uint64_t checksum = 0;
    for (size_t i = 0; i < N; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], 4);
        checksum += bits;
    }
    for (size_t i = 0; i < COLS; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        checksum += bits;
    }
    printf("DATA ggml " BUILD " %llu\n", (unsigned long long)checksum);
#if defined(__wasm__)
    fill_f16_table();
#else
    ggml_cpu_init();
    q8_k_simd_fn = ggml_get_type_traits_cpu(GGML_TYPE_Q8_K)->from_float;
    q8_0_simd_fn = ggml_get_type_traits_cpu(GGML_TYPE_Q8_0)->from_float;
    tq2_dot_fn = ggml_get_type_traits_cpu(GGML_TYPE_TQ2_0)->vec_dot;
    f32_dot_fn = ggml_get_type_traits_cpu(GGML_TYPE_F32)->vec_dot;
    halves = malloc(sizeof(ggml_fp16_t) * N);
#endif
    report("quantize_tq2_0_absmax_block", case_tq2_0_ref);
    report("quantize_q8_k_ref", case_q8_k_ref);
    report("quantize_q8_k", case_q8_k);
    report("quantize_q8_0_ref", case_q8_0_ref);
    report("quantize_q8_0", case_q8_0);
    case_tq2_0_ref();
    report("gemv_tq2_0", case_gemv_tq2_0);
#if !defined(__wasm__)
    report("f32_to_f16", case_f32_to_f16);
    report("gemv_f32", case_gemv_f32);
#endif
    return 0;
}
