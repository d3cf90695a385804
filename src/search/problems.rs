//! Standard multi-objective benchmark problems for checking the NSGA-II engine: ZDT1, ZDT2,
//! ZDT3 (Zitzler, Deb and Thiele 2000; 30 real variables in [0, 1], two objectives) and DTLZ2
//! (Deb, Thiele, Laumanns and Zitzler 2002; three objectives, 12 variables), with the
//! operators pymoo 0.6 uses by default for NSGA-II on real variables: simulated binary
//! crossover (SBX, eta 15, each variable recombined with probability 0.5 and the children's
//! values swapped with probability 0.5) and polynomial mutation (eta 20, each variable
//! mutated with probability 1/n). The engine is expected to run them with crossover
//! probability 0.9 per mating and mutation applied to every offspring.
//!
//! Each problem also knows its true Pareto front, to sample it and to give the hypervolume
//! of the whole front, the ceiling any finite population approaches from below.

use super::nsga2::{Evaluation, Problem};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::f64::consts::{FRAC_PI_2, PI};
use std::fmt;
use std::str::FromStr;

/// Which benchmark problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Benchmark {
    Zdt1,
    Zdt2,
    Zdt3,
    Dtlz2,
}

impl Benchmark {
    pub const ALL: [Benchmark; 4] = [
        Benchmark::Zdt1,
        Benchmark::Zdt2,
        Benchmark::Zdt3,
        Benchmark::Dtlz2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Benchmark::Zdt1 => "zdt1",
            Benchmark::Zdt2 => "zdt2",
            Benchmark::Zdt3 => "zdt3",
            Benchmark::Dtlz2 => "dtlz2",
        }
    }

    pub fn n_objectives(self) -> usize {
        match self {
            Benchmark::Dtlz2 => 3,
            _ => 2,
        }
    }

    /// The usual number of variables: 30 for the ZDT problems, 12 for DTLZ2 (k = 10).
    pub fn standard_variables(self) -> usize {
        match self {
            Benchmark::Dtlz2 => 12,
            _ => 30,
        }
    }
}

impl fmt::Display for Benchmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Occurs when a benchmark is named or sized wrongly.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProblemError {
    /// Occurs when a benchmark name is not known.
    #[error("unknown benchmark problem `{given}`; expected one of zdt1, zdt2, zdt3, dtlz2")]
    UnknownBenchmark { given: String },
    /// Occurs when a benchmark is given too few variables.
    #[error("{benchmark} needs at least {minimum} variables, got {got}")]
    TooFewVariables {
        benchmark: Benchmark,
        minimum: usize,
        got: usize,
    },
}

impl FromStr for Benchmark {
    type Err = ProblemError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Benchmark::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ProblemError::UnknownBenchmark { given: s.to_string() })
    }
}

/// Simulated binary crossover parameters (pymoo's `SBX`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sbx {
    /// Distribution index: larger keeps children closer to their parents.
    pub eta: f64,
    /// Probability that a variable is recombined at all.
    pub prob_var: f64,
    /// Probability that the two children's values of a recombined variable are swapped.
    pub prob_swap: f64,
}

/// Polynomial mutation parameters (pymoo's `PM`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolynomialMutation {
    /// Distribution index: larger gives smaller steps.
    pub eta: f64,
    /// Probability that a variable is mutated.
    pub prob_var: f64,
}

