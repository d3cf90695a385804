//! Run directories: a lock, a manifest, and the rule that a used directory is refused unless
//! `--force` or `--resume`.

use super::OutputError;
use super::atomic::{load_json, non_regular_kind, save_json};
use super::plan::InputRecord;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// The lock file of a run directory. It stays after the run (removing it would let a third
/// run lock a new file while a second still holds the old one); only the lock on it matters.
pub const LOCK_FILE: &str = ".llmforge.lock";
/// The manifest of a run directory.
pub const MANIFEST: &str = "manifest.json";

/// A file (or family of files) a run directory's command writes.
#[derive(Clone, Copy, Debug)]
pub enum Owned {
    /// A fixed name, e.g. `pareto.csv`.
    File(&'static str),
    /// `folder/prefix*suffix`, e.g. `models/pareto-*.yaml`.
    Pattern {
        folder: &'static str,
        prefix: &'static str,
        suffix: &'static str,
    },
}

impl Owned {
    /// Whether `path` is (or would be) this output inside `dir`.
    pub(crate) fn matches_in(&self, dir: &Path, path: &Path) -> bool {
        let same_folder =
            |folder: &Path| match (fs::canonicalize(folder), path.parent().map(fs::canonicalize)) {
                (Ok(a), Some(Ok(b))) => a == b,
                _ => false,
            };
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        match self {
            Owned::File(owned) => name == *owned && same_folder(dir),
            Owned::Pattern {
                folder,
                prefix,
                suffix,
            } => name.starts_with(prefix) && name.ends_with(suffix) && same_folder(&dir.join(folder)),
        }
    }

    /// The existing files of this kind in `dir`.
    fn existing(&self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Owned::File(name) => {
                let path = dir.join(name);
                if fs::symlink_metadata(&path).is_ok() {
                    vec![path]
                } else {
                    Vec::new()
                }
            }
            Owned::Pattern {
                folder,
                prefix,
                suffix,
            } => {
                let Ok(entries) = fs::read_dir(dir.join(folder)) else {
                    return Vec::new();
                };
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        name.starts_with(prefix) && name.ends_with(suffix)
                    })
                    .map(|e| e.path())
                    .collect();
                found.sort();
                found
            }
        }
    }
}

/// How a command may treat a run directory that holds an earlier run's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Refuse it.
    Fresh,
    /// Remove the earlier run's outputs first (`--force`).
    Force,
    /// Continue the earlier run (`--resume`).
    Resume,
}

/// Where a run stands, as its manifest says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Started and not finished: still running, or stopped by an error or a kill.
    Running,
    /// Every output written.
    Complete,
    /// Stopped by a signal; the outputs cover the work done before it.
    Interrupted,
}

/// `manifest.json` of a run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The llmforge version that wrote it.
    pub llmforge: String,
    /// The command line that started the run (without the program name).
    pub command: Vec<String>,
    /// Command lines that continued it (`--resume`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_by: Vec<Vec<String>>,
    pub status: Status,
    /// The command's settings after defaults were applied.
    pub settings: serde_json::Value,
    /// Every input file with its content hash.
    pub inputs: Vec<InputRecord>,
    /// The files written, relative to the run directory.
    pub outputs: Vec<String>,
}

impl Manifest {
    /// A manifest for a run started now by this process's command line.
    pub fn new(settings: serde_json::Value, inputs: Vec<InputRecord>) -> Manifest {
        Manifest {
            llmforge: crate::provenance::VERSION.to_string(),
            command: command_line(),
            resumed_by: Vec::new(),
            status: Status::Running,
            settings,
            inputs,
            outputs: Vec::new(),
        }
    }
}

