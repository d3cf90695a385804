//! Architecture search spaces (`dsl/spaces/*.yaml`) and their genomes.
//!
//! A space is an explicit value with named dimensions: global genes (width, weight precision)
//! and per-layer genes over a fixed number of layer *slots* (query heads H, KV groups G | H,
//! head dims Dqk and Dv, FFN width, attention or none, optionally MoE experts), plus an
//! active-layer mask whose count lies in a range. Every dimension is a list of candidates
//! written in the expression language (`"64..=512 step 32"`, `"{16, 32}"`).
//!
//! A [`Genome`] holds gene *values* (not indices), so checkpoints and result files read
//! plainly; [`Space::repair`] snaps every value to its grid, makes G divide H and brings the
//! active count into range. The layer-aware operators follow LLMForge's Forge-DSE: segment
//! crossover over the active layers, Gaussian integer steps (sigma = span / 8), mask flips
//! (on -> off 0.10, off -> on 0.20; a new layer copies a neighbour), layer rotation and
//! mirroring (0.1 each), repair after each operator.

use crate::limits;
use crate::model::{
    self, Attention, Ffn, FfnKind, Layer, Model, Moe, NormKind, Positional, Precision, Precisions,
};
use crate::yaml::{DescError, DescErrors, Expression, Loc, Located, SourceFile, shipped, shipped_or_file};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// (name, YAML source) of every shipped search space (`dsl/spaces/*.yaml`).
pub const SHIPPED: &[(&str, &str)] = shipped!(
    "dsl/spaces",
    [
        "llmforge-200m",
        "smollm2-360m-seeded",
        "smollm2-135m-seeded",
        "edge-moe"
    ]
);

/// Per-layer gene values of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerGene {
    pub attention: bool,
    pub heads: u64,
    pub kv_groups: u64,
    pub d_qk: u64,
    pub d_v: u64,
    pub ffn: u64,
    /// Routed experts (1 = a dense FFN).
    pub experts: u64,
    /// Active experts per token (1 for dense).
    pub active_experts: u64,
}

/// One candidate architecture.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Genome {
    pub d_model: u64,
    /// Index into the space's weight precisions.
    pub weights: usize,
    /// Which slots hold a layer.
    pub mask: Vec<bool>,
    /// Genes of every slot (inactive slots keep theirs, so a layer switched back on has genes).
    pub layers: Vec<LayerGene>,
}

impl Genome {
    pub fn n_active(&self) -> usize {
        self.mask.iter().filter(|m| **m).count()
    }
    /// The active layers' genes, in order.
    pub fn active(&self) -> impl Iterator<Item = &LayerGene> {
        self.layers
            .iter()
            .zip(&self.mask)
            .filter(|(_, m)| **m)
            .map(|(g, _)| g)
    }
}

