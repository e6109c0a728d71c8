//! Integrity metadata of safetensors files (`docs/checkpoint.md`, "Integrity"):
//! a CRC32 of every tensor's bytes and one of all other metadata entries, so
//! that a damaged file is refused instead of loading as different numbers.
//!
//! CRC32 (IEEE, as `zlib.crc32`) catches every single-bit error and every burst
//! of up to 32 bits, and misses random damage with probability 2^-32; the threat
//! is storage and transfer damage, not tampering, for which no unkeyed checksum
//! would help anyway.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};

/// One named f32 tensor, row-major; `shape == []` is a scalar.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Metadata key of the tensor checksums: a JSON object, tensor name -> CRC32.
pub const CHECKSUMS_KEY: &str = "checksums";
/// Metadata key of the CRC32 of all other metadata entries.
pub const METADATA_CHECKSUM_KEY: &str = "metadata_checksum";

/// Whether a file's contents were checked against stored checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// Every tensor and metadata entry matched its checksum.
    Verified,
    /// The file has no checksums (written by an earlier hetsyn); nothing was checked.
    Unchecked,
}

/// A CRC32 as stored: 8 lowercase hex digits.
fn hex(crc: u32) -> String {
    format!("{crc:08x}")
}

/// CRC32 of a tensor's little-endian float32 bytes (its bytes in the file).
pub fn tensor_checksum(data: &[f32]) -> String {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = [0u8; 4096];
    for chunk in data.chunks(buf.len() / 4) {
        for (bytes, x) in buf.chunks_exact_mut(4).zip(chunk) {
            bytes.copy_from_slice(&x.to_le_bytes());
        }
        hasher.update(&buf[..4 * chunk.len()]);
    }
    hex(hasher.finalize())
}

