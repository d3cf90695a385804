//! The syntax tree, its canonical printer and its evaluator.

use std::fmt;
use std::sync::Arc;

use super::MAX_CANDIDATES;
use super::error::{DslError, DslErrorKind, Span};
use super::units::{Dim, FromQuantity, Quantity};

/// A parsed expression: the syntax tree plus the text it came from (for error spans).
///
/// Equality compares the trees only, ignoring spans and text layout.
#[derive(Clone, Debug)]
pub struct Expr {
    pub(crate) src: Arc<str>,
    pub(crate) top: Top,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        self.top == other.top
    }
}

/// The top level of an expression: one value, a range or a set.
#[derive(Clone, Debug)]
pub enum Top {
    Scalar(Node),
    Range {
        start: Node,
        end: Node,
        inclusive: bool,
        step: Option<StepNode>,
        span: Span,
    },
    Set {
        members: Vec<Node>,
        span: Span,
    },
}

/// Compares trees, ignoring spans.
impl PartialEq for Top {
    fn eq(&self, other: &Top) -> bool {
        match (self, other) {
            (Top::Scalar(a), Top::Scalar(b)) => a == b,
            (
                Top::Range {
                    start: s1,
                    end: e1,
                    inclusive: i1,
                    step: st1,
                    ..
                },
                Top::Range {
                    start: s2,
                    end: e2,
                    inclusive: i2,
                    step: st2,
                    ..
                },
            ) => s1 == s2 && e1 == e2 && i1 == i2 && st1 == st2,
            (Top::Set { members: a, .. }, Top::Set { members: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// The `step` of a range: added (`step 32`) or multiplied (`step *2`).
#[derive(Clone, Debug, PartialEq)]
pub enum StepNode {
    Add(Node),
    Mul(Node),
}

/// A node of the syntax tree with its span in the expression text.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

/// Spans are positions, not content: two nodes are equal when their trees are.
impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        self.kind == other.kind
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A non-negative literal (a minus sign is [`NodeKind::Neg`]).
    Number(f64),
    /// A reference to another field, resolved by the environment.
    Ref(Box<str>),
    /// A unit applied to an operand: `4 B/cycle`, `(a + b) KiB`.
    WithUnit(Box<Node>, UnitExpr),
    Neg(Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
        }
    }
}

/// A unit as written: `GB/s` is `[GB^1, /s^1]`; its factor and dimension are precomputed.
#[derive(Clone, Debug)]
pub struct UnitExpr {
    pub terms: Vec<UnitTerm>,
    /// Value of one of this unit in base units.
    pub factor: f64,
    pub dim: Dim,
    pub span: Span,
}

impl PartialEq for UnitExpr {
    fn eq(&self, other: &UnitExpr) -> bool {
        self.terms == other.terms
    }
}

/// One unit spelling with its written power; `divided` when it follows a `/`.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitTerm {
    pub name: Box<str>,
    pub power: i8,
    pub divided: bool,
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

/// Binding strength, loosest first.
const PREC_SUM: u8 = 1;
const PREC_PRODUCT: u8 = 2;
const PREC_UNARY: u8 = 3;
const PREC_UNIT: u8 = 4;
const PREC_POWER: u8 = 5;
const PREC_ATOM: u8 = 6;

impl NodeKind {
    fn prec(&self) -> u8 {
        match self {
            NodeKind::Number(_) | NodeKind::Ref(_) => PREC_ATOM,
            NodeKind::WithUnit(..) => PREC_UNIT,
            NodeKind::Neg(_) => PREC_UNARY,
            NodeKind::Binary(BinOp::Add | BinOp::Sub, ..) => PREC_SUM,
            NodeKind::Binary(BinOp::Mul | BinOp::Div, ..) => PREC_PRODUCT,
            NodeKind::Binary(BinOp::Pow, ..) => PREC_POWER,
        }
    }
}

/// Shortest text that parses back to the same `f64`.
pub(crate) fn fmt_number(v: f64) -> String {
    let s = format!("{v:?}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn write_node(out: &mut String, node: &Node, min_prec: u8) {
    let parens = node.kind.prec() < min_prec;
    if parens {
        out.push('(');
    }
    match &node.kind {
        NodeKind::Number(v) => out.push_str(&fmt_number(*v)),
        NodeKind::Ref(name) => out.push_str(name),
        NodeKind::WithUnit(operand, unit) => {
            write_node(out, operand, PREC_POWER);
            out.push(' ');
            out.push_str(&unit.to_string());
        }
        NodeKind::Neg(operand) => {
            out.push('-');
            write_node(out, operand, PREC_UNARY);
        }
        NodeKind::Binary(BinOp::Pow, base, exponent) => {
            write_node(out, base, PREC_ATOM);
            out.push('^');
            write_exponent(out, exponent);
        }
        NodeKind::Binary(op, lhs, rhs) => {
            let prec = node.kind.prec();
            write_node(out, lhs, prec);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            if *op == BinOp::Div && starts_with_unit_name(rhs) {
                // `x B / bit` would read back as the unit `B/bit`: keep the name a name.
                out.push('(');
                write_node(out, rhs, PREC_SUM);
                out.push(')');
            } else {
                write_node(out, rhs, prec + 1);
            }
        }
    }
    if parens {
        out.push(')');
    }
}

/// Whether the printed node starts with a name that is also a unit spelling.
fn starts_with_unit_name(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Ref(name) => super::units::lookup_unit(name).is_some(),
        NodeKind::WithUnit(operand, _) => starts_with_unit_name(operand),
        NodeKind::Binary(BinOp::Pow, base, _) => starts_with_unit_name(base),
        // Products and sums print in parentheses on the right of `/`; numbers and `-` are not
        // unit names.
        _ => false,
    }
}

/// Exponents follow `exponent = "-" exponent | power`.
fn write_exponent(out: &mut String, node: &Node) {
    if let NodeKind::Neg(inner) = &node.kind {
        out.push('-');
        write_exponent(out, inner);
    } else {
        write_node(out, node, PREC_POWER);
    }
}

impl fmt::Display for UnitExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if term.divided {
                f.write_str("/")?;
            } else if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&term.name)?;
            if term.power != 1 {
                write!(f, "^{}", term.power)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_node(&mut out, self, PREC_SUM);
        f.write_str(&out)
    }
}

/// The canonical text: single spaces around binary operators, minimal parentheses. Parsing it
/// gives an equal [`Expr`].
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.top {
            Top::Scalar(node) => write!(f, "{node}"),
            Top::Range {
                start,
                end,
                inclusive,
                step,
                ..
            } => {
                write!(f, "{start}{}{end}", if *inclusive { "..=" } else { ".." })?;
                match step {
                    None => Ok(()),
                    Some(StepNode::Add(s)) => write!(f, " step {s}"),
                    Some(StepNode::Mul(s)) => write!(f, " step *{s}"),
                }
            }
            Top::Set { members, .. } => {
                f.write_str("{")?;
                for (i, m) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{m}")?;
                }
                f.write_str("}")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// The result of evaluating an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(Quantity),
    Range(Range),
    /// At least one member, all of one dimension, in written order.
    Set(Vec<Quantity>),
}

/// How a range moves from one candidate to the next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Add this quantity (same dimension as the bounds, positive).
    Add(Quantity),
    /// Multiply by this plain factor (> 1; bounds positive).
    Mul(f64),
}

