//! The nom parser. Errors flow through the crate-private [`PError`] (nom's `ParseError`,
//! `ContextError` and `FromExternalError`), and become a [`DslError`] at the top, with the
//! span computed from the sub-slice offset of the failing input.

use std::cell::Cell;
use std::sync::Arc;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, digit1, one_of};
use nom::combinator::{cut, opt, recognize};
use nom::error::{ContextError, ErrorKind, FromExternalError, ParseError, context};
use nom::{IResult, Parser};

use super::error::{DslError, DslErrorKind, Span};
use super::expr::{BinOp, Expr, Node, NodeKind, StepNode, Top, UnitExpr, UnitTerm};
use super::units::{Dim, lookup_unit};

/// Deepest nesting of parentheses, signs and exponents.
pub const MAX_NESTING: usize = 64;
/// Most nodes in one expression (bounds the recursion of evaluation and printing).
pub const MAX_NODES: usize = 1000;

const OPERAND: &str = "an operand (a number, a name or `(`)";

#[derive(Debug)]
enum PErrorKind {
    Nom,
    Char(char),
    External(DslErrorKind),
}

/// The parser's error: where it failed, what was expected (the innermost `context`).
#[derive(Debug)]
pub(crate) struct PError<'a> {
    input: &'a str,
    /// Span length for external errors; syntax errors span the next token.
    len: usize,
    kind: PErrorKind,
    context: Option<&'static str>,
    /// The unclosed `(` or `{`, for "opened here".
    open: Option<&'a str>,
}

impl<'a> PError<'a> {
    fn unclosed(input: &'a str, what: &'static str, open: &'a str) -> nom::Err<PError<'a>> {
        nom::Err::Failure(PError {
            input,
            len: 0,
            kind: PErrorKind::Nom,
            context: Some(what),
            open: Some(open),
        })
    }
    fn external(input: &'a str, len: usize, kind: DslErrorKind) -> nom::Err<PError<'a>> {
        nom::Err::Failure(PError {
            input,
            len,
            kind: PErrorKind::External(kind),
            context: None,
            open: None,
        })
    }
    fn expected(input: &'a str, what: &'static str) -> nom::Err<PError<'a>> {
        nom::Err::Failure(PError {
            input,
            len: 0,
            kind: PErrorKind::Nom,
            context: Some(what),
            open: None,
        })
    }
}

impl<'a> ParseError<&'a str> for PError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        PError {
            input,
            len: 0,
            kind: PErrorKind::Nom,
            context: None,
            open: None,
        }
    }
    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
    fn from_char(input: &'a str, c: char) -> Self {
        PError {
            input,
            len: 0,
            kind: PErrorKind::Char(c),
            context: None,
            open: None,
        }
    }
    /// Of two alternatives, report the one that got further.
    fn or(self, other: Self) -> Self {
        if other.input.len() <= self.input.len() {
            other
        } else {
            self
        }
    }
}

impl<'a> ContextError<&'a str> for PError<'a> {
    /// The innermost context names what was expected at the failing position.
    fn add_context(_input: &'a str, ctx: &'static str, mut other: Self) -> Self {
        if other.context.is_none() {
            other.context = Some(ctx);
        }
        other
    }
}

impl<'a> FromExternalError<&'a str, DslErrorKind> for PError<'a> {
    fn from_external_error(input: &'a str, _kind: ErrorKind, e: DslErrorKind) -> Self {
        PError {
            input,
            len: 0,
            kind: PErrorKind::External(e),
            context: None,
            open: None,
        }
    }
}

type PResult<'a, T> = IResult<&'a str, T, PError<'a>>;

fn ws(i: &str) -> &str {
    i.trim_start()
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == 'µ' || c == 'μ'
}

/// A unit spelling at the start of `i`: `%` or a run of letters, digits, `_`, `µ`.
fn unit_word(i: &str) -> Option<(&str, &str)> {
    let first = i.chars().next()?;
    if first == '%' {
        return Some(i.split_at(1));
    }
    if !(is_word_start(first) || first == 'µ' || first == 'μ') {
        return None;
    }
    let end = i
        .char_indices()
        .find(|&(_, c)| !is_unit_char(c))
        .map_or(i.len(), |(k, _)| k);
    Some(i.split_at(end))
}

