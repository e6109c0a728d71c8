//! IDX files, the format of MNIST and its relatives (Fashion-MNIST, KMNIST):
//! `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, ... A file is
//! a big-endian header `0x00 0x00 <type> <ndims>` and `ndims` u32 sizes, then the
//! values; hetsyn reads unsigned-byte files (type `0x08`), gzip-compressed or plain.
//! Every error names the file; sizes from the header are checked against the
//! data actually present before anything of that size is allocated.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Type byte of unsigned 8-bit values.
const UBYTE: u8 = 0x08;

/// Images `[count, rows, cols]`, one byte per pixel, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Pixels of image `k`, `[rows, cols]`.
    pub fn image(&self, k: usize) -> &[u8] {
        let size = self.rows * self.cols;
        &self.pixels[k * size..(k + 1) * size]
    }
}

/// The file's bytes, decompressed when they start with the gzip magic. The
/// decompressed size is bounded by `limit` bytes.
fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out)
            .with_context(|| format!("{}: not a valid gzip file", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes with `ndims` dimensions.
pub fn parse<'a>(bytes: &'a [u8], ndims: usize, origin: &str) -> Result<(Vec<usize>, &'a [u8])> {
    if bytes.len() < 4 {
        bail!("{origin}: {} bytes is too short for an IDX header", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "{origin}: wrong magic number {:02x}{:02x}{:02x}{:02x} (not an IDX file)",
            bytes[0],
            bytes[1],
            bytes[2],
            bytes[3]
        );
    }
    if bytes[2] != UBYTE {
        bail!("{origin}: IDX value type 0x{:02x}, only unsigned bytes (0x08) are supported", bytes[2]);
    }
    if bytes[3] as usize != ndims {
        bail!(
            "{origin}: {} dimensions, expected {ndims} ({})",
            bytes[3],
            if ndims == 3 { "an images file" } else { "a labels file" }
        );
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        bail!("{origin}: truncated header ({} of {header} bytes)", bytes.len());
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| u32::from_be_bytes([bytes[4 + 4 * d], bytes[5 + 4 * d], bytes[6 + 4 * d], bytes[7 + 4 * d]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
    let data = &bytes[header..];
    match expected {
        Some(n) if n == data.len() => Ok((dims, data)),
        Some(n) if n > data.len() => {
            bail!("{origin}: truncated: the header {dims:?} needs {n} bytes of data, the file has {}", data.len())
        }
        Some(n) => bail!("{origin}: {} bytes of data after the {n} that the header {dims:?} declares", data.len() - n),
        None => bail!("{origin}: impossible sizes {dims:?}"),
    }
}

/// Largest file accepted after decompression: 4 GiB.
const MAX_BYTES: u64 = 4 << 30;

/// Reads an images file (`idx3-ubyte`, gzip or plain).
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let bytes = read_bytes(path, MAX_BYTES)?;
    let (dims, data) = parse(&bytes, 3, &path.display().to_string())?;
    Ok(IdxImages { count: dims[0], rows: dims[1], cols: dims[2], pixels: data.to_vec() })
}

/// Reads a labels file (`idx1-ubyte`, gzip or plain).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_bytes(path, MAX_BYTES)?;
    let (_, data) = parse(&bytes, 1, &path.display().to_string())?;
    Ok(data.to_vec())
}

/// Reads matching images and labels files; their counts must agree.
pub fn read_set(images: &Path, labels: &Path) -> Result<(IdxImages, Vec<u8>)> {
    let x = read_images(images)?;
    let y = read_labels(labels)?;
    if x.count != y.len() {
        bail!("{} holds {} images but {} holds {} labels", images.display(), x.count, labels.display(), y.len());
    }
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, UBYTE, dims.len() as u8];
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend(data);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzip_images_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
        let images = idx(&[2, 3, 4], &pixels);
        let labels = idx(&[2], &[7, 1]);
        for (k, compress) in [false, true].into_iter().enumerate() {
            let (ip, lp) = (dir.path().join(format!("i{k}")), dir.path().join(format!("l{k}")));
            std::fs::write(&ip, if compress { gzip(&images) } else { images.clone() }).unwrap();
            std::fs::write(&lp, if compress { gzip(&labels) } else { labels.clone() }).unwrap();
            let (x, y) = read_set(&ip, &lp).unwrap();
            assert_eq!((x.count, x.rows, x.cols), (2, 3, 4));
            assert_eq!(x.image(1), &pixels[12..]);
            assert_eq!(y, vec![7, 1]);
        }
    }

    #[test]
    fn errors_name_the_problem_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad-idx");
        let case = |bytes: Vec<u8>, needle: &str| {
            std::fs::write(&p, bytes).unwrap();
            let e = format!("{:#}", read_images(&p).unwrap_err());
            assert!(e.contains("bad-idx") && e.contains(needle), "{e}");
        };
        case(vec![1, 2, 3, 4, 5, 6, 7, 8], "magic");
        case(idx(&[2, 3, 4], &[0; 23]), "truncated");
        case(idx(&[2, 3, 4], &[0; 25]), "after");
        case(idx(&[2], &[0; 2]), "dimensions");
        case(idx(&[u32::MAX, u32::MAX, u32::MAX], &[]), "");
        case(gzip(&idx(&[2, 3, 4], &[0; 23])), "truncated");
        let (i, l) = (dir.path().join("i"), dir.path().join("l"));
        std::fs::write(&i, idx(&[2, 1, 1], &[0, 0])).unwrap();
        std::fs::write(&l, idx(&[3], &[0, 0, 0])).unwrap();
        let e = format!("{:#}", read_set(&i, &l).unwrap_err());
        assert!(e.contains("2 images") && e.contains("3 labels"), "{e}");
        assert!(format!("{:#}", read_images(&dir.path().join("absent")).unwrap_err()).contains("absent"));
    }

    proptest! {
        /// Truncated, garbled and random files give an error or images, never a panic.
        #[test]
        fn hostile_files_never_panic(cut in 0usize..200, flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..6), compress in any::<bool>()) {
            let mut bytes = idx(&[3, 5, 6], &[9; 90]);
            if compress {
                bytes = gzip(&bytes);
            }
            bytes.truncate(cut.min(bytes.len()));
            for (at, v) in flips {
                if at < bytes.len() {
                    bytes[at] ^= v;
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("f");
            std::fs::write(&p, &bytes).unwrap();
            let _ = read_images(&p);
            let _ = read_labels(&p);
        }
    }

    /// Debian's dataset-fashion-mnist, when installed.
    #[test]
    fn reads_fashion_mnist_when_present() {
        let dir = Path::new("/usr/share/datasets/fashion-mnist");
        let find =
            |stem: &str| [stem.to_string(), format!("{stem}.gz")].into_iter().map(|n| dir.join(n)).find(|p| p.exists());
        let (Some(images), Some(labels)) = (find("t10k-images-idx3-ubyte"), find("t10k-labels-idx1-ubyte")) else {
            eprintln!("dataset-fashion-mnist not installed; skipped");
            return;
        };
        let (x, y) = read_set(&images, &labels).unwrap();
        assert_eq!((x.count, x.rows, x.cols), (10_000, 28, 28));
        assert!(y.iter().all(|l| *l < 10));
    }
}
