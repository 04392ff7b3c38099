//! Secrets kept in files: the network key and the API token.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use zeroize::Zeroizing;

/// Reads a secret from `path` (whitespace around it dropped); `what` names it in errors.
pub(crate) fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the {what} from {}", path.display()))?,
    );
    let secret = Zeroizing::new(text.trim().to_owned());
    if secret.is_empty() {
        anyhow::bail!("{} holds no {what}", path.display());
    }
    Ok(secret)
}

/// Writes `secret` and a newline to a new file readable by its owner only (mode 0600);
/// an existing file is refused unless `force`.
pub(crate) fn write_secret_file(path: &Path, secret: &str, force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists; use --force to replace it",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })?;
    #[cfg(unix)]
    {
        // `mode` applies only to new files: make a replaced file private too.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    file.write_all(secret.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_privately_and_are_not_overwritten() {
        let dir = std::env::temp_dir().join(format!("voldisefs-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        let _ = std::fs::remove_file(&path);
        write_secret_file(&path, "abc123", false).unwrap();
        assert_eq!(read_secret_file(&path, "key").unwrap().as_str(), "abc123");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = write_secret_file(&path, "other", false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        write_secret_file(&path, "other", true).unwrap();
        assert_eq!(read_secret_file(&path, "key").unwrap().as_str(), "other");
        std::fs::write(&path, " \n").unwrap();
        assert!(read_secret_file(&path, "key").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
