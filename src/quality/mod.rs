//! Quality models: the loss objective of the search.
//!
//! [`dataset`] reads the LLMForge surrogate CSV; [`law`] fits parametric scaling laws; [`surrogate`] learns loss from architecture with
//! gradient-boosted trees. The surrogate only ranks candidates.

pub mod dataset;
pub mod law;
pub mod surrogate;

use crate::model::{Model, accounting};

/// A predicted loss with its uncertainty (0 for deterministic laws).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPrediction {
    pub mu: f64,
    pub sigma: f64,
}

/// Anything that predicts the loss of an architecture: the search's quality objective.
/// Implementations: [`ChinchillaPrior`], fitted laws ([`law`]), the surrogate ([`surrogate`]).
pub trait LossModel: Send + Sync {
    fn name(&self) -> String;
    fn predict(&self, model: &Model) -> LossPrediction;
}

/// The published Chinchilla fit (Hoffmann et al. 2022, approach 3): L(N, D) = E + A/N^alpha +
/// B/D^beta with E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28. N is the parameters a token
/// uses (all of them for dense models, as in the paper); `tokens_per_param` sets D = k * N
/// (20 is compute-optimal). A prior with no data of its own: architectures differ only through
/// their parameter counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChinchillaPrior {
    pub tokens_per_param: f64,
}

impl LossModel for ChinchillaPrior {
    fn name(&self) -> String {
        format!("chinchilla (Hoffmann 2022, D = {} N)", self.tokens_per_param)
    }
    fn predict(&self, model: &Model) -> LossPrediction {
        let n = accounting::params(model).active as f64;
        let d = self.tokens_per_param * n;
        LossPrediction {
            mu: 1.69 + 406.4 / n.powf(0.34) + 410.7 / d.powf(0.28),
            sigma: 0.0,
        }
    }
}

impl LossModel for surrogate::Surrogate {
    fn name(&self) -> String {
        "surrogate (gradient-boosted ensemble)".into()
    }
    fn predict(&self, model: &Model) -> LossPrediction {
        let p = surrogate::Surrogate::predict(self, model);
        LossPrediction {
            mu: p.mu,
            sigma: p.sigma,
        }
    }
}

/// A fitted law applied to architectures: N = the parameters a token uses, D = k * N, width and
/// depth from the model, r = FFN / attention parameters averaged over the layers.
pub struct LawPrior {
    pub law: law::FittedLaw,
    pub tokens_per_param: f64,
}

impl LossModel for LawPrior {
    fn name(&self) -> String {
        format!(
            "fitted law ({}, D = {} N)",
            self.law.law.form().name(),
            self.tokens_per_param
        )
    }
    fn predict(&self, model: &Model) -> LossPrediction {
        let n = accounting::params(model).active as f64;
        let d = model.d_model as f64;
        let (mut ffn, mut attn) = (0.0, 0.0);
        for l in &model.layers {
            if let Some(a) = &l.attention {
                attn += (d * (a.q_width() + a.k_width() + a.v_width()) as f64) + (a.o_width() as f64) * d;
            }
            ffn += match l.ffn {
                crate::model::Ffn::Dense { kind, width, .. } => (kind.n_matrices() * width) as f64 * d,
                crate::model::Ffn::Moe { kind, moe } => {
                    (kind.n_matrices() * moe.expert_width * moe.active) as f64 * d
                }
            };
        }
        let x = law::LawInputs {
            params: n,
            tokens: self.tokens_per_param * n,
            width: d,
            depth: model.layers.len() as f64,
            ffn_ratio: if attn > 0.0 { ffn / attn } else { 1.0 },
        };
        LossPrediction {
            mu: self.law.predict_loss(&x),
            sigma: 0.0,
        }
    }
}

/// The quality model named on a command line: `chinchilla` (the published Hoffmann fit), a
/// fitted law file (`llmforge law fit`) or a surrogate file (`llmforge surrogate fit`).
/// `tokens_per_param` sets the training tokens the laws assume.
pub fn load_loss_model(spec: &str, tokens_per_param: f64) -> Result<Box<dyn LossModel>, String> {
    if spec == "chinchilla" {
        return Ok(Box::new(ChinchillaPrior { tokens_per_param }));
    }
    let path = std::path::Path::new(spec);
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("quality model `{spec}`: not `chinchilla` and not a readable file ({e})"))?;
    match surrogate::Surrogate::from_json(&text, spec) {
        Ok(s) => Ok(Box::new(s)),
        Err(surrogate_err) => match law::FittedLaw::from_json(spec, &text) {
            Ok(law) => Ok(Box::new(LawPrior {
                law,
                tokens_per_param,
            })),
            Err(law_err) => Err(format!(
                "quality model `{spec}` is neither a surrogate file ({surrogate_err}) nor a law file ({law_err})"
            )),
        },
    }
}
