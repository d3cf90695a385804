//! The one place that reads YAML (serde-saphyr), turning its errors into located diagnostics.
//!
//! Every description file (substrates, models, search spaces) goes through here:
//!
//! * [`from_str`] / [`SourceFile::parse`] deserialize a typed value; a YAML or schema error
//!   becomes a [`DescError`]: a [`miette::Diagnostic`] with the file as source code, a label
//!   at the offending node, the 1-based line and column, and what was expected.
//! * [`Located<T>`] keeps the position ([`Loc`]) of any value, so that validation can report
//!   an error AT the value: [`SourceFile::error`].
//! * [`Expression`] is a field written in the [`crate::dsl`] language, from a YAML string
//!   (`"204.8 GB/s"`) or number (`16`). It keeps its position and its parse result; its
//!   `eval*` methods return errors re-based onto the file, pointing at the offending
//!   character inside the string (line and column in the file).
//! * [`Diagnostics`] collects every error of a validation pass (`(T, Vec<Diagnostic>)` style):
//!   [`Diagnostics::check`] turns a `Result` into an `Option` and records the error;
//!   [`Diagnostics::finish`] gives the value or all errors at once ([`DescErrors`]).
//!
//! ```
//! use llmforge::units::{Bytes, Hertz};
//! use llmforge::yaml::{Diagnostics, Expression, SourceFile};
//! use llmforge::dsl;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct RawCore {
//!     clock: Expression,
//!     sram: Expression,
//! }
//!
//! let file = SourceFile::new("core.yaml", "clock: 1.5 GHz\nsram: \"512 XB\"\n");
//! let raw: RawCore = file.parse().unwrap();
//! let mut diags = Diagnostics::new(&file);
//! let clock: Option<Hertz> = diags.check(raw.clock.eval_as(&file, &dsl::no_names));
//! let sram: Option<Bytes> = diags.check(raw.sram.eval_as(&file, &dsl::no_names));
//! assert_eq!(clock, Some(Hertz::ghz(1.5)));
//! assert_eq!(sram, None);
//! let errors = diags.finish(()).unwrap_err();
//! let e = &errors.errors()[0];
//! assert_eq!((e.line(), e.column()), (2, 12)); // at `XB` inside the quotes
//! assert_eq!(e.to_string(), "core.yaml:2:12: unknown unit `XB`");
//! ```
//!
//! Location caveat (from serde-saphyr): inside `#[serde(flatten)]` and untagged or
//! internally tagged enums positions are lost ([`Loc::UNKNOWN`]); errors then name the file
//! but carry no line. Externally or adjacently tagged enums keep them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, MietteError, NamedSource, SourceCode, SourceSpan, SpanContents};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_saphyr::MessageFormatter;

use crate::dsl::{self, DslError, DslErrorKind, FromQuantity, Quantity, Value};
use crate::limits;

/// Where a YAML value is written: 1-based line and column (in characters) and the byte range
/// of the node in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    /// 1-based; 0 when unknown.
    pub line: u32,
    /// 1-based, in characters; 0 when unknown.
    pub column: u32,
    /// Byte offset of the node (for quoted scalars, of the opening quote).
    pub offset: usize,
    /// Byte length of the node (quotes included).
    pub len: usize,
}

impl Loc {
    pub const UNKNOWN: Loc = Loc {
        line: 0,
        column: 0,
        offset: 0,
        len: 0,
    };

    pub fn is_known(self) -> bool {
        self.line != 0
    }

    fn from_saphyr(loc: serde_saphyr::Location) -> Loc {
        if loc == serde_saphyr::Location::UNKNOWN {
            return Loc::UNKNOWN;
        }
        let span = loc.span();
        // Byte offsets are always present for string input, which is all this module reads.
        let to_usize = |v: Option<u64>| v.and_then(|v| usize::try_from(v).ok());
        let (Some(offset), Some(len)) = (to_usize(span.byte_offset()), to_usize(span.byte_len())) else {
            return Loc::UNKNOWN;
        };
        Loc {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
            offset,
            len,
        }
    }

    fn span(self) -> SourceSpan {
        (self.offset, self.len).into()
    }
}

/// Byte offset of a 1-based line and (character) column of `text`, clamped to the text.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let in_line: usize = l.chars().take(column.saturating_sub(1)).map(char::len_utf8).sum();
            return offset + in_line;
        }
        offset += l.len();
    }
    text.len()
}

/// A value with the position it was written at. Deserializes like `T`.
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    pub value: T,
    /// Where the value is written (for an alias `*a`, the anchored definition).
    pub loc: Loc,
    /// Where it is used, when that differs (the alias `*a` or merge `<<` site).
    pub used_at: Option<Loc>,
}

impl<T> Located<T> {
    /// A value built in code, with no position.
    pub fn unlocated(value: T) -> Located<T> {
        Located {
            value,
            loc: Loc::UNKNOWN,
            used_at: None,
        }
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        let loc = Loc::from_saphyr(spanned.defined);
        let referenced = Loc::from_saphyr(spanned.referenced);
        Ok(Located {
            value: spanned.value,
            loc,
            used_at: (referenced != loc).then_some(referenced),
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

/// A YAML mapping as written: its entries in file order, each key with its position (for
/// errors about a key, e.g. an unknown field path), values deserialized as `V`.
#[derive(Clone, Debug)]
pub struct Entries<V>(pub Vec<(Located<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Located<String>, V>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

/// `&[(name, text)]` of description files shipped inside the binary: every `<name>.yaml` named,
/// read from `<dir>` under the crate root at compile time.
macro_rules! shipped {
    ($dir:literal, [$($name:literal),* $(,)?]) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir, "/", $name, ".yaml"))),)*]
    };
}
pub(crate) use shipped;

