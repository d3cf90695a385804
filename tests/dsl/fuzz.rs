//! A long proptest-driven fuzz run on stable Rust (cargo-fuzz needs nightly):
//!
//! ```text
//! LLMFORGE_FUZZ_SECS=600 cargo test --release --test tests fuzz_expr -- --ignored --nocapture
//! ```
//!
//! Inputs mix arbitrary strings, token soups, valid expressions and mutations of valid
//! expressions; each must keep [`super::props::check_invariants`] without panicking, and its
//! errors must render. `LLMFORGE_FUZZ_SEED` picks the seed (default 1), so a failure
//! reproduces.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::props::{check_invariants, token_soup, value_text};

/// A valid expression with a few random edits (delete, duplicate or insert a character).
fn mutated() -> impl Strategy<Value = String> {
    let edit = (
        0usize..3,
        any::<prop::sample::Index>(),
        prop::sample::select(&['(', ')', '.', '^', '-', 'B', '{', ' ', '9'][..]),
    );
    (value_text(), prop::collection::vec(edit, 1..4)).prop_map(|(text, edits)| {
        let mut chars: Vec<char> = text.chars().collect();
        for (kind, at, c) in edits {
            if chars.is_empty() {
                chars.push(c);
                continue;
            }
            let k = at.index(chars.len());
            match kind {
                0 => {
                    chars.remove(k);
                }
                1 => chars.insert(k, chars[k]),
                _ => chars.insert(k, c),
            }
        }
        chars.into_iter().collect()
    })
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "long run: LLMFORGE_FUZZ_SECS=600 cargo test --release --test tests fuzz_expr -- --ignored"]
fn fuzz_expr() {
    let budget = Duration::from_secs(env_number("LLMFORGE_FUZZ_SECS", 10));
    let seed = env_number("LLMFORGE_FUZZ_SEED", 1);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = prop_oneof![
        1 => any::<String>(),
        2 => token_soup(),
        2 => value_text(),
        3 => mutated(),
    ];
    let start = Instant::now();
    let (mut cases, mut parsed, mut rendered) = (0u64, 0u64, 0u64);
    while start.elapsed() < budget {
        let input = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree.current(),
            Err(e) => panic!("generator failed: {e}"),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let ok = check_invariants(&input)?;
            // Render one error in 8 (rendering dominates the cost).
            if !ok && cases % 8 == 0 {
                if let Err(e) = llmforge::dsl::parse(&input) {
                    let _ = super::render(&e);
                }
                return Ok((ok, true));
            }
            Ok::<_, String>((ok, false))
        }));
        match outcome {
            Ok(Ok((ok, did_render))) => {
                parsed += u64::from(ok);
                rendered += u64::from(did_render);
            }
            Ok(Err(why)) => {
                panic!("invariant broken after {cases} cases (seed {seed}): {why}\ninput: {input:?}")
            }
            Err(_) => panic!("panic after {cases} cases (seed {seed}) on input {input:?}"),
        }
        cases += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz_expr: {cases} cases in {secs:.1} s ({:.0}/s), {parsed} parsed, {rendered} errors rendered, seed {seed}",
        cases as f64 / secs
    );
    assert!(cases > 0);
}
