//! The hostile-input suite: the real binary run on inputs an attacker or a careless user would
//! give it. Every case runs `llmforge` (the binary cargo built for these tests) in its own
//! scratch directory, under a 10 s timeout and a 2 GiB address-space limit (`setrlimit` in a
//! `pre_exec` hook), and is held to:
//!
//! * no panic (no `panicked at`, no exit code 101), no abort or other signal, no hang;
//! * stderr under 64 KiB (error snippets are clipped, whatever the size of the input);
//! * the expected outcome: success for a valid input, or an error exit whose message names
//!   the file (with `line:column` where there is one) and says what is wrong.
//!
//! A case is data: [`Case`] (arguments, files to create, what to expect), and [`run_all`] runs
//! a table of them in parallel, reports every failure at once, and prints the case count, the
//! wall time and the peak RSS of the heaviest case. `inputs.rs` holds the input cases; output
//! and concurrency cases go in a module of their own beside it (`outputs.rs`).

mod inputs;
mod outputs;
mod props;
mod regressions;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A minimal valid model description that cases change one line of.
pub const MODEL: &str = "name: tiny
d_model: 64
vocab: 100
tied_embeddings: true
norm: rmsnorm
positional: rope
precision: fp16
layers:
  - repeat: 2
    attention: {heads: 4, kv_groups: 2, head_dim: 16}
    ffn: {kind: swiglu, width: 128}
";

/// The JSON pointer of every number in `v` (for properties that change one number of a
/// saved file).
pub fn number_pointers(v: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Number(_) => out.push(at),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, e)| walk(e, format!("{at}/{i}"), out)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, e)| walk(e, format!("{at}/{k}"), out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// What a case must end with.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Exit 0; stdout contains each string.
    Ok(Vec<String>),
    /// Exit 1 (an error, not a panic); stderr contains each string (the file's name, its
    /// `line:column`, the words of the message).
    Err(Vec<String>),
}

/// One invocation. In `args`, `{dir}` stands for the case's scratch directory, where `files`
/// are written first (name relative to it, contents).
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub args: Vec<String>,
    pub files: Vec<(String, Vec<u8>)>,
    /// Bytes given on stdin (closed when `None`).
    pub stdin: Option<Vec<u8>>,
    pub expect: Expect,
}

