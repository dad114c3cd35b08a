//! The safetensors reader on hand-written headers, the shard index, and the header
//! writer against both our reader and the `safetensors` crate.
#![cfg(feature = "model-files")]

mod io_util;

use ternary_quant::io::safetensors::{read_safetensors, write_header, MAX_HEADER_LEN};
use ternary_quant::io::{check_shards, parse_safetensors_index, read_model, DType, Format, Metadata, ModelHeader};
use ternary_quant::Error;

/// A file from header JSON text and a data section.
fn file(json: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(data);
    out
}

fn read(bytes: &[u8]) -> ternary_quant::Result<ModelHeader> {
    read_safetensors(bytes, bytes.len() as u64)
}

fn malformed(bytes: &[u8], needle: &str) {
    io_util::expect_malformed(read(bytes), "safetensors", needle);
}

const GOOD: &str = r#"{"b":{"dtype":"F16","shape":[2,3],"data_offsets":[16,28]},
 "__metadata__":{"format":"pt","z":"last"},
 "a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},
 "c":{"dtype":"BF16","shape":[],"data_offsets":[28,30]},
 "d":{"dtype":"U8","shape":[2,5],"data_offsets":[30,40]},
 "e":{"dtype":"I64","shape":[0,3],"data_offsets":[40,40]},
 "f":{"dtype":"BOOL","shape":[1],"data_offsets":[40,41],"extra":"ignored"}}"#;

#[test]
fn reads_tensors_in_data_order_with_metadata() {
    let bytes = file(GOOD, &[7; 41]);
    let h = read(&bytes).unwrap();
    assert_eq!(h.format, Format::Safetensors);
    assert_eq!(h.version, None);
    assert_eq!(h.data_offset, 8 + GOOD.len() as u64);
    assert_eq!(h.header_len, h.data_offset);
    assert_eq!(h.metadata, Metadata::Safetensors(vec![("format".into(), "pt".into()), ("z".into(), "last".into())]));
    let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e", "f"]);
    let a = &h.tensors[0];
    assert_eq!((a.dtype, a.shape.as_slice(), a.offset, a.byte_len), (DType::F32, &[4u64][..], h.data_offset, 16));
    let b = &h.tensors[1];
    assert_eq!(
        (b.dtype, b.shape.as_slice(), b.offset, b.byte_len),
        (DType::F16, &[2u64, 3][..], h.data_offset + 16, 12)
    );
    assert_eq!(h.tensors[2].shape, Vec::<u64>::new());
    assert_eq!(h.tensors[2].element_count(), 1);
    assert_eq!(h.tensors[4].byte_len, 0);
    assert_eq!(h.tensors[5].dtype, DType::Bool);
    assert_eq!(h.tensor_bytes(), 41);
    assert_eq!(read_model(&bytes, bytes.len() as u64).unwrap(), h);
}

#[test]
fn short_prefixes_ask_for_the_header() {
    let bytes = file(GOOD, &[0; 41]);
    let size = bytes.len() as u64;
    for cut in 0..8 {
        assert_eq!(read_safetensors(&bytes[..cut], size), Err(Error::NeedMoreBytes { needed: 8 }));
    }
    // read_model needs 4 bytes to look for the GGUF magic first.
    assert_eq!(read_model(&bytes[..2], size), Err(Error::NeedMoreBytes { needed: 8 }));
    for cut in 8..8 + GOOD.len() {
        assert_eq!(
            read_safetensors(&bytes[..cut], size),
            Err(Error::NeedMoreBytes { needed: 8 + GOOD.len() as u64 }),
            "cut {cut}"
        );
    }
    assert!(read_safetensors(&bytes[..8 + GOOD.len()], size).is_ok());
}

#[test]
fn every_truncated_file_is_malformed() {
    let bytes = file(GOOD, &[0; 41]);
    io_util::every_prefix_is_malformed(&bytes, read_safetensors);
}

#[test]
fn mutated_headers_never_panic() {
    let bytes = file(GOOD, &[0; 41]);
    io_util::mutations_read_or_are_malformed(&bytes, 8 + GOOD.len(), |b| [0u8, 0xff, b'"', b'9', b'}', b ^ 0x20], read);
}

#[test]
fn header_length_beyond_the_file_or_the_limit() {
    let mut bytes = file(GOOD, &[0; 41]);
    let len = bytes.len() as u64;
    bytes[..8].copy_from_slice(&len.to_le_bytes());
    malformed(&bytes, "past the end of the file");
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    malformed(&bytes, "limit");
    bytes[..8].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
    malformed(&bytes, "limit");
    malformed(&[1, 0, 0], "cannot hold");
}

