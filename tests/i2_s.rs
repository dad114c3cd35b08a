//! I2_S against the semantics of bitnet.cpp's `quantize_i2_s` (x86 layout): the scale is
//! max|w| over the tensor, a value is 0 when |w| < 1e-6 and otherwise takes its sign,
//! value `b*128 + g*32 + p` goes to byte `b*32 + p` at bits `6 - 2g`, and a 32-byte tail
//! starts with the f32 scale. The reference below is written from that description.

use ternary_quant::{quantize_ternary, Backend, ScaleRule, Scope, TernaryLayout, TernaryOptions, TernaryTensor};

fn reference_i2_s(w: &[f32]) -> Vec<u8> {
    let scale = w.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let mut out = vec![0u8; w.len() / 4 + 32];
    for (i, &v) in w.iter().enumerate() {
        let c: u8 = if (v as f64).abs() < 1e-6 {
            1
        } else if (v as f64) * scale > 0.0 {
            2
        } else {
            0
        };
        let (block, j) = (i / 128, i % 128);
        out[block * 32 + j % 32] |= c << (6 - 2 * (j / 32));
    }
    let at = w.len() / 4;
    out[at..at + 4].copy_from_slice(&(scale as f32).to_le_bytes());
    out
}

fn ternary_weights(n: usize, g: f32, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            g * ((s >> 33) % 3) as f32 - g
        })
        .collect()
}

#[test]
fn absmax_on_ternary_weights_matches_quantize_i2_s() {
    for backend in Backend::supported() {
        for (rows, cols, g) in [(1, 128, 0.5f32), (3, 256, 0.0173), (16, 384, 2.0), (7, 1024, 1e-3)] {
            let w = ternary_weights(rows * cols, g, (rows * cols) as u64);
            let opts =
                TernaryOptions { layout: TernaryLayout::I2S, rule: ScaleRule::AbsMax, scope: Scope::Tensor, backend };
            let t = quantize_ternary(&w, rows, cols, &opts).unwrap();
            assert_eq!(t.bytes, reference_i2_s(&w), "{backend} {rows}x{cols}");
            assert_eq!(t.dequantize(), w, "{backend} {rows}x{cols}: already-ternary weights come back exactly");
            let back = TernaryTensor::from_bytes(t.bytes.clone(), rows, cols, TernaryLayout::I2S, Scope::Tensor, None)
                .unwrap();
            assert_eq!(back.scales, vec![g]);
            assert_eq!(back.codes(), t.codes());
        }
    }
}

#[test]
fn the_reference_check_detects_a_moved_value() {
    let w = ternary_weights(256, 1.0, 9);
    let opts = TernaryOptions {
        layout: TernaryLayout::I2S,
        rule: ScaleRule::AbsMax,
        scope: Scope::Tensor,
        ..Default::default()
    };
    let mut bytes = quantize_ternary(&w, 2, 128, &opts).unwrap().bytes;
    bytes[5] ^= 0b0100_0000;
    assert_ne!(bytes, reference_i2_s(&w));
}

#[test]
fn i2_s_needs_rows_of_128_and_one_scale() {
    let w = vec![1.0f32; 2 * 192];
    let opts = TernaryOptions { layout: TernaryLayout::I2S, ..Default::default() };
    assert!(matches!(
        quantize_ternary(&w, 2, 192, &opts),
        Err(ternary_quant::Error::RowNotBlockAligned { block: 128, cols: 192, .. })
    ));
    let w = vec![1.0f32; 2 * 128];
    let opts = TernaryOptions { layout: TernaryLayout::I2S, scope: Scope::Row, ..Default::default() };
    assert!(matches!(quantize_ternary(&w, 2, 128, &opts), Err(ternary_quant::Error::Unsupported(_))));
}
