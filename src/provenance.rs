//! Where a result comes from: the hetsyn version, the git commit it was built
//! from, the command line and the host, recorded in `summary.json`, checkpoint
//! metadata and `train.log`.

use serde::{Deserialize, Serialize};

/// Where a result comes from, as `summary.json` and checkpoint metadata record
/// it (the same keys in both): [`Provenance::current`] is this process's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// hetsyn's version.
    #[serde(default)]
    pub hetsyn_version: String,
    /// The git commit hetsyn was built from ("unknown" outside a checkout).
    #[serde(default)]
    pub git_commit: String,
    /// The command line of the process.
    #[serde(default)]
    pub command_line: String,
    /// The machine it ran on.
    #[serde(default)]
    pub host: String,
}

impl Provenance {
    /// The provenance of this process.
    pub fn current() -> Provenance {
        Provenance {
            hetsyn_version: VERSION.to_string(),
            git_commit: GIT_COMMIT.to_string(),
            command_line: command_line(),
            host: host(),
        }
    }

    /// The (key, value) pairs, named as in `summary.json`.
    pub fn entries(self) -> [(&'static str, String); 4] {
        [
            ("hetsyn_version", self.hetsyn_version),
            ("git_commit", self.git_commit),
            ("command_line", self.command_line),
            ("host", self.host),
        ]
    }
}

/// The version of hetsyn (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit hetsyn was built from, or "unknown" (built outside a checkout).
pub const GIT_COMMIT: &str = env!("HETSYN_GIT_COMMIT");

/// The command line of this process, arguments quoted where a shell would need it.
pub fn command_line() -> String {
    std::env::args().map(|a| shell_quote(&a)).collect::<Vec<_>>().join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The name of this machine, or "unknown".
pub fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_string(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_host() {
        assert_eq!(shell_quote("--set"), "--set");
        assert_eq!(shell_quote("model.kind=homneulif"), "model.kind=homneulif");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert!(!host().is_empty());
        assert!(
            GIT_COMMIT == "unknown" || (GIT_COMMIT.len() == 40 && GIT_COMMIT.chars().all(|c| c.is_ascii_hexdigit()))
        );
    }
}
