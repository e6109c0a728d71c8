//! Records the git commit hetsyn is built from (`HETSYN_GIT_COMMIT`), or
//! "unknown" when git or the repository is absent (e.g. a source tarball).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // only this crate's own checkout counts, not a repository that happens to enclose it
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().ok();
    let own = git(&["rev-parse", "--show-toplevel"]).and_then(|t| Path::new(&t).canonicalize().ok());
    let commit = match own.is_some() && own == manifest_dir {
        true => git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        false => "unknown".into(),
    };
    println!("cargo:rustc-env=HETSYN_GIT_COMMIT={commit}");
    // rebuilt when HEAD moves (a commit, checkout or reset updates HEAD or its reflog)
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for file in ["HEAD", "logs/HEAD"] {
            let path = Path::new(&dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
