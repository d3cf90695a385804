//! The architecture search problem: genomes of a [`Space`], evaluated through the pipeline.
//!
//! For each genome: the model it describes, its predicted loss from a [`LossModel`], and —
//! unless the loss alone already breaks a loss budget (surrogate screening) — its costs from
//! the simulator on the substrate and workload. Objectives and constraints are
//! [`Metric`]s; constraints are [`Budget`]s, and their summed relative violation is the
//! genome's constraint violation (Deb's constrained domination). Reported costs always come
//! from the simulator; the loss model only predicts quality.

use super::nsga2::{Evaluation, Problem};
use super::space::{Genome, Space};
use crate::model::{Model, accounting};
use crate::quality::{LossModel, LossTally};
use crate::sim::{Engine, LayerCache, Workload};
use crate::substrate::Substrate;
use crate::sweep::budget::{Budget, Metric, Metrics};
use rand::Rng;
use std::convert::Infallible;

/// Objective value given to a screened-out candidate's cost objectives (it is infeasible, so
/// only its violation is ever compared; a finite value keeps sorts and crowding well-defined).
pub const SCREENED: f64 = 1e30;

pub struct ArchProblem {
    pub space: Space,
    pub substrate: Substrate,
    pub workload: Workload,
    pub engine: Engine,
    pub objectives: Vec<Metric>,
    pub constraints: Vec<Budget>,
    pub loss: Box<dyn LossModel>,
    /// Optimism of the loss objective: mu - beta * sigma (0 for deterministic laws).
    pub beta: f64,
    /// Every candidate is priced through it: each layer template once, shared by candidates,
    /// generations and threads ([`LayerCache`]; the figures do not depend on what it holds).
    pub layer_cache: LayerCache,
}

/// Everything measured of one genome (for result files).
#[derive(Clone, Debug)]
pub struct Measured {
    pub model: Model,
    pub metrics: Metrics,
    pub loss_sigma: f64,
    pub simulated: bool,
    /// How far weights plus the KV cache at the workload overshoot the substrate's memory
    /// capacity, relative to it (0 when they fit, as the simulator's `fits_memory` says; also
    /// 0 for a candidate screened out before simulation). Part of the constraint violation:
    /// a design that does not fit the chip is infeasible.
    pub memory_excess: f64,
}

impl ArchProblem {
    /// The layer cache for a search on `substrate` at `workload`, of the default capacity.
    pub fn cache_for(substrate: &Substrate, workload: Workload) -> LayerCache {
        LayerCache::new(substrate, workload, crate::sim::engine::cached::DEFAULT_CAPACITY)
    }

    /// Loss only (cheap), then costs from the simulator unless a loss budget is already broken.
    pub fn measure(&self, g: &Genome) -> Measured {
        let model = self.space.model(g, "candidate");
        let p = self.loss.predict(&model);
        let mut m = Metrics {
            loss: p.mu - self.beta * p.sigma,
            params: accounting::params(&model).total as f64,
            weights: accounting::weight_bytes(&model).get(),
            kv: accounting::kv_bytes_per_token(&model).get()
                * (self.workload.prompt + self.workload.generate) as f64
                * self.workload.batch as f64,
            ..Metrics::default()
        };
        let loss_violated = self
            .constraints
            .iter()
            .any(|b| b.terms == [Metric::Loss] && b.violation(&m) > 0.0);
        // A genome whose model passes the parameter limit is not simulated: it counts as a
        // design a whole capacity over the chip's memory.
        let too_large = model.size_error().is_some();
        if loss_violated || too_large {
            m.ttft = SCREENED;
            m.tpot = SCREENED;
            m.latency = SCREENED;
            m.energy = SCREENED;
            return Measured {
                model,
                metrics: m,
                loss_sigma: p.sigma,
                simulated: false,
                memory_excess: if too_large { 1.0 } else { 0.0 },
            };
        }
        let s = self
            .layer_cache
            .summary(&model, &self.substrate, self.workload, self.engine);
        m.ttft = s.ttft_s;
        m.tpot = s.tpot_s;
        m.latency = s.ttft_s + s.tpot_s * self.workload.generate as f64;
        m.energy = s.energy_per_token_j;
        Measured {
            model,
            metrics: m,
            loss_sigma: p.sigma,
            simulated: true,
            memory_excess: s.memory_excess(),
        }
    }

