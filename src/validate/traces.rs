//! The measured-trace CSV format (documented in `traces/README.md`): one published measurement
//! per row, in the column layout of `traces/public-llm-inference.csv`.
//!
//! Reading checks the header (every required column present, in any order; extra columns are
//! kept out of the way) and every numeric field; every problem of the file is reported at
//! once, each with its line and column. A value that is well-formed but cannot be predicted
//! (a batch written as text, an unknown metric) is *not* an error here: the mapping step
//! reports such rows as unmappable, with their reason.

use crate::yaml::{DescError, DescErrors, Diagnostics, Loc, SourceFile};
use serde::Serialize;
use std::path::Path;

/// The columns of the format, in the order of the public file.
pub const COLUMNS: [&str; 18] = [
    "hardware",
    "hw_bw_GBps",
    "hw_peak_tflops",
    "hw_peak_dtype",
    "hw_mem_GB",
    "software",
    "model",
    "params_B",
    "weights",
    "bits_per_weight",
    "batch",
    "prompt_len",
    "gen_len",
    "metric",
    "value",
    "unit",
    "source",
    "note",
];

/// Columns a row cannot be predicted without; the others may be absent from the header.
const REQUIRED: [&str; 11] = [
    "hardware",
    "software",
    "model",
    "weights",
    "batch",
    "prompt_len",
    "gen_len",
    "metric",
    "value",
    "unit",
    "source",
];

/// The batch column: a number, or text a source wrote instead (`max (offline; ...)`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Batch {
    Fixed(u64),
    Text(String),
}

/// One measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceRow {
    /// 1-based line of the row in its file (the header is line 1).
    pub line: u64,
    pub hardware: String,
    pub hw_bw_gbps: Option<f64>,
    pub hw_peak_tflops: Option<f64>,
    pub hw_peak_dtype: String,
    pub hw_mem_gb: Option<f64>,
    pub software: String,
    pub model: String,
    pub params_b: Option<f64>,
    pub weights: String,
    pub bits_per_weight: Option<f64>,
    pub batch: Batch,
    pub prompt_len: Option<u64>,
    pub gen_len: Option<u64>,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    /// Where the number was published (provenance; kept with every result).
    pub source: String,
    pub note: String,
}

/// A parsed trace file.
#[derive(Clone, Debug)]
pub struct Traces {
    pub file: String,
    pub rows: Vec<TraceRow>,
}

/// Reads a trace file, streaming it: the text is never held whole (a CSV of any size takes
/// memory for its rows only), and each error shows its own record.
pub fn read(path: &Path) -> Result<Traces, DescErrors> {
    let name = path.display().to_string();
    let (file, _) = crate::input::open(path, "trace CSV", None)
        .map_err(|e| DescErrors::from(crate::yaml::DescError::io(&name, &e)))?;
    parse_reader(std::io::BufReader::new(file), &name)
}

/// The (line, column) of a byte offset in `text`, both 1-based, column in characters.
pub(crate) fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

pub(crate) fn loc_at(text: &str, offset: usize, len: usize) -> Loc {
    let (line, column) = line_col(text, offset);
    Loc {
        line,
        column,
        offset,
        len,
    }
}

/// The bytes a CSV reader has read and not yet passed: from the start of the record being
/// parsed to what the reader has buffered ahead. Errors take their record's text from it.
#[derive(Default)]
struct Kept {
    bytes: Vec<u8>,
    /// File offset of `bytes[0]`.
    base: u64,
}

impl Kept {
    /// Forgets everything before file offset `at`.
    fn discard_before(&mut self, at: u64) {
        let k = usize::try_from(at.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        self.bytes.drain(..k);
        self.base += k as u64;
    }

    /// The text of the line starting at file offset `at` (lossy UTF-8).
    fn line_from(&self, at: u64) -> String {
        let k = usize::try_from(at.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let rest = &self.bytes[k..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end])
            .trim_end_matches('\r')
            .to_string()
    }
}

/// A reader that keeps what it passes on (in [`Kept`]) and refuses a record longer than
/// [`crate::limits::MAX_LINE_BYTES`].
struct Tee<R> {
    inner: R,
    kept: std::rc::Rc<std::cell::RefCell<Kept>>,
}

impl<R: std::io::Read> std::io::Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut kept = self.kept.borrow_mut();
        if kept.bytes.len() > crate::limits::MAX_LINE_BYTES + (64 << 10) {
            return Err(std::io::Error::other(RECORD_TOO_LONG));
        }
        let n = self.inner.read(buf)?;
        kept.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

const RECORD_TOO_LONG: &str = "record too long";

/// Parses trace CSV text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Traces, DescErrors> {
    parse_reader(text.as_bytes(), file)
}

