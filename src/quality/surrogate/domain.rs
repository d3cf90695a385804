//! The training domain of a fitted surrogate: where its predictions are interpolation.
//!
//! Gradient-boosted trees do not extrapolate: beyond the training data every split sends a
//! candidate to the outermost leaf, so a 60-layer model is predicted as the deepest model seen,
//! and a model of another width, vocabulary or block family as whatever its features happen to
//! fall next to. [`Domain`] records, at fit time, the box the training models span: the width,
//! the vocabulary, the number of layers and of attention layers, and the range of every
//! per-layer gene (query heads H, KV groups G, head dims Dqk and Dv, FFN width), plus the block
//! families seen (embeddings tied or not, norm, positions, FFN kind, biases, dense or MoE).
//! [`Domain::check`] names the first way a model leaves it, so a caller can fall back to
//! another loss model and say why (`--quality auto`).
//!
//! The box is per gene, not the joint distribution: a model can be inside every range and
//! still unlike any training run (e.g. 39 layers each with 16 heads). It is the honest,
//! checkable part of "inside the training data"; the surrogate's `sigma` (member
//! disagreement) covers some of the rest.

use crate::model::{Ffn, FfnKind, Model, NormKind, Positional};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The smallest and largest value seen, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[u64; 2]", into = "[u64; 2]")]
pub struct Span {
    pub min: u64,
    pub max: u64,
}

impl From<[u64; 2]> for Span {
    fn from([min, max]: [u64; 2]) -> Span {
        Span { min, max }
    }
}

impl From<Span> for [u64; 2] {
    fn from(s: Span) -> [u64; 2] {
        [s.min, s.max]
    }
}

impl Span {
    /// Nothing seen (e.g. head counts when no training model had attention): holds no value.
    pub const EMPTY: Span = Span {
        min: u64::MAX,
        max: 0,
    };
    pub fn is_empty(&self) -> bool {
        *self == Span::EMPTY
    }
    fn add(&mut self, v: u64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
    pub fn contains(&self, v: u64) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            write!(f, "none")
        } else if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

/// What a model's blocks are built of, apart from their sizes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub tied_embeddings: bool,
    pub norm: NormKind,
    pub positional: Positional,
    pub ffn: FfnKind,
    /// Any bias on attention projections or FFN matrices.
    pub biases: bool,
    pub parallel_residual: bool,
    pub moe: bool,
}

impl Family {
    pub fn of(m: &Model) -> Family {
        Family {
            tied_embeddings: m.tied_embeddings,
            norm: m.norm,
            positional: m.positional,
            ffn: m.layers.first().map_or(FfnKind::SwiGlu, |l| l.ffn.kind()),
            biases: m.layers.iter().any(|l| {
                l.attention.is_some_and(|a| a.qkv_bias || a.o_bias)
                    || matches!(l.ffn, Ffn::Dense { bias: true, .. })
            }),
            parallel_residual: m.layers.iter().any(|l| l.parallel_residual),
            moe: m.is_moe(),
        }
    }

    /// The first way `self` differs from `seen`, as a short phrase about `self`.
    fn difference(&self, seen: &Family) -> &'static str {
        if self.moe != seen.moe {
            return if self.moe { "MoE FFN" } else { "dense FFN" };
        }
        if self.ffn != seen.ffn {
            return match self.ffn {
                FfnKind::SwiGlu => "SwiGLU FFN",
                FfnKind::GeGlu => "GeGLU FFN",
                FfnKind::Gelu => "GELU FFN",
            };
        }
        if self.tied_embeddings != seen.tied_embeddings {
            return if self.tied_embeddings {
                "tied embeddings"
            } else {
                "untied embeddings"
            };
        }
        if self.norm != seen.norm {
            return match self.norm {
                NormKind::RmsNorm => "RMSNorm",
                NormKind::LayerNorm => "LayerNorm",
            };
        }
        if self.positional != seen.positional {
            return match self.positional {
                Positional::Rope { .. } => "RoPE over another share of the head dim",
                Positional::Learned { .. } => "learned positions",
                Positional::None => "no positional encoding",
            };
        }
        if self.biases != seen.biases {
            return if self.biases { "biases" } else { "no biases" };
        }
        "parallel residual"
    }
}