/// SBX on two real vectors within per-variable bounds (Deb and Agrawal 1995, bounded form
/// as in pymoo 0.6 `cross_sbx`). Variables closer than 1e-14 and fixed variables
/// (lower == upper) are copied; children are clipped to the bounds.
pub fn sbx<R: Rng + ?Sized>(
    a: &[f64],
    b: &[f64],
    lower: &[f64],
    upper: &[f64],
    params: &Sbx,
    rng: &mut R,
) -> (Vec<f64>, Vec<f64>) {
    let mut first = a.to_vec();
    let mut second = b.to_vec();
    for i in 0..a.len() {
        if !rng.random_bool(params.prob_var) {
            continue;
        }
        let (y1, y2) = (a[i].min(b[i]), a[i].max(b[i]));
        let (xl, xu) = (lower[i], upper[i]);
        let delta = y2 - y1;
        if delta <= 1e-14 || xl == xu {
            continue;
        }
        let u: f64 = rng.random();
        let spread = |beta: f64| {
            let alpha = 2.0 - power(beta, -(params.eta + 1.0));
            if u <= 1.0 / alpha {
                root(u * alpha, params.eta + 1.0)
            } else {
                root(1.0 / (2.0 - u * alpha), params.eta + 1.0)
            }
        };
        let beta_low = spread(1.0 + 2.0 * (y1 - xl) / delta);
        let beta_high = spread(1.0 + 2.0 * (xu - y2) / delta);
        let mut c1 = 0.5 * ((y1 + y2) - beta_low * delta);
        let mut c2 = 0.5 * ((y1 + y2) + beta_high * delta);
        if rng.random_bool(params.prob_swap) {
            std::mem::swap(&mut c1, &mut c2);
        }
        first[i] = c1.clamp(xl, xu);
        second[i] = c2.clamp(xl, xu);
    }
    (first, second)
}

/// `x^(1/n)`, by repeated square roots when `n` is a power of two up to 64 (SBX's usual
/// eta 15 gives n = 16), several times cheaper than `powf` and as accurate to an ulp or two.
fn root(x: f64, n: f64) -> f64 {
    if n.fract() == 0.0 && (1.0..=64.0).contains(&n) && (n as u32).is_power_of_two() {
        (0..(n as u32).trailing_zeros()).fold(x, |value, _| value.sqrt())
    } else {
        x.powf(1.0 / n)
    }
}

/// `x^e`, by repeated squaring when `e` is a small integer (the usual distribution indices
/// make `eta + 1` one), which is several times cheaper than `powf`.
fn power(x: f64, e: f64) -> f64 {
    if e.fract() == 0.0 && e.abs() <= 64.0 {
        x.powi(e as i32)
    } else {
        x.powf(e)
    }
}

/// Polynomial mutation of a real vector within per-variable bounds (Deb and Goyal 1996,
/// bounded form as in pymoo 0.6 `mut_pm`); results are clipped to the bounds.
pub fn polynomial_mutation<R: Rng + ?Sized>(
    x: &mut [f64],
    lower: &[f64],
    upper: &[f64],
    params: &PolynomialMutation,
    rng: &mut R,
) {
    let exponent = 1.0 / (params.eta + 1.0);
    for i in 0..x.len() {
        if !rng.random_bool(params.prob_var) {
            continue;
        }
        let (xl, xu) = (lower[i], upper[i]);
        if xl == xu {
            continue;
        }
        let span = xu - xl;
        let delta1 = (x[i] - xl) / span;
        let delta2 = (xu - x[i]) / span;
        let u: f64 = rng.random();
        let deltaq = if u <= 0.5 {
            let val = 2.0 * u + (1.0 - 2.0 * u) * power(1.0 - delta1, params.eta + 1.0);
            val.powf(exponent) - 1.0
        } else {
            let val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * power(1.0 - delta2, params.eta + 1.0);
            1.0 - val.powf(exponent)
        };
        x[i] = (x[i] + deltaq * span).clamp(xl, xu);
    }
}

/// A benchmark problem over `n_var` real variables in [0, 1] with the pymoo default operators.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkProblem {
    pub benchmark: Benchmark,
    pub sbx: Sbx,
    pub mutation: PolynomialMutation,
    /// [`Problem::parallel_chunk`]: 4096 by default, since one evaluation takes tens of
    /// nanoseconds (a whole batch is cheaper than a thread hand-off); 1 exercises the
    /// parallel path.
    pub parallel_chunk: usize,
    /// [`Problem::cache_evaluations`]: off by default, since real-valued genomes practically
    /// never repeat (parents copied unchanged are removed as duplicates) and an evaluation
    /// is cheaper than hashing and storing the genome.
    pub cache: bool,
    lower: Vec<f64>,
    upper: Vec<f64>,
}

impl BenchmarkProblem {
    /// The benchmark at its standard size (30 variables for ZDT, 12 for DTLZ2).
    pub fn standard(benchmark: Benchmark) -> Self {
        Self::with_variables(benchmark, benchmark.standard_variables())
            .unwrap_or_else(|_| unreachable!("standard sizes are valid"))
    }