/// Parses trace CSV from a reader, record by record.
fn parse_reader<R: std::io::Read>(input: R, file: &str) -> Result<Traces, DescErrors> {
    let kept = std::rc::Rc::new(std::cell::RefCell::new(Kept::default()));
    let whole = SourceFile::new(file, "");
    let mut diags = Diagnostics::new(&whole);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(Tee {
            inner: input,
            kept: kept.clone(),
        });
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_error(file, &kept.borrow(), &e, &csv::Position::new()).into()),
    };
    let index = |name: &str| headers.iter().position(|h| h.trim() == name);
    let missing: Vec<&str> = REQUIRED.iter().copied().filter(|c| index(c).is_none()).collect();
    if !missing.is_empty() {
        let text = kept.borrow().line_from(0);
        let src = SourceFile::new(file, text.as_str());
        return Err(src
            .error(
                loc_at(&text, 0, text.len()),
                format!("the header lacks the column(s) {}", missing.join(", ")),
                "header",
                Some(format!(
                    "a trace file's header names these columns: {}",
                    COLUMNS.join(",")
                )),
            )
            .into());
    }
    let col: Vec<Option<usize>> = COLUMNS.iter().map(|c| index(c)).collect();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        // Where the next record starts: what is before it is not needed any more.
        let next = reader.position().clone();
        kept.borrow_mut().discard_before(next.byte());
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                diags.push(csv_error(file, &kept.borrow(), &e, &next));
                // A structural CSV error (unequal field count) leaves the reader usable.
                if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) && !diags.is_full() {
                    continue;
                }
                break;
            }
        }
        let pos = record.position().cloned().unwrap_or_else(csv::Position::new);
        let line = pos.line();
        // The record's text (its first line), for locating and showing errors.
        let raw = kept.borrow().line_from(pos.byte());
        let src = SourceFile::excerpt(
            file,
            raw.as_str(),
            usize::try_from(line).unwrap_or(1).saturating_sub(1),
        );
        let ranges = field_ranges(&raw, 0);
        // The field's text, and where it is in the record (computed only for errors).
        let field = |k: usize| -> (&str, (usize, usize)) {
            match col[k] {
                Some(i) => (
                    record.get(i).unwrap_or("").trim(),
                    ranges.get(i).map_or((0, 0), |&(a, b)| (a, b - a)),
                ),
                None => ("", (0, 0)),
            }
        };
        let at = |(offset, len): (usize, usize)| loc_at(&raw, offset, len);
        let text_of = |k: usize| field(k).0.to_string();
        let mut bad = false;
        let mut num = |k: usize, what: &str, diags: &mut Diagnostics| -> Option<f64> {
            let (s, loc) = field(k);
            if s.is_empty() {
                return None;
            }
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ => {
                    diags.push(src.error(
                        at(loc),
                        format!("`{}`: `{s}` is not a number", COLUMNS[k]),
                        "here",
                        Some(format!("expected {what}, or an empty field when unknown")),
                    ));
                    bad = true;
                    None
                }
            }
        };
        let hw_bw_gbps = num(1, "a bandwidth in GB/s", &mut diags);
        let hw_peak_tflops = num(2, "a peak in TFLOP/s", &mut diags);
        let hw_mem_gb = num(4, "a memory size in GB", &mut diags);
        let params_b = num(7, "billions of parameters", &mut diags);
        let bits_per_weight = num(9, "bits per weight (e.g. 4.89)", &mut diags);
        let mut count = |k: usize, diags: &mut Diagnostics| -> Option<u64> {
            let (s, loc) = field(k);
            if s.is_empty() {
                return None;
            }
            match s.parse::<u64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    diags.push(src.error(
                        at(loc),
                        format!("`{}`: `{s}` is not a token count", COLUMNS[k]),
                        "here",
                        Some("expected a non-negative integer, or an empty field when unknown".into()),
                    ));
                    bad = true;
                    None
                }
            }
        };
        let prompt_len = count(11, &mut diags);
        let gen_len = count(12, &mut diags);
        let (batch_text, _) = field(10);
        let batch = match batch_text.parse::<u64>() {
            Ok(b) => Batch::Fixed(b),
            Err(_) => Batch::Text(batch_text.to_string()),
        };
        let (value_text, value_loc) = field(14);
        let value = match value_text.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                diags.push(src.error(
                    at(value_loc),
                    format!("`value`: `{value_text}` is not a number"),
                    "here",
                    Some("every row needs the measured value as a finite number".into()),
                ));
                None
            }
        };
        let (Some(value), false) = (value, bad) else {
            continue;
        };
        rows.push(TraceRow {
            line,
            hardware: text_of(0),
            hw_bw_gbps,
            hw_peak_tflops,
            hw_peak_dtype: text_of(3),
            hw_mem_gb,
            software: text_of(5),
            model: text_of(6),
            params_b,
            weights: text_of(8),
            bits_per_weight,
            batch,
            prompt_len,
            gen_len,
            metric: text_of(13),
            value,
            unit: text_of(15),
            source: text_of(16),
            note: text_of(17),
        });
    }
    if rows.is_empty() && diags.is_empty() {
        let text = kept.borrow().line_from(0);
        let src = SourceFile::new(file, text.as_str());
        diags.push(src.error(
            loc_at(&text, 0, 0),
            "the trace file has a header but no rows",
            "",
            None,
        ));
    }
    diags.finish(Traces {
        file: file.to_string(),
        rows,
    })
}