/// The description `spec` names: a file, when one exists at that path, else the entry of
/// `shipped` (written under `dir`) whose name matches ignoring case. Neither gives an error
/// that lists the shipped `kind`s.
pub fn shipped_or_file(
    spec: &str,
    shipped: &[(&str, &'static str)],
    dir: &str,
    kind: &str,
) -> Result<SourceFile, DescError> {
    let path = Path::new(spec);
    // Any existing path is read as the file (a directory or a device is refused, saying what
    // it is); a name that is no path is looked up among the shipped descriptions.
    let is_shipped = shipped.iter().any(|(n, _)| n.eq_ignore_ascii_case(spec));
    if path.is_file() || (crate::input::exists(spec) && !is_shipped) {
        return SourceFile::read_as(path, kind_static(kind));
    }
    match shipped_named(spec, shipped, dir) {
        Some(file) => Ok(file),
        None => {
            let names: Vec<&str> = shipped.iter().map(|(n, _)| *n).collect();
            Err(SourceFile::new(spec, "").error(
                Loc::UNKNOWN,
                format!("`{spec}` is neither a shipped {kind} nor a file"),
                "",
                Some(format!("shipped {kind}s: {}", names.join(", "))),
            ))
        }
    }
}

/// The entry of `shipped` (written under `dir`) whose name matches `name` ignoring case; no
/// file is looked at.
pub fn shipped_named(name: &str, shipped: &[(&str, &'static str)], dir: &str) -> Option<SourceFile> {
    shipped
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, src)| SourceFile::new(format!("{dir}/{n}.yaml"), *src))
}

/// A description file: its display name and its text, both shared (cheap to clone), and the
/// start of every line (built on the first error, so that locating many errors in a large
/// file stays cheap).
#[derive(Clone, Debug)]
pub struct SourceFile {
    name: Arc<str>,
    text: Arc<str>,
    line_starts: Arc<std::sync::OnceLock<Vec<usize>>>,
    /// Lines of the file before `text` (0 for a whole file; see [`SourceFile::excerpt`]).
    first_line: usize,
}

impl SourceFile {
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
            line_starts: Arc::default(),
            first_line: 0,
        }
    }

    /// A part of a file that is read as a stream (a CSV record): `text` starts at line
    /// `first_line + 1` of the file named `name`. Errors built on it carry the file's line
    /// and column and show the part.
    pub fn excerpt(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>, first_line: usize) -> SourceFile {
        SourceFile {
            first_line,
            ..SourceFile::new(name, text)
        }
    }

    /// Reads a description file (at most [`limits::MAX_DESCRIPTION_BYTES`]); the name shown in
    /// errors is the path as given.
    pub fn read(path: &Path) -> Result<SourceFile, DescError> {
        SourceFile::read_as(path, "description")
    }

    /// As [`SourceFile::read`]; `kind` names the file in errors ("`/tmp` is a directory, not a
    /// substrate file").
    pub fn read_as(path: &Path, kind: &'static str) -> Result<SourceFile, DescError> {
        let name = path.display().to_string();
        match crate::input::read_text(path, kind, limits::MAX_DESCRIPTION_BYTES) {
            Ok(text) => Ok(SourceFile::new(name, text)),
            Err(e) => Err(DescError::io(&name, &e)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Deserializes the whole file (after checking its line lengths).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, DescError> {
        self.check_lines()?;
        serde_saphyr::from_str::<T>(&self.text).map_err(|e| self.yaml_error(&e))
    }

    /// As [`SourceFile::parse`], for a file llmforge records itself whose size follows the run
    /// (a cost snapshot): serde-saphyr's budget of values raised to `nodes` (and of parser
    /// events to 4x that); nesting depth, aliases and anchors keep their limits.
    pub fn parse_recorded<T: DeserializeOwned>(&self, nodes: usize) -> Result<T, DescError> {
        self.check_lines()?;
        let mut budget = serde_saphyr::Budget::default();
        budget.max_nodes = budget.max_nodes.max(nodes);
        budget.max_events = budget.max_events.max(nodes.saturating_mul(4));
        let mut options = serde_saphyr::Options::default();
        options.budget = Some(budget);
        serde_saphyr::from_str_with_options::<T>(&self.text, options).map_err(|e| self.yaml_error(&e))
    }

    /// Refuses a line longer than [`limits::MAX_LINE_BYTES`], at its first byte past the limit.
    pub fn check_lines(&self) -> Result<(), DescError> {
        let mut start = 0;
        for line in self.text.split_inclusive('\n') {
            if line.len() > limits::MAX_LINE_BYTES {
                let offset = floor_char_boundary(&self.text, start + limits::MAX_LINE_BYTES);
                let (l, _) = self.line_column(offset);
                return Err(self.error_at_offset(
                    offset,
                    format!(
                        "line {l} is {} bytes long; a line may have at most {}",
                        limits::grouped(line.len() as u64),
                        limits::grouped(limits::MAX_LINE_BYTES as u64)
                    ),
                    "the line goes on past here",
                    Some(format!("see {}", limits::DOC)),
                ));
            }
            start += line.len();
        }
        Ok(())
    }

    /// An error at a byte offset (one character wide).
    pub fn error_at_offset(
        &self,
        offset: usize,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> DescError {
        let offset = floor_char_boundary(&self.text, offset);
        let len = self.text[offset..].chars().next().map_or(0, char::len_utf8);
        self.build(
            DescErrorKind::Invalid,
            Some(SourceSpan::from((offset, len))),
            message.into(),
            label.into(),
            help,
        )
    }

    /// A collector for the errors of one validation pass over this file.
    pub fn diagnostics(&self) -> Diagnostics {
        Diagnostics::new(self)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset);
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(k, _)| k + 1))
                .collect()
        });
        let line = starts.partition_point(|&s| s <= offset).max(1);
        let line_start = starts[line - 1];
        (
            line + self.first_line,
            self.text[line_start..offset].chars().count() + 1,
        )
    }

    fn yaml_error(&self, e: &serde_saphyr::Error) -> DescError {
        let mut message = match self.own_message(e) {
            Some(m) => m,
            None => serde_saphyr::DefaultMessageFormatter
                .format_message(e)
                .into_owned(),
        };
        if message.contains("recursion limit exceeded") {
            message = "the YAML is too large to read: it nests sequences and mappings too deeply (more than a few hundred levels)".into();
        }
        // Drop the note addressed to programmers ("set DuplicateKeyPolicy in Options...").
        if let Some(k) = message.find(", set DuplicateKeyPolicy") {
            message.truncate(k);
        }
        let help = yaml_help(&message);
        let (span, label) = match e.location() {
            Some(l) if l != serde_saphyr::Location::UNKNOWN => {
                let loc = Loc::from_saphyr(l);
                if loc.is_known() {
                    (Some(loc.span()), "here")
                } else {
                    // Scanner errors carry a line and column but no byte offset.
                    let line = usize::try_from(l.line()).unwrap_or(usize::MAX);
                    let column = usize::try_from(l.column()).unwrap_or(usize::MAX);
                    let offset = offset_of(&self.text, line, column);
                    let len = self.text[offset..].chars().next().map_or(0, char::len_utf8);
                    (Some(SourceSpan::from((offset, len))), "here")
                }
            }
            // No position (e.g. an unclosed bracket): point at the end of the file.
            _ => {
                let trimmed = self.text.trim_end();
                let last = trimmed.chars().last().map_or(0, char::len_utf8);
                let span = (!trimmed.is_empty()).then(|| SourceSpan::from((trimmed.len() - last, last)));
                (span, "the file ends here")
            }
        };
        self.build(DescErrorKind::Yaml, span, message, label.into(), help)
    }

    /// Messages in words for the serde-saphyr errors whose default text is terse or shows Rust
    /// debug output: a scalar that is not the number a field needs ("invalid u64"), and a
    /// breached resource budget ("budget breached: Depth { depth: 65 }").
    fn own_message(&self, e: &serde_saphyr::Error) -> Option<String> {
        use serde_saphyr::Error as E;
        let mut e = e;
        while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = e {
            e = error;
        }
        match e {
            E::InvalidScalar { ty, location } => {
                let loc = Loc::from_saphyr(*location);
                let written = self
                    .text
                    .get(loc.offset..loc.offset + loc.len)
                    .filter(|_| loc.is_known());
                let found = written
                    .map(|t| {
                        format!(
                            ", found `{}`",
                            clipped(t.trim_matches(|c| c == '"' || c == '\''), 60)
                        )
                    })
                    .unwrap_or_default();
                // A number that does not fit the type, or no number at all (`576 B`).
                let is_number = written.is_some_and(|t| {
                    t.trim_matches(|c| c == '"' || c == '\'')
                        .trim()
                        .parse::<f64>()
                        .is_ok()
                });
                let (what, example) = match *ty {
                    "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
                        ("a plain count", "a whole number with no unit, such as 576")
                    }
                    "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => ("a whole number", "with no unit"),
                    "f32" | "f64" => ("a plain number", "with no unit, such as 0.25"),
                    "bool" => ("true or false", ""),
                    "char" => ("a single character", ""),
                    _ => return None,
                };
                let range = match *ty {
                    "u8" => "from 0 to 255",
                    "u16" => "from 0 to 65,535",
                    "u32" => "from 0 to 4,294,967,295",
                    "u64" | "usize" => "from 0 to 18,446,744,073,709,551,615",
                    _ => "",
                };
                // A number out of the type's range, or no number at all (`576 B`).
                let expected = if is_number && !range.is_empty() {
                    format!("{what} {range}")
                } else if example.is_empty() {
                    what.to_string()
                } else {
                    format!("{what}: {example}")
                };
                Some(format!("expected {expected}{found}"))
            }
            E::Budget { breach, .. } => Some(budget_message(breach)),
            _ => None,
        }
    }

    /// An error at a located value, e.g. a validation failure: `file.error(field.loc,
    /// "the array has 0 rows", "must be at least 1", None)`.
    pub fn error(
        &self,
        loc: Loc,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> DescError {
        self.build(
            DescErrorKind::Invalid,
            loc.is_known().then_some(loc.span()),
            message.into(),
            label.into(),
            help,
        )
    }

    fn build(
        &self,
        kind: DescErrorKind,
        span: Option<SourceSpan>,
        message: String,
        label: String,
        help: Option<String>,
    ) -> DescError {
        let (line, column) = span.map_or((0, 0), |s| self.line_column(s.offset()));
        let mut e = DescError::make(
            kind,
            self.name.clone(),
            None,
            (line, column),
            message,
            span.map(|s| (s, label)).into_iter().collect(),
            help,
        );
        let mut labels = std::mem::take(&mut e.0.labels);
        e.0.src = Some(Snippet::with_first_line(
            self.name.clone(),
            self.text.clone(),
            &mut labels,
            self.first_line,
        ));
        e.0.labels = labels;
        e
    }

    /// Re-bases an error from the expression `text`, written as the YAML scalar at `scalar`,
    /// onto this file. `verbatim` says whether `text` is the scalar as written (a string) or a
    /// re-formatted YAML number. Spans land on the offending characters when the scalar holds
    /// the text as is (plain or quoted without escapes); otherwise on the whole scalar.
    pub fn rebase_dsl_error(&self, err: &DslError, scalar: Loc, text: &str, verbatim: bool) -> DescError {
        let kind = DescErrorKind::Expression(err.kind().clone());
        let message = err.to_string();
        let help = err.help_text().map(str::to_string);
        if !scalar.is_known() {
            // No position: show the expression itself as the source.
            let labels = err
                .labels()
                .iter()
                .map(|(s, l)| (SourceSpan::from(*s), l.clone()))
                .collect();
            return DescError::make(
                kind,
                self.name.clone(),
                Some((Arc::from(format!("{} (expression)", self.name)), Arc::from(text))),
                (0, 0),
                message,
                labels,
                help,
            );
        }
        let raw = self
            .text
            .get(scalar.offset..scalar.offset + scalar.len)
            .unwrap_or("");
        let inner_start = if !verbatim {
            None
        } else if raw == text {
            Some(scalar.offset)
        } else if (raw.starts_with('"') || raw.starts_with('\'')) && raw.get(1..raw.len() - 1) == Some(text) {
            Some(scalar.offset + 1)
        } else {
            raw.find(text)
                .filter(|_| !text.is_empty())
                .map(|k| scalar.offset + k)
        };
        let labels: Vec<(SourceSpan, String)> = match inner_start {
            Some(base) => err
                .labels()
                .iter()
                .map(|(s, l)| (SourceSpan::from(s.shifted(base)), l.clone()))
                .collect(),
            None => {
                let label = err.labels().first().map_or_else(String::new, |(_, l)| l.clone());
                vec![(scalar.span(), label)]
            }
        };
        let (line, column) = labels
            .first()
            .map_or((0, 0), |(s, _)| self.line_column(s.offset()));
        DescError::make(
            kind,
            self.name.clone(),
            Some((self.name.clone(), self.text.clone())),
            (line, column),
            message,
            labels,
            help,
        )
    }
}