/// Whether `rest` continues a dotted name (`.` then a letter, digit or `_`), as after `m` in
/// `m.count`; `..` (a range) does not.
fn starts_name_part(rest: &str) -> bool {
    rest.strip_prefix('.')
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A short description of the token at `i`, and its byte length, for "found ..." messages.
fn next_token(i: &str) -> (String, usize) {
    let Some(c) = i.chars().next() else {
        return ("end of input".to_string(), 0);
    };
    let len = if c.is_ascii_digit() {
        i.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .unwrap_or(i.len())
    } else if is_unit_char(c) {
        i.find(|c: char| !(is_unit_char(c) || c == '.'))
            .unwrap_or(i.len())
    } else {
        ["..=", "**", ".."]
            .iter()
            .find(|t| i.starts_with(**t))
            .map_or(c.len_utf8(), |t| t.len())
    };
    let text = &i[..len];
    (format!("`{}`", text.escape_debug()), len)
}

struct P<'a> {
    src: &'a str,
    nesting: Cell<usize>,
    nodes: Cell<usize>,
}

impl<'a> P<'a> {
    fn offset(&self, i: &'a str) -> usize {
        // `i` is always a suffix of `src`.
        self.src.len() - i.len()
    }

    /// The span from `start` (a suffix of `src`) to `end` (a later suffix).
    fn span(&self, start: &'a str, end: &'a str) -> Span {
        Span::new(self.offset(start), start.len() - end.len())
    }

    fn node(&self, at: &'a str, kind: NodeKind, span: Span) -> Result<Node, nom::Err<PError<'a>>> {
        let n = self.nodes.get() + 1;
        self.nodes.set(n);
        if n > MAX_NODES {
            return Err(PError::external(
                at,
                0,
                DslErrorKind::TooComplex {
                    what: "operations",
                    limit: MAX_NODES,
                },
            ));
        }
        Ok(Node { kind, span })
    }

    /// Runs `f` one nesting level deeper.
    fn nested<T>(&self, at: &'a str, f: impl FnOnce() -> PResult<'a, T>) -> PResult<'a, T> {
        let depth = self.nesting.get() + 1;
        if depth > MAX_NESTING {
            let len = next_token(at).1;
            return Err(PError::external(
                at,
                len,
                DslErrorKind::TooComplex {
                    what: "levels of nesting",
                    limit: MAX_NESTING,
                },
            ));
        }
        self.nesting.set(depth);
        let out = f();
        self.nesting.set(depth - 1);
        out
    }

    // value = set | range | expr
    fn top(&self, i: &'a str) -> PResult<'a, Top> {
        let i = ws(i);
        if let Some(rest) = i.strip_prefix('{') {
            return self.set(i, rest);
        }
        let (rest, start) = context(OPERAND, cut(|i| self.sum(i))).parse(i)?;
        let after = ws(rest);
        let (op_len, inclusive) = if after.starts_with("..=") {
            (3, true)
        } else if after.starts_with("..") {
            (2, false)
        } else {
            return self.end(
                after,
                Top::Scalar(start),
                "an operator (`+`, `-`, `*`, `/`, `^`), a unit or the end",
            );
        };
        let (rest, end) = context(OPERAND, cut(|i| self.sum(i))).parse(ws(&after[op_len..]))?;
        let mut rest = ws(rest);
        let mut step = None;
        if let Some((word, tail)) = unit_word(rest)
            && word == "step"
        {
            let tail = ws(tail);
            let (tail, multiply) = match tail.strip_prefix('*') {
                Some(t) => (ws(t), true),
                None => (tail, false),
            };
            let (tail, s) =
                context("a step: a number or `*` and a factor", cut(|i| self.sum(i))).parse(tail)?;
            step = Some(if multiply {
                StepNode::Mul(s)
            } else {
                StepNode::Add(s)
            });
            rest = ws(tail);
        }
        let last = match &step {
            Some(StepNode::Add(s) | StepNode::Mul(s)) => s.span,
            None => end.span,
        };
        let span = start.span.join(last);
        self.end(
            rest,
            Top::Range {
                start,
                end,
                inclusive,
                step,
                span,
            },
            "`step` or the end of the range",
        )
    }

    /// Requires the end of input after a complete value.
    fn end(&self, i: &'a str, top: Top, expected: &'static str) -> PResult<'a, Top> {
        let i = ws(i);
        if i.is_empty() {
            Ok((i, top))
        } else {
            Err(PError::expected(i, expected))
        }
    }

