//! [`load_binned`]: read an SHD/SSC split, bin it, and cache the binned form
//! on disk so that the next run skips the HDF5 decoding and binning.
//!
//! One cache file per split and binning: `<cache_dir>/<stem>-<hash>.bin`,
//! where `<hash>` (FNV-1a 64) covers a key made of the format version, the
//! canonical source path, its length and modification time, an FNV-1a hash
//! of its first and last MiB, and the binning settings. The full key is also
//! stored inside the file and compared byte for byte, so a hash collision or
//! a renamed file can never serve wrong data. Changing the source or the
//! binning therefore misses the cache (the old file stays, unused); a cache
//! file that is unreadable, truncated, fails its CRC-32 or its structural
//! checks is ignored and rewritten. Files are written with
//! [`crate::io::atomic::write_atomic`].
//!
//! Format, little-endian: magic `HSYNBIN\0`, version `u32`, key length `u32`
//! and key bytes, sample count `u64`, steps `u32`, channels `u32`, classes
//! `u32`, flags `u8` (bit 0 binary, bit 1 speakers present), labels
//! `n x u16`, speakers `n x u16` (if present), total active entries `u64`,
//! per-sample offsets `n x (steps + 1) x u32` (each sample's from 0), active
//! channels `total x u32`, counts `total x u16` (counts mode), CRC-32 `u32`
//! of everything before it.

use super::binning::{bin_sample, BinnedSample, Binning};
use super::shd::read_spike_file;
use anyhow::{bail, Context};
use rayon::prelude::*;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

const MAGIC: [u8; 8] = *b"HSYNBIN\0";
/// Cache format version; bump it whenever the format or the binning code's
/// output changes, so that older cache files are ignored.
const VERSION: u32 = 1;
/// How much of the source's start and end is hashed into the cache key.
const SAMPLE_BYTES: u64 = 1 << 20;

/// One split, binned: everything training needs, in a compact event form
/// (no dense `samples x steps x channels` array).
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedDataset {
    /// One binned sample per input sample, in file order.
    pub samples: Vec<BinnedSample>,
    /// Class label per sample.
    pub labels: Vec<u16>,
    /// Speaker id per sample, when the file has them.
    pub speakers: Option<Vec<u16>>,
    /// Number of classes: largest label + 1.
    pub classes: usize,
    /// Steps per sample (`binning.steps(1.0)`).
    pub steps: usize,
    /// Input channels (`binning.channels`).
    pub channels: usize,
    /// The settings the samples were binned with.
    pub binning: Binning,
}

impl BinnedDataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// What [`load_binned_traced`] did with the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The cache file was valid and used; the source was not decoded.
    Hit,
    /// There was no cache file: the source was binned and the cache written.
    Miss,
    /// A cache file existed but was unusable (the reason): rebuilt.
    Invalid(String),
}

/// Reads `path` (SHD/SSC HDF5), bins every sample with `binning` (time
/// scale 1) and returns it, using and maintaining a cache in `cache_dir`
/// (created if missing). A unit `>= binning.channels` is an error naming the
/// sample and the unit. Failing to write the cache is only a warning.
pub fn load_binned(path: &Path, binning: &Binning, cache_dir: &Path) -> anyhow::Result<BinnedDataset> {
    load_binned_traced(path, binning, cache_dir).map(|(ds, _)| ds)
}

