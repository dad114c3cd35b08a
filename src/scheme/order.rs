//! Ordering magnitudes without a comparison sort: a radix sort, and the k-th smallest
//! |x| by radix selection. Linear time, and a few hundred bytes of code where the
//! standard library's sorts and selection add kilobytes to the `.wasm`.

/// The k-th smallest |x| (from 0), for finite x: the bits of |x| order as the values do.
/// A most-significant-digit radix selection in one copy of the magnitudes.
pub(crate) fn abs_select(x: &[f32], k: usize) -> f32 {
    debug_assert!(k < x.len());
    let mut values: Vec<u32> = x.iter().map(|v| v.to_bits() & 0x7fff_ffff).collect();
    let (mut len, mut k) = (values.len(), k);
    for shift in [24, 16, 8, 0] {
        let digit_of = |v: u32| (v >> shift) as usize & 0xff;
        let mut counts = [0usize; 256];
        for &v in &values[..len] {
            counts[digit_of(v)] += 1;
        }
        let mut digit = 0;
        while k >= counts[digit] {
            k -= counts[digit];
            digit += 1;
        }
        // The values with that digit move to the front; the rest drop out.
        let mut kept = 0;
        for i in 0..len {
            if digit_of(values[i]) == digit {
                values.swap(kept, i);
                kept += 1;
            }
        }
        len = kept;
    }
    f32::from_bits(values[0])
}

/// Sorts values in decreasing order: few by insertion (the scalar kernel), more by radix.
pub(crate) fn sort_decreasing(values: &mut [u32]) {
    if values.len() <= crate::kernels::FEW_SORTED {
        crate::kernels::scalar::sort_few_decreasing(values);
        return;
    }
    let mut keys: Vec<u64> = values.iter().map(|&v| u64::from(v)).collect();
    let mut spare = vec![0u64; values.len()];
    let sorted = radix_sort(&mut keys, &mut spare, [0, 8, 16, 24]);
    for (to, &from) in values.iter_mut().zip(sorted.iter().rev()) {
        *to = from as u32;
    }
}

/// Sorts `keys` in increasing order of the digits at `shifts` (least significant first),
/// stably, using `spare` (as long); returns the sorted one.
pub(crate) fn radix_sort<'a>(keys: &'a mut [u64], spare: &'a mut [u64], shifts: [u32; 4]) -> &'a [u64] {
    let (mut from, mut to) = (keys, spare);
    for shift in shifts {
        let mut counts = [0usize; 256];
        for &k in from.iter() {
            counts[(k >> shift) as usize & 0xff] += 1;
        }
        if counts.contains(&from.len()) {
            continue; // every key has this digit: the pass would not move anything
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            (*c, at) = (at, at + *c);
        }
        for &k in from.iter() {
            let digit = (k >> shift) as usize & 0xff;
            to[counts[digit]] = k;
            counts[digit] += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Selection and both sorts agree with a comparison sort, ties and zeros included.
    #[test]
    fn orders_agree_with_a_comparison_sort() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for n in [1usize, 2, 3, 17, 64, 65, 300] {
            let x: Vec<f32> = (0..n)
                .map(|i| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let v = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    [v, -v, 0.0, -0.0, 0.25, v * 1e-30][i % 6]
                })
                .collect();
            let mut want: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            want.sort_by(f32::total_cmp);
            for (k, w) in want.iter().enumerate() {
                assert_eq!(abs_select(&x, k).to_bits(), w.to_bits(), "n {n}, k {k}");
            }
            let mut bits: Vec<u32> = x.iter().map(|v| v.to_bits() & 0x7fff_ffff).collect();
            sort_decreasing(&mut bits);
            assert!(bits.iter().rev().map(|&b| f32::from_bits(b)).eq(want.iter().copied()), "n {n}");
        }
    }
}
