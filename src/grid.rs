//! `hetsyn grid`: the config files of a cartesian grid over config keys (seeds
//! included), written as plain TOML files that a user can read and edit before
//! running them with `scripts/sweep.sh` or `scripts/slurm_array.sh`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{apply_override, Config};
use crate::io::atomic::write_atomic;

/// One `--vary key=v1,v2,...`: a key (or several joined by `+`, which all take
/// the same value, e.g. `train.lr+train.decay_lr=1e-3,5e-3`) and its values (as written).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `key=v1,v2,...` (values split at top-level commas, so
    /// `model.layers.0.size=5,20` and `task.delay=0.8,2.5` work).
    pub fn parse(spec: &str) -> Result<Axis> {
        let (key, values) = spec.split_once('=').with_context(|| format!("--vary {spec:?}: expected key=v1,v2,..."))?;
        let values: Vec<String> =
            split_top_level(values).into_iter().map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        if key.trim().is_empty() || key.split('+').any(|k| k.trim().is_empty()) || values.is_empty() {
            bail!("--vary {spec:?}: expected key=v1,v2,... (or key1+key2=v1,v2,...)");
        }
        Ok(Axis { key: key.trim().to_string(), values })
    }

    /// The keys that take the axis' value.
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.key.split('+').map(str::trim)
    }
}

/// Splits at commas outside brackets, braces and quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut quoted, mut start, mut parts) = (0i32, false, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A file-name-safe form of `key=value`.
fn slug(key: &str, value: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    // other characters become `_`, runs of them one `_` (`{ dist = "normal", mean = 0.1 }` -> `dist_normal_mean_0.1`)
    let clean = |s: &str| {
        let mapped: String =
            s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        mapped.split('_').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("_")
    };
    format!("{}-{}", clean(last), clean(value.trim_matches('"')))
}

/// Writes one validated, fully resolved config per combination of the axes into
/// `out` and returns their paths. `sets` (`key=value`, as `train --set`) apply to
/// every config before the axes and do not appear in the names. The run name of
/// each is `<base name>-<slugs>`. Every point is validated first: if one is
/// invalid, no file is written.
pub fn write_grid(base: &Path, axes: &[Axis], sets: &[String], out: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(base).with_context(|| format!("cannot read config file {}", base.display()))?;
    Config::from_toml(&text, sets).with_context(|| format!("invalid config file {}", base.display()))?;
    let combinations: usize = axes.iter().map(|a| a.values.len()).product();
    if combinations > 100_000 {
        bail!("the grid has {combinations} configs; more than 100000 is surely a mistake");
    }
    // every point is built and validated before any file is written
    let mut points = Vec::with_capacity(combinations);
    for index in 0..combinations {
        let mut rest = index;
        let mut table: toml::Table = text.parse().with_context(|| format!("invalid config file {}", base.display()))?;
        for set in sets {
            apply_override(&mut table, set)?;
        }
        let mut slugs = Vec::new();
        for axis in axes.iter().rev() {
            let value = &axis.values[rest % axis.values.len()];
            rest /= axis.values.len();
            for key in axis.keys() {
                apply_override(&mut table, &format!("{key}={value}"))?;
            }
            slugs.push(slug(axis.keys().next().unwrap_or_default(), value));
        }
        slugs.reverse();
        let name = slugs.join("_");
        let base_name = table.get("name").and_then(|v| v.as_str()).unwrap_or("run").to_string();
        table.insert("name".into(), toml::Value::String(format!("{base_name}-{name}")));
        let config = Config::from_toml(&toml::to_string(&table)?, &[])
            .with_context(|| format!("the grid point {name} of {} is not a valid config", base.display()))?;
        points.push((out.join(format!("{name}.toml")), config.to_toml()?));
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::with_capacity(points.len());
    for (path, text) in points {
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_parsing() {
        assert_eq!(
            Axis::parse("seed=0,1,2").unwrap(),
            Axis { key: "seed".into(), values: vec!["0".into(), "1".into(), "2".into()] }
        );
        let a = Axis::parse(r#"model.tau_init={ dist = "constant", value = 0.1 },{ dist = "constant", value = 0.2 }"#)
            .unwrap();
        assert_eq!(a.values.len(), 2);
        assert!(Axis::parse("seed").is_err());
        assert!(Axis::parse("seed=").is_err());
    }

    #[test]
    fn writes_the_cartesian_product() {
        let dir = tempfile::tempdir().unwrap();
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dms.toml");
        let axes = vec![Axis::parse("model.kind=hetsynlif,homneulif").unwrap(), Axis::parse("seed=0,1,2").unwrap()];
        let files = write_grid(&base, &axes, &[], dir.path()).unwrap();
        assert_eq!(files.len(), 6);
        let config = Config::load(&dir.path().join("kind-homneulif_seed-2.toml"), &[]).unwrap();
        assert_eq!(config.seed, 2);
        assert_eq!(config.name, "dms-kind-homneulif_seed-2");
        assert_eq!(format!("{:?}", config.model.kind), "Homneulif");
        // an invalid grid point is refused with its name, and nothing of the grid is written
        let fresh = dir.path().join("fresh");
        let bad = write_grid(&base, &[Axis::parse("train.lr=1e-3,-1").unwrap()], &[], &fresh).unwrap_err();
        assert!(format!("{bad:#}").contains("lr--1") && format!("{bad:#}").contains("train.lr"), "{bad:#}");
        assert!(!fresh.exists(), "a refused grid wrote {fresh:?}");
    }

    #[test]
    fn joint_keys_and_fixed_sets() {
        let dir = tempfile::tempdir().unwrap();
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dms.toml");
        let axes = vec![Axis::parse("train.lr+train.decay_lr=1e-3,4e-3").unwrap()];
        let sets = vec!["train.iterations=7".to_string()];
        let files = write_grid(&base, &axes, &sets, dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let config = Config::load(&dir.path().join("lr-4e-3.toml"), &[]).unwrap();
        assert_eq!((config.train.lr, config.train.decay_lr, config.train.iterations), (4e-3, 4e-3, 7));
        assert_eq!(config.name, "dms-lr-4e-3");
        let tau = Axis::parse(r#"model.tau_init={ dist = "normal", mean = 0.1, std = 0.01 }"#).unwrap();
        let files = write_grid(&base, &[tau], &[], dir.path()).unwrap();
        assert!(files[0].ends_with("tau_init-dist_normal_mean_0.1_std_0.01.toml"), "{files:?}");
        assert!(Axis::parse("train.lr+=1").is_err());
        let bad = write_grid(&base, &axes, &["train.iterations=0".to_string()], dir.path()).unwrap_err();
        assert!(format!("{bad:#}").contains("train.iterations"), "{bad:#}");
    }
}
