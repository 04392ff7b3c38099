//! Files written below a folder through its open handle, never through a symbolic link.
//!
//! A download opens its output folder once and reaches everything below it one name at a time,
//! relative to a handle already open: folders are opened with `openat(O_DIRECTORY |
//! O_NOFOLLOW)` and created with `mkdirat`, the temporary file is created with `openat(O_CREAT
//! | O_EXCL | O_NOFOLLOW)` and put in place with `renameat` (without `--force`:
//! `RENAME_NOREPLACE`, or `linkat` where that is missing). A local user who can write to the output folder may swap a folder for a
//! symbolic link at any moment: the next step through it is refused (`ELOOP`), and what is
//! already open stays where it was, so nothing is ever created or written outside the folder.
//! (Checking paths and then writing by path would leave a window between the two.)
//!
//! Built on `rustix` rather than `cap-std`: rustix is already in the tree (through `tempfile`),
//! its calls are thin, safe wrappers of these very system calls, so the semantics are exactly
//! the kernel's no-follow ones; cap-std's `Dir` would bring several more crates and follows the
//! symbolic links that stay inside the folder, more than a download needs.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Flags opening a folder below a handle: never through a symbolic link.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Flags opening a folder the user named: a symbolic link there is the user's choice.
const NAMED_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);
/// Names tried for a temporary file before giving up (each one is random; a name is taken
/// only if someone else made a file of that name meanwhile).
const TEMP_ATTEMPTS: usize = 64;
/// Random characters in a temporary file's name.
const TEMP_RANDOM: usize = 6;

/// An open folder, and the path it is named by in messages (the user's, never a handle's).
#[derive(Debug)]
pub(crate) struct Folder {
    fd: OwnedFd,
    shown: PathBuf,
}

impl Folder {
    /// Opens the existing folder `path` as the user named it (a symbolic link the user named
    /// is followed, as `cp` would).
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        let fd = rustix::fs::open(non_empty(path), NAMED_FLAGS, Mode::empty())
            .map_err(std::io::Error::from)
            .with_context(|| format!("cannot open the folder {}", path.display()))?;
        Ok(Self {
            fd,
            shown: non_empty(path).to_path_buf(),
        })
    }

    /// Opens the folder `path` as the user named it, creating it (and its parents) when
    /// missing; a folder created here is opened without following a symbolic link, so one
    /// swapped in right after is refused.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        match rustix::fs::open(non_empty(path), NAMED_FLAGS, Mode::empty()) {
            Ok(fd) => {
                return Ok(Self {
                    fd,
                    shown: non_empty(path).to_path_buf(),
                });
            }
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR) => bail!("{} exists and is not a folder", path.display()),
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("cannot open the folder {}", path.display()));
            }
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            bail!("cannot create the folder {}", path.display());
        };
        let parent = non_empty(parent);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
        let parent = Self::open(parent)?;
        let fd = step(&parent.fd, name, path)?;
        Ok(Self {
            fd,
            shown: path.to_path_buf(),
        })
    }

    /// The folder at `names` below this one (`["a", "b"]` for `a/b`), each created when
    /// missing and opened through the one before, never through a symbolic link.
    pub(crate) fn descend<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> anyhow::Result<Self> {
        let mut shown = self.shown.clone();
        let mut fd: Option<OwnedFd> = None;
        for name in names {
            shown.push(name);
            if !is_plain_name(OsStr::new(name)) {
                bail!("refusing to write {}: not a plain name", shown.display());
            }
            let parent = fd.as_ref().unwrap_or(&self.fd);
            fd = Some(step(parent, OsStr::new(name), &shown)?);
        }
        let fd = match fd {
            Some(fd) => fd,
            None => self
                .fd
                .try_clone()
                .with_context(|| format!("cannot open the folder {}", shown.display()))?,
        };
        Ok(Self { fd, shown })
    }

    /// A new, hidden temporary file here for the file `name` (`.NAME.XXXXXX.part`, made by
    /// this call, never an existing file or link), deleted when dropped unless persisted.
    /// `shown` names the destination in messages.
    pub(crate) fn temp_file(&self, name: &OsStr, shown: &Path) -> anyhow::Result<TempFile<'_>> {
        let prefix = temp_prefix(&name.to_string_lossy());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut last = Errno::EXIST;
        for _ in 0..TEMP_ATTEMPTS {
            let random: String = std::iter::repeat_with(fastrand::alphanumeric)
                .take(TEMP_RANDOM)
                .collect();
            let temp = OsString::from(format!("{prefix}{random}.part"));
            // Like any new file (the umask applies), not the usual temporary file's 0600.
            match rustix::fs::openat(&self.fd, &temp, flags, Mode::from_raw_mode(0o666)) {
                Ok(fd) => {
                    return Ok(TempFile {
                        folder: self,
                        name: temp,
                        file: File::from(fd),
                        kept: false,
                    });
                }
                Err(Errno::EXIST) => last = Errno::EXIST,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(std::io::Error::from(last)).with_context(|| {
            format!(
                "cannot create {} (its temporary file in {})",
                shown.display(),
                self.shown.display()
            )
        })
    }
}

