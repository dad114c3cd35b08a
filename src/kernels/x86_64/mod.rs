//! x86_64 backends, chosen at run time by CPU feature detection.
//!
//! Each backend module has every kernel of `scalar` under the same name and signature.
//! Its public functions are safe wrappers around `#[target_feature]` functions. The
//! modules are private, so the wrappers are only reachable through the tables below,
//! which are handed out once detection has found every feature that the backend
//! compiles for.
#![warn(clippy::undocumented_unsafe_blocks)]

/// Writes, for each `fn name(args) -> ret;`, a safe `pub fn` that calls `imp::name`.
///
/// Sound because each backend module is private and its wrappers are reachable only
/// through its table, which `avx2_kernels`/`avx512_kernels` hand out only after run-time
/// detection found every feature that the module's `imp` functions are compiled for.
macro_rules! safe_wrappers {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?; )*) => {
        $(
            $(#[$doc])*
            pub fn $name($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: this function is only reachable through its backend's table,
                // handed out only when every feature of `imp` was detected (see above).
                unsafe { imp::$name($($arg),*) }
            }
        )*
    };
}

/// Writes a kernel that takes a `CodeRule` and runs `$with`, compiled once per kind of
/// rule, with the backend's vector form of the rule (each backend's `with_rule!`).
macro_rules! rule_kernel {
    ($features:literal, fn $name:ident($($arg:ident: $ty:ty),*) by $rule:ident => $with:ident($($pass:ident),*)) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name($($arg: $ty),*) {
            with_rule!($rule, $with($($pass),*))
        }
    };
}

mod avx2;
// The AVX-512 intrinsics are stable since Rust 1.89.
#[clippy::msrv = "1.89"]
mod avx512;

use super::Kernels;
use std::sync::atomic::{AtomicU8, Ordering};

static AVX2: Kernels = kernel_table!(self::avx2);
static AVX512: Kernels = kernel_table!(self::avx512);

pub(crate) use super::ROUND_BIAS;

/// TQ1_0 stores each base-3 number b < 243 as (b * 256 + 242) / 243, computed as
/// ((b << 8) + 242) * TQ1_MUL >> TQ1_SHIFT; the product stays below 2^31, and the test
/// below checks all 243 values.
pub(crate) const TQ1_MUL: i32 = 34522;
/// See [`TQ1_MUL`].
pub(crate) const TQ1_SHIFT: u32 = 23;

const UNKNOWN: u8 = 0;
const ABSENT: u8 = 1;
const PRESENT: u8 = 2;

/// Runs `detect` once and caches its answer.
fn cached(state: &AtomicU8, detect: fn() -> bool) -> bool {
    match state.load(Ordering::Relaxed) {
        UNKNOWN => {
            let found = detect();
            state.store(if found { PRESENT } else { ABSENT }, Ordering::Relaxed);
            found
        }
        s => s == PRESENT,
    }
}

/// Every feature that `avx2.rs` enables.
fn detect_avx2() -> bool {
    is_x86_feature_detected!("avx") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c")
}

/// Every feature that `avx512.rs` enables.
fn detect_avx512() -> bool {
    detect_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("gfni")
        && is_x86_feature_detected!("popcnt")
}

/// The AVX2 kernel table, when this CPU has every feature it uses.
pub(crate) fn avx2_kernels() -> Option<&'static Kernels> {
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    cached(&STATE, detect_avx2).then_some(&AVX2)
}

/// The AVX-512 kernel table, when this CPU has every feature it uses.
pub(crate) fn avx512_kernels() -> Option<&'static Kernels> {
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    cached(&STATE, detect_avx512).then_some(&AVX512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_bias_is_the_float_below_one_half() {
        assert_eq!(ROUND_BIAS.to_bits(), 0.5f32.to_bits() - 1);
    }

    #[test]
    fn tq1_division_by_243_is_exact() {
        for b in 0..243i32 {
            let v = (b << 8) + 242;
            assert!((v as i64 * TQ1_MUL as i64) < i32::MAX as i64);
            assert_eq!((v * TQ1_MUL) >> TQ1_SHIFT, (b * 256 + 242) / 243, "b = {b}");
        }
    }
}