/// A validated, non-empty range of at most [`MAX_CANDIDATES`] values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    start: Quantity,
    end: Quantity,
    inclusive: bool,
    step: Step,
    count: usize,
}

/// Slack for bounds that floating point lands just beside (`0.1..=0.3 step 0.1`).
const RANGE_EPS: f64 = 1e-9;

impl Range {
    /// Checks the bounds and the step; the error kind says what is wrong.
    pub fn new(start: Quantity, end: Quantity, inclusive: bool, step: Step) -> Result<Range, DslErrorKind> {
        let invalid = |reason: String| DslErrorKind::InvalidRange { reason };
        if start.dim != end.dim {
            return Err(DslErrorKind::IncompatibleDims {
                op: "range over",
                left: start.dim,
                right: end.dim,
            });
        }
        let ratio = match step {
            Step::Add(s) => {
                if s.dim != start.dim {
                    return Err(invalid(format!(
                        "the step is {} but the bounds are {}",
                        s.dim.describe(),
                        start.dim.describe()
                    )));
                }
                if s.value <= 0.0 || !s.value.is_finite() {
                    return Err(invalid(format!("the step must be positive, found {}", s.value)));
                }
                (end.value - start.value) / s.value
            }
            Step::Mul(f) => {
                if f <= 1.0 || !f.is_finite() {
                    return Err(invalid(format!(
                        "a `step *` factor must be greater than 1, found {f}"
                    )));
                }
                if start.value <= 0.0 || end.value <= 0.0 {
                    return Err(invalid("a `step *` range needs positive bounds".to_string()));
                }
                (end.value / start.value).ln() / f.ln()
            }
        };
        let count = if inclusive {
            (ratio + RANGE_EPS).floor() + 1.0
        } else {
            (ratio - RANGE_EPS).ceil()
        };
        if count.is_nan() || count < 1.0 {
            let op = if inclusive { "..=" } else { ".." };
            return Err(invalid(format!("`{start}{op}{end}` is empty")));
        }
        if count > MAX_CANDIDATES as f64 {
            return Err(DslErrorKind::TooManyCandidates {
                count,
                limit: MAX_CANDIDATES,
            });
        }
        // In range: 1 <= count <= MAX_CANDIDATES, a whole number.
        Ok(Range {
            start,
            end,
            inclusive,
            step,
            count: count as usize,
        })
    }
    pub fn start(&self) -> Quantity {
        self.start
    }
    pub fn end(&self) -> Quantity {
        self.end
    }
    pub fn inclusive(&self) -> bool {
        self.inclusive
    }
    pub fn step(&self) -> Step {
        self.step
    }
    /// Number of candidates (at least 1).
    pub fn len(&self) -> usize {
        self.count
    }
    /// Always false: empty ranges are rejected by [`Range::new`].
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The `i`-th candidate, computed directly (no accumulated rounding).
    pub fn nth(&self, i: usize) -> Option<Quantity> {
        (i < self.count).then(|| {
            let value = match self.step {
                Step::Add(s) => self.start.value + i as f64 * s.value,
                Step::Mul(f) => self.start.value * f.powi(i as i32),
            };
            Quantity::new(value, self.start.dim)
        })
    }
}

