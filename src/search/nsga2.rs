//! NSGA-II (Deb, Pratap, Agarwal and Meyarivan, IEEE TEVC 2002) over any [`Problem`] with a
//! typed genome.
//!
//! The engine knows nothing about genomes: the problem creates, recombines, mutates, repairs
//! and evaluates them, and names each one by a hashable [`Problem::Key`] for the evaluation
//! cache. The engine owns selection and survival:
//!
//! - *constrained domination*: a feasible solution beats an infeasible one, two infeasible
//!   ones are ordered by total constraint violation, two feasible ones by Pareto dominance;
//! - fast non-dominated sort and crowding distance under that relation;
//! - binary tournaments: feasibility, then violation, then rank, then crowding distance,
//!   then a coin flip;
//! - (mu + lambda) survival: parents and offspring merged, sorted, the last front that fits
//!   truncated by descending crowding distance.
//!
//! It runs ask/tell ([`Nsga2::ask`] gives the batch to evaluate, [`Nsga2::tell`] takes its
//! evaluations), or [`Nsga2::step`] does both, evaluating the batch in parallel with rayon
//! through a cache of every genome evaluated so far.
//!
//! Determinism: all randomness of batch `b` (batch 0 is the initial population, batch `g` the
//! offspring of generation `g`) comes from a fresh xoshiro256++ generator seeded from
//! `(settings.seed, b)`, used only on the calling thread; evaluations are placed by index;
//! ties in sorting fall back to indices. The state between generations is therefore just the
//! population, the counters and the cache ([`Checkpoint`]), with no generator state to save,
//! and a run resumed from a checkpoint is identical to one that never stopped.

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cmp::{Ordering, Reverse};
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

/// A boxed error from a problem's evaluation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The version of the [`Checkpoint`] layout; a checkpoint with another version is refused.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// Objective values (all minimised) and total constraint violation of one genome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// One value per objective, all minimised.
    pub objectives: Vec<f64>,
    /// Total constraint violation: 0 when feasible, positive otherwise.
    pub violation: f64,
}

impl Evaluation {
    /// An evaluation with no constraint violated.
    pub fn feasible(objectives: Vec<f64>) -> Self {
        Evaluation {
            objectives,
            violation: 0.0,
        }
    }

    pub fn is_feasible(&self) -> bool {
        self.violation <= 0.0
    }
}

/// A multi-objective optimisation problem over genomes of type [`Problem::Genome`].
///
/// Every method that needs randomness gets the engine's generator; a problem must draw all
/// its randomness from it (never from a thread-local generator), or runs stop being
/// reproducible. `evaluate` runs on rayon worker threads and must be a pure function of the
/// genome.
pub trait Problem: Sync {
    type Genome: Clone + Send + Sync + Serialize + DeserializeOwned;
    /// Identity of a genome for the evaluation cache and duplicate elimination: two genomes
    /// with equal keys must evaluate identically.
    type Key: Hash + Eq + Send;
    type Error: std::error::Error + Send + Sync + 'static;

    fn n_objectives(&self) -> usize;
    fn key(&self, genome: &Self::Genome) -> Self::Key;
    /// A random genome (already valid, or made valid by [`Problem::repair`]).
    fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Self::Genome;
    /// The initial population; by default `size` random genomes. Override it to seed the
    /// search with known designs.
    fn initial_population<R: Rng + ?Sized>(&self, size: usize, rng: &mut R) -> Vec<Self::Genome> {
        (0..size).map(|_| self.random(rng)).collect()
    }
    fn crossover<R: Rng + ?Sized>(
        &self,
        a: &Self::Genome,
        b: &Self::Genome,
        rng: &mut R,
    ) -> (Self::Genome, Self::Genome);
    fn mutate<R: Rng + ?Sized>(&self, genome: &mut Self::Genome, rng: &mut R);
    /// Makes a genome valid after an operator; called on every new genome.
    fn repair(&self, genome: &mut Self::Genome);
    fn evaluate(&self, genome: &Self::Genome) -> Result<Evaluation, Self::Error>;
    /// The fewest candidates one rayon task evaluates. The default, 1, spreads a batch over
    /// all threads; a problem whose evaluation takes well under a microsecond should return a
    /// large number, since handing work to another thread costs more than evaluating it.
    /// Results do not depend on it.
    fn parallel_chunk(&self) -> usize {
        1
    }
    /// Whether evaluations are cached by key (the default). A problem whose genomes almost
    /// never repeat and whose evaluation is cheaper than hashing and storing a genome (the
    /// real-valued benchmarks) may turn it off; repeats are then evaluated again, and
    /// [`Nsga2::archive`] stays empty.
    fn cache_evaluations(&self) -> bool {
        true
    }
    /// Checks a genome read from a checkpoint: is it one this problem's operators could have
    /// produced (lengths, every gene in its range)? The reason names what is wrong. Nothing
    /// else is done with a genome that fails. The default accepts every genome.
    fn check_genome(&self, _genome: &Self::Genome) -> Result<(), String> {
        Ok(())
    }
    /// The name of objective `k` in messages (by default `f1`, `f2`, ...).
    fn objective_name(&self, k: usize) -> String {
        format!("f{}", k + 1)
    }
}

/// NSGA-II parameters. Deliberately without `Default`: every run states its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Individuals kept after each survival (mu).
    pub population: usize,
    /// Offspring produced per generation (lambda).
    pub offspring: usize,
    /// Generations after the initial population; the run evaluates
    /// `population + generations * offspring` candidates (fewer with cache hits).
    pub generations: usize,
    /// Probability that a mating pair is recombined rather than copied.
    pub crossover_prob: f64,
    /// Probability that [`Problem::mutate`] is applied to an offspring.
    pub mutation_prob: f64,
    pub seed: u64,
    /// Reject offspring whose key equals a current parent's or an earlier sibling's and breed
    /// again (up to 100 tries per offspring on average, after which duplicates are accepted);
    /// repeats in the initial population are replaced by random genomes.
    pub eliminate_duplicates: bool,
    pub truncation: Truncation,
}

