//! The GGUF reader on files built byte by byte here, and the writer against the reader.
#![cfg(feature = "model-files")]

mod io_util;

use ternary_quant::io::gguf::{read_gguf, write_gguf, GgufTensorOut, MAX_ARRAY_DEPTH};
use ternary_quant::io::{read_model, DType, Format, GgufArray, GgufType, GgufValue, Metadata, ModelHeader};
use ternary_quant::Error;

/// Little-endian byte builder.
#[derive(Default, Clone)]
struct B(Vec<u8>);

impl B {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A GGUF string: u64 length then the bytes.
    fn s(self, b: &[u8]) -> Self {
        self.u64(b.len() as u64).bytes(b)
    }
}

/// A metadata entry: key, type id, and the value's bytes.
fn kv(key: &str, ty: u32, value: B) -> B {
    B::default().s(key.as_bytes()).u32(ty).bytes(&value.0)
}

/// A tensor info.
fn ti(name: &str, ne: &[u64], ty: u32, offset: u64) -> B {
    let mut b = B::default().s(name.as_bytes()).u32(ne.len() as u32);
    for &d in ne {
        b = b.u64(d);
    }
    b.u32(ty).u64(offset)
}

/// A whole file: header, padding to `align`, then `data`.
fn file(version: u32, kvs: &[B], tensors: &[B], align: usize, data: &[u8]) -> Vec<u8> {
    let mut b = B::default().bytes(b"GGUF").u32(version).u64(tensors.len() as u64).u64(kvs.len() as u64);
    for k in kvs {
        b = b.bytes(&k.0);
    }
    for t in tensors {
        b = b.bytes(&t.0);
    }
    let mut out = b.0;
    while out.len() % align != 0 {
        out.push(0);
    }
    out.extend_from_slice(data);
    out
}

fn read(bytes: &[u8]) -> ternary_quant::Result<ModelHeader> {
    read_gguf(bytes, bytes.len() as u64)
}

fn malformed(bytes: &[u8], needle: &str) {
    io_util::expect_malformed(read(bytes), "GGUF", needle);
}

fn gguf_metadata(h: &ModelHeader) -> &[(String, GgufValue)] {
    match &h.metadata {
        Metadata::Gguf(m) => m,
        _ => panic!("not GGUF metadata"),
    }
}

/// One key of every type, arrays of several element types, and nested arrays.
fn every_type_kvs() -> (Vec<B>, Vec<(String, GgufValue)>) {
    let arr = |t: GgufType, items: Vec<GgufValue>| GgufValue::Array(GgufArray::new(t, items).unwrap());
    let nested_bytes = B::default()
        .u32(9)
        .u64(3)
        .bytes(&B::default().u32(5).u64(2).u32(-1i32 as u32).u32(7).0)
        .bytes(&B::default().u32(5).u64(0).0)
        .bytes(&B::default().u32(9).u64(1).bytes(&B::default().u32(8).u64(1).s(b"deep").0).0);
    let nested = arr(
        GgufType::Array,
        vec![
            arr(GgufType::I32, vec![GgufValue::I32(-1), GgufValue::I32(7)]),
            arr(GgufType::I32, vec![]),
            arr(GgufType::Array, vec![arr(GgufType::String, vec![GgufValue::string("deep")])]),
        ],
    );
    let kvs = vec![
        kv("t.u8", 0, B::default().u8(200)),
        kv("t.i8", 1, B::default().u8(0x80)),
        kv("t.u16", 2, B::default().bytes(&60000u16.to_le_bytes())),
        kv("t.i16", 3, B::default().bytes(&(-30000i16).to_le_bytes())),
        kv("t.u32", 4, B::default().u32(4_000_000_000)),
        kv("t.i32", 5, B::default().u32(-2_000_000_000i32 as u32)),
        kv("t.f32", 6, B::default().u32(1.5f32.to_bits())),
        kv("t.bool", 7, B::default().u8(1)),
        kv("t.string", 8, B::default().s("héllo".as_bytes())),
        kv("t.arr_u8", 9, B::default().u32(0).u64(3).u8(1).u8(2).u8(3)),
        kv("t.arr_str", 9, B::default().u32(8).u64(2).s(b"a").s(b"")),
        kv("t.arr_bool", 9, B::default().u32(7).u64(2).u8(0).u8(1)),
        kv("t.arr_f64", 9, B::default().u32(12).u64(1).u64(0.25f64.to_bits())),
        kv("t.nested", 9, nested_bytes),
        kv("t.u64", 10, B::default().u64(u64::MAX)),
        kv("t.i64", 11, B::default().u64(i64::MIN as u64)),
        kv("t.f64", 12, B::default().u64((-2.5f64).to_bits())),
    ];
    let values = vec![
        ("t.u8".to_string(), GgufValue::U8(200)),
        ("t.i8".into(), GgufValue::I8(-128)),
        ("t.u16".into(), GgufValue::U16(60000)),
        ("t.i16".into(), GgufValue::I16(-30000)),
        ("t.u32".into(), GgufValue::U32(4_000_000_000)),
        ("t.i32".into(), GgufValue::I32(-2_000_000_000)),
        ("t.f32".into(), GgufValue::F32(1.5)),
        ("t.bool".into(), GgufValue::Bool(true)),
        ("t.string".into(), GgufValue::string("héllo")),
        ("t.arr_u8".into(), arr(GgufType::U8, vec![GgufValue::U8(1), GgufValue::U8(2), GgufValue::U8(3)])),
        ("t.arr_str".into(), arr(GgufType::String, vec![GgufValue::string("a"), GgufValue::string("")])),
        ("t.arr_bool".into(), arr(GgufType::Bool, vec![GgufValue::Bool(false), GgufValue::Bool(true)])),
        ("t.arr_f64".into(), arr(GgufType::F64, vec![GgufValue::F64(0.25)])),
        ("t.nested".into(), nested),
        ("t.u64".into(), GgufValue::U64(u64::MAX)),
        ("t.i64".into(), GgufValue::I64(i64::MIN)),
        ("t.f64".into(), GgufValue::F64(-2.5)),
    ];
    (kvs, values)
}

