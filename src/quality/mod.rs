//! Quality models: the loss objective of the search.
//!
//! [`dataset`] reads the LLMForge surrogate CSV; [`law`] fits parametric scaling laws; [`surrogate`] learns loss from architecture with
//! gradient-boosted trees. The surrogate only ranks candidates.
//!
//! [`load_loss_model`] turns a `--quality` argument into a [`LossModel`]: `auto` (the default
//! of `search` and `sweep`: the shipped surrogate where a candidate lies inside its training
//! domain, the Chinchilla prior elsewhere, [`AutoLoss`]), `chinchilla`, a shipped surrogate by
//! name ([`SHIPPED_SURROGATES`]), or a surrogate or law file. Every prediction says which
//! model made it and whether the candidate lies outside the surrogate's training domain.

pub mod dataset;
pub mod law;
pub mod surrogate;

use crate::model::{Model, accounting};
use surrogate::domain::{Domain, Outside};

/// Which kind of model scored a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scorer {
    Surrogate,
    Chinchilla,
    Law,
}

impl Scorer {
    /// The short name used in result files (`loss_model` columns) and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Scorer::Surrogate => "surrogate",
            Scorer::Chinchilla => "chinchilla",
            Scorer::Law => "law",
        }
    }
}

/// A predicted loss with its uncertainty (0 for deterministic laws), the model that made it,
/// and where the candidate leaves the loss model's training domain (if it has one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPrediction {
    pub mu: f64,
    pub sigma: f64,
    pub scorer: Scorer,
    /// `Some` when the candidate lies outside the surrogate's training domain: under `auto`
    /// it was then scored by the prior instead; under an explicit surrogate it is an
    /// extrapolation, flagged.
    pub outside: Option<Outside>,
}

/// Anything that predicts the loss of an architecture: the search's quality objective.
/// Implementations: [`ChinchillaPrior`], fitted laws ([`law`]), the surrogate ([`surrogate`]),
/// and [`AutoLoss`] (surrogate inside its domain, prior outside).
pub trait LossModel: Send + Sync {
    fn name(&self) -> String;
    fn predict(&self, model: &Model) -> LossPrediction;
    /// Which model [`predict`](LossModel::predict) would score `model` with, and where it
    /// leaves the training domain: the `scorer` and `outside` of its prediction, without the
    /// prediction (a domain check, not a walk of the trees).
    fn scorer(&self, model: &Model) -> (Scorer, Option<Outside>);
    /// The training domain whose candidates the surrogate scores, when there is one.
    fn domain(&self) -> Option<&Domain> {
        None
    }
}

/// How many candidates each loss model scored, and how many lay outside the surrogate's
/// training domain, by the first quantity that left it ([`Outside::key`]). Counts only: fold
/// predictions in with [`LossTally::add`] in any fixed order and the tally is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LossTally {
    /// Candidates per scorer ([`Scorer::name`]).
    pub scored: std::collections::BTreeMap<String, u64>,
    /// Candidates outside the training domain (whoever scored them).
    pub outside: u64,
    pub outside_by: std::collections::BTreeMap<String, u64>,
}

/// Adds `n` to `map[key]`, allocating the key only the first time it is seen.
fn count(map: &mut std::collections::BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_string(), n);
        }
    }
}

impl LossTally {
    /// Counts one candidate: the model that scored it and where it left the domain.
    pub fn add(&mut self, (scorer, outside): (Scorer, Option<Outside>)) {
        count(&mut self.scored, scorer.name(), 1);
        if let Some(o) = outside {
            self.outside += 1;
            count(&mut self.outside_by, o.key(), 1);
        }
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: &LossTally) {
        for (k, v) in &other.scored {
            count(&mut self.scored, k, *v);
        }
        self.outside += other.outside;
        for (k, v) in &other.outside_by {
            count(&mut self.outside_by, k, *v);
        }
    }

