//! Sweep grids (`dsl/grids/*.yaml`): the cartesian product of uniform-layer architectures.
//!
//! A grid names a candidate list per dimension — depth, width, head dim, KV heads, FFN ratio,
//! MoE experts and active experts, weight precision — and every combination is one candidate.
//! Candidates are addressed by index (mixed radix), so a grid of millions is enumerated in a
//! stream without ever being held in memory, and a shard `i/N` is a plain index range.

use crate::limits;
use crate::model::{Attention, Ffn, FfnKind, Layer, Model, Moe, NormKind, Positional, Precision, Precisions};
use crate::search::space::candidates;
use crate::yaml::{DescErrors, Expression, Loc, Located, SourceFile, shipped, shipped_or_file};
use serde::{Deserialize, Serialize};

/// (name, YAML source) of every shipped grid (`dsl/grids/*.yaml`).
pub const SHIPPED: &[(&str, &str)] = shipped!("dsl/grids", ["codesign-orin", "codesign-10m", "tiny"]);

/// A validated grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub name: String,
    pub description: String,
    pub vocab: u64,
    pub tied_embeddings: bool,
    pub depth: Vec<u64>,
    pub width: Vec<u64>,
    pub head_dim: Vec<u64>,
    pub kv_heads: Vec<u64>,
    /// FFN width = ratio x width (rounded to a multiple of 64), per expert.
    pub ffn_ratio: Vec<f64>,
    pub experts: Vec<u64>,
    pub active_experts: Vec<u64>,
    pub weights: Vec<Precision>,
    pub kv_cache: Precision,
    pub activations: Precision,
}

/// One grid point, by value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    pub index: u64,
    pub depth: u64,
    pub width: u64,
    pub head_dim: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub ffn_ratio: f64,
    pub ffn: u64,
    pub experts: u64,
    pub active_experts: u64,
    #[serde(serialize_with = "ser_precision")]
    pub weights: Precision,
}

