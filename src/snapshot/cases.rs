//! The cases file: raw YAML ([`crate::yaml`]) validated into [`Cases`], every problem
//! collected and located. The format is documented in `dsl/SNAPSHOTS.md`:
//!
//! ```yaml
//! defaults: {prompt: 256, gen: 256, batch: 1, engine: sim}
//! tolerances:
//!   rel: {all: 1%, weight_bytes: 0}
//!   abs: {tpot_s: 10 us}
//! cases:
//!   - name: gemmini-int8
//!     model: smollm2-135m
//!     substrate: gemmini
//!     precision: int8
//! matrix:
//!   - models: [smollm2-135m, ./models/mine.yaml]
//!     substrates: [flat-edge, eyeriss]
//!     workloads: [{prompt: 128, gen: 128}, {name: long, prompt: 2048, gen: 256}]
//!     engines: [sim, roofline]
//! ```

use super::SnapshotError;
use super::metrics::{Metric, tolerance_keys};
use super::record::Inputs;
use crate::dsl::{self, Dim};
use crate::model::{self, Model, Precision, Precisions};
use crate::provenance;
use crate::sim::{Engine, SimError, Workload};
use crate::substrate::{self, Override, Substrate};
use crate::yaml::{DescError, DescErrors, Diagnostics, Entries, Expression, Loc, Located, SourceFile};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Significant digits of recorded values unless the cases file says `digits:` (as the
/// project's own insta snapshots round).
pub const DEFAULT_DIGITS: u32 = 4;
/// Op names listed per phase unless the cases file says `top_ops:`.
pub const DEFAULT_TOP_OPS: usize = 3;
/// The most cases one file may expand to ([`crate::limits::MAX_SNAPSHOT_CASES`]).
pub const MAX_CASES: usize = crate::limits::MAX_SNAPSHOT_CASES;
/// The workload a case runs unless told otherwise: `llmforge sim`'s defaults.
const DEFAULT_PROMPT: u64 = 256;
const DEFAULT_GEN: u64 = 256;
const DEFAULT_BATCH: u64 = 1;

/// How far a metric may move: within when `|new - old| <= abs + rel * |old|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative (a fraction: 0.02 is 2%).
    pub rel: f64,
    /// Absolute, in the metric's unit.
    pub abs: f64,
}

impl Tolerance {
    /// Whether moving from `old` to `new` stays within.
    pub fn admits(&self, old: f64, new: f64) -> bool {
        (new - old).abs() <= self.abs + self.rel * old.abs()
    }
}

/// A tolerance for every numeric metric and for the top ops' shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Tolerances(BTreeMap<&'static str, Tolerance>);

impl Default for Tolerances {
    /// The built-in defaults of each metric ([`super::METRICS`]).
    fn default() -> Tolerances {
        Tolerances(
            tolerance_keys()
                .map(|m| {
                    (
                        m.name,
                        Tolerance {
                            rel: m.rel,
                            abs: m.abs,
                        },
                    )
                })
                .collect(),
        )
    }
}

impl Tolerances {
    /// The tolerance of a metric (`None` for a name that is not a numeric metric).
    pub fn get(&self, metric: &str) -> Option<Tolerance> {
        self.0.get(metric).copied()
    }

    /// Sets the relative tolerance of every metric (`snapshot check --tol`); absolute
    /// tolerances stay.
    pub fn set_relative(&mut self, rel: f64) {
        for t in self.0.values_mut() {
            t.rel = rel;
        }
    }
}

/// One case: a model at a precision on a substrate (with overrides), a workload, an engine.
#[derive(Clone, Debug)]
pub struct Case {
    /// Unique within the file.
    pub name: String,
    /// The model and substrate as the file names them.
    pub model_spec: String,
    pub substrate_spec: String,
    /// Substrate overrides (`--set`), one per field path.
    pub set: Vec<Override>,
    pub engine: Engine,
    pub workload: Workload,
    /// The model, at the case's precision (the resolved precision is `model.precision`);
    /// shared by the cases that run the same model at the same precision.
    pub model: Arc<Model>,
    /// The substrate with the overrides applied.
    pub substrate: Arc<Substrate>,
    pub tolerances: Tolerances,
}

/// A validated cases file.
#[derive(Clone, Debug)]
pub struct Cases {
    /// The file name as given.
    pub file: String,
    /// Significant digits of recorded values.
    pub digits: u32,
    /// Op names listed per phase.
    pub top_ops: usize,
    /// In file order: named cases first, then each matrix expanded (models, then substrates,
    /// then workloads, then engines, each in the order written).
    pub cases: Vec<Case>,
    /// Content hashes of the file itself and of every model and substrate it names.
    pub inputs: Inputs,
    /// The model and substrate files it names, as read (shipped ones are not files).
    pub files: Vec<PathBuf>,
}