    /// The benchmark with `n_var` variables (at least 2 for ZDT, 3 for DTLZ2).
    pub fn with_variables(benchmark: Benchmark, n_var: usize) -> Result<Self, ProblemError> {
        let minimum = benchmark.n_objectives();
        if n_var < minimum {
            return Err(ProblemError::TooFewVariables {
                benchmark,
                minimum,
                got: n_var,
            });
        }
        Ok(BenchmarkProblem {
            benchmark,
            sbx: Sbx {
                eta: 15.0,
                prob_var: 0.5,
                prob_swap: 0.5,
            },
            mutation: PolynomialMutation {
                eta: 20.0,
                prob_var: (1.0 / n_var as f64).min(0.5),
            },
            parallel_chunk: 4096,
            cache: false,
            lower: vec![0.0; n_var],
            upper: vec![1.0; n_var],
        })
    }

    pub fn n_variables(&self) -> usize {
        self.lower.len()
    }

    /// Objective values of `x` (all minimised).
    pub fn objectives(&self, x: &[f64]) -> Vec<f64> {
        match self.benchmark {
            Benchmark::Zdt1 | Benchmark::Zdt2 | Benchmark::Zdt3 => {
                let f1 = x[0];
                let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
                let ratio = f1 / g;
                let h = match self.benchmark {
                    Benchmark::Zdt1 => 1.0 - ratio.sqrt(),
                    Benchmark::Zdt2 => 1.0 - ratio * ratio,
                    _ => 1.0 - ratio.sqrt() - ratio * (10.0 * PI * f1).sin(),
                };
                vec![f1, g * h]
            }
            Benchmark::Dtlz2 => {
                let m = 3;
                let g: f64 = x[m - 1..].iter().map(|v| (v - 0.5) * (v - 0.5)).sum();
                let (a, b) = (x[0] * FRAC_PI_2, x[1] * FRAC_PI_2);
                vec![
                    (1.0 + g) * a.cos() * b.cos(),
                    (1.0 + g) * a.cos() * b.sin(),
                    (1.0 + g) * a.sin(),
                ]
            }
        }
    }

    /// `n` points on the true Pareto front (about `n` for DTLZ2, which uses a square grid of
    /// angles), sorted lexicographically.
    pub fn pareto_front(&self, n: usize) -> Vec<Vec<f64>> {
        let mut front: Vec<Vec<f64>> = match self.benchmark {
            Benchmark::Zdt1 => unit_grid(n).map(|f1| vec![f1, 1.0 - f1.sqrt()]).collect(),
            Benchmark::Zdt2 => unit_grid(n).map(|f1| vec![f1, 1.0 - f1 * f1]).collect(),
            Benchmark::Zdt3 => {
                let envelope = zdt3_front_samples(1 << 16);
                let last = envelope.len() - 1;
                (0..n)
                    .map(|i| envelope[if n == 1 { 0 } else { i * last / (n - 1) }].clone())
                    .collect()
            }
            Benchmark::Dtlz2 => {
                let side = (n as f64).sqrt().ceil() as usize;
                let mut points = Vec::with_capacity(side * side);
                for a in unit_grid(side) {
                    for b in unit_grid(side) {
                        let (a, b) = (a * FRAC_PI_2, b * FRAC_PI_2);
                        points.push(vec![a.cos() * b.cos(), a.cos() * b.sin(), a.sin()]);
                    }
                }
                points
            }
        };
        front.sort_by(|a, b| {
            a.iter()
                .zip(b)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        front.dedup();
        front
    }

    /// Hypervolume of the whole true front at `reference`, for references at or beyond the
    /// front's nadir (every coordinate >= 1); `None` otherwise or for a wrong dimension.
    /// ZDT1, ZDT2 and DTLZ2 are closed forms; ZDT3 integrates the front's staircase envelope
    /// on a 2^22-point grid (trapezoid rule, error below 1e-6).
    pub fn front_hypervolume(&self, reference: &[f64]) -> Option<f64> {
        if reference.len() != self.benchmark.n_objectives() || !reference.iter().all(|r| *r >= 1.0) {
            return None;
        }
        Some(match self.benchmark {
            Benchmark::Zdt1 => {
                let (r1, r2) = (reference[0], reference[1]);
                (r2 - 1.0 + 2.0 / 3.0) + (r1 - 1.0) * r2
            }
            Benchmark::Zdt2 => {
                let (r1, r2) = (reference[0], reference[1]);
                (r2 - 1.0 + 1.0 / 3.0) + (r1 - 1.0) * r2
            }
            Benchmark::Zdt3 => {
                let (r1, r2) = (reference[0], reference[1]);
                // trapezoid rule on the running minimum of h (the front's staircase envelope)
                let steps = 1usize << 22;
                let width = 1.0 / steps as f64;
                let mut envelope = zdt3_h(0.0);
                let mut area = 0.0;
                for i in 1..=steps {
                    let next = envelope.min(zdt3_h(i as f64 * width));
                    area += (r2 - 0.5 * (envelope + next)) * width;
                    envelope = next;
                }
                area + (r1 - 1.0) * (r2 - envelope)
            }
            Benchmark::Dtlz2 => reference.iter().product::<f64>() - PI / 6.0,
        })
    }
}

/// `n` evenly spaced values from 0 to 1 inclusive.
fn unit_grid(n: usize) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| if n == 1 { 0.0 } else { i as f64 / (n - 1) as f64 })
}