/// (name, dtype, row-major shape, byte length) of an expected tensor.
type Expected = (&'static str, DType, Vec<u64>, u64);

/// Tensors of every type the converter reads, each at an aligned offset.
fn tensors_and_data(align: u64) -> (Vec<B>, Vec<u8>, Vec<Expected>) {
    let specs: Vec<(&str, u32, Vec<u64>, DType, u64)> = vec![
        ("f32", 0, vec![8, 2], DType::F32, 64),
        ("f16", 1, vec![8], DType::F16, 16),
        ("bf16", 30, vec![4, 1, 2], DType::BF16, 16),
        ("q8_0", 8, vec![64, 2], DType::Q8_0, 4 * 34),
        ("tq1_0", 34, vec![256, 1], DType::Tq1_0, 54),
        ("tq2_0", 35, vec![512, 3], DType::Tq2_0, 6 * 66),
        ("i2_s", 36, vec![128, 2], DType::I2S, 64 + 32),
        ("q4_k", 12, vec![256], DType::GgmlOther(12), 144),
        ("i32", 26, vec![3], DType::I32, 12),
    ];
    let mut infos = Vec::new();
    let mut data = Vec::new();
    let mut expected = Vec::new();
    for (i, (name, ty, ne, dtype, len)) in specs.into_iter().enumerate() {
        while !(data.len() as u64).is_multiple_of(align) {
            data.push(0);
        }
        infos.push(ti(name, &ne, ty, data.len() as u64));
        expected.push((name, dtype, ne.iter().rev().copied().collect(), len));
        data.extend((0..len).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8)));
    }
    (infos, data, expected)
}

#[test]
fn reads_every_metadata_type_in_v2_and_v3() {
    for version in [2, 3] {
        let (kvs, values) = every_type_kvs();
        let bytes = file(version, &kvs, &[], 32, &[]);
        let h = read(&bytes).unwrap();
        assert_eq!(h.format, Format::Gguf);
        assert_eq!(h.version, Some(version));
        assert_eq!(h.alignment, Some(32));
        assert_eq!(gguf_metadata(&h), values.as_slice());
        assert!(h.tensors.is_empty());
    }
}