/// A temporary file in a [`Folder`], deleted (through the folder's handle) when dropped unless
/// [`TempFile::persist`] put it in place.
#[derive(Debug)]
pub(crate) struct TempFile<'a> {
    folder: &'a Folder,
    name: OsString,
    file: File,
    kept: bool,
}

impl TempFile<'_> {
    /// The open file, to write to.
    pub(crate) fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Puts the file in place as `name` in its folder. With `force` whatever file is there is
    /// replaced (a symbolic link itself, never its target); without, it fails with
    /// [`std::io::ErrorKind::AlreadyExists`] when anything is there.
    pub(crate) fn persist(mut self, name: &OsStr, force: bool) -> std::io::Result<()> {
        if !is_plain_name(name) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a plain file name",
            ));
        }
        let dir = &self.folder.fd;
        if force {
            rustix::fs::renameat(dir, &self.name, dir, name)?;
        } else {
            rename_noclobber(dir, &self.name, name)?;
        }
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.kept {
            // Nothing more to do if it fails: the file is hidden and named `.part`.
            let _ = rustix::fs::unlinkat(&self.folder.fd, &self.name, AtFlags::empty());
        }
    }
}

/// Renames `from` to `to` in `dir` unless something is at `to`: atomically with
/// `RENAME_NOREPLACE` where the system and file system support it, else by a hard link (which
/// fails on any existing name) and an unlink.
fn rename_noclobber(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    match rustix::fs::renameat_with(dir, from, dir, to, rustix::fs::RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
        Err(e) => return Err(e.into()),
    }
    rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())?;
    // The file is in place under its new name; the temporary name only goes (if this fails,
    // a hidden `.part` name of the same file stays, as with `tempfile`'s fallback).
    let _ = rustix::fs::unlinkat(dir, from, AtFlags::empty());
    Ok(())
}

/// The temporary file's name prefix: hidden, and short enough for any file system.
pub(crate) fn temp_prefix(name: &str) -> String {
    let mut end = name.len().min(100);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.", &name[..end])
}

/// Opens (creating when missing) the folder `name` in `parent`, never following a symbolic
/// link there; `shown` names it in messages.
fn step(parent: &OwnedFd, name: &OsStr, shown: &Path) -> anyhow::Result<OwnedFd> {
    match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(refusal(parent, name, shown, e)),
    }
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
        // Made meanwhile by someone else: opened below like any existing folder.
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("cannot create the folder {}", shown.display()));
        }
    }
    rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())
        .map_err(|e| refusal(parent, name, shown, e))
}

/// Why the folder `name` in `parent` could not be opened, in the user's words.
fn refusal(parent: &OwnedFd, name: &OsStr, shown: &Path, e: Errno) -> anyhow::Error {
    let kind = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|stat| FileType::from_raw_mode(stat.st_mode));
    match kind {
        Ok(FileType::Symlink) => anyhow!(
            "refusing to write through {}: it is a symbolic link",
            shown.display()
        ),
        Ok(kind) if kind != FileType::Directory => {
            anyhow!(
                "cannot create the folder {}: a file is there",
                shown.display()
            )
        }
        _ => anyhow::Error::new(std::io::Error::from(e))
            .context(format!("cannot open the folder {}", shown.display())),
    }
}

