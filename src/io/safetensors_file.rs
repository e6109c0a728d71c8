//! Named f32 tensors plus string metadata in one safetensors file.
//!
//! Files are standard safetensors (F32, little endian, row-major) and load
//! with `safetensors.numpy.load_file` in Python. [`write_file`] adds checksums
//! to the metadata and [`read_file`] checks them; [`encode`] and [`decode`]
//! are the bare format.

use anyhow::{anyhow, bail, Context};
use safetensors::tensor::{Dtype, Metadata, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::atomic::write_atomic;
pub use super::checksum::NamedTensor;
use super::checksum::{self, Integrity};

/// Size of the little-endian u64 header-length prefix.
const N_LEN: usize = 8;
/// Key reserved by the format for the string metadata map.
const METADATA_KEY: &str = "__metadata__";


/// Number of elements of `shape`, or None on overflow.
fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Serialises tensors (float32, little endian, row-major) with a `__metadata__`
/// string map. Errors if `data.len() != product(shape)` or names repeat.
pub fn encode(tensors: &[NamedTensor], metadata: &BTreeMap<String, String>) -> anyhow::Result<Vec<u8>> {
    let mut seen = BTreeSet::new();
    for t in tensors {
        if t.name == METADATA_KEY {
            bail!("tensor name {METADATA_KEY:?} is reserved");
        }
        if !seen.insert(t.name.as_str()) {
            bail!("duplicate tensor name {:?}", t.name);
        }
        let n = numel(&t.shape).with_context(|| format!("tensor {:?}: shape {:?} overflows", t.name, t.shape))?;
        if n != t.data.len() {
            bail!("tensor {:?}: shape {:?} needs {n} elements but data has {}", t.name, t.shape, t.data.len());
        }
    }

    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| t.data.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for (t, b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, t.shape.clone(), b).map_err(|e| anyhow!("tensor {:?}: {e}", t.name))?;
        views.push((t.name.as_str(), view));
    }
    let info: Option<HashMap<String, String>> =
        if metadata.is_empty() { None } else { Some(metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()) };
    safetensors::serialize(views, info).map_err(|e| anyhow!("cannot encode safetensors: {e}"))
}

/// Parses safetensors bytes; `origin` (e.g. the file path) is named in every
/// error. Never panics. Only F32 tensors are accepted. Tensors are returned
/// sorted by name.
pub fn decode(bytes: &[u8], origin: &str) -> anyhow::Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    decode_inner(bytes).map_err(|e| anyhow!("invalid safetensors file {origin}: {e:#}"))
}

fn decode_inner(bytes: &[u8]) -> anyhow::Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    // Validate the declared header length ourselves before the library sees it.
    let Some(prefix) = bytes.get(..N_LEN) else {
        bail!("file is {} bytes, too short for the 8-byte header length", bytes.len());
    };
    let mut len_bytes = [0u8; N_LEN];
    len_bytes.copy_from_slice(prefix);
    let declared = u64::from_le_bytes(len_bytes);
    let available = bytes.len() - N_LEN;
    let header_len = match usize::try_from(declared) {
        Ok(n) if n <= available => n,
        _ => bail!("declared header length {declared} exceeds the {available} bytes after the prefix"),
    };

    let data_len = available - header_len;
    check_offsets_in_range(&bytes[N_LEN..N_LEN + header_len], data_len)?;

    // Last line of defence: the library must not be able to unwind through us.
    let parsed = std::panic::catch_unwind(|| SafeTensors::read_metadata(bytes))
        .map_err(|_| anyhow!("safetensors parser panicked on malformed header"))?;
    let (n, meta): (usize, Metadata) = parsed.map_err(|e| anyhow!("{e}"))?;
    if n != header_len {
        bail!("header length mismatch ({n} vs {header_len})");
    }
    let data = bytes.get(N_LEN + header_len..).context("data section out of range")?;

    let mut tensors = Vec::new();
    for name in meta.offset_keys() {
        let info = meta.info(&name).with_context(|| format!("tensor {name:?} missing from header"))?;
        if info.dtype != Dtype::F32 {
            bail!("tensor {name:?} has dtype {:?}, only F32 is supported", info.dtype);
        }
        let (start, end) = info.data_offsets;
        let raw = data
            .get(start..end)
            .with_context(|| format!("tensor {name:?}: data offsets {start}..{end} out of range"))?;
        let expected = numel(&info.shape)
            .and_then(|n| n.checked_mul(4))
            .with_context(|| format!("tensor {name:?}: shape {:?} overflows", info.shape))?;
        if raw.len() != expected {
            bail!("tensor {name:?}: shape {:?} needs {expected} bytes but has {}", info.shape, raw.len());
        }
        let values = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        tensors.push(NamedTensor { name, shape: info.shape.clone(), data: values });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));

    let metadata =
        meta.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    Ok((tensors, metadata))
}

