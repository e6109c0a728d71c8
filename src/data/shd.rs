//! Reading one split of the Spiking Heidelberg Digits (SHD) or Spiking Speech
//! Commands (SSC) from its official HDF5 file, in pure Rust (`hdf5-reader`: no
//! libhdf5, nothing to install but cargo).
//!
//! Layout read (anything else in the file, e.g. `/extra/keys`, is ignored):
//!
//! | dataset | shape | type |
//! |---|---|---|
//! | `/spikes/times` | `[n]` | vlen sequence of float16, float32 or float64 (seconds) |
//! | `/spikes/units` | `[n]` | vlen sequence of integers (unit ids) |
//! | `/labels` | `[n]` | integers |
//! | `/extra/speaker` | `[n]` | integers, optional |
//!
//! Everything read from the file is checked: sample counts agree, each
//! sample has as many units as times, times are finite and `>= 0`, units,
//! labels and speakers fit in `u16`. Sizes are bounded by the file length
//! before anything is allocated, and a panic inside the HDF5 library is
//! turned into an error, so no input file makes the reader panic. Every error
//! names the file.

use anyhow::{bail, Context};
use hdf5_reader::error::Error as H5Error;
use hdf5_reader::{ByteOrder, Dataset, Datatype, Hdf5File, OpenOptions, VarLenKind};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The floating-point type the spike times were stored in. The authors'
/// numpy preprocessing compares times in this precision, so binning needs it
/// (see [`crate::data::binning::Edges`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimePrecision {
    /// IEEE binary16 (numpy `float16`), as in the official SHD/SSC files.
    F16,
    /// IEEE binary32. Also used for float64 files, whose times are rounded
    /// to `f32` on reading.
    F32,
}

/// The spikes of one sample: spike `k` is unit `units[k]` at `times[k]` seconds.
/// Times need not be sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeEvents {
    /// Spike times in seconds (exactly the stored values for float16/float32 files).
    pub times: Vec<f32>,
    /// Unit (input neuron) ids, parallel to `times`.
    pub units: Vec<u16>,
    /// The precision `times` were stored in.
    pub precision: TimePrecision,
}

impl SpikeEvents {
    /// Events with `f32` precision (for samples built in code).
    pub fn new(times: Vec<f32>, units: Vec<u16>) -> Self {
        SpikeEvents { times, units, precision: TimePrecision::F32 }
    }
}

/// One split of SHD/SSC as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeDataset {
    /// One entry per sample, in file order.
    pub samples: Vec<SpikeEvents>,
    /// Class label per sample.
    pub labels: Vec<u16>,
    /// Speaker id per sample, when the file has `/extra/speaker`.
    pub speakers: Option<Vec<u16>>,
    /// Number of classes: largest label + 1 (0 for an empty file).
    pub classes: usize,
    /// The precision the spike times were stored in.
    pub time_precision: TimePrecision,
}

/// The 8-byte HDF5 format signature.
const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// Deflate cannot compress by more than about 1032:1, so no dataset of a file
/// of `L` bytes legitimately decodes to more than `L * 1032` bytes; larger
/// sizes read from a (corrupt) file are refused before allocating.
const MAX_EXPANSION: u64 = 1032;

/// Reads one split of SHD or SSC (see the module documentation for the layout
/// and the checks). Errors name the file and, where it applies, the dataset
/// and sample index.
pub fn read_spike_file(path: &Path) -> anyhow::Result<SpikeDataset> {
    without_panics(|| read_unchecked(path)).with_context(|| format!("cannot read spike file {}", path.display()))
}

/// Runs `f`, turning a panic (of the HDF5 decoder on malformed data; none is
/// known, this is a safety net) into an error.
fn without_panics<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(anyhow::anyhow!("the HDF5 decoder failed on malformed data ({what})"))
    })
}

