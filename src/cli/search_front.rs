//! How an architecture search reports its loss models and prints its front (kept apart from
//! the run and resume logic in `search_arch`).
//!
//! The printed front is for reading: one row per member, numbered as its
//! `models/pareto-<#>.yaml`, the objectives in their units (ms, mJ, MB, M parameters), the loss
//! model's `mu` and `sigma`, and a one-line architecture summary ("9 L, 3 none, H 4-15, FFN
//! 768-2304"); the full per-layer genes are in `pareto.csv` and the model files.

use llmforge::quality::LossTally;
use llmforge::search::arch::{ArchProblem, SCREENED};
use llmforge::search::nsga2::Individual;
use llmforge::search::space::Genome;
use llmforge::sweep::budget::Metric;
use llmforge::trace::table::{Column, Table};
use std::fmt::Write as _;

/// Counts the loss models over the archive entries not yet counted (`seen` of them were), so
/// the tally follows the run generation by generation.
pub fn tally_new(
    problem: &ArchProblem,
    archive: &[Individual<Genome>],
    seen: &mut usize,
    tally: &mut LossTally,
) {
    tally.merge(&problem.loss_tally(archive[(*seen).min(archive.len())..].iter().map(|i| &i.genome)));
    *seen = archive.len();
}

/// The lines above the front: what was searched, how many candidates each loss model scored
/// (and how many lay outside the surrogate's training domain), and what the loss column is.
pub fn header(problem: &ArchProblem, tally: &LossTally, run: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} on {}, loss model {}: {run}",
        problem.space.name,
        problem.substrate.name,
        problem.loss.name()
    );
    let _ = writeln!(
        s,
        "candidates scored by {}",
        tally.describe(problem.loss.domain().is_some())
    );
    if let Some(d) = problem.loss.domain() {
        let _ = writeln!(s, "surrogate's training domain: {d}");
    }
    let w = problem.workload;
    let _ = writeln!(
        s,
        "workload: prompt {}, generate {}, batch {}; loss = mu - {} sigma (nats)",
        w.prompt, w.generate, w.batch, problem.beta
    );
    let _ = writeln!(
        s,
        "feasible = meets every --constraint and fits the substrate's memory ({:.3} GB for weights and the KV cache at this workload); violation adds the relative excess of each",
        problem.substrate.memory_capacity().get() / 1e9
    );
    s
}

/// Three significant digits, no exponent (e.g. 24.4, 4.76, 0.815).
fn sig3(v: f64) -> String {
    let a = v.abs();
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    format!("{v:.decimals$}")
}

/// A objective's column: name, unit, and its value in that unit.
fn objective_column(m: Metric) -> (Column, fn(f64) -> String) {
    match m {
        Metric::Loss => (Column::number("loss", "nats"), |v| format!("{v:.4}")),
        Metric::Ttft => (Column::number("TTFT", "ms"), |v| sig3(v * 1e3)),
        Metric::Tpot => (Column::number("TPOT", "ms"), |v| sig3(v * 1e3)),
        Metric::Latency => (Column::number("latency", "ms"), |v| sig3(v * 1e3)),
        Metric::Energy => (Column::number("energy/token", "mJ"), |v| sig3(v * 1e3)),
        Metric::Params => (Column::number("params", "M"), |v| format!("{:.1}", v / 1e6)),
        Metric::Weights => (Column::number("weights", "MB"), |v| sig3(v / 1e6)),
        Metric::Kv => (Column::number("KV cache", "MB"), |v| sig3(v / 1e6)),
    }
}

fn range(values: impl Iterator<Item = u64>) -> Option<String> {
    let (lo, hi) = values.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
    match (lo, hi) {
        (u64::MAX, _) => None,
        (lo, hi) if lo == hi => Some(lo.to_string()),
        (lo, hi) => Some(format!("{lo}-{hi}")),
    }
}

/// "9 L, 3 none, H 4-15, FFN 768-2304": active layers, attention-free layers, the range of
/// query heads over the attention layers and of FFN widths over all; the width and weight
/// precision when the space varies them, and MoE experts when any layer has them.
pub fn architecture(problem: &ArchProblem, g: &Genome) -> String {
    let space = &problem.space;
    let mut parts = Vec::new();
    if space.d_model.len() > 1 {
        parts.push(format!("d {}", g.d_model));
    }
    let layers: Vec<_> = g.active().collect();
    parts.push(format!("{} L", layers.len()));
    let free = layers.iter().filter(|l| !l.attention).count();
    if free > 0 {
        parts.push(format!("{free} none"));
    }
    if let Some(h) = range(layers.iter().filter(|l| l.attention).map(|l| l.heads)) {
        parts.push(format!("H {h}"));
    }
    if let Some(f) = range(layers.iter().map(|l| l.ffn)) {
        parts.push(format!("FFN {f}"));
    }
    if let Some(e) = range(layers.iter().filter(|l| l.experts > 1).map(|l| l.experts)) {
        let a = range(layers.iter().filter(|l| l.experts > 1).map(|l| l.active_experts)).unwrap_or_default();
        parts.push(format!("MoE {e} experts, {a} active"));
    }
    if space.weights.len() > 1 {
        if let Some(w) = space.weights.get(g.weights) {
            parts.push(w.to_string());
        }
    }
    parts.join(", ")
}

