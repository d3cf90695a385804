//! `search --resume DIR`: the whole problem comes from the checkpoint; differing flags, changed
//! inputs and edited checkpoints are refused (issues 14 and 18).

use super::{SEARCH, assert_ok, assert_refused, llmforge, s, scratch, search};
use std::fs;
use std::path::Path;

fn checkpoint(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(dir.join("checkpoint.json")).unwrap()).unwrap()
}

/// Issue 18: `--resume` required `--space` / `--substrate` again and failed without
/// `--objectives`; now the directory alone is enough, and the result is byte-identical to a
/// run that never stopped.
#[test]
fn resume_with_missing_flags_restores_them_and_is_byte_identical() {
    let dir = scratch("resume-restore");
    let (straight, stopped) = (dir.join("straight"), dir.join("stopped"));
    let with = [
        "--objectives",
        "loss,tpot,energy",
        "--prompt",
        "128",
        "--gen",
        "32",
        "--seed",
        "7",
    ];
    let mut args = with.to_vec();
    args.extend(["--generations", "4", "--out", s(&straight)]);
    assert_ok(&search(&args));
    let mut args = with.to_vec();
    args.extend(["--generations", "2", "--out", s(&stopped)]);
    assert_ok(&search(&args));
    assert_ok(&llmforge(&[
        "search",
        "--resume",
        s(&stopped),
        "--generations",
        "4",
    ]));
    for file in ["pareto.csv", "history.csv", "pareto.svg", "models/pareto-0.yaml"] {
        assert_eq!(
            fs::read(straight.join(file)).unwrap(),
            fs::read(stopped.join(file)).unwrap(),
            "{file}"
        );
    }
    let header = fs::read_to_string(stopped.join("pareto.csv")).unwrap();
    assert!(
        header.starts_with("rank,loss,tpot,energy,"),
        "objectives restored: {header}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(stopped.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["resumed_by"][0][1], "--resume");
    assert_eq!(manifest["settings"]["problem"]["prompt"], 128);
    assert_eq!(manifest["settings"]["nsga2"]["generations"], 4);
    let _ = fs::remove_dir_all(dir);
}

/// Issue 14: `--resume D --substrate gemmini` after a run on flat-edge exited 0 and kept
/// flat-edge numbers; every differing flag is now named with both values.
#[test]
fn resume_with_a_different_substrate_or_space_is_refused_naming_both_values() {
    let dir = scratch("resume-differ");
    let out = dir.join("run");
    assert_ok(&search(&["--generations", "1", "--out", s(&out)]));
    let before = fs::read(out.join("checkpoint.json")).unwrap();
    let refused = llmforge(&[
        "search",
        "--resume",
        s(&out),
        "--substrate",
        "flat-edge",
        "--space",
        "edge-moe",
        "--population",
        "9",
    ]);
    assert_refused(&refused, "--substrate: the checkpoint has `gemmini`");
    assert_refused(&refused, "the command line `flat-edge`");
    assert_refused(&refused, "--space: the checkpoint has `smollm2-135m-seeded`");
    assert_refused(&refused, "--population: the checkpoint has 8, the command line 9");
    assert_eq!(fs::read(out.join("checkpoint.json")).unwrap(), before);
    // the same flags as the run (a subset or all of them) are accepted
    let mut same: Vec<&str> = SEARCH.to_vec();
    same.extend(["--generations", "2", "--resume", s(&out)]);
    assert_ok(&llmforge(&same));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn resume_refuses_a_substrate_file_changed_since_the_run() {
    let dir = scratch("resume-changed");
    let substrate = super::copy_substrate(&dir);
    let out = dir.join("run");
    assert_ok(&llmforge(&[
        "search",
        "--space",
        "smollm2-135m-seeded",
        "--substrate",
        s(&substrate),
        "--engine",
        "roofline",
        "--population",
        "8",
        "--offspring",
        "16",
        "--generations",
        "1",
        "--out",
        s(&out),
    ]));
    let mut text = fs::read_to_string(&substrate).unwrap();
    text.push_str("\n# edited\n");
    fs::write(&substrate, text).unwrap();
    assert_refused(
        &llmforge(&["search", "--resume", s(&out), "--generations", "2"]),
        "has changed since the run started",
    );
    let _ = fs::remove_dir_all(dir);
}

/// Issue 14: checkpoints were trusted (an edited loss of 0.5 or d_model 1e12 was taken as
/// is, `"mask": []` panicked). Each is refused with the entry and the reason.
#[test]
fn resume_refuses_edited_checkpoints_naming_the_entry() {
    let dir = scratch("resume-edited");
    let out = dir.join("run");
    assert_ok(&search(&["--generations", "1", "--out", s(&out)]));
    let original = checkpoint(&out);
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "objective",
            |c| c["engine"]["population"][2]["evaluation"]["objectives"][0] = 0.5.into(),
            "population[2]: objective `loss` is 0.5 in the checkpoint, but its genome evaluates to",
        ),
        (
            "d_model",
            |c| c["engine"]["population"][1]["genome"]["d_model"] = 1_000_000_000_000u64.into(),
            "population[1].genome: `d_model` 1000000000000 is not one of the space's candidates",
        ),
        (
            "mask",
            |c| c["engine"]["population"][0]["genome"]["mask"] = serde_json::json!([]),
            "population[0].genome: `mask` has 0 entries",
        ),
        (
            "cache",
            |c| c["engine"]["cache"][5]["evaluation"]["violation"] = 0.25.into(),
            "cache[5]: the constraint violation is 0.25 in the checkpoint",
        ),
    ];
    for (what, edit, expected) in cases {
        let mut edited = original.clone();
        edit(&mut edited);
        fs::write(
            out.join("checkpoint.json"),
            serde_json::to_string(&edited).unwrap(),
        )
        .unwrap();
        let refused = llmforge(&["search", "--resume", s(&out), "--generations", "2"]);
        assert_refused(&refused, expected);
        assert!(
            super::mentions(&super::stderr(&refused), "checkpoint.json does not hold up"),
            "{what}"
        );
    }
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn resume_without_a_checkpoint_or_into_another_out_is_refused() {
    let dir = scratch("resume-nothing");
    let empty = dir.join("empty");
    fs::create_dir_all(&empty).unwrap();
    assert_refused(
        &llmforge(&["search", "--resume", s(&empty)]),
        "no checkpoint.json there, nothing to resume",
    );
    assert_refused(
        &llmforge(&["search", "--resume", s(&empty), "--out", s(&dir)]),
        "continues the run in its own directory",
    );
    let missing = dir.join("missing");
    assert_refused(
        &llmforge(&["search", "--resume", s(&missing)]),
        "no such directory, nothing to resume",
    );
    assert!(!missing.exists(), "--resume created the directory it was to read");
    let _ = fs::remove_dir_all(dir);
}
