//! Properties of the parser and evaluator (proptest), and the generators the fuzz run reuses.

use llmforge::dsl::{self, Dim, DslError, Expr, Value};
use proptest::prelude::*;

use super::example_env;

/// Tokens of the language, valid and not, for token soups.
const TOKENS: &[&str] = &[
    "0",
    "1",
    "16",
    "1.5",
    "2e3",
    "1e-9",
    "007",
    "1.",
    ".5",
    "1e",
    "1e400",
    "B",
    "KiB",
    "kB",
    "KB",
    "GB",
    "Gb",
    "GB/s",
    "B/cycle",
    "pJ/bit",
    "mm^2",
    "TFLOPS",
    "FLOPs",
    "%",
    "µs",
    "μs",
    "Hz",
    "GHz",
    "s",
    "cycle",
    "W",
    "clock",
    "a",
    "b",
    "dram.bandwidth",
    "n_banks",
    "x",
    "step",
    "+",
    "-",
    "*",
    "/",
    "^",
    "**",
    "(",
    ")",
    "{",
    "}",
    ",",
    "..",
    "..=",
    ".",
    "e",
    "^-",
    "--",
    "é",
    "\t",
    "\n",
    "\"",
    "'",
    "#",
    "\u{0}",
    "∞",
    "💾",
];

/// A soup of tokens, each followed by a blank or not.
pub fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), any::<bool>()), 0..24).prop_map(|parts| {
        parts
            .iter()
            .map(|(t, space)| if *space { format!("{t} ") } else { (*t).to_string() })
            .collect()
    })
}

const UNITS: &[&str] = &[
    "B", "KiB", "MiB", "kB", "GB", "bit", "GB/s", "B/cycle", "pJ/bit", "pJ", "mW", "W", "ns", "s", "GHz",
    "MHz", "cycle", "TFLOPS", "FLOP", "MAC", "mm^2", "um^2", "s^-1", "%",
];
const NAMES: &[&str] = &["clock", "a", "b", "dram.bandwidth", "n_banks", "missing"];

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..100_000).prop_map(|n| n.to_string()),
        (0.0f64..1e6).prop_map(dsl::format_number),
        (1u32..10, -12i32..13).prop_map(|(m, e)| format!("{m}e{e}")),
        (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
    ]
}

fn blank() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["", " ", "  ", "\t"][..])
}

/// Text of a syntactically valid scalar expression (operands parenthesised so that every
/// combination parses), with random blanks.
pub fn scalar_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        number_text(),
        prop::sample::select(NAMES).prop_map(str::to_string),
        (number_text(), blank(), prop::sample::select(UNITS)).prop_map(|(n, b, u)| format!("{n}{b}{u}")),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                blank(),
                prop::sample::select(&["+", "-", "*", "/"][..]),
                blank(),
                inner.clone()
            )
                .prop_map(|(l, b1, op, b2, r)| format!("({l}){b1}{op}{b2}({r})")),
            inner.clone().prop_map(|e| format!("-({e})")),
            (inner.clone(), prop::sample::select(&["^", "**"][..]), -3i32..4)
                .prop_map(|(e, op, k)| format!("({e}){op}{k}")),
            (inner.clone(), prop::sample::select(UNITS)).prop_map(|(e, u)| format!("({e}) {u}")),
        ]
    })
}

/// Text of a valid value: scalar, range or set.
pub fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => scalar_text(),
        1 => (scalar_text(), prop::sample::select(&["..", "..="][..]), scalar_text(), scalar_text())
            .prop_map(|(a, op, b, s)| format!("{a}{op}{b} step {s}")),
        1 => (0u32..100, 0u32..100).prop_map(|(a, b)| format!("{a}..={b}")),
        1 => prop::collection::vec(scalar_text(), 1..5).prop_map(|m| format!("{{{}}}", m.join(", "))),
    ]
}

/// The invariants every input must keep; returns whether it parsed.
pub fn check_invariants(src: &str) -> Result<bool, String> {
    let check_error = |e: &DslError| -> Result<(), String> {
        if let Some(text) = e.source_text() {
            for (span, _) in e.labels() {
                if span.end() > text.len()
                    || !text.is_char_boundary(span.offset)
                    || !text.is_char_boundary(span.end())
                {
                    return Err(format!("bad span {span:?} in {text:?} for {e}"));
                }
            }
        }
        if e.to_string().is_empty() {
            return Err("empty message".into());
        }
        Ok(())
    };
    let expr = match dsl::parse(src) {
        Ok(expr) => expr,
        Err(e) => {
            check_error(&e)?;
            return Ok(false);
        }
    };
    let printed = expr.to_string();
    let reparsed =
        dsl::parse(&printed).map_err(|e| format!("{src:?} prints as {printed:?}, which fails: {e}"))?;
    if reparsed != expr {
        return Err(format!("{src:?} prints as {printed:?}, which parses differently"));
    }
    if reparsed.to_string() != printed {
        return Err(format!("printing is not idempotent for {src:?}"));
    }
    let first = expr.eval(&example_env);
    let second = reparsed.eval(&example_env);
    match (&first, &second) {
        (Ok(a), Ok(b)) if same(a, b) => {}
        // Same error (by message: `NotFinite { value: NaN }` is not `==` to itself).
        (Err(a), Err(b)) if a.to_string() == b.to_string() => check_error(a)?,
        _ => {
            return Err(format!(
                "{src:?} and {printed:?} evaluate differently: {first:?} vs {second:?}"
            ));
        }
    }
    Ok(true)
}

