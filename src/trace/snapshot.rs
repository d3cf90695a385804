//! Snapshot files and `snapshot check` reports: the deterministic YAML writer of a
//! [`Snapshot`], and the check [`Report`] as an aligned text table, Markdown (for a pull
//! request comment) or JSON.
//!
//! The YAML writer is our own, not a serializer's: the layout is fixed (one block per case,
//! keys sorted, flow mappings for the short parts, floats in their shortest exact decimal
//! form), so the same snapshot is the same bytes on every machine and a changed cost is a
//! one-line diff.

use super::table::{Column, Table};
use super::{JsonMeta, PrecisionMeta, TraceError, json_document};
use crate::snapshot::{Cell, Record, Report, Row, Snapshot, Tolerance, TopOp, round_to};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The snapshot as YAML (format [`crate::snapshot::FORMAT`]).
pub fn yaml(s: &Snapshot) -> String {
    let mut o = String::new();
    o.push_str("# llmforge cost snapshot, written by `llmforge snapshot record`; compare a later run with\n");
    o.push_str(
        "# `llmforge snapshot check --cases <CASES> --baseline <this file>` (format: dsl/SNAPSHOTS.md).\n",
    );
    let _ = writeln!(o, "format: {}", s.format);
    let _ = writeln!(o, "llmforge_version: {}", scalar(&s.version));
    o.push_str("inputs:\n");
    let _ = writeln!(o, "  cases: {}", scalar(&s.inputs.cases));
    for (key, map) in [("models", &s.inputs.models), ("substrates", &s.inputs.substrates)] {
        block_map(&mut o, 2, key, map);
    }
    if s.cases.is_empty() {
        o.push_str("cases: {}\n");
    }
    if !s.cases.is_empty() {
        o.push_str("cases:\n");
    }
    for (name, r) in &s.cases {
        let _ = writeln!(o, "  {}:", scalar(name));
        record(&mut o, r);
    }
    o
}

fn record(o: &mut String, r: &Record) {
    let _ = writeln!(o, "    engine: {}", scalar(&r.engine));
    let _ = writeln!(o, "    fits_memory: {}", r.fits_memory);
    o.push_str("    metrics:\n");
    for (k, v) in &r.metrics {
        let _ = writeln!(o, "      {}: {}", scalar(k), number(*v));
    }
    let _ = writeln!(o, "    model: {}", scalar(&r.model));
    let p = &r.precision;
    let _ = writeln!(
        o,
        "    precision: {{activations: {}, kv_cache: {}, weights: {}}}",
        scalar(&p.activations),
        scalar(&p.kv_cache),
        scalar(&p.weights)
    );
    if !r.set.is_empty() {
        block_map(o, 4, "set", &r.set);
    }
    let _ = writeln!(o, "    substrate: {}", scalar(&r.substrate));
    o.push_str("    top_ops:\n");
    for (phase, ops) in [("decode", &r.top_ops.decode), ("prefill", &r.top_ops.prefill)] {
        if ops.is_empty() {
            let _ = writeln!(o, "      {phase}: []");
            continue;
        }
        let _ = writeln!(o, "      {phase}:");
        for TopOp { op, bound, share } in ops.iter() {
            let _ = writeln!(
                o,
                "        - {{bound: {}, op: {}, share: {}}}",
                scalar(bound),
                scalar(op),
                number(*share)
            );
        }
    }
    let _ = writeln!(
        o,
        "    workload: {{batch: {}, gen: {}, prompt: {}}}",
        r.batch, r.generate, r.prompt
    );
}

fn block_map(o: &mut String, indent: usize, key: &str, map: &BTreeMap<String, String>) {
    let pad = " ".repeat(indent);
    if map.is_empty() {
        let _ = writeln!(o, "{pad}{key}: {{}}");
        return;
    }
    let _ = writeln!(o, "{pad}{key}:");
    for (k, v) in map {
        let _ = writeln!(o, "{pad}  {}: {}", scalar(k), scalar(v));
    }
}

/// A string as a YAML scalar: plain when that cannot be read as anything else, otherwise
/// double-quoted with JSON escapes (a subset of YAML's).
fn scalar(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !s.ends_with(':')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./@+:".contains(c))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
    }
}

