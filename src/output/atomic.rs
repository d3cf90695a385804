//! Atomic writes through uniquely named temporary files, and the registry of the temporary
//! files in flight (removed when the process is interrupted).

use super::OutputError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use tempfile::NamedTempFile;

/// Temporary files created and not yet renamed or removed. An [`AtomicFile`] is registered
/// while its temporary file exists; the lock is held across creating + registering and across
/// renaming + unregistering, so whoever holds it sees every temporary file that exists.
static IN_FLIGHT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn in_flight() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    // a panic while holding the lock leaves the set itself intact
    IN_FLIGHT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every temporary file in flight and returns how many there were, keeping the
/// registry locked (so no file is created or renamed afterwards) for as long as the guard
/// lives. Used by the signal handler just before the process exits.
pub(super) fn remove_in_flight() -> (usize, MutexGuard<'static, BTreeSet<PathBuf>>) {
    let mut registry = in_flight();
    let count = registry.len();
    for path in std::mem::take(&mut *registry) {
        let _ = fs::remove_file(&path);
    }
    (count, registry)
}

/// What a path is, when it exists and is not a regular file ("a symbolic link", "a FIFO", ...).
pub(crate) fn non_regular_kind(path: &Path) -> Option<&'static str> {
    let meta = fs::symlink_metadata(path).ok()?;
    let kind = meta.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_symlink() {
        return Some("a symbolic link");
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_char_device() {
            return Some("a character device");
        }
        if kind.is_block_device() {
            return Some("a block device");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// The folder a path's file lives in (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A file being written: a temporary file with a unique name beside the destination, renamed
/// over it by [`AtomicFile::commit`]. Dropped without a commit (an error path), the temporary
/// file is removed. Writes are buffered; a write error names the destination.
pub struct AtomicFile {
    target: PathBuf,
    temp_path: PathBuf,
    /// Owns the temporary file's name (removed when dropped); `None` once committed.
    temp: Option<NamedTempFile>,
    /// Writes through a second handle of the same file (so errors are the system's own, not
    /// wrapped with the temporary name).
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `target`. Refuses a target that exists and is not a regular file.
    pub fn create(target: &Path) -> Result<AtomicFile, OutputError> {
        if let Some(kind) = non_regular_kind(target) {
            return Err(OutputError::NotRegular {
                flag: "output".into(),
                path: target.to_path_buf(),
                kind,
            });
        }
        let name = target
            .file_name()
            .ok_or_else(|| OutputError::NoFileName {
                flag: "output".into(),
                path: target.to_path_buf(),
            })?
            .to_string_lossy()
            .into_owned();
        let folder = folder_of(target);
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            // as File::create would: 0666 less the umask (tempfile's default is 0600)
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o666));
        }
        let mut registry = in_flight();
        let temp = builder
            .tempfile_in(&folder)
            .map_err(OutputError::io("create a temporary file for", target))?;
        let temp_path = temp.path().to_path_buf();
        registry.insert(temp_path.clone());
        drop(registry);
        let mut file = AtomicFile {
            target: target.to_path_buf(),
            temp_path,
            temp: Some(temp),
            writer: None,
        };
        let handle = file.temp.as_ref().map(|t| t.as_file().try_clone());
        match handle {
            Some(Ok(handle)) => file.writer = Some(BufWriter::with_capacity(64 * 1024, handle)),
            Some(Err(source)) => return Err(OutputError::io("write", target)(source)),
            None => unreachable!("just created"),
        }
        Ok(file)
    }

    /// The destination.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, syncs and renames the file over its destination, then syncs the folder so the
    /// rename itself is durable. On an error the temporary file is removed.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let fail = |op| OutputError::io(op, self.target.clone());
        let writer = self.writer.take().expect("an AtomicFile is committed once");
        let handle = writer.into_inner().map_err(|e| fail("write")(e.into_error()))?;
        handle.sync_all().map_err(fail("write"))?;
        drop(handle);
        // the path may have become a link or a FIFO since the command started
        if let Some(kind) = non_regular_kind(&self.target) {
            return Err(OutputError::NotRegular {
                flag: "output".into(),
                path: self.target.clone(),
                kind,
            });
        }
        let temp = self.temp.take().expect("an AtomicFile is committed once");
        let mut registry = in_flight();
        let persisted = temp.persist(&self.target);
        registry.remove(&self.temp_path);
        drop(registry);
        // on failure, the returned NamedTempFile is dropped here: the temporary file goes
        persisted.map_err(|error| fail("write")(error.error))?;
        let folder = folder_of(&self.target);
        File::open(&folder)
            .and_then(|f| f.sync_all())
            .map_err(OutputError::io("sync the folder of", &self.target))
    }

    /// Appends `bytes`; an error is returned as it is, for [`OutputError::Io`] to name the path.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        let writer = self.writer.as_mut().expect("not committed");
        writer
            .write_all(bytes)
            .map_err(OutputError::io("write", self.target.clone()))
    }

    fn context(&self, error: io::Error) -> io::Error {
        io::Error::new(
            error.kind(),
            format!("cannot write `{}`: {error}", self.target.display()),
        )
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let writer = self.writer.as_mut().expect("not committed");
        writer.write(buf).map_err(|e| self.context(e))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let writer = self.writer.as_mut().expect("not committed");
        writer.write_all(buf).map_err(|e| self.context(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        let writer = self.writer.as_mut().expect("not committed");
        writer.flush().map_err(|e| self.context(e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            // into_parts: drop the buffered bytes without writing them
            drop(writer.into_parts());
        }
        if let Some(temp) = self.temp.take() {
            let mut registry = in_flight();
            drop(temp); // removes the temporary file
            registry.remove(&self.temp_path);
        }
    }
}

/// Writes `bytes` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut file = AtomicFile::create(path)?;
    file.write_bytes(bytes)?;
    file.commit()
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub fn save_json<T: Serialize>(path: &Path, what: &'static str, value: &T) -> Result<(), OutputError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|source| OutputError::Encode { what, source })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON document written by [`save_json`].
pub fn load_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, OutputError> {
    let text = crate::input::read_text(path, what, crate::limits::MAX_FITTED_BYTES)
        .map_err(|e| OutputError::io("read", path)(std::io::Error::other(e.reason())))?;
    serde_json::from_str(&text).map_err(|error| OutputError::Decode {
        path: path.to_path_buf(),
        what,
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llmforge-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn commit_replaces_and_drop_removes_the_temporary_file() {
        let _serial = crate::output::test_lock();
        let dir = scratch("commit");
        let target = dir.join("out.csv");
        fs::write(&target, "old").unwrap();
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(listing(&dir).len(), 2, "a temporary file beside the target");
        assert_eq!(
            fs::read_to_string(&target).unwrap(),
            "old",
            "untouched until commit"
        );
        file.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(listing(&dir), ["out.csv"]);

        let mut unfinished = AtomicFile::create(&target).unwrap();
        unfinished.write_all(b"half").unwrap();
        drop(unfinished);
        assert_eq!(listing(&dir), ["out.csv"]);
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn two_writers_of_one_target_get_distinct_temporary_files() {
        let _serial = crate::output::test_lock();
        let dir = scratch("two");
        let target = dir.join("candidates.csv");
        let mut a = AtomicFile::create(&target).unwrap();
        let mut b = AtomicFile::create(&target).unwrap();
        assert_ne!(a.temp_path, b.temp_path);
        a.write_all(b"a\n").unwrap();
        b.write_all(b"b\n").unwrap();
        a.commit().unwrap();
        b.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "b\n");
        assert_eq!(listing(&dir), ["candidates.csv"]);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn removing_the_files_in_flight_leaves_none() {
        let _serial = crate::output::test_lock();
        let dir = scratch("inflight");
        let file = AtomicFile::create(&dir.join("x.json")).unwrap();
        let temp = file.temp_path.clone();
        assert!(temp.exists());
        let (count, registry) = remove_in_flight();
        assert!(count >= 1);
        assert!(!temp.exists());
        drop(registry);
        drop(file); // its temporary file is already gone; dropping it is harmless
        assert_eq!(listing(&dir), Vec::<String>::new());
        let _ = fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_refused_and_left_alone() {
        let _serial = crate::output::test_lock();
        let dir = scratch("link");
        let real = dir.join("real.txt");
        fs::write(&real, "keep").unwrap();
        let link = dir.join("link.txt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = write_atomic(&link, b"x").unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "keep");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn decode_errors_are_located() {
        let _serial = crate::output::test_lock();
        let dir = scratch("decode");
        let path = dir.join("c.json");
        fs::write(&path, "{\n  \"a\": [1, 2,\n}").unwrap();
        let err = load_json::<serde_json::Value>(&path, "checkpoint").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("c.json:3:1: not a valid checkpoint"), "{text}");
        let _ = fs::remove_dir_all(dir);
    }
}