impl Settings {
    pub fn validate(&self) -> Result<(), Nsga2Error> {
        let bad = |field: &'static str, reason: String| Err(Nsga2Error::Settings { field, reason });
        if self.population == 0 {
            return bad("population", "must be at least 1".into());
        }
        if self.offspring == 0 {
            return bad("offspring", "must be at least 1".into());
        }
        use crate::limits;
        for (field, v, max) in [
            ("population", self.population, limits::MAX_POPULATION),
            ("offspring", self.offspring, limits::MAX_OFFSPRING),
            ("generations", self.generations, limits::MAX_GENERATIONS),
        ] {
            if let Some(m) = limits::above(field, v as u64, max as u64) {
                return bad(field, format!("{m} (see {})", limits::DOC));
            }
        }
        for (field, p) in [
            ("crossover_prob", self.crossover_prob),
            ("mutation_prob", self.mutation_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(field, format!("must be a probability in [0, 1], got {p}"));
            }
        }
        Ok(())
    }
}

/// How the last front that does not fit whole is cut down to size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Truncation {
    /// Deb et al. 2002: crowding distances computed once, the largest kept (as pymoo does).
    Crowding,
    /// Kukkonen and Deb 2006: remove the most crowded member, recompute the distances of the
    /// rest, repeat. Keeps a markedly more even spread for the same population size.
    IterativeCrowding,
}

/// A genome with its evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Individual<G> {
    pub genome: G,
    pub evaluation: Evaluation,
}

/// What one generation produced; passed to observers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationReport {
    /// 0 for the initial population, then 1..=generations.
    pub generation: usize,
    /// Calls to [`Problem::evaluate`] so far.
    pub evaluations: u64,
    /// Candidates answered from the cache so far.
    pub cache_hits: u64,
    /// Feasible members of the population's first front.
    pub front_size: usize,
    /// Feasible members of the population.
    pub feasible: usize,
}

/// Whether a [`Checkpoint`] carries the evaluation cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheInCheckpoint {
    /// Every genome evaluated so far: a resumed run then has the same cache hits (and
    /// evaluation count) as one that never stopped. Right when evaluations are expensive.
    Include,
    /// Only the population: results are still identical after resuming, but genomes seen
    /// before the checkpoint are evaluated again. Right for cheap evaluations.
    Omit,
}

/// The whole state of a run between two generations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint<G> {
    pub format: u32,
    pub settings: Settings,
    /// Batches evaluated and told so far (1 after the initial population).
    pub completed_batches: usize,
    pub evaluations: u64,
    pub cache_hits: u64,
    pub population: Vec<Individual<G>>,
    /// Every evaluated genome in evaluation order, when the cache was included.
    pub cache: Option<Vec<Individual<G>>>,
}

/// Occurs when settings, evaluations or a checkpoint are unusable, or evaluation fails.
#[derive(Debug, thiserror::Error)]
pub enum Nsga2Error {
    /// Occurs when a setting is out of range.
    #[error("invalid NSGA-II setting `{field}`: {reason}")]
    Settings { field: &'static str, reason: String },
    /// Occurs when `ask` is called after the last generation.
    #[error("the search has finished all {generations} generations; there is nothing more to ask")]
    Finished { generations: usize },
    /// Occurs when `tell` is called without a batch asked for.
    #[error("tell() was called with no asked batch pending; call ask() first")]
    NothingAsked,
    /// Occurs when the problem's initial population has the wrong size.
    #[error("the problem's initial population has {got} genomes but the settings ask for {expected}")]
    InitialPopulation { expected: usize, got: usize },
    /// Occurs when `tell` gets a different number of evaluations than was asked.
    #[error("expected {expected} evaluations for the asked batch, got {got}")]
    BatchSize { expected: usize, got: usize },
    /// Occurs when an evaluation has the wrong number of objectives.
    #[error("evaluation {index} has {got} objectives but the problem has {expected}")]
    ObjectiveCount {
        index: usize,
        expected: usize,
        got: usize,
    },
    /// Occurs when an evaluation holds NaN, an infinity or a negative violation.
    #[error(
        "evaluation {index} is unusable: objectives {objectives:?}, violation {violation} \
         (objectives must be finite, violation finite and >= 0)"
    )]
    BadEvaluation {
        index: usize,
        objectives: Vec<f64>,
        violation: f64,
    },
    /// Occurs when the problem fails to evaluate a candidate.
    #[error("evaluating candidate {index} of generation {generation} failed")]
    Evaluation {
        generation: usize,
        index: usize,
        #[source]
        source: BoxError,
    },
    /// Occurs when a checkpoint does not describe a state this engine can resume.
    #[error("cannot resume from this checkpoint: {reason}")]
    Checkpoint { reason: String },
}

/// The NSGA-II engine: the population and cache of one run over one problem.
pub struct Nsga2<'p, P: Problem> {
    problem: &'p P,
    settings: Settings,
    completed_batches: usize,
    population: Vec<Individual<P::Genome>>,
    ranks: Vec<usize>,
    crowding: Vec<f64>,
    /// Every evaluated genome in evaluation order; `cache_index` maps keys into it.
    archive: Vec<Individual<P::Genome>>,
    cache_index: HashMap<P::Key, usize, KeyHasher>,
    evaluations: u64,
    cache_hits: u64,
    pending: Option<Vec<P::Genome>>,
}

impl<'p, P: Problem> Nsga2<'p, P> {
    pub fn new(problem: &'p P, settings: Settings) -> Result<Self, Nsga2Error> {
        settings.validate()?;
        Ok(Nsga2 {
            problem,
            settings,
            completed_batches: 0,
            population: Vec::new(),
            ranks: Vec::new(),
            crowding: Vec::new(),
            archive: Vec::new(),
            cache_index: HashMap::default(),
            evaluations: 0,
            cache_hits: 0,
            pending: None,
        })
    }