fn floor_char_boundary(s: &str, mut offset: usize) -> usize {
    offset = offset.min(s.len());
    while !s.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// `kind` as a `&'static str` for the few kinds [`shipped_or_file`] is called with.
fn kind_static(kind: &str) -> &'static str {
    match kind {
        "substrate" => "substrate",
        "search space" => "search space",
        "grid" => "grid",
        "model" => "model",
        _ => "description",
    }
}

/// A serde-saphyr resource budget breach in words.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let what = match breach {
        B::Events { events } => format!(
            "it has more than {} YAML events",
            limits::grouped(*events as u64 - 1)
        ),
        B::Aliases { aliases } => format!(
            "it uses more than {} aliases (`*name`)",
            limits::grouped(*aliases as u64 - 1)
        ),
        B::Anchors { anchors } => format!(
            "it defines more than {} anchors (`&name`)",
            limits::grouped(*anchors as u64 - 1)
        ),
        B::Depth { depth } => format!(
            "it nests sequences and mappings {depth} levels deep; at most {} are allowed",
            depth - 1
        ),
        B::Documents { documents } => format!(
            "it holds more than {} YAML documents",
            limits::grouped(*documents as u64 - 1)
        ),
        B::Nodes { nodes } => format!("it has more than {} values", limits::grouped(*nodes as u64 - 1)),
        B::ScalarBytes { total_scalar_bytes } => format!(
            "its values add up to {} bytes of text",
            limits::grouped(*total_scalar_bytes as u64)
        ),
        B::MergeKeys { merge_keys } => format!(
            "it has more than {} merge keys (`<<`)",
            limits::grouped(*merge_keys as u64 - 1)
        ),
        B::AliasAnchorRatio { aliases, anchors } => format!(
            "it uses {} aliases of only {} anchors (an alias bomb such as the \"billion laughs\")",
            limits::grouped(*aliases as u64),
            limits::grouped(*anchors as u64)
        ),
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => {
            "its anchors expand to too much YAML (an alias bomb such as the \"billion laughs\")".to_string()
        }
        B::SequenceUnbalanced => "its sequences and mappings do not close properly".to_string(),
        B::InputBytes { input_bytes } => format!("it is {} bytes long", limits::grouped(*input_bytes as u64)),
        _ => "it is too large or too deeply nested".to_string(),
    };
    format!("the YAML is too large to read: {what}")
}

