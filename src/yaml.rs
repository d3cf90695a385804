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

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_saphyr::MessageFormatter;

use crate::dsl::{self, DslError, DslErrorKind, FromQuantity, Quantity, Value};

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
    if path.is_file() {
        return SourceFile::read(path);
    }
    match shipped.iter().find(|(n, _)| n.eq_ignore_ascii_case(spec)) {
        Some((n, src)) => Ok(SourceFile::new(format!("{dir}/{n}.yaml"), *src)),
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

/// A description file: its display name and its text, both shared (cheap to clone).
#[derive(Clone, Debug)]
pub struct SourceFile {
    name: Arc<str>,
    text: Arc<str>,
}

impl SourceFile {
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Reads a file; the name shown in errors is the path as given.
    pub fn read(path: &Path) -> Result<SourceFile, DescError> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SourceFile::new(name, text)),
            Err(e) => Err(DescError(Box::new(DescErrorData {
                kind: DescErrorKind::Io,
                file: name.into(),
                src: None,
                line: 0,
                column: 0,
                message: format!("cannot read the file: {e}"),
                labels: Vec::new(),
                help: None,
            }))),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Deserializes the whole file.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, DescError> {
        serde_saphyr::from_str::<T>(&self.text).map_err(|e| self.yaml_error(&e))
    }

    /// A collector for the errors of one validation pass over this file.
    pub fn diagnostics(&self) -> Diagnostics {
        Diagnostics::new(self)
    }

    fn named_source(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(&*self.name, self.text.clone())
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |k| k + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    fn yaml_error(&self, e: &serde_saphyr::Error) -> DescError {
        let mut message = serde_saphyr::DefaultMessageFormatter
            .format_message(e)
            .into_owned();
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
        DescError(Box::new(DescErrorData {
            kind,
            file: self.name.clone(),
            src: Some(self.named_source()),
            line,
            column,
            message,
            labels: span.map(|s| (s, label)).into_iter().collect(),
            help,
        }))
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
            return DescError(Box::new(DescErrorData {
                kind,
                file: self.name.clone(),
                src: Some(NamedSource::new(
                    format!("{} (expression)", self.name),
                    Arc::from(text),
                )),
                line: 0,
                column: 0,
                message,
                labels,
                help,
            }));
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
        DescError(Box::new(DescErrorData {
            kind,
            file: self.name.clone(),
            src: Some(self.named_source()),
            line,
            column,
            message,
            labels,
            help,
        }))
    }
}

fn floor_char_boundary(s: &str, mut offset: usize) -> usize {
    offset = offset.min(s.len());
    while !s.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
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
    src: Option<NamedSource<Arc<str>>>,
    line: usize,
    column: usize,
    message: String,
    labels: Vec<(SourceSpan, String)>,
    help: Option<String>,
}

impl DescError {
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
}

impl Diagnostics {
    pub fn new(file: &SourceFile) -> Diagnostics {
        Diagnostics {
            file: file.clone(),
            errors: Vec::new(),
        }
    }
    pub fn file(&self) -> &SourceFile {
        &self.file
    }
    /// Records an error.
    pub fn push(&mut self, e: DescError) {
        self.errors.push(e);
    }
    /// `Some(value)` on success; records the error and gives `None` otherwise.
    pub fn check<T>(&mut self, result: Result<T, DescError>) -> Option<T> {
        result.map_err(|e| self.errors.push(e)).ok()
    }
    /// Records a validation error at a located value.
    pub fn error(
        &mut self,
        loc: Loc,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) {
        let e = self.file.error(loc, message, label, help);
        self.errors.push(e);
    }
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
    pub fn len(&self) -> usize {
        self.errors.len()
    }
    pub fn errors(&self) -> &[DescError] {
        &self.errors
    }
    /// The errors, for `(T, Vec<DescError>)`-style returns.
    pub fn into_vec(self) -> Vec<DescError> {
        self.errors
    }
    /// `Ok(value)` when nothing was recorded, else every error.
    pub fn finish<T>(self, value: T) -> Result<T, DescErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(DescErrors {
                file: self.file.name.clone(),
                errors: self.errors,
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
