//! The substrate file format's one description (`llmforge::substrate::schema`): the reference
//! document it generates, the templates `substrate new` prints, and the structural check that
//! reports every problem of a file in one run.

use llmforge::substrate::{self, schema};
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// dsl/SUBSTRATES.md is the table, rendered; `LLMFORGE_UPDATE_DOCS=1 cargo test` rewrites it.
#[test]
fn substrates_md_is_generated_from_the_schema() {
    let path = repo().join("dsl/SUBSTRATES.md");
    let want = schema::reference_markdown();
    if std::env::var("LLMFORGE_UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "dsl/SUBSTRATES.md is out of date with src/substrate/schema.rs: run `LLMFORGE_UPDATE_DOCS=1 cargo test --test tests substrate::schema`"
    );
    // every field of every kind is in it, with its unit
    for kind in ["gpu", "systolic", "ring"] {
        for f in schema::fields(kind) {
            assert!(want.contains(&format!("| `{}` |", f.path)), "{kind}: {}", f.path);
        }
    }
}

/// `substrate new --kind K` prints a file that `substrate check` accepts, naming every field.
#[test]
fn templates_validate() {
    let bin = env!("CARGO_BIN_EXE_llmforge");
    let dir = std::env::temp_dir().join(format!("llmforge-substrate-new-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for kind in ["gpu", "systolic", "ring"] {
        let out = Command::new(bin)
            .args(["substrate", "new", "--kind", kind])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for f in schema::fields(kind) {
            let key = f.path.rsplit('.').next().unwrap();
            assert!(text.contains(&format!("{key}:")), "{kind}: {}", f.path);
        }
        let file = dir.join(format!("{kind}.yaml"));
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(bin)
            .args(["substrate", "check", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind} template:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = substrate::load_str(&text, "t.yaml", &[]).unwrap();
        assert_eq!(s.kind_name(), kind);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 18: a systolic file with 8 structural mistakes gets 8 located errors in one run.
#[test]
fn eight_structural_mistakes_eight_errors() {
    let path = "tests/fixtures/substrate/eight-mistakes.yaml";
    let src = std::fs::read_to_string(repo().join(path)).unwrap();
    let err = substrate::load_str(&src, path, &[]).unwrap_err();
    let errors = err.errors();
    assert_eq!(errors.len(), 8, "{err:?}");
    // each at the line of its mistake, in file order
    let lines: Vec<usize> = errors.iter().map(|e| e.line()).collect();
    let marked: Vec<usize> = src
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("# ") && !l.trim_start().starts_with('#'))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines, marked);
    insta::assert_snapshot!(crate::dsl::render(&err));
}

/// A per-second value where bytes per cycle are expected: the help names the conversion and
/// the figure it gives at the file's clock.
#[test]
fn unit_mismatch_suggests_the_conversion() {
    let good = substrate::SHIPPED
        .iter()
        .find(|(n, _)| *n == "gemmini")
        .unwrap()
        .1;
    let bad = good.replace("read: \"4 B/cycle\"", "read: \"51.2 GB/s\"");
    let err = substrate::load_str(&bad, "bad.yaml", &[]).unwrap_err();
    let help = err.errors()[0].help_text().unwrap_or("");
    assert!(
        help.contains("\"51.2 GB/s / clock\"") && help.contains("51.2 B/cycle"),
        "{help}"
    );
    // and it works: the suggested text loads, to the same bandwidth
    let fixed = good.replace("read: \"4 B/cycle\"", "read: \"51.2 GB/s / clock\"");
    let s = substrate::load_str(&fixed, "fixed.yaml", &[]).unwrap();
    assert_eq!(s.memory_bandwidth().get(), 51.2e9);
    // the reverse, on a GPU: bytes per cycle where bytes per second are expected
    let a100 = substrate::SHIPPED
        .iter()
        .find(|(n, _)| *n == "a100-sxm4-40gb")
        .unwrap()
        .1;
    let bad = a100.replace("bandwidth: \"1555 GB/s\"", "bandwidth: \"1024 B/cycle\"");
    let err = substrate::load_str(&bad, "bad.yaml", &[]).unwrap_err();
    let help = err.errors()[0].help_text().unwrap_or("");
    assert!(help.contains("\"1024 B/cycle * clock\""), "{help}");
}
