//! Length checks, unsupported types, hand-built blocks with known values, and the parallel path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rocmforge_gguf::{GgmlType, GgufError, quants};

fn f16(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

#[test]
fn data_length_must_match_the_element_count_exactly() {
    let mut out = vec![0.0f32; 64];
    for (len, ok) in [
        (36, true),
        (35, false),
        (37, false),
        (18, false),
        (0, false),
    ] {
        let r = quants::dequantize(GgmlType::Q4_0, &vec![0u8; len], &mut out);
        assert_eq!(r.is_ok(), ok, "len {len}: {r:?}");
        if !ok {
            assert!(matches!(
                r,
                Err(GgufError::BlockLayout {
                    ty: GgmlType::Q4_0,
                    ..
                })
            ));
        }
    }
    // 33 elements is no whole number of blocks.
    let r = quants::dequantize(GgmlType::Q4_0, &[0u8; 36], &mut [0.0; 33]);
    assert!(matches!(r, Err(GgufError::BlockLayout { .. })));
    let r = quants::dequantize_to_vec(GgmlType::Q6_K, &[0u8; 211]);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("Q6_K") && msg.contains("211"), "{msg}");
    let r = quants::quantize_into(GgmlType::Q8_0, &[0.0; 32], &mut [0u8; 33]);
    assert!(matches!(r, Err(GgufError::BlockLayout { .. })));
}

#[test]
fn integer_and_f64_types_are_unsupported() {
    for ty in [
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
        GgmlType::F64,
    ] {
        assert!(!quants::can_dequantize(ty) && !quants::can_quantize(ty));
        let r = quants::dequantize_to_vec(ty, &[0u8; 64]);
        assert!(
            matches!(r, Err(GgufError::Unsupported { .. })),
            "{ty}: {r:?}"
        );
        let r = quants::dequantize(ty, &[0u8; 8], &mut [0.0; 1]);
        assert!(
            matches!(r, Err(GgufError::Unsupported { .. })),
            "{ty}: {r:?}"
        );
    }
    let supported = GgmlType::ALL
        .iter()
        .filter(|t| quants::can_dequantize(**t))
        .count();
    assert_eq!(supported, 18);
}

#[test]
fn q4_0_block_decodes_to_known_values() {
    // d = 0.5, byte j = (j & 15) | (15 - j) << 4 → element j = (j − 8)/2, element 16 + j = (7 − j)/2.
    let mut b = f16(0.5).to_vec();
    b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let y = quants::dequantize_to_vec(GgmlType::Q4_0, &b).unwrap();
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
        assert_eq!(y[16 + j], (7.0 - j as f32) * 0.5);
    }
}

#[test]
fn q5_1_block_uses_the_high_bits_and_the_min() {
    // d = 1, m = −3, all low nibbles 1, high bits set for the odd elements.
    let mut b = [f16(1.0), f16(-3.0)].concat();
    b.extend_from_slice(&0xaaaa_aaaau32.to_le_bytes());
    b.extend_from_slice(&[0x11; 16]);
    let y = quants::dequantize_to_vec(GgmlType::Q5_1, &b).unwrap();
    for (e, v) in y.iter().enumerate() {
        let q = 1 + if e % 2 == 1 { 16 } else { 0 };
        assert_eq!(*v, q as f32 - 3.0, "element {e}");
    }
}

#[test]
fn q8_k_block_decodes_with_its_f32_scale() {
    let mut b = 0.25f32.to_le_bytes().to_vec();
    b.extend((0..=255u8).map(|i| i.wrapping_sub(128)));
    b.extend_from_slice(&[0u8; 32]);
    let y = quants::dequantize_to_vec(GgmlType::Q8_K, &b).unwrap();
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, 0.25 * f32::from((i as u8).wrapping_sub(128) as i8));
    }
}

#[test]
fn iq4_nl_codes_index_the_value_table() {
    let mut b = f16(2.0).to_vec();
    b.extend((0..16u8).map(|j| j | (j << 4)));
    let y = quants::dequantize_to_vec(GgmlType::IQ4_NL, &b).unwrap();
    for j in 0..16 {
        assert_eq!(y[j], 2.0 * f32::from(quants::IQ4_NL_VALUES[j]));
        assert_eq!(y[j + 16], y[j]);
    }
}

#[test]
fn mxfp4_codes_are_doubled_e2m1_values_times_half_the_e8m0_scale() {
    // e = 130: scale 2^3, half of it 4; code j of the low nibbles, 15 - j of the high ones.
    let mut b = vec![130u8];
    b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let y = quants::dequantize_to_vec(GgmlType::MXFP4, &b).unwrap();
    let e2m1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    for j in 0..16 {
        let v = |q: usize| if q < 8 { e2m1[q] } else { -e2m1[q - 8] };
        assert_eq!(y[j], 8.0 * v(j));
        assert_eq!(y[j + 16], 8.0 * v(15 - j));
    }
    // e = 0 and 1 are subnormal halves (2^-128 and 2^-127 times the doubled value).
    assert_eq!(quants::e8m0_half(0), f32::from_bits(0x0020_0000));
    assert_eq!(quants::e8m0_half(1), f32::from_bits(0x0040_0000));
    assert_eq!(quants::e8m0_half(127), 0.5);
}

#[test]
fn parallel_dequantization_equals_block_by_block() {
    // 2048 Q4_K blocks (512 Ki values) take the rayon path.
    let ty = GgmlType::Q4_K;
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut data: Vec<u8> = (0..2048 * 144)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for b in data.chunks_mut(144) {
        b[0..2].copy_from_slice(&f16(0.01));
        b[2..4].copy_from_slice(&f16(0.02));
    }
    let all = quants::dequantize_to_vec(ty, &data).unwrap();
    for (i, b) in data.chunks(144).enumerate().step_by(97) {
        let one = quants::dequantize_to_vec(ty, b).unwrap();
        assert_eq!(&all[i * 256..(i + 1) * 256], &one[..], "block {i}");
    }
}