fn read_unchecked(path: &Path) -> anyhow::Result<SpikeDataset> {
    let file_len = check_signature(path)?;
    let max_bytes = file_len.saturating_mul(MAX_EXPANSION).saturating_add(1 << 20);
    let options = OpenOptions::default()
        .with_max_read_bytes(usize::try_from(max_bytes).unwrap_or(usize::MAX))
        .with_max_chunk_bytes(usize::try_from(max_bytes).unwrap_or(usize::MAX));
    let file =
        Hdf5File::open_with_options(path, options).map_err(|e| anyhow::anyhow!("invalid HDF5 structure: {e}"))?;

    let times_ds = require(&file, "/spikes/times")?;
    let units_ds = require(&file, "/spikes/units")?;
    let labels_ds = require(&file, "/labels")?;
    let speaker_ds = optional(&file, "/extra/speaker")?;

    let n = length_1d(&times_ds, "/spikes/times")?;
    for (ds, name) in [(&units_ds, "/spikes/units"), (&labels_ds, "/labels")] {
        let m = length_1d(ds, name)?;
        if m != n {
            bail!("{name} has {m} entries but /spikes/times has {n}");
        }
    }

    let (time_size, time_order) = match times_ds.dtype() {
        Datatype::VarLen { base, kind: VarLenKind::Sequence, .. } => match **base {
            Datatype::FloatingPoint { size, byte_order } if matches!(size, 2 | 4 | 8) => (size, byte_order),
            ref other => bail!("/spikes/times: expected a vlen sequence of float16/32/64, found vlen of {other:?}"),
        },
        other => bail!("/spikes/times: expected a vlen sequence of floats, found {other:?}"),
    };
    let unit_int = match units_ds.dtype() {
        Datatype::VarLen { base, kind: VarLenKind::Sequence, .. } => int_type(base, "/spikes/units")?,
        other => bail!("/spikes/units: expected a vlen sequence of integers, found {other:?}"),
    };
    let precision = if time_size == 2 { TimePrecision::F16 } else { TimePrecision::F32 };

    let times_refs = read_raw(&times_ds, "/spikes/times", max_bytes)?;
    let units_refs = read_raw(&units_ds, "/spikes/units", max_bytes)?;
    // One vlen reference (length, heap address, index) per sample.
    let (t_refs, u_refs) = (
        times_refs.chunks_exact(times_ds.vlen_reference_size()),
        units_refs.chunks_exact(units_ds.vlen_reference_size()),
    );
    if t_refs.len() != n || u_refs.len() != n || !t_refs.remainder().is_empty() || !u_refs.remainder().is_empty() {
        bail!("/spikes: unexpected size of the vlen references");
    }

    let mut samples = Vec::with_capacity(n);
    for (i, (t_ref, u_ref)) in t_refs.zip(u_refs).enumerate() {
        let t_bytes = times_ds
            .resolve_vlen_reference_bytes(t_ref, usize::from(time_size))
            .map_err(|e| anyhow::anyhow!("/spikes/times, sample {i}: {e}"))?;
        let u_bytes = units_ds
            .resolve_vlen_reference_bytes(u_ref, usize::from(unit_int.size))
            .map_err(|e| anyhow::anyhow!("/spikes/units, sample {i}: {e}"))?;
        let times =
            decode_times(&t_bytes, time_size, time_order).with_context(|| format!("/spikes/times, sample {i}"))?;
        let units = decode_u16s(&u_bytes, unit_int).with_context(|| format!("/spikes/units, sample {i}"))?;
        if times.len() != units.len() {
            bail!("sample {i} has {} spike times but {} units", times.len(), units.len());
        }
        samples.push(SpikeEvents { times, units, precision });
    }

    let labels = read_ints(&labels_ds, "/labels", max_bytes)?;
    let speakers = match speaker_ds {
        None => None,
        Some(ds) => {
            let m = length_1d(&ds, "/extra/speaker")?;
            if m != n {
                bail!("/extra/speaker has {m} entries but /spikes/times has {n}");
            }
            Some(read_ints(&ds, "/extra/speaker", max_bytes)?)
        }
    };
    let classes = labels.iter().map(|&l| usize::from(l) + 1).max().unwrap_or(0);
    Ok(SpikeDataset { samples, labels, speakers, classes, time_precision: precision })
}