/// A validated search space.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    pub name: String,
    pub description: String,
    pub vocab: u64,
    pub tied_embeddings: bool,
    pub norm: NormKind,
    pub positional: Positional,
    pub ffn_kind: FfnKind,
    pub activations: Precision,
    pub kv_cache: Precision,
    pub weights: Vec<Precision>,
    pub d_model: Vec<u64>,
    pub slots: usize,
    pub min_active: usize,
    pub max_active: usize,
    pub heads: Vec<u64>,
    /// Allowed KV-group counts; every G must also divide H (repair picks the nearest divisor).
    pub kv_groups: Vec<u64>,
    pub d_qk: Vec<u64>,
    pub d_v: Vec<u64>,
    pub ffn: Vec<u64>,
    /// Layers may drop attention.
    pub attention_free: bool,
    pub experts: Vec<u64>,
    pub active_experts: Vec<u64>,
    /// A preset whose shape seeds the initial population.
    pub seed: Option<Model>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpace {
    name: String,
    #[serde(default)]
    description: String,
    vocab: Expression,
    tied_embeddings: bool,
    norm: NormKind,
    positional: Located<String>,
    ffn_kind: FfnKind,
    precision: RawPrecision,
    d_model: Expression,
    slots: Expression,
    active_layers: Expression,
    layer: RawLayerSpace,
    seed: Option<Located<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrecision {
    weights: Located<Vec<String>>,
    activations: Located<String>,
    kv_cache: Located<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayerSpace {
    heads: Expression,
    kv_groups: Expression,
    d_qk: Expression,
    d_v: Expression,
    ffn: Expression,
    attention_free: bool,
    #[serde(default)]
    experts: Option<Expression>,
    #[serde(default)]
    active_experts: Option<Expression>,
}

/// The sorted, distinct whole-number candidates of a field (each at least 1), recording any
/// error and standing in `[1]` so validation can go on collecting. Shared by search spaces and
/// sweep grids.
pub(crate) fn candidates(
    file: &SourceFile,
    errs: &mut Vec<DescError>,
    what: &str,
    e: &Expression,
    max: u64,
) -> Vec<u64> {
    match e.eval_candidates::<u64>(file, &crate::dsl::no_names) {
        Ok(mut v) => {
            v.sort_unstable();
            v.dedup();
            if v.is_empty() || v[0] == 0 {
                errs.push(file.error(
                    e.loc(),
                    format!("`{what}` needs candidates of at least 1"),
                    "here",
                    None,
                ));
                return vec![1];
            }
            if let Some(m) = v
                .last()
                .and_then(|&top| crate::limits::above(&format!("`{what}` candidate"), top, max))
            {
                errs.push(file.error(e.loc(), m, "here", Some(format!("see {}", crate::limits::DOC))));
                return vec![1];
            }
            v
        }
        Err(err) => {
            errs.push(err);
            vec![1]
        }
    }
}

/// A dimension's candidates for a message: all of them when few, else the range and count.
fn show_grid(grid: &[u64]) -> String {
    match (grid.first(), grid.last()) {
        (Some(first), Some(last)) if grid.len() > 8 => {
            format!("{} values from {first} to {last}", grid.len())
        }
        _ => grid.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// Parses and validates a search space.
pub fn parse(src: &str, file_name: &str) -> Result<Space, DescErrors> {
    let file = SourceFile::new(file_name, src);
    let raw: RawSpace = file.parse()?;
    let mut errs = Vec::new();
    let vocab = match raw.vocab.eval_as::<u64>(&file, &crate::dsl::no_names) {
        Ok(v) if v > limits::MAX_VOCAB => {
            let m = limits::above("`vocab`", v, limits::MAX_VOCAB).unwrap_or_default();
            errs.push(file.error(raw.vocab.loc(), m, "here", None));
            1
        }
        Ok(v) if v > 0 => v,
        Ok(_) => {
            errs.push(file.error(raw.vocab.loc(), "`vocab` must be at least 1", "here", None));
            1
        }
        Err(e) => {
            errs.push(e);
            1
        }
    };
    let positional = match raw.positional.value.as_str() {
        "rope" => Positional::Rope { fraction: 1.0 },
        "none" => Positional::None,
        other => {
            errs.push(file.error(
                raw.positional.loc,
                format!("positional `{other}`: expected rope or none"),
                "here",
                None,
            ));
            Positional::None
        }
    };
    let mut precision = |p: &Located<String>| match p.value.parse::<Precision>() {
        Ok(p) => p,
        Err(e) => {
            errs.push(file.error(p.loc, e.to_string(), "here", None));
            Precision::Bf16
        }
    };
    let activations = precision(&raw.precision.activations);
    let kv_cache = precision(&raw.precision.kv_cache);
    let mut weights = Vec::new();
    for w in &raw.precision.weights.value {
        match w.parse::<Precision>() {
            Ok(p) => weights.push(p),
            Err(e) => errs.push(file.error(raw.precision.weights.loc, e.to_string(), "here", None)),
        }
    }
    if weights.is_empty() && errs.is_empty() {
        errs.push(file.error(
            raw.precision.weights.loc,
            "`precision.weights` needs at least one format",
            "here",
            None,
        ));
    }
    let d_model = candidates(&file, &mut errs, "d_model", &raw.d_model, limits::MAX_D_MODEL);
    let slots = candidates(&file, &mut errs, "slots", &raw.slots, limits::MAX_SLOTS);
    let slots = if slots.len() == 1 {
        slots[0] as usize
    } else {
        errs.push(file.error(raw.slots.loc(), "`slots` must be one number", "here", None));
        1
    };
    let active = candidates(
        &file,
        &mut errs,
        "active_layers",
        &raw.active_layers,
        limits::MAX_LAYERS,
    );
    let (min_active, max_active) = (active[0] as usize, *active.last().unwrap_or(&1) as usize);
    if max_active > slots {
        errs.push(file.error(
            raw.active_layers.loc(),
            format!("at most {max_active} active layers but only {slots} slots"),
            "here",
            None,
        ));
    }
    let l = &raw.layer;
    let heads = candidates(&file, &mut errs, "layer.heads", &l.heads, limits::MAX_HEADS);
    let kv_groups = candidates(
        &file,
        &mut errs,
        "layer.kv_groups",
        &l.kv_groups,
        limits::MAX_HEADS,
    );
    let d_qk = candidates(&file, &mut errs, "layer.d_qk", &l.d_qk, limits::MAX_HEAD_DIM);
    let d_v = candidates(&file, &mut errs, "layer.d_v", &l.d_v, limits::MAX_HEAD_DIM);
    let ffn = candidates(&file, &mut errs, "layer.ffn", &l.ffn, limits::MAX_FFN_WIDTH);
    let experts = match &l.experts {
        Some(e) => candidates(&file, &mut errs, "layer.experts", e, limits::MAX_EXPERTS),
        None => vec![1],
    };
    let active_experts = match &l.active_experts {
        Some(e) => candidates(&file, &mut errs, "layer.active_experts", e, limits::MAX_EXPERTS),
        None => vec![1],
    };
    if !kv_groups.contains(&1) {
        errs.push(file.error(
            l.kv_groups.loc(),
            "`layer.kv_groups` must include 1 (every H has 1 as a divisor)",
            "here",
            None,
        ));
    }
    let seed = match &raw.seed {
        None => None,
        Some(s) => match model::preset(&s.value) {
            Ok(m) => Some(m),
            Err(e) => {
                errs.push(file.error(s.loc, format!("seed: {e}"), "here", None));
                None
            }
        },
    };
    let space = Space {
        name: raw.name,
        description: raw.description.trim().to_string(),
        vocab,
        tied_embeddings: raw.tied_embeddings,
        norm: raw.norm,
        positional,
        ffn_kind: raw.ffn_kind,
        activations,
        kv_cache,
        weights,
        d_model,
        slots,
        min_active,
        max_active,
        heads,
        kv_groups,
        d_qk,
        d_v,
        ffn,
        attention_free: l.attention_free,
        experts,
        active_experts,
        seed,
    };
    let mut diags = file.diagnostics();
    for e in errs {
        diags.push(e);
    }
    let _ = Loc::UNKNOWN;
    diags.finish(space)
}

/// Loads a shipped space by name or a space file by path.
pub fn load(spec: &str) -> Result<Space, DescErrors> {
    let file = shipped_or_file(spec, SHIPPED, "dsl/spaces", "search space")?;
    parse(file.text(), file.name())
}

/// The candidate nearest to `v` (ties to the smaller).
fn snap(grid: &[u64], v: u64) -> u64 {
    match grid.binary_search(&v) {
        Ok(_) => v,
        Err(i) => {
            if i == 0 {
                grid[0]
            } else if i == grid.len() {
                grid[grid.len() - 1]
            } else if v - grid[i - 1] <= grid[i] - v {
                grid[i - 1]
            } else {
                grid[i]
            }
        }
    }
}

/// A Gaussian integer step on a grid: move by round(N(0, sigma)) grid positions,
/// sigma = grid span / 8 expressed in positions (at least 1).
fn gaussian_step<R: Rng + ?Sized>(grid: &[u64], v: u64, rng: &mut R) -> u64 {
    if grid.len() < 2 {
        return grid[0];
    }
    let i = grid.iter().position(|&g| g == v).unwrap_or(0) as f64;
    let sigma = (grid.len() as f64 / 8.0).max(1.0);
    // Box-Muller from two uniforms
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let mut step = (z * sigma).round();
    if step == 0.0 {
        step = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    }
    let j = (i + step).clamp(0.0, (grid.len() - 1) as f64) as usize;
    grid[j]
}

fn pick<R: Rng + ?Sized>(grid: &[u64], rng: &mut R) -> u64 {
    grid[rng.random_range(0..grid.len())]
}

impl Space {
    /// A uniformly random layer gene.
    fn random_layer<R: Rng + ?Sized>(&self, rng: &mut R) -> LayerGene {
        let heads = pick(&self.heads, rng);
        LayerGene {
            attention: !self.attention_free || rng.random_bool(0.8),
            heads,
            kv_groups: pick(&self.kv_groups, rng),
            d_qk: pick(&self.d_qk, rng),
            d_v: pick(&self.d_v, rng),
            ffn: pick(&self.ffn, rng),
            experts: pick(&self.experts, rng),
            active_experts: pick(&self.active_experts, rng),
        }
    }

    /// A random genome, repaired.
    pub fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Genome {
        let n_active = rng.random_range(self.min_active..=self.max_active);
        let mut mask = vec![false; self.slots];
        // choose n_active distinct slots
        let mut order: Vec<usize> = (0..self.slots).collect();
        for i in 0..n_active {
            let j = rng.random_range(i..self.slots);
            order.swap(i, j);
            mask[order[i]] = true;
        }
        let mut g = Genome {
            d_model: pick(&self.d_model, rng),
            weights: rng.random_range(0..self.weights.len()),
            mask,
            layers: (0..self.slots).map(|_| self.random_layer(rng)).collect(),
        };
        self.repair(&mut g);
        g
    }

    /// Checks that a genome is valid in this space, as every genome the operators produce is
    /// (a fixed point of [`Space::repair`]): one mask entry and one gene set per slot, the
    /// active count in range, every value one of its dimension's candidates, G dividing H,
    /// attention-free layers only where allowed. The error names the first gene that is not.
    pub fn check(&self, g: &Genome) -> Result<(), String> {
        if g.mask.len() != self.slots {
            return Err(format!(
                "`mask` has {} entries, but the space `{}` has {} layer slots",
                g.mask.len(),
                self.name,
                self.slots
            ));
        }
        if g.layers.len() != self.slots {
            return Err(format!(
                "`layers` has {} entries, but the space `{}` has {} layer slots",
                g.layers.len(),
                self.name,
                self.slots
            ));
        }
        let on_grid = |what: &str, grid: &[u64], v: u64| {
            if grid.binary_search(&v).is_ok() {
                Ok(())
            } else {
                Err(format!(
                    "{what} {v} is not one of the space's candidates ({})",
                    show_grid(grid)
                ))
            }
        };
        on_grid("`d_model`", &self.d_model, g.d_model)?;
        if g.weights >= self.weights.len() {
            return Err(format!(
                "`weights` {} is not an index into the space's {} weight precisions",
                g.weights,
                self.weights.len()
            ));
        }
        let active = g.n_active();
        if active < self.min_active || active > self.max_active {
            return Err(format!(
                "{active} active layers, outside the space's {}..={}",
                self.min_active, self.max_active
            ));
        }
        for (k, l) in g.layers.iter().enumerate() {
            let at = |field: &str| format!("`layers[{k}].{field}`");
            on_grid(&at("heads"), &self.heads, l.heads)?;
            on_grid(&at("kv_groups"), &self.kv_groups, l.kv_groups)?;
            if l.heads % l.kv_groups != 0 {
                return Err(format!(
                    "{} {} does not divide `heads` {}",
                    at("kv_groups"),
                    l.kv_groups,
                    l.heads
                ));
            }
            on_grid(&at("d_qk"), &self.d_qk, l.d_qk)?;
            on_grid(&at("d_v"), &self.d_v, l.d_v)?;
            on_grid(&at("ffn"), &self.ffn, l.ffn)?;
            on_grid(&at("experts"), &self.experts, l.experts)?;
            on_grid(&at("active_experts"), &self.active_experts, l.active_experts)?;
            if l.active_experts > l.experts {
                return Err(format!(
                    "{} {} exceeds `experts` {}",
                    at("active_experts"),
                    l.active_experts,
                    l.experts
                ));
            }
            if !l.attention && !self.attention_free {
                return Err(format!(
                    "{} is false, but the space has no attention-free layers",
                    at("attention")
                ));
            }
        }
        Ok(())
    }

    /// Makes a genome valid: values on their grids, G | H, the active count in range,
    /// attention on where the space does not allow attention-free layers.
    pub fn repair(&self, g: &mut Genome) {
        g.d_model = snap(&self.d_model, g.d_model);
        g.weights = g.weights.min(self.weights.len() - 1);
        g.mask.resize(self.slots, false);
        while g.layers.len() < self.slots {
            let last = g.layers.last().copied().unwrap_or(LayerGene {
                attention: true,
                heads: self.heads[0],
                kv_groups: 1,
                d_qk: self.d_qk[0],
                d_v: self.d_v[0],
                ffn: self.ffn[0],
                experts: self.experts[0],
                active_experts: self.active_experts[0],
            });
            g.layers.push(last);
        }
        g.layers.truncate(self.slots);
        for l in &mut g.layers {
            l.heads = snap(&self.heads, l.heads);
            l.d_qk = snap(&self.d_qk, l.d_qk);
            l.d_v = snap(&self.d_v, l.d_v);
            l.ffn = snap(&self.ffn, l.ffn);
            l.experts = snap(&self.experts, l.experts);
            l.active_experts = snap(&self.active_experts, l.active_experts).min(l.experts);
            if !self.active_experts.contains(&l.active_experts) {
                l.active_experts = self.active_experts[0].min(l.experts);
            }
            // G must be an allowed value dividing H: the nearest allowed divisor (1 always is).
            let h = l.heads;
            l.kv_groups = self
                .kv_groups
                .iter()
                .copied()
                .filter(|&c| h % c == 0)
                .min_by_key(|&c| (c.abs_diff(l.kv_groups), c))
                .unwrap_or(1);
            if !self.attention_free {
                l.attention = true;
            }
        }
        let mut n = g.n_active();
        // too few: switch on the first inactive slots; too many: switch off the last active
        for i in 0..self.slots {
            if n >= self.min_active {
                break;
            }
            if !g.mask[i] {
                g.mask[i] = true;
                n += 1;
            }
        }
        for i in (0..self.slots).rev() {
            if n <= self.max_active {
                break;
            }
            if g.mask[i] {
                g.mask[i] = false;
                n -= 1;
            }
        }
    }

    /// Segment crossover over the active layers: children swap a contiguous run of slots
    /// (genes and mask together); global genes are exchanged with probability 1/2.
    pub fn crossover<R: Rng + ?Sized>(&self, a: &Genome, b: &Genome, rng: &mut R) -> (Genome, Genome) {
        let (mut c1, mut c2) = (a.clone(), b.clone());
        let n = self.slots;
        let i = rng.random_range(0..n);
        let j = rng.random_range(i..n);
        for k in i..=j {
            std::mem::swap(&mut c1.layers[k], &mut c2.layers[k]);
            std::mem::swap(&mut c1.mask[k], &mut c2.mask[k]);
        }
        if rng.random_bool(0.5) {
            std::mem::swap(&mut c1.d_model, &mut c2.d_model);
        }
        if rng.random_bool(0.5) {
            std::mem::swap(&mut c1.weights, &mut c2.weights);
        }
        self.repair(&mut c1);
        self.repair(&mut c2);
        (c1, c2)
    }

    /// Layer-aware mutation: Gaussian integer steps on the genes, mask flips, rotation and
    /// mirroring of the layer list, then repair.
    pub fn mutate<R: Rng + ?Sized>(&self, g: &mut Genome, rng: &mut R) {
        let per_gene = 1.0 / 6.0;
        if rng.random_bool(0.2) {
            g.d_model = gaussian_step(&self.d_model, g.d_model, rng);
        }
        if self.weights.len() > 1 && rng.random_bool(0.1) {
            g.weights = rng.random_range(0..self.weights.len());
        }
        // each active layer mutates with probability 2/active (two layers on average), each
        // of its genes with probability 1/6
        let p_layer = (2.0 / g.n_active().max(1) as f64).min(1.0);
        for k in 0..self.slots {
            if !g.mask[k] || !rng.random_bool(p_layer) {
                continue;
            }
            let l = &mut g.layers[k];
            if rng.random_bool(per_gene) {
                l.heads = gaussian_step(&self.heads, l.heads, rng);
            }
            if rng.random_bool(per_gene) {
                l.kv_groups = gaussian_step(&self.kv_groups, l.kv_groups, rng);
            }
            if rng.random_bool(per_gene) {
                l.d_qk = gaussian_step(&self.d_qk, l.d_qk, rng);
            }
            if rng.random_bool(per_gene) {
                l.d_v = gaussian_step(&self.d_v, l.d_v, rng);
            }
            if rng.random_bool(per_gene) {
                l.ffn = gaussian_step(&self.ffn, l.ffn, rng);
            }
            if self.attention_free && rng.random_bool(0.05) {
                l.attention = !l.attention;
            }
            if self.experts.len() > 1 && rng.random_bool(per_gene) {
                l.experts = gaussian_step(&self.experts, l.experts, rng);
            }
            if self.active_experts.len() > 1 && rng.random_bool(per_gene) {
                l.active_experts = gaussian_step(&self.active_experts, l.active_experts, rng);
            }
        }
        // mask flips: on -> off 0.10, off -> on 0.20 (one slot each); a new layer copies a neighbour
        if rng.random_bool(0.10) {
            let on: Vec<usize> = (0..self.slots).filter(|&k| g.mask[k]).collect();
            if !on.is_empty() {
                g.mask[on[rng.random_range(0..on.len())]] = false;
            }
        }
        if rng.random_bool(0.20) {
            let off: Vec<usize> = (0..self.slots).filter(|&k| !g.mask[k]).collect();
            if !off.is_empty() {
                let k = off[rng.random_range(0..off.len())];
                g.mask[k] = true;
                let neighbour = (0..self.slots)
                    .filter(|&j| j != k && g.mask[j])
                    .min_by_key(|&j| j.abs_diff(k));
                if let Some(j) = neighbour {
                    g.layers[k] = g.layers[j];
                }
            }
        }
        if rng.random_bool(0.1) {
            let r = rng.random_range(1..self.slots.max(2));
            g.layers.rotate_left(r % self.slots);
            g.mask.rotate_left(r % self.slots);
        }
        if rng.random_bool(0.1) {
            g.layers.reverse();
            g.mask.reverse();
        }
        self.repair(g);
    }

    /// The genome of a model (its layers in the first slots), repaired onto this space.
    pub fn genome_of(&self, m: &Model) -> Genome {
        let mut layers = Vec::with_capacity(self.slots);
        for l in m.layers.iter().take(self.slots) {
            let (experts, active_experts, ffn) = match l.ffn {
                Ffn::Dense { width, .. } => (1, 1, width),
                Ffn::Moe { moe, .. } => (moe.experts, moe.active, moe.expert_width),
            };
            layers.push(match l.attention {
                Some(a) => LayerGene {
                    attention: true,
                    heads: a.heads,
                    kv_groups: a.kv_groups,
                    d_qk: a.d_qk,
                    d_v: a.d_v,
                    ffn,
                    experts,
                    active_experts,
                },
                None => LayerGene {
                    attention: false,
                    heads: self.heads[0],
                    kv_groups: 1,
                    d_qk: self.d_qk[0],
                    d_v: self.d_v[0],
                    ffn,
                    experts,
                    active_experts,
                },
            });
        }
        let n = layers.len();
        let weights = self
            .weights
            .iter()
            .position(|p| *p == m.precision.weights)
            .unwrap_or(0);
        let mut g = Genome {
            d_model: m.d_model,
            weights,
            mask: (0..self.slots).map(|k| k < n).collect(),
            layers,
        };
        self.repair(&mut g);
        g
    }

    /// The initial population: the seed model and jittered copies when the space has a seed,
    /// else random genomes.
    pub fn initial_population<R: Rng + ?Sized>(&self, size: usize, rng: &mut R) -> Vec<Genome> {
        match &self.seed {
            Some(seed) => {
                let base = self.genome_of(seed);
                let mut pop = vec![base.clone()];
                while pop.len() < size {
                    let mut g = base.clone();
                    for _ in 0..3 {
                        self.mutate(&mut g, rng);
                    }
                    pop.push(g);
                }
                pop
            }
            None => (0..size).map(|_| self.random(rng)).collect(),
        }
    }

    /// The model a genome describes.
    pub fn model(&self, g: &Genome, name: &str) -> Model {
        let layers = g
            .active()
            .map(|l| Layer {
                attention: l.attention.then_some(Attention {
                    heads: l.heads,
                    kv_groups: l.kv_groups,
                    d_qk: l.d_qk,
                    d_v: l.d_v,
                    qkv_bias: false,
                    o_bias: false,
                }),
                ffn: if l.experts > 1 {
                    Ffn::Moe {
                        kind: self.ffn_kind,
                        moe: Moe {
                            experts: l.experts,
                            active: l.active_experts.min(l.experts),
                            expert_width: l.ffn,
                            shared_experts: 0,
                            shared_width: 0,
                            shared_gate: false,
                        },
                    }
                } else {
                    Ffn::Dense {
                        kind: self.ffn_kind,
                        width: l.ffn,
                        bias: false,
                    }
                },
                parallel_residual: false,
            })
            .collect();
        Model {
            name: name.to_string(),
            d_model: g.d_model,
            vocab: self.vocab,
            tied_embeddings: self.tied_embeddings,
            norm: self.norm,
            positional: self.positional,
            precision: Precisions {
                weights: self.weights[g.weights],
                activations: self.activations,
                kv_cache: self.kv_cache,
            },
            layers,
        }
    }

    /// Per-layer configurations in this space: sum over H of (allowed divisors of H) x Dqk x Dv
    /// choices (the "~400x larger than GQA" count of the paper, for attention genes).
    pub fn attention_configs_per_layer(&self) -> u64 {
        let hg: u64 = self
            .heads
            .iter()
            .map(|&h| self.kv_groups.iter().filter(|&&g| h % g == 0).count() as u64)
            .sum();
        hg * self.d_qk.len() as u64 * self.d_v.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn shipped_spaces_parse() {
        for (name, _) in SHIPPED {
            let s = load(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(s.slots >= s.max_active && s.min_active >= 1, "{name}");
        }
    }

    #[test]
    fn llmforge_200m_has_the_papers_per_layer_count() {
        // d = 768, H in 1..16, G | H, Dqk, Dv in 64..512 step 32: sum_H tau(H) * 15 * 15 = 11,250
        let s = load("llmforge-200m").unwrap();
        assert_eq!(s.attention_configs_per_layer(), 11_250);
    }

    #[test]
    fn operators_keep_genomes_valid() {
        for (name, _) in SHIPPED {
            let s = load(name).unwrap();
            let mut rng = StdRng::seed_from_u64(7);
            let mut pop = s.initial_population(16, &mut rng);
            for _ in 0..200 {
                let i = rng.random_range(0..pop.len());
                let j = rng.random_range(0..pop.len());
                let (mut a, b) = s.crossover(&pop[i], &pop[j], &mut rng);
                s.mutate(&mut a, &mut rng);
                for g in [&a, &b] {
                    let n = g.n_active();
                    assert!(n >= s.min_active && n <= s.max_active, "{name}: {n} active");
                    assert!(s.d_model.contains(&g.d_model));
                    for l in g.active() {
                        assert_eq!(l.heads % l.kv_groups, 0, "{name}: {l:?}");
                        assert!(
                            s.heads.contains(&l.heads) && s.d_qk.contains(&l.d_qk) && s.ffn.contains(&l.ffn)
                        );
                        assert!(s.attention_free || l.attention);
                    }
                    assert_eq!(s.check(g), Ok(()), "{name}: {g:?}");
                    let m = s.model(g, "x");
                    assert!(m.validate().is_ok(), "{name}: {:?}", m.validate());
                }
                pop[i] = a;
            }
        }
    }

    /// Issue 14: a checkpoint genome with `"mask": []` panicked in the operators; `check`
    /// refuses it (and any gene off its grid) with the field named, and whatever `repair`
    /// makes of a broken genome passes it.
    #[test]
    fn check_refuses_broken_genomes_and_accepts_repaired_ones() {
        let s = load("smollm2-135m-seeded").unwrap();
        let good = s.genome_of(s.seed.as_ref().unwrap());
        assert_eq!(s.check(&good), Ok(()));
        let mut g = good.clone();
        g.mask.clear();
        let err = s.check(&g).unwrap_err();
        assert!(err.starts_with("`mask` has 0 entries"), "{err}");
        s.repair(&mut g);
        assert_eq!(s.check(&g), Ok(()));
        let mut g = good.clone();
        g.d_model = 1_000_000_000_000;
        let err = s.check(&g).unwrap_err();
        assert!(err.starts_with("`d_model` 1000000000000 is not one of"), "{err}");
        let mut g = good.clone();
        g.layers[3].kv_groups = 5;
        let err = s.check(&g).unwrap_err();
        assert!(err.starts_with("`layers[3].kv_groups` 5"), "{err}");
        let mut g = good.clone();
        g.weights = 99;
        assert!(s.check(&g).unwrap_err().contains("weight precisions"));
        let mut g = good;
        g.layers.truncate(2);
        g.mask.truncate(2);
        g.d_model = 7;
        assert!(s.check(&g).is_err());
        s.repair(&mut g);
        assert_eq!(s.check(&g), Ok(()));
    }

    #[test]
    fn seeded_space_starts_from_the_seed() {
        let s = load("smollm2-360m-seeded").unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let pop = s.initial_population(4, &mut rng);
        let seed = s.model(&pop[0], "smollm2-360m");
        let preset = crate::model::preset("smollm2-360m").unwrap();
        assert_eq!(seed.layers, preset.layers);
        assert_eq!(seed.d_model, preset.d_model);
    }

    #[test]
    fn repair_snaps_and_divides() {
        let s = load("llmforge-200m").unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let mut g = s.random(&mut rng);
        g.layers[0] = LayerGene {
            heads: 12,
            kv_groups: 5,
            d_qk: 70,
            d_v: 1000,
            ffn: 3,
            ..g.layers[0]
        };
        g.mask = vec![true; s.slots];
        s.repair(&mut g);
        assert_eq!(g.layers[0].kv_groups, 4);
        assert_eq!(
            (g.layers[0].d_qk, g.layers[0].d_v, g.layers[0].ffn),
            (64, 512, 512)
        );
        assert_eq!(g.n_active(), s.max_active);
    }
}