    /// One line for summaries, e.g. `surrogate 1905, chinchilla 22; outside the surrogate's
    /// training domain: 22 (layers 22)`. Without a domain (`has_domain` false) the outside
    /// part is left off: there is nothing to be outside of.
    pub fn describe(&self, has_domain: bool) -> String {
        let scored: Vec<String> = self.scored.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let mut s = if scored.is_empty() {
            "no candidates".to_string()
        } else {
            scored.join(", ")
        };
        if has_domain {
            s.push_str(&format!(
                "; outside the surrogate's training domain: {}",
                self.outside
            ));
            if self.outside > 0 {
                let by: Vec<String> = self.outside_by.iter().map(|(k, v)| format!("{k} {v}")).collect();
                s.push_str(&format!(" ({})", by.join(", ")));
            }
        }
        s
    }
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
    fn scorer(&self, _: &Model) -> (Scorer, Option<Outside>) {
        (Scorer::Chinchilla, None)
    }
    fn predict(&self, model: &Model) -> LossPrediction {
        let n = accounting::params(model).active as f64;
        let d = self.tokens_per_param * n;
        LossPrediction {
            mu: 1.69 + 406.4 / n.powf(0.34) + 410.7 / d.powf(0.28),
            sigma: 0.0,
            scorer: Scorer::Chinchilla,
            outside: None,
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
            scorer: Scorer::Surrogate,
            outside: self.domain.as_ref().and_then(|d| d.check(model)),
        }
    }
    fn scorer(&self, model: &Model) -> (Scorer, Option<Outside>) {
        (
            Scorer::Surrogate,
            self.domain.as_ref().and_then(|d| d.check(model)),
        )
    }
    fn domain(&self) -> Option<&Domain> {
        self.domain.as_ref()
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
    fn scorer(&self, _: &Model) -> (Scorer, Option<Outside>) {
        (Scorer::Law, None)
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
            scorer: Scorer::Law,
            outside: None,
        }
    }
}

/// `--quality auto`: the surrogate scores the candidates inside its training domain
/// ([`Domain::check`]), the prior the rest; each prediction carries which did, and why a
/// candidate was outside. The two scales differ (the surrogate predicts the validation loss
/// of the short MiniPile runs it was trained on, the prior a compute-optimal pre-training
/// loss), which is why result files and summaries count and flag the prior's candidates.
pub struct AutoLoss {
    /// Name of the surrogate (a shipped name or a file).
    pub label: String,
    domain: Domain,
    /// The surrogate, read when the first candidate inside its domain is scored (a grid that
    /// lies outside it never pays for reading the trees: 10 M instructions per process).
    surrogate: std::sync::OnceLock<surrogate::Surrogate>,
    /// The shipped text the trees are read from when `surrogate` is empty.
    source: &'static str,
    pub prior: ChinchillaPrior,
}

impl AutoLoss {
    /// `None` when the surrogate has no domain to decide with.
    pub fn new(label: &str, surrogate: surrogate::Surrogate, prior: ChinchillaPrior) -> Option<AutoLoss> {
        let domain = surrogate.domain.clone()?;
        Some(AutoLoss {
            label: label.to_string(),
            domain,
            surrogate: std::sync::OnceLock::from(surrogate),
            source: "",
            prior,
        })
    }

    /// Over the shipped surrogate `name`: its header (format, schema, domain) is read and
    /// checked now, its trees when a candidate inside the domain is first scored. `None` when
    /// there is no such surrogate or it has no domain.
    pub fn shipped(name: &str, prior: ChinchillaPrior) -> Option<Result<AutoLoss, String>> {
        let (label, source) = SHIPPED_SURROGATES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        let file = format!("dsl/surrogates/{label}.json");
        Some(match surrogate::domain_of(source, &file) {
            Ok(Some(domain)) => Ok(AutoLoss {
                label: label.to_string(),
                domain,
                surrogate: std::sync::OnceLock::new(),
                source,
                prior,
            }),
            Ok(None) => Err(format!("the shipped surrogate {label} has no training domain")),
            Err(e) => Err(e.to_string()),
        })
    }