/// CRC32 of every metadata entry but `metadata_checksum`, in key order, each
/// as the key's and then the value's UTF-8 bytes, each preceded by its length
/// as a little-endian u64.
pub fn metadata_checksum(metadata: &BTreeMap<String, String>) -> String {
    let mut hasher = crc32fast::Hasher::new();
    for (key, value) in metadata.iter().filter(|(k, _)| *k != METADATA_CHECKSUM_KEY) {
        for text in [key, value] {
            hasher.update(&(text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
    }
    hex(hasher.finalize())
}

/// Adds `checksums` and `metadata_checksum` (replacing any stored ones).
pub fn seal(tensors: &[NamedTensor], metadata: &mut BTreeMap<String, String>) -> Result<()> {
    let sums: BTreeMap<&str, String> = tensors.iter().map(|t| (t.name.as_str(), tensor_checksum(&t.data))).collect();
    metadata.insert(CHECKSUMS_KEY.to_string(), serde_json::to_string(&sums)?);
    metadata.insert(METADATA_CHECKSUM_KEY.to_string(), metadata_checksum(metadata));
    Ok(())
}

/// Checks the metadata and then every tensor against the stored checksums and
/// removes the two keys from `metadata`. A file with neither key is
/// [`Integrity::Unchecked`]; a mismatch is an error naming the tensor or the
/// metadata.
pub fn verify(tensors: &[NamedTensor], metadata: &mut BTreeMap<String, String>) -> Result<Integrity> {
    let stored_meta = match (metadata.contains_key(CHECKSUMS_KEY), metadata.get(METADATA_CHECKSUM_KEY)) {
        (false, None) => return Ok(Integrity::Unchecked),
        (true, None) => bail!("metadata key `{METADATA_CHECKSUM_KEY}` is missing, but `{CHECKSUMS_KEY}` is present"),
        (false, Some(_)) => {
            bail!("metadata key `{CHECKSUMS_KEY}` is missing, but `{METADATA_CHECKSUM_KEY}` is present")
        }
        (true, Some(stored)) => stored.clone(),
    };
    let computed = metadata_checksum(metadata);
    if stored_meta != computed {
        let keys: Vec<&str> = metadata.keys().map(String::as_str).filter(|k| *k != METADATA_CHECKSUM_KEY).collect();
        bail!(
            "the metadata ({}) does not match its checksum (stored {stored_meta:?}, computed {computed})",
            keys.join(", ")
        );
    }
    let sums: BTreeMap<String, String> = serde_json::from_str(&metadata[CHECKSUMS_KEY])
        .map_err(|e| anyhow!("metadata `{CHECKSUMS_KEY}` is not a JSON object of strings: {e}"))?;
    for t in tensors {
        let stored = sums.get(&t.name).ok_or_else(|| anyhow!("tensor `{}` has no checksum", t.name))?;
        let computed = tensor_checksum(&t.data);
        if *stored != computed {
            bail!("tensor `{}` does not match its checksum (stored {stored:?}, computed {computed})", t.name);
        }
    }
    if let Some(name) = sums.keys().find(|name| !tensors.iter().any(|t| &t.name == *name)) {
        bail!("tensor `{name}` has a checksum but is not in the file");
    }
    metadata.remove(CHECKSUMS_KEY);
    metadata.remove(METADATA_CHECKSUM_KEY);
    Ok(Integrity::Verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, data: &[f32]) -> NamedTensor {
        NamedTensor { name: name.into(), shape: vec![data.len()], data: data.to_vec() }
    }

    fn sample() -> (Vec<NamedTensor>, BTreeMap<String, String>) {
        let tensors = vec![t("a.weight", &[1.0, -2.5, 0.125]), t("b.decay", &[0.9; 5000])];
        let metadata = BTreeMap::from([
            ("config".to_string(), "seed = 3\nname = \"τ\"\n".to_string()),
            ("step".to_string(), "6".to_string()),
        ]);
        (tensors, metadata)
    }

    fn sealed() -> (Vec<NamedTensor>, BTreeMap<String, String>) {
        let (tensors, mut metadata) = sample();
        seal(&tensors, &mut metadata).unwrap();
        (tensors, metadata)
    }

    /// Values computed independently with Python's zlib.crc32 and struct.pack("<Q", len).
    #[test]
    fn checksums_match_zlib() {
        assert_eq!(tensor_checksum(&[1.0]), "aca16a6a");
        assert_eq!(tensor_checksum(&[]), "00000000");
        // more than one 4096-byte block
        let long: Vec<f32> = (0..2500).map(|i| i as f32 * 0.5).collect();
        assert_eq!(tensor_checksum(&long), "79b6d7c5");
        let meta = BTreeMap::from([
            ("step".to_string(), "6".to_string()),
            ("a".to_string(), "τ".to_string()),
            (METADATA_CHECKSUM_KEY.to_string(), "ignored".to_string()),
        ]);
        assert_eq!(metadata_checksum(&meta), "b3f8afdd");
    }

    #[test]
    fn sealed_metadata_verifies_and_loses_the_keys() {
        let (tensors, mut metadata) = sealed();
        assert!(metadata.contains_key(CHECKSUMS_KEY) && metadata.contains_key(METADATA_CHECKSUM_KEY));
        assert_eq!(verify(&tensors, &mut metadata).unwrap(), Integrity::Verified);
        assert_eq!(metadata, sample().1);
    }

    #[test]
    fn without_checksums_is_unchecked() {
        let (tensors, mut metadata) = sample();
        assert_eq!(verify(&tensors, &mut metadata).unwrap(), Integrity::Unchecked);
        assert_eq!(metadata, sample().1);
    }

    #[test]
    fn every_changed_tensor_bit_is_refused_naming_the_tensor() {
        let (tensors, metadata) = sealed();
        for (k, tensor) in tensors.iter().enumerate() {
            for i in [0, tensor.data.len() / 2, tensor.data.len() - 1] {
                for bit in 0..32 {
                    let mut damaged = tensors.clone();
                    damaged[k].data[i] = f32::from_bits(tensor.data[i].to_bits() ^ (1 << bit));
                    let err = verify(&damaged, &mut metadata.clone()).unwrap_err().to_string();
                    assert!(err.contains(&format!("tensor `{}`", tensor.name)), "{err}");
                }
            }
        }
    }

    #[test]
    fn changed_metadata_is_refused() {
        let (tensors, metadata) = sealed();
        type Change = Box<dyn Fn(&mut BTreeMap<String, String>)>;
        let cases: Vec<Change> = vec![
            Box::new(|m| drop(m.insert("step".into(), "7".into()))),
            Box::new(|m| drop(m.insert("config".into(), m["config"].replace("seed = 3", "seed = 2")))),
            Box::new(|m| drop(m.insert("extra".into(), String::new()))),
            Box::new(|m| drop(m.remove("step"))),
            // a key and value boundary moved: lengths are part of the checksum
            Box::new(|m| {
                m.remove("step");
                m.insert("ste".into(), "p6".into());
            }),
            Box::new(|m| drop(m.insert(CHECKSUMS_KEY.into(), m[CHECKSUMS_KEY].replace('a', "b")))),
            Box::new(|m| drop(m.insert(METADATA_CHECKSUM_KEY.into(), m[METADATA_CHECKSUM_KEY].to_uppercase()))),
        ];
        for (k, change) in cases.iter().enumerate() {
            let mut changed = metadata.clone();
            change(&mut changed);
            assert_ne!(changed, metadata, "case {k} changes nothing");
            let err = verify(&tensors, &mut changed).unwrap_err().to_string();
            assert!(err.contains("metadata"), "case {k}: {err}");
        }
    }

    #[test]
    fn one_key_alone_or_a_wrong_tensor_set_is_refused() {
        let (tensors, metadata) = sealed();
        for key in [CHECKSUMS_KEY, METADATA_CHECKSUM_KEY] {
            let mut m = metadata.clone();
            m.remove(key);
            let err = verify(&tensors, &mut m).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("missing"), "{err}");
        }
        let err = verify(&tensors[..1], &mut metadata.clone()).unwrap_err().to_string();
        assert!(err.contains("`b.decay`") && err.contains("not in the file"), "{err}");
        let mut renamed = tensors.clone();
        renamed[0].name = "c.weight".into();
        let err = verify(&renamed, &mut metadata.clone()).unwrap_err().to_string();
        assert!(err.contains("`c.weight`") && err.contains("no checksum"), "{err}");
    }
}
