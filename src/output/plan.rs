//! A command's inputs and outputs, checked before it does any work.

use super::OutputError;
use super::atomic::{folder_of, non_regular_kind};
use super::run_dir::Owned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One input file as a manifest records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The flag that named it (`--substrate`).
    pub flag: String,
    /// The path or shipped name as given.
    pub path: String,
    /// `sha256:<hex>` of its contents (for a shipped name, of the embedded text).
    pub sha256: String,
    /// A description shipped inside llmforge, not a file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shipped: bool,
}

/// What the command will write under one flag.
enum Target {
    /// One file.
    File(PathBuf),
    /// A run directory and the names it owns.
    Dir(PathBuf, &'static [Owned]),
}

/// The files a command reads and writes, checked together before any work is done
/// ([`Outputs::check`]) so that no output replaces an input, another output, or anything that
/// is not a regular file.
#[derive(Default)]
pub struct Outputs {
    inputs: Vec<(String, PathBuf)>,
    /// Indices into `inputs` that no output may replace but that [`Outputs::records`] leaves
    /// out ([`Outputs::guard`]).
    unrecorded: Vec<usize>,
    shipped: Vec<InputRecord>,
    outputs: Vec<(String, Target)>,
}

/// Where a path's file is: its device and inode when it exists, else its absolute path.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(path: &Path) -> Option<Identity> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        return Some(Identity::Inode(meta.dev(), meta.ino()));
    }
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return Some(Identity::Path(canonical));
    }
    // not there yet: the canonical folder (when it exists) and the name
    let name = path.file_name()?;
    let folder = folder_of(path);
    let folder = std::fs::canonicalize(&folder)
        .ok()
        .or_else(|| std::path::absolute(&folder).ok())?;
    Some(Identity::Path(folder.join(name)))
}

impl Outputs {
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// An input named by `flag`: a file path, or a name that is not a file (a preset, a shipped
    /// description, `chinchilla`), which is ignored here.
    pub fn input(&mut self, flag: &str, spec: impl AsRef<Path>) -> &mut Outputs {
        let path = spec.as_ref();
        if path.is_file() {
            self.inputs.push((flag.to_string(), path.to_path_buf()));
        }
        self
    }

    /// Inputs under one repeatable flag.
    pub fn inputs<P: AsRef<Path>>(&mut self, flag: &str, specs: impl IntoIterator<Item = P>) -> &mut Outputs {
        for spec in specs {
            self.input(flag, spec);
        }
        self
    }

    /// A file the command reads that no output may replace, but that its manifest does not
    /// record (so it is not hashed): e.g. the shards a merge reads, whose manifests name them.
    pub fn guard(&mut self, flag: &str, path: impl AsRef<Path>) -> &mut Outputs {
        self.unrecorded.push(self.inputs.len());
        self.inputs.push((flag.to_string(), path.as_ref().to_path_buf()));
        self
    }

    /// A shipped description read by name (recorded in manifests by the hash of its text).
    pub fn shipped(&mut self, flag: &str, name: &str, text: &str) -> &mut Outputs {
        self.shipped.push(InputRecord {
            flag: flag.to_string(),
            path: name.to_string(),
            sha256: crate::provenance::sha256(text.as_bytes()),
            shipped: true,
        });
        self
    }

    /// An output file named by `flag`, when given.
    pub fn file(&mut self, flag: &str, path: Option<&Path>) -> &mut Outputs {
        if let Some(path) = path {
            self.outputs
                .push((flag.to_string(), Target::File(path.to_path_buf())));
        }
        self
    }

    /// A run directory named by `flag` and the files it will hold.
    pub fn dir(&mut self, flag: &str, path: &Path, owned: &'static [Owned]) -> &mut Outputs {
        self.outputs
            .push((flag.to_string(), Target::Dir(path.to_path_buf(), owned)));
        self
    }