/// The file length, after checking for the HDF5 signature at one of the
/// places the format allows (offset 0, 512, 1024, 2048, ...).
fn check_signature(path: &Path) -> anyhow::Result<u64> {
    let mut file = File::open(path).context("cannot open")?;
    let len = file.metadata().context("cannot stat")?.len();
    let mut offset = 0u64;
    while offset.saturating_add(8) <= len {
        let mut magic = [0u8; 8];
        file.seek(SeekFrom::Start(offset)).context("cannot seek")?;
        file.read_exact(&mut magic).context("cannot read")?;
        if magic == HDF5_SIGNATURE {
            return Ok(len);
        }
        offset = if offset == 0 { 512 } else { offset.saturating_mul(2) };
    }
    bail!("not an HDF5 file (no HDF5 signature)")
}

fn is_not_found(e: &H5Error) -> bool {
    match e {
        H5Error::DatasetNotFound(_) | H5Error::GroupNotFound(_) => true,
        H5Error::Context { source, .. } => is_not_found(source),
        _ => false,
    }
}

fn optional(file: &Hdf5File, name: &str) -> anyhow::Result<Option<Dataset>> {
    match file.dataset(name) {
        Ok(ds) => Ok(Some(ds)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => bail!("cannot open dataset {name}: {e}"),
    }
}

fn require(file: &Hdf5File, name: &str) -> anyhow::Result<Dataset> {
    optional(file, name)?.with_context(|| format!("missing dataset {name}"))
}

fn length_1d(ds: &Dataset, name: &str) -> anyhow::Result<usize> {
    match ds.shape() {
        [n] => usize::try_from(*n).with_context(|| format!("{name}: {n} entries is too many")),
        shape => bail!("{name}: expected a 1-d dataset, found shape {shape:?}"),
    }
}

/// All stored elements of `ds` (vlen references for vlen datasets), after
/// checking that their size is plausible for the file.
fn read_raw(ds: &Dataset, name: &str, max_bytes: u64) -> anyhow::Result<Vec<u8>> {
    let len = ds.raw_byte_len().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if len as u64 > max_bytes {
        bail!("{name}: claims {len} bytes of data, impossible for a file of this size");
    }
    ds.read_raw_bytes().map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

#[derive(Debug, Clone, Copy)]
struct IntType {
    size: u8,
    signed: bool,
    order: ByteOrder,
}

fn int_type(dtype: &Datatype, name: &str) -> anyhow::Result<IntType> {
    match *dtype {
        Datatype::FixedPoint { size, signed, byte_order } if matches!(size, 1 | 2 | 4 | 8) => {
            Ok(IntType { size, signed, order: byte_order })
        }
        Datatype::Enum { ref base, .. } => int_type(base, name),
        ref other => bail!("{name}: expected integers, found {other:?}"),
    }
}

/// Integer element `i` of `bytes` as an `i128` (exact for every supported type).
fn int_at(bytes: &[u8], ty: IntType, i: usize) -> i128 {
    let size = usize::from(ty.size);
    let mut le = [0u8; 8];
    le[..size].copy_from_slice(&bytes[i * size..(i + 1) * size]);
    if ty.order == ByteOrder::BigEndian {
        le[..size].reverse();
    }
    let raw = u64::from_le_bytes(le);
    let negative = ty.signed && (raw >> (8 * size - 1)) & 1 == 1;
    if negative {
        i128::from(raw) - (1i128 << (8 * size))
    } else {
        i128::from(raw)
    }
}

/// Decodes integers that must lie in `0..=65535`; the error names the index and value.
fn decode_u16s(bytes: &[u8], ty: IntType) -> anyhow::Result<Vec<u16>> {
    let size = usize::from(ty.size);
    if !bytes.len().is_multiple_of(size) {
        bail!("{} bytes is not a whole number of {size}-byte integers", bytes.len());
    }
    (0..bytes.len() / size)
        .map(|i| {
            let v = int_at(bytes, ty, i);
            u16::try_from(v).map_err(|_| anyhow::anyhow!("entry {i} is {v}, outside 0..=65535"))
        })
        .collect()
}

fn read_ints(ds: &Dataset, name: &str, max_bytes: u64) -> anyhow::Result<Vec<u16>> {
    let ty = int_type(ds.dtype(), name)?;
    let bytes = read_raw(ds, name, max_bytes)?;
    decode_u16s(&bytes, ty).with_context(|| name.to_string())
}

/// Decodes float16/32/64 times to `f32` and checks each is finite and `>= 0`.
fn decode_times(bytes: &[u8], size: u8, order: ByteOrder) -> anyhow::Result<Vec<f32>> {
    let size = usize::from(size);
    if !bytes.len().is_multiple_of(size) {
        bail!("{} bytes is not a whole number of {size}-byte floats", bytes.len());
    }
    let mut times = Vec::with_capacity(bytes.len() / size);
    for (k, chunk) in bytes.chunks_exact(size).enumerate() {
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(chunk);
        if order == ByteOrder::BigEndian {
            b[..size].reverse();
        }
        let t = match size {
            2 => super::f16::f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]])),
            4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            _ => f64::from_le_bytes(b) as f32,
        };
        if !t.is_finite() || t < 0.0 {
            bail!("spike {k} has time {t}, not a finite time >= 0");
        }
        times.push(t);
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_errors() {
        let err = without_panics::<()>(|| panic!("boom {}", 1)).unwrap_err();
        assert!(format!("{err:#}").contains("boom 1"), "{err:#}");
        assert_eq!(without_panics(|| Ok(3)).unwrap(), 3);
    }

    #[test]
    fn int_decoding() {
        let le16 = IntType { size: 2, signed: false, order: ByteOrder::LittleEndian };
        assert_eq!(decode_u16s(&[1, 0, 0xff, 0xff], le16).unwrap(), vec![1, 65535]);
        let be32s = IntType { size: 4, signed: true, order: ByteOrder::BigEndian };
        assert_eq!(int_at(&[0xff, 0xff, 0xff, 0xfe], be32s, 0), -2);
        assert_eq!(decode_u16s(&[0, 0, 1, 0], be32s).unwrap(), vec![256]);
        let err = decode_u16s(&[0, 1, 0, 0], be32s).unwrap_err();
        assert!(format!("{err:#}").contains("entry 0 is 65536"), "{err:#}");
        let i8s = IntType { size: 1, signed: true, order: ByteOrder::LittleEndian };
        assert!(decode_u16s(&[0xff], i8s).is_err());
        assert!(decode_u16s(&[1, 2, 3], le16).is_err());
    }

    #[test]
    fn time_decoding() {
        // float16 0.5 = 0x3800, 1.0 = 0x3c00 (little endian)
        assert_eq!(decode_times(&[0x00, 0x38, 0x00, 0x3c], 2, ByteOrder::LittleEndian).unwrap(), vec![0.5, 1.0]);
        assert_eq!(decode_times(&[0x3f, 0x80, 0, 0], 4, ByteOrder::BigEndian).unwrap(), vec![1.0]);
        assert_eq!(decode_times(&0.25f64.to_le_bytes(), 8, ByteOrder::LittleEndian).unwrap(), vec![0.25]);
        for bad in [-1.0f32, f32::NAN, f32::INFINITY] {
            let err = decode_times(&bad.to_le_bytes(), 4, ByteOrder::LittleEndian).unwrap_err();
            assert!(format!("{err:#}").contains("spike 0"), "{err:#}");
        }
        assert!(decode_times(&[0, 0, 0], 2, ByteOrder::LittleEndian).is_err());
    }
}