/// `s`, or its first `max` characters and a note of its length when it is longer: for values
/// quoted in messages.
pub fn clipped(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let n = s.chars().count();
    if n <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let head: String = s.chars().take(max).collect();
    std::borrow::Cow::Owned(format!("{head}... ({} characters)", limits::grouped(n as u64)))
}

/// A message with every backquoted value longer than 64 characters clipped, and the whole
/// kept under 2,000 characters, so that an error quoting a huge value stays readable.
fn clip_message(message: String) -> String {
    const VALUE: usize = 64;
    const WHOLE: usize = 2000;
    if message.len() <= 200 {
        return message;
    }
    let mut out = String::with_capacity(message.len().min(WHOLE + 64));
    let mut rest = message.as_str();
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        match rest.find('`') {
            Some(close) => {
                out.push_str(&clipped(&rest[..close], VALUE));
                out.push('`');
                rest = &rest[close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    if out.chars().count() > WHOLE {
        out = clipped(&out, WHOLE).into_owned();
    }
    out
}

fn yaml_help(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the spelling; the accepted keys are listed above".into())
    } else if message.contains("duplicate mapping key") {
        Some("each key may appear once in a mapping".into())
    } else {
        None
    }
}

/// `s` as a YAML double-quoted scalar that reads back as `s` exactly: `"`, `\\` and every
/// character YAML does not print (controls, line and paragraph separators, the byte-order
/// mark) are escaped.
pub fn quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses a whole YAML description from a string; `file_name` is shown in errors.
pub fn from_str<T: DeserializeOwned>(src: &str, file_name: &str) -> Result<T, DescError> {
    SourceFile::new(file_name, src).parse()
}

/// An error at `loc` in the file `file_name` whose text is `src` (for one-off errors;
/// validation code with many errors should keep a [`SourceFile`]).
pub fn located_error(file_name: &str, src: &str, loc: Loc, message: &str, help: Option<&str>) -> DescError {
    SourceFile::new(file_name, src).error(loc, message, "here", help.map(str::to_string))
}

/// What went wrong in a description file.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DescErrorKind {
    /// Occurs when the file cannot be read.
    Io,
    /// Occurs when the text is not valid YAML or does not fit the expected shape (unknown key,
    /// missing key, wrong type).
    Yaml,
    /// Occurs when an expression in the file fails to parse or evaluate.
    Expression(DslErrorKind),
    /// Occurs when a value is well-formed but invalid (reported by validation code).
    Invalid,
}

/// An error in a description file, located at a line and column, rendered by miette with a
/// snippet of the file. `Display` is `file:line:column: message`.
#[derive(Clone, Debug)]
pub struct DescError(Box<DescErrorData>);

#[derive(Clone, Debug)]
struct DescErrorData {
    kind: DescErrorKind,
    file: Arc<str>,
    src: Option<Snippet>,
    line: usize,
    column: usize,
    message: String,
    labels: Vec<(SourceSpan, String)>,
    help: Option<String>,
}

impl DescError {
    /// An error with its message and help clipped ([`clip_message`]) and its source cut down
    /// to what the labels need ([`Snippet`]). `src` is (name shown above the snippet, text).
    fn make(
        kind: DescErrorKind,
        file: Arc<str>,
        src: Option<(Arc<str>, Arc<str>)>,
        (line, column): (usize, usize),
        message: String,
        mut labels: Vec<(SourceSpan, String)>,
        help: Option<String>,
    ) -> DescError {
        let src = src.map(|(name, text)| Snippet::new(name, text, &mut labels));
        DescError(Box::new(DescErrorData {
            kind,
            file,
            src,
            line,
            column,
            message: clip_message(message),
            labels,
            help: help.map(clip_message),
        }))
    }

    /// A file that cannot be read (see [`crate::input`]); no source to show.
    pub fn io(file: &str, e: &crate::input::InputError) -> DescError {
        let (line, column) = match e {
            crate::input::InputError::NotUtf8 { line, column, .. } => (*line, *column),
            _ => (0, 0),
        };
        // The path is already in the `file:` prefix.
        let message = e.reason();
        DescError::make(
            DescErrorKind::Io,
            Arc::from(file),
            None,
            (line, column),
            message,
            Vec::new(),
            None,
        )
    }

    pub fn kind(&self) -> &DescErrorKind {
        &self.0.kind
    }
    pub fn file(&self) -> &str {
        &self.0.file
    }
    /// 1-based line; 0 when the position is unknown.
    pub fn line(&self) -> usize {
        self.0.line
    }
    /// 1-based column in characters; 0 when the position is unknown.
    pub fn column(&self) -> usize {
        self.0.column
    }
    /// The message without the location prefix.
    pub fn message(&self) -> &str {
        &self.0.message
    }
    pub fn help_text(&self) -> Option<&str> {
        self.0.help.as_deref()
    }
    /// Byte spans in the file with their label text, primary first.
    pub fn labels(&self) -> &[(SourceSpan, String)] {
        &self.0.labels
    }
    /// Replaces the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> DescError {
        self.0.help = Some(help.into());
        self
    }
}