/// This process's arguments, without the program name.
pub fn command_line() -> Vec<String> {
    std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Temporary files ([`super::AtomicFile`]'s `.<name>.<random>.tmp`) of the manifest and of
/// `owned` in `dir`.
fn stale_temporaries(dir: &Path, owned: &[Owned]) -> Vec<PathBuf> {
    let of = |name: &str, real: &dyn Fn(&str) -> bool| -> bool {
        let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
            return false;
        };
        // `<real name>.<random>`
        inner
            .rsplit_once('.')
            .is_some_and(|(real_name, _)| real(real_name))
    };
    let scan = |folder: &Path, real: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(folder) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| of(&e.file_name().to_string_lossy(), real))
            .map(|e| e.path())
            .collect()
    };
    let top =
        |name: &str| name == MANIFEST || owned.iter().any(|o| matches!(o, Owned::File(f) if *f == name));
    let mut found = scan(dir, &top);
    for o in owned {
        if let Owned::Pattern {
            folder,
            prefix,
            suffix,
        } = o
        {
            found.extend(scan(&dir.join(folder), &|n: &str| {
                n.starts_with(prefix) && n.ends_with(suffix)
            }));
        }
    }
    found.sort();
    found
}

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` when another process holds
/// it. The lock goes with the open file (flock(2), as std's `File::try_lock` on Linux), so it
/// is released when the process ends, however it ends.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this `File` owns and keeps open; no memory involved.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(error)
    }
}

/// Without flock(2), runs into one directory are not kept apart.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// A locked run directory. The lock is held until this value is dropped (or the process ends).
pub struct RunDir {
    path: PathBuf,
    _lock: File,
    previous: Option<Manifest>,
}

impl RunDir {
    /// Creates or opens `path`, takes its lock (failing at once if another run holds it), and
    /// applies `reuse` to an earlier run's outputs: `Fresh` refuses them, `Force` removes them
    /// (every file its manifest lists and every file of `owned`), `Resume` keeps them.
    pub fn open(flag: &str, path: &Path, reuse: Reuse, owned: &[Owned]) -> Result<RunDir, OutputError> {
        if path.exists() && !path.is_dir() {
            return Err(OutputError::NotADirectory {
                flag: flag.to_string(),
                path: path.to_path_buf(),
            });
        }
        fs::create_dir_all(path).map_err(OutputError::io("create the folder", path))?;
        let lock_path = path.join(LOCK_FILE);
        if let Some(kind) = non_regular_kind(&lock_path) {
            return Err(OutputError::NotRegular {
                flag: flag.to_string(),
                path: lock_path,
                kind,
            });
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(OutputError::io("open the lock file", &lock_path))?;
        match try_lock(&lock) {
            Ok(true) => {}
            Ok(false) => {
                return Err(OutputError::Locked {
                    path: path.to_path_buf(),
                    lock: lock_path,
                });
            }
            Err(source) => {
                return Err(OutputError::Io {
                    op: "lock",
                    path: lock_path,
                    source,
                });
            }
        }
        // with the lock held, no other run writes here: temporary files of this directory's
        // outputs are left over from a run that was killed (SIGKILL, power loss)
        for stale in stale_temporaries(path, owned) {
            fs::remove_file(&stale).map_err(OutputError::io("remove", &stale))?;
        }
        let manifest_path = path.join(MANIFEST);
        let previous: Option<Manifest> = if manifest_path.exists() {
            Some(load_json(&manifest_path, "run manifest")?)
        } else {
            None
        };
        let mut found: Vec<PathBuf> = owned.iter().flat_map(|o| o.existing(path)).collect();
        if let Some(m) = &previous {
            for name in &m.outputs {
                let p = path.join(name);
                if fs::symlink_metadata(&p).is_ok() && !found.contains(&p) {
                    found.push(p);
                }
            }
        }
        let used = previous.is_some() || !found.is_empty();
        match reuse {
            Reuse::Fresh if used => {
                let mut names: Vec<String> = found
                    .iter()
                    .filter_map(|p| p.strip_prefix(path).ok())
                    .map(|p| p.display().to_string())
                    .collect();
                if previous.is_some() {
                    names.insert(0, MANIFEST.to_string());
                }
                let shown = if names.len() > 4 {
                    format!("{} and {} more", names[..4].join(", "), names.len() - 4)
                } else {
                    names.join(", ")
                };
                let resumable = owned.iter().any(|o| matches!(o, Owned::File("checkpoint.json")));
                return Err(OutputError::RunDirUsed {
                    path: path.to_path_buf(),
                    found: shown,
                    hint: if resumable {
                        "give --force to replace them, or --resume to continue that run"
                    } else {
                        "give --force to replace them, or choose another folder"
                    },
                });
            }
            Reuse::Force => {
                for file in &found {
                    if let Some(kind) = non_regular_kind(file) {
                        return Err(OutputError::NotRegular {
                            flag: flag.to_string(),
                            path: file.clone(),
                            kind,
                        });
                    }
                }
                for file in found.iter().chain(previous.as_ref().map(|_| &manifest_path)) {
                    fs::remove_file(file).map_err(OutputError::io("remove", file))?;
                }
            }
            _ => {}
        }
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: lock,
            previous: if reuse == Reuse::Force { None } else { previous },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file of this run directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The manifest the directory held when it was opened (kept by `--resume`).
    pub fn previous(&self) -> Option<&Manifest> {
        self.previous.as_ref()
    }

    /// Removes the existing files of one of the run's outputs (e.g. `models/pareto-*.yaml`
    /// before a new front is written). Refuses to remove anything but regular files.
    pub fn clear(&self, owned: &Owned) -> Result<(), OutputError> {
        for file in owned.existing(&self.path) {
            if let Some(kind) = non_regular_kind(&file) {
                return Err(OutputError::NotRegular {
                    flag: "output".into(),
                    path: file,
                    kind,
                });
            }
            fs::remove_file(&file).map_err(OutputError::io("remove", &file))?;
        }
        Ok(())
    }

    /// Creates a folder inside the run directory.
    pub fn create_folder(&self, name: &str) -> Result<(), OutputError> {
        let path = self.path.join(name);
        fs::create_dir_all(&path).map_err(OutputError::io("create the folder", &path))
    }

    /// Writes the manifest (atomically).
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), OutputError> {
        save_json(&self.path.join(MANIFEST), "run manifest", manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNED: &[Owned] = &[
        Owned::File("pareto.csv"),
        Owned::Pattern {
            folder: "models",
            prefix: "pareto-",
            suffix: ".yaml",
        },
    ];

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llmforge-rundir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_second_open_fails_while_the_first_holds_the_lock() {
        let _serial = crate::output::test_lock();
        let dir = scratch("lock");
        let first = RunDir::open("--out", &dir, Reuse::Fresh, OWNED).unwrap();
        let err = RunDir::open("--out", &dir, Reuse::Fresh, OWNED).err().unwrap();
        assert!(matches!(err, OutputError::Locked { .. }), "{err}");
        drop(first);
        RunDir::open("--out", &dir, Reuse::Fresh, OWNED).unwrap();
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn temporaries_left_by_a_killed_run_are_removed_and_others_kept() {
        let _serial = crate::output::test_lock();
        let dir = scratch("stale");
        fs::create_dir_all(dir.join("models")).unwrap();
        let stale = [
            ".pareto.csv.a1B2c3.tmp",
            ".manifest.json.zzzzzz.tmp",
            "models/.pareto-3.yaml.q9Q9q9.tmp",
        ];
        let kept = [
            ".notes.txt.abcdef.tmp",
            "pareto.csv.tmp",
            "models/.other.yaml.abcdef.tmp",
        ];
        for name in stale.iter().chain(&kept) {
            fs::write(dir.join(name), "x").unwrap();
        }
        let run = RunDir::open("--out", &dir, Reuse::Resume, OWNED).unwrap();
        for name in stale {
            assert!(!dir.join(name).exists(), "{name} kept");
        }
        for name in kept {
            assert!(dir.join(name).exists(), "{name} removed");
        }
        drop(run);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_used_directory_is_refused_unless_forced_and_force_clears_stale_files() {
        let _serial = crate::output::test_lock();
        let dir = scratch("used");
        {
            let run = RunDir::open("--out", &dir, Reuse::Fresh, OWNED).unwrap();
            fs::create_dir_all(dir.join("models")).unwrap();
            for k in 0..3 {
                fs::write(dir.join(format!("models/pareto-{k}.yaml")), "m").unwrap();
            }
            fs::write(dir.join("pareto.csv"), "p").unwrap();
            fs::write(dir.join("notes.txt"), "mine").unwrap();
            let mut manifest = Manifest::new(serde_json::json!({}), Vec::new());
            manifest.outputs = vec!["pareto.csv".into()];
            run.write_manifest(&manifest).unwrap();
        }
        let err = RunDir::open("--out", &dir, Reuse::Fresh, OWNED).err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains("manifest.json, pareto.csv, models/pareto-0.yaml"),
            "{text}"
        );
        assert!(text.contains("--force"), "{text}");
        let run = RunDir::open("--out", &dir, Reuse::Force, OWNED).unwrap();
        assert!(run.previous().is_none());
        assert!(!dir.join("pareto.csv").exists());
        assert!(!dir.join("models/pareto-2.yaml").exists());
        assert!(!dir.join(MANIFEST).exists());
        assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
        let _ = fs::remove_dir_all(dir);
    }
}