impl Value {
    /// The dimension shared by every candidate.
    pub fn dim(&self) -> Dim {
        match self {
            Value::Scalar(q) => q.dim,
            Value::Range(r) => r.start.dim,
            Value::Set(m) => m.first().map_or(Dim::NONE, |q| q.dim),
        }
    }

    /// The single value, if this is a scalar.
    pub fn as_scalar(&self) -> Option<Quantity> {
        match self {
            Value::Scalar(q) => Some(*q),
            _ => None,
        }
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        match self {
            Value::Scalar(_) => 1,
            Value::Range(r) => r.len(),
            Value::Set(m) => m.len(),
        }
    }

    /// Always false: values hold at least one candidate.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every value this stands for: one for a scalar, each step of a range, each member of
    /// a set (in written order).
    pub fn candidates(&self) -> Vec<Quantity> {
        match self {
            Value::Scalar(q) => vec![*q],
            Value::Range(r) => (0..r.len()).filter_map(|i| r.nth(i)).collect(),
            Value::Set(m) => m.clone(),
        }
    }

    /// [`Value::candidates`] converted to `T` (e.g. `u64` for `{16, 32, 64}`).
    pub fn candidates_as<T: FromQuantity>(&self) -> Result<Vec<T>, DslError> {
        self.candidates().into_iter().map(|q| q.to::<T>()).collect()
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "a single value",
            Value::Range(_) => "a range",
            Value::Set(_) => "a set",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

impl Expr {
    /// The original text.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// The original text, shared.
    pub fn source_arc(&self) -> &Arc<str> {
        &self.src
    }

    pub fn top(&self) -> &Top {
        &self.top
    }

    /// The span of the whole expression (leading/trailing blanks excluded).
    pub fn span(&self) -> Span {
        match &self.top {
            Top::Scalar(n) => n.span,
            Top::Range { span, .. } | Top::Set { span, .. } => *span,
        }
    }

    /// True when the text is a single value (not a range or a set).
    pub fn is_scalar(&self) -> bool {
        matches!(self.top, Top::Scalar(_))
    }

    /// Every name referenced, in order of appearance (with repeats), for dependency
    /// ordering and cycle checks by the caller.
    pub fn references(&self) -> Vec<&str> {
        fn walk<'a>(node: &'a Node, out: &mut Vec<&'a str>) {
            match &node.kind {
                NodeKind::Number(_) => {}
                NodeKind::Ref(name) => out.push(name),
                NodeKind::WithUnit(operand, _) | NodeKind::Neg(operand) => walk(operand, out),
                NodeKind::Binary(_, lhs, rhs) => {
                    walk(lhs, out);
                    walk(rhs, out);
                }
            }
        }
        let mut out = Vec::new();
        match &self.top {
            Top::Scalar(n) => walk(n, &mut out),
            Top::Range { start, end, step, .. } => {
                walk(start, &mut out);
                walk(end, &mut out);
                match step {
                    Some(StepNode::Add(s) | StepNode::Mul(s)) => walk(s, &mut out),
                    None => {}
                }
            }
            Top::Set { members, .. } => members.iter().for_each(|m| walk(m, &mut out)),
        }
        out
    }

    /// Evaluates to a scalar, range or set. `env` resolves names (`None`: unknown name).
    pub fn eval(&self, env: &dyn Fn(&str) -> Option<Quantity>) -> Result<Value, DslError> {
        let ev = Evaluator { src: &self.src, env };
        match &self.top {
            Top::Scalar(n) => ev.node(n).map(Value::Scalar),
            Top::Range {
                start,
                end,
                inclusive,
                step,
                span,
            } => {
                let start_q = ev.node(start)?;
                let end_q = ev.node(end)?;
                let step_q = match step {
                    Some(StepNode::Add(s)) => Step::Add(ev.node(s)?),
                    Some(StepNode::Mul(s)) => {
                        let f = ev.node(s)?;
                        if !f.is_dimensionless() {
                            return Err(ev
                                .err(
                                    DslErrorKind::InvalidRange {
                                        reason: format!(
                                            "a `step *` factor must be a plain number, found {}",
                                            f.dim.describe()
                                        ),
                                    },
                                    s.span,
                                )
                                .with_primary_label("not a plain number"));
                        }
                        Step::Mul(f.value)
                    }
                    None if start_q.is_dimensionless() => Step::Add(Quantity::number(1.0)),
                    None => {
                        return Err(ev.err(
                            DslErrorKind::InvalidRange {
                                reason: format!("a range of {} needs a `step`", start_q.dim.describe()),
                            },
                            *span,
                        ));
                    }
                };
                Range::new(start_q, end_q, *inclusive, step_q)
                    .map(Value::Range)
                    .map_err(|kind| {
                        let err_span = match (&kind, step) {
                            (
                                DslErrorKind::InvalidRange { reason },
                                Some(StepNode::Add(s) | StepNode::Mul(s)),
                            ) if reason.contains("step") => s.span,
                            _ => *span,
                        };
                        ev.err(kind, err_span)
                    })
            }
            Top::Set { members, .. } => {
                let mut out = Vec::with_capacity(members.len());
                for m in members {
                    let q = ev.node(m)?;
                    if let Some(first) = out.first().copied().map(|f: Quantity| f.dim)
                        && first != q.dim
                    {
                        return Err(ev
                            .err(DslErrorKind::MixedSet { first, other: q.dim }, m.span)
                            .with_label(members[0].span, format!("this is {}", first.describe())));
                    }
                    out.push(q);
                }
                Ok(Value::Set(out))
            }
        }
    }

    /// Evaluates and requires a single value.
    pub fn eval_scalar(&self, env: &dyn Fn(&str) -> Option<Quantity>) -> Result<Quantity, DslError> {
        match self.eval(env)? {
            Value::Scalar(q) => Ok(q),
            other => Err(DslError::new(
                DslErrorKind::NotAScalar {
                    found: other.kind_name(),
                },
                self.src.clone(),
                self.span(),
            )),
        }
    }

    /// Evaluates a single value and converts it, e.g. `expr.eval_as::<Bytes>(&env)`; a
    /// dimension error points at the whole expression.
    pub fn eval_as<T: FromQuantity>(&self, env: &dyn Fn(&str) -> Option<Quantity>) -> Result<T, DslError> {
        let q = self.eval_scalar(env)?;
        T::from_quantity(q).map_err(|kind| DslError::new(kind, self.src.clone(), self.span()))
    }

    /// Evaluates and converts every candidate (a scalar gives one).
    pub fn eval_candidates<T: FromQuantity>(
        &self,
        env: &dyn Fn(&str) -> Option<Quantity>,
    ) -> Result<Vec<T>, DslError> {
        let value = self.eval(env)?;
        value
            .candidates_as::<T>()
            .map_err(|e| e.or_at(&self.src, self.span()))
    }
}

struct Evaluator<'a> {
    src: &'a Arc<str>,
    env: &'a dyn Fn(&str) -> Option<Quantity>,
}

