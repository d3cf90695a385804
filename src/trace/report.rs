//! `report.html`: one self-contained page for a search or sweep output directory — its plots
//! (inline SVG), a sortable table of the front (search) or frontier (sweep) with units, each
//! design's architecture on hover (a summary) and on click (its model YAML, embedded), and a
//! relative link to the model file. No network, no CDN: the CSS and script are inline, so
//! the page works from `file://`. When its script has run, `<body data-ready="1">`; a script
//! error sets `data-errors` on the body and shows it at the top of the page.
//!
//! The directory's files are the input ([`Report::from_dir`]): a search directory has
//! `pareto.csv` (+ `pareto.svg`, `history.csv`, `models/pareto-<rank>.yaml`); a sweep
//! directory has `frontier.csv` (+ `frontier.svg`, `region.svg`, `summary.md`,
//! `models/frontier-<index>.yaml`). Columns are recognised by name for their units
//! (`*_s` seconds, `*_j` joules, `*_bytes` bytes, objectives by metric name); other columns
//! are shown as written.

use super::TraceError;
use super::plot::metric_unit;
use std::fmt::Write as _;
use std::path::Path;

/// What kind of run a directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    Search,
    Sweep,
}

/// A column of the report's table.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportColumn {
    pub name: String,
    pub unit: String,
    /// Numeric columns sort by value and are right-aligned.
    pub numeric: bool,
}

/// A table cell: the text shown and, for numeric cells, the value it sorts by.
pub type Cell = (String, Option<f64>);

/// One design: its cells (text as shown, and a sort key for numeric cells), a one-line
/// architecture summary, the model YAML (when the directory has it) and its relative path.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRow {
    pub cells: Vec<Cell>,
    pub summary: String,
    pub model_yaml: Option<String>,
    pub model_path: Option<String>,
}

impl ReportRow {
    /// A row whose model file is `path` under `dir`, embedded when it exists.
    fn new(dir: &Path, path: String, cells: Vec<Cell>, summary: String) -> Result<ReportRow, TraceError> {
        let yaml = read_optional(&dir.join(&path))?;
        Ok(ReportRow {
            cells,
            summary,
            model_path: yaml.is_some().then_some(path),
            model_yaml: yaml,
        })
    }
}

