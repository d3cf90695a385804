//! Every file llmforge writes goes through this module.
//!
//! **Invariant:** no other module creates, renames or removes an output file. What that buys:
//!
//! - *Atomic, uniquely named writes* ([`AtomicFile`], [`write_atomic`]): a file is written to a
//!   temporary file with a unique name in the destination's folder, flushed to disk and renamed
//!   over the destination, so a reader sees the old file or the new one, never a torn one, and
//!   two runs never share a temporary file. A write error stops the command at once, naming the
//!   destination; the temporary file is removed on every error path (dropped unfinished) and on
//!   SIGINT / SIGTERM / SIGHUP ([`interrupt`]).
//! - *Checked destinations* ([`Outputs`]): before any work, a command states the files it reads
//!   and the files it will write. An output that is one of the inputs (same path, hard link or
//!   symbolic link), two outputs naming one file, and an output that exists but is not a regular
//!   file (symbolic link, FIFO, device, directory) are refused with a message; nothing is touched.
//! - *Run directories* ([`RunDir`]): a command writing a folder of results (`sweep --out`,
//!   `search --out`) holds a lock file in it, so a concurrent run into the same folder fails at
//!   once; it records a `manifest.json` (command line, settings, input hashes, llmforge version,
//!   status, outputs); and a folder holding an earlier run's outputs is refused unless `--force`
//!   (which removes them first) or `--resume`.

mod atomic;
pub mod interrupt;
mod plan;
mod run_dir;

pub use atomic::{AtomicFile, load_json, save_json, write_atomic};
pub use plan::{InputRecord, Outputs};
pub use run_dir::{LOCK_FILE, MANIFEST, Manifest, Owned, Reuse, RunDir, Status, command_line};

use std::path::PathBuf;

/// Held by this module's tests that create files: one of them removes every temporary file in
/// flight in the process, which must not race the others.
#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Occurs when an output cannot be checked, written, locked or read back.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    // --- refused destinations (nothing was written) ---
    /// Occurs when an output names a file the same command reads.
    #[error(
        "{output_flag} `{}` is the input {input_flag} `{}`: refusing to replace a file this command reads",
        output.display(),
        input.display()
    )]
    SameAsInput {
        output_flag: String,
        output: PathBuf,
        input_flag: String,
        input: PathBuf,
    },
    /// Occurs when two outputs of one command name the same file.
    #[error("{first} and {second} both name `{}`: give each output its own file", path.display())]
    DuplicateOutput {
        first: String,
        second: String,
        path: PathBuf,
    },
    /// Occurs when an output exists and is not a regular file.
    #[error(
        "{flag} `{}` is {kind}, not a regular file: outputs are written by renaming a new file over \
         the path, which would replace it; refusing",
        path.display()
    )]
    NotRegular {
        flag: String,
        path: PathBuf,
        kind: &'static str,
    },
    /// Occurs when an output's folder does not exist.
    #[error("{flag} `{}`: the folder `{}` does not exist", path.display(), folder.display())]
    NoFolder {
        flag: String,
        path: PathBuf,
        folder: PathBuf,
    },
    /// Occurs when an output path names no file (`/`, `..`, an empty path).
    #[error("{flag} `{}` names no file", path.display())]
    NoFileName { flag: String, path: PathBuf },
    /// Occurs when a run directory's path exists and is not a directory.
    #[error("{flag} `{}` exists and is not a directory", path.display())]
    NotADirectory { flag: String, path: PathBuf },
    // --- run directories ---
    /// Occurs when a run directory holds the outputs of an earlier run and neither `--force`
    /// nor `--resume` was given.
    #[error("`{}` holds the outputs of an earlier run ({found}): {hint}", path.display())]
    RunDirUsed {
        path: PathBuf,
        found: String,
        hint: &'static str,
    },
    /// Occurs when another process holds a run directory's lock.
    #[error(
        "another llmforge run is writing into `{}` (it holds the lock `{}`): wait for it to finish, \
         or choose another folder",
        path.display(),
        lock.display()
    )]
    Locked { path: PathBuf, lock: PathBuf },
    // --- I/O ---
    /// Occurs when creating, writing, flushing, renaming, locking or removing a file fails.
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
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

impl OutputError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> OutputError {
        let path = path.into();
        move |source| OutputError::Io { op, path, source }
    }
}