/// [`load_binned`], also saying whether the cache was used.
pub fn load_binned_traced(
    path: &Path,
    binning: &Binning,
    cache_dir: &Path,
) -> anyhow::Result<(BinnedDataset, CacheOutcome)> {
    binning.validate()?;
    let key = cache_key(path, binning)?;
    let cache_path = cache_dir.join(cache_file_name(path, &key));

    let outcome = match fs::read(&cache_path) {
        Ok(bytes) => match decode(&bytes, &key, binning) {
            Ok(ds) => {
                tracing::info!("{}: {} binned samples from cache {}", path.display(), ds.len(), cache_path.display());
                return Ok((ds, CacheOutcome::Hit));
            }
            Err(e) => {
                tracing::warn!("ignoring cache file {}: {e:#}", cache_path.display());
                CacheOutcome::Invalid(format!("{e:#}"))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CacheOutcome::Miss,
        Err(e) => {
            tracing::warn!("cannot read cache file {}: {e}", cache_path.display());
            CacheOutcome::Invalid(format!("cannot read: {e}"))
        }
    };

    let ds = bin_file(path, binning)?;
    // Write the cache only if the source did not change while it was read.
    if cache_key(path, binning)? != key {
        tracing::warn!("{} changed while being read; not caching it", path.display());
        return Ok((ds, outcome));
    }
    let written = fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create cache directory {}", cache_dir.display()))
        .and_then(|()| crate::io::atomic::write_atomic(&cache_path, &encode(&ds, &key)));
    match written {
        Ok(()) => tracing::info!("{}: binned {} samples, cached in {}", path.display(), ds.len(), cache_path.display()),
        Err(e) => tracing::warn!("{}: binned {} samples; cache not written: {e:#}", path.display(), ds.len()),
    }
    Ok((ds, outcome))
}

/// Reads and bins `path` without any cache.
fn bin_file(path: &Path, binning: &Binning) -> anyhow::Result<BinnedDataset> {
    let data = read_spike_file(path)?;
    for (i, sample) in data.samples.iter().enumerate() {
        if let Some(&u) = sample.units.iter().find(|&&u| usize::from(u) >= binning.channels) {
            bail!(
                "spike file {}: sample {i} has unit {u}, but there are {} channels (units must be below it)",
                path.display(),
                binning.channels
            );
        }
    }
    let samples: Vec<BinnedSample> = data.samples.par_iter().map(|s| bin_sample(s, binning, 1.0)).collect();
    Ok(BinnedDataset {
        samples,
        labels: data.labels,
        speakers: data.speakers,
        classes: data.classes,
        steps: binning.steps(1.0),
        channels: binning.channels,
        binning: binning.clone(),
    })
}

/// FNV-1a, 64 bit: a stable hash (unlike `std`'s `DefaultHasher`).
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The text identifying a source file's current content and the binning.
fn cache_key(path: &Path, binning: &Binning) -> anyhow::Result<String> {
    let canonical = fs::canonicalize(path).with_context(|| format!("cannot open spike file {}", path.display()))?;
    let mut file = fs::File::open(&canonical).with_context(|| format!("cannot open spike file {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot stat spike file {}", path.display()))?;
    let len = meta.len();
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();

    let mut h = FNV_OFFSET;
    let mut buf = Vec::new();
    let head = len.min(SAMPLE_BYTES);
    (&mut file)
        .take(head)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read spike file {}", path.display()))?;
    h = fnv1a(h, &buf);
    let tail_start = len.saturating_sub(SAMPLE_BYTES).max(head);
    buf.clear();
    file.seek(SeekFrom::Start(tail_start))
        .and_then(|_| (&mut file).take(len - tail_start).read_to_end(&mut buf))
        .with_context(|| format!("cannot read spike file {}", path.display()))?;
    h = fnv1a(h, &buf);

    let binning_json = serde_json::to_string(binning).context("cannot serialise the binning")?;
    Ok(format!(
        "hetsyn binned spikes v{VERSION}\nsource={}\nlength={len}\nmtime={}.{:09}\nhead_tail_fnv1a={h:016x}\nbinning={binning_json}\n",
        canonical.display(),
        mtime.as_secs(),
        mtime.subsec_nanos(),
    ))
}

fn cache_file_name(path: &Path, key: &str) -> PathBuf {
    let stem: String = path
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
                .collect()
        })
        .unwrap_or_else(|| "spikes".to_string());
    PathBuf::from(format!("{stem}-{:016x}.bin", fnv1a(FNV_OFFSET, key.as_bytes())))
}