/// A per-model or per-layer quantity the domain bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gene {
    DModel,
    Vocab,
    Layers,
    AttentionLayers,
    Heads,
    KvGroups,
    DQk,
    DV,
    Ffn,
}

impl Gene {
    pub fn name(self) -> &'static str {
        match self {
            Gene::DModel => "d_model",
            Gene::Vocab => "vocab",
            Gene::Layers => "layers",
            Gene::AttentionLayers => "attention layers",
            Gene::Heads => "H",
            Gene::KvGroups => "G",
            Gene::DQk => "Dqk",
            Gene::DV => "Dv",
            Gene::Ffn => "FFN width",
        }
    }
}

/// The first way a model leaves a [`Domain`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outside {
    /// A quantity outside the range seen in training (for per-layer genes: the first layer).
    Range { gene: Gene, value: u64, seen: Span },
    /// A block family not seen in training: what this model has.
    Family(&'static str),
}

impl Outside {
    /// A short key for counting candidates by reason: the gene's name or the family phrase.
    pub fn key(&self) -> &'static str {
        match self {
            Outside::Range { gene, .. } => gene.name(),
            Outside::Family(what) => what,
        }
    }
}

impl fmt::Display for Outside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outside::Range { gene, value, seen } => {
                write!(f, "{} {value} (trained {seen})", gene.name())
            }
            Outside::Family(what) => write!(f, "{what} (not in training)"),
        }
    }
}

/// The box of the training models (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    pub d_model: Span,
    pub vocab: Span,
    pub layers: Span,
    pub attention_layers: Span,
    pub heads: Span,
    pub kv_groups: Span,
    pub d_qk: Span,
    pub d_v: Span,
    /// FFN width of dense layers.
    pub ffn: Span,
    /// Every block family seen, in first-seen order.
    pub families: Vec<Family>,
}

impl Domain {
    /// The domain of `models`; `None` when there are none.
    pub fn of<'a>(models: impl IntoIterator<Item = &'a Model>) -> Option<Domain> {
        let mut d = Domain {
            d_model: Span::EMPTY,
            vocab: Span::EMPTY,
            layers: Span::EMPTY,
            attention_layers: Span::EMPTY,
            heads: Span::EMPTY,
            kv_groups: Span::EMPTY,
            d_qk: Span::EMPTY,
            d_v: Span::EMPTY,
            ffn: Span::EMPTY,
            families: Vec::new(),
        };
        for m in models {
            d.d_model.add(m.d_model);
            d.vocab.add(m.vocab);
            d.layers.add(m.n_layers() as u64);
            d.attention_layers.add(m.n_attention_layers() as u64);
            for l in &m.layers {
                if let Some(a) = &l.attention {
                    d.heads.add(a.heads);
                    d.kv_groups.add(a.kv_groups);
                    d.d_qk.add(a.d_qk);
                    d.d_v.add(a.d_v);
                }
                if let Ffn::Dense { width, .. } = l.ffn {
                    d.ffn.add(width);
                }
            }
            let f = Family::of(m);
            if !d.families.contains(&f) {
                d.families.push(f);
            }
        }
        (!d.families.is_empty()).then_some(d)
    }

    /// `None` when `m` lies inside the domain, else the first quantity that leaves it: width,
    /// vocabulary, layer counts, then each layer's genes in order, then the block family.
    pub fn check(&self, m: &Model) -> Option<Outside> {
        let range = |gene, value: u64, seen: Span| {
            (!seen.contains(value)).then_some(Outside::Range { gene, value, seen })
        };
        range(Gene::DModel, m.d_model, self.d_model)
            .or_else(|| range(Gene::Vocab, m.vocab, self.vocab))
            .or_else(|| range(Gene::Layers, m.n_layers() as u64, self.layers))
            .or_else(|| {
                range(
                    Gene::AttentionLayers,
                    m.n_attention_layers() as u64,
                    self.attention_layers,
                )
            })
            .or_else(|| {
                m.layers.iter().find_map(|l| {
                    l.attention
                        .and_then(|a| {
                            range(Gene::Heads, a.heads, self.heads)
                                .or_else(|| range(Gene::KvGroups, a.kv_groups, self.kv_groups))
                                .or_else(|| range(Gene::DQk, a.d_qk, self.d_qk))
                                .or_else(|| range(Gene::DV, a.d_v, self.d_v))
                        })
                        .or_else(|| match l.ffn {
                            Ffn::Dense { width, .. } => range(Gene::Ffn, width, self.ffn),
                            Ffn::Moe { .. } => None,
                        })
                })
            })
            .or_else(|| {
                let f = Family::of(m);
                (!self.families.contains(&f)).then(|| Outside::Family(f.difference(&self.families[0])))
            })
    }
}

