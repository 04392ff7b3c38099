//! Where `put`, `get` and `rm` get the file's password from.
//!
//! In order: `--password-file FILE` (its first line, without the line ending), else the
//! `VOLDISEFS_PASSWORD` environment variable (when set and not empty), else a no-echo prompt
//! on the terminal. The password lives in [`Zeroizing`] memory, is never printed or logged,
//! and is sent to the node only in the `X-Voldisefs-Password` header (marked sensitive).

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

/// The environment variable holding the password.
pub(crate) const PASSWORD_ENV: &str = "VOLDISEFS_PASSWORD";

/// A password's raw bytes, wiped from memory when dropped.
pub(crate) type Password = Zeroizing<Vec<u8>>;

/// Reads the password from the first source that has one (see the module docs).
///
/// `confirm` asks twice when prompting (for uploads, where a typo would lose the file).
pub(crate) fn obtain(file: Option<&Path>, confirm: bool) -> anyhow::Result<Password> {
    resolve(file, std::env::var_os(PASSWORD_ENV), || prompt(confirm))
}

/// [`obtain`] with the environment and the terminal passed in, so the precedence is testable.
fn resolve(
    file: Option<&Path>,
    env: Option<OsString>,
    prompt: impl FnOnce() -> anyhow::Result<Password>,
) -> anyhow::Result<Password> {
    let password = if let Some(path) = file {
        from_file(path)?
    } else if let Some(value) = env.filter(|v| !v.is_empty()) {
        Zeroizing::new(value.into_encoded_bytes())
    } else {
        prompt()?
    };
    check(&password)?;
    Ok(password)
}

/// The first line of `path`, without its `\n` or `\r\n`.
fn from_file(path: &Path) -> anyhow::Result<Password> {
    let contents = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read password file {}", path.display()))?,
    );
    let line = contents.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        bail!("password file {} is empty", path.display());
    }
    Ok(Zeroizing::new(line.to_vec()))
}

/// Rejects passwords that cannot be sent in an HTTP header.
fn check(password: &[u8]) -> anyhow::Result<()> {
    if password.is_empty() {
        bail!("the password is empty");
    }
    if password
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        bail!("the password contains control characters, which cannot be sent to a node");
    }
    Ok(())
}

/// Asks on the terminal without echo; twice when `confirm` is set.
fn prompt(confirm: bool) -> anyhow::Result<Password> {
    let ask = |text: &str| -> anyhow::Result<Password> {
        let answer = rpassword::prompt_password(text).map(|s| Zeroizing::new(s.into_bytes()));
        answer.map_err(|e| match e.kind() {
            std::io::ErrorKind::Interrupted => anyhow::anyhow!("interrupted"),
            std::io::ErrorKind::UnexpectedEof => anyhow::anyhow!("no password given"),
            _ => anyhow::anyhow!(
                "no terminal to ask for the password on ({e}); give it with --password-file FILE \
                 or the {PASSWORD_ENV} environment variable"
            ),
        })
    };
    let password = ask("Password: ")?;
    if confirm {
        let again = ask("Confirm password: ")?;
        if *again != *password {
            bail!("the passwords do not match");
        }
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn no_prompt() -> anyhow::Result<Password> {
        panic!("must not prompt")
    }

    fn temp_file(contents: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents).unwrap();
        file
    }

    #[test]
    fn file_wins_over_env_and_prompt() {
        let file = temp_file(b"from-file\nsecond line\n");
        let pw = resolve(Some(file.path()), Some("from-env".into()), no_prompt).unwrap();
        assert_eq!(pw.as_slice(), b"from-file");
    }

    #[test]
    fn file_line_endings_are_stripped() {
        for (contents, expected) in [
            (&b"secret\n"[..], &b"secret"[..]),
            (b"secret\r\n", b"secret"),
            (b"secret", b"secret"),
            (b"with spaces \t\n", b"with spaces \t"),
            ("naïve\n".as_bytes(), "naïve".as_bytes()),
        ] {
            let file = temp_file(contents);
            let pw = resolve(Some(file.path()), None, no_prompt).unwrap();
            assert_eq!(pw.as_slice(), expected);
        }
    }

    #[test]
    fn empty_or_missing_file_is_an_error() {
        for contents in [&b""[..], b"\n", b"\r\nsecret\n"] {
            let file = temp_file(contents);
            let err = resolve(Some(file.path()), Some("env".into()), no_prompt).unwrap_err();
            assert!(err.to_string().contains("is empty"), "{err}");
        }
        let err = resolve(Some(Path::new("/nonexistent/pw.txt")), None, no_prompt).unwrap_err();
        assert!(
            err.to_string().contains("cannot read password file"),
            "{err}"
        );
    }

    #[test]
    fn env_wins_over_prompt() {
        let pw = resolve(None, Some("from-env".into()), no_prompt).unwrap();
        assert_eq!(pw.as_slice(), b"from-env");
    }

    #[test]
    fn prompt_is_last() {
        let prompted = || Ok(Zeroizing::new(b"typed".to_vec()));
        assert_eq!(resolve(None, None, prompted).unwrap().as_slice(), b"typed");
        // An empty variable counts as unset.
        assert_eq!(
            resolve(None, Some(OsString::new()), prompted)
                .unwrap()
                .as_slice(),
            b"typed"
        );
    }

    #[test]
    fn prompt_failure_is_reported() {
        let failing = || Err(anyhow::anyhow!("no terminal"));
        assert!(resolve(None, None, failing).is_err());
    }

    #[test]
    fn unsendable_passwords_are_refused() {
        let empty = || Ok(Zeroizing::new(Vec::new()));
        assert!(resolve(None, None, empty).is_err());
        for bad in ["a\u{1}b", "a\u{7f}", "a\rb"] {
            let err = resolve(None, Some(bad.into()), no_prompt).unwrap_err();
            assert!(err.to_string().contains("control characters"), "{err}");
        }
        assert!(resolve(None, Some("tab\tok".into()), no_prompt).is_ok());
    }
}