/// Rejects headers whose tensor end offsets exceed the data section: with such
/// offsets safetensors 0.6.2 `read_metadata` can overflow an addition (a panic
/// with overflow checks on). Malformed entries are left to the library.
fn check_offsets_in_range(header: &[u8], data_len: usize) -> anyhow::Result<()> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(header) else {
        return Ok(());
    };
    for (name, entry) in &map {
        let end = entry.get("data_offsets").and_then(|o| o.get(1)).and_then(serde_json::Value::as_u64);
        if let Some(end) = end {
            if end > data_len as u64 {
                bail!("tensor {name:?}: data end offset {end} exceeds the {data_len}-byte data section");
            }
        }
    }
    Ok(())
}

/// Reads and decodes a safetensors file and checks it against its checksums
/// ([`checksum::verify`]), which are removed from the metadata returned; errors
/// name the path. A file without checksums is read with a warning.
pub fn read_checked(path: &Path) -> anyhow::Result<(Vec<NamedTensor>, BTreeMap<String, String>, Integrity)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let (tensors, mut metadata) = decode(&bytes, &path.display().to_string())?;
    let integrity = checksum::verify(&tensors, &mut metadata)
        .with_context(|| format!("checkpoint {} is damaged", path.display()))?;
    if integrity == Integrity::Unchecked {
        tracing::warn!(
            "{} has no checksums (written by an earlier hetsyn); its contents cannot be verified",
            path.display()
        );
    }
    Ok((tensors, metadata, integrity))
}

/// [`read_checked`] without the integrity verdict.
pub fn read_file(path: &Path) -> anyhow::Result<(Vec<NamedTensor>, BTreeMap<String, String>)> {
    read_checked(path).map(|(tensors, metadata, _)| (tensors, metadata))
}

