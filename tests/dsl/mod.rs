//! Integration tests of the description language: the README's examples and unit table,
//! fixture-driven error snapshots, properties (`props`) and the long fuzz run (`fuzz`).

mod fuzz;
mod props;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use llmforge::dsl::{self, Dim, DslError, Quantity, Value};
use llmforge::units::{Bytes, BytesPerSec, Hertz};
use llmforge::yaml::{Diagnostics, Expression, SourceFile};
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The names the README examples and the fixtures may use.
pub fn example_env(name: &str) -> Option<Quantity> {
    match name {
        "clock" => Some(Hertz::ghz(1.5).into()),
        "a" => Some(Quantity::number(3.0)),
        "b" => Some(Quantity::number(5.0)),
        "dram.bandwidth" => Some(BytesPerSec::new(204.8e9).into()),
        "n_banks" => Some(Quantity::number(8.0)),
        _ => None,
    }
}

/// miette's graphical report, no colour, 80 columns (the snapshot format).
pub fn render(diag: &dyn Diagnostic) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(80)
        .render_report(&mut out, diag)
        .expect("rendering into a String cannot fail");
    out
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("dsl/README.md")).expect("dsl/README.md is part of the repository")
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

fn same_value(got: &Value, want: &Value) -> Result<(), String> {
    let (g, w) = (got.candidates(), want.candidates());
    if got.dim() != want.dim() {
        return Err(format!("dimension {} != {}", got.dim(), want.dim()));
    }
    if g.len() != w.len() {
        return Err(format!("{} values != {}", g.len(), w.len()));
    }
    for (x, y) in g.iter().zip(&w) {
        if !close(x.value, y.value) {
            return Err(format!("{x} != {y}"));
        }
    }
    Ok(())
}

#[test]
fn readme_examples() {
    let text = readme();
    let block = text
        .split("```dsl-examples\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("dsl/README.md has a ```dsl-examples block");
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (src, expected) = line
            .split_once("=>")
            .expect("example lines are `expr => expected`");
        let (src, expected) = (src.trim(), expected.trim());
        let got = dsl::eval_str(src, &example_env);
        let outcome = match (expected.strip_prefix("error: "), got) {
            (Some(message), Err(e)) if e.to_string() == message => Ok(()),
            (Some(message), Err(e)) => Err(format!("error `{e}`, expected `{message}`")),
            (Some(_), Ok(v)) => Err(format!("got {v:?}, expected an error")),
            (None, Err(e)) => Err(format!("error `{e}`")),
            (None, Ok(v)) => match dsl::eval_str(expected, &example_env) {
                Ok(want) => same_value(&v, &want),
                Err(e) => Err(format!("the expected side does not evaluate: {e}")),
            },
        };
        if let Err(why) = outcome {
            failures.push(format!("{src}: {why}"));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "README examples failed:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 50, "only {checked} examples found");
}

fn unit_table_markdown() -> String {
    let mut out = String::from("| spelling | dimension | factor |\n|----------|-----------|--------|\n");
    for u in dsl::unit_table() {
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            u.spelling,
            u.dim,
            dsl::format_number(u.factor)
        ));
    }
    out
}

#[test]
fn readme_unit_table() {
    let text = readme();
    let (start, end) = ("<!-- units:start -->\n", "<!-- units:end -->");
    let a = text.find(start).expect("units:start marker") + start.len();
    let b = text.find(end).expect("units:end marker");
    let expected = unit_table_markdown();
    if std::env::var_os("LLMFORGE_UPDATE_README").is_some() {
        let updated = format!("{}{}{}", &text[..a], expected, &text[b..]);
        std::fs::write(repo().join("dsl/README.md"), updated).expect("write dsl/README.md");
        return;
    }
    assert_eq!(
        text[a..b],
        expected,
        "the unit table in dsl/README.md is stale: run LLMFORGE_UPDATE_README=1 cargo test readme_unit_table"
    );
}

/// Reads a fixture: `# as: <type>` lines pick a typed read; other `#` lines are comments.
fn fixture(path: &Path) -> (String, Option<String>) {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let mut read_as = None;
    let mut body = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# as:") {
            read_as = Some(t.trim().to_string());
        } else if !line.starts_with('#') {
            body.push(line);
        }
    }
    (body.join("\n"), read_as)
}