impl fmt::Display for DescError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.line == 0 {
            write!(f, "{}: {}", self.0.file, self.0.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.0.file, self.0.line, self.0.column, self.0.message
            )
        }
    }
}

impl std::error::Error for DescError {}

impl Diagnostic for DescError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let code = match &self.0.kind {
            DescErrorKind::Io => "llmforge::desc::io".to_string(),
            DescErrorKind::Yaml => "llmforge::desc::yaml".to_string(),
            DescErrorKind::Expression(k) => format!("llmforge::dsl::{}", k.code()),
            DescErrorKind::Invalid => "llmforge::desc::invalid".to_string(),
        };
        Some(Box::new(code))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.0.src.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.0.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.0.labels.iter().enumerate().map(
            |(i, (span, text))| {
                let text = (!text.is_empty()).then(|| text.clone());
                if i == 0 {
                    LabeledSpan::new_primary_with_span(text, *span)
                } else {
                    LabeledSpan::new_with_span(text, *span)
                }
            },
        )))
    }
}

/// The source shown under an error: the file, or, when a label sits on a line too long to
/// print (a 10 MB value), only a window of that line around the label, between "..." marks.
/// Labels are clamped to what is shown, so rendering an error costs the same whatever the
/// size of the line or value it points at.
#[derive(Clone, Debug)]
enum Snippet {
    Whole(NamedSource<Arc<str>>),
    Window(Window),
}

/// Part of one line: `data` is the shown text (marks included), which starts at byte `base`
/// of the file (the marks stand in front of the first shown byte), on 0-based `line`, at
/// 0-based `column` (in characters).
#[derive(Clone, Debug)]
struct Window {
    name: Arc<str>,
    data: String,
    base: usize,
    line: usize,
    column: usize,
}

/// Lines longer than this (in bytes) around a label are shown as a window.
const SNIPPET_LINE: usize = 240;
/// Characters shown on each side of the label's start in a window.
const SNIPPET_SIDE: usize = 60;
/// A label longer than this (in bytes) is cut to it.
const SNIPPET_LABEL: usize = 120;

impl Snippet {
    fn new(name: Arc<str>, text: Arc<str>, labels: &mut Vec<(SourceSpan, String)>) -> Snippet {
        Snippet::with_first_line(name, text, labels, 0)
    }