/// Encodes tensors and metadata with their checksums ([`checksum::seal`]) and
/// writes them to `path` atomically.
pub fn write_file(path: &Path, tensors: &[NamedTensor], metadata: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let at = || format!("cannot write checkpoint {}", path.display());
    let mut metadata = metadata.clone();
    checksum::seal(tensors, &mut metadata).with_context(at)?;
    let bytes = encode(tensors, &metadata).with_context(at)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(name: &str, shape: &[usize], data: &[f32]) -> NamedTensor {
        NamedTensor { name: name.into(), shape: shape.to_vec(), data: data.to_vec() }
    }

    fn sample_tensors() -> Vec<NamedTensor> {
        vec![
            t("w_in", &[2, 3], &[1.0, -2.5, 3.25, f32::MIN_POSITIVE, -0.0, 1e30]),
            t("tau", &[4], &[0.1, 0.2, 0.3, 0.4]),
            t("bias", &[], &[7.5]),
            t("empty", &[0, 3], &[]),
        ]
    }

    fn sample_meta() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("epoch".to_string(), "12".to_string()),
            ("config".to_string(), "{\"lr\": 0.001}".to_string()),
            ("unicode".to_string(), "τ_syn ✓".to_string()),
        ])
    }

    fn sorted(mut v: Vec<NamedTensor>) -> Vec<NamedTensor> {
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn valid_file() -> Vec<u8> {
        encode(&sample_tensors(), &sample_meta()).unwrap()
    }

    #[test]
    fn round_trip_with_metadata() {
        let (ts, meta) = decode(&valid_file(), "mem").unwrap();
        assert_eq!(ts, sorted(sample_tensors()));
        assert_eq!(meta, sample_meta());
        // -0.0 == 0.0 under PartialEq; check the sign bit survived.
        let w = ts.iter().find(|x| x.name == "w_in").unwrap();
        assert_eq!(w.data[4].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn round_trip_scalar_empty_metadata() {
        let tensors = vec![t("s", &[], &[std::f32::consts::PI])];
        let bytes = encode(&tensors, &BTreeMap::new()).unwrap();
        let (ts, meta) = decode(&bytes, "mem").unwrap();
        assert_eq!(ts, tensors);
        assert_eq!(ts[0].shape, Vec::<usize>::new());
        assert!(meta.is_empty());
    }

    #[test]
    fn round_trip_no_tensors_and_nan_bits() {
        let meta = sample_meta();
        let (ts, m) = decode(&encode(&[], &meta).unwrap(), "mem").unwrap();
        assert!(ts.is_empty());
        assert_eq!(m, meta);

        let nan = f32::from_bits(0x7fc0_1234);
        let bytes = encode(&[t("n", &[2], &[nan, f32::INFINITY])], &BTreeMap::new()).unwrap();
        let (ts, _) = decode(&bytes, "mem").unwrap();
        assert_eq!(ts[0].data[0].to_bits(), nan.to_bits());
        assert_eq!(ts[0].data[1], f32::INFINITY);
    }

    #[test]
    fn encode_rejects_bad_input() {
        let m = BTreeMap::new();
        let err = encode(&[t("a", &[2, 2], &[1.0; 3])], &m).unwrap_err();
        assert!(err.to_string().contains("\"a\""), "{err}");
        let err = encode(&[t("a", &[1], &[1.0]), t("a", &[1], &[2.0])], &m).unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        assert!(encode(&[t("__metadata__", &[1], &[1.0])], &m).is_err());
        assert!(encode(&[t("big", &[usize::MAX, 2], &[])], &m).is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = valid_file();
        for len in 0..bytes.len() {
            let res = decode(&bytes[..len], "trunc");
            let err = res.expect_err(&format!("prefix of length {len} decoded"));
            assert!(format!("{err:#}").contains("trunc"), "{err:#}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, "mem").is_err());
    }

    #[test]
    fn hostile_headers_are_errors() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            u64::MAX.to_le_bytes().to_vec(),
            [u64::MAX.to_le_bytes().to_vec(), b"{}".to_vec()].concat(),
            [(1u64 << 40).to_le_bytes().to_vec(), b"{}".to_vec()].concat(),
            [2u64.to_le_bytes().to_vec(), b"[]".to_vec()].concat(),
            [2u64.to_le_bytes().to_vec(), vec![0xff, 0xfe]].concat(),
        ];
        for c in cases {
            let err = decode(&c, "hostile").unwrap_err();
            assert!(err.to_string().contains("hostile"), "{err}");
        }
        // The empty header `{}` is a valid file with nothing in it.
        let ok = [2u64.to_le_bytes().to_vec(), b"{}".to_vec()].concat();
        assert_eq!(decode(&ok, "mem").unwrap(), (vec![], BTreeMap::new()));
    }

    /// Offsets summing close to usize::MAX overflow an unchecked addition in
    /// safetensors 0.6.2 (panics with overflow checks on); must be an Err.
    #[test]
    fn overflowing_offsets_are_errors() {
        let mut entries = Vec::new();
        let mut start = 0usize;
        for i in 0..8 {
            let elems = (1usize << 59) - 1; // largest count whose bit size fits usize
            let end = start + elems * 4;
            entries
                .push(format!("\"t{i}\":{{\"dtype\":\"F32\",\"shape\":[{elems}],\"data_offsets\":[{start},{end}]}}"));
            start = end;
        }
        assert_eq!(start, usize::MAX - 31);
        let header = format!("{{{}}}", entries.join(","));
        let bytes = [(header.len() as u64).to_le_bytes().to_vec(), header.into_bytes()].concat();
        let err = decode(&bytes, "crafted").unwrap_err();
        assert!(err.to_string().contains("crafted"), "{err}");
        assert!(err.to_string().contains("exceeds"), "{err}");
        // The library alone panics here with overflow checks on; the guard holds regardless.
        let lib = std::panic::catch_unwind(|| SafeTensors::read_metadata(&bytes).is_ok());
        assert!(!matches!(lib, Ok(true)));
    }

    #[test]
    fn wrong_dtype_names_tensor() {
        let raw = [0u8; 16];
        let view = TensorView::new(Dtype::F64, vec![2], &raw).unwrap();
        let bytes = safetensors::serialize([("membrane_decay", view)], None).unwrap();
        let err = decode(&bytes, "ckpt.safetensors").unwrap_err().to_string();
        assert!(err.contains("membrane_decay"), "{err}");
        assert!(err.contains("F64"), "{err}");
        assert!(err.contains("ckpt.safetensors"), "{err}");
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn write_file_overwrites_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        std::fs::write(&p, b"old junk that is not safetensors").unwrap();
        write_file(&p, &sample_tensors(), &sample_meta()).unwrap();
        assert_eq!(read_file(&p).unwrap(), (sorted(sample_tensors()), sample_meta()));

        let second = vec![t("only", &[1], &[42.0])];
        write_file(&p, &second, &BTreeMap::new()).unwrap();
        assert_eq!(read_file(&p).unwrap(), (second, BTreeMap::new()));
        assert_eq!(dir_entries(dir.path()), vec!["model.safetensors".to_string()]);
    }

    #[test]
    fn written_files_carry_checksums_that_reading_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sealed.safetensors");
        write_file(&p, &sample_tensors(), &sample_meta()).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let (_, raw_meta) = decode(&bytes, "mem").unwrap();
        assert!(raw_meta.contains_key(checksum::CHECKSUMS_KEY), "{raw_meta:?}");
        assert!(raw_meta.contains_key(checksum::METADATA_CHECKSUM_KEY), "{raw_meta:?}");
        assert_eq!(read_checked(&p).unwrap().2, Integrity::Verified);

        // the last byte of the data section: the last tensor in the file's order
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let err = format!("{:#}", read_file(&p).unwrap_err());
        assert!(err.contains(&p.display().to_string()) && err.contains("damaged"), "{err}");
        assert!(err.contains("tensor `") && err.contains("checksum"), "{err}");

        // a file without checksums (an earlier hetsyn's) reads, unchecked
        let old = dir.path().join("old.safetensors");
        std::fs::write(&old, encode(&sample_tensors(), &sample_meta()).unwrap()).unwrap();
        let (tensors, meta, integrity) = read_checked(&old).unwrap();
        assert_eq!((tensors, meta, integrity), (sorted(sample_tensors()), sample_meta(), Integrity::Unchecked));
    }

    #[test]
    fn file_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.safetensors");
        let err = format!("{:#}", read_file(&missing).unwrap_err());
        assert!(err.contains("cannot read checkpoint"), "{err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");

        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, b"\x05\0\0\0\0\0\0\0hello").unwrap();
        let err = read_file(&garbage).unwrap_err().to_string();
        assert!(err.contains(&garbage.display().to_string()), "{err}");

        let bad = dir.path().join("bad.safetensors");
        let err = format!("{:#}", write_file(&bad, &[t("x", &[3], &[1.0])], &BTreeMap::new()).unwrap_err());
        assert!(err.contains(&bad.display().to_string()), "{err}");
        assert!(dir_entries(dir.path()).iter().all(|n| n == "garbage.safetensors"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn flipped_bytes_never_panic(
            flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..8)
        ) {
            let mut bytes = valid_file();
            let len = bytes.len();
            for (i, x) in flips {
                bytes[i % len] ^= x;
            }
            let _ = decode(&bytes, "fuzz");
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..256)
        ) {
            let _ = decode(&bytes, "fuzz");
        }

        #[test]
        fn random_tensors_round_trip(
            dims in proptest::collection::vec(0usize..4, 0..4),
            seed in any::<u32>()
        ) {
            let n: usize = dims.iter().product();
            let data: Vec<f32> = (0..n).map(|i| (i as f32) * 0.5 - seed as f32).collect();
            let ts = vec![t("x", &dims, &data)];
            let bytes = encode(&ts, &BTreeMap::new()).unwrap();
            prop_assert_eq!(decode(&bytes, "mem").unwrap().0, ts);
        }
    }
}
