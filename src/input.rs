//! Reading input files: every loader opens its file through [`read_text`] (or [`open`] for
//! the streamed trace CSVs), so that a path that is not a regular file is refused saying what
//! it is (a directory, a character device such as `/dev/null`, a pipe), a file above its size
//! limit ([`crate::limits`]) is refused before it is read, and text that is not UTF-8 is
//! refused at the offending line and column.

use crate::limits;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Why an input file cannot be read. `Display` is "`path`: reason".
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {}", self.reason())]
    NotFound { path: String },
    #[error("{path}: {}", self.reason())]
    NotAFile {
        path: String,
        what: &'static str,
        kind: &'static str,
    },
    #[error("{path}: {}", self.reason())]
    TooLarge {
        path: String,
        kind: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{path}:{line}:{column}: {}", self.reason())]
    NotUtf8 {
        path: String,
        line: usize,
        column: usize,
    },
    #[error("{path}: {}", self.reason())]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl InputError {
    /// What is wrong, without the path.
    pub fn reason(&self) -> String {
        match self {
            InputError::NotFound { .. } => "no such file".into(),
            InputError::NotAFile { what, kind, .. } => format!("this is {what}, not a {kind} file"),
            InputError::TooLarge {
                kind, size, limit, ..
            } => format!(
                "the file is {} bytes; a {kind} file may have at most {} ({})",
                limits::grouped(*size),
                limits::grouped(*limit),
                limits::DOC
            ),
            InputError::NotUtf8 { .. } => "the file is not UTF-8 text (a binary file?)".into(),
            InputError::Io { source, .. } => format!("cannot read the file: {source}"),
        }
    }

    pub fn path(&self) -> &str {
        match self {
            InputError::NotFound { path }
            | InputError::NotAFile { path, .. }
            | InputError::TooLarge { path, .. }
            | InputError::NotUtf8 { path, .. }
            | InputError::Io { path, .. } => path,
        }
    }
}

/// What a path is, in words, when it is not a regular file.
fn what_it_is(ft: std::fs::FileType) -> Option<&'static str> {
    if ft.is_file() {
        return None;
    }
    if ft.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() {
            return Some("a character device (such as /dev/null or a terminal)");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_fifo() {
            return Some("a pipe (FIFO)");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Checks that `path` is a regular file (following links) of at most `limit` bytes and
/// opens it. `kind` names the file in messages ("model", "substrate", "trace CSV").
pub fn open(path: &Path, kind: &'static str, limit: Option<u64>) -> Result<(File, u64), InputError> {
    let shown = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(InputError::NotFound { path: shown });
        }
        Err(source) => return Err(InputError::Io { path: shown, source }),
    };
    if let Some(what) = what_it_is(meta.file_type()) {
        return Err(InputError::NotAFile {
            path: shown,
            what,
            kind,
        });
    }
    if let Some(limit) = limit.filter(|l| meta.len() > *l) {
        return Err(InputError::TooLarge {
            path: shown,
            kind,
            size: meta.len(),
            limit,
        });
    }
    let file = File::open(path).map_err(|source| InputError::Io {
        path: shown.clone(),
        source,
    })?;
    Ok((file, meta.len()))
}

/// Reads a whole text file of at most `limit` bytes (see [`open`]).
pub fn read_text(path: &Path, kind: &'static str, limit: u64) -> Result<String, InputError> {
    let bytes = read_bytes(path, kind, limit)?;
    text(bytes, &path.display().to_string())
}

/// Reads a whole file of at most `limit` bytes (see [`open`]).
pub fn read_bytes(path: &Path, kind: &'static str, limit: u64) -> Result<Vec<u8>, InputError> {
    let shown = path.display().to_string();
    let (file, len) = open(path, kind, Some(limit))?;
    // The file may grow after the check: read at most one byte past the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(limit as usize));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: shown.clone(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: shown,
            kind,
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// The bytes as UTF-8 text, or the line and column of the first invalid byte.
pub fn text(bytes: Vec<u8>, path: &str) -> Result<String, InputError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let before = &bytes[..valid];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |k| k + 1);
        let column = std::str::from_utf8(&before[start..]).map_or(1, |s| s.chars().count() + 1);
        InputError::NotUtf8 {
            path: path.to_string(),
            line,
            column,
        }
    })
}

/// Whether `spec` names an existing path of any kind (a file, a directory, a device), so that
/// loaders taking "a shipped name or a file" refuse a directory instead of looking it up as a
/// name.
pub fn exists(spec: &str) -> bool {
    std::fs::metadata(spec).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_file() {
        let dir = std::env::temp_dir();
        let e = read_text(&dir, "model", 100).unwrap_err();
        assert!(
            e.to_string().contains("this is a directory, not a model file"),
            "{e}"
        );
        #[cfg(unix)]
        {
            let e = read_text(Path::new("/dev/null"), "model", 100).unwrap_err();
            assert!(e.to_string().contains("character device"), "{e}");
        }
        let e = read_text(Path::new("/no/such/file.yaml"), "model", 100).unwrap_err();
        assert_eq!(e.to_string(), "/no/such/file.yaml: no such file");
    }

    #[test]
    fn locates_invalid_utf8() {
        let e = text(b"ab\ncd\xffe".to_vec(), "f.yaml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yaml:2:3: the file is not UTF-8 text (a binary file?)"
        );
    }

    #[test]
    fn refuses_large_files() {
        let path = std::env::temp_dir().join(format!("llmforge-input-{}.txt", std::process::id()));
        std::fs::write(&path, "0123456789").unwrap();
        let e = read_text(&path, "model", 5).unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    size: 10,
                    limit: 5,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(read_text(&path, "model", 10).unwrap(), "0123456789");
        let _ = std::fs::remove_file(&path);
    }
}