    /// Continues a run from `checkpoint`, taken from a run over the same problem.
    ///
    /// Nothing in the checkpoint is trusted: every genome (population and cache) must pass
    /// [`Problem::check_genome`], and every one is evaluated again and must give the saved
    /// objectives and violation, so an edited checkpoint, or one written for another problem,
    /// is refused with the entry, the objective and both values.
    pub fn resume(problem: &'p P, checkpoint: Checkpoint<P::Genome>) -> Result<Self, Nsga2Error> {
        let refuse = |reason: String| Err(Nsga2Error::Checkpoint { reason });
        if checkpoint.format != CHECKPOINT_FORMAT {
            return refuse(format!(
                "it has format {} but this build reads format {CHECKPOINT_FORMAT}",
                checkpoint.format
            ));
        }
        let mut engine = Nsga2::new(problem, checkpoint.settings)?;
        let expected = if checkpoint.completed_batches == 0 {
            0
        } else {
            engine.settings.population
        };
        if checkpoint.population.len() != expected {
            return refuse(format!(
                "{} individuals after {} batches, expected {expected}",
                checkpoint.population.len(),
                checkpoint.completed_batches
            ));
        }
        if checkpoint.completed_batches > engine.settings.generations + 1 {
            return refuse(format!(
                "{} batches completed, more than the {} generations (+1 initial) of its settings",
                checkpoint.completed_batches, engine.settings.generations
            ));
        }
        for (index, individual) in checkpoint.population.iter().enumerate() {
            engine.check_entry("population", index, individual)?;
        }
        engine.verify_evaluations("population", &checkpoint.population, checkpoint.completed_batches)?;
        if let Some(cache) = checkpoint.cache {
            for (index, individual) in cache.iter().enumerate() {
                engine.check_entry("cache", index, individual)?;
            }
            engine.verify_evaluations("cache", &cache, checkpoint.completed_batches)?;
            for (index, individual) in cache.into_iter().enumerate() {
                let key = problem.key(&individual.genome);
                if engine.cache_index.insert(key, engine.archive.len()).is_some() {
                    return refuse(format!("cache entry {index} repeats an earlier genome"));
                }
                engine.archive.push(individual);
            }
        }
        // every asked genome is either evaluated or a cache hit: the batch 0 asks `population`,
        // every later batch `offspring`
        let asked = match checkpoint.completed_batches {
            0 => 0,
            b => (engine.settings.population as u64)
                .saturating_add((engine.settings.offspring as u64).saturating_mul(b as u64 - 1)),
        };
        let counted = checkpoint.evaluations.checked_add(checkpoint.cache_hits);
        if counted.is_none_or(|c| c > asked) {
            return refuse(format!(
                "{} evaluations and {} cache hits, more than the {asked} genomes its {} batches asked for",
                checkpoint.evaluations, checkpoint.cache_hits, checkpoint.completed_batches
            ));
        }
        engine.completed_batches = checkpoint.completed_batches;
        engine.evaluations = checkpoint.evaluations;
        engine.cache_hits = checkpoint.cache_hits;
        engine.population = checkpoint.population;
        engine.rank_population();
        Ok(engine)
    }

    /// One checkpoint entry's genome and the shape of its evaluation.
    fn check_entry(
        &self,
        what: &str,
        index: usize,
        individual: &Individual<P::Genome>,
    ) -> Result<(), Nsga2Error> {
        self.problem
            .check_genome(&individual.genome)
            .map_err(|reason| Nsga2Error::Checkpoint {
                reason: format!("{what}[{index}].genome: {reason}"),
            })?;
        self.check_evaluation(index, &individual.evaluation)
            .map_err(|error| Nsga2Error::Checkpoint {
                reason: format!("{what}[{index}].evaluation: {error}"),
            })
    }

    /// Evaluates every entry again (in parallel) and compares with the saved evaluation.
    fn verify_evaluations(
        &self,
        what: &str,
        individuals: &[Individual<P::Genome>],
        generation: usize,
    ) -> Result<(), Nsga2Error> {
        let problem = self.problem;
        let fresh: Vec<Result<Evaluation, P::Error>> = individuals
            .par_iter()
            .with_min_len(problem.parallel_chunk().max(1))
            .map(|individual| problem.evaluate(&individual.genome))
            .collect();
        // equal up to the last bits (they are equal when written by this build)
        let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
        let note = "the checkpoint was edited, or written for another problem or by another llmforge version";
        for (index, (individual, fresh)) in individuals.iter().zip(fresh).enumerate() {
            let fresh = fresh.map_err(|source| Nsga2Error::Evaluation {
                generation,
                index,
                source: Box::new(source),
            })?;
            let saved = &individual.evaluation;
            for (k, (&was, &is)) in saved.objectives.iter().zip(&fresh.objectives).enumerate() {
                if !close(was, is) {
                    return Err(Nsga2Error::Checkpoint {
                        reason: format!(
                            "{what}[{index}]: objective `{}` is {was:?} in the checkpoint, but its genome evaluates to {is:?} ({note})",
                            problem.objective_name(k)
                        ),
                    });
                }
            }
            if !close(saved.violation, fresh.violation) {
                return Err(Nsga2Error::Checkpoint {
                    reason: format!(
                        "{what}[{index}]: the constraint violation is {:?} in the checkpoint, but its genome evaluates to {:?} ({note})",
                        saved.violation, fresh.violation
                    ),
                });
            }
        }
        Ok(())
    }

    /// The state after the last completed generation.
    pub fn checkpoint(&self, cache: CacheInCheckpoint) -> Checkpoint<P::Genome> {
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            settings: self.settings.clone(),
            completed_batches: self.completed_batches,
            evaluations: self.evaluations,
            cache_hits: self.cache_hits,
            population: self.population.clone(),
            cache: match cache {
                CacheInCheckpoint::Include => Some(self.archive.clone()),
                CacheInCheckpoint::Omit => None,
            },
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn problem(&self) -> &'p P {
        self.problem
    }

