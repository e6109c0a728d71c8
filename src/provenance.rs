//! Where a result comes from: the hetsyn version, the git commit it was built
//! from, the command line and the host, recorded in `summary.json`, checkpoint
//! metadata and `train.log`.

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