/// A float in its shortest exact decimal form (plain for ordinary magnitudes, else with an
/// exponent); YAML's `.inf` / `.nan` for the others.
fn number(x: f64) -> String {
    if x.is_nan() {
        ".nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { ".inf".into() } else { "-.inf".into() }
    } else if x == 0.0 {
        "0".into()
    } else if (1e-5..1e16).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

// ---------------------------------------------------------------------------------------
// Check reports.

/// A value with its unit and an SI prefix (`176.4 ms`, `71.45 GB`); fractions as percent.
fn value(x: f64, unit: &str) -> String {
    if unit.is_empty() {
        return format!("{}%", round_to(x * 100.0, 12));
    }
    if x == 0.0 || !x.is_finite() {
        return format!("{x} {unit}");
    }
    let (scale, prefix) = crate::units::si_prefix(x.abs());
    format!("{} {prefix}{unit}", round_to(x / scale, 12))
}

fn cell(c: &Cell, unit: &str) -> String {
    match c {
        Cell::Number(x) => value(*x, unit),
        Cell::Text(t) => t.clone(),
        Cell::Absent => "(not recorded)".into(),
    }
}

fn change(r: &Row) -> String {
    match r.change {
        Some(c) => {
            let pct = c * 100.0;
            if pct.abs() >= 0.005 || pct == 0.0 {
                format!("{pct:+.2}%")
            } else {
                format!("{pct:+.1e}%")
            }
        }
        None if matches!((&r.old, &r.new), (Cell::Text(_), Cell::Text(_))) => "changed".into(),
        None => String::new(),
    }
}

fn tolerance(t: Option<Tolerance>, unit: &str) -> String {
    let Some(t) = t else { return "exact".into() };
    let rel = (t.rel > 0.0).then(|| format!("{}%", round_to(t.rel * 100.0, 12)));
    let abs = (t.abs > 0.0).then(|| {
        if unit.is_empty() {
            format!("±{}", round_to(t.abs, 12))
        } else {
            format!("±{}", value(t.abs, unit))
        }
    });
    match (rel, abs) {
        (Some(r), Some(a)) => format!("{r} {a}"),
        (Some(r), None) => r,
        (None, Some(a)) => a,
        (None, None) => "0".into(),
    }
}

fn status(r: &Row) -> &'static str {
    if r.outside { "OUTSIDE" } else { "within" }
}

/// `sha256:1234abcd…` (the first 8 hex digits), or `-`.
fn short_hash(h: &Option<String>) -> String {
    match h {
        Some(h) => {
            let cut = h.char_indices().nth(15).map_or(h.len(), |(i, _)| i);
            format!("{}…", &h[..cut])
        }
        None => "-".into(),
    }
}

/// One line: how many cases moved and how many metrics are outside tolerance.
pub fn summary_line(r: &Report) -> String {
    let outside = r.outside();
    let mut s = format!(
        "{} of {} cases moved; {} {} outside tolerance",
        r.moved,
        r.compared,
        outside,
        if outside == 1 { "metric" } else { "metrics" }
    );
    if !r.new_cases.is_empty() || !r.removed_cases.is_empty() {
        let _ = write!(
            s,
            "; {} new, {} removed cases",
            r.new_cases.len(),
            r.removed_cases.len()
        );
    }
    s
}

/// The report as text: provenance, changed inputs, new and removed cases, then the table
/// of what moved (case, metric, old, new, change, tolerance, status).
pub fn report_text(r: &Report, baseline: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "snapshot check against {baseline} (recorded by llmforge {}; this is {})",
        r.baseline_version, r.version
    );
    if !r.changed_inputs.is_empty() {
        o.push_str("\nchanged inputs:\n");
        let mut t = Table::new(vec![
            Column::text("input"),
            Column::text("baseline"),
            Column::text("now"),
        ])
        .indent(2);
        for c in &r.changed_inputs {
            t.row([c.input.clone(), short_hash(&c.old), short_hash(&c.new)]);
        }
        o.push_str(&t.render());
    }
    for (what, list) in [
        ("new cases (not in the baseline)", &r.new_cases),
        (
            "removed cases (in the baseline, no longer in the cases file)",
            &r.removed_cases,
        ),
    ] {
        if !list.is_empty() {
            let _ = writeln!(o, "\n{what}: {}", list.len());
            for name in list {
                let _ = writeln!(o, "  {name}");
            }
        }
    }
    if !r.rows.is_empty() {
        o.push('\n');
        let mut t = Table::new(vec![
            Column::text("case"),
            Column::text("metric"),
            Column::number("old", ""),
            Column::number("new", ""),
            Column::number("change", ""),
            Column::text("tolerance"),
            Column::text("status"),
        ]);
        for row in &r.rows {
            t.row([
                row.case.clone(),
                row.metric.clone(),
                cell(&row.old, row.unit),
                cell(&row.new, row.unit),
                change(row),
                tolerance(row.tolerance, row.unit),
                status(row).to_string(),
            ]);
        }
        o.push_str(&t.render());
    }
    let _ = writeln!(o, "\n{}", summary_line(r));
    o
}

/// Rows a Markdown report lists before it summarises the rest (a pull-request comment holds
/// about 65,000 characters).
pub const MARKDOWN_ROWS: usize = 200;

