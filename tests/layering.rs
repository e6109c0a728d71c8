//! The module layering of docs/architecture.md, checked on the sources: each
//! module imports only the crate modules below it. The model core imports
//! nothing of the crate but itself; nothing imports upward.

use std::collections::BTreeSet;
use std::path::Path;

/// Module (a file or directory under src/) and the crate modules it may use.
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("provenance.rs", &[]),
    ("logging.rs", &[]),
    ("data", &["io"]),
    ("tasks", &["model", "data"]),
    ("config.rs", &["model", "tasks"]),
    ("io", &["model", "config", "provenance"]),
    ("train", &["model", "data", "tasks", "config", "io", "logging", "provenance"]),
    ("grid.rs", &["config", "io"]),
    ("bench.rs", &["model", "io", "train"]),
    ("plot", &["model", "tasks", "io", "train"]),
    ("summarize.rs", &["config", "io", "plot", "train"]),
    ("verify.rs", &["io", "train"]),
    ("record.rs", &["config", "io", "plot", "summarize", "train"]),
    ("report.rs", &["io", "plot", "summarize"]),
    ("figures", &["model", "io", "train", "plot", "summarize"]),
];

/// The crate modules a source file names (`crate::x`), other than its own.
fn imports(path: &Path, own: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let own = own.trim_end_matches(".rs");
    text.match_indices("crate::")
        .map(|(i, _)| text[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
        .filter(|m| m != own && !m.is_empty())
        .collect()
}

fn files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(files(&entry.unwrap().path()));
    }
    out
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut covered = BTreeSet::new();
    for (module, allowed) in LAYERS {
        for file in files(&src.join(module)) {
            for import in imports(&file, module) {
                assert!(
                    allowed.contains(&import.as_str()),
                    "{} imports crate::{import}, which is not below {module} (allowed: {allowed:?})",
                    file.display()
                );
            }
        }
        covered.insert(module.to_string());
    }
    // every module of the library is placed in a layer
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !["lib.rs", "main.rs"].contains(&name.as_str()) {
            assert!(covered.contains(&name), "src/{name} is in no layer of this test");
        }
    }
}