impl Cases {
    /// Reads and validates a cases file. Model and substrate files are resolved relative to
    /// the cases file's folder; other names are shipped presets and substrates.
    pub fn load(path: &Path) -> Result<Cases, SnapshotError> {
        let file = SourceFile::read(path).map_err(|e| SnapshotError::Cases(e.into()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Cases::parse(&file, &base)
    }

    /// Validates the text of a cases file; `base` is the folder file paths are relative to.
    pub fn parse(file: &SourceFile, base: &Path) -> Result<Cases, SnapshotError> {
        validate(file, base).map_err(SnapshotError::Cases)
    }

    /// Sets the relative tolerance of every metric of every case (`--tol`).
    pub fn set_relative_tolerance(&mut self, rel: f64) {
        for c in &mut self.cases {
            c.tolerances.set_relative(rel);
        }
    }

    /// The case named `name`.
    pub fn case(&self, name: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.name == name)
    }
}

// ---------------------------------------------------------------------------------------
// Raw shape of the file.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    digits: Option<Located<u64>>,
    #[serde(default)]
    top_ops: Option<Located<u64>>,
    /// A workload (without a name) and an engine, for every case.
    #[serde(default)]
    defaults: Option<RawWorkload>,
    #[serde(default)]
    tolerances: Option<RawTolerances>,
    #[serde(default)]
    cases: Option<Located<Vec<RawCase>>>,
    #[serde(default)]
    matrix: Option<Located<Vec<RawMatrix>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Located<String>,
    model: Located<String>,
    substrate: Located<String>,
    #[serde(default)]
    engine: Option<Located<String>>,
    #[serde(default)]
    prompt: Option<Located<u64>>,
    #[serde(default, rename = "gen")]
    generate: Option<Located<u64>>,
    #[serde(default)]
    batch: Option<Located<u64>>,
    #[serde(default)]
    precision: Option<Located<RawPrecision>>,
    #[serde(default)]
    set: Option<Entries<Expression>>,
    #[serde(default)]
    tolerances: Option<RawTolerances>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    /// A name template: `{model}`, `{substrate}`, `{workload}`, `{engine}`.
    #[serde(default)]
    name: Option<Located<String>>,
    models: Located<Names>,
    substrates: Located<Names>,
    #[serde(default)]
    workloads: Option<Located<Vec<RawWorkload>>>,
    #[serde(default)]
    engines: Option<Located<Names>>,
    #[serde(default)]
    tolerances: Option<RawTolerances>,
}

/// A matrix's workload, or the file's `defaults` (which also take an `engine`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    #[serde(default)]
    name: Option<Located<String>>,
    #[serde(default)]
    engine: Option<Located<String>>,
    #[serde(default)]
    prompt: Option<Located<u64>>,
    #[serde(default, rename = "gen")]
    generate: Option<Located<u64>>,
    #[serde(default)]
    batch: Option<Located<u64>>,
    #[serde(default)]
    precision: Option<Located<RawPrecision>>,
    #[serde(default)]
    set: Option<Entries<Expression>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTolerances {
    #[serde(default)]
    rel: Option<Entries<Expression>>,
    #[serde(default)]
    abs: Option<Entries<Expression>>,
}