    /// As [`Snippet::new`] for text that starts at line `first_line + 1` of its file (always
    /// shown as a window, which carries the line number).
    fn with_first_line(
        name: Arc<str>,
        text: Arc<str>,
        labels: &mut Vec<(SourceSpan, String)>,
        first_line: usize,
    ) -> Snippet {
        let Some((primary, _)) = labels.first() else {
            return Snippet::Whole(NamedSource::new(&*name, text));
        };
        let t: &str = &text;
        let at = floor_char_boundary(t, primary.offset());
        // Bounded scans: the start and end of the label's line, and of the lines around it.
        let back = |from: usize| -> Option<usize> {
            let lo = from.saturating_sub(SNIPPET_LINE + 1);
            t.as_bytes()[lo..from]
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|k| lo + k + 1)
                .or((lo == 0).then_some(0))
        };
        let fwd = |from: usize| -> Option<usize> {
            let hi = (from + SNIPPET_LINE + 1).min(t.len());
            t.as_bytes()[from..hi]
                .iter()
                .position(|&b| b == b'\n')
                .map(|k| from + k)
                .or((hi == t.len()).then_some(t.len()))
        };
        let start = back(at);
        let end = fwd(at);
        let short = |s: Option<usize>, e: Option<usize>| matches!((s, e), (Some(s), Some(e)) if e - s <= SNIPPET_LINE);
        let prev_ok = match start {
            Some(0) | None => true,
            Some(s) => back(s - 1).is_some(),
        };
        let next_ok = match end {
            Some(e) if e < t.len() => fwd(e + 1).is_some(),
            _ => true,
        };
        let long_label = labels.iter().any(|(s, _)| s.len() > SNIPPET_LABEL * 32);
        if short(start, end) && prev_ok && next_ok && !long_label && first_line == 0 {
            return Snippet::Whole(NamedSource::new(&*name, text));
        }
        // A window of the label's line.
        let line_start = t[..at].rfind('\n').map_or(0, |k| k + 1);
        let line_end = t[at..].find('\n').map_or(t.len(), |k| at + k);
        let mut a = at;
        for _ in 0..SNIPPET_SIDE {
            if a <= line_start {
                break;
            }
            a = floor_char_boundary(t, a - 1);
        }
        // An ellipsis stands for at least what it covers (the window's base stays in the file).
        if a < line_start + 3 {
            a = line_start;
        }
        let mut b = at;
        for c in t[at..line_end].chars().take(2 * SNIPPET_SIDE) {
            b += c.len_utf8();
        }
        let (pre, post) = (
            if a > line_start { "..." } else { "" },
            if b < line_end { "..." } else { "" },
        );
        let data = format!("{pre}{}{post}", &t[a..b]);
        let line = t[..line_start].matches('\n').count();
        let column = t[line_start..a].chars().count().saturating_sub(pre.len());
        // Keep the labels inside the window, cut to what is shown.
        labels.retain(|(s, _)| s.offset() >= a && s.offset() <= b);
        for (s, _) in labels.iter_mut() {
            let len = s.len().min(b - s.offset()).min(SNIPPET_LABEL);
            *s = SourceSpan::from((s.offset(), len));
        }
        Snippet::Window(Window {
            name,
            data,
            base: a - pre.len(),
            line: line + first_line,
            column,
        })
    }
}

/// What [`Window`] hands to miette: the whole window, whatever span is asked for.
struct WindowContents<'a> {
    window: &'a Window,
    span: SourceSpan,
    column: usize,
}

impl<'a> SpanContents<'a> for WindowContents<'a> {
    fn data(&self) -> &'a [u8] {
        self.window.data.as_bytes()
    }
    fn span(&self) -> &SourceSpan {
        &self.span
    }
    fn name(&self) -> Option<&str> {
        Some(&self.window.name)
    }
    fn line(&self) -> usize {
        self.window.line
    }
    fn column(&self) -> usize {
        self.column
    }
    fn line_count(&self) -> usize {
        1
    }
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        match self {
            Snippet::Whole(s) => s.read_span(span, before, after),
            Snippet::Window(w) => {
                // The column of the asked span (for the `[file:line:column]` header).
                let into = span.offset().saturating_sub(w.base).min(w.data.len());
                let column = w.column + w.data.get(..into).map_or(0, |d| d.chars().count());
                Ok(Box::new(WindowContents {
                    window: w,
                    span: SourceSpan::from((w.base, w.data.len())),
                    column,
                }))
            }
        }
    }
}

/// Every error of one validation pass, reported together (miette shows each as related).
#[derive(Clone, Debug)]
pub struct DescErrors {
    file: Arc<str>,
    errors: Vec<DescError>,
}

impl DescErrors {
    pub fn errors(&self) -> &[DescError] {
        &self.errors
    }
    pub fn into_vec(self) -> Vec<DescError> {
        self.errors
    }
}

impl fmt::Display for DescErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.len() {
            1 => write!(f, "1 error in {}", self.file),
            n => write!(f, "{n} errors in {}", self.file),
        }
    }
}

impl std::error::Error for DescErrors {}

impl Diagnostic for DescErrors {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.errors.iter().map(|e| e as &dyn Diagnostic)))
    }
}

impl From<DescError> for DescErrors {
    fn from(e: DescError) -> DescErrors {
        DescErrors {
            file: e.0.file.clone(),
            errors: vec![e],
        }
    }
}

/// Collects the errors of a validation pass over one file, so that all are reported at once.
#[derive(Debug)]
pub struct Diagnostics {
    file: SourceFile,
    errors: Vec<DescError>,
    /// Errors past [`limits::MAX_ERRORS`], counted, not kept.
    dropped: usize,
}

impl Diagnostics {
    pub fn new(file: &SourceFile) -> Diagnostics {
        Diagnostics {
            file: file.clone(),
            errors: Vec::new(),
            dropped: 0,
        }
    }
    pub fn file(&self) -> &SourceFile {
        &self.file
    }
    /// Records an error (the first [`limits::MAX_ERRORS`] are kept, the rest counted).
    pub fn push(&mut self, e: DescError) {
        if self.errors.len() < limits::MAX_ERRORS {
            self.errors.push(e);
        } else {
            self.dropped += 1;
        }
    }
    /// Whether no more errors are kept (later ones are only counted).
    pub fn is_full(&self) -> bool {
        self.errors.len() >= limits::MAX_ERRORS
    }
    /// `Some(value)` on success; records the error and gives `None` otherwise.
    pub fn check<T>(&mut self, result: Result<T, DescError>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }
    /// Records a validation error at a located value.
    pub fn error(
        &mut self,
        loc: Loc,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) {
        if self.is_full() {
            self.dropped += 1;
            return;
        }
        let e = self.file.error(loc, message, label, help);
        self.push(e);
    }
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
    /// Errors recorded, the counted ones included.
    pub fn len(&self) -> usize {
        self.errors.len() + self.dropped
    }
    pub fn errors(&self) -> &[DescError] {
        &self.errors
    }
    /// The errors, for `(T, Vec<DescError>)`-style returns.
    pub fn into_vec(self) -> Vec<DescError> {
        self.into_errors()
    }
    fn into_errors(mut self) -> Vec<DescError> {
        if self.dropped > 0 {
            let note = self.file.error(
                Loc::UNKNOWN,
                format!(
                    "{} more problems are not listed (only the first {} of a file are)",
                    limits::grouped(self.dropped as u64),
                    limits::MAX_ERRORS
                ),
                "",
                None,
            );
            self.errors.push(note);
        }
        self.errors
    }
    /// `Ok(value)` when nothing was recorded, else every error.
    pub fn finish<T>(self, value: T) -> Result<T, DescErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(DescErrors {
                file: self.file.name.clone(),
                errors: self.into_errors(),
            })
        }
    }
}