    /// True once the initial population and all generations have been told.
    pub fn is_done(&self) -> bool {
        self.completed_batches > self.settings.generations
    }

    /// The generation the next `ask` belongs to (0 = initial population).
    pub fn next_generation(&self) -> usize {
        self.completed_batches
    }

    /// The current population (after the last survival).
    pub fn population(&self) -> &[Individual<P::Genome>] {
        &self.population
    }

    /// Non-domination rank of each population member (0 = first front).
    pub fn ranks(&self) -> &[usize] {
        &self.ranks
    }

    /// Crowding distance of each population member within its front.
    pub fn crowding(&self) -> &[f64] {
        &self.crowding
    }

    /// The feasible members of the first front, in population order.
    pub fn pareto_front(&self) -> Vec<&Individual<P::Genome>> {
        self.population
            .iter()
            .zip(&self.ranks)
            .filter(|(individual, rank)| **rank == 0 && individual.evaluation.is_feasible())
            .map(|(individual, _)| individual)
            .collect()
    }

    /// Calls to [`Problem::evaluate`] made through the cache so far.
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    pub fn cache_hits(&self) -> u64 {
        self.cache_hits
    }

    /// Every genome evaluated through the cache, in evaluation order.
    pub fn archive(&self) -> &[Individual<P::Genome>] {
        &self.archive
    }

    /// The batch to evaluate next: the initial population, then each generation's offspring.
    /// Asking again before `tell` returns the same batch.
    pub fn ask(&mut self) -> Result<&[P::Genome], Nsga2Error> {
        if self.is_done() {
            return Err(Nsga2Error::Finished {
                generations: self.settings.generations,
            });
        }
        if self.pending.is_none() {
            let mut rng = batch_rng(self.settings.seed, self.completed_batches);
            let batch = if self.completed_batches == 0 {
                let mut initial = self
                    .problem
                    .initial_population(self.settings.population, &mut rng);
                if initial.len() != self.settings.population {
                    return Err(Nsga2Error::InitialPopulation {
                        expected: self.settings.population,
                        got: initial.len(),
                    });
                }
                initial.iter_mut().for_each(|genome| self.problem.repair(genome));
                if self.settings.eliminate_duplicates {
                    self.replace_duplicates(&mut initial, &mut rng);
                }
                initial
            } else {
                self.breed(&mut rng)
            };
            self.pending = Some(batch);
        }
        Ok(self.pending.as_deref().unwrap_or_default())
    }

    /// Takes the evaluations of the asked batch (same order) and performs survival.
    pub fn tell(&mut self, evaluations: Vec<Evaluation>) -> Result<GenerationReport, Nsga2Error> {
        let expected = match &self.pending {
            Some(batch) => batch.len(),
            None => return Err(Nsga2Error::NothingAsked),
        };
        if evaluations.len() != expected {
            return Err(Nsga2Error::BatchSize {
                expected,
                got: evaluations.len(),
            });
        }
        for (index, evaluation) in evaluations.iter().enumerate() {
            self.check_evaluation(index, evaluation)?;
        }
        let batch = self.pending.take().unwrap_or_default();
        let mut merged = std::mem::take(&mut self.population);
        merged.extend(
            batch
                .into_iter()
                .zip(evaluations)
                .map(|(genome, evaluation)| Individual { genome, evaluation }),
        );
        let survivors = survive(merged, self.settings.population, self.settings.truncation);
        self.population = survivors.population;
        self.ranks = survivors.ranks;
        let evaluations: Vec<&Evaluation> = self.population.iter().map(|i| &i.evaluation).collect();
        self.crowding = crowding_by_front(&evaluations, &self.ranks);
        let report = self.report();
        self.completed_batches += 1;
        Ok(report)
    }

    /// Asks, evaluates through the cache in parallel, and tells.
    pub fn step(&mut self) -> Result<GenerationReport, Nsga2Error> {
        self.ask()?;
        let batch = self.pending.take().unwrap_or_default();
        let evaluations = self.evaluate_cached(&batch);
        self.pending = Some(batch);
        self.tell(evaluations?)
    }

    /// Runs the remaining generations, calling `observer` after each (including generation 0).
    pub fn run(&mut self, mut observer: impl FnMut(&Self, &GenerationReport)) -> Result<(), Nsga2Error> {
        while !self.is_done() {
            let report = self.step()?;
            observer(self, &report);
        }
        Ok(())
    }

