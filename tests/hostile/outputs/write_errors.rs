//! Write errors (a full disk, a file-size limit) stop a run at once, name the file, and leave
//! no temporary file. Before, a sweep on a full disk ran to the end and then said "No space
//! left" without a path, and `validate --out` / `surrogate fit --out` left their temporary
//! files behind.

use super::{BIN, s, scratch, stderr, temporary_files};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

/// Runs llmforge with files limited to `bytes` (writes beyond fail with EFBIG, as on a full
/// disk; SIGXFSZ is ignored so the write returns the error instead of killing the process).
fn limited(bytes: u64, mut command: Command) -> Output {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    command.output().unwrap()
}

/// `N of M` in "sweep stopped after N of M candidates".
fn stopped_after(text: &str) -> (u64, u64) {
    let squashed = super::squash(text);
    let rest = squashed
        .split("sweepstoppedafter")
        .nth(1)
        .unwrap_or_else(|| panic!("no count in {text}"));
    let digits = |s: &str| s.chars().take_while(|c| c.is_ascii_digit()).collect::<String>();
    let done = digits(rest);
    let rest = rest[done.len()..].strip_prefix("of").expect("N of M");
    (done.parse().unwrap(), digits(rest).parse().unwrap())
}

fn assert_stopped_at_once(out: &Output, file: &Path, reason: &str) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        super::mentions(&text, &format!("cannot write `{}`", file.display())),
        "{text}"
    );
    assert!(super::mentions(&text, reason), "{text}");
    let (done, total) = stopped_after(&text);
    assert!(
        done <= 2 * 1024 && done < total,
        "ran on after the error: {done} of {total}"
    );
}

#[test]
fn a_write_error_stops_a_sweep_at_once_naming_the_file_and_leaves_no_temporary_file() {
    let dir = scratch("fsize-sweep");
    let out = dir.join("run");
    let result = limited(16 * 1024, super::slow_sweep(&out));
    assert_stopped_at_once(&result, &out.join("candidates.csv"), "File too large");
    assert_eq!(temporary_files(&dir), Vec::<std::path::PathBuf>::new());
    assert!(!out.join("candidates.csv").exists());
    let _ = fs::remove_dir_all(dir);
}

/// Runs llmforge with `args` and files limited to 64 bytes; asserts it failed naming `file`.
fn assert_write_error_names(args: &[&str], file: &Path) {
    let mut command = Command::new(BIN);
    command.args(args);
    let result = limited(64, command);
    let text = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{text}");
    let named = format!("cannot write `{}`", file.display());
    assert!(super::mentions(&text, &named), "{text}");
    assert!(!file.exists());
}

#[test]
fn write_errors_of_single_file_outputs_name_the_file_and_leave_no_temporary_file() {
    let dir = scratch("fsize-files");
    let report = dir.join("report.txt");
    let traces = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validate/sample.csv");
    assert_write_error_names(&["validate", "--traces", traces, "--out", s(&report)], &report);
    let model = dir.join("s.json");
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/surrogate/llmforge-iha-200m-train.csv"
    );
    let fit = [
        "surrogate",
        "fit",
        "--data",
        data,
        "--ensemble",
        "1",
        "--iterations",
        "5",
    ];
    let mut args = fit.to_vec();
    args.extend(["--out", s(&model)]);
    assert_write_error_names(&args, &model);
    assert_eq!(temporary_files(&dir), Vec::<std::path::PathBuf>::new());
    let _ = fs::remove_dir_all(dir);
}

/// The issue's own case: a sweep into a small tmpfs. Needs root (mount); skips otherwise.
#[test]
fn a_full_disk_stops_a_sweep_at_once_naming_the_file_and_leaves_no_temporary_file() {
    let dir = scratch("full-disk");
    let mount = dir.join("small");
    fs::create_dir_all(&mount).unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs", s(&mount)])
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "skipped: cannot mount a tmpfs ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount ({e})");
            return;
        }
    }
    let out = mount.join("run");
    let result = super::slow_sweep(&out).output().unwrap();
    let leftovers = temporary_files(&mount);
    let _ = Command::new("umount").arg(&mount).output();
    assert_stopped_at_once(&result, &out.join("candidates.csv"), "No space left on device");
    assert_eq!(leftovers, Vec::<std::path::PathBuf>::new());
    let _ = fs::remove_dir_all(dir);
}