impl Case {
    /// A case running `args` (split on spaces; `{dir}` is the scratch directory).
    pub fn new(name: impl Into<String>, args: &str) -> Case {
        Case {
            name: name.into(),
            args: args.split_whitespace().map(str::to_string).collect(),
            files: Vec::new(),
            stdin: None,
            expect: Expect::Ok(Vec::new()),
        }
    }
    /// Adds one argument as is (spaces kept).
    pub fn arg(mut self, a: impl Into<String>) -> Case {
        self.args.push(a.into());
        self
    }
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Case {
        self.files.push((name.to_string(), contents.into()));
        self
    }
    pub fn ok(mut self, stdout_has: &[&str]) -> Case {
        self.expect = Expect::Ok(stdout_has.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn err(mut self, stderr_has: &[&str]) -> Case {
        self.expect = Expect::Err(stderr_has.iter().map(|s| s.to_string()).collect());
        self
    }
}

/// Limits every case runs under.
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const ADDRESS_SPACE: u64 = 2 << 30;
pub const MAX_STDERR: usize = 64 << 10;

/// What a run gave.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    pub peak_rss_kib: u64,
}

fn scratch(case: &str) -> PathBuf {
    let safe: String = case
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir().join(format!("llmforge-hostile-{}-{safe}", std::process::id()))
}

/// Runs one case.
#[cfg(unix)]
pub fn run(case: &Case) -> Outcome {
    use std::io::{Read, Write};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let dir = scratch(&case.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &case.files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
    }
    let shown = dir.display().to_string();
    let args: Vec<String> = case.args.iter().map(|a| a.replace("{dir}", &shown)).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmforge"));
    cmd.args(&args)
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(if case.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the hook runs in the forked child before exec and only calls setrlimit, which is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE as libc::rlim_t,
                rlim_max: ADDRESS_SPACE as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                code: None,
                signal: None,
                timed_out: false,
                stdout: String::new(),
                stderr: format!("the binary did not start: {e}"),
                wall: started.elapsed(),
                peak_rss_kib: 0,
            };
        }
    };
    if let (Some(bytes), Some(mut stdin)) = (case.stdin.clone(), child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            // Keep at most 1 MiB of each stream; read the rest away.
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if kept.len() < 1 << 20 {
                            kept.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
            kept
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: waiting on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if started.elapsed() > TIMEOUT && !timed_out {
            timed_out = true;
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let exit = std::process::ExitStatus::from_raw(status);
    let outcome = Outcome {
        code: exit.code(),
        signal: exit.signal(),
        timed_out,
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        wall,
        peak_rss_kib: usage.ru_maxrss as u64,
    };
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Why a run does not meet its case, if it does not.
pub fn verdict(case: &Case, o: &Outcome) -> Result<(), String> {
    let tail = |s: &str| -> String {
        let n = s.chars().count();
        s.chars().skip(n.saturating_sub(1500)).collect()
    };
    if o.code.is_none() && o.signal.is_none() && !o.timed_out {
        return Err(o.stderr.clone());
    }
    if o.timed_out {
        return Err(format!("ran over {} s", TIMEOUT.as_secs()));
    }
    if let Some(sig) = o.signal {
        return Err(format!("killed by signal {sig}; stderr: {}", tail(&o.stderr)));
    }
    if o.stderr.contains("panicked at") || o.code == Some(101) {
        return Err(format!("panicked: {}", tail(&o.stderr)));
    }
    if o.stderr.len() > MAX_STDERR {
        return Err(format!(
            "{} bytes of stderr (more than {MAX_STDERR})",
            o.stderr.len()
        ));
    }
    match &case.expect {
        Expect::Ok(needles) => {
            if o.code != Some(0) {
                return Err(format!("expected success, got {:?}: {}", o.code, tail(&o.stderr)));
            }
            for n in needles {
                if !o.stdout.contains(n.as_str()) {
                    return Err(format!("stdout lacks `{n}`: {}", tail(&o.stdout)));
                }
            }
        }
        Expect::Err(needles) => {
            if o.code != Some(1) && o.code != Some(2) {
                return Err(format!(
                    "expected an error exit, got {:?}: {}",
                    o.code,
                    tail(&o.stderr)
                ));
            }
            // Messages are wrapped at 80 columns behind a `│` margin: compare with the
            // wrapping undone.
            let flat = |s: &str| {
                s.replace('│', " ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let stderr = flat(&o.stderr);
            for n in needles {
                if !stderr.contains(&flat(n)) {
                    return Err(format!("stderr lacks `{n}`:\n{}", tail(&o.stderr)));
                }
            }
        }
    }
    Ok(())
}

/// Runs every case (in parallel), then fails listing every case that did not meet its
/// expectation. Prints the count, the wall time and the heaviest case's peak RSS.
pub fn run_all(suite: &str, cases: Vec<Case>) {
    let names: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "{suite}: case names must be unique");
    let started = Instant::now();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    let queue = std::sync::Mutex::new(cases.iter().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let Some(case) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let o = run(case);
                    let v = verdict(case, &o);
                    results.lock().unwrap().push((case.name.clone(), o, v));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let heaviest = results.iter().max_by_key(|(_, o, _)| o.peak_rss_kib);
    let slowest = results.iter().max_by_key(|(_, o, _)| o.wall);
    eprintln!(
        "hostile {suite}: {} cases in {:.1} s; peak RSS {} MiB ({}); slowest {:.2} s ({})",
        results.len(),
        started.elapsed().as_secs_f64(),
        heaviest.map_or(0, |h| h.1.peak_rss_kib / 1024),
        heaviest.map_or("-", |h| h.0.as_str()),
        slowest.map_or(0.0, |s| s.1.wall.as_secs_f64()),
        slowest.map_or("-", |s| s.0.as_str()),
    );
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, _, v)| v.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}

/// The path of a shipped fixture (for cases that read one).
pub fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
        .display()
        .to_string()
}