/// Raw byte ranges of the fields of the record starting at `rec_start` (quotes included), by
/// scanning the text as CSV does: a field that starts with `"` runs to its closing quote.
pub(crate) fn field_ranges(text: &str, rec_start: usize) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut k = rec_start;
    let mut start = k;
    let mut in_quotes = false;
    let mut at_start = true;
    while k < bytes.len() {
        let b = bytes[k];
        if at_start && b == b'"' {
            in_quotes = true;
        } else if in_quotes {
            if b == b'"' {
                if bytes.get(k + 1) == Some(&b'"') {
                    k += 1;
                } else {
                    in_quotes = false;
                }
            }
        } else if b == b',' {
            out.push((start, k));
            start = k + 1;
            at_start = true;
            k += 1;
            continue;
        } else if b == b'\n' || b == b'\r' {
            break;
        }
        at_start = false;
        k += 1;
    }
    out.push((start, k));
    out
}

/// An error of the CSV reader, at its position or else at `next` (where the record being
/// read started).
fn csv_error(file: &str, kept: &Kept, e: &csv::Error, next: &csv::Position) -> DescError {
    let pos = e.position().unwrap_or(next);
    let (byte, line) = (pos.byte(), pos.line().max(1));
    let text = kept.line_from(byte);
    let src = SourceFile::excerpt(
        file,
        text.as_str(),
        usize::try_from(line).unwrap_or(1).saturating_sub(1),
    );
    let loc = loc_at(&text, 0, 0);
    let (message, help) = csv_error_message(e);
    src.error(loc, message, "here", help)
}

/// An error of the CSV reader over the whole text `text` of `src`, at its position.
pub(crate) fn csv_error_in(src: &SourceFile, text: &str, e: &csv::Error) -> DescError {
    let offset = e
        .position()
        .and_then(|p| usize::try_from(p.byte()).ok())
        .unwrap_or(0);
    let loc = loc_at(text, offset, 0);
    let (message, help) = csv_error_message(e);
    src.error(loc, message, "here", help)
}

/// What went wrong, and how to fix it, for an error of the CSV reader.
fn csv_error_message(e: &csv::Error) -> (String, Option<String>) {
    let (message, help) = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => (
            format!("this row has {len} fields, the header {expected_len}"),
            Some("quote fields that contain commas: \"a, b\"".to_string()),
        ),
        csv::ErrorKind::Utf8 { .. } => ("the file is not valid UTF-8".to_string(), None),
        csv::ErrorKind::Io(io) if io.to_string() == RECORD_TOO_LONG => (
            format!(
                "a record is longer than {} bytes ({})",
                crate::limits::grouped(crate::limits::MAX_LINE_BYTES as u64),
                crate::limits::DOC
            ),
            None,
        ),
        csv::ErrorKind::Io(io) => (format!("cannot read the file: {io}"), None),
        _ => (format!("malformed CSV: {e}"), None),
    };
    (message, help)
}