/// A field written in the [`crate::dsl`] language: a YAML string (`"204.8 GB/s"`,
/// `"{16, 32}"`) or number (`16`, a plain number). Parsed when deserialized; a parse error
/// is kept and reported (located in the file) by the `eval*` methods, so that validation can
/// collect every error of a file in one pass.
#[derive(Clone, Debug)]
pub struct Expression {
    text: Arc<str>,
    parsed: Result<dsl::Expr, Deferred>,
    loc: Loc,
    verbatim: bool,
}

/// Two expressions are equal when they were written the same way (text and string-or-number),
/// wherever they are in a file.
impl PartialEq for Expression {
    fn eq(&self, other: &Expression) -> bool {
        self.text == other.text && self.verbatim == other.verbatim
    }
}

/// An error found while deserializing an [`Expression`], reported when it is evaluated.
#[derive(Clone, Debug)]
enum Deferred {
    /// The text does not parse.
    Dsl(DslError),
    /// The YAML node is not a scalar ("a sequence", "a mapping"...).
    NotScalar(&'static str),
}

impl Expression {
    /// An expression built in code (no file position).
    pub fn new(text: &str) -> Expression {
        Expression {
            text: Arc::from(text),
            parsed: dsl::parse(text).map_err(Deferred::Dsl),
            loc: Loc::UNKNOWN,
            verbatim: true,
        }
    }

    /// The text as written (a YAML number in its canonical form).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where the YAML scalar is.
    pub fn loc(&self) -> Loc {
        self.loc
    }

    /// True when the YAML value was a number rather than a string.
    pub fn is_number(&self) -> bool {
        !self.verbatim
    }

    /// The names referenced (empty when the text does not parse).
    pub fn references(&self) -> Vec<&str> {
        self.parsed.as_ref().map(|e| e.references()).unwrap_or_default()
    }

    fn rebase(&self, file: &SourceFile, err: &DslError) -> DescError {
        file.rebase_dsl_error(err, self.loc, &self.text, self.verbatim)
    }

    /// The syntax tree, or the parse error located in `file`.
    pub fn expr(&self, file: &SourceFile) -> Result<&dsl::Expr, DescError> {
        self.parsed.as_ref().map_err(|deferred| match deferred {
            Deferred::Dsl(e) => self.rebase(file, e),
            Deferred::NotScalar(found) => {
                let help = (*found == "a mapping")
                    .then(|| "quote sets and other text with braces: \"{16, 32, 64}\"".to_string());
                let mut e = file.error(
                    self.loc,
                    format!("expected a number or an expression such as \"512 KiB\", found {found}"),
                    "expected an expression",
                    help,
                );
                e.0.kind = DescErrorKind::Yaml;
                e
            }
        })
    }

    /// Evaluates to a scalar, range or set.
    pub fn eval(
        &self,
        file: &SourceFile,
        env: &dyn Fn(&str) -> Option<Quantity>,
    ) -> Result<Value, DescError> {
        self.expr(file)?.eval(env).map_err(|e| self.rebase(file, &e))
    }

    /// Evaluates to a single value.
    pub fn eval_scalar(
        &self,
        file: &SourceFile,
        env: &dyn Fn(&str) -> Option<Quantity>,
    ) -> Result<Quantity, DescError> {
        self.expr(file)?
            .eval_scalar(env)
            .map_err(|e| self.rebase(file, &e))
    }

    /// Evaluates a single value into a unit type (`Bytes`, `Hertz`...), `f64` or `u64`.
    pub fn eval_as<T: FromQuantity>(
        &self,
        file: &SourceFile,
        env: &dyn Fn(&str) -> Option<Quantity>,
    ) -> Result<T, DescError> {
        self.expr(file)?.eval_as(env).map_err(|e| self.rebase(file, &e))
    }

