//! Image classification from MNIST-family IDX files (paper: sequential MNIST).
//! An image becomes a sequence: `row` feeds one row of 28 pixels per step (28
//! steps × 28 channels), `pixel` one pixel per step (784 steps × 1 channel, the
//! S-MNIST convention), `permuted` the pixels in a fixed seeded order (PS-MNIST);
//! with these, pixel intensities (0..1) enter as analog input currents.
//! `spikes` turns the pixel sequence into threshold-crossing spikes: with
//! `spike_levels` thresholds `k / (levels + 1)`, channel `2k` spikes when the
//! intensity rises through threshold `k` from one pixel to the next and channel
//! `2k + 1` when it falls through it (784 steps × 2 levels channels). The validation set
//! is a seeded subset of the training file, never trained on; with
//! `validation_size = 0` there is none and every training image is trained on.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{EpochSource, Epochs, Input, Sample, Target, Task, TaskKind, TaskShape, Training};
use crate::data::idx::{read_set, IdxImages};

/// ChaCha8 streams (seeded with the run seed) of the validation split and the permutation.
const SPLIT_STREAM: u64 = 7;
const PERMUTATION_STREAM: u64 = 8;

/// How an image becomes a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Row,
    Pixel,
    Permuted,
    Spikes,
}

/// Settings of the image task (the `[task]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Directory of the IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
    /// `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`).
    pub data_dir: String,
    pub encoding: Encoding,
    /// Training images held out for validation (0: none, train on all).
    pub validation_size: usize,
    /// Use only the first this many test images (0 = all).
    pub test_limit: usize,
    /// Thresholds of the `spikes` encoding.
    pub spike_levels: usize,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            data_dir: "/usr/share/datasets/fashion-mnist".into(),
            encoding: Encoding::Row,
            validation_size: 5000,
            test_limit: 0,
            spike_levels: 4,
        }
    }
}

/// The IDX file `stem` in `dir`, plain or gzip.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))].into_iter().find(|p| p.is_file()).with_context(|| {
        format!(
            "task.data_dir = {:?}: no {stem}[.gz]; expected the four MNIST-format files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (plain or .gz); see data/README.md",
            dir.display().to_string()
        )
    })
}

/// The image task: the training images, and fixed validation and test samples.
pub struct Images {
    config: ImagesConfig,
    train: IdxImages,
    train_labels: Vec<u8>,
    order: Vec<usize>,
    classes: usize,
    epochs: Epochs,
    validation: Vec<Sample>,
    test: Vec<Sample>,
}

impl Images {
    pub fn new(config: ImagesConfig, seed: u64) -> Result<Self> {
        let dir = Path::new(&config.data_dir);
        let (train, train_labels) =
            read_set(&find(dir, "train-images-idx3-ubyte")?, &find(dir, "train-labels-idx1-ubyte")?)?;
        let (test, test_labels) =
            read_set(&find(dir, "t10k-images-idx3-ubyte")?, &find(dir, "t10k-labels-idx1-ubyte")?)?;
        if (test.rows, test.cols) != (train.rows, train.cols) {
            bail!(
                "task.data_dir: test images are {}x{}, training images {}x{}",
                test.rows,
                test.cols,
                train.rows,
                train.cols
            );
        }
        if config.encoding == Encoding::Spikes && !(1..=255).contains(&config.spike_levels) {
            bail!("task.spike_levels = {}: must be between 1 and 255", config.spike_levels);
        }
        if config.validation_size >= train.count {
            bail!(
                "task.validation_size = {}: must be between 0 (no validation set) and {} (the training images but one)",
                config.validation_size,
                train.count.saturating_sub(1)
            );
        }
        let classes = train_labels.iter().chain(&test_labels).map(|l| *l as usize + 1).max().unwrap_or(1);
        let pixels = train.rows * train.cols;
        let mut order: Vec<usize> = (0..pixels).collect();
        if config.encoding == Encoding::Permuted {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(PERMUTATION_STREAM);
            order.shuffle(&mut rng);
        }
        let mut indices: Vec<usize> = (0..train.count).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(SPLIT_STREAM);
        indices.shuffle(&mut rng);
        let (validation_indices, train_indices) = indices.split_at(config.validation_size);
        let mut task = Images {
            config,
            train,
            train_labels,
            order,
            classes,
            // the images of `train` used for training (the rest is validation)
            epochs: Epochs::new(seed, train_indices.to_vec()),
            validation: Vec::new(),
            test: Vec::new(),
        };
        task.validation =
            validation_indices.iter().map(|k| task.encode(&task.train, *k, task.train_labels[*k])).collect();
        let limit = if task.config.test_limit == 0 { test.count } else { task.config.test_limit.min(test.count) };
        task.test = (0..limit).map(|k| task.encode(&test, k, test_labels[k])).collect();
        Ok(task)
    }

