//! The documented limits on every input (table and reasons: `dsl/README.md`, "Limits").
//!
//! Each limit is far above any real model, chip or run, and low enough that every size the
//! pipeline computes from validated inputs fits its integer type: with the model limits, a
//! model's exact parameter count is below 2^50 (checked with checked arithmetic when the
//! model is validated, [`crate::model::Model::validate`]); with the workload limits, the
//! largest graph quantity (attention scores of a prefill, batch x P^2 / 2 per head) is below
//! 2^50 as well. Inputs are refused at validation, with the file, line and column (or the
//! command-line flag) of the value and the limit it passes.

/// Transformer blocks after `repeat` is expanded. Deepest published: 126 (Llama-3.1-405B).
pub const MAX_LAYERS: u64 = 4096;
/// Model width d_model. Widest published: 18,432 (PaLM 540B); 7x headroom.
pub const MAX_D_MODEL: u64 = 1 << 17;
/// Vocabulary. Largest published: 262,144 (Gemma 3).
pub const MAX_VOCAB: u64 = 1 << 24;
/// Query heads (and so KV groups) per layer. Most published: 128.
pub const MAX_HEADS: u64 = 4096;
/// Query/key and value head dims. Largest published: 256.
pub const MAX_HEAD_DIM: u64 = 1 << 14;
/// FFN width, expert width, shared-expert width. Widest published: 53,248 (Llama-3.1-405B).
pub const MAX_FFN_WIDTH: u64 = 1 << 20;
/// Routed experts (and shared experts) per layer. Most published: 384 (Kimi K2).
pub const MAX_EXPERTS: u64 = 4096;
/// Learned position table rows (`learned:<n>`), the same as the longest context.
pub const MAX_POSITIONS: u64 = MAX_CONTEXT;
/// Parameters of a whole model (all experts): 2^50, about 1.1e15, 500x the largest published.
pub const MAX_PARAMS: u64 = 1 << 50;

/// Prompt plus generated tokens of one sequence: 2^24 = 16,777,216 (the longest published
/// context window is 10M tokens).
pub const MAX_CONTEXT: u64 = 1 << 24;
/// Sequences decoded together.
pub const MAX_BATCH: u64 = 1 << 16;
/// Tokens held at once: batch x (prompt + gen), 2^26 (e.g. 64 sequences of 1M tokens).
pub const MAX_TOKENS_IN_FLIGHT: u64 = 1 << 26;

/// Search: individuals kept per generation (mu). pymoo's default is 100.
pub const MAX_POPULATION: usize = 1 << 16;
/// Search: offspring per generation (lambda).
pub const MAX_OFFSPRING: usize = 1 << 16;
/// Search: generations.
pub const MAX_GENERATIONS: usize = 1 << 20;
/// Sweep: candidates in one grid (the product of its dimensions' sizes, computed with checked
/// arithmetic). The sweep streams, so this bounds run time, not memory: 2^36 is about 69
/// billion candidates.
pub const MAX_GRID: u64 = 1 << 36;
/// Search spaces: layer slots.
pub const MAX_SLOTS: u64 = MAX_LAYERS;

/// Cost snapshots: cases one cases file may expand to (a matrix is a product, checked as it
/// expands).
pub const MAX_SNAPSHOT_CASES: usize = 100_000;
/// Cost snapshot files: 256 MiB (about 1 kB per case).
pub const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;
/// Cost snapshot files: YAML values read (about 45 per case; serde-saphyr's default budget of
/// 250,000 would stop at about 5,000 cases).
pub const MAX_SNAPSHOT_VALUES: usize = 64 * MAX_SNAPSHOT_CASES;

/// Description files (model YAML, HF config.json, layer lists, substrates, spaces, grids,
/// overlays, mapping tables): 16 MiB. The largest shipped one is under 20 KB.
pub const MAX_DESCRIPTION_BYTES: u64 = 16 << 20;
/// Fitted files (law and surrogate JSON) and search checkpoints: 256 MiB.
pub const MAX_FITTED_BYTES: u64 = 256 << 20;
/// Data CSVs read whole (law fits, surrogate training sets): 256 MiB. Measured-trace CSVs
/// (`validate`, `calibrate`) are streamed and have no size limit.
pub const MAX_DATA_BYTES: u64 = 256 << 20;
/// One line of a description file, and one record of a CSV: 1 MiB.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Located errors reported per file; the rest are counted.
pub const MAX_ERRORS: usize = 50;

/// Chrome traces: decode steps written by default (`--trace-steps`).
pub const DEFAULT_TRACE_STEPS: u64 = 64;

/// Where the limits are documented, for help texts.
pub const DOC: &str = "dsl/README.md, section Limits";

/// `n` with thousands separators (`16,777,216`), for limit messages.
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `Some(message)` when `value` passes `limit`: "`what` is V; the limit is L".
pub fn above(what: &str, value: u64, limit: u64) -> Option<String> {
    (value > limit).then(|| format!("{what} is {}; the limit is {}", grouped(value), grouped(limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(16_777_216), "16,777,216");
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn limits_keep_products_in_range() {
        // attention pairs of a prefill: batch * P (P + 1) / 2, times heads (graph lowering)
        let pairs = (MAX_TOKENS_IN_FLIGHT as u128) * (MAX_CONTEXT as u128 + 1) / 2;
        assert!(pairs * (MAX_HEADS as u128) < 1u128 << 63);
        // KV elements written in a prefill: tokens * layers' G (Dqk + Dv)
        let kv = (MAX_TOKENS_IN_FLIGHT as u128) * (MAX_HEADS as u128) * 2 * (MAX_HEAD_DIM as u128);
        assert!(kv < 1u128 << 63);
        const { assert!(MAX_GRID < 1 << 63) };
    }
}