/// A list of names (`[a, b]`), one name (`a`), or the word `all`.
struct Names(Vec<Located<String>>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of names, one name, or `all`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Names, E> {
                // located by the caller (the whole node is this one string)
                Ok(Names(vec![Located::unlocated(v.to_string())]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<Located<String>>()? {
                    out.push(name);
                }
                Ok(Names(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Names with every unlocated entry (a single string) placed at the node.
fn names(located: &Located<Names>) -> Vec<Located<String>> {
    located
        .value
        .0
        .iter()
        .map(|n| Located {
            value: n.value.clone(),
            loc: if n.loc.is_known() { n.loc } else { located.loc },
            used_at: n.used_at,
        })
        .collect()
}

/// `int8` (weights, activations and KV cache) or `{weights: int4, kv_cache: fp16}`.
enum RawPrecision {
    All(String),
    Parts(Vec<(Located<String>, Located<String>)>),
}

impl<'de> Deserialize<'de> for RawPrecision {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPrecision;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a precision such as int8, or a mapping {weights, activations, kv_cache}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPrecision, E> {
                Ok(RawPrecision::All(v.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawPrecision, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Located<String>, Located<String>>()? {
                    out.push(entry);
                }
                Ok(RawPrecision::Parts(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------
// Validation.

/// A case's workload fields after inheritance, before validation.
#[derive(Clone, Default)]
struct Fields<'a> {
    prompt: Option<&'a Located<u64>>,
    generate: Option<&'a Located<u64>>,
    batch: Option<&'a Located<u64>>,
    precision: Option<&'a Located<RawPrecision>>,
    /// Later entries win (defaults first).
    set: Vec<&'a (Located<String>, Expression)>,
    engine: Option<&'a Located<String>>,
}

impl<'a> Fields<'a> {
    fn over(
        &self,
        prompt: &'a Option<Located<u64>>,
        generate: &'a Option<Located<u64>>,
        batch: &'a Option<Located<u64>>,
    ) -> Fields<'a> {
        let mut f = self.clone();
        f.prompt = prompt.as_ref().or(f.prompt);
        f.generate = generate.as_ref().or(f.generate);
        f.batch = batch.as_ref().or(f.batch);
        f
    }
    fn with(
        mut self,
        precision: &'a Option<Located<RawPrecision>>,
        set: &'a Option<Entries<Expression>>,
    ) -> Fields<'a> {
        self.precision = precision.as_ref().or(self.precision);
        if let Some(s) = set {
            self.set.extend(s.0.iter());
        }
        self
    }
}

/// One expanded case before loading.
struct Draft<'a> {
    name: String,
    /// Where the name comes from (the case's `name`, or the matrix).
    at: Loc,
    model: Located<String>,
    substrate: Located<String>,
    fields: Fields<'a>,
    engine: Engine,
    tolerances: Tolerances,
}

/// A substrate as a case names it: its spec and its overrides (path, expression).
type SubstrateKey = (String, Vec<(String, String)>);

/// Everything loaded once per file: models by spec, substrates by spec and overrides.
struct Loader<'f> {
    file: &'f SourceFile,
    base: PathBuf,
    models: HashMap<String, Option<Arc<Model>>>,
    /// Models at a precision other than their own, by spec.
    variants: HashMap<String, Vec<(Precisions, Arc<Model>)>>,
    substrate_sources: HashMap<String, Option<SourceFile>>,
    substrates: HashMap<SubstrateKey, Option<Arc<Substrate>>>,
    inputs: Inputs,
    files: Vec<PathBuf>,
}

fn validate(file: &SourceFile, base: &Path) -> Result<Cases, DescErrors> {
    let start = Loc {
        line: 1,
        column: 1,
        offset: 0,
        len: 0,
    };
    let empty = file
        .text()
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if empty {
        return Err(file
            .error(
                start,
                "the cases file is empty",
                "here",
                Some(
                    "list named `cases:` and/or a `matrix:` of models x substrates (see dsl/SNAPSHOTS.md)"
                        .into(),
                ),
            )
            .into());
    }
    let raw: RawFile = file.parse()?;
    let mut d = file.diagnostics();

    let digits = match &raw.digits {
        Some(v) if !(1..=15).contains(&v.value) => {
            d.error(
                v.loc,
                format!("`digits` is {}; it must be 1 to 15", v.value),
                "here",
                None,
            );
            DEFAULT_DIGITS
        }
        Some(v) => v.value as u32,
        None => DEFAULT_DIGITS,
    };
    let top_ops = match &raw.top_ops {
        Some(v) if v.value > 50 => {
            d.error(
                v.loc,
                format!("`top_ops` is {}; it must be 0 to 50", v.value),
                "here",
                None,
            );
            DEFAULT_TOP_OPS
        }
        Some(v) => v.value as usize,
        None => DEFAULT_TOP_OPS,
    };

    // defaults
    let mut base_fields = Fields::default();
    if let Some(def) = &raw.defaults {
        base_fields = base_fields
            .over(&def.prompt, &def.generate, &def.batch)
            .with(&def.precision, &def.set);
        base_fields.engine = def.engine.as_ref();
        if let Some(n) = &def.name {
            d.error(
                n.loc,
                "`defaults` take no name",
                "here",
                Some("name cases, workloads or matrices".into()),
            );
        }
    }
    let default_engine = base_fields
        .engine
        .and_then(|e| engine(&mut d, e))
        .unwrap_or(Engine::Sim);
    let file_tolerances = tolerances(&mut d, Tolerances::default(), raw.tolerances.as_ref());

    // named cases
    let mut drafts: Vec<Draft> = Vec::new();
    for c in raw.cases.iter().flat_map(|v| v.value.iter()) {
        let fields = base_fields
            .over(&c.prompt, &c.generate, &c.batch)
            .with(&c.precision, &c.set);
        let engine = match &c.engine {
            Some(e) => engine(&mut d, e).unwrap_or(default_engine),
            None => default_engine,
        };
        if c.name.value.trim().is_empty() {
            d.error(c.name.loc, "a case name must not be empty", "here", None);
        }
        drafts.push(Draft {
            name: c.name.value.clone(),
            at: c.name.loc,
            model: c.model.clone(),
            substrate: c.substrate.clone(),
            fields,
            engine,
            tolerances: tolerances(&mut d, file_tolerances.clone(), c.tolerances.as_ref()),
        });
    }

    // matrices
    let no_workload = [RawWorkload {
        name: None,
        engine: None,
        prompt: None,
        generate: None,
        batch: None,
        precision: None,
        set: None,
    }];
    'expand: for m in raw.matrix.iter().flat_map(|v| v.value.iter()) {
        let template = m.name.as_ref();
        if let Some(t) = template {
            check_template(&mut d, t);
        }
        let at = template.map_or(m.models.loc, |t| t.loc);
        let models = expand_all(&m.models, model::presets::names(), &mut d, "models", "presets");
        let substrates = expand_all(
            &m.substrates,
            substrate::names(),
            &mut d,
            "substrates",
            "substrates",
        );
        let workloads: &[RawWorkload] = match &m.workloads {
            Some(w) if w.value.is_empty() => {
                d.error(
                    w.loc,
                    "`workloads` is empty",
                    "here",
                    Some("leave it out for one workload of the defaults".into()),
                );
                &[]
            }
            Some(w) => &w.value,
            None => &no_workload,
        };
        let engines: Vec<Engine> = match &m.engines {
            Some(e) => {
                let list = names(e);
                if list.is_empty() {
                    d.error(e.loc, "`engines` is empty", "here", None);
                }
                list.iter().filter_map(|n| engine(&mut d, n)).collect()
            }
            None => vec![default_engine],
        };
        for e in workloads.iter().filter_map(|w| w.engine.as_ref()) {
            d.error(
                e.loc,
                "a workload takes no engine",
                "here",
                Some("list the matrix's engines under `engines:`".into()),
            );
        }
        let tol = tolerances(&mut d, file_tolerances.clone(), m.tolerances.as_ref());
        for model in &models {
            for sub in &substrates {
                for w in workloads {
                    let fields = base_fields
                        .over(&w.prompt, &w.generate, &w.batch)
                        .with(&w.precision, &w.set);
                    let workload = w
                        .name
                        .as_ref()
                        .map_or_else(|| default_workload_name(&fields), |n| n.value.clone());
                    for &e in &engines {
                        let values = [
                            ("model", short_name(&model.value)),
                            ("substrate", short_name(&sub.value)),
                            ("workload", workload.clone()),
                            ("engine", e.name().to_string()),
                        ];
                        let name = match template {
                            Some(t) => fill(&t.value, &values),
                            None => values
                                .iter()
                                .map(|(_, v)| v.as_str())
                                .collect::<Vec<_>>()
                                .join("/"),
                        };
                        drafts.push(Draft {
                            name,
                            at,
                            model: model.clone(),
                            substrate: sub.clone(),
                            fields: fields.clone(),
                            engine: e,
                            tolerances: tol.clone(),
                        });
                        if drafts.len() > MAX_CASES {
                            d.error(
                                at,
                                format!("the file expands to more than {MAX_CASES} cases"),
                                "here",
                                None,
                            );
                            break 'expand;
                        }
                    }
                }
            }
        }
    }
    if drafts.is_empty() && d.is_empty() {
        let at = raw
            .cases
            .as_ref()
            .map(|c| c.loc)
            .or(raw.matrix.as_ref().map(|m| m.loc))
            .unwrap_or(start);
        d.error(
            at,
            "the cases file defines no cases",
            "here",
            Some("add entries under `cases:` or a `matrix:` of models x substrates".into()),
        );
    }

    // unique names
    let mut seen: BTreeMap<&str, Loc> = BTreeMap::new();
    for dr in &drafts {
        if let Some(first) = seen.get(dr.name.as_str()) {
            let first_at = if first.is_known() && *first != dr.at {
                format!(" (first at line {})", first.line)
            } else {
                String::new()
            };
            d.error(
                dr.at,
                format!("two cases are named `{}`{first_at}", dr.name),
                "here",
                Some("case names must be unique: name the workloads (`name:`), or give the matrix a name template such as \"{model}/{substrate}/{workload}/{engine}\"".into()),
            );
        } else {
            seen.insert(&dr.name, dr.at);
        }
    }

    // load models and substrates, build the cases
    let mut loader = Loader {
        file,
        base: base.to_path_buf(),
        models: HashMap::new(),
        variants: HashMap::new(),
        substrate_sources: HashMap::new(),
        substrates: HashMap::new(),
        inputs: Inputs {
            cases: provenance::sha256(file.text().as_bytes()),
            ..Inputs::default()
        },
        files: Vec::new(),
    };
    let mut cases = Vec::with_capacity(drafts.len());
    for dr in drafts {
        if let Some(case) = loader.case(&mut d, dr) {
            cases.push(case);
        }
    }
    let Loader { inputs, files, .. } = loader;
    d.finish(Cases {
        file: file.name().to_string(),
        digits,
        top_ops,
        cases,
        inputs,
        files,
    })
}

/// A case's workload (`llmforge sim`'s defaults for what it leaves out), or `None` when it
/// is zero or past a limit (reported at the field, else at the case).
fn workload(d: &mut Diagnostics, f: &Fields, case: Loc) -> Option<Workload> {
    let value = |v: Option<&Located<u64>>, default: u64| v.map_or(default, |l| l.value);
    let (prompt, generate, batch) = (
        value(f.prompt, DEFAULT_PROMPT),
        value(f.generate, DEFAULT_GEN),
        value(f.batch, DEFAULT_BATCH),
    );
    let e = match Workload::new(prompt, generate, batch) {
        Ok(w) => return Some(w),
        Err(e) => e,
    };
    let field = match &e {
        SimError::Zero { field } | SimError::Limit { field, .. } => *field,
        SimError::UnknownEngine(_) => "",
    };
    let at = match field {
        "prompt" => f.prompt,
        "generate" => f.generate,
        "batch" => f.batch,
        // the context: prompt + gen
        _ => f.generate.or(f.prompt),
    };
    let message = match e {
        SimError::Zero { field } => {
            let key = if field == "generate" { "gen" } else { field };
            format!("`{key}` must be at least 1, got 0")
        }
        other => other.to_string(),
    };
    d.error(at.map_or(case, |l| l.loc), message, "here", None);
    None
}

fn engine(d: &mut Diagnostics, e: &Located<String>) -> Option<Engine> {
    match e.value.parse::<Engine>() {
        Ok(e) => Some(e),
        Err(err) => {
            d.error(e.loc, err.to_string(), "here", None);
            None
        }
    }
}

/// A matrix's `models` / `substrates`: `all` is every shipped one.
fn expand_all(
    list: &Located<Names>,
    shipped: impl Iterator<Item = &'static str>,
    d: &mut Diagnostics,
    key: &str,
    what: &str,
) -> Vec<Located<String>> {
    let v = names(list);
    if v.len() == 1 && v[0].value == "all" {
        return shipped
            .map(|n| Located {
                value: n.to_string(),
                loc: v[0].loc,
                used_at: None,
            })
            .collect();
    }
    if v.is_empty() {
        d.error(
            list.loc,
            format!("`{key}` is empty"),
            "here",
            Some(format!(
                "list names, or write `all` for every shipped one of the {what}"
            )),
        );
    }
    v
}

const PLACEHOLDERS: [&str; 4] = ["model", "substrate", "workload", "engine"];

/// Reports unknown or unclosed `{...}` in a name template.
fn check_template(d: &mut Diagnostics, t: &Located<String>) {
    let mut rest = t.value.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let key = &after[..close];
                if !PLACEHOLDERS.contains(&key) {
                    d.error(
                        t.loc,
                        format!("unknown placeholder `{{{key}}}` in the name template"),
                        "here",
                        Some("placeholders: {model}, {substrate}, {workload}, {engine}".into()),
                    );
                }
                rest = &after[close + 1..];
            }
            None => {
                d.error(t.loc, "unclosed `{` in the name template", "here", None);
                return;
            }
        }
    }
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// A model or substrate's part of a case name: the name, or a file's stem.
fn short_name(spec: &str) -> String {
    if looks_like_path(spec) {
        Path::new(spec)
            .file_stem()
            .map_or_else(|| spec.to_string(), |s| s.to_string_lossy().into_owned())
    } else {
        spec.to_string()
    }
}

fn looks_like_path(spec: &str) -> bool {
    spec.contains('/')
        || spec.contains('\\')
        || Path::new(spec)
            .extension()
            .is_some_and(|e| ["yaml", "yml", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// `p256-g256-b1`, plus `-int8` when a single precision is given.
fn default_workload_name(f: &Fields) -> String {
    let v = |x: Option<&Located<u64>>, default: u64| x.map_or(default, |l| l.value);
    let mut name = format!(
        "p{}-g{}-b{}",
        v(f.prompt, DEFAULT_PROMPT),
        v(f.generate, DEFAULT_GEN),
        v(f.batch, DEFAULT_BATCH)
    );
    match f.precision.map(|p| &p.value) {
        Some(RawPrecision::All(p)) => {
            name.push('-');
            name.push_str(p);
        }
        Some(RawPrecision::Parts(parts)) => {
            for (k, v) in parts {
                name.push_str(&format!("-{}:{}", k.value, v.value));
            }
        }
        None => {}
    }
    name
}

/// `base` with a `tolerances:` section applied (`rel.all` first, then each metric).
fn tolerances(d: &mut Diagnostics, mut base: Tolerances, raw: Option<&RawTolerances>) -> Tolerances {
    let Some(raw) = raw else { return base };
    let file = d.file().clone();
    for (relative, entries) in [(true, &raw.rel), (false, &raw.abs)] {
        let Some(entries) = entries else { continue };
        let mut entries: Vec<&(Located<String>, Expression)> = entries.0.iter().collect();
        // `all` first, whatever its place in the file
        entries.sort_by_key(|(k, _)| k.value != "all");
        for (key, expr) in entries {
            let section = if relative { "rel" } else { "abs" };
            let metric: Option<&Metric> = tolerance_keys().find(|m| m.name == key.value);
            if key.value == "all" && !relative {
                d.error(
                    key.loc,
                    "`abs.all`: absolute tolerances have units, so each is given per metric",
                    "here",
                    Some("use `rel: {all: 1%}` for every metric, or `abs: {tpot_s: 10 us}`".into()),
                );
                continue;
            }
            if metric.is_none() && key.value != "all" {
                let exact = key.value == "fits_memory" || key.value == "bound";
                let help = if exact {
                    "fits_memory and the top ops' bounds are compared exactly".to_string()
                } else {
                    format!(
                        "metrics: all, {}",
                        tolerance_keys().map(|m| m.name).collect::<Vec<_>>().join(", ")
                    )
                };
                d.error(
                    key.loc,
                    format!("`{section}.{}` is not a metric with a tolerance", key.value),
                    "here",
                    Some(help),
                );
                continue;
            }
            let (dim, takes) = if relative {
                (Dim::NONE, "a fraction or a percentage such as 2%")
            } else {
                let unit = metric.map_or("", |m| m.unit);
                (metric.map_or(Dim::NONE, |m| m.dim), example_of(unit))
            };
            let value = expr.eval_scalar(&file, &dsl::no_names).and_then(|q| {
                q.in_dim(dim).map_err(|_| {
                    file.error(
                        expr.loc(),
                        format!("`{section}.{}` is {q}; it takes {takes}", key.value),
                        "wrong dimension",
                        None,
                    )
                })
            });
            let value = match d.check(value) {
                Some(v) if v.is_finite() && v >= 0.0 => v,
                Some(v) => {
                    d.error(
                        expr.loc(),
                        format!(
                            "`{section}.{}` is {v}; a tolerance must be finite and at least 0",
                            key.value
                        ),
                        "here",
                        None,
                    );
                    continue;
                }
                None => continue,
            };
            for (name, t) in base.0.iter_mut() {
                if key.value == "all" || *name == key.value {
                    if relative {
                        t.rel = value;
                    } else {
                        t.abs = value;
                    }
                }
            }
        }
    }
    base
}

fn example_of(unit: &str) -> &'static str {
    match unit {
        "s" => "a time such as \"10 us\"",
        "J" => "an energy such as \"1 mJ\"",
        "B" => "a byte count such as \"1 MB\"",
        _ => "a plain number such as 0.5",
    }
}

impl Loader<'_> {
    fn case(&mut self, d: &mut Diagnostics, dr: Draft) -> Option<Case> {
        let f = &dr.fields;
        let workload = workload(d, f, dr.at);
        let precision = f.precision.map(|p| precision(d, p));
        // later entries of `set` win (a case's over its workload's over the defaults)
        let mut set: Vec<(&Located<String>, &Expression)> = Vec::new();
        for (k, e) in &f.set {
            set.retain(|(k2, _)| k2.value != k.value);
            set.push((k, e));
        }
        let model = self.model(d, &dr.model);
        let substrate = self.substrate(d, &dr.substrate, &set);
        let (Some(workload), Some(model), Some(substrate)) = (workload, model, substrate) else {
            return None;
        };
        let model = match precision {
            Some(Some(p)) => self.at_precision(&dr.model.value, model, p),
            Some(None) => return None,
            None => model,
        };
        if let Err(e) = substrate.resolve(&model.precision) {
            // priced anyway, the library would quantise it: a snapshot never records that silently
            let (loc, label) = match f.precision {
                Some(p) => (p.loc, "this precision"),
                None => (dr.at, "this case"),
            };
            d.error(
                loc,
                format!(
                    "case `{}`: model `{}` cannot run on substrate `{}`: {e}",
                    dr.name, dr.model.value, dr.substrate.value
                ),
                label,
                Some(format!(
                    "{}; give the case (or its workload) a `precision:` the substrate runs",
                    e.help()
                )),
            );
            return None;
        }
        Some(Case {
            name: dr.name,
            model_spec: dr.model.value.clone(),
            substrate_spec: dr.substrate.value.clone(),
            set: set
                .iter()
                .map(|(k, e)| Override {
                    path: k.value.clone(),
                    expr: e.text().to_string(),
                })
                .collect(),
            engine: dr.engine,
            workload,
            model,
            substrate,
            tolerances: dr.tolerances,
        })
    }

    /// A file path relative to the cases file's folder, when `spec` is written as a path.
    fn path_of(&mut self, d: &mut Diagnostics, spec: &Located<String>, what: &str) -> Option<Option<String>> {
        if !looks_like_path(&spec.value) {
            return Some(None);
        }
        let path = self.base.join(&spec.value);
        if path.is_file() {
            if !self.files.contains(&path) {
                self.files.push(path.clone());
            }
            Some(Some(path.to_string_lossy().into_owned()))
        } else {
            d.error(
                spec.loc,
                format!("no {what} file `{}`", path.display()),
                "here",
                Some("file paths are relative to the cases file's folder".into()),
            );
            None
        }
    }

    fn model(&mut self, d: &mut Diagnostics, spec: &Located<String>) -> Option<Arc<Model>> {
        if let Some(m) = self.models.get(&spec.value) {
            return m.clone();
        }
        let loaded = self.load_model(d, spec).map(Arc::new);
        self.models.insert(spec.value.clone(), loaded.clone());
        loaded
    }

    /// `model` (loaded from `spec`) with a precision override applied, shared per precision.
    fn at_precision(&mut self, spec: &str, model: Arc<Model>, p: PrecisionOverride) -> Arc<Model> {
        let wanted = p.apply(model.precision);
        if wanted == model.precision {
            return model;
        }
        let variants = self.variants.entry(spec.to_string()).or_default();
        if let Some((_, m)) = variants.iter().find(|(q, _)| *q == wanted) {
            return m.clone();
        }
        let mut m = (*model).clone();
        m.precision = wanted;
        let m = Arc::new(m);
        variants.push((wanted, m.clone()));
        m
    }

    fn load_model(&mut self, d: &mut Diagnostics, spec: &Located<String>) -> Option<Model> {
        let source = match self.path_of(d, spec, "model")? {
            Some(path) => match model::source(&path) {
                Ok(s) => s,
                Err(e) => {
                    d.error(spec.loc, format!("cannot read the model: {e}"), "here", None);
                    return None;
                }
            },
            None => match model::preset_source(&spec.value) {
                Some(s) => s,
                None => {
                    d.error(
                        spec.loc,
                        format!("unknown model `{}`", spec.value),
                        "not a preset",
                        Some(format!(
                            "presets: {}; a model file is written as a path (./my-model.yaml)",
                            model::presets::names().collect::<Vec<_>>().join(", ")
                        )),
                    );
                    return None;
                }
            },
        };
        self.inputs
            .models
            .insert(spec.value.clone(), provenance::sha256(source.text.as_bytes()));
        match source.parse() {
            Ok(m) => Some(m),
            Err(model::LoadError::Invalid(errors)) => {
                for e in errors.into_vec() {
                    d.push(e);
                }
                None
            }
            Err(e) => {
                d.error(spec.loc, format!("cannot load the model: {e}"), "here", None);
                None
            }
        }
    }

    fn substrate_source(&mut self, d: &mut Diagnostics, spec: &Located<String>) -> Option<SourceFile> {
        if let Some(s) = self.substrate_sources.get(&spec.value) {
            return s.clone();
        }
        let source = match self.path_of(d, spec, "substrate") {
            None => None,
            Some(Some(path)) => match SourceFile::read(Path::new(&path)) {
                Ok(f) => Some(f),
                Err(e) => {
                    d.error(
                        spec.loc,
                        format!("cannot read the substrate: {}", e.message()),
                        "here",
                        None,
                    );
                    None
                }
            },
            Some(None) => {
                let found = crate::yaml::shipped_named(&spec.value, substrate::SHIPPED, "substrates");
                if found.is_none() {
                    d.error(
                        spec.loc,
                        format!("unknown substrate `{}`", spec.value),
                        "not a shipped substrate",
                        Some(format!(
                            "shipped substrates: {}; a substrate file is written as a path (./my-chip.yaml)",
                            substrate::names().collect::<Vec<_>>().join(", ")
                        )),
                    );
                }
                found
            }
        };
        if let Some(f) = &source {
            self.inputs
                .substrates
                .insert(spec.value.clone(), provenance::sha256(f.text().as_bytes()));
        }
        self.substrate_sources.insert(spec.value.clone(), source.clone());
        source
    }

    fn substrate(
        &mut self,
        d: &mut Diagnostics,
        spec: &Located<String>,
        set: &[(&Located<String>, &Expression)],
    ) -> Option<Arc<Substrate>> {
        let key = (
            spec.value.clone(),
            set.iter()
                .map(|(k, e)| (k.value.clone(), e.text().to_string()))
                .collect::<Vec<_>>(),
        );
        if let Some(s) = self.substrates.get(&key) {
            return s.clone();
        }
        let loaded = self.substrate_source(d, spec).and_then(|source| {
            let overrides: Vec<Override> = key
                .1
                .iter()
                .map(|(path, expr)| Override {
                    path: path.clone(),
                    expr: expr.clone(),
                })
                .collect();
            match substrate::load_source(&source, &overrides) {
                Ok(s) => Some(Arc::new(s)),
                Err(errors) => {
                    for e in errors.into_vec() {
                        d.push(self.relocate(e, &source, spec, set));
                    }
                    None
                }
            }
        });
        self.substrates.insert(key, loaded.clone());
        loaded
    }

    /// A substrate error about an override (or without a place in the substrate file) is
    /// placed at the override in the cases file.
    fn relocate(
        &self,
        e: DescError,
        source: &SourceFile,
        spec: &Located<String>,
        set: &[(&Located<String>, &Expression)],
    ) -> DescError {
        // An error naming an overridden field is about the override: the file's own value
        // of that field is not used.
        let about = set.iter().find(|(k, _)| {
            e.file() == format!("--set {}", k.value)
                || e.message().contains(&format!("--set {}:", k.value))
                || e.message().contains(&format!("`{}`", k.value))
        });
        let (loc, label) = match about {
            Some((_, expr)) => (expr.loc(), "this override"),
            None if e.file() == source.name() && e.line() > 0 => return e,
            None => (spec.loc, "this substrate"),
        };
        let message = format!("substrate `{}`: {}", spec.value, e.message());
        let help = e.help_text().map(str::to_string);
        self.file.error(loc, message, label, help)
    }
}

/// A precision field: which formats it sets (the rest keep the model's).
#[derive(Clone, Copy)]
struct PrecisionOverride([Option<Precision>; 3]);

impl PrecisionOverride {
    fn apply(self, m: Precisions) -> Precisions {
        let [w, a, kv] = self.0;
        Precisions {
            weights: w.unwrap_or(m.weights),
            activations: a.unwrap_or(m.activations),
            kv_cache: kv.unwrap_or(m.kv_cache),
        }
    }
}

/// A precision field, or `None` when it is invalid (reported).
fn precision(d: &mut Diagnostics, p: &Located<RawPrecision>) -> Option<PrecisionOverride> {
    let parse = |d: &mut Diagnostics, text: &str, loc: Loc| -> Option<Precision> {
        match text.parse::<Precision>() {
            Ok(p) => Some(p),
            Err(e) => {
                d.error(loc, e.to_string(), "here", None);
                None
            }
        }
    };
    let mut parts: [Option<Precision>; 3] = [None; 3];
    match &p.value {
        RawPrecision::All(name) => {
            let one = parse(d, name, p.loc)?;
            parts = [Some(one); 3];
        }
        RawPrecision::Parts(entries) => {
            let mut ok = true;
            for (k, v) in entries {
                let slot = match k.value.as_str() {
                    "weights" => 0,
                    "activations" => 1,
                    "kv_cache" => 2,
                    other => {
                        d.error(
                            k.loc,
                            format!("unknown precision part `{other}`"),
                            "here",
                            Some("expected weights, activations or kv_cache".into()),
                        );
                        ok = false;
                        continue;
                    }
                };
                match parse(d, &v.value, v.loc) {
                    Some(x) => parts[slot] = Some(x),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
        }
    }
    Some(PrecisionOverride(parts))
}
