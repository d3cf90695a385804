//! Scaling laws: fit time on the Gemstones data, and predictions per second.
//!
//! `cargo bench --bench law`

use divan::{Bencher, black_box, counter::ItemsCount};
use llmforge::quality::law::{
    self, Chinchilla, ColumnMap, Conditional, CsvSpec, FitOptions, FitSpec, FittedLaw, Gemstones, Grid,
    Input, Law, LawForm, LawInputs,
};
use std::path::Path;

fn main() {
    divan::main();
}

fn gemstones_pairs() -> Vec<(LawInputs, f64)> {
    let spec = CsvSpec {
        columns: ColumnMap::parse(&["params=params_active_precise", "loss=final_loss"]).unwrap(),
        required: vec![Input::Width, Input::Depth, Input::Params, Input::Tokens],
        loss: true,
        ..Default::default()
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/law/gemstones_hot_100b_plus.csv");
    law::load_csv(&path, &spec).unwrap().pairs()
}

/// The CLI default for the Gemstones law: staged grid (128 (N, D) starts + 81 seeded starts).
#[divan::bench(sample_count = 3, sample_size = 1)]
fn fit_gemstones_staged(b: Bencher) {
    let pairs = gemstones_pairs();
    let opts = FitOptions {
        grid: Grid::staged(),
        ..FitOptions::default()
    };
    b.bench(|| {
        law::fit(&FitSpec::new(LawForm::Gemstones), black_box(&pairs), &opts)
            .unwrap()
            .objective
            .sum
    });
}

/// The CLI default for the (N, D) law: coarse grid, 128 starts.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn fit_gemstones_nd_coarse(b: Bencher) {
    let pairs = gemstones_pairs();
    let opts = FitOptions::default();
    b.bench(|| {
        law::fit(&FitSpec::new(LawForm::GemstonesNd), black_box(&pairs), &opts)
            .unwrap()
            .objective
            .sum
    });
}

fn candidates() -> Vec<LawInputs> {
    (0..4096)
        .map(|i| {
            let width = 256.0 + 64.0 * (i % 48) as f64;
            let depth = 2.0 + (i / 48 % 40) as f64;
            let params = 12.0 * width * width * depth + 50304.0 * width;
            LawInputs {
                params,
                tokens: 20.0 * params,
                width,
                depth,
                ffn_ratio: 2.0 + 0.01 * (i % 50) as f64,
            }
        })
        .collect()
}

fn predict_all(b: Bencher, law: FittedLaw) {
    let xs = candidates();
    b.counter(ItemsCount::new(xs.len())).bench(|| {
        let mut s = 0.0;
        for x in black_box(&xs) {
            s += law.predict_loss(x);
        }
        s
    });
}

#[divan::bench]
fn predict_chinchilla(b: Bencher) {
    predict_all(b, FittedLaw::given(Law::Chinchilla(Chinchilla::HOFFMANN_2022)));
}

#[divan::bench]
fn predict_gemstones(b: Bencher) {
    predict_all(b, FittedLaw::given(Law::Gemstones(Gemstones::PUBLISHED_HOT_100B)));
}

#[divan::bench]
fn predict_conditional(b: Bencher) {
    predict_all(
        b,
        FittedLaw::given(Law::Conditional(Conditional {
            a0: 1.0,
            a1: 0.02,
            a2: 0.01,
            b0: 1.0,
            b1: -0.05,
            b2: 0.1,
            l_opt: Chinchilla::HOFFMANN_2022,
        })),
    );
}