fn evaluate(src: &str, read_as: Option<&str>) -> Result<String, DslError> {
    let expr = dsl::parse(src)?;
    Ok(match read_as {
        None => {
            let value = expr.eval(&example_env)?;
            let list: Vec<String> = value.candidates().iter().map(|q| q.to_string()).collect();
            format!(
                "{} value(s) of {}: {}",
                list.len(),
                value.dim().describe(),
                list.join(", ")
            )
        }
        Some("bytes") => format!("{:?}", expr.eval_as::<Bytes>(&example_env)?),
        Some("bandwidth") => format!("{:?}", expr.eval_as::<BytesPerSec>(&example_env)?),
        Some("hertz") => format!("{:?}", expr.eval_as::<Hertz>(&example_env)?),
        Some("integer") => format!("{}", expr.eval_as::<u64>(&example_env)?),
        Some("integers") => format!("{:?}", expr.eval_candidates::<u64>(&example_env)?),
        Some("scalar") => format!("{}", expr.eval_scalar(&example_env)?),
        Some(other) => panic!("unknown `# as:` type {other}"),
    })
}

#[test]
fn err_fixtures() {
    insta::glob!("../fixtures/dsl", "err/*.txt", |path| {
        let (src, read_as) = fixture(path);
        let err = match evaluate(&src, read_as.as_deref()) {
            Err(e) => e,
            Ok(v) => panic!("{}: expected an error, got {v}", path.display()),
        };
        // Every error carries the text and a span inside it.
        let span = err.span().expect("located");
        assert!(span.end() <= src.len(), "{}: span past the end", path.display());
        insta::with_settings!({ description => src.clone(), omit_expression => true }, {
            insta::assert_snapshot!(render(&err));
        });
    });
}

#[test]
fn ok_fixtures() {
    insta::glob!("../fixtures/dsl", "ok/*.txt", |path| {
        let (src, read_as) = fixture(path);
        let shown = match evaluate(&src, read_as.as_deref()) {
            Ok(v) => v,
            Err(e) => panic!("{}: {}", path.display(), render(&e)),
        };
        let canonical = dsl::parse(&src).map(|e| e.to_string()).unwrap_or_default();
        insta::with_settings!({ description => src.clone(), omit_expression => true }, {
            insta::assert_snapshot!(format!("canonical: {canonical}\n{shown}"));
        });
    });
}

/// Evaluates every field of a flat YAML mapping; names refer to sibling fields (resolved
/// recursively, a cycle is an unknown name), errors are collected.
fn check_yaml(file: &SourceFile) -> Result<BTreeMap<String, Quantity>, String> {
    let fields: BTreeMap<String, Expression> = file.parse().map_err(|e| render(&e))?;
    fn resolve(
        fields: &BTreeMap<String, Expression>,
        file: &SourceFile,
        name: &str,
        depth: usize,
    ) -> Option<Quantity> {
        let expr = fields.get(name)?;
        if depth > 16 {
            return None;
        }
        let env = |n: &str| resolve(fields, file, n, depth + 1).or_else(|| example_env(n));
        expr.eval_scalar(file, &env).ok()
    }
    let mut diags = Diagnostics::new(file);
    let mut out = BTreeMap::new();
    for (name, expr) in &fields {
        let env = |n: &str| resolve(&fields, file, n, 1).or_else(|| example_env(n));
        if let Some(q) = diags.check(expr.eval_scalar(file, &env)) {
            out.insert(name.clone(), q);
        }
    }
    diags.finish(out).map_err(|errors| render(&errors))
}

#[test]
fn yaml_fixtures() {
    insta::glob!("../fixtures/dsl", "yaml/*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let name = format!(
            "fixtures/dsl/yaml/{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
        );
        let file = SourceFile::new(name, text);
        let shown = match check_yaml(&file) {
            Ok(values) => values.iter().map(|(k, v)| format!("{k} = {v}\n")).collect(),
            Err(rendered) => rendered,
        };
        insta::with_settings!({ omit_expression => true }, {
            insta::assert_snapshot!(shown);
        });
    });
}

#[test]
fn yaml_siblings_resolve() {
    let file = SourceFile::new(
        "core.yaml",
        "clock: 1 GHz\nwidth: 64 B/cycle\nlink: clock * width\n",
    );
    let values = check_yaml(&file).expect("valid");
    assert_eq!(values["link"], Quantity::new(64e9, Dim::BYTES_PER_SEC));
}
