//! The module layering of docs/architecture.md, checked on the sources: the
//! test reads the table of its "Layers" section itself, so the rule and the
//! check cannot drift apart. Each module imports only the crate modules its row
//! names, every one of them in a row above it; the model core imports nothing
//! of the crate; every module of the library has a row.

use std::collections::BTreeSet;
use std::path::Path;

/// The backticked names of a table cell (`model/`, `plot.rs`) as crate module
/// names (`model`, `plot`), and the paths under src/ they stand for.
fn names(cell: &str) -> Vec<(String, String)> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|n| (n.trim_end_matches('/').trim_end_matches(".rs").to_string(), n.trim_end_matches('/').to_string()))
        .collect()
}

/// The rows of the "Layers" table, in order: (module, path under src/, the
/// modules it may use).
fn layers() -> Vec<(String, String, Vec<String>)> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md")).unwrap();
    let section = doc.split("## Layers").nth(1).expect("docs/architecture.md has no \"## Layers\" section");
    let mut rows = Vec::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).skip(2) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 3, "a row of the layers table has three cells: {line}");
        if cells[0] == "`main.rs`" {
            continue; // the binary: it may use the whole library
        }
        let allowed: Vec<String> = if cells[2] == "nothing of the crate" {
            Vec::new()
        } else {
            names(cells[2]).into_iter().map(|(m, _)| m).collect()
        };
        assert!(!allowed.is_empty() || cells[2] == "nothing of the crate", "unreadable last cell: {line}");
        for (module, path) in names(cells[0]) {
            rows.push((module, path, allowed.clone()));
        }
    }
    assert!(rows.len() >= 10, "the layers table was not found: {rows:?}");
    rows
}

/// The crate modules a source file names (`crate::x`), other than its own.
fn imports(path: &Path, own: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.match_indices("crate::")
        .map(|(i, _)| text[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
        .filter(|m| m != own && !m.is_empty())
        .collect()
}

fn files(path: &Path) -> Vec<std::path::PathBuf> {
    assert!(path.exists(), "{} is named in docs/architecture.md's layers table but does not exist", path.display());
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
fn modules_import_only_the_layers_above_them_in_the_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = layers();
    let mut above: BTreeSet<String> = BTreeSet::new();
    let mut covered = BTreeSet::new();
    for (module, path, allowed) in &layers {
        for a in allowed {
            assert!(above.contains(a), "docs/architecture.md lets {module} use {a}, which is not above it in the table");
        }
        for file in files(&src.join(path)) {
            for import in imports(&file, module) {
                assert!(
                    allowed.contains(&import),
                    "{} imports crate::{import}, which the layers table of docs/architecture.md does not allow \
                     {module} (allowed: {allowed:?})",
                    file.display()
                );
            }
        }
        above.insert(module.clone());
        covered.insert(path.clone());
    }
    assert!(layers.iter().any(|(m, _, a)| m == "model" && a.is_empty()), "the model core must import nothing");
    // every module of the library is placed in a layer
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !["lib.rs", "main.rs"].contains(&name.as_str()) {
            assert!(covered.contains(&name), "src/{name} is in no row of docs/architecture.md's layers table");
        }
    }
}