fn same(a: &Value, b: &Value) -> bool {
    let (x, y) = (a.candidates(), b.candidates());
    x.len() == y.len()
        && x.iter()
            .zip(&y)
            .all(|(p, q)| p.dim == q.dim && (p.value == q.value || (p.value.is_nan() && q.value.is_nan())))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(src in any::<String>()) {
        check_invariants(&src).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn never_panics_on_token_soup(src in token_soup()) {
        check_invariants(&src).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn generated_expressions_parse_and_round_trip(src in value_text()) {
        let parsed = check_invariants(&src).map_err(TestCaseError::fail)?;
        prop_assert!(parsed, "valid text failed to parse: {:?}: {:?}", src, dsl::parse(&src).err());
    }

    #[test]
    fn binary_prefixes_are_powers_of_1024(x in 0.0f64..1e9, k in 0usize..4) {
        let (unit, factor) = [("KiB", "1024"), ("MiB", "1048576"), ("GiB", "1073741824"), ("TiB", "1099511627776")][k];
        let x = dsl::format_number(x);
        let a = dsl::eval_str(&format!("{x} {unit}"), &dsl::no_names).unwrap();
        let b = dsl::eval_str(&format!("{x} * {factor} B"), &dsl::no_names).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn decimal_prefixes_are_powers_of_1000(x in 0u64..1_000_000_000, k in 0usize..4) {
        let (unit, factor) = [("kB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12)][k];
        let q = dsl::eval_str(&format!("{x} {unit}"), &dsl::no_names).unwrap().as_scalar().unwrap();
        prop_assert_eq!(q.value, x as f64 * factor);
        prop_assert_eq!(q.dim, Dim::BYTES);
    }

    #[test]
    fn dimensions_follow_the_algebra(
        i in 0usize..dsl::unit_table().len(),
        j in 0usize..dsl::unit_table().len(),
        p in 1u32..1000,
        q in 1u32..1000,
    ) {
        let (u, v) = (dsl::unit_table()[i], dsl::unit_table()[j]);
        let eval = |src: String| dsl::eval_str(&src, &dsl::no_names).map(|v| v.as_scalar().unwrap());
        let (a, b) = (format!("({p} {})", u.spelling), format!("({q} {})", v.spelling));
        let product = eval(format!("{a} * {b}")).unwrap();
        prop_assert_eq!(product.dim, u.dim.checked_mul(v.dim).unwrap());
        let quotient = eval(format!("{a} / {b}")).unwrap();
        prop_assert_eq!(quotient.dim, u.dim.checked_div(v.dim).unwrap());
        let back = eval(format!("{a} * {b} / {b}")).unwrap();
        prop_assert_eq!(back.dim, u.dim);
        let expected = f64::from(p) * u.factor;
        prop_assert!((back.value - expected).abs() <= 1e-12 * expected.abs());
        let sum = eval(format!("{a} + {b}"));
        prop_assert_eq!(sum.is_ok(), u.dim == v.dim, "{} + {}: {:?}", a, b, sum);
        let squared = eval(format!("{a}^2")).unwrap();
        prop_assert_eq!(squared.dim, u.dim.powi(2).unwrap());
    }

    #[test]
    fn dim_products_commute_and_invert(a in prop::array::uniform6(-20i8..20), b in prop::array::uniform6(-20i8..20)) {
        let (a, b) = (Dim(a), Dim(b));
        prop_assert_eq!(a.checked_mul(b), b.checked_mul(a));
        prop_assert_eq!(a.checked_mul(b).and_then(|ab| ab.checked_div(b)), Some(a));
        prop_assert_eq!(a.powi(2), a.checked_mul(a));
    }
}

#[test]
fn expr_equality_ignores_layout() {
    let a: Expr = dsl::parse("( 1+2 )*x").unwrap();
    let b: Expr = dsl::parse("(1 + 2) * x").unwrap();
    assert_eq!(a, b);
    assert_ne!(a, dsl::parse("1 + 2 * x").unwrap());
}