#[test]
fn reads_tensor_infos_of_every_type_with_custom_alignment() {
    for align in [32u64, 64] {
        let (infos, data, expected) = tensors_and_data(align);
        let mut kvs = vec![kv("general.architecture", 8, B::default().s(b"llama"))];
        if align != 32 {
            kvs.push(kv("general.alignment", 4, B::default().u32(align as u32)));
        }
        let bytes = file(3, &kvs, &infos, align as usize, &data);
        let h = read(&bytes).unwrap();
        assert_eq!(h.alignment, Some(align as u32));
        assert_eq!(h.data_offset % align, 0);
        assert_eq!(h.data_offset + data.len() as u64, bytes.len() as u64);
        assert_eq!(h.tensors.len(), expected.len());
        let mut at = 0;
        for (t, (name, dtype, shape, len)) in h.tensors.iter().zip(&expected) {
            while at % align != 0 {
                at += 1;
            }
            assert_eq!(t.name, *name);
            assert_eq!(t.dtype, *dtype, "{name}");
            assert_eq!(&t.shape, shape, "{name}");
            assert_eq!(t.ne().iter().rev().copied().collect::<Vec<_>>(), *shape);
            assert_eq!(t.byte_len, *len, "{name}");
            assert_eq!(t.offset, h.data_offset + at, "{name}");
            at += len;
        }
        // read_model tells the format by the magic.
        assert_eq!(read_model(&bytes, bytes.len() as u64).unwrap(), h);
    }
}

#[test]
fn every_short_prefix_asks_for_more_and_converges() {
    let (mut kvs, _) = every_type_kvs();
    kvs.push(kv("general.alignment", 4, B::default().u32(64)));
    let (infos, data, _) = tensors_and_data(64);
    let bytes = file(3, &kvs, &infos, 64, &data);
    let full = read(&bytes).unwrap();
    let size = bytes.len() as u64;
    for cut in 0..full.header_len as usize {
        match read_gguf(&bytes[..cut], size) {
            Err(Error::NeedMoreBytes { needed }) => {
                assert!(needed > cut as u64 && needed <= size, "cut {cut}: needed {needed}");
                // Following the hints reaches the full header.
                let mut have = needed as usize;
                let mut rounds = 0;
                loop {
                    match read_gguf(&bytes[..have], size) {
                        Ok(h) => {
                            assert_eq!(h, full);
                            break;
                        }
                        Err(Error::NeedMoreBytes { needed }) => {
                            assert!(needed > have as u64);
                            have = needed as usize;
                        }
                        Err(e) => panic!("cut {cut}, have {have}: {e}"),
                    }
                    rounds += 1;
                    assert!(rounds < 64);
                }
            }
            other => panic!("cut {cut}: expected NeedMoreBytes, got {other:?}"),
        }
    }
    // From header_len on, the prefix is enough.
    assert_eq!(read_gguf(&bytes[..full.header_len as usize], size).unwrap(), full);
}

#[test]
fn every_truncated_file_is_malformed_never_a_panic() {
    let (kvs, _) = every_type_kvs();
    let (infos, data, _) = tensors_and_data(32);
    let bytes = file(3, &kvs, &infos, 32, &data);
    io_util::every_prefix_is_malformed(&bytes, read_gguf);
}

#[test]
fn mutated_headers_never_panic() {
    let (kvs, _) = every_type_kvs();
    let (infos, data, _) = tensors_and_data(32);
    let bytes = file(3, &kvs, &infos, 32, &data);
    let header_len = read(&bytes).unwrap().header_len as usize;
    io_util::mutations_read_or_are_malformed(
        &bytes[..],
        header_len,
        |b| [0x00, 0xff, b.wrapping_add(1), b ^ 0x80],
        read,
    );
}

#[test]
fn bogus_counts_are_refused_before_allocating() {
    let base = B::default().bytes(b"GGUF").u32(3);
    for (tensors, kvs) in [(1u64 << 63, 0u64), (0, 1 << 63), (u64::MAX, 0), (0, u64::MAX), (1 << 40, 1 << 40)] {
        let bytes = base.clone().u64(tensors).u64(kvs).bytes(&[0; 64]).0;
        malformed(&bytes, "left in the file");
    }
    // An array claiming 2^62 elements.
    let bytes = file(3, &[kv("a", 9, B::default().u32(4).u64(1 << 62))], &[], 1, &[0; 16]);
    malformed(&bytes, "left in the file");
    // Strings longer than the file: a key, a value, a tensor name.
    let bytes = B::default().bytes(b"GGUF").u32(3).u64(0).u64(1).u64(1 << 60).bytes(&[0; 32]).0;
    malformed(&bytes, "left in the file");
    let bytes = file(3, &[kv("k", 8, B::default().u64(u64::MAX))], &[], 1, &[0; 8]);
    malformed(&bytes, "left in the file");
    let bytes = B::default().bytes(b"GGUF").u32(3).u64(1).u64(0).u64(999).bytes(&[0; 40]).0;
    malformed(&bytes, "left in the file");
}