fn ser_precision<S: serde::Serializer>(p: &Precision, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrid {
    name: String,
    #[serde(default)]
    description: String,
    vocab: Expression,
    tied_embeddings: bool,
    depth: Expression,
    width: Expression,
    head_dim: Expression,
    kv_heads: Expression,
    ffn_ratio: Expression,
    experts: Expression,
    active_experts: Expression,
    weights: Located<Vec<String>>,
    kv_cache: Located<String>,
    activations: Located<String>,
}

/// Parses and validates a grid.
pub fn parse(src: &str, file_name: &str) -> Result<Grid, DescErrors> {
    let file = SourceFile::new(file_name, src);
    let raw: RawGrid = file.parse()?;
    let mut errs = Vec::new();
    let vocab = candidates(&file, &mut errs, "vocab", &raw.vocab, limits::MAX_VOCAB)[0];
    let depth = candidates(&file, &mut errs, "depth", &raw.depth, limits::MAX_LAYERS);
    let width = candidates(&file, &mut errs, "width", &raw.width, limits::MAX_D_MODEL);
    let head_dim = candidates(&file, &mut errs, "head_dim", &raw.head_dim, limits::MAX_HEAD_DIM);
    let kv_heads = candidates(&file, &mut errs, "kv_heads", &raw.kv_heads, limits::MAX_HEADS);
    let experts = candidates(&file, &mut errs, "experts", &raw.experts, limits::MAX_EXPERTS);
    let active_experts = candidates(
        &file,
        &mut errs,
        "active_experts",
        &raw.active_experts,
        limits::MAX_EXPERTS,
    );
    let ffn_ratio = match raw.ffn_ratio.eval_candidates::<f64>(&file, &crate::dsl::no_names) {
        // FFN width = ratio x width must stay within the FFN width limit.
        Ok(v) if !v.is_empty() && v.iter().all(|r| *r > 0.0 && r.is_finite() && *r <= MAX_FFN_RATIO) => v,
        Ok(_) => {
            errs.push(file.error(
                raw.ffn_ratio.loc(),
                format!("`ffn_ratio` needs positive candidates of at most {MAX_FFN_RATIO}"),
                "here",
                None,
            ));
            vec![1.0]
        }
        Err(e) => {
            errs.push(e);
            vec![1.0]
        }
    };
    let mut precision = |p: &Located<String>| match p.value.parse::<Precision>() {
        Ok(p) => p,
        Err(e) => {
            errs.push(file.error(p.loc, e.to_string(), "here", None));
            Precision::F16
        }
    };
    let kv_cache = precision(&raw.kv_cache);
    let activations = precision(&raw.activations);
    let mut weights = Vec::new();
    for w in &raw.weights.value {
        match w.parse::<Precision>() {
            Ok(p) => weights.push(p),
            Err(e) => errs.push(file.error(raw.weights.loc, e.to_string(), "here", None)),
        }
    }
    if weights.is_empty() {
        errs.push(file.error(
            raw.weights.loc,
            "`weights` needs at least one precision",
            "here",
            None,
        ));
        weights.push(Precision::F16);
    }
    let grid = Grid {
        name: raw.name,
        description: raw.description.trim().to_string(),
        vocab,
        tied_embeddings: raw.tied_embeddings,
        depth,
        width,
        head_dim,
        kv_heads,
        ffn_ratio,
        experts,
        active_experts,
        weights,
        kv_cache,
        activations,
    };
    if errs.is_empty() {
        // The size of the grid, with checked arithmetic.
        match grid.checked_len() {
            Some(n) if n <= limits::MAX_GRID => {}
            n => errs.push(file.error(
                Loc::UNKNOWN,
                format!(
                    "the grid has {} candidates; the limit is {}",
                    n.map_or("more than 2^64".to_string(), limits::grouped),
                    limits::grouped(limits::MAX_GRID)
                ),
                "",
                Some(format!("split it into several grids (see {})", limits::DOC)),
            )),
        }
    }
    let mut diags = file.diagnostics();
    for e in errs {
        diags.push(e);
    }
    diags.finish(grid)
}

/// The largest FFN ratio a grid may list: ratio x width stays within the FFN width limit for
/// the widest model (2^20 / 2^17).
pub const MAX_FFN_RATIO: f64 = (limits::MAX_FFN_WIDTH / limits::MAX_D_MODEL) as f64;

/// Loads a shipped grid by name or a grid file by path.
pub fn load(spec: &str) -> Result<Grid, DescErrors> {
    let file = shipped_or_file(spec, SHIPPED, "dsl/grids", "grid")?;
    parse(file.text(), file.name())
}

impl Grid {
    /// Number of grid points (the cartesian product; points whose active experts exceed their
    /// experts, or whose KV heads do not divide the heads, are counted but [`Grid::point`]
    /// reports them as skipped).
    pub fn len(&self) -> u64 {
        self.checked_len().unwrap_or(u64::MAX)
    }

    /// The number of grid points, or `None` past `u64` (a validated grid has at most
    /// [`limits::MAX_GRID`]).
    pub fn checked_len(&self) -> Option<u64> {
        [
            self.depth.len(),
            self.width.len(),
            self.head_dim.len(),
            self.kv_heads.len(),
            self.ffn_ratio.len(),
            self.experts.len(),
            self.active_experts.len(),
            self.weights.len(),
        ]
        .iter()
        .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The point at `index` (mixed radix, weights fastest), or `None` when that combination
    /// is not a valid architecture (head dim not dividing the width; KV heads not dividing
    /// the heads; active experts > experts, or active experts > 1 on a dense FFN).
    pub fn point(&self, index: u64) -> Option<Point> {
        let mut i = index;
        let mut take = |n: usize| {
            let k = (i % n as u64) as usize;
            i /= n as u64;
            k
        };
        let weights = self.weights[take(self.weights.len())];
        let active_experts = self.active_experts[take(self.active_experts.len())];
        let experts = self.experts[take(self.experts.len())];
        let ffn_ratio = self.ffn_ratio[take(self.ffn_ratio.len())];
        let kv_heads = self.kv_heads[take(self.kv_heads.len())];
        let head_dim = self.head_dim[take(self.head_dim.len())];
        let width = self.width[take(self.width.len())];
        let depth = self.depth[take(self.depth.len())];
        let heads = width / head_dim;
        if width % head_dim != 0
            || heads == 0
            || heads > limits::MAX_HEADS
            || heads % kv_heads != 0
            || active_experts > experts
            || (experts == 1 && active_experts != 1)
        {
            return None;
        }
        let ffn = (((ffn_ratio * width as f64) / 64.0).round() as u64).max(1) * 64;
        Some(Point {
            index,
            depth,
            width,
            head_dim,
            heads,
            kv_heads,
            ffn_ratio,
            ffn,
            experts,
            active_experts,
            weights,
        })
    }

    /// The model of a point: `depth` identical blocks.
    pub fn model(&self, p: &Point) -> Model {
        let attention = Attention {
            heads: p.heads,
            kv_groups: p.kv_heads,
            d_qk: p.head_dim,
            d_v: p.head_dim,
            qkv_bias: false,
            o_bias: false,
        };
        let ffn = if p.experts > 1 {
            Ffn::Moe {
                kind: FfnKind::SwiGlu,
                moe: Moe {
                    experts: p.experts,
                    active: p.active_experts,
                    expert_width: p.ffn,
                    shared_experts: 0,
                    shared_width: 0,
                    shared_gate: false,
                },
            }
        } else {
            Ffn::Dense {
                kind: FfnKind::SwiGlu,
                width: p.ffn,
                bias: false,
            }
        };
        Model {
            name: format!("{}-{}", self.name, p.index),
            d_model: p.width,
            vocab: self.vocab,
            tied_embeddings: self.tied_embeddings,
            norm: NormKind::RmsNorm,
            positional: Positional::Rope { fraction: 1.0 },
            precision: Precisions {
                weights: p.weights,
                activations: self.activations,
                kv_cache: self.kv_cache,
            },
            layers: vec![
                Layer {
                    attention: Some(attention),
                    ffn,
                    parallel_residual: false
                };
                p.depth as usize
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_grids_parse_and_enumerate() {
        for (name, _) in SHIPPED {
            let g = load(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(!g.is_empty());
            let valid = (0..g.len().min(5000)).filter_map(|i| g.point(i)).count();
            assert!(valid > 0, "{name}");
        }
        assert!(load("codesign-orin").unwrap().len() >= 1942);
        assert!(load("codesign-10m").unwrap().len() >= 10_000_000);
    }

    #[test]
    fn points_are_a_bijection_of_indices() {
        let g = load("tiny").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..g.len() {
            if let Some(p) = g.point(i) {
                let key = (
                    p.depth,
                    p.width,
                    p.head_dim,
                    p.kv_heads,
                    p.ffn,
                    p.experts,
                    p.active_experts,
                    p.weights.to_string(),
                );
                assert!(seen.insert(key), "duplicate point at {i}");
                let m = g.model(&p);
                assert!(m.validate().is_ok());
                assert_eq!(m.n_layers() as u64, p.depth);
            }
        }
    }
}
