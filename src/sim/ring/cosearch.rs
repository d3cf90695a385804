//! The hardware co-search: an explicit grid of named dimensions, every point packed and
//! priced, the best point under an envelope kept.

use super::RingError;
use super::eval::{RingReport, Workspace, pack_and_price, report_of};
use super::prepare::RingModel;
use super::spec::RingSpec;
use super::spec::{Objective, RingDesign};
use crate::units::Bytes;
use serde::{Deserialize, Serialize};

/// One named dimension of a design grid and its candidate values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridDim<V> {
    pub name: String,
    pub values: Vec<V>,
}

/// A design space as a value: the cartesian product of named dimensions, enumerated in a
/// fixed order (the last dimension varies fastest). Generic over the value type so other
/// substrates can describe their own grids.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DesignGrid<V> {
    dims: Vec<GridDim<V>>,
    len: usize,
}

impl<V> DesignGrid<V> {
    /// Non-empty dimensions with unique names and at least one value each.
    pub fn new(dims: Vec<GridDim<V>>) -> Result<DesignGrid<V>, RingError> {
        if dims.is_empty() {
            return Err(RingError::InvalidGrid {
                message: "a grid needs at least one dimension".into(),
            });
        }
        let mut len: usize = 1;
        for (i, d) in dims.iter().enumerate() {
            if d.values.is_empty() {
                return Err(RingError::InvalidGrid {
                    message: format!("dimension `{}` has no values", d.name),
                });
            }
            if dims[..i].iter().any(|o| o.name == d.name) {
                return Err(RingError::InvalidGrid {
                    message: format!("dimension `{}` appears twice", d.name),
                });
            }
            len = len
                .checked_mul(d.values.len())
                .ok_or_else(|| RingError::InvalidGrid {
                    message: "the grid has more points than fit in memory".into(),
                })?;
        }
        Ok(DesignGrid { dims, len })
    }
    /// Number of points.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn dims(&self) -> &[GridDim<V>] {
        &self.dims
    }
    /// Position of the dimension called `name`.
    pub fn dim_index(&self, name: &str) -> Option<usize> {
        self.dims.iter().position(|d| d.name == name)
    }
    /// The value index of dimension `dim` at flat point `point` (mixed radix, last fastest).
    pub fn value_index(&self, point: usize, dim: usize) -> usize {
        let stride: usize = self.dims[dim + 1..].iter().map(|d| d.values.len()).product();
        (point / stride) % self.dims[dim].values.len()
    }
    /// The value of dimension `dim` at flat point `point`.
    pub fn value(&self, point: usize, dim: usize) -> &V {
        &self.dims[dim].values[self.value_index(point, dim)]
    }
}

/// Candidate values of the ring grid.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridValue {
    Count(u64),
    Bytes(Bytes),
}

/// The ring's grid: dimensions `macs_per_vac` and `max_chips` (counts) and `wmem_per_core`
/// (bytes).
pub type RingGrid = DesignGrid<GridValue>;

impl DesignGrid<GridValue> {
    /// The paper's grid: MACs per VAC {16, 32, 64} x max chips {8, 16, 32} x WMEM per core
    /// {24, 48, 96, 192, 384} KiB = 45 points.
    pub fn llmforge_ring() -> RingGrid {
        let count = |v: &[u64]| v.iter().map(|&x| GridValue::Count(x)).collect();
        let dims = vec![
            GridDim {
                name: "macs_per_vac".into(),
                values: count(&[16, 32, 64]),
            },
            GridDim {
                name: "max_chips".into(),
                values: count(&[8, 16, 32]),
            },
            GridDim {
                name: "wmem_per_core".into(),
                values: [24.0, 48.0, 96.0, 192.0, 384.0]
                    .iter()
                    .map(|&k| GridValue::Bytes(Bytes::kib(k)))
                    .collect(),
            },
        ];
        DesignGrid { len: 45, dims }
    }

    /// The ring designs of every point, checked once (names, value kinds, ranges).
    pub fn ring_designs(&self) -> Result<Vec<RingDesign>, RingError> {
        const NAMES: [&str; 3] = ["macs_per_vac", "max_chips", "wmem_per_core"];
        for d in &self.dims {
            if !NAMES.contains(&d.name.as_str()) {
                return Err(RingError::InvalidGrid {
                    message: format!(
                        "unknown ring grid dimension `{}` (expected one of {NAMES:?})",
                        d.name
                    ),
                });
            }
        }
        let find = |name: &str| {
            self.dim_index(name).ok_or_else(|| RingError::InvalidGrid {
                message: format!("the ring grid needs a `{name}` dimension"),
            })
        };
        let (pe_dim, chips_dim, wmem_dim) = (find(NAMES[0])?, find(NAMES[1])?, find(NAMES[2])?);
        let count = |point: usize, dim: usize| match self.value(point, dim) {
            GridValue::Count(c) => Ok(*c),
            GridValue::Bytes(b) => Err(RingError::InvalidGrid {
                message: format!("`{}` takes counts, got {b:?}", self.dims[dim].name),
            }),
        };
        (0..self.len)
            .map(|p| {
                let wmem = match self.value(p, wmem_dim) {
                    GridValue::Bytes(b) => *b,
                    GridValue::Count(c) => {
                        return Err(RingError::InvalidGrid {
                            message: format!("`wmem_per_core` takes bytes, got the count {c}"),
                        });
                    }
                };
                RingDesign::new(count(p, pe_dim)?, count(p, chips_dim)?, wmem).map_err(RingError::from)
            })
            .collect()
    }
}

