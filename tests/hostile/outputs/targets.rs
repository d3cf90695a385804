//! Where an output may go: never onto an input, another output, or a non-regular file.

use super::{assert_ok, assert_refused, llmforge, s, scratch};
use std::fs;
use std::path::Path;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dsl/models/smollm2-135m.yaml");
const SUBSTRATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/substrates/gemmini.yaml");
const TRACES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validate/sample.csv");

/// `roofline --model smollm2-135m --substrate SUB --plot PLOT`.
fn roofline(substrate: &str, plot: &str) -> std::process::Output {
    llmforge(&[
        "roofline",
        "--model",
        "smollm2-135m",
        "--precision",
        "int8",
        "--substrate",
        substrate,
        "--plot",
        plot,
    ])
}

/// A copy of `source` in `dir`, and its bytes.
fn copy(dir: &Path, source: &str, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join(name);
    fs::copy(source, &path).unwrap();
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn sim_trace_onto_the_model_file_is_refused() {
    let dir = scratch("sim-model");
    let (model, before) = copy(&dir, MODEL, "m.yaml");
    let out = llmforge(&[
        "sim",
        "--model",
        s(&model),
        "--substrate",
        "gemmini",
        "--trace",
        s(&model),
    ]);
    assert_refused(&out, "--trace");
    assert_refused(&out, "is the input --model");
    assert_eq!(fs::read(&model).unwrap(), before);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn roofline_plot_onto_the_substrate_file_is_refused_also_through_a_hard_link() {
    let dir = scratch("roofline-substrate");
    let (substrate, before) = copy(&dir, SUBSTRATE, "g.yaml");
    let run = |plot: &Path| roofline(s(&substrate), s(plot));
    assert_refused(&run(&substrate), "--plot");
    let hard = dir.join("plot.svg");
    fs::hard_link(&substrate, &hard).unwrap();
    assert_refused(&run(&hard), "is the input --substrate");
    assert_eq!(fs::read(&substrate).unwrap(), before);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn validate_out_onto_the_traces_file_is_refused() {
    let dir = scratch("validate-traces");
    let (traces, before) = copy(&dir, TRACES, "t.csv");
    let out = llmforge(&["validate", "--traces", s(&traces), "--out", s(&traces)]);
    assert_refused(&out, "--out");
    assert_refused(&out, "is the input --traces");
    assert_eq!(fs::read(&traces).unwrap(), before);
    let out = llmforge(&["validate", "--traces", s(&traces), "--svg", s(&traces)]);
    assert_refused(&out, "is the input --traces");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn surrogate_predict_out_onto_the_model_file_is_refused() {
    let dir = scratch("surrogate-model");
    // the check comes before the model is read, so any file stands in for it
    let (model, before) = copy(&dir, SUBSTRATE, "s.json");
    let out = llmforge(&[
        "surrogate",
        "predict",
        "--model",
        s(&model),
        "--arch",
        "smollm2-135m",
        "--out",
        s(&model),
    ]);
    assert_refused(&out, "is the input --model");
    assert_eq!(fs::read(&model).unwrap(), before);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn two_outputs_naming_one_file_are_refused() {
    let dir = scratch("two-outputs");
    let trace = dir.join("t.json");
    let out = llmforge(&[
        "sim",
        "--model",
        "smollm2-135m",
        "--substrate",
        "gemmini",
        "--trace",
        s(&trace),
        "--chrome-trace",
        &format!("{}/./t.json", dir.display()),
    ]);
    assert_refused(&out, "--trace and --chrome-trace both name");
    assert!(!trace.exists());
    let calibrated = dir.join("c.yaml");
    let out = llmforge(&[
        "calibrate",
        "--traces",
        TRACES,
        "--substrate",
        "h100-sxm",
        "--out",
        s(&calibrated),
        "--overlay-out",
        s(&calibrated),
    ]);
    assert_refused(&out, "--out and --overlay-out both name");
    assert!(!calibrated.exists());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_symbolic_link_output_is_refused_and_left_untouched() {
    let dir = scratch("symlink");
    let target = dir.join("precious.txt");
    fs::write(&target, "keep me").unwrap();
    let link = dir.join("plot.svg");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = roofline("gemmini", s(&link));
    assert_refused(&out, "is a symbolic link, not a regular file");
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep me");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_fifo_output_is_refused_and_left_untouched() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("fifo");
    let fifo = dir.join("trace.csv");
    let name = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    let out = llmforge(&[
        "sim",
        "--model",
        "smollm2-135m",
        "--substrate",
        "gemmini",
        "--trace",
        s(&fifo),
    ]);
    assert_refused(&out, "is a FIFO (named pipe)");
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    let _ = fs::remove_dir_all(dir);
}

/// Run as root, `roofline --plot /dev/full` used to replace the device node with a file.
#[test]
fn a_device_output_is_refused_and_left_untouched() {
    use std::os::unix::fs::FileTypeExt;
    let device = Path::new("/dev/full");
    if !device.exists() {
        eprintln!("skipped: no /dev/full on this machine");
        return;
    }
    // the library refuses it first, so a regression cannot reach the binary and replace it
    let refused = llmforge::output::Outputs::new()
        .file("--plot", Some(device))
        .check()
        .is_err();
    assert!(refused, "the output check accepts /dev/full");
    let out = roofline("gemmini", "/dev/full");
    assert_refused(&out, "is a character device, not a regular file");
    assert!(fs::symlink_metadata(device).unwrap().file_type().is_char_device());
}

#[test]
fn an_output_in_a_missing_folder_is_refused_before_any_work() {
    let dir = scratch("missing-folder");
    let plot = dir.join("no").join("such").join("r.svg");
    let out = roofline("gemmini", s(&plot));
    assert_refused(&out, "does not exist");
    // and a plain output still works, replacing an existing regular file
    let plot = dir.join("r.svg");
    fs::write(&plot, "old").unwrap();
    let out = roofline("gemmini", s(&plot));
    assert_ok(&out);
    assert!(fs::read_to_string(&plot).unwrap().contains("<svg"));
    assert_eq!(super::temporary_files(&dir), Vec::<std::path::PathBuf>::new());
    let _ = fs::remove_dir_all(dir);
}