impl Evaluator<'_> {
    fn err(&self, kind: DslErrorKind, span: Span) -> DslError {
        DslError::new(kind, self.src.clone(), span)
    }

    fn finite(&self, q: Quantity, span: Span) -> Result<Quantity, DslError> {
        if q.value.is_finite() {
            Ok(q)
        } else {
            Err(self.err(DslErrorKind::NotFinite { value: q.value }, span))
        }
    }

    fn node(&self, node: &Node) -> Result<Quantity, DslError> {
        match &node.kind {
            NodeKind::Number(v) => self.finite(Quantity::number(*v), node.span),
            NodeKind::Ref(name) => match (self.env)(name) {
                Some(q) => self.finite(q, node.span),
                None => Err(self.err(
                    DslErrorKind::UnknownName {
                        name: name.to_string(),
                    },
                    node.span,
                )),
            },
            NodeKind::WithUnit(operand, unit) => {
                let q = self.node(operand)?;
                let dim = q
                    .dim
                    .checked_mul(unit.dim)
                    .ok_or_else(|| self.err(DslErrorKind::DimensionOverflow, node.span))?;
                self.finite(Quantity::new(q.value * unit.factor, dim), node.span)
            }
            NodeKind::Neg(operand) => {
                let q = self.node(operand)?;
                Ok(Quantity::new(-q.value, q.dim))
            }
            NodeKind::Binary(op, lhs, rhs) => {
                let l = self.node(lhs)?;
                let r = self.node(rhs)?;
                let q = self.binary(*op, l, r, node, lhs, rhs)?;
                self.finite(q, node.span)
            }
        }
    }

    fn binary(
        &self,
        op: BinOp,
        l: Quantity,
        r: Quantity,
        node: &Node,
        lhs: &Node,
        rhs: &Node,
    ) -> Result<Quantity, DslError> {
        let overflow = || self.err(DslErrorKind::DimensionOverflow, node.span);
        match op {
            BinOp::Add | BinOp::Sub => {
                if l.dim != r.dim {
                    let verb = if op == BinOp::Add { "add" } else { "subtract" };
                    let op_span = operator_span(self.src, lhs.span, rhs.span);
                    return Err(self
                        .err(
                            DslErrorKind::IncompatibleDims {
                                op: verb,
                                left: l.dim,
                                right: r.dim,
                            },
                            op_span,
                        )
                        .with_label(lhs.span, format!("this is {}", l.dim.describe()))
                        .with_label(rhs.span, format!("this is {}", r.dim.describe())));
                }
                let value = if op == BinOp::Add {
                    l.value + r.value
                } else {
                    l.value - r.value
                };
                Ok(Quantity::new(value, l.dim))
            }
            BinOp::Mul => Ok(Quantity::new(
                l.value * r.value,
                l.dim.checked_mul(r.dim).ok_or_else(overflow)?,
            )),
            BinOp::Div => {
                if r.value == 0.0 {
                    return Err(self.err(DslErrorKind::DivisionByZero, rhs.span));
                }
                Ok(Quantity::new(
                    l.value / r.value,
                    l.dim.checked_div(r.dim).ok_or_else(overflow)?,
                ))
            }
            BinOp::Pow => {
                if !r.is_dimensionless() {
                    return Err(self.err(DslErrorKind::ExponentHasDimension { dim: r.dim }, rhs.span));
                }
                if l.is_dimensionless() {
                    return Ok(Quantity::number(l.value.powf(r.value)));
                }
                let exponent = r.value;
                if exponent.fract() != 0.0 || exponent.abs() > 127.0 {
                    if exponent.fract() != 0.0 {
                        return Err(self.err(
                            DslErrorKind::FractionalPower {
                                base: l.dim,
                                exponent,
                            },
                            rhs.span,
                        ));
                    }
                    return Err(overflow());
                }
                // |exponent| <= 127 and whole: exact as i32.
                let power = exponent as i32;
                Ok(Quantity::new(
                    l.value.powi(power),
                    l.dim.powi(power).ok_or_else(overflow)?,
                ))
            }
        }
    }
}

/// The span of the operator between two operands (the first non-blank text between them).
fn operator_span(src: &str, lhs: Span, rhs: Span) -> Span {
    let between = src.get(lhs.end()..rhs.offset).unwrap_or("");
    let trimmed_start = between.len() - between.trim_start().len();
    let op_len = between.trim().len().max(1);
    Span::new(lhs.end() + trimmed_start, op_len.min(between.len().max(1)))
}