#[test]
fn bad_json_and_entries_are_refused() {
    let t = |json: &str, data: usize, needle: &str| malformed(&file(json, &vec![0; data]), needle);
    let mut not_utf8 = file(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, &[0]);
    not_utf8[10] = 0xff;
    malformed(&not_utf8, "not UTF-8");
    t("[1,2]", 0, "does not start with '{'");
    t(" {}", 0, "does not start with '{'");
    t("{}x", 0, "JSON");
    t(r#"{"a":1}"#, 0, "JSON");
    t("{", 0, "JSON");
    t(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x"#, 4, "JSON");
    t(
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        8,
        "duplicate key \"a\"",
    );
    t(r#"{"__metadata__":{"k":"v","k":"w"}}"#, 0, "duplicate key");
    t(r#"{"__metadata__":{"k":1}}"#, 0, "JSON");
    t(r#"{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#, 4, "unknown dtype \"F33\"");
    t(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, 4, "begin after");
    t(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, 4, "past the data section");
    t(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, 8, "needs 8");
    t(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, 4, "overflows");
    t(r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, 4, "JSON");
    t(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, 4, "JSON");
    t(r#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#, 4, "shape");
    t(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        8,
        "overlap",
    );
    t(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551615,3]}}"#, 4, "begin after");
    t(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}}"#, 4, "JSON");
    // Names may be any JSON string; non-UTF-8 bytes are refused above.
    let h = read(&file(r#"{"\u00e9\u0000":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, &[1])).unwrap();
    assert_eq!(h.tensors[0].name, "é\0");
}

#[test]
fn gaps_between_tensors_are_allowed() {
    let h = read(&file(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}}"#, &[0; 8])).unwrap();
    assert_eq!(h.tensors[0].offset, h.data_offset + 3);
}

#[test]
fn the_writer_pads_to_eight_and_both_readers_agree() {
    let metadata = vec![
        ("format".to_string(), "pt".to_string()),
        ("quote\"d".to_string(), "new\nline".to_string()),
        ("ctl\u{1}\\/é".to_string(), "tab\there\r\u{1f}".to_string()),
    ];
    let tensors: Vec<(&str, &str, &[u64], [u64; 2])> = vec![
        ("z.weight", "U8", &[2, 3], [0, 6]),
        ("z.weight_scale", "F32", &[1], [6, 10]),
        ("a", "BF16", &[3], [10, 16]),
    ];
    let header = write_header(Some(&metadata), &tensors);
    assert_eq!(header.len() % 8, 0);
    let n = u64::from_le_bytes(header[..8].try_into().unwrap()) as usize;
    assert_eq!(n + 8, header.len());
    assert!(header.ends_with(b"}") || header.ends_with(b" "));
    let mut bytes = header.clone();
    bytes.extend((0..16u8).collect::<Vec<_>>());
    let ours = read(&bytes).unwrap();
    assert_eq!(ours.metadata, Metadata::Safetensors(metadata.clone()));
    let names: Vec<&str> = ours.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["z.weight", "z.weight_scale", "a"]);
    // The reference reader accepts it and sees the same tensors and bytes.
    let theirs = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for t in &ours.tensors {
        let view = theirs.tensor(&t.name).unwrap();
        assert_eq!(view.shape().iter().map(|&d| d as u64).collect::<Vec<_>>(), t.shape);
        assert_eq!(view.data(), &bytes[t.offset as usize..(t.offset + t.byte_len) as usize]);
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let theirs_meta = meta.metadata().as_ref().unwrap();
    for (k, v) in &metadata {
        assert_eq!(theirs_meta.get(k), Some(v));
    }
}

const INDEX: &str = r#"{"metadata":{"total_size":40},
  "weight_map":{"b":"model-00002-of-00002.safetensors","a":"model-00001-of-00002.safetensors",
                "c":"model-00002-of-00002.safetensors"}}"#;

fn shard(names: &[&str]) -> ModelHeader {
    let entries: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!(r#""{n}":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}}"#, 4 * i, 4 * i + 4))
        .collect();
    let json = format!("{{{}}}", entries.join(","));
    read(&file(&json, &vec![0; 4 * names.len()])).unwrap()
}

#[test]
fn shard_index_parses_and_checks() {
    let index = parse_safetensors_index(INDEX.as_bytes()).unwrap();
    assert_eq!(index.files, ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    assert_eq!(index.weight_map[0], ("b".to_string(), "model-00002-of-00002.safetensors".to_string()));
    let (one, two) = (shard(&["a"]), shard(&["b", "c"]));
    let (f1, f2) = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors");
    check_shards(&index, &[(f1, &one), (f2, &two)]).unwrap();

    let fails = |shards: &[(&str, &ModelHeader)], needle: &str| match check_shards(&index, shards) {
        Err(Error::Malformed { format: "safetensors index", reason }) => assert!(reason.contains(needle), "{reason}"),
        other => panic!("{other:?}"),
    };
    fails(&[(f1, &one)], "was not given");
    fails(&[(f1, &one), (f2, &shard(&["b"]))], "\"c\" is not in shard");
    fails(&[(f1, &shard(&["a", "x"])), (f2, &two)], "\"x\" of shard");
    fails(&[(f1, &two), (f2, &one)], "is not in shard");
    fails(&[(f1, &one), (f2, &two), ("other.safetensors", &one)], "not named in the index");

    for bad in ["{", "[]", r#"{"metadata":{}}"#, r#"{"weight_map":{"a":"x","a":"y"}}"#, r#"{"weight_map":{"a":1}}"#] {
        assert!(
            matches!(parse_safetensors_index(bad.as_bytes()), Err(Error::Malformed { .. })),
            "{bad} should be refused"
        );
    }
    assert!(matches!(parse_safetensors_index(&[0xff]), Err(Error::Malformed { .. })));
}