#[test]
fn a_huge_file_with_a_short_prefix_asks_for_bytes_not_memory() {
    // The file is said to be 1 TB; 2^26 u32s fit it, but not the prefix.
    let bytes = file(3, &[kv("a", 9, B::default().u32(4).u64(1 << 26))], &[], 1, &[]);
    match read_gguf(&bytes, 1 << 40) {
        Err(Error::NeedMoreBytes { needed }) => assert!(needed >= 1 << 28),
        other => panic!("{other:?}"),
    }
    // More than the 1 GiB header limit is refused outright.
    let bytes = file(3, &[kv("a", 9, B::default().u32(4).u64(1 << 29))], &[], 1, &[]);
    malformed(&bytes[..], "left in the file");
    match read_gguf(&bytes, 1 << 40) {
        Err(Error::Malformed { reason, .. }) => assert!(reason.contains("longer than"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_types_are_refused() {
    malformed(&file(3, &[kv("k", 13, B::default().u8(0))], &[], 1, &[]), "unknown value type 13");
    malformed(&file(3, &[kv("k", 9, B::default().u32(99).u64(0))], &[], 1, &[]), "unknown element type 99");
    malformed(&file(3, &[], &[ti("t", &[4], 99, 0)], 32, &[0; 64]), "unknown ggml type 99");
    // ggml ids 31-33 and 37-38 are retired or unassigned.
    malformed(&file(3, &[], &[ti("t", &[4], 31, 0)], 32, &[0; 64]), "unknown ggml type 31");
}

#[test]
fn bad_strings_names_and_duplicates_are_refused() {
    let bad_key = B::default().s(&[0xff, 0xfe]).u32(0).u8(1);
    malformed(&file(3, &[bad_key], &[], 1, &[]), "not UTF-8");
    let bad_name = B::default().s(&[b'a', 0xc3]).u32(1).u64(4).u32(0).u64(0);
    malformed(&file(3, &[], &[bad_name], 32, &[0; 16]), "not UTF-8");
    let k = kv("dup", 0, B::default().u8(1));
    malformed(&file(3, &[k.clone(), k], &[], 1, &[]), "duplicate metadata key");
    malformed(&file(3, &[], &[ti("t", &[4], 0, 0), ti("t", &[4], 0, 32)], 32, &[0; 64]), "duplicate tensor name");
    // A string value need not be UTF-8: it is kept as bytes.
    let h = read(&file(3, &[kv("k", 8, B::default().s(&[0xff]))], &[], 1, &[])).unwrap();
    assert_eq!(gguf_metadata(&h)[0].1, GgufValue::String(vec![0xff]));
}

#[test]
fn bad_offsets_and_shapes_are_refused() {
    let data = [0u8; 128];
    malformed(&file(3, &[], &[ti("t", &[4], 0, 8)], 32, &data), "not a multiple of the alignment");
    malformed(&file(3, &[], &[ti("t", &[64], 0, 0)], 32, &data), "past the end of the file");
    malformed(&file(3, &[], &[ti("t", &[4], 0, 1 << 62)], 32, &data), "past the end of the file");
    malformed(&file(3, &[], &[ti("t", &[4], 0, u64::MAX - 31)], 32, &data), "past the end of the file");
    malformed(&file(3, &[], &[ti("a", &[16], 0, 0), ti("b", &[4], 0, 32)], 32, &data), "overlap");
    malformed(&file(3, &[], &[ti("t", &[1 << 62, 1 << 62], 0, 0)], 32, &data), "overflow");
    malformed(&file(3, &[], &[ti("t", &[33], 8, 0)], 32, &data), "blocks of 32");
    malformed(&file(3, &[], &[ti("t", &[100], 35, 0)], 32, &data), "blocks of 256");
    malformed(&file(3, &[], &[ti("t", &[1, 1, 1, 1, 1], 0, 0)], 32, &data), "5 dimensions");
    malformed(&file(3, &[], &[ti("t", &[u64::MAX], 0, 0)], 32, &data), "2^63");
    // Zero-sized tensors may share an offset.
    let h = read(&file(3, &[], &[ti("a", &[0, 4], 0, 0), ti("b", &[4], 0, 0)], 32, &data)).unwrap();
    assert_eq!(h.tensors[0].byte_len, 0);
}

#[test]
fn bad_versions_magic_alignment_and_bools_are_refused() {
    let mut v1 = file(3, &[], &[], 1, &[]);
    v1[4] = 1;
    malformed(&v1, "v1");
    let mut v4 = file(3, &[], &[], 1, &[]);
    v4[4] = 4;
    malformed(&v4, "unsupported version 4");
    let big = B::default().bytes(b"GGUF").bytes(&[0, 0, 0, 3]).u64(0).u64(0).0;
    malformed(&big, "big-endian");
    let mut magic = file(3, &[], &[], 1, &[]);
    magic[0] = b'g';
    malformed(&magic, "magic");
    malformed(&file(3, &[kv("general.alignment", 4, B::default().u32(0))], &[], 1, &[]), "power of two");
    malformed(&file(3, &[kv("general.alignment", 4, B::default().u32(48))], &[], 1, &[]), "power of two");
    malformed(&file(3, &[kv("general.alignment", 10, B::default().u64(32))], &[], 1, &[]), "UINT32");
    malformed(&file(3, &[kv("b", 7, B::default().u8(2))], &[], 1, &[]), "not 0 or 1");
    malformed(&file(3, &[kv("b", 9, B::default().u32(7).u64(2).u8(1).u8(5))], &[], 1, &[]), "not 0 or 1");
}

#[test]
fn deeply_nested_arrays_are_refused() {
    let depth = MAX_ARRAY_DEPTH + 4;
    let mut value = B::default();
    for _ in 0..depth {
        value = value.u32(9).u64(1);
    }
    value = value.u32(0).u64(0);
    malformed(&file(3, &[kv("deep", 9, value)], &[], 1, &[]), "nested deeper");
}

#[test]
fn prefix_longer_than_the_file_is_an_option_error() {
    let bytes = file(3, &[], &[], 1, &[]);
    assert!(matches!(read_gguf(&bytes, 4), Err(Error::InvalidOption { name: "fileSize", .. })));
}

#[test]
fn writer_round_trips_through_the_reader() {
    let (_, values) = every_type_kvs();
    let mut metadata = values.clone();
    metadata.push(("general.alignment".into(), GgufValue::U32(64)));
    let tensors = vec![
        GgufTensorOut { name: "a.weight".into(), ne: vec![256, 3], ggml_type: 35, byte_len: 3 * 66 },
        GgufTensorOut { name: "b".into(), ne: vec![5], ggml_type: 0, byte_len: 20 },
        GgufTensorOut { name: "c.q8".into(), ne: vec![64, 2], ggml_type: 8, byte_len: 4 * 34 },
        GgufTensorOut { name: "ünïcode".into(), ne: vec![128, 4], ggml_type: 36, byte_len: 128 + 32 },
    ];
    let layout = write_gguf(&metadata, &tensors, 64).unwrap();
    assert_eq!(layout.header.len() % 64, 0);
    let mut bytes = layout.header.clone();
    bytes.resize(layout.total as usize, 0);
    let h = read(&bytes).unwrap();
    assert_eq!(h.version, Some(3));
    assert_eq!(gguf_metadata(&h), metadata.as_slice());
    assert_eq!(h.data_offset, layout.header.len() as u64);
    for ((t, out), offset) in h.tensors.iter().zip(&tensors).zip(&layout.offsets) {
        assert_eq!(t.name, out.name);
        assert_eq!(t.ne(), out.ne);
        assert_eq!(t.dtype.ggml_id(), Some(out.ggml_type));
        assert_eq!(t.byte_len, out.byte_len);
        assert_eq!(t.offset, *offset);
        assert_eq!(t.offset % 64, 0);
    }
    // Every tensor is padded, the last one too.
    let last = h.tensors.last().unwrap();
    assert_eq!(layout.total, (last.offset + last.byte_len).div_ceil(64) * 64);
    // Writing what was read gives the same bytes.
    let again = write_gguf(gguf_metadata(&h), &tensors, 64).unwrap();
    assert_eq!(again, layout);
}

#[test]
fn writer_refuses_mistyped_arrays_and_bad_alignment() {
    assert!(GgufArray::new(GgufType::U8, vec![GgufValue::I8(1)]).is_err());
    let a = GgufArray::new(GgufType::U32, vec![GgufValue::U32(7)]).unwrap();
    assert_eq!(
        (a.get(0), a.get(1), a.get(usize::MAX / 4), a.get(usize::MAX)),
        (Some(GgufValue::U32(7)), None, None, None)
    );
    assert!(write_gguf(&[], &[], 48).is_err());
}