    /// Image `k` of `set` as a sequence, intensities scaled to [0, 1] (or as
    /// threshold-crossing spikes).
    fn encode(&self, set: &IdxImages, k: usize, label: u8) -> Sample {
        let image = set.image(k);
        let values: Vec<f32> = self.order.iter().map(|p| image[*p] as f32 / 255.0).collect();
        let input = if self.config.encoding == Encoding::Spikes {
            let levels = self.config.spike_levels;
            let mut spikes = vec![0.0f32; values.len() * 2 * levels];
            let mut previous = 0.0f32;
            for (t, v) in values.iter().enumerate() {
                for k in 0..levels {
                    let threshold = (k + 1) as f32 / (levels + 1) as f32;
                    if previous < threshold && *v >= threshold {
                        spikes[t * 2 * levels + 2 * k] = 1.0;
                    } else if previous >= threshold && *v < threshold {
                        spikes[t * 2 * levels + 2 * k + 1] = 1.0;
                    }
                }
                previous = *v;
            }
            spikes
        } else {
            values
        };
        Sample { input: Input::Dense(input), target: Target::Class(label as usize) }
    }
}

impl EpochSource for Images {
    /// Epochs over the training images (see [`Epochs`]).
    fn batch(&mut self, iteration: u64, n: usize) -> Vec<Sample> {
        let batch = self.epochs.batch(iteration, n);
        batch.into_iter().map(|k| self.encode(&self.train, k, self.train_labels[k])).collect()
    }

    fn len(&self) -> usize {
        self.epochs.len()
    }
}

impl Task for Images {
    fn shape(&self) -> TaskShape {
        let pixels = self.train.rows * self.train.cols;
        let (steps, channels) = match self.config.encoding {
            Encoding::Row => (self.train.rows, self.train.cols),
            Encoding::Pixel | Encoding::Permuted => (pixels, 1),
            Encoding::Spikes => (pixels, 2 * self.config.spike_levels),
        };
        TaskShape { channels, outputs: self.classes, steps, kind: TaskKind::Classification }
    }