    fn surrogate(&self) -> &surrogate::Surrogate {
        self.surrogate.get_or_init(|| {
            // The shipped texts are read in full by a test (`quality::tests::shipped_surrogates_load`):
            // a text whose header passed cannot fail here.
            surrogate::Surrogate::from_json(self.source, &self.label)
                .unwrap_or_else(|e| unreachable!("shipped surrogate {}: {e}", self.label))
        })
    }
}

impl LossModel for AutoLoss {
    fn name(&self) -> String {
        format!(
            "auto: surrogate {} inside its training domain, else {}",
            self.label,
            self.prior.name()
        )
    }
    fn predict(&self, model: &Model) -> LossPrediction {
        match self.domain.check(model) {
            None => LossModel::predict(self.surrogate(), model),
            Some(outside) => LossPrediction {
                outside: Some(outside),
                ..self.prior.predict(model)
            },
        }
    }
    fn scorer(&self, model: &Model) -> (Scorer, Option<Outside>) {
        match self.domain.check(model) {
            None => (Scorer::Surrogate, None),
            Some(outside) => (Scorer::Chinchilla, Some(outside)),
        }
    }
    fn domain(&self) -> Option<&Domain> {
        Some(&self.domain)
    }
}

/// The surrogate `--quality auto` uses.
pub const DEFAULT_SURROGATE: &str = "llmforge-200m";

/// (name, JSON) of the shipped fitted surrogates (`dsl/surrogates/*.json`), embedded in the
/// binary. `llmforge-200m` is rebuilt, byte for byte, by `llmforge surrogate fit --data
/// tests/fixtures/surrogate/llmforge-iha-200m-train.csv --out dsl/surrogates/llmforge-200m.json`
/// (the default fit settings, seed 42; `tests/surrogate` checks it).
pub const SHIPPED_SURROGATES: &[(&str, &str)] = &[(
    "llmforge-200m",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dsl/surrogates/llmforge-200m.json"
    )),
)];

/// The shipped surrogate `name` (ignoring case), if there is one.
pub fn shipped_surrogate(name: &str) -> Option<Result<surrogate::Surrogate, surrogate::SurrogateError>> {
    SHIPPED_SURROGATES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, json)| surrogate::Surrogate::from_json(json, &format!("dsl/surrogates/{n}.json")))
}

/// Presets every loaded quality model is tried on: small to large, dense and mixture of
/// experts.
const PROBES: [&str; 4] = ["smollm2-135m", "llama-3.2-1b", "llama-3-8b", "mixtral-8x7b"];

/// The check every loader of a quality file makes after its own (a law's coefficients, a
/// surrogate's trees): the model predicts, for each of [`PROBES`], a finite loss between 0
/// and 100 nats with a finite non-negative sigma. A file that passes cannot put a negative or
/// NaN loss into a search front.
pub fn check_predictions(m: &dyn LossModel) -> Result<(), String> {
    for name in PROBES {
        let Ok(model) = crate::model::preset(name) else {
            continue;
        };
        let p = m.predict(&model);
        if !(p.mu.is_finite() && p.mu > 0.0 && p.mu <= 100.0) {
            return Err(format!(
                "it predicts a loss of {} nats for {name}; a quality model must predict a finite loss between 0 and 100 nats",
                p.mu
            ));
        }
        if !(p.sigma.is_finite() && p.sigma >= 0.0) {
            return Err(format!(
                "it predicts sigma {} for {name}; sigma must be finite and non-negative",
                p.sigma
            ));
        }
    }
    Ok(())
}

