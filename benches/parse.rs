//! Throughput of the description language: parse, evaluate, and both, over typical
//! expressions from substrate, model and search-space files; plus reading a small YAML
//! description whose fields are expressions. Run: `cargo bench --bench parse`.
//! Per-expression cost: the `*_all` benches time the whole list of `TYPICAL` expressions; divide
//! by its length (12).

use llmforge::dsl::{self, Quantity};
use llmforge::units::{BytesPerSec, Hertz};
use llmforge::yaml::{Expression, SourceFile};
use std::collections::BTreeMap;

fn main() {
    divan::main();
}

const TYPICAL: [&str; 12] = [
    "204.8 GB/s",
    "1.5 GHz",
    "512 KiB",
    "0.2 pJ/bit",
    "16 * 16",
    "4 B/cycle",
    "clock * 4 B/cycle",
    "(a + b) / 2",
    "2^10",
    "64..=512 step 32",
    "{16, 32, 64}",
    "dram.bandwidth / n_banks + 1 GB/s",
];

fn env(name: &str) -> Option<Quantity> {
    match name {
        "clock" => Some(Hertz::ghz(1.5).into()),
        "a" => Some(Quantity::number(3.0)),
        "b" => Some(Quantity::number(5.0)),
        "dram.bandwidth" => Some(BytesPerSec::new(204.8e9).into()),
        "n_banks" => Some(Quantity::number(8.0)),
        _ => None,
    }
}

#[divan::bench(args = TYPICAL)]
fn parse_eval(b: divan::Bencher, src: &str) {
    b.bench(|| {
        dsl::parse(divan::black_box(src))
            .and_then(|e| e.eval(&env))
            .unwrap()
    });
}

#[divan::bench]
fn parse_all(b: divan::Bencher) {
    b.bench(|| {
        for src in TYPICAL {
            divan::black_box(dsl::parse(divan::black_box(src)).unwrap());
        }
    });
}

#[divan::bench]
fn eval_all(b: divan::Bencher) {
    let exprs: Vec<_> = TYPICAL.iter().map(|s| dsl::parse(s).unwrap()).collect();
    b.bench(|| {
        for e in &exprs {
            divan::black_box(e.eval(&env).unwrap());
        }
    });
}

#[divan::bench]
fn parse_eval_all(b: divan::Bencher) {
    b.bench(|| {
        for src in TYPICAL {
            divan::black_box(
                dsl::parse(divan::black_box(src))
                    .and_then(|e| e.eval(&env))
                    .unwrap(),
            );
        }
    });
}

#[divan::bench]
fn range_candidates_1k(b: divan::Bencher) {
    let e = dsl::parse("1..=1024").unwrap();
    b.bench(|| e.eval(&env).unwrap().candidates_as::<u64>().unwrap());
}

/// A 12-field YAML description (every field an expression): read, parse and evaluate.
#[divan::bench]
fn yaml_description_12_fields(b: divan::Bencher) {
    let text: String = TYPICAL
        .iter()
        .enumerate()
        .map(|(i, s)| format!("f{i:02}: \"{s}\"\n"))
        .collect();
    let file = SourceFile::new("bench.yaml", text);
    b.bench(|| {
        let fields: BTreeMap<String, Expression> = file.parse().unwrap();
        for e in fields.values() {
            divan::black_box(e.eval(&file, &env).unwrap());
        }
    });
}