    /// Refuses an output that is an input, two outputs naming one file, an output that exists
    /// and is not a regular file, and an output whose folder does not exist. Touches nothing.
    pub fn check(&self) -> Result<(), OutputError> {
        // every (flag, path) this command may write
        let mut written: Vec<(String, PathBuf)> = Vec::new();
        for (flag, target) in &self.outputs {
            match target {
                Target::File(path) => {
                    if path.file_name().is_none() {
                        return Err(OutputError::NoFileName {
                            flag: flag.clone(),
                            path: path.clone(),
                        });
                    }
                    if let Some(kind) = non_regular_kind(path) {
                        return Err(OutputError::NotRegular {
                            flag: flag.clone(),
                            path: path.clone(),
                            kind,
                        });
                    }
                    let folder = folder_of(path);
                    if !folder.is_dir() {
                        return Err(OutputError::NoFolder {
                            flag: flag.clone(),
                            path: path.clone(),
                            folder,
                        });
                    }
                    written.push((flag.clone(), path.clone()));
                }
                Target::Dir(dir, owned) => {
                    if dir.exists() && !dir.is_dir() {
                        return Err(OutputError::NotADirectory {
                            flag: flag.clone(),
                            path: dir.clone(),
                        });
                    }
                    for path in owned_paths(dir, owned) {
                        if let Some(kind) = non_regular_kind(&path) {
                            return Err(OutputError::NotRegular {
                                flag: flag.clone(),
                                path,
                                kind,
                            });
                        }
                        written.push((flag.clone(), path));
                    }
                }
            }
        }
        let ids: Vec<Option<Identity>> = written.iter().map(|(_, p)| identity(p)).collect();
        for (i, (flag, path)) in written.iter().enumerate() {
            let Some(id) = &ids[i] else { continue };
            for (input_flag, input) in &self.inputs {
                if identity(input).as_ref() == Some(id) {
                    return Err(OutputError::SameAsInput {
                        output_flag: flag.clone(),
                        output: path.clone(),
                        input_flag: input_flag.clone(),
                        input: input.clone(),
                    });
                }
            }
            for (j, (other_flag, _)) in written.iter().enumerate().take(i) {
                if ids[j].as_ref() == Some(id) {
                    return Err(OutputError::DuplicateOutput {
                        first: other_flag.clone(),
                        second: flag.clone(),
                        path: path.clone(),
                    });
                }
            }
        }
        // an input inside a run directory under a name matching one of its patterns
        for (flag, target) in &self.outputs {
            if let Target::Dir(dir, owned) = target {
                for (input_flag, input) in &self.inputs {
                    if owned.iter().any(|o| o.matches_in(dir, input)) {
                        return Err(OutputError::SameAsInput {
                            output_flag: flag.clone(),
                            output: dir.clone(),
                            input_flag: input_flag.clone(),
                            input: input.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Every input with the hash of its contents, in the order given (for a manifest).
    pub fn records(&self) -> Result<Vec<InputRecord>, OutputError> {
        let mut records = Vec::with_capacity(self.inputs.len() + self.shipped.len());
        for (i, (flag, path)) in self.inputs.iter().enumerate() {
            if self.unrecorded.contains(&i) {
                continue;
            }
            records.push(InputRecord {
                flag: flag.clone(),
                path: path.display().to_string(),
                sha256: crate::provenance::sha256_file(path).map_err(OutputError::io("read", path))?,
                shipped: false,
            });
        }
        records.extend(self.shipped.iter().cloned());
        Ok(records)
    }
}

/// The fixed-name files a run directory owns (patterns are matched where they are used).
fn owned_paths(dir: &Path, owned: &[Owned]) -> Vec<PathBuf> {
    owned
        .iter()
        .filter_map(|o| match o {
            Owned::File(name) => Some(dir.join(name)),
            Owned::Pattern { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llmforge-plan-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_output_equal_to_an_input_is_refused_by_any_name() {
        let dir = scratch("same");
        let model = dir.join("m.yaml");
        fs::write(&model, "x").unwrap();
        let via_dots = dir.join(".").join("m.yaml");
        let err = Outputs::new()
            .input("--model", &model)
            .file("--trace", Some(&via_dots))
            .check()
            .unwrap_err();
        assert!(matches!(err, OutputError::SameAsInput { .. }), "{err}");
        #[cfg(unix)]
        {
            let hard = dir.join("hard.yaml");
            fs::hard_link(&model, &hard).unwrap();
            let err = Outputs::new()
                .input("--model", &model)
                .file("--trace", Some(&hard))
                .check()
                .unwrap_err();
            assert!(err.to_string().contains("is the input --model"), "{err}");
        }
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn two_outputs_naming_one_new_file_are_refused() {
        let dir = scratch("dup");
        let a = dir.join("t.json");
        let b = dir.join("sub").join("..").join("t.json");
        fs::create_dir_all(dir.join("sub")).unwrap();
        let err = Outputs::new()
            .file("--trace", Some(&a))
            .file("--chrome-trace", Some(&b))
            .check()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--trace and --chrome-trace both name"),
            "{err}"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_folders_and_preset_names_are_told_apart() {
        let dir = scratch("folder");
        let err = Outputs::new()
            .input("--model", "smollm2-135m")
            .file("--plot", Some(&dir.join("nope").join("r.svg")))
            .check()
            .unwrap_err();
        assert!(matches!(err, OutputError::NoFolder { .. }), "{err}");
        Outputs::new()
            .input("--model", "smollm2-135m")
            .file("--plot", Some(&dir.join("r.svg")))
            .check()
            .unwrap();
        let _ = fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn device_files_are_refused_without_touching_them() {
        let err = Outputs::new()
            .file("--plot", Some(Path::new("/dev/full")))
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
    }
}