    /// Evaluates and expands a range or set (a scalar gives one candidate), converted to `T`.
    pub fn eval_candidates<T: FromQuantity>(
        &self,
        file: &SourceFile,
        env: &dyn Fn(&str) -> Option<Quantity>,
    ) -> Result<Vec<T>, DescError> {
        self.expr(file)?
            .eval_candidates(env)
            .map_err(|e| self.rebase(file, &e))
    }
}

/// The raw scalar behind an [`Expression`]: its text and whether it was a YAML string, or
/// the kind of node found instead of a scalar.
struct RawScalar(Result<(String, bool), &'static str>);

impl<'de> Deserialize<'de> for RawScalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawScalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or an expression such as \"512 KiB\" or \"{16, 32}\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawScalar, E> {
                Ok(RawScalar(Ok((v.to_string(), true))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawScalar, E> {
                Ok(RawScalar(Ok((v, true))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawScalar, E> {
                Ok(RawScalar(Ok((v.to_string(), false))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawScalar, E> {
                Ok(RawScalar(Ok((v.to_string(), false))))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawScalar, E> {
                Ok(RawScalar(Ok((v.to_string(), false))))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawScalar, E> {
                Ok(RawScalar(Ok((v.to_string(), false))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawScalar, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!("expected a finite number, found {v}")));
                }
                Ok(RawScalar(Ok((crate::dsl::format_number(v), false))))
            }
            fn visit_bool<E: de::Error>(self, _v: bool) -> Result<RawScalar, E> {
                Ok(RawScalar(Err("a boolean")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawScalar, E> {
                Ok(RawScalar(Err("nothing (null)")))
            }
            fn visit_none<E: de::Error>(self) -> Result<RawScalar, E> {
                Ok(RawScalar(Err("nothing (null)")))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawScalar, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(RawScalar(Err("a sequence")))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawScalar, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(RawScalar(Err("a mapping")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Expression {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let located = Located::<RawScalar>::deserialize(deserializer)?;
        let (text, verbatim, parsed) = match located.value.0 {
            Ok((text, verbatim)) => {
                let parsed = dsl::parse(&text).map_err(Deferred::Dsl);
                (text, verbatim, parsed)
            }
            Err(found) => (String::new(), false, Err(Deferred::NotScalar(found))),
        };
        Ok(Expression {
            text: Arc::from(text),
            parsed,
            loc: located.loc,
            verbatim,
        })
    }
}

/// Writes the text back as a YAML string.
impl Serialize for Expression {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{Bytes, BytesPerSec, Hertz};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Mem {
        bandwidth: Expression,
        size: Expression,
        #[serde(default)]
        banks: Option<Located<u32>>,
    }

    #[test]
    fn expressions_from_strings_and_numbers() {
        let file = SourceFile::new("m.yaml", "bandwidth: \"204.8 GB/s\"\nsize: 512\nbanks: 8\n");
        let m: Mem = file.parse().unwrap();
        let bw: BytesPerSec = m.bandwidth.eval_as(&file, &dsl::no_names).unwrap();
        assert_eq!(bw, BytesPerSec::new(204.8e9));
        assert!(m.size.is_number());
        assert_eq!(m.size.eval_as::<u64>(&file, &dsl::no_names).unwrap(), 512);
        let e = m.size.eval_as::<Bytes>(&file, &dsl::no_names).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.yaml:2:7: expected a quantity in bytes such as `512 KiB`, found the bare number 512"
        );
        let banks = m.banks.unwrap();
        assert_eq!((banks.value, banks.loc.line, banks.loc.column), (8, 3, 8));
    }

    #[test]
    fn dsl_errors_land_inside_the_string() {
        // Plain, double-quoted and single-quoted scalars; a multi-byte character before.
        for (text, line, column) in [
            ("bandwidth: 1 GB/s + 2 GHz\nsize: 1 B\n", 1, 19),
            ("size: 1 B\nbandwidth: \"1 GB/s + 2 GHz\"\n", 2, 20),
            ("size: 1 B  # µ\nbandwidth:   '1 GB/s + 2 GHz'\n", 2, 22),
        ] {
            let file = SourceFile::new("m.yaml", text);
            let m: Mem = file.parse().unwrap();
            let e = m.bandwidth.eval(&file, &dsl::no_names).unwrap_err();
            assert_eq!((e.line(), e.column()), (line, column), "{text}");
            assert!(matches!(
                e.kind(),
                DescErrorKind::Expression(DslErrorKind::IncompatibleDims { .. })
            ));
            let (span, _) = &e.labels()[0];
            assert_eq!(&file.text()[span.offset()..span.offset() + span.len()], "+");
        }
        // Escapes: the span falls back to the whole scalar.
        let file = SourceFile::new("m.yaml", "size: \"1 \\x42 + x\"\nbandwidth: 1 B\n");
        let m: Mem = file.parse().unwrap();
        let e = m.size.eval(&file, &dsl::no_names).unwrap_err();
        assert_eq!((e.line(), e.column()), (1, 7));
    }

    #[test]
    fn yaml_errors_are_located() {
        let e = from_str::<Mem>("bandwidth: 1 B\nsize: 1 B\nbank: 3\n", "m.yaml").unwrap_err();
        assert_eq!(e.kind(), &DescErrorKind::Yaml);
        assert_eq!((e.line(), e.column()), (3, 1));
        assert!(e.message().contains("unknown field `bank`"), "{e}");
        // A non-scalar where an expression belongs is reported at the node, on evaluation.
        let file = SourceFile::new("m.yaml", "bandwidth: [1]\nsize: {16, 32}\n");
        let m: Mem = file.parse().unwrap();
        let e = m.bandwidth.eval(&file, &dsl::no_names).unwrap_err();
        assert_eq!((e.line(), e.column()), (1, 12), "{e:?}");
        assert_eq!(
            e.message(),
            "expected a number or an expression such as \"512 KiB\", found a sequence"
        );
        let e = m.size.eval(&file, &dsl::no_names).unwrap_err();
        assert_eq!((e.line(), e.column()), (2, 7), "{e:?}");
        assert!(e.help_text().unwrap().contains("quote"));
        let e = from_str::<Mem>("size: 1 B\n", "m.yaml").unwrap_err();
        assert!(e.message().contains("missing field `bandwidth`"), "{e}");
        // Scanner errors have a line and column but no byte offset from serde-saphyr.
        let e = from_str::<Mem>("size: 1 B\nbandwidth: 'x\n", "m.yaml").unwrap_err();
        assert_eq!((e.line(), e.column()), (2, 12), "{e}");
        let e = from_str::<Mem>("size: 1 B\nbandwidth: b: c\n", "m.yaml").unwrap_err();
        assert_eq!((e.line(), e.column()), (2, 13), "{e}");
    }

    #[test]
    fn diagnostics_collect_everything() {
        let file = SourceFile::new("m.yaml", "bandwidth: 4 XB/s\nsize: 2 GHz\n");
        let m: Mem = file.parse().unwrap();
        let mut diags = file.diagnostics();
        let bw: Option<BytesPerSec> = diags.check(m.bandwidth.eval_as(&file, &dsl::no_names));
        let size: Option<Bytes> = diags.check(m.size.eval_as(&file, &dsl::no_names));
        assert!(bw.is_none() && size.is_none());
        diags.error(m.size.loc(), "too small", "this", None);
        let errors = diags.finish(()).unwrap_err();
        assert_eq!(errors.errors().len(), 3);
        assert_eq!(errors.to_string(), "3 errors in m.yaml");
        assert_eq!(errors.errors()[0].to_string(), "m.yaml:1:14: unknown unit `XB`");
        let _ = Hertz::ZERO;
    }

    #[test]
    fn located_error_helper() {
        let src = "a: 1\nb: 2\n";
        let e = located_error(
            "x.yaml",
            src,
            Loc {
                line: 2,
                column: 4,
                offset: 8,
                len: 1,
            },
            "bad",
            None,
        );
        assert_eq!(e.to_string(), "x.yaml:2:4: bad");
        let e = located_error("x.yaml", src, Loc::UNKNOWN, "bad", Some("fix it"));
        assert_eq!(e.to_string(), "x.yaml: bad");
    }
}