fn encode(ds: &BinnedDataset, key: &str) -> Vec<u8> {
    let total: usize = ds.samples.iter().map(|s| s.active.len()).sum();
    let n = ds.samples.len();
    let mut out = Vec::with_capacity(64 + key.len() + n * (4 + 4 * (ds.steps + 1)) + total * 6);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(&(ds.steps as u32).to_le_bytes());
    out.extend_from_slice(&(ds.channels as u32).to_le_bytes());
    out.extend_from_slice(&(ds.classes as u32).to_le_bytes());
    out.push(u8::from(ds.binning.binary) | (u8::from(ds.speakers.is_some()) << 1));
    for &l in &ds.labels {
        out.extend_from_slice(&l.to_le_bytes());
    }
    for &s in ds.speakers.iter().flatten() {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.extend_from_slice(&(total as u64).to_le_bytes());
    for s in &ds.samples {
        for &o in &s.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
    }
    for s in &ds.samples {
        for &a in &s.active {
            out.extend_from_slice(&a.to_le_bytes());
        }
    }
    for s in &ds.samples {
        for &c in s.counts.iter().flatten() {
            out.extend_from_slice(&c.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).context("truncated")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> anyhow::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> anyhow::Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn u16s(&mut self, n: usize) -> anyhow::Result<Vec<u16>> {
        let b = self.take(n.checked_mul(2).context("size overflow")?)?;
        Ok(b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
    }
    fn u32s(&mut self, n: usize) -> anyhow::Result<Vec<u32>> {
        Ok(le_u32s(self.take(n.checked_mul(4).context("size overflow")?)?))
    }
}

/// Little-endian `u32`s.
fn le_u32s(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Parses and fully validates a cache file; any mismatch with `key` or
/// `binning`, or any inconsistency, is an error.
fn decode(bytes: &[u8], key: &str, binning: &Binning) -> anyhow::Result<BinnedDataset> {
    let body_len = bytes.len().checked_sub(4).context("truncated")?;
    let stored_crc =
        u32::from_le_bytes([bytes[body_len], bytes[body_len + 1], bytes[body_len + 2], bytes[body_len + 3]]);
    let mut r = Reader { bytes: &bytes[..body_len], pos: 0 };
    if r.take(8)? != MAGIC {
        bail!("not a hetsyn binned-spikes cache file");
    }
    let version = r.u32()?;
    if version != VERSION {
        bail!("cache format version {version}, expected {VERSION}");
    }
    if crc32fast::hash(&bytes[..body_len]) != stored_crc {
        bail!("CRC mismatch (corrupt file)");
    }
    let key_len = r.u32()? as usize;
    if r.take(key_len)? != key.as_bytes() {
        bail!("made from another source or binning");
    }
    let n = usize::try_from(r.u64()?).context("sample count too large")?;
    let steps = r.u32()? as usize;
    let channels = r.u32()? as usize;
    let classes = r.u32()? as usize;
    let flags = r.u8()?;
    let binary = flags & 1 != 0;
    let has_speakers = flags & 2 != 0;
    if steps != binning.steps(1.0) || channels != binning.channels || binary != binning.binary || flags > 3 {
        bail!("header does not match the binning");
    }
    // Every array's size must fit in what is left before anything is allocated.
    let per_sample = 2 + 2 * usize::from(has_speakers) + 4 * (steps + 1);
    if n.checked_mul(per_sample).is_none_or(|b| b > r.bytes.len() - r.pos) {
        bail!("truncated ({n} samples announced)");
    }
    let labels = r.u16s(n)?;
    let speakers = if has_speakers { Some(r.u16s(n)?) } else { None };
    if classes != labels.iter().map(|&l| usize::from(l) + 1).max().unwrap_or(0) {
        bail!("class count does not match the labels");
    }
    let total = usize::try_from(r.u64()?).context("size overflow")?;
    let rest = n * 4 * (steps + 1) + total.checked_mul(if binary { 4 } else { 6 }).context("size overflow")?;
    if r.bytes.len() - r.pos != rest {
        bail!("length does not match the header");
    }
    let offsets = r.u32s(n * (steps + 1))?;
    // decoded sample by sample, so the file is not held twice over
    let active = r.take(total * 4)?;
    let counts = if binary { None } else { Some(r.take(total * 2)?) };

    let mut samples = Vec::with_capacity(n);
    let mut start = 0usize;
    for (i, offs) in offsets.chunks_exact(steps + 1).enumerate() {
        let len = offs[steps] as usize;
        let end = start.checked_add(len).filter(|&e| e <= total).with_context(|| format!("sample {i} overruns"))?;
        let sample = BinnedSample {
            offsets: offs.to_vec(),
            active: le_u32s(&active[4 * start..4 * end]),
            counts: counts
                .map(|c| c[2 * start..2 * end].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect()),
        };
        sample.validate(steps, channels, binary).with_context(|| format!("sample {i}"))?;
        samples.push(sample);
        start = end;
    }
    if start != total {
        bail!("active entries do not add up");
    }
    Ok(BinnedDataset { samples, labels, speakers, classes, steps, channels, binning: binning.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_dataset(binary: bool) -> BinnedDataset {
        let binning = Binning { binary, bin_ms: 250.0, ..Binning::default() };
        let mk = |offsets: Vec<u32>, active: Vec<u32>| {
            let counts = (!binary).then(|| vec![2; active.len()]);
            BinnedSample { offsets, active, counts }
        };
        BinnedDataset {
            samples: vec![mk(vec![0, 1, 1, 3, 3], vec![5, 1, 699]), mk(vec![0; 5], vec![])],
            labels: vec![3, 1],
            speakers: Some(vec![7, 8]),
            classes: 4,
            steps: 4,
            channels: 700,
            binning,
        }
    }

    #[test]
    fn encode_decode_roundtrip_and_rejects_damage() {
        for binary in [true, false] {
            let ds = sample_dataset(binary);
            let bytes = encode(&ds, "key");
            assert_eq!(decode(&bytes, "key", &ds.binning).unwrap(), ds);
            assert!(decode(&bytes, "other key", &ds.binning).is_err());
            let other = Binning { binary: !binary, ..ds.binning.clone() };
            assert!(decode(&bytes, "key", &other).is_err());
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut], "key", &ds.binning).is_err(), "cut at {cut}");
            }
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x10;
                assert!(decode(&bad, "key", &ds.binning).is_err(), "flip at {i}");
            }
        }
    }

    #[test]
    fn decode_validates_structure_even_with_a_good_crc() {
        let mut ds = sample_dataset(true);
        ds.samples[0].active = vec![5, 699, 1]; // not increasing within step 2
        let bytes = encode(&ds, "key");
        let err = decode(&bytes, "key", &ds.binning).unwrap_err();
        assert!(format!("{err:#}").contains("sample 0"), "{err:#}");
        let mut ds = sample_dataset(true);
        ds.classes = 9;
        assert!(decode(&encode(&ds, "key"), "key", &ds.binning).is_err());
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }
}
