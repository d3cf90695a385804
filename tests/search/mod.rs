//! Integration tests of `llmforge::search` and `llmforge search`.

mod cli;
mod hypervolume;
mod nsga2;
mod problems;

/// Issue 7: a killed-and-resumed architecture search produces byte-identical pareto.csv and
/// history.csv, and the front's models load back.
#[test]
fn architecture_search_resumes_byte_identically() {
    let bin = env!("CARGO_BIN_EXE_llmforge");
    let dir = std::env::temp_dir().join(format!("llmforge-arch-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b) = (dir.join("a"), dir.join("b"));
    let common = [
        "search",
        "--space",
        "smollm2-135m-seeded",
        "--substrate",
        "gemmini",
        "--engine",
        "roofline",
        "--constraint",
        "loss<=3.9",
        "--population",
        "8",
        "--offspring",
        "16",
        "--format",
        "json",
    ];
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(common)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["--generations", "4", "--out", a.to_str().unwrap()]);
    run(&["--generations", "2", "--out", b.to_str().unwrap()]);
    run(&["--generations", "4", "--resume", b.to_str().unwrap()]);
    for f in ["pareto.csv", "history.csv"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let model = llmforge::model::load(a.join("models/pareto-0.yaml").to_str().unwrap()).unwrap();
    assert!(model.n_layers() >= 8);
    let _ = std::fs::remove_dir_all(&dir);
}