    /// How many of `genomes` each loss model scores, and how many lie outside the
    /// surrogate's training domain ([`LossModel::scorer`]: a domain check per genome, no
    /// prediction). Over [`Nsga2::archive`](super::nsga2::Nsga2::archive), every distinct
    /// candidate the run evaluated.
    pub fn loss_tally<'a>(&self, genomes: impl IntoIterator<Item = &'a Genome>) -> LossTally {
        let mut t = LossTally::default();
        for g in genomes {
            t.add(self.loss.scorer(&self.space.model(g, "candidate")));
        }
        t
    }

    /// The summed relative violation of the constraints (budgets) alone.
    pub fn violation(&self, m: &Metrics) -> f64 {
        self.constraints.iter().map(|b| b.violation(m)).sum()
    }

    /// The constraint violation the search ranks by: the budgets' plus the memory excess.
    pub fn total_violation(&self, m: &Measured) -> f64 {
        self.violation(&m.metrics) + m.memory_excess
    }
}

impl Problem for ArchProblem {
    type Genome = Genome;
    type Key = Genome;
    type Error = Infallible;

    fn n_objectives(&self) -> usize {
        self.objectives.len()
    }
    fn key(&self, genome: &Genome) -> Genome {
        genome.clone()
    }
    fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Genome {
        self.space.random(rng)
    }
    fn initial_population<R: Rng + ?Sized>(&self, size: usize, rng: &mut R) -> Vec<Genome> {
        self.space.initial_population(size, rng)
    }
    fn crossover<R: Rng + ?Sized>(&self, a: &Genome, b: &Genome, rng: &mut R) -> (Genome, Genome) {
        self.space.crossover(a, b, rng)
    }
    fn mutate<R: Rng + ?Sized>(&self, genome: &mut Genome, rng: &mut R) {
        self.space.mutate(genome, rng)
    }
    fn repair(&self, genome: &mut Genome) {
        self.space.repair(genome)
    }
    fn check_genome(&self, genome: &Genome) -> Result<(), String> {
        self.space.check(genome)
    }
    fn objective_name(&self, k: usize) -> String {
        self.objectives
            .get(k)
            .map_or(format!("f{}", k + 1), |m| m.name().to_string())
    }
    fn evaluate(&self, genome: &Genome) -> Result<Evaluation, Infallible> {
        let m = self.measure(genome);
        Ok(Evaluation {
            objectives: self.objectives.iter().map(|o| m.metrics.get(*o)).collect(),
            violation: self.total_violation(&m),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::ChinchillaPrior;
    use crate::search::nsga2::{Nsga2, Settings, Truncation};

    fn problem(constraints: &[&str]) -> ArchProblem {
        let substrate = crate::substrate::load("gemmini", &[]).unwrap();
        let workload = Workload::new(64, 16, 1).unwrap();
        ArchProblem {
            space: super::super::space::load("smollm2-135m-seeded").unwrap(),
            layer_cache: ArchProblem::cache_for(&substrate, workload),
            substrate,
            workload,
            engine: Engine::Roofline,
            objectives: vec![Metric::Loss, Metric::Tpot],
            constraints: constraints.iter().map(|c| Budget::parse(c).unwrap()).collect(),
            loss: Box::new(ChinchillaPrior {
                tokens_per_param: 20.0,
            }),
            beta: 0.0,
        }
    }

    fn settings(population: usize, offspring: usize, generations: usize, seed: u64) -> Settings {
        Settings {
            population,
            offspring,
            generations,
            crossover_prob: 0.6,
            mutation_prob: 0.3,
            seed,
            eliminate_duplicates: true,
            truncation: Truncation::IterativeCrowding,
        }
    }

    #[test]
    fn search_improves_on_the_seed_and_is_deterministic() {
        let p = problem(&["loss<=3.9"]);
        let settings = settings(8, 16, 4, 42);
        let run = || {
            let mut e = Nsga2::new(&p, settings.clone()).unwrap();
            e.run(|_, _| {}).unwrap();
            e.pareto_front()
                .iter()
                .map(|i| i.evaluation.objectives.clone())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(!a.is_empty());
        let seed = p.space.genome_of(p.space.seed.as_ref().unwrap());
        let s = p.evaluate(&seed).unwrap();
        // every front member is non-dominated by the seed
        for f in &a {
            assert!(
                !crate::search::nsga2::dominates(&s.objectives, f),
                "{f:?} dominated by the seed {:?}",
                s.objectives
            );
        }
    }

    #[test]
    fn loss_budget_screens_before_simulating() {
        let p = problem(&["loss<=2.0"]);
        let seed = p.space.genome_of(p.space.seed.as_ref().unwrap());
        let m = p.measure(&seed);
        assert!(!m.simulated);
        assert!(p.violation(&m.metrics) > 0.0);
        let p = problem(&["loss<=9"]);
        let m = p.measure(&seed);
        assert!(m.simulated && m.metrics.tpot > 0.0 && m.metrics.tpot < SCREENED);
    }

    /// Issue 14: checkpoints are loaded from files anyone can edit. Whatever is changed in a
    /// population member (mask and layer lengths, any gene, any objective), resuming returns
    /// an error or a working engine, never a panic.
    mod edited_checkpoints {
        use super::*;
        use crate::search::nsga2::{CacheInCheckpoint, Checkpoint};
        use proptest::prelude::*;
        use std::sync::OnceLock;

        fn setting() -> &'static (ArchProblem, Checkpoint<Genome>) {
            static SETTING: OnceLock<(ArchProblem, Checkpoint<Genome>)> = OnceLock::new();
            SETTING.get_or_init(|| {
                let p = problem(&["loss<=3.9"]);
                let mut engine = Nsga2::new(&p, settings(6, 6, 3, 5)).unwrap();
                engine.step().unwrap();
                let checkpoint = engine.checkpoint(CacheInCheckpoint::Omit);
                (p, checkpoint)
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]
            #[test]
            fn resuming_never_panics(
                member in 0usize..6,
                what in 0usize..9,
                slot in 0usize..64,
                length in 0usize..64,
                value in prop_oneof![any::<u64>(), 0u64..2048],
                objective in prop_oneof![any::<f64>(), Just(f64::NAN), Just(-1.0)],
            ) {
                let (p, checkpoint) = setting();
                let mut edited = checkpoint.clone();
                let g = &mut edited.population[member].genome;
                let n = g.layers.len();
                match what {
                    0 => g.mask.resize(length, true),
                    1 => g.layers.truncate(length),
                    2 => g.d_model = value,
                    3 => g.weights = value as usize,
                    4 => g.layers[slot % n].heads = value,
                    5 => g.layers[slot % n].kv_groups = value,
                    6 => g.layers[slot % n].experts = value,
                    7 => g.layers[slot % n].active_experts = value,
                    _ => edited.population[member].evaluation.objectives[slot % 2] = objective,
                }
                // refused, or (an edit the space allows, e.g. a gene of an inactive slot set
                // to another candidate) accepted with every member valid and re-evaluated
                if let Ok(engine) = Nsga2::resume(p, edited) {
                    for i in engine.population() {
                        prop_assert_eq!(p.space.check(&i.genome), Ok(()));
                        prop_assert_eq!(&p.evaluate(&i.genome).unwrap(), &i.evaluation);
                    }
                }
            }
        }
    }
}