/// The report's content.
#[derive(Clone, Debug)]
pub struct Report {
    pub kind: RunKind,
    pub title: String,
    /// Lines of context (workload, counts), shown under the title.
    pub facts: Vec<String>,
    /// (caption, SVG text).
    pub plots: Vec<(String, String)>,
    pub columns: Vec<ReportColumn>,
    pub rows: Vec<ReportRow>,
    /// A longer text shown verbatim (the sweep's summary.md).
    pub notes: Option<String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TraceError + '_ {
    move |source| TraceError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), TraceError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let bad = |e: csv::Error| TraceError::Report(format!("{}: {e}", path.display()));
    let header: Vec<String> = r.headers().map_err(bad)?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for rec in r.records() {
        rows.push(rec.map_err(bad)?.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

fn read_optional(path: &Path) -> Result<Option<String>, TraceError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// How a column is shown: display name, unit, scale from the file's unit, numeric.
fn column_format(name: &str, objective: bool, values: &[String]) -> (String, String, f64, bool) {
    let nums: Vec<f64> = values.iter().filter_map(|v| v.parse::<f64>().ok()).collect();
    let numeric = !values.is_empty() && nums.len() == values.len();
    let max = nums
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let metric = if objective {
        Some(name)
    } else if let Some(base) = name.strip_suffix("_s") {
        Some(match base {
            "ttft" | "tpot" | "latency" => base,
            _ => "latency",
        })
    } else if name.ends_with("_j") {
        Some("energy")
    } else if name == "weight_bytes" {
        Some("weights")
    } else if name == "kv_bytes" {
        Some("kv")
    } else if name == "params" || name == "active_params" {
        Some("params")
    } else if name == "loss_mu" || name == "loss_sigma" || name == "loss" {
        Some("loss")
    } else {
        None
    };
    match metric {
        Some(m) if numeric => {
            let (display, unit, scale) = metric_unit(m, max);
            let display = match name {
                "loss_mu" => "loss μ",
                "loss_sigma" => "loss σ",
                "active_params" => "active parameters",
                "weight_bytes" => "weight memory",
                "kv_bytes" => "KV memory",
                _ => display,
            };
            (display.to_string(), unit.to_string(), scale, true)
        }
        _ => (name.replace('_', " "), String::new(), 1.0, numeric),
    }
}

fn show(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e7).contains(&a) {
        return format!("{v:.3e}");
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 4) as usize;
    format!("{v:.digits$}")
}

impl Report {
    /// Reads a search or sweep output directory.
    pub fn from_dir(dir: &Path) -> Result<Report, TraceError> {
        if dir.join("pareto.csv").is_file() {
            Self::search(dir)
        } else if dir.join("frontier.csv").is_file() {
            Self::sweep(dir)
        } else {
            Err(TraceError::Report(format!(
                "{}: it holds neither a search (pareto.csv) nor a sweep (frontier.csv)",
                dir.display()
            )))
        }
    }

    fn table(
        header: &[String],
        rows: &[Vec<String>],
        objectives: std::ops::Range<usize>,
        skip: &[&str],
    ) -> (Vec<ReportColumn>, Vec<Vec<Cell>>) {
        let mut columns = Vec::new();
        let mut formats = Vec::new();
        for (k, name) in header.iter().enumerate() {
            if skip.contains(&name.as_str()) {
                continue;
            }
            let values: Vec<String> = rows
                .iter()
                .map(|r| r.get(k).cloned().unwrap_or_default())
                .collect();
            let (display, unit, scale, numeric) = column_format(name, objectives.contains(&k), &values);
            columns.push(ReportColumn {
                name: display,
                unit,
                numeric,
            });
            formats.push((k, scale, numeric));
        }
        let cells = rows
            .iter()
            .map(|r| {
                formats
                    .iter()
                    .map(|&(k, scale, numeric)| {
                        let raw = r.get(k).cloned().unwrap_or_default();
                        match raw.parse::<f64>() {
                            Ok(v) if numeric => {
                                let shown = v * scale;
                                let text = if raw.contains('.') || raw.contains('e') || scale != 1.0 {
                                    show(shown)
                                } else {
                                    raw.clone()
                                };
                                (text, Some(shown))
                            }
                            _ => (raw, None),
                        }
                    })
                    .collect()
            })
            .collect();
        (columns, cells)
    }

    fn search(dir: &Path) -> Result<Report, TraceError> {
        let (header, rows) = read_csv(&dir.join("pareto.csv"))?;
        let col = |n: &str| header.iter().position(|h| h == n);
        let first_obj = col("rank").map_or(0, |k| k + 1);
        let end_obj = col("feasible").unwrap_or(first_obj);
        let (columns, cells) = Self::table(&header, &rows, first_obj..end_obj, &["layer_genes"]);
        let mut out = Vec::new();
        for (r, cells) in rows.iter().zip(cells) {
            let get = |n: &str| col(n).and_then(|k| r.get(k)).cloned().unwrap_or_default();
            let summary = format!(
                "d_model {}, {} layers ({} with attention), {} weights; layers: {}",
                get("d_model"),
                get("layers"),
                get("attention_layers"),
                get("weights"),
                get("layer_genes")
            );
            out.push(ReportRow::new(
                dir,
                format!("models/pareto-{}.yaml", get("rank")),
                cells,
                summary,
            )?);
        }
        let mut facts = vec![format!(
            "{} designs on the Pareto front; objectives: {} (all minimised).",
            rows.len(),
            header[first_obj..end_obj].join(", ")
        )];
        if let Some(h) = read_optional(&dir.join("history.csv"))? {
            if let Some(last) = h.lines().skip(1).filter(|l| !l.trim().is_empty()).last() {
                let f: Vec<&str> = last.split(',').collect();
                if f.len() >= 5 {
                    let hv = f[4]
                        .parse::<f64>()
                        .map_or_else(|_| f[4].to_string(), |v| format!("{v:.4e}"));
                    facts.push(format!(
                        "{} generations, {} evaluations ({} cache hits); hypervolume {hv} (objectives in base units: nats, s, J).",
                        f[0], f[1], f[2]
                    ));
                }
            }
        }
        let mut plots = Vec::new();
        if let Some(svg) = read_optional(&dir.join("pareto.svg"))? {
            plots.push((
                "Every pair of objectives: all evaluated candidates faint, the front bold (pareto.svg)."
                    .to_string(),
                svg,
            ));
        }
        Ok(Report {
            kind: RunKind::Search,
            title: format!("Search report: {}", dir_name(dir)),
            facts,
            plots,
            columns,
            rows: out,
            notes: None,
        })
    }

    fn sweep(dir: &Path) -> Result<Report, TraceError> {
        let (header, rows) = read_csv(&dir.join("frontier.csv"))?;
        let col = |n: &str| header.iter().position(|h| h == n);
        let (columns, cells) = Self::table(&header, &rows, 0..0, &[]);
        let mut out = Vec::new();
        for (r, cells) in rows.iter().zip(cells) {
            let get = |n: &str| col(n).and_then(|k| r.get(k)).cloned().unwrap_or_default();
            let index = get("index");
            let experts = get("experts");
            let moe = if experts.parse::<u64>().is_ok_and(|e| e > 1) {
                format!(", {experts} experts ({} active)", get("active_experts"))
            } else {
                String::new()
            };
            let summary = format!(
                "grid point {index}: depth {}, width {}, {} heads / {} KV heads of {}, FFN {}{moe}, {} weights",
                get("depth"),
                get("width"),
                get("heads"),
                get("kv_heads"),
                get("head_dim"),
                get("ffn"),
                get("weights")
            );
            out.push(ReportRow::new(
                dir,
                format!("models/frontier-{index}.yaml"),
                cells,
                summary,
            )?);
        }
        let mut plots = Vec::new();
        for (file, caption) in [
            (
                "frontier.svg",
                "Loss against latency: sampled candidates and the frontier (frontier.svg).",
            ),
            (
                "region.svg",
                "Feasible region: the best loss meeting every budget per pair of grid values (region.svg).",
            ),
        ] {
            if let Some(svg) = read_optional(&dir.join(file))? {
                plots.push((caption.to_string(), svg));
            }
        }
        Ok(Report {
            kind: RunKind::Sweep,
            title: format!("Sweep report: {}", dir_name(dir)),
            facts: vec![format!("{} designs on the loss frontier.", rows.len())],
            plots,
            columns,
            rows: out,
            notes: read_optional(&dir.join("summary.md"))?,
        })
    }

    /// The page.
    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<div id=\"errors\" hidden></div>\n<h1>{}</h1>\n",
            esc(&self.title),
            esc(&self.title)
        );
        for f in &self.facts {
            let _ = writeln!(h, "<p class=\"fact\">{}</p>", esc(f));
        }
        let what = match self.kind {
            RunKind::Search => "Pareto front",
            RunKind::Sweep => "Loss frontier",
        };
        let _ = writeln!(
            h,
            "<h2>{what}</h2>\n<p class=\"hint\">Click a column to sort; hover a design for its architecture, click it for the model description (or open <code>report.html#design=N</code>).</p>"
        );
        h.push_str("<div class=\"scroll\">\n<table id=\"designs\">\n<thead><tr>");
        for (k, c) in self.columns.iter().enumerate() {
            let unit = if c.unit.is_empty() {
                String::new()
            } else {
                format!("<span class=\"unit\">{}</span>", esc(&c.unit))
            };
            let _ = write!(
                h,
                "<th data-col=\"{k}\" data-type=\"{}\" class=\"{}\" title=\"sort by {}\">{}{unit}</th>",
                if c.numeric { "num" } else { "text" },
                if c.numeric { "num" } else { "" },
                esc(&c.name),
                esc(&c.name)
            );
        }
        h.push_str("<th>model</th></tr></thead>\n");
        let span = self.columns.len() + 1;
        for (i, r) in self.rows.iter().enumerate() {
            let _ = write!(
                h,
                "<tbody class=\"design\" id=\"design-{i}\" data-row=\"{i}\"><tr class=\"design\" title=\"{}\">",
                esc(&r.summary)
            );
            for ((text, key), c) in r.cells.iter().zip(&self.columns) {
                match key {
                    Some(v) if c.numeric => {
                        let _ = write!(h, "<td class=\"num\" data-v=\"{v:e}\">{}</td>", esc(text));
                    }
                    _ => {
                        let _ = write!(h, "<td data-v=\"{}\">{}</td>", esc(text), esc(text));
                    }
                }
            }
            match &r.model_path {
                Some(p) => {
                    let _ = write!(h, "<td class=\"link\"><a href=\"{}\">{}</a></td>", esc(p), esc(p));
                }
                None => h.push_str("<td>-</td>"),
            }
            h.push_str("</tr>");
            let _ = write!(
                h,
                "<tr class=\"arch\" hidden><td colspan=\"{span}\"><p>{}</p>",
                esc(&r.summary)
            );
            if let Some(y) = &r.model_yaml {
                let _ = write!(h, "<pre>{}</pre>", esc(y));
            }
            h.push_str("</td></tr></tbody>\n");
        }
        h.push_str("</table>\n</div>\n");
        for (caption, svg) in &self.plots {
            let _ = writeln!(
                h,
                "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>",
                inline_svg(svg),
                esc(caption)
            );
        }
        if let Some(n) = &self.notes {
            let _ = writeln!(h, "<h2>Summary</h2>\n<pre class=\"notes\">{}</pre>", esc(n));
        }
        let _ = write!(
            h,
            "<footer>llmforge {} · written by <code>llmforge report</code></footer>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n",
            crate::provenance::VERSION
        );
        h
    }

    /// Writes `<dir>/report.html` (atomically) and returns its path.
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf, TraceError> {
        let path = dir.join("report.html");
        crate::output::write_atomic(&path, self.html().as_bytes())?;
        Ok(path)
    }
}