/// Whether `name` is one plain path component (not empty, `.`, `..`, nor holding `/`).
fn is_plain_name(name: &OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = name.as_bytes();
    !bytes.is_empty() && bytes != b"." && bytes != b".." && !bytes.contains(&b'/')
}

/// `path`, or `.` for the empty path (the current folder).
fn non_empty(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_prefixes_are_hidden_and_short() {
        assert_eq!(temp_prefix("a.txt"), ".a.txt.");
        let long = "é".repeat(100);
        let prefix = temp_prefix(&long);
        assert!(prefix.len() <= 102);
        assert!(prefix.starts_with('.'));
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn descending_makes_folders_and_never_goes_through_a_link_or_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (out, outside) = (tmp.path().join("out"), tmp.path().join("outside"));
        std::fs::create_dir(&outside).unwrap();
        let root = Folder::create(&out).unwrap();
        root.descend(["a", "b"]).unwrap();
        assert!(out.join("a/b").is_dir());
        root.descend(["a", "b"]).unwrap();

        std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
        let err = root.descend(["link", "c"]).unwrap_err().to_string();
        assert!(
            err.contains("symbolic link") && err.contains("out/link"),
            "{err}"
        );
        std::os::unix::fs::symlink(&outside, out.join("a/b/deep")).unwrap();
        let err = root.descend(["a", "b", "deep"]).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        std::fs::write(out.join("file"), b"x").unwrap();
        let err = root.descend(["file"]).unwrap_err().to_string();
        assert!(err.contains("a file is there"), "{err}");
        for name in ["..", ".", "", "x/y"] {
            assert!(root.descend([name]).is_err(), "{name:?}");
        }
        assert!(names(&outside).is_empty());

        // A dangling link where the output folder is to be created is refused too.
        let dangling = tmp.path().join("dangling");
        std::os::unix::fs::symlink(outside.join("new"), &dangling).unwrap();
        let err = Folder::create(&dangling).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(names(&outside).is_empty());
        let err = Folder::create(&out.join("file")).unwrap_err().to_string();
        assert!(err.contains("not a folder"), "{err}");
    }

    #[test]
    fn temporary_files_go_unless_persisted_and_replace_links_not_their_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let (out, outside) = (tmp.path().join("out"), tmp.path().join("outside"));
        std::fs::create_dir(&outside).unwrap();
        let root = Folder::create(&out).unwrap();
        let shown = out.join("f");

        let temp = root.temp_file(OsStr::new("f"), &shown).unwrap();
        assert!(names(&out)[0].starts_with(".f.") && names(&out)[0].ends_with(".part"));
        drop(temp);
        assert!(names(&out).is_empty());

        std::fs::write(out.join("f"), b"old").unwrap();
        let mut temp = root.temp_file(OsStr::new("f"), &shown).unwrap();
        std::io::Write::write_all(temp.file(), b"new").unwrap();
        let err = temp.persist(OsStr::new("f"), false).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(names(&out), ["f"]);
        assert_eq!(std::fs::read(out.join("f")).unwrap(), b"old");

        // A link planted at the file's name: replaced with --force, its target untouched.
        std::fs::write(outside.join("target"), b"theirs").unwrap();
        std::fs::remove_file(out.join("f")).unwrap();
        std::os::unix::fs::symlink(outside.join("target"), out.join("f")).unwrap();
        let mut temp = root.temp_file(OsStr::new("f"), &shown).unwrap();
        std::io::Write::write_all(temp.file(), b"new").unwrap();
        let err = temp.persist(OsStr::new("f"), false).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        let mut temp = root.temp_file(OsStr::new("f"), &shown).unwrap();
        std::io::Write::write_all(temp.file(), b"new").unwrap();
        temp.persist(OsStr::new("f"), true).unwrap();
        assert!(std::fs::symlink_metadata(out.join("f")).unwrap().is_file());
        assert_eq!(std::fs::read(out.join("f")).unwrap(), b"new");
        assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"theirs");
        assert_eq!(names(&out), ["f"]);
        assert_eq!(names(&outside), ["target"]);
    }
}