/// ZDT3's second objective on the optimal manifold (g = 1).
fn zdt3_h(f1: f64) -> f64 {
    1.0 - f1.sqrt() - f1 * (10.0 * PI * f1).sin()
}

/// Points of the ZDT3 Pareto front: the grid points that lower the running minimum of h.
fn zdt3_front_samples(grid: usize) -> Vec<Vec<f64>> {
    let mut best = f64::INFINITY;
    let mut front = Vec::new();
    for f1 in unit_grid(grid) {
        let h = zdt3_h(f1);
        if h < best {
            best = h;
            front.push(vec![f1, h]);
        }
    }
    front
}

impl Problem for BenchmarkProblem {
    type Genome = Vec<f64>;
    type Key = Vec<u64>;
    type Error = Infallible;

    fn n_objectives(&self) -> usize {
        self.benchmark.n_objectives()
    }

    fn key(&self, genome: &Vec<f64>) -> Vec<u64> {
        genome.iter().map(|v| v.to_bits()).collect()
    }

    fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        self.lower
            .iter()
            .zip(&self.upper)
            .map(|(l, u)| l + rng.random::<f64>() * (u - l))
            .collect()
    }

    fn crossover<R: Rng + ?Sized>(&self, a: &Vec<f64>, b: &Vec<f64>, rng: &mut R) -> (Vec<f64>, Vec<f64>) {
        sbx(a, b, &self.lower, &self.upper, &self.sbx, rng)
    }

    fn mutate<R: Rng + ?Sized>(&self, genome: &mut Vec<f64>, rng: &mut R) {
        polynomial_mutation(genome, &self.lower, &self.upper, &self.mutation, rng);
    }

    fn repair(&self, genome: &mut Vec<f64>) {
        for ((v, l), u) in genome.iter_mut().zip(&self.lower).zip(&self.upper) {
            *v = v.clamp(*l, *u);
        }
    }

    fn evaluate(&self, genome: &Vec<f64>) -> Result<Evaluation, Infallible> {
        Ok(Evaluation::feasible(self.objectives(genome)))
    }

    fn parallel_chunk(&self) -> usize {
        self.parallel_chunk
    }

    fn cache_evaluations(&self) -> bool {
        self.cache
    }

    fn check_genome(&self, genome: &Vec<f64>) -> Result<(), String> {
        if genome.len() != self.lower.len() {
            return Err(format!(
                "{} variables, but {} has {}",
                genome.len(),
                self.benchmark.name(),
                self.lower.len()
            ));
        }
        for (k, ((v, l), u)) in genome.iter().zip(&self.lower).zip(&self.upper).enumerate() {
            if !(l <= v && v <= u) {
                return Err(format!("x{} = {v:?} is outside its bounds [{l}, {u}]", k + 1));
            }
        }
        Ok(())
    }
}
