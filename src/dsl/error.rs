//! The public error of the expression language: [`DslError`], a [`miette::Diagnostic`] with the
//! expression as source code, labelled spans and a help line, classified by [`DslErrorKind`].

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, SourceCode};

use super::units::{Dim, lookup_unit, suggest_unit};

/// A byte range inside an expression string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (0 for a point, e.g. the end of the input).
    pub len: usize,
}

impl Span {
    pub const fn new(offset: usize, len: usize) -> Span {
        Span { offset, len }
    }
    /// The byte offset just past the span.
    pub const fn end(self) -> usize {
        self.offset + self.len
    }
    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        let start = self.offset.min(other.offset);
        Span::new(start, self.end().max(other.end()) - start)
    }
    /// The span moved right by `delta` bytes (to re-base it into an enclosing file).
    pub const fn shifted(self, delta: usize) -> Span {
        Span::new(self.offset + delta, self.len)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> miette::SourceSpan {
        (s.offset, s.len).into()
    }
}

/// What went wrong. Each variant's doc says when it occurs.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DslErrorKind {
    // --- reading the text ---
    /// Occurs when the text does not follow the grammar.
    #[error("expected {expected}, found {found}")]
    Syntax { expected: String, found: String },
    /// Occurs when an expression nests deeper than [`super::MAX_NESTING`] or has more than
    /// [`super::MAX_NODES`] nodes.
    #[error("the expression has too many {what} (the limit is {limit})")]
    TooComplex { what: &'static str, limit: usize },
    /// Occurs when a word after a number is not in the unit table.
    #[error("unknown unit `{unit}`")]
    UnknownUnit { unit: String },

    // --- evaluating ---
    /// Occurs when a name is not known to the environment.
    #[error("unknown name `{name}`")]
    UnknownName { name: String },
    /// Occurs when adding, subtracting or comparing quantities of different dimensions.
    #[error("cannot {op} {} and {}", .left.describe(), .right.describe())]
    IncompatibleDims { op: &'static str, left: Dim, right: Dim },
    /// Occurs when an exponent has a dimension (`2 ^ 3 B`).
    #[error("an exponent must be a plain number, found {}", .dim.describe())]
    ExponentHasDimension { dim: Dim },
    /// Occurs when a quantity with a dimension is raised to a non-integer power.
    #[error("cannot raise {} to the non-integer power {exponent}", .base.describe())]
    FractionalPower { base: Dim, exponent: f64 },
    /// Occurs when a dimension exponent leaves -128..=127 (`(1 B)^1000`).
    #[error("the dimension of this expression is out of range")]
    DimensionOverflow,
    /// Occurs when dividing by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// Occurs when a result overflows or is not a number (`(-8)^0.5`).
    #[error("the result is not a finite number ({value})")]
    NotFinite { value: f64 },

    // --- typed extraction ---
    /// Occurs when a value has the wrong dimension for the field that reads it.
    #[error("{}", wrong_dimension_message(*.expected, .what, .example, *.found, *.value))]
    WrongDimension {
        expected: Dim,
        what: &'static str,
        example: &'static str,
        found: Dim,
        value: f64,
    },
    /// Occurs when a whole number is required (`16`) and the value is fractional, negative or
    /// beyond 2^53.
    #[error("expected a whole number, found {}", super::format_number(*.value))]
    NotAnInteger { value: f64 },
    /// Occurs when a single value is required and the text is a range or a set.
    #[error("expected a single value, found {found}")]
    NotAScalar { found: &'static str },

    // --- ranges and sets ---
    /// Occurs when a range is empty, has a bad step, or mixes dimensions.
    #[error("invalid range: {reason}")]
    InvalidRange { reason: String },
    /// Occurs when a range would expand to more than [`super::MAX_CANDIDATES`] values.
    #[error("the range has {count} values, more than the limit of {limit}")]
    TooManyCandidates { count: f64, limit: usize },
    /// Occurs when the members of a set have different dimensions.
    #[error("all members of a set must have one dimension, found {} and {}", .first.describe(), .other.describe())]
    MixedSet { first: Dim, other: Dim },
}

fn wrong_dimension_message(expected: Dim, what: &str, example: &str, found: Dim, value: f64) -> String {
    let wanted = if what.is_empty() {
        format!("a quantity in `{expected}`")
    } else if example.is_empty() {
        what.to_string()
    } else {
        format!("{what} such as `{example}`")
    };
    if found.is_none() {
        format!(
            "expected {wanted}, found the bare number {}",
            super::format_number(value)
        )
    } else {
        format!("expected {wanted}, found {}", found.describe())
    }
}

impl DslErrorKind {
    /// A stable short code, used as the diagnostic code `llmforge::dsl::<code>`.
    pub fn code(&self) -> &'static str {
        match self {
            DslErrorKind::Syntax { .. } => "syntax",
            DslErrorKind::TooComplex { .. } => "too_complex",
            DslErrorKind::UnknownUnit { .. } => "unknown_unit",
            DslErrorKind::UnknownName { .. } => "unknown_name",
            DslErrorKind::IncompatibleDims { .. } => "incompatible_dimensions",
            DslErrorKind::ExponentHasDimension { .. } => "exponent_dimension",
            DslErrorKind::FractionalPower { .. } => "fractional_power",
            DslErrorKind::DimensionOverflow => "dimension_overflow",
            DslErrorKind::DivisionByZero => "division_by_zero",
            DslErrorKind::NotFinite { .. } => "not_finite",
            DslErrorKind::WrongDimension { .. } => "wrong_dimension",
            DslErrorKind::NotAnInteger { .. } => "not_an_integer",
            DslErrorKind::NotAScalar { .. } => "not_a_scalar",
            DslErrorKind::InvalidRange { .. } => "invalid_range",
            DslErrorKind::TooManyCandidates { .. } => "too_many_candidates",
            DslErrorKind::MixedSet { .. } => "mixed_set",
        }
    }

    /// The default text of the primary label.
    fn label(&self) -> String {
        match self {
            DslErrorKind::Syntax { expected, .. } => format!("expected {expected}"),
            DslErrorKind::TooComplex { .. } => "here".into(),
            DslErrorKind::UnknownUnit { .. } => "not a unit".into(),
            DslErrorKind::UnknownName { .. } => "not defined".into(),
            DslErrorKind::IncompatibleDims { op, .. } => format!("cannot {op} these"),
            DslErrorKind::ExponentHasDimension { dim } => format!("this is {}", dim.describe()),
            DslErrorKind::FractionalPower { .. } => "non-integer power".into(),
            DslErrorKind::DimensionOverflow => "dimension out of range".into(),
            DslErrorKind::DivisionByZero => "this is zero".into(),
            DslErrorKind::NotFinite { .. } => "not finite".into(),
            DslErrorKind::WrongDimension { found, .. } if found.is_none() => "a bare number".into(),
            DslErrorKind::WrongDimension { found, .. } => format!("this is {}", found.describe()),
            DslErrorKind::NotAnInteger { value } => format!("this is {}", super::format_number(*value)),
            DslErrorKind::NotAScalar { found } => format!("this is {found}"),
            DslErrorKind::InvalidRange { .. } => "this range".into(),
            DslErrorKind::TooManyCandidates { .. } => "too many values".into(),
            DslErrorKind::MixedSet { other, .. } => format!("this is {}", other.describe()),
        }
    }

    /// The default help line.
    fn help(&self) -> Option<String> {
        match self {
            DslErrorKind::Syntax { .. } => None,
            DslErrorKind::UnknownUnit { unit } => Some(suggest_unit(unit).unwrap_or_else(|| {
                format!("units are listed in dsl/README.md; to multiply by a name, write `* {unit}`")
            })),
            DslErrorKind::UnknownName { name } => Some(if lookup_unit(name).is_some() {
                format!("`{name}` is a unit here used as a name; write a number before it: `1 {name}`")
            } else {
                "names refer to other fields of the description, e.g. `clock` or `dram.bandwidth`".to_string()
            }),
            DslErrorKind::IncompatibleDims { .. } => {
                Some("only quantities of one dimension can be added, subtracted or compared".into())
            }
            DslErrorKind::ExponentHasDimension { .. } => {
                Some("write the power as a plain number: `2^10 B`, not `2^(10 B)`".into())
            }
            DslErrorKind::FractionalPower { .. } => {
                Some("only plain numbers can be raised to fractional powers".into())
            }
            DslErrorKind::WrongDimension {
                found,
                value,
                example,
                ..
            } if found.is_none() => {
                let unit = example.split_once(' ').map(|(_, u)| u).unwrap_or("");
                let value = super::format_number(*value);
                (!unit.is_empty()).then(|| format!("write the unit after the number, e.g. `{value} {unit}`"))
            }
            DslErrorKind::WrongDimension { expected, found, .. } => {
                let per_cycle = expected.checked_div(Dim::HERTZ);
                if Some(*found) == per_cycle {
                    Some("a quantity per cycle becomes one per second when multiplied by a clock: `clock * 64 B/cycle`".into())
                } else if Some(*found) == expected.checked_mul(Dim::CYCLES) {
                    Some("a clock (Hz) counts cycles per second: multiply it by a quantity per cycle, e.g. `clock * 4 B/cycle`".into())
                } else {
                    Some(format!(
                        "this field is in `{expected}`; the value is in `{found}`"
                    ))
                }
            }
            DslErrorKind::NotAScalar { .. } => {
                Some("ranges and sets are only allowed in search spaces".into())
            }
            DslErrorKind::InvalidRange { .. } => Some(
                "ranges are `start..end` (end excluded) or `start..=end`, with `step s` or `step *f`".into(),
            ),
            DslErrorKind::TooManyCandidates { .. } => Some("use a larger step".into()),
            _ => None,
        }
    }
}

/// An error in an expression: a kind, the expression text (when known), labelled spans into
/// it (the first is the primary one) and an optional help line.
///
/// Rendered by miette as a snippet; [`crate::yaml`] re-bases it onto the YAML file that holds
/// the expression.
#[derive(Clone, Debug)]
pub struct DslError {
    kind: DslErrorKind,
    src: Option<Arc<str>>,
    labels: Vec<(Span, String)>,
    help: Option<String>,
}

impl DslError {
    /// An error located at `span` of `src`, with the default label and help of its kind.
    pub fn new(kind: DslErrorKind, src: Arc<str>, span: Span) -> DslError {
        let label = kind.label();
        let help = kind.help();
        DslError {
            kind,
            src: Some(src),
            labels: vec![(span, label)],
            help,
        }
    }

    /// An error not yet attached to any text (from [`super::Quantity::to`]).
    pub fn bare(kind: DslErrorKind) -> DslError {
        let help = kind.help();
        DslError {
            kind,
            src: None,
            labels: Vec::new(),
            help,
        }
    }

    /// Attaches the expression text and a primary span, if the error has none yet.
    pub fn or_at(mut self, src: &Arc<str>, span: Span) -> DslError {
        if self.src.is_none() {
            self.src = Some(src.clone());
        }
        if self.labels.is_empty() {
            self.labels.push((span, self.kind.label()));
        }
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> DslError {
        self.labels.push((span, text.into()));
        self
    }

    /// Replaces the text of the primary label.
    pub fn with_primary_label(mut self, text: impl Into<String>) -> DslError {
        if let Some(first) = self.labels.first_mut() {
            first.1 = text.into();
        }
        self
    }

    /// Replaces the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> DslError {
        self.help = Some(help.into());
        self
    }

    pub fn kind(&self) -> &DslErrorKind {
        &self.kind
    }

    /// The expression text, when attached.
    pub fn source_text(&self) -> Option<&str> {
        self.src.as_deref()
    }

    /// The primary span, when attached.
    pub fn span(&self) -> Option<Span> {
        self.labels.first().map(|(s, _)| *s)
    }

    /// All labels, primary first.
    pub fn labels(&self) -> &[(Span, String)] {
        &self.labels
    }

    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

impl fmt::Display for DslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for DslError {}

impl Diagnostic for DslError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("llmforge::dsl::{}", self.kind.code())))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.src.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.src.as_ref()?;
        Some(Box::new(self.labels.iter().enumerate().map(
            |(i, (span, text))| {
                if i == 0 {
                    LabeledSpan::new_primary_with_span(Some(text.clone()), *span)
                } else {
                    LabeledSpan::new_with_span(Some(text.clone()), *span)
                }
            },
        )))
    }
}
