//! Crash-safe files: every result and checkpoint is written to a temporary file in the same
//! directory, flushed to disk, and renamed over the destination, so a reader (or a resumed
//! run) sees either the old file or the new one, never a torn write.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Occurs when a file cannot be written, read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Occurs when creating, writing, flushing or renaming a file fails.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// Occurs when a file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Occurs when a file is not the JSON document expected.
    #[error("{}:{line}:{column}: not a valid {what}: {message}", path.display())]
    Decode {
        path: PathBuf,
        what: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// Occurs when a value cannot be encoded as JSON (e.g. a non-string map key).
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// Writes `bytes` to `path` atomically: temporary file in the same directory, fsync, rename,
/// then fsync of the directory so the rename itself is durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let fail = |source| PersistError::Write {
        path: path.to_path_buf(),
        source,
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        fail(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path names no file",
        ))
    })?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".tmp.{}", std::process::id()));
    let temporary = directory.join(temporary_name);
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, path)?;
        File::open(&directory)?.sync_all()
    })();
    if result.is_err() {
        // best effort: the temporary file is garbage now, and the original error matters more
        let _ = fs::remove_file(&temporary);
    }
    result.map_err(fail)
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub fn save_json<T: Serialize>(path: &Path, what: &'static str, value: &T) -> Result<(), PersistError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|source| PersistError::Encode { what, source })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON document written by [`save_json`].
pub fn load_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, PersistError> {
    let text = crate::input::read_text(path, what, crate::limits::MAX_FITTED_BYTES).map_err(|e| {
        PersistError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.reason()),
        }
    })?;
    serde_json::from_str(&text).map_err(|error| PersistError::Decode {
        path: path.to_path_buf(),
        what,
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    })
}