    /// Evaluates `genomes` (results in the same order): cached genomes and repeats within the
    /// batch count as cache hits, the rest are evaluated in parallel and cached.
    pub fn evaluate_cached(&mut self, genomes: &[P::Genome]) -> Result<Vec<Evaluation>, Nsga2Error> {
        enum Slot {
            Archived(usize),
            Fresh(usize),
        }
        if !self.problem.cache_evaluations() {
            let evaluations = self.evaluate_all(genomes)?;
            self.evaluations = self.evaluations.saturating_add(genomes.len() as u64);
            return Ok(evaluations);
        }
        let mut fresh_keys: HashMap<P::Key, usize, KeyHasher> =
            HashMap::with_capacity_and_hasher(genomes.len(), KeyHasher);
        // batch positions of the genomes to evaluate, first occurrences only
        let mut fresh: Vec<usize> = Vec::new();
        let mut slots = Vec::with_capacity(genomes.len());
        for (position, genome) in genomes.iter().enumerate() {
            let key = self.problem.key(genome);
            if let Some(&at) = self.cache_index.get(&key) {
                slots.push(Slot::Archived(at));
                self.cache_hits = self.cache_hits.saturating_add(1);
                continue;
            }
            match fresh_keys.entry(key) {
                Entry::Occupied(entry) => {
                    slots.push(Slot::Fresh(*entry.get()));
                    self.cache_hits = self.cache_hits.saturating_add(1);
                }
                Entry::Vacant(entry) => {
                    entry.insert(fresh.len());
                    slots.push(Slot::Fresh(fresh.len()));
                    fresh.push(position);
                }
            }
        }
        let to_evaluate: Vec<&P::Genome> = fresh.iter().map(|&position| &genomes[position]).collect();
        let fresh_evaluations = self.evaluate_all(&to_evaluate).map_err(|error| match error {
            Nsga2Error::Evaluation {
                generation,
                index,
                source,
            } => Nsga2Error::Evaluation {
                generation,
                index: fresh[index],
                source,
            },
            Nsga2Error::BadEvaluation {
                index,
                objectives,
                violation,
            } => Nsga2Error::BadEvaluation {
                index: fresh[index],
                objectives,
                violation,
            },
            Nsga2Error::ObjectiveCount { index, expected, got } => Nsga2Error::ObjectiveCount {
                index: fresh[index],
                expected,
                got,
            },
            other => other,
        })?;
        self.evaluations = self.evaluations.saturating_add(fresh.len() as u64);
        // Archive in batch order, so the cache (and a checkpoint of it) is deterministic.
        let base = self.archive.len();
        let mut by_order: Vec<(P::Key, usize)> = fresh_keys.into_iter().collect();
        by_order.sort_unstable_by_key(|(_, order)| *order);
        self.cache_index.reserve(fresh.len());
        self.archive.reserve(fresh.len());
        for ((key, order), evaluation) in by_order.into_iter().zip(fresh_evaluations) {
            self.cache_index.insert(key, base + order);
            self.archive.push(Individual {
                genome: genomes[fresh[order]].clone(),
                evaluation,
            });
        }
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Archived(at) => self.archive[at].evaluation.clone(),
                Slot::Fresh(order) => self.archive[base + order].evaluation.clone(),
            })
            .collect())
    }

    /// Evaluates every genome, in parallel when the batch exceeds the problem's chunk size;
    /// errors name the position in `genomes`.
    fn evaluate_all<G: std::borrow::Borrow<P::Genome> + Sync>(
        &self,
        genomes: &[G],
    ) -> Result<Vec<Evaluation>, Nsga2Error> {
        let problem = self.problem;
        let chunk = problem.parallel_chunk().max(1);
        let evaluate = |genome: &G| problem.evaluate(genome.borrow());
        let results: Vec<Result<Evaluation, P::Error>> = if genomes.len() <= chunk {
            // one task's worth: stay on this thread rather than wake the pool
            genomes.iter().map(evaluate).collect()
        } else {
            genomes.par_iter().with_min_len(chunk).map(evaluate).collect()
        };
        let mut evaluations = Vec::with_capacity(results.len());
        for (index, result) in results.into_iter().enumerate() {
            let evaluation = result.map_err(|source| Nsga2Error::Evaluation {
                generation: self.completed_batches,
                index,
                source: Box::new(source),
            })?;
            self.check_evaluation(index, &evaluation)?;
            evaluations.push(evaluation);
        }
        Ok(evaluations)
    }

    fn check_evaluation(&self, index: usize, evaluation: &Evaluation) -> Result<(), Nsga2Error> {
        let expected = self.problem.n_objectives();
        if evaluation.objectives.len() != expected {
            return Err(Nsga2Error::ObjectiveCount {
                index,
                expected,
                got: evaluation.objectives.len(),
            });
        }
        let usable = evaluation.objectives.iter().all(|v| v.is_finite())
            && evaluation.violation.is_finite()
            && evaluation.violation >= 0.0;
        if !usable {
            return Err(Nsga2Error::BadEvaluation {
                index,
                objectives: evaluation.objectives.clone(),
                violation: evaluation.violation,
            });
        }
        Ok(())
    }

    fn report(&self) -> GenerationReport {
        GenerationReport {
            generation: self.completed_batches,
            evaluations: self.evaluations,
            cache_hits: self.cache_hits,
            front_size: self.pareto_front().len(),
            feasible: self
                .population
                .iter()
                .filter(|i| i.evaluation.is_feasible())
                .count(),
        }
    }

    /// Recomputes ranks and crowding distances of the population from scratch.
    fn rank_population(&mut self) {
        let evaluations: Vec<&Evaluation> = self.population.iter().map(|i| &i.evaluation).collect();
        self.ranks = vec![0; self.population.len()];
        for (rank, front) in non_dominated_sort(&evaluations).iter().enumerate() {
            for &i in front {
                self.ranks[i] = rank;
            }
        }
        self.crowding = crowding_by_front(&evaluations, &self.ranks);
    }

    /// Replaces repeated genomes of the initial population by random ones (up to 100 draws
    /// each; a space too small to fill the population keeps its repeats).
    fn replace_duplicates(&self, genomes: &mut [P::Genome], rng: &mut BatchRng) {
        let mut seen: HashSet<P::Key, KeyHasher> = HashSet::default();
        for genome in genomes.iter_mut() {
            let mut tries = 0;
            while !seen.insert(self.problem.key(genome)) && tries < 100 {
                *genome = self.problem.random(rng);
                self.problem.repair(genome);
                tries += 1;
            }
        }
    }

    /// Offspring of the current population: tournaments, crossover, mutation, repair.
    fn breed(&self, rng: &mut BatchRng) -> Vec<P::Genome> {
        let wanted = self.settings.offspring;
        let mut tournament = Tournament {
            engine: self,
            pool: Vec::new(),
        };
        let mut seen: HashSet<P::Key, KeyHasher> = HashSet::default();
        if self.settings.eliminate_duplicates {
            seen.extend(self.population.iter().map(|i| self.problem.key(&i.genome)));
        }
        let max_matings = 100 * wanted.div_ceil(2);
        let mut matings = 0;
        let mut offspring = Vec::with_capacity(wanted);
        while offspring.len() < wanted {
            let a = &self.population[tournament.select(rng)].genome;
            let b = &self.population[tournament.select(rng)].genome;
            let (first, second) = if rng.random_bool(self.settings.crossover_prob) {
                self.problem.crossover(a, b, rng)
            } else {
                (a.clone(), b.clone())
            };
            matings += 1;
            for mut child in [first, second] {
                if rng.random_bool(self.settings.mutation_prob) {
                    self.problem.mutate(&mut child, rng);
                }
                self.problem.repair(&mut child);
                if offspring.len() == wanted {
                    break;
                }
                if self.settings.eliminate_duplicates
                    && matings <= max_matings
                    && !seen.insert(self.problem.key(&child))
                {
                    continue;
                }
                offspring.push(child);
            }
        }
        offspring
    }
}