/// The outcome of one grid point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum PointOutcome {
    /// No packing fits in max_chips (and the options forbid streaming).
    DoesNotFit,
    Priced {
        objective: f64,
        violation: f64,
        n_chips: u64,
        area_mm2: f64,
        power_w: f64,
        ttft_s: f64,
        tpot_s: f64,
        energy_per_token_j: f64,
        energy_per_generated_token_j: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GridPoint {
    pub design: RingDesign,
    pub outcome: PointOutcome,
}

/// The chosen design and every point's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoSearchResult {
    pub objective: Objective,
    /// The best feasible point, or the least-violating one when none is feasible.
    pub best: RingReport,
    /// Whether `best` meets the envelope.
    pub feasible: bool,
    /// Index of `best` in `points` (grid order).
    pub best_index: usize,
    pub points: Vec<GridPoint>,
}

/// Packs and prices every grid point; keeps the lowest `objective` within the envelope, else
/// the smallest violation (ties: the first point in grid order). Errors when no point packs.
pub fn co_search(
    spec: &RingSpec,
    model: &RingModel,
    grid: &RingGrid,
    objective: Objective,
) -> Result<CoSearchResult, RingError> {
    let designs = grid.ring_designs()?;
    let mut points = Vec::with_capacity(designs.len());
    let mut ws = Workspace::new();
    // (feasible, key, index)
    let mut best: Option<(bool, f64, usize)> = None;
    for (i, design) in designs.iter().enumerate() {
        let outcome = match pack_and_price(spec, model, design, objective, &mut ws) {
            None => PointOutcome::DoesNotFit,
            Some(s) => {
                let violation = s.violation(spec);
                let value = s.objective(objective);
                let feasible = violation == 0.0;
                let key = if feasible { value } else { violation };
                let better = match best {
                    None => true,
                    Some((bf, bk, _)) => (feasible && !bf) || (feasible == bf && key < bk),
                };
                if better {
                    best = Some((feasible, key, i));
                }
                PointOutcome::Priced {
                    objective: value,
                    violation,
                    n_chips: ws.best.n_chips,
                    area_mm2: s.area_m2 * 1e6,
                    power_w: s.power_w(),
                    ttft_s: s.ttft_s(),
                    tpot_s: s.tpot_s(),
                    energy_per_token_j: s.energy_paper_j(),
                    energy_per_generated_token_j: s.energy_generated_j(),
                }
            }
        };
        points.push(GridPoint {
            design: *design,
            outcome,
        });
    }
    let Some((feasible, _, index)) = best else {
        return Err(RingError::NothingFits {
            model: model.name.clone(),
            points: designs.len(),
        });
    };
    let design = designs[index];
    // re-pack the winner (deterministic) and report it in full
    if pack_and_price(spec, model, &design, objective, &mut ws).is_none() {
        return Err(RingError::NothingFits {
            model: model.name.clone(),
            points: designs.len(),
        });
    }
    let best = report_of(spec, model, &design, &mut ws).ok_or_else(|| RingError::NothingFits {
        model: model.name.clone(),
        points: designs.len(),
    })?;
    Ok(CoSearchResult {
        objective,
        best,
        feasible,
        best_index: index,
        points,
    })
}

/// The bare search: index of the best point, its objective and feasibility, no report and no
/// per-point list (what a hot loop over many models wants). `designs` from
/// [`RingGrid::ring_designs`].
pub fn co_search_best(
    spec: &RingSpec,
    model: &RingModel,
    designs: &[RingDesign],
    objective: Objective,
) -> Option<(usize, f64, bool)> {
    let mut ws = Workspace::new();
    let mut best: Option<(bool, f64, usize, f64)> = None;
    for (i, design) in designs.iter().enumerate() {
        if let Some(s) = pack_and_price(spec, model, design, objective, &mut ws) {
            let violation = s.violation(spec);
            let value = s.objective(objective);
            let feasible = violation == 0.0;
            let key = if feasible { value } else { violation };
            let better = match best {
                None => true,
                Some((bf, bk, _, _)) => (feasible && !bf) || (feasible == bf && key < bk),
            };
            if better {
                best = Some((feasible, key, i, value));
            }
        }
    }
    best.map(|(f, _, i, v)| (i, v, f))
}