fn dir_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

/// An SVG file's text as an element inside HTML (without an XML declaration or doctype).
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(k) => svg[k..].trim_end(),
        None => svg.trim_end(),
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 24px auto; max-width: 1400px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
.fact, .hint { color: #444; margin: 4px 0; } .hint { font-size: 13px; }
#errors { background: #fdd; border: 1px solid #c00; padding: 8px; white-space: pre-wrap; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; margin-top: 8px; }
th, td { padding: 3px 6px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { background: #f3f3f3; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
th .unit { display: block; font-weight: normal; color: #666; font-size: 11px; }
th.asc::after { content: " ▲"; } th.desc::after { content: " ▼"; }
td.link { white-space: nowrap; }
tr.design { cursor: pointer; } tr.design:hover { background: #eef5ff; }
tbody.open tr.design { background: #e3eeff; }
tr.arch td { background: #fafafa; } tr.arch pre { margin: 4px 0; font-size: 12px; max-height: 360px; overflow: auto; }
figure { margin: 24px 0; } figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 13px; }
pre.notes { background: #fafafa; padding: 8px; white-space: pre-wrap; font-size: 12px; }
footer { margin-top: 32px; color: #888; font-size: 12px; }
"#;

const SCRIPT: &str = r##"(function () {
  "use strict";
  function fail(msg) {
    var box = document.getElementById("errors");
    document.body.dataset.errors = (document.body.dataset.errors || "") + msg + "\n";
    if (box) { box.hidden = false; box.textContent = document.body.dataset.errors; }
  }
  window.onerror = function (msg, src, line) { fail(String(msg) + " (line " + line + ")"); };
  var table = document.getElementById("designs");
  var bodies = Array.prototype.slice.call(table.tBodies);
  function key(body, col, numeric) {
    var cell = body.rows[0].cells[col];
    var v = cell ? cell.getAttribute("data-v") : "";
    if (numeric) { var x = parseFloat(v); return isNaN(x) ? Infinity : x; }
    return v || "";
  }
  function sortBy(th, dir) {
    var col = Number(th.getAttribute("data-col"));
    var numeric = th.getAttribute("data-type") === "num";
    bodies.sort(function (a, b) {
      var x = key(a, col, numeric), y = key(b, col, numeric);
      var c = numeric ? (x < y ? -1 : x > y ? 1 : 0) : String(x).localeCompare(String(y));
      if (c === 0) { c = Number(a.getAttribute("data-row")) - Number(b.getAttribute("data-row")); }
      return dir * c;
    });
    bodies.forEach(function (b) { table.appendChild(b); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.classList.remove("asc", "desc"); });
    th.classList.add(dir > 0 ? "asc" : "desc");
    table.dataset.sortedBy = th.textContent;
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    if (!th.hasAttribute("data-col")) { return; }
    th.addEventListener("click", function () { sortBy(th, th.classList.contains("asc") ? -1 : 1); });
  });
  function toggle(b, open) {
    var arch = b.rows[1];
    arch.hidden = !open;
    b.classList.toggle("open", open);
  }
  bodies.forEach(function (b) {
    b.rows[0].addEventListener("click", function (e) {
      if (e.target && e.target.tagName === "A") { return; }
      toggle(b, b.rows[1].hidden);
    });
  });
  // report.html#design=N opens design N (no element has that id, so nothing scrolls)
  var m = /^#design=(\d+)$/.exec(location.hash);
  if (m) {
    bodies.forEach(function (b) { if (b.getAttribute("data-row") === m[1]) { toggle(b, true); } });
  }
  var first = table.tHead.rows[0].cells[0];
  if (first && first.hasAttribute("data-col")) { sortBy(first, 1); }
  table.dataset.rows = String(bodies.length);
  document.body.dataset.ready = "1";
})();
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_get_units_from_their_names() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (name, unit, scale, numeric) = column_format("tpot_s", false, &v(&["0.0031", "0.012"]));
        assert_eq!(
            (name.as_str(), unit.as_str(), scale, numeric),
            ("TPOT", "ms", 1e3, true)
        );
        let (_, unit, _, _) = column_format("energy", true, &v(&["2e-4"]));
        assert_eq!(unit, "µJ");
        let (name, unit, _, numeric) = column_format("weights", false, &v(&["int8"]));
        assert_eq!((name.as_str(), unit.as_str(), numeric), ("weights", "", false));
        assert_eq!(esc("tpot<=20ms & \"x\""), "tpot&lt;=20ms &amp; &quot;x&quot;");
    }
}