/// Binary tournaments over permutations of the population, so every member competes about
/// equally often.
struct Tournament<'e, 'p, P: Problem> {
    engine: &'e Nsga2<'p, P>,
    pool: Vec<usize>,
}

impl<P: Problem> Tournament<'_, '_, P> {
    fn draw(&mut self, rng: &mut BatchRng) -> usize {
        if self.pool.is_empty() {
            self.pool = (0..self.engine.population.len()).collect();
            self.pool.shuffle(rng);
        }
        self.pool.pop().unwrap_or(0)
    }

    fn select(&mut self, rng: &mut BatchRng) -> usize {
        let (a, b) = (self.draw(rng), self.draw(rng));
        let engine = self.engine;
        let (ea, eb) = (&engine.population[a].evaluation, &engine.population[b].evaluation);
        let order = match (ea.is_feasible(), eb.is_feasible()) {
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => ea.violation.total_cmp(&eb.violation),
            (true, true) => engine.ranks[a]
                .cmp(&engine.ranks[b])
                .then(engine.crowding[b].total_cmp(&engine.crowding[a])),
        };
        match order {
            Ordering::Less => a,
            Ordering::Greater => b,
            Ordering::Equal => {
                if rng.random_bool(0.5) {
                    a
                } else {
                    b
                }
            }
        }
    }
}

/// The generator behind all of a batch's randomness.
type BatchRng = Xoshiro256PlusPlus;

/// The generator for batch `batch` of a run seeded with `seed`: xoshiro256++ (a fixed
/// algorithm, unlike `StdRng`, and a fraction of ChaCha's cost, which showed in profiles)
/// whose four state words are SplitMix64 images of `seed` and `batch` and of their mix, so
/// distinct (seed, batch) pairs get distinct, well-scrambled states.
fn batch_rng(seed: u64, batch: usize) -> BatchRng {
    let a = splitmix64(seed);
    let b = splitmix64((batch as u64) ^ 0x6e73_6761_322d_7631); // "nsga2-v1"
    let c = splitmix64(a ^ b.rotate_left(17));
    let d = splitmix64(c.wrapping_add(0x9e37_79b9_7f4a_7c15));
    let mut state = [0u8; 32];
    for (slot, word) in state.chunks_exact_mut(8).zip([a, b, c, d]) {
        slot.copy_from_slice(&word.to_le_bytes());
    }
    BatchRng::from_seed(state)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `a` Pareto-dominates `b`: no worse in every objective and better in at least one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// Deb's constrained domination: feasible beats infeasible, infeasible ones compare by
/// violation, feasible ones by Pareto dominance.
pub fn constrained_dominates(a: &Evaluation, b: &Evaluation) -> bool {
    match (a.is_feasible(), b.is_feasible()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => dominates(&a.objectives, &b.objectives),
    }
}

/// Fast non-dominated sort under constrained domination: the fronts, best first, each
/// listing indices into `evaluations` in ascending order.
///
/// Feasible solutions come first, sorted by Pareto dominance (a sort-and-binary-search sweep
/// for two objectives, O(n log n); Deb's pairwise counting otherwise, O(m n^2)); infeasible
/// ones follow in order of violation, equal violations sharing a front.
pub fn non_dominated_sort(evaluations: &[&Evaluation]) -> Vec<Vec<usize>> {
    let (feasible, mut infeasible): (Vec<usize>, Vec<usize>) =
        (0..evaluations.len()).partition(|&i| evaluations[i].is_feasible());
    let objectives: Vec<&[f64]> = evaluations.iter().map(|e| e.objectives.as_slice()).collect();
    let mut fronts = match objectives.first().map(|o| o.len()) {
        Some(2) => pareto_fronts_2d(&objectives, feasible),
        _ => pareto_fronts(&objectives, feasible),
    };
    infeasible.sort_by(|&a, &b| {
        evaluations[a]
            .violation
            .total_cmp(&evaluations[b].violation)
            .then(a.cmp(&b))
    });
    for i in infeasible {
        match fronts.last_mut() {
            Some(front)
                if front
                    .first()
                    .is_some_and(|&j| evaluations[j].violation == evaluations[i].violation) =>
            {
                front.push(i)
            }
            _ => fronts.push(vec![i]),
        }
    }
    fronts
}

/// Pareto relation of two objective vectors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Relation {
    FirstDominates,
    SecondDominates,
    Neither,
}

fn relation(a: &[f64], b: &[f64]) -> Relation {
    let (mut a_better, mut b_better) = (false, false);
    for (x, y) in a.iter().zip(b) {
        if x < y {
            a_better = true;
        } else if y < x {
            b_better = true;
        }
        if a_better && b_better {
            return Relation::Neither;
        }
    }
    match (a_better, b_better) {
        (true, false) => Relation::FirstDominates,
        (false, true) => Relation::SecondDominates,
        _ => Relation::Neither,
    }
}