impl fmt::Display for Domain {
    /// One line: `d_model 768, vocab 50257, 1-39 layers (0-39 with attention), H 1-16, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "d_model {}, vocab {}, {} layers ({} with attention), H {}, G {}, Dqk {}, Dv {}, FFN {}",
            self.d_model,
            self.vocab,
            self.layers,
            self.attention_layers,
            self.heads,
            self.kv_groups,
            self.d_qk,
            self.d_v,
            self.ffn
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Moe;

    /// (H, G, Dqk, Dv) of an attention layer, `None` for an attention-free one, and the FFN width.
    type Spec = (Option<(u64, u64, u64, u64)>, u64);

    fn model(layers: &[Spec]) -> Model {
        super::super::features::tests::model(
            layers
                .iter()
                .map(|&(a, w)| super::super::features::tests::layer(a, w))
                .collect(),
        )
    }

    #[test]
    fn the_box_of_the_training_models_and_the_first_way_out() {
        let a = model(&[(Some((4, 2, 64, 128)), 1024), (None, 2048)]);
        let b = model(&[
            (Some((8, 8, 96, 64)), 512),
            (Some((2, 1, 64, 64)), 4096),
            (None, 768),
        ]);
        let d = Domain::of([&a, &b]).unwrap();
        assert_eq!(
            d.to_string(),
            "d_model 768, vocab 50257, 2-3 layers (1-2 with attention), H 2-8, G 1-8, Dqk 64-96, Dv 64-128, FFN 512-4096"
        );
        assert_eq!(d.families.len(), 1);
        assert_eq!(d.check(&a), None);
        // a new combination of seen values is inside: the box is per gene
        assert_eq!(
            d.check(&model(&[(Some((8, 1, 96, 128)), 4096), (None, 512)])),
            None
        );
        let out = |layers: &[Spec]| d.check(&model(layers)).unwrap().to_string();
        assert_eq!(out(&[(None, 1024)]), "layers 1 (trained 2-3)");
        assert_eq!(
            out(&[(None, 1024), (None, 1024)]),
            "attention layers 0 (trained 1-2)"
        );
        assert_eq!(
            out(&[(Some((9, 3, 64, 64)), 1024), (None, 1024)]),
            "H 9 (trained 2-8)"
        );
        assert_eq!(
            out(&[(Some((4, 2, 64, 160)), 1024), (None, 1024)]),
            "Dv 160 (trained 64-128)"
        );
        assert_eq!(
            out(&[(Some((4, 2, 64, 64)), 256), (None, 1024)]),
            "FFN width 256 (trained 512-4096)"
        );
        let mut wide = a.clone();
        wide.d_model = 960;
        assert_eq!(d.check(&wide).unwrap().to_string(), "d_model 960 (trained 768)");
        assert_eq!(d.check(&wide).unwrap().key(), "d_model");
        let mut untied = a.clone();
        untied.tied_embeddings = false;
        assert_eq!(d.check(&untied), Some(Outside::Family("untied embeddings")));
        let mut moe = a.clone();
        moe.layers[1].ffn = Ffn::Moe {
            kind: FfnKind::SwiGlu,
            moe: Moe {
                experts: 4,
                active: 1,
                expert_width: 1024,
                shared_experts: 0,
                shared_width: 0,
                shared_gate: false,
            },
        };
        assert_eq!(d.check(&moe).unwrap().to_string(), "MoE FFN (not in training)");
        assert!(Domain::of([]).is_none());
    }

    #[test]
    fn spans_serialise_as_pairs() {
        let d = Domain::of([&model(&[(Some((4, 2, 64, 128)), 1024)])]).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert!(
            json.starts_with("{\"d_model\":[768,768],\"vocab\":[50257,50257],"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Domain>(&json).unwrap(), d);
    }
}