    fn training(&mut self) -> Training<'_> {
        Training::Epochs(self)
    }

    fn validation(&self) -> &[Sample] {
        &self.validation
    }

    fn test(&self) -> &[Sample] {
        &self.test
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a tiny MNIST-format set: `n` train and `m` test images of 2x3 pixels.
    fn write_set(dir: &Path, n: usize, m: usize) {
        let write = |name: &str, dims: &[u32], data: Vec<u8>| {
            let mut out = vec![0, 0, 0x08, dims.len() as u8];
            for d in dims {
                out.extend(d.to_be_bytes());
            }
            out.extend(data);
            std::fs::write(dir.join(name), out).unwrap();
        };
        write("train-images-idx3-ubyte", &[n as u32, 2, 3], (0..n * 6).map(|v| (v % 256) as u8).collect());
        write("train-labels-idx1-ubyte", &[n as u32], (0..n).map(|v| (v % 3) as u8).collect());
        write("t10k-images-idx3-ubyte", &[m as u32, 2, 3], (0..m * 6).map(|v| (255 - v % 256) as u8).collect());
        write("t10k-labels-idx1-ubyte", &[m as u32], (0..m).map(|v| (v % 3) as u8).collect());
    }

    fn config(dir: &Path, encoding: Encoding) -> ImagesConfig {
        ImagesConfig {
            data_dir: dir.display().to_string(),
            encoding,
            validation_size: 4,
            test_limit: 0,
            spike_levels: 2,
        }
    }

    #[test]
    fn encodings_shapes_and_split() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 20, 5);
        let rows = Images::new(config(dir.path(), Encoding::Row), 1).unwrap();
        assert_eq!(rows.shape(), TaskShape { channels: 3, outputs: 3, steps: 2, kind: TaskKind::Classification });
        assert_eq!(rows.test().len(), 5);
        assert_eq!(rows.validation().len(), 4);
        // test image 0 is 255, 254, ..., 250 scaled to [0, 1], row-major
        assert_eq!(rows.test()[0].input.dense().unwrap(), (0..6).map(|v| (255 - v) as f32 / 255.0).collect::<Vec<_>>());
        // validation images are never drawn for training
        let held_out: Vec<&Sample> = rows.validation().iter().collect();
        let mut task = Images::new(config(dir.path(), Encoding::Row), 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut seen = Vec::new();
        for iteration in 0..4 {
            for s in task.training().batch(iteration, 4, &mut rng) {
                assert!(!held_out.contains(&&s), "a validation image was drawn for training");
                seen.push(s);
            }
        }
        // one epoch = the 16 training images, each once
        for (k, s) in seen.iter().enumerate() {
            assert_eq!(seen.iter().filter(|t| *t == s).count(), 1, "image {k} repeated within an epoch");
        }
        // batches are a function of the iteration alone
        let mut again = Images::new(config(dir.path(), Encoding::Row), 1).unwrap();
        assert_eq!(again.training().batch(2, 4, &mut ChaCha8Rng::seed_from_u64(99)), seen[8..12].to_vec());
        let pixel = Images::new(config(dir.path(), Encoding::Pixel), 1).unwrap();
        assert_eq!((pixel.shape().steps, pixel.shape().channels), (6, 1));
        assert_eq!(pixel.test()[0].input.dense().unwrap(), rows.test()[0].input.dense().unwrap());
        let permuted = Images::new(config(dir.path(), Encoding::Permuted), 1).unwrap();
        let mut a = permuted.test()[0].input.dense().unwrap().to_vec();
        let mut b = rows.test()[0].input.dense().unwrap().to_vec();
        assert_ne!(a, b, "the permutation reorders pixels");
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        assert_eq!(a, b);
    }

    /// `validation_size = 0`: no validation set, and every epoch visits each of
    /// the training images exactly once (with 4 held out, 16 of them).
    #[test]
    fn validation_size_zero_trains_on_every_image() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 20, 5);
        let mut c = config(dir.path(), Encoding::Row);
        c.validation_size = 0;
        let mut task = Images::new(c, 1).unwrap();
        assert!(task.validation().is_empty());
        assert_eq!(task.training().epoch_len(), Some(20));
        let all: Vec<Sample> = (0..20).map(|k| task.encode(&task.train, k, task.train_labels[k])).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for epoch in 0..3u64 {
            // 20 images in batches of 8: 8, 8, 4
            let batches: Vec<Vec<Sample>> = (0..3).map(|i| task.training().batch(3 * epoch + i, 8, &mut rng)).collect();
            assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [8, 8, 4]);
            let seen = batches.concat();
            for (k, image) in all.iter().enumerate() {
                assert_eq!(seen.iter().filter(|s| *s == image).count(), 1, "epoch {epoch}: image {k}");
            }
        }
        // at most all but one may be held out
        let mut c = config(dir.path(), Encoding::Row);
        c.validation_size = 20;
        let e = format!("{:#}", Images::new(c, 1).err().unwrap());
        assert!(e.contains("task.validation_size = 20") && e.contains("between 0"), "{e}");
    }

    #[test]
    fn threshold_crossing_spikes() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), 50, 5);
        let spikes = Images::new(config(dir.path(), Encoding::Spikes), 1).unwrap();
        assert_eq!((spikes.shape().steps, spikes.shape().channels), (6, 4));
        // test image 0: 255, 254, ..., 250 -> rises through both thresholds (1/3, 2/3) at step 0, then stays
        let x = &spikes.test()[0].input.dense().unwrap();
        assert_eq!(&x[..4], &[1.0, 0.0, 1.0, 0.0]);
        assert!(x[4..].iter().all(|v| *v == 0.0));
        // test image 1 (pixels 249..244) likewise; a falling sequence would spike on odd channels
        let y = &spikes.test()[1].input.dense().unwrap();
        assert_eq!(&y[..4], &[1.0, 0.0, 1.0, 0.0]);
        // training image 42: pixels 252, 253, 254, 255, 0, 1: up at step 0, down at step 4
        let z = spikes.encode(&spikes.train, 42, 0).input.dense().unwrap().to_vec();
        let expect: Vec<f32> = (0..24).map(|i| if [0, 2, 17, 19].contains(&i) { 1.0 } else { 0.0 }).collect();
        assert_eq!(z, expect);
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = format!("{:#}", Images::new(config(dir.path(), Encoding::Row), 0).err().unwrap());
        assert!(e.contains("task.data_dir") && e.contains("train-images-idx3-ubyte"), "{e}");
    }
}