/// The quality model named on a command line: `auto` ([`AutoLoss`] over the shipped
/// [`DEFAULT_SURROGATE`] and the Chinchilla prior), `chinchilla` (the published Hoffmann fit),
/// a fitted law file (`llmforge law fit`), a surrogate file (`llmforge surrogate fit`), or a
/// shipped surrogate's name (an existing file of that name wins). `tokens_per_param` sets the
/// training tokens the laws assume.
pub fn load_loss_model(spec: &str, tokens_per_param: f64) -> Result<Box<dyn LossModel>, String> {
    if !(tokens_per_param.is_finite() && tokens_per_param > 0.0 && tokens_per_param <= 1e6) {
        return Err(format!(
            "--tokens-per-param {tokens_per_param}: expected a number of training tokens per parameter in (0, 1e6]"
        ));
    }
    let prior = ChinchillaPrior { tokens_per_param };
    if spec == "chinchilla" {
        return Ok(Box::new(prior));
    }
    if spec == "auto" {
        let auto = AutoLoss::shipped(DEFAULT_SURROGATE, prior).ok_or("no shipped default surrogate")??;
        return Ok(Box::new(auto));
    }
    let path = std::path::Path::new(spec);
    if !path.exists() {
        if let Some(s) = shipped_surrogate(spec) {
            return Ok(Box::new(s.map_err(|e| e.to_string())?));
        }
    }
    let text =
        crate::input::read_text(path, "quality model", crate::limits::MAX_FITTED_BYTES).map_err(|e| {
            let shipped: Vec<&str> = SHIPPED_SURROGATES.iter().map(|(n, _)| *n).collect();
            format!(
                "quality model `{spec}`: not `auto`, `chinchilla` or a shipped surrogate ({}), and {e}",
                shipped.join(", ")
            )
        })?;
    let model: Box<dyn LossModel> = match surrogate::Surrogate::from_json(&text, spec) {
        Ok(s) => Box::new(s),
        // A file that says it is a surrogate gets the surrogate's error alone.
        Err(surrogate_err) if text.contains(surrogate::FORMAT) => return Err(surrogate_err.to_string()),
        Err(surrogate_err) => match law::FittedLaw::from_json(spec, &text) {
            Ok(law) => Box::new(LawPrior {
                law,
                tokens_per_param,
            }),
            Err(law_err) => {
                return Err(format!(
                    "quality model `{spec}` is neither a surrogate file ({surrogate_err}) nor a law file ({law_err})"
                ));
            }
        },
    };
    check_predictions(model.as_ref()).map_err(|e| format!("{spec}: {e}"))?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_surrogates_load() {
        // `AutoLoss::shipped` reads a shipped surrogate's trees only when first needed and
        // relies on this: every shipped text reads in full.
        for (name, _) in SHIPPED_SURROGATES {
            let s = shipped_surrogate(name).unwrap().unwrap();
            check_predictions(&s).unwrap();
        }
    }

    #[test]
    fn deferred_auto_scores_as_the_eager_one() {
        let prior = ChinchillaPrior {
            tokens_per_param: 20.0,
        };
        let eager = AutoLoss::new(
            DEFAULT_SURROGATE,
            shipped_surrogate(DEFAULT_SURROGATE).unwrap().unwrap(),
            prior,
        )
        .unwrap();
        let deferred = AutoLoss::shipped(DEFAULT_SURROGATE, prior).unwrap().unwrap();
        assert_eq!(eager.domain(), deferred.domain());
        assert!(deferred.surrogate.get().is_none());
        // the presets lie outside the domain: the trees are not read
        let presets: Vec<Model> = crate::model::presets::names()
            .map(|n| crate::model::presets::preset(n).unwrap())
            .collect();
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/surrogate/llmforge-iha-200m-train.csv");
        let ds = dataset::read_llmforge_csv(&data, Some("val_loss")).unwrap();
        let training: Vec<&Model> = ds.models().into_iter().take(50).collect();
        let mut inside = 0;
        for (k, m) in presets.iter().chain(training.iter().copied()).enumerate() {
            let (a, b) = (eager.predict(m), deferred.predict(m));
            assert_eq!(a.mu.to_bits(), b.mu.to_bits(), "{k}");
            assert_eq!(a.sigma.to_bits(), b.sigma.to_bits(), "{k}");
            assert_eq!((a.scorer, a.outside), (b.scorer, b.outside), "{k}");
            inside += usize::from(a.outside.is_none());
            assert_eq!(deferred.surrogate.get().is_some(), inside > 0, "{k}");
        }
        assert!(inside > 0 && inside <= training.len(), "{inside}");
    }
}