/// The report as Markdown, for a pull-request comment: a verdict, changed inputs, new and
/// removed cases, and the table (outside-tolerance rows first, at most [`MARKDOWN_ROWS`]).
pub fn report_markdown(r: &Report, update: bool) -> String {
    let md = |s: &str| s.replace('|', "\\|").replace('`', "'");
    let mut o = String::new();
    let verdict = if r.passes(update) { "passes" } else { "FAILS" };
    let _ = writeln!(o, "### llmforge cost snapshot: {verdict}\n");
    let _ = writeln!(
        o,
        "{}. Baseline recorded by llmforge {}, checked with {}.",
        summary_line(r),
        r.baseline_version,
        r.version
    );
    if !r.changed_inputs.is_empty() {
        let list: Vec<String> = r
            .changed_inputs
            .iter()
            .map(|c| format!("`{}`", md(&c.input)))
            .collect();
        let _ = writeln!(o, "\nChanged inputs: {}.", list.join(", "));
    }
    for (what, list) in [
        ("New cases (not in the baseline)", &r.new_cases),
        ("Removed cases", &r.removed_cases),
    ] {
        if !list.is_empty() {
            let names: Vec<String> = list
                .iter()
                .take(MARKDOWN_ROWS)
                .map(|n| format!("`{}`", md(n)))
                .collect();
            let more = list.len().saturating_sub(MARKDOWN_ROWS);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            let _ = writeln!(o, "\n{what}: {}{tail}.", names.join(", "));
        }
    }
    if !r.rows.is_empty() {
        o.push_str("\n| case | metric | old | new | change | tolerance | |\n");
        o.push_str("|---|---|--:|--:|--:|---|---|\n");
        let mut rows: Vec<&Row> = r.rows.iter().filter(|x| x.outside).collect();
        rows.extend(r.rows.iter().filter(|x| !x.outside));
        for row in rows.iter().take(MARKDOWN_ROWS) {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} | {} | {} | {} |",
                md(&row.case),
                md(&row.metric),
                md(&cell(&row.old, row.unit)),
                md(&cell(&row.new, row.unit)),
                change(row),
                md(&tolerance(row.tolerance, row.unit)),
                if row.outside { "**outside**" } else { "within" }
            );
        }
        if rows.len() > MARKDOWN_ROWS {
            let _ = writeln!(
                o,
                "\n{} more rows not shown; `llmforge snapshot check` lists them all.",
                rows.len() - MARKDOWN_ROWS
            );
        }
    }
    o
}

/// The report as JSON in the [`json_document`] envelope; each row also names the engine and
/// the resolved precision of its case (from `current`).
pub fn report_json(r: &Report, current: &Snapshot, update: bool) -> Result<String, TraceError> {
    #[derive(Serialize)]
    struct JsonRow<'a> {
        #[serde(flatten)]
        row: &'a Row,
        engine: Option<&'a str>,
        precision: Option<BTreeMap<&'static str, &'a str>>,
    }
    // The report's fields, with its rows annotated.
    #[derive(Serialize)]
    struct Head<'a> {
        baseline_version: &'a str,
        version: &'a str,
        compared: usize,
        moved: usize,
        changed_inputs: &'a [crate::snapshot::InputChange],
        new_cases: &'a [String],
        removed_cases: &'a [String],
    }
    let rows: Vec<JsonRow> = r
        .rows
        .iter()
        .map(|row| {
            let rec = current.cases.get(&row.case);
            JsonRow {
                row,
                engine: rec.map(|c| c.engine.as_str()),
                precision: rec.map(|c| {
                    BTreeMap::from([
                        ("weights", c.precision.weights.as_str()),
                        ("activations", c.precision.activations.as_str()),
                        ("kv_cache", c.precision.kv_cache.as_str()),
                    ])
                }),
            }
        })
        .collect();
    #[derive(Serialize)]
    struct Doc<'a> {
        passes: bool,
        outside: usize,
        #[serde(flatten)]
        head: Head<'a>,
        rows: Vec<JsonRow<'a>>,
    }
    let doc = Doc {
        passes: r.passes(update),
        outside: r.outside(),
        head: Head {
            baseline_version: &r.baseline_version,
            version: &r.version,
            compared: r.compared,
            moved: r.moved,
            changed_inputs: &r.changed_inputs,
            new_cases: &r.new_cases,
            removed_cases: &r.removed_cases,
        },
        rows,
    };
    let engines: std::collections::BTreeSet<&str> =
        current.cases.values().map(|c| c.engine.as_str()).collect();
    let meta = JsonMeta {
        engine: Some(match engines.len() {
            1 => engines.iter().next().map_or_else(String::new, |e| e.to_string()),
            _ => "per case".to_string(),
        }),
        precision: Some(PrecisionMeta::PerRow),
    };
    json_document(&meta, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_plain_only_when_unambiguous() {
        assert_eq!(
            scalar("gpt2/gemmini/p256-g256-b1/sim"),
            "gpt2/gemmini/p256-g256-b1/sim"
        );
        assert_eq!(scalar("sha256:ab12"), "sha256:ab12");
        for quoted in [
            "0.1.0",
            "true",
            "No",
            "8 B/cycle",
            "a: b",
            "x#y",
            "",
            "-1",
            "a:",
            "é",
        ] {
            assert!(scalar(quoted).starts_with('"'), "{quoted}");
        }
    }

    #[test]
    fn numbers_are_shortest_and_exact() {
        assert_eq!(number(0.1764), "0.1764");
        assert_eq!(number(71_450_000_000.0), "71450000000");
        assert_eq!(number(2.345e-7), "2.345e-7");
        assert_eq!(number(1e20), "1e20");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(f64::INFINITY), ".inf");
        assert_eq!(value(0.1764, "s"), "176.4 ms");
        assert_eq!(value(71_450_000_000.0, "B"), "71.45 GB");
        assert_eq!(value(0.2512, ""), "25.12%");
    }
}
