use super::*;
use crate::units::{Bytes, BytesPerCycle, BytesPerSec, FlopsPerSec, Hertz, SquareMeters, Watts};

fn q(src: &str) -> Quantity {
    match eval_str(src, &no_names) {
        Ok(Value::Scalar(q)) => q,
        other => panic!("{src}: {other:?}"),
    }
}

fn err(src: &str) -> DslError {
    match eval_str(src, &no_names) {
        Err(e) => e,
        Ok(v) => panic!("{src}: expected an error, got {v:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[test]
fn quantities_from_the_brief() {
    assert!(close(q("204.8 GB/s").to_bytes_per_sec().unwrap().get(), 204.8e9));
    assert_eq!(q("1.5 GHz").to_hertz().unwrap(), Hertz::ghz(1.5));
    assert_eq!(q("512 KiB").to_bytes().unwrap(), Bytes::kib(512.0));
    assert!(close(q("0.2 pJ").to_joules().unwrap().get(), 0.2e-12));
    assert_eq!(q("16 * 16").to_integer().unwrap(), 256);
    assert_eq!(
        q("4 B/cycle").to_bytes_per_cycle().unwrap(),
        BytesPerCycle::new(4.0)
    );
    assert_eq!(q("2^10").to_integer().unwrap(), 1024);
    assert_eq!(q("2**10").to_integer().unwrap(), 1024);
    assert_eq!(q("(3 + 5) / 2").to_count().unwrap(), 4.0);
    assert_eq!(
        q("275 TFLOPS").to_flops_per_sec().unwrap(),
        FlopsPerSec::new(275e12)
    );
    assert_eq!(q("275 TFLOP/s"), q("275 TFLOPS"));
    assert_eq!(q("15 W").to_watts().unwrap(), Watts::new(15.0));
    assert_eq!(q("1 J/s"), q("1 W"));
    assert!(close(q("250 mW").to_watts().unwrap().get(), 0.25));
    assert!(close(q("20 ns").to_seconds().unwrap().get(), 20e-9));
    assert!(close(q("3 us").value, q("3 µs").value));
    assert_eq!(q("2 mm^2").to_area().unwrap(), SquareMeters::new(2e-6));
    assert!(close(q("(2 mm)^2").value, 4e-6));
    assert_eq!(q("50 %").to_count().unwrap(), 0.5);
    assert_eq!(q("1 MAC"), q("2 FLOP"));
    assert!(close(q("8 pJ/bit").in_dim(Dim::JOULES_PER_BYTE).unwrap(), 64e-12));
    assert_eq!(q("1 cycle/s"), q("1 Hz"));
    assert_eq!(q("1 s^-1").dim, Dim([0, -1, 0, 0, 0, 0]));
    assert_eq!(
        q("1.5 GHz * 4 B/cycle").to_bytes_per_sec().unwrap(),
        BytesPerSec::new(6e9)
    );
    assert_eq!(q("3000 cycle / 1.5 GHz").to_seconds().unwrap().get(), 2e-6);
    assert_eq!(q("24 KB"), q("24 kB"));
    assert_eq!(q("2^10 B"), q("1 KiB"));
    assert_eq!(q("-4 B").value, -4.0);
    assert_eq!(q("-2^2").value, -4.0);
    assert_eq!(q("2^3^2").value, 512.0);
    assert_eq!(q("2^-1").value, 0.5);
    assert_eq!(q("10 - 2 - 3").value, 5.0);
    assert_eq!(q("64 / 4 / 2").value, 8.0);
    assert_eq!(q("1e3 B").value, 1000.0);
    assert_eq!(q("1.5e-3 s"), q("1.5 ms"));
}

#[test]
fn references_and_dotted_names() {
    let env = |name: &str| match name {
        "clock" => Some(Quantity::from(Hertz::ghz(1.0))),
        "dram.bandwidth" => Some(Quantity::from(BytesPerSec::new(100e9))),
        "n_banks" => Some(Quantity::number(8.0)),
        _ => None,
    };
    let e = parse("clock * 4 B/cycle").unwrap();
    assert_eq!(e.eval_as::<BytesPerSec>(&env).unwrap(), BytesPerSec::new(4e9));
    let e = parse("clock * 4 B")
        .unwrap()
        .eval_as::<BytesPerSec>(&env)
        .unwrap_err();
    assert!(e.help_text().unwrap().contains("`clock * 4 B/cycle`"), "{e}");
    let e = parse("dram.bandwidth / n_banks").unwrap();
    assert_eq!(e.references(), ["dram.bandwidth", "n_banks"]);
    assert_eq!(e.eval_as::<BytesPerSec>(&env).unwrap(), BytesPerSec::new(12.5e9));
    let e = parse("(n_banks + 8) KiB").unwrap();
    assert_eq!(e.eval_as::<Bytes>(&env).unwrap(), Bytes::kib(16.0));
    let e = parse("1 GB / n_banks").unwrap();
    assert_eq!(e.eval_as::<Bytes>(&env).unwrap(), Bytes::new(125e6));
    let e = parse("clock * missing.field").unwrap();
    let err = e.eval(&env).unwrap_err();
    assert_eq!(
        err.kind(),
        &DslErrorKind::UnknownName {
            name: "missing.field".into()
        }
    );
    assert_eq!(err.span(), Some(Span::new(8, 13)));
}

#[test]
fn dotted_names_are_not_units() {
    // Found by fuzz_expr: `m` (metre) must not swallow the first part of `m.count`.
    let e = parse("512 MiB / m.count").unwrap();
    assert_eq!(e.references(), ["m.count"]);
    assert_eq!(e.to_string(), "512 MiB / m.count");
    // ... while a range right after a unit still ends the unit.
    let v = eval_str("4 B/s..=8 B/s step 2 B/s", &no_names).unwrap();
    assert_eq!(
        v.candidates_as::<BytesPerSec>().unwrap(),
        [4.0, 6.0, 8.0].map(BytesPerSec::new)
    );
}

#[test]
fn ranges_and_sets() {
    let v = eval_str("64..=512 step 32", &no_names).unwrap();
    let c = v.candidates_as::<u64>().unwrap();
    assert_eq!(c.len(), 15);
    assert_eq!((c[0], c[14]), (64, 512));
    assert_eq!(
        eval_str("1..16", &no_names)
            .unwrap()
            .candidates_as::<u64>()
            .unwrap(),
        (1..16).collect::<Vec<_>>()
    );
    assert_eq!(eval_str("1..=1", &no_names).unwrap().len(), 1);
    assert_eq!(
        eval_str("16..=1024 step *2", &no_names)
            .unwrap()
            .candidates_as::<u64>()
            .unwrap(),
        [16, 32, 64, 128, 256, 512, 1024]
    );
    assert_eq!(
        eval_str("64 KiB ..= 256 KiB step 64 KiB", &no_names)
            .unwrap()
            .candidates_as::<Bytes>()
            .unwrap(),
        [64.0, 128.0, 192.0, 256.0].map(Bytes::kib)
    );
    let r = eval_str("0.1..=0.3 step 0.1", &no_names).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(
        eval_str("{16, 32, 64}", &no_names)
            .unwrap()
            .candidates_as::<u64>()
            .unwrap(),
        [16, 32, 64]
    );
    assert_eq!(
        eval_str("{24 KB, 48 KB,}", &no_names)
            .unwrap()
            .candidates_as::<Bytes>()
            .unwrap(),
        [Bytes::kb(24.0), Bytes::kb(48.0)]
    );
    assert_eq!(eval_str("{24 KB, 48 KB}", &no_names).unwrap().dim(), Dim::BYTES);
    // Errors.
    assert!(matches!(err("5..1").kind(), DslErrorKind::InvalidRange { .. }));
    assert!(matches!(err("1..1").kind(), DslErrorKind::InvalidRange { .. }));
    assert!(matches!(
        err("1..=4 step 0").kind(),
        DslErrorKind::InvalidRange { .. }
    ));
    assert!(matches!(
        err("1..=4 step *1").kind(),
        DslErrorKind::InvalidRange { .. }
    ));
    assert!(matches!(
        err("1 KiB..=4 KiB").kind(),
        DslErrorKind::InvalidRange { .. }
    ));
    assert!(matches!(
        err("1 KiB..=4 GHz step 1 KiB").kind(),
        DslErrorKind::IncompatibleDims { .. }
    ));
    assert!(matches!(
        err("0..1e12").kind(),
        DslErrorKind::TooManyCandidates { .. }
    ));
    assert!(matches!(err("{1 B, 2 s}").kind(), DslErrorKind::MixedSet { .. }));
    let e = parse("{1, 2}").unwrap();
    assert!(matches!(
        e.eval_scalar(&no_names).unwrap_err().kind(),
        DslErrorKind::NotAScalar { found: "a set" }
    ));
}

#[test]
fn dimension_errors_name_both_sides() {
    let e = err("204.8 GB/s + 1.5 GHz");
    assert_eq!(
        e.to_string(),
        "cannot add bandwidth (B/s) and frequency (cycle/s)"
    );
    // Primary label on the operator, then the two operands.
    let spans: Vec<Span> = e.labels().iter().map(|(s, _)| *s).collect();
    assert_eq!(spans, [Span::new(11, 1), Span::new(0, 10), Span::new(13, 7)]);

    let e = parse("512").unwrap().eval_as::<Bytes>(&no_names).unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected a quantity in bytes such as `512 KiB`, found the bare number 512"
    );
    let e = parse("4 B/cycle")
        .unwrap()
        .eval_as::<BytesPerSec>(&no_names)
        .unwrap_err();
    assert!(e.to_string().contains("found bytes per cycle (B/cycle)"), "{e}");
    assert!(e.help_text().unwrap().contains("clock"));
    assert!(matches!(
        err("2^(3 B)").kind(),
        DslErrorKind::ExponentHasDimension { .. }
    ));
    assert!(matches!(
        err("(4 B)^0.5").kind(),
        DslErrorKind::FractionalPower { .. }
    ));
    assert!(matches!(err("1 / 0").kind(), DslErrorKind::DivisionByZero));
    assert!(matches!(err("10^400").kind(), DslErrorKind::NotFinite { .. }));
    assert!(matches!(
        err("(1 B)^127 * (1 B)^127").kind(),
        DslErrorKind::DimensionOverflow
    ));
    assert_eq!(q("(2 B)^2").dim, Dim::BYTES.powi(2).unwrap());
    assert_eq!(Quantity::number(1.0).to_bytes().unwrap_err().span(), None);
}

#[test]
fn syntax_errors_point_at_the_token() {
    let cases: &[(&str, Span, &str)] = &[
        (
            "",
            Span::new(0, 0),
            "expected an operand (a number, a name or `(`), found end of input",
        ),
        (
            "16 *",
            Span::new(3, 1),
            "expected an operand (a number, a name or `(`), found end of input",
        ),
        (
            "(1 + 2",
            Span::new(5, 1),
            "expected an operator or a closing `)`, found end of input",
        ),
        ("1 + 2)", Span::new(5, 1), "found `)`"),
        ("16 16", Span::new(3, 2), "expected an operator"),
        ("512 KB/s/x", Span::new(3, 0), ""),
        ("4 XB", Span::new(2, 2), "unknown unit `XB`"),
        ("{1, 2", Span::new(4, 1), "expected `,` or `}`"),
        ("{}", Span::new(1, 1), "found `}`"),
        ("2 mm^x", Span::new(5, 1), "expected an integer power"),
        ("1..", Span::new(2, 1), "found end of input"),
        ("1..=8 step", Span::new(9, 1), "expected a step"),
        ("a b", Span::new(2, 1), "unknown unit `b`"),
    ];
    for (src, span, msg) in cases {
        if src == &"512 KB/s/x" {
            // `/x` is not a unit, so it divides by the name `x`: a valid parse.
            assert!(parse(src).is_ok());
            continue;
        }
        let e = parse(src).unwrap_err();
        assert_eq!(e.span(), Some(*span), "{src}: {e}");
        assert!(e.to_string().contains(msg), "{src}: {e}");
    }
}

#[test]
fn unit_suggestions() {
    let help = |src: &str| parse(src).unwrap_err().help_text().unwrap_or("").to_string();
    assert!(help("5 TFLOPs").contains("ambiguous"));
    assert!(help("5 Gb").contains("`GB`"));
    assert!(help("5 mhz").contains("`MHz` or `mHz`") || help("5 mhz").contains("`MHz`"));
    assert!(help("5 kiB").contains("KiB"));
    assert!(help("5 Gbps").contains("Gbit/s"));
}

#[test]
fn limits_stop_deep_input_without_overflowing_the_stack() {
    let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
    assert!(matches!(
        parse(&deep).unwrap_err().kind(),
        DslErrorKind::TooComplex { .. }
    ));
    let neg = "-".repeat(10_000) + "1";
    assert!(matches!(
        parse(&neg).unwrap_err().kind(),
        DslErrorKind::TooComplex { .. }
    ));
    let long = vec!["1"; 5000].join(" + ");
    assert!(matches!(
        parse(&long).unwrap_err().kind(),
        DslErrorKind::TooComplex { .. }
    ));
    let ok = vec!["1"; 400].join(" + ");
    assert_eq!(q(&ok).value, 400.0);
}

#[test]
fn display_is_canonical_and_reparses() {
    for (src, canonical) in [
        ("1+2*3", "1 + 2 * 3"),
        ("(1+2)*3", "(1 + 2) * 3"),
        ("a - (b - c)", "a - (b - c)"),
        ("2^3^2", "2^3^2"),
        ("(2^3)^2", "(2^3)^2"),
        ("-2^2", "-2^2"),
        ("(-2)^2", "(-2)^2"),
        ("2^-x", "2^-x"),
        ("204.8GB/s", "204.8 GB/s"),
        ("(a+b) KiB", "(a + b) KiB"),
        ("2 mm**2", "2 mm^2"),
        ("64..=512 step 32", "64..=512 step 32"),
        ("16 ..= 1024 step * 2", "16..=1024 step *2"),
        ("{ 24 KB ,48 KB }", "{24 KB, 48 KB}"),
        ("1e300", "1e300"),
        ("-(4) pJ/(bit)", "-4 pJ / (bit)"),
        ("4 B / (s^2)", "4 B / (s^2)"),
        ("4 B / (s KiB)", "4 B / (s KiB)"),
        ("0.000001", "1e-6"),
    ] {
        let e = parse(src).unwrap();
        assert_eq!(e.to_string(), canonical, "{src}");
        assert_eq!(parse(canonical).unwrap(), e, "{src}");
    }
}