/// A warning when more than one loss model scored the candidates listed: their losses are
/// on different scales (`None` for one model).
pub fn mixed_scales<'a>(scorers: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut seen: Vec<&str> = scorers.collect();
    seen.sort_unstable();
    seen.dedup();
    (seen.len() > 1).then(|| {
        format!(
            "warning: the front mixes loss models ({}), whose losses are on different scales: compare rows of one model, or name one with --quality",
            seen.join(", ")
        )
    })
}

/// The front as an aligned table (see the module documentation). A `feasible` column appears
/// when a member breaks a constraint, a `scored by` column when a member lies outside the
/// surrogate's training domain.
pub fn front_table(problem: &ArchProblem, objectives: &[Metric], front: &[Individual<Genome>]) -> String {
    let models: Vec<_> = front
        .iter()
        .map(|i| problem.space.model(&i.genome, "front"))
        .collect();
    let losses: Vec<_> = models.iter().map(|m| problem.loss.predict(m)).collect();
    let show_sigma = losses.iter().any(|p| p.sigma > 0.0);
    let show_feasible = front.iter().any(|i| i.evaluation.violation > 0.0);
    let show_scorer = losses.iter().any(|p| p.outside.is_some());
    let show_params = !objectives.contains(&Metric::Params);
    let mut columns = vec![Column::number("#", "")];
    let formats: Vec<_> = objectives.iter().map(|m| objective_column(*m)).collect();
    columns.extend(formats.iter().map(|(c, _)| c.clone()));
    if show_sigma {
        columns.push(Column::number("mu", "nats"));
        columns.push(Column::number("sigma", "nats"));
    }
    if show_params {
        columns.push(Column::number("params", "M"));
    }
    if show_feasible {
        columns.push(Column::text("feasible"));
    }
    columns.push(Column::text("architecture"));
    if show_scorer {
        columns.push(Column::text("scored by"));
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut merged = false;
    for (k, ((ind, m), p)) in front.iter().zip(&models).zip(&losses).enumerate() {
        // Members are sorted by objectives, so genomes that differ only in inactive layer
        // slots (the same model) are neighbours: one row, both numbers.
        if k > 0 && models[k - 1] == *m {
            if let Some(last) = rows.last_mut() {
                last[0].push_str(&format!(",{k}"));
                merged = true;
                continue;
            }
        }
        let mut row = vec![k.to_string()];
        for ((_, format), v) in formats.iter().zip(&ind.evaluation.objectives) {
            row.push(if *v >= SCREENED {
                "-".to_string()
            } else {
                format(*v)
            });
        }
        if show_sigma {
            row.push(format!("{:.4}", p.mu));
            row.push(format!("{:.4}", p.sigma));
        }
        if show_params {
            let n = llmforge::model::accounting::params(m).total as f64;
            row.push(format!("{:.1}", n / 1e6));
        }
        if show_feasible {
            row.push(
                if ind.evaluation.violation > 0.0 {
                    "no"
                } else {
                    "yes"
                }
                .to_string(),
            );
        }
        row.push(architecture(problem, &ind.genome));
        if show_scorer {
            row.push(match p.outside {
                Some(o) => format!("{} (outside: {o})", p.scorer.name()),
                None => p.scorer.name().to_string(),
            });
        }
        rows.push(row);
    }
    let mut table = Table::new(columns);
    for row in rows {
        table.row(row);
    }
    let mut text = table.render();
    if let Some(w) = mixed_scales(losses.iter().map(|p| p.scorer.name())) {
        text.push_str(&format!("{w}\n"));
    }
    if merged {
        text.push_str(
            "(a row with two numbers: genomes that differ only in inactive layer slots, the same model)\n",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits_and_the_mixed_scale_warning() {
        let got: Vec<String> = [24.37, 4.762, 0.8159, 112.6, 9.999]
            .iter()
            .map(|v| sig3(*v))
            .collect();
        assert_eq!(got, ["24.4", "4.76", "0.816", "113", "10.00"]);
        assert_eq!(range([4u64, 15, 9].into_iter()).as_deref(), Some("4-15"));
        assert_eq!(range([12u64, 12].into_iter()).as_deref(), Some("12"));
        assert_eq!(range(std::iter::empty()), None);
        assert_eq!(mixed_scales(["surrogate", "surrogate"].into_iter()), None);
        let w = mixed_scales(["surrogate", "chinchilla", "surrogate"].into_iter()).unwrap();
        assert!(w.contains("(chinchilla, surrogate)"), "{w}");
    }
}
