//! Quality models: the loss objective of the search.
//!
//! [`law`] fits parametric scaling laws; [`surrogate`] learns loss from architecture with
//! gradient-boosted trees. The surrogate only ranks candidates.

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