    // set = "{" expr ("," expr)* ","? "}"
    fn set(&self, open: &'a str, mut i: &'a str) -> PResult<'a, Top> {
        let mut members = Vec::new();
        loop {
            i = ws(i);
            if !members.is_empty()
                && let Some(rest) = i.strip_prefix('}')
            {
                let span = self.span(open, rest);
                return self.end(rest, Top::Set { members, span }, "the end after `}`");
            }
            let (rest, m) = context(OPERAND, cut(|i| self.sum(i))).parse(i)?;
            members.push(m);
            let rest = ws(rest);
            if let Some(r) = rest.strip_prefix(',') {
                i = r;
            } else if let Some(r) = rest.strip_prefix('}') {
                let span = self.span(open, r);
                return self.end(r, Top::Set { members, span }, "the end after `}`");
            } else {
                return Err(PError::unclosed(rest, "`,` or `}`", open));
            }
        }
    }

    // sum = product (("+" | "-") product)*
    fn sum(&self, i: &'a str) -> PResult<'a, Node> {
        let (mut i, mut lhs) = self.product(i)?;
        loop {
            let j = ws(i);
            let op = match j.chars().next() {
                Some('+') => BinOp::Add,
                Some('-') => BinOp::Sub,
                _ => return Ok((i, lhs)),
            };
            let (rest, rhs) = context(OPERAND, cut(|i| self.product(i))).parse(ws(&j[1..]))?;
            let span = lhs.span.join(rhs.span);
            lhs = self.node(j, NodeKind::Binary(op, Box::new(lhs), Box::new(rhs)), span)?;
            i = rest;
        }
    }

    // product = unary (("*" | "/") unary)*
    fn product(&self, i: &'a str) -> PResult<'a, Node> {
        let (mut i, mut lhs) = self.unary(i)?;
        loop {
            let j = ws(i);
            let op = match j.chars().next() {
                Some('*') if !j.starts_with("**") => BinOp::Mul,
                Some('/') => BinOp::Div,
                _ => return Ok((i, lhs)),
            };
            let (rest, rhs) = context(OPERAND, cut(|i| self.unary(i))).parse(ws(&j[1..]))?;
            let span = lhs.span.join(rhs.span);
            lhs = self.node(j, NodeKind::Binary(op, Box::new(lhs), Box::new(rhs)), span)?;
            i = rest;
        }
    }

    // unary = "-" unary | scaled
    fn unary(&self, i: &'a str) -> PResult<'a, Node> {
        let i = ws(i);
        if let Some(rest) = i.strip_prefix('-') {
            let (rest, operand) =
                self.nested(i, || context(OPERAND, cut(|i| self.unary(i))).parse(ws(rest)))?;
            let span = self.span(i, rest);
            let span = Span::new(span.offset, operand.span.end() - span.offset);
            let node = self.node(i, NodeKind::Neg(Box::new(operand)), span)?;
            return Ok((rest, node));
        }
        self.scaled(i)
    }

    // scaled = power unit?
    fn scaled(&self, i: &'a str) -> PResult<'a, Node> {
        let (rest, base) = self.power(i)?;
        let after = ws(rest);
        match unit_word(after) {
            Some(("step", _)) | None => Ok((rest, base)),
            Some(_) => {
                let (rest, unit) = self.unit(after)?;
                let span = base.span.join(unit.span);
                let node = self.node(i, NodeKind::WithUnit(Box::new(base), unit), span)?;
                Ok((rest, node))
            }
        }
    }

    // unit = uterm ("/" uterm)*
    fn unit(&self, i: &'a str) -> PResult<'a, UnitExpr> {
        let (mut rest, first) = self.unit_term(i, false)?;
        let mut factor = first.1;
        let mut dim = first.2;
        let mut terms = vec![first.0];
        loop {
            let j = ws(rest);
            let Some(after_slash) = j.strip_prefix('/') else {
                break;
            };
            let k = ws(after_slash);
            // `/` continues the unit only when a known unit follows (and not the first part
            // of a dotted name such as `m.count`); else it divides.
            match unit_word(k) {
                Some((word, after))
                    if word != "step" && !starts_name_part(after) && lookup_unit(word).is_some() => {}
                _ => break,
            }
            let (r, (term, f, d)) = self.unit_term(k, true)?;
            factor /= f;
            dim = dim
                .checked_div(d)
                .ok_or_else(|| PError::external(k, 0, DslErrorKind::DimensionOverflow))?;
            terms.push(term);
            rest = r;
        }
        let span = self.span(i, rest);
        Ok((
            rest,
            UnitExpr {
                terms,
                factor,
                dim,
                span,
            },
        ))
    }

    // uterm = UNIT (("^" | "**") "-"? digits)?
    fn unit_term(&self, i: &'a str, divided: bool) -> PResult<'a, (UnitTerm, f64, Dim)> {
        let Some((word, rest)) = unit_word(i) else {
            return Err(PError::expected(i, "a unit"));
        };
        let Some(def) = lookup_unit(word) else {
            return Err(PError::external(
                i,
                word.len(),
                DslErrorKind::UnknownUnit {
                    unit: word.to_string(),
                },
            ));
        };
        let (rest, power) = match alt((tag::<_, _, PError<'a>>("**"), tag("^"))).parse(rest) {
            Ok((after, _)) => {
                let (after, text) = context(
                    "an integer power such as `mm^2`",
                    cut(recognize((opt(char('-')), digit1))),
                )
                .parse(after)?;
                let power = text.parse::<i8>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    PError::external(
                        &i[text.as_ptr() as usize - i.as_ptr() as usize..],
                        text.len(),
                        DslErrorKind::DimensionOverflow,
                    )
                })?;
                (after, power)
            }
            Err(_) => (rest, 1i8),
        };
        let dim = def
            .dim
            .powi(i32::from(power))
            .ok_or_else(|| PError::external(i, 0, DslErrorKind::DimensionOverflow))?;
        let factor = def.factor.powi(i32::from(power));
        Ok((
            rest,
            (
                UnitTerm {
                    name: word.into(),
                    power,
                    divided,
                },
                factor,
                dim,
            ),
        ))
    }

    // power = atom (("^" | "**") exponent)?
    fn power(&self, i: &'a str) -> PResult<'a, Node> {
        let (rest, base) = self.atom(i)?;
        let j = ws(rest);
        let op_len = if j.starts_with("**") {
            2
        } else if j.starts_with('^') {
            1
        } else {
            return Ok((rest, base));
        };
        let (rest, exponent) = self.nested(j, || {
            context("an exponent", cut(|i| self.exponent(i))).parse(ws(&j[op_len..]))
        })?;
        let span = base.span.join(exponent.span);
        let node = self.node(
            j,
            NodeKind::Binary(BinOp::Pow, Box::new(base), Box::new(exponent)),
            span,
        )?;
        Ok((rest, node))
    }

    // exponent = "-" exponent | power
    fn exponent(&self, i: &'a str) -> PResult<'a, Node> {
        if let Some(rest) = i.strip_prefix('-') {
            let (rest, operand) = self.nested(i, || {
                context("an exponent", cut(|i| self.exponent(i))).parse(ws(rest))
            })?;
            let span = Span::new(self.offset(i), operand.span.end() - self.offset(i));
            let node = self.node(i, NodeKind::Neg(Box::new(operand)), span)?;
            return Ok((rest, node));
        }
        self.power(i)
    }

    // atom = number | name | "(" expr ")"
    fn atom(&self, i: &'a str) -> PResult<'a, Node> {
        let Some(c) = i.chars().next() else {
            return Err(nom::Err::Error(PError::from_error_kind(i, ErrorKind::Eof)));
        };
        if c.is_ascii_digit() {
            let (rest, text) = recognize((
                digit1,
                opt((char('.'), digit1)),
                opt((one_of("eE"), opt(one_of("+-")), digit1)),
            ))
            .parse(i)?;
            let span = self.span(i, rest);
            let value: f64 = text.parse().map_err(|_| PError::expected(i, "a number"))?;
            if !value.is_finite() {
                return Err(PError::external(i, text.len(), DslErrorKind::NotFinite { value }));
            }
            return Ok((rest, self.node(i, NodeKind::Number(value), span)?));
        }
        if is_word_start(c) {
            let (rest, name) = recognize((
                take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
                nom::multi::many0_count((
                    char('.'),
                    nom::bytes::complete::take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_'),
                )),
            ))
            .parse(i)?;
            let span = self.span(i, rest);
            return Ok((rest, self.node(i, NodeKind::Ref(name.into()), span)?));
        }
        if let Some(after) = i.strip_prefix('(') {
            let (rest, mut inner) =
                self.nested(i, || context(OPERAND, cut(|i| self.sum(i))).parse(ws(after)))?;
            let rest = ws(rest);
            let Some(rest) = rest.strip_prefix(')') else {
                return Err(PError::unclosed(rest, "an operator or a closing `)`", i));
            };
            // The node keeps its kind; its span grows to cover the parentheses.
            inner.span = self.span(i, rest);
            return Ok((rest, inner));
        }
        Err(nom::Err::Error(PError::from_error_kind(i, ErrorKind::Alt)))
    }
}

/// Parses an expression, a range or a set. See the [module documentation](super).
pub fn parse(src: &str) -> Result<Expr, DslError> {
    let arc: Arc<str> = Arc::from(src);
    let p = P {
        src: &arc,
        nesting: Cell::new(0),
        nodes: Cell::new(0),
    };
    match p.top(&arc) {
        Ok((_, top)) => Ok(Expr {
            src: arc.clone(),
            top,
        }),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(to_dsl_error(&p, &arc, e)),
        Err(nom::Err::Incomplete(_)) => Err(DslError::new(
            syntax("a complete expression", "end of input"),
            arc.clone(),
            Span::new(src.len(), 0),
        )),
    }
}

fn syntax(expected: &str, found: &str) -> DslErrorKind {
    DslErrorKind::Syntax {
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

fn to_dsl_error(p: &P<'_>, src: &Arc<str>, e: PError<'_>) -> DslError {
    let offset = p.src.len() - e.input.len();
    let expected = match (&e.kind, e.context) {
        (PErrorKind::External(kind), _) => {
            return DslError::new(kind.clone(), src.clone(), Span::new(offset, e.len));
        }
        (_, Some(context)) => context.to_string(),
        (PErrorKind::Char(c), None) => format!("`{c}`"),
        (_, None) => OPERAND.to_string(),
    };
    let (found, len) = next_token(e.input);
    let text = p.src;
    let trimmed = text.trim_end();
    let (span, label) = match trimmed.chars().last() {
        // At the end: point at the last character, after which something is missing.
        Some(last) if len == 0 && offset >= trimmed.len() => {
            let width = last.len_utf8();
            (
                Span::new(trimmed.len() - width, width),
                format!("expected {expected} after this"),
            )
        }
        _ => (
            Span::new(offset, len),
            if len == 0 {
                "here".to_string()
            } else {
                "unexpected".to_string()
            },
        ),
    };
    let mut err = DslError::new(syntax(&expected, &found), src.clone(), span).with_primary_label(label);
    if let Some(open) = e.open
        && found == "end of input"
    {
        let at = p.src.len() - open.len();
        err = err.with_label(Span::new(at, 1), "opened here");
    }
    if found == "`)`" && expected.contains("the end") {
        err = err.with_help("this `)` has no matching `(`");
    } else if trimmed.is_empty() {
        err = err.with_help("write a value such as `16`, `512 KiB` or `clock * 4 B/cycle`");
    }
    err
}