/// Deb's fast non-dominated sort of the points `members` (indices into `objectives`).
fn pareto_fronts(objectives: &[&[f64]], members: Vec<usize>) -> Vec<Vec<usize>> {
    let n = members.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for a in 0..n {
        for b in a + 1..n {
            match relation(objectives[members[a]], objectives[members[b]]) {
                Relation::FirstDominates => {
                    dominates_list[a].push(b);
                    dominated_by[b] += 1;
                }
                Relation::SecondDominates => {
                    dominates_list[b].push(a);
                    dominated_by[a] += 1;
                }
                Relation::Neither => {}
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&a| dominated_by[a] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &a in &current {
            for &b in &dominates_list[a] {
                dominated_by[b] -= 1;
                if dominated_by[b] == 0 {
                    next.push(b);
                }
            }
        }
        let mut front: Vec<usize> = current.iter().map(|&a| members[a]).collect();
        front.sort_unstable();
        fronts.push(front);
        current = next;
    }
    fronts
}

/// Two-objective non-dominated sort (the binary-search variant of Zhang et al.'s efficient
/// non-dominated sort): visit points in lexicographic order; the last point added to a front
/// has that front's smallest second objective, so it alone decides whether the front
/// dominates the new point, and that answer is monotone over the fronts.
fn pareto_fronts_2d(objectives: &[&[f64]], mut members: Vec<usize>) -> Vec<Vec<usize>> {
    members.sort_by(|&a, &b| {
        let (p, q) = (objectives[a], objectives[b]);
        p[0].total_cmp(&q[0]).then(p[1].total_cmp(&q[1])).then(a.cmp(&b))
    });
    let mut fronts: Vec<Vec<usize>> = Vec::new();
    for i in members {
        let p = objectives[i];
        let dominated_by_front = |front: &Vec<usize>| {
            let q = objectives[front[front.len() - 1]];
            q[1] < p[1] || (q[1] == p[1] && q[0] < p[0])
        };
        let k = fronts.partition_point(dominated_by_front);
        match fronts.get_mut(k) {
            Some(front) => front.push(i),
            None => fronts.push(vec![i]),
        }
    }
    for front in &mut fronts {
        front.sort_unstable();
    }
    fronts
}

/// Crowding distance of each point of one front: the sum over objectives of the normalised
/// gap between its two neighbours; the extremes of each objective get infinity (fronts of
/// one or two points are all extremes). An objective on which all points agree adds nothing.
// `k` indexes each point's objectives, not `objectives` itself (clippy misreads it)
#[allow(clippy::needless_range_loop)]
pub fn crowding_distance(objectives: &[&[f64]]) -> Vec<f64> {
    let n = objectives.len();
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let mut distance = vec![0.0; n];
    let mut order: Vec<usize> = (0..n).collect();
    for k in 0..objectives[0].len() {
        let value = |i: usize| objectives[i][k];
        order.sort_by(|&a, &b| value(a).total_cmp(&value(b)).then(a.cmp(&b)));
        let span = value(order[n - 1]) - value(order[0]);
        if span <= 0.0 {
            continue;
        }
        distance[order[0]] = f64::INFINITY;
        distance[order[n - 1]] = f64::INFINITY;
        for w in 1..n - 1 {
            distance[order[w]] += (value(order[w + 1]) - value(order[w - 1])) / span;
        }
    }
    distance
}

/// The outcome of [`survive`]: the survivors and each one's non-domination rank.
#[derive(Clone, Debug, PartialEq)]
pub struct Survivors<G> {
    pub population: Vec<Individual<G>>,
    pub ranks: Vec<usize>,
}

/// (mu + lambda) survival: whole fronts while they fit, then the members of the front that
/// does not fit chosen by `truncation`. Survivors keep their rank in the merged set (removing
/// worse solutions cannot change the rank of better ones).
pub fn survive<G>(merged: Vec<Individual<G>>, size: usize, truncation: Truncation) -> Survivors<G> {
    let (chosen, ranks) = {
        let evaluations: Vec<&Evaluation> = merged.iter().map(|i| &i.evaluation).collect();
        let mut chosen = Vec::with_capacity(size);
        let mut ranks = Vec::with_capacity(size);
        for (rank, front) in non_dominated_sort(&evaluations).into_iter().enumerate() {
            let room = size - chosen.len();
            if front.len() <= room {
                chosen.extend(front);
            } else {
                chosen.extend(truncate_front(&front, &evaluations, room, truncation));
            }
            ranks.resize(chosen.len(), rank);
            if chosen.len() == size {
                break;
            }
        }
        (chosen, ranks)
    };
    let mut slots: Vec<Option<Individual<G>>> = merged.into_iter().map(Some).collect();
    Survivors {
        population: chosen.into_iter().filter_map(|i| slots[i].take()).collect(),
        ranks,
    }
}

/// Crowding distance of each member within its own front (members sharing a rank).
pub fn crowding_by_front(evaluations: &[&Evaluation], ranks: &[usize]) -> Vec<f64> {
    let mut crowding = vec![0.0; evaluations.len()];
    let fronts = ranks.iter().max().map_or(0, |r| r + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); fronts];
    for (i, &rank) in ranks.iter().enumerate() {
        members[rank].push(i);
    }
    for front in members {
        let objectives: Vec<&[f64]> = front
            .iter()
            .map(|&i| evaluations[i].objectives.as_slice())
            .collect();
        for (&i, distance) in front.iter().zip(crowding_distance(&objectives)) {
            crowding[i] = distance;
        }
    }
    crowding
}

/// The `keep` members of `front` (indices into `evaluations`) that survive truncation.
fn truncate_front(
    front: &[usize],
    evaluations: &[&Evaluation],
    keep: usize,
    truncation: Truncation,
) -> Vec<usize> {
    let objectives: Vec<&[f64]> = front
        .iter()
        .map(|&i| evaluations[i].objectives.as_slice())
        .collect();
    match truncation {
        Truncation::Crowding => {
            let distance = crowding_distance(&objectives);
            let mut order: Vec<usize> = (0..front.len()).collect();
            order.sort_by(|&a, &b| distance[b].total_cmp(&distance[a]).then(a.cmp(&b)));
            order[..keep].iter().map(|&w| front[w]).collect()
        }
        Truncation::IterativeCrowding => iterative_crowding(&objectives, keep)
            .into_iter()
            .map(|w| front[w])
            .collect(),
    }
}

/// Kukkonen and Deb's pruning: repeatedly drop the point with the smallest crowding distance
/// (the first such point on ties) and update only its neighbours' distances; returns the
/// positions kept, ascending. Identical to recomputing all distances after each removal.
fn iterative_crowding(objectives: &[&[f64]], keep: usize) -> Vec<usize> {
    let n = objectives.len();
    let m = objectives.first().map_or(0, |o| o.len());
    let mut alive = vec![true; n];
    let mut remaining = n;
    // per objective: neighbour links in sorted order, span, and each point's share
    let mut prev = vec![vec![usize::MAX; n]; m];
    let mut next = vec![vec![usize::MAX; n]; m];
    let mut span = vec![0.0; m];
    let mut share = vec![vec![0.0; n]; m];
    let mut distance = vec![0.0; n];
    let rebuild = |alive: &[bool],
                   prev: &mut Vec<Vec<usize>>,
                   next: &mut Vec<Vec<usize>>,
                   span: &mut Vec<f64>,
                   share: &mut Vec<Vec<f64>>,
                   distance: &mut Vec<f64>| {
        let members: Vec<usize> = (0..n).filter(|&i| alive[i]).collect();
        let subset: Vec<&[f64]> = members.iter().map(|&i| objectives[i]).collect();
        let fresh = crowding_distance(&subset);
        for (&i, d) in members.iter().zip(fresh) {
            distance[i] = d;
        }
        for k in 0..m {
            let mut order = members.clone();
            order.sort_by(|&a, &b| objectives[a][k].total_cmp(&objectives[b][k]).then(a.cmp(&b)));
            for w in 0..order.len() {
                prev[k][order[w]] = if w == 0 { usize::MAX } else { order[w - 1] };
                next[k][order[w]] = order.get(w + 1).copied().unwrap_or(usize::MAX);
            }
            span[k] = match (order.first(), order.last()) {
                (Some(&lo), Some(&hi)) => objectives[hi][k] - objectives[lo][k],
                _ => 0.0,
            };
            for &i in &order {
                share[k][i] = 0.0;
            }
            for w in 1..order.len().saturating_sub(1) {
                share[k][order[w]] = if span[k] > 0.0 {
                    (objectives[order[w + 1]][k] - objectives[order[w - 1]][k]) / span[k]
                } else {
                    0.0
                };
            }
        }
    };
    // candidates for removal, smallest (distance, position) first; entries whose distance
    // has changed since they were pushed are stale and skipped
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(2 * n);
    let refill = |heap: &mut BinaryHeap<Reverse<(u64, usize)>>, alive: &[bool], distance: &[f64]| {
        heap.clear();
        heap.extend(
            (0..n)
                .filter(|&i| alive[i])
                .map(|i| Reverse((distance_order(distance[i]), i))),
        );
    };
    rebuild(&alive, &mut prev, &mut next, &mut span, &mut share, &mut distance);
    refill(&mut heap, &alive, &distance);
    while remaining > keep {
        let Some(Reverse((order, worst))) = heap.pop() else {
            break;
        };
        if !alive[worst] || order != distance_order(distance[worst]) {
            continue;
        }
        alive[worst] = false;
        remaining -= 1;
        let extreme = (0..m).any(|k| prev[k][worst] == usize::MAX || next[k][worst] == usize::MAX);
        if extreme || remaining <= 2 {
            // the spans (or the set of extremes) change: recompute everything
            rebuild(&alive, &mut prev, &mut next, &mut span, &mut share, &mut distance);
            refill(&mut heap, &alive, &distance);
            continue;
        }
        for k in 0..m {
            let (before, after) = (prev[k][worst], next[k][worst]);
            next[k][before] = after;
            prev[k][after] = before;
            for j in [before, after] {
                let (p, q) = (prev[k][j], next[k][j]);
                if p == usize::MAX || q == usize::MAX || span[k] <= 0.0 {
                    continue;
                }
                share[k][j] = (objectives[q][k] - objectives[p][k]) / span[k];
            }
        }
        for j in (0..m).flat_map(|k| [prev[k][worst], next[k][worst]]) {
            if distance[j].is_finite() {
                distance[j] = (0..m).map(|k| share[k][j]).sum();
                heap.push(Reverse((distance_order(distance[j]), j)));
            }
        }
    }
    (0..n).filter(|&i| alive[i]).collect()
}

/// A key that orders non-negative distances (infinity included) like the numbers do.
fn distance_order(distance: f64) -> u64 {
    // +0.0 and -0.0 compare equal but differ in bits
    if distance == 0.0 { 0 } else { distance.to_bits() }
}

/// A fast non-cryptographic hasher for genome keys: four independent multiply-rotate lanes
/// over 8-byte words (so long keys hash at several words per cycle), folded by a SplitMix64
/// finaliser. Keys come from our own operators, not an adversary, so SipHash's flooding
/// resistance buys nothing, and it cost a tenth of a benchmark run.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHasher;

impl BuildHasher for KeyHasher {
    type Hasher = WordHasher;
    fn build_hasher(&self) -> WordHasher {
        WordHasher {
            lanes: [0; 4],
            words: 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct WordHasher {
    lanes: [u64; 4],
    words: u64,
}

const LANE_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

impl WordHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        let lane = &mut self.lanes[(self.words & 3) as usize];
        *lane = (lane.rotate_left(5) ^ word).wrapping_mul(LANE_MULTIPLIER);
        self.words += 1;
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut blocks = bytes.chunks_exact(32);
        for block in &mut blocks {
            for (lane, word) in self.lanes.iter_mut().zip(block.chunks_exact(8)) {
                let word = u64::from_le_bytes([
                    word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
                ]);
                *lane = (lane.rotate_left(5) ^ word).wrapping_mul(LANE_MULTIPLIER);
            }
            self.words += 4;
        }
        let rest = blocks.remainder();
        let mut words = rest.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes([
                word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
            ]));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.add(u64::from_le_bytes(word) ^ ((tail.len() as u64) << 59));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        let mut z = self.words;
        for lane in self.lanes {
            z = (z.rotate_left(23) ^ lane).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
