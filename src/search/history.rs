//! Per-generation history of a run: evaluations, cache hits, front size and the hypervolume
//! of the feasible first front, for `history.csv` and progress displays.

use super::hypervolume::{HypervolumeError, hypervolume};
use super::nsga2::{GenerationReport, Nsga2, Problem};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The reference point hypervolumes are measured against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReferencePoint {
    /// A given point, one coordinate per objective.
    Fixed(Vec<f64>),
    /// Fixed at the first recorded generation: per objective, the population's maximum moved
    /// outward by `factor - 1` of its magnitude (`factor * max` for positive maxima), as
    /// LLMForge does with factor 1.05 when objectives have no natural bound.
    FromFirstGeneration { factor: f64 },
}

/// One row of the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub generation: usize,
    pub evaluations: u64,
    pub cache_hits: u64,
    pub front_size: usize,
    pub hypervolume: f64,
    /// Architecture search with a loss model that has a training domain: distinct candidates
    /// evaluated so far that lie outside it (set by the driver, [`History::set_out_of_domain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_domain: Option<u64>,
}

/// Occurs when a generation cannot be recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistoryError {
    /// Occurs when the hypervolume cannot be computed (wrong dimension, non-finite values).
    #[error("hypervolume of generation {generation}: {source}")]
    Hypervolume {
        generation: usize,
        source: HypervolumeError,
    },
    /// Occurs when a reference is to be taken from a population with nothing in it.
    #[error("cannot derive a reference point from an empty population")]
    EmptyPopulation,
}

/// The rows recorded so far and the reference point they use. Serialisable, so a driver can
/// checkpoint it next to the engine's checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub reference: ReferencePoint,
    /// The reference point in use, once known.
    pub resolved: Option<Vec<f64>>,
    pub rows: Vec<HistoryRow>,
}

impl History {
    pub fn new(reference: ReferencePoint) -> Self {
        let resolved = match &reference {
            ReferencePoint::Fixed(point) => Some(point.clone()),
            ReferencePoint::FromFirstGeneration { .. } => None,
        };
        History {
            reference,
            resolved,
            rows: Vec::new(),
        }
    }

    /// Records the engine's state after the generation `report` describes.
    pub fn record<P: Problem>(
        &mut self,
        engine: &Nsga2<'_, P>,
        report: &GenerationReport,
    ) -> Result<&HistoryRow, HistoryError> {
        let reference = match (&self.resolved, &self.reference) {
            (Some(point), _) => point.clone(),
            (None, ReferencePoint::FromFirstGeneration { factor }) => {
                let population = engine.population();
                let first = population.first().ok_or(HistoryError::EmptyPopulation)?;
                let mut maxima = first.evaluation.objectives.clone();
                for individual in population {
                    for (max, value) in maxima.iter_mut().zip(&individual.evaluation.objectives) {
                        *max = max.max(*value);
                    }
                }
                let point: Vec<f64> = maxima.iter().map(|m| m + (factor - 1.0) * m.abs()).collect();
                self.resolved = Some(point.clone());
                point
            }
            (None, ReferencePoint::Fixed(point)) => point.clone(),
        };
        let front: Vec<&[f64]> = engine
            .pareto_front()
            .iter()
            .map(|individual| individual.evaluation.objectives.as_slice())
            .collect();
        let volume = hypervolume(&front, &reference).map_err(|source| HistoryError::Hypervolume {
            generation: report.generation,
            source,
        })?;
        self.rows.push(HistoryRow {
            generation: report.generation,
            evaluations: report.evaluations,
            cache_hits: report.cache_hits,
            front_size: report.front_size,
            hypervolume: volume,
            out_of_domain: None,
        });
        Ok(&self.rows[self.rows.len() - 1])
    }

    /// Sets the last recorded row's count of candidates outside the loss model's domain.
    pub fn set_out_of_domain(&mut self, count: u64) {
        if let Some(row) = self.rows.last_mut() {
            row.out_of_domain = Some(count);
        }
    }

    /// The rows as CSV: `generation,evaluations,cache_hits,front_size,hypervolume`, plus
    /// `out_of_domain` when any row has that count.
    pub fn to_csv(&self) -> String {
        let domain = self.rows.iter().any(|r| r.out_of_domain.is_some());
        let mut out = String::from("generation,evaluations,cache_hits,front_size,hypervolume");
        out.push_str(if domain { ",out_of_domain\n" } else { "\n" });
        for row in &self.rows {
            // writing to a String cannot fail
            let _ = write!(
                out,
                "{},{},{},{},{:?}",
                row.generation, row.evaluations, row.cache_hits, row.front_size, row.hypervolume
            );
            if domain {
                let _ = write!(
                    out,
                    ",{}",
                    row.out_of_domain.map_or(String::new(), |n| n.to_string())
                );
            }
            out.push('\n');
        }
        out
    }
}
