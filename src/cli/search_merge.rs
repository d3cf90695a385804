//! `llmforge search merge DIR... --out DIR`: independent architecture searches (other seeds,
//! substrates or spaces; e.g. the tasks of a Slurm job array) put together: the Pareto front
//! of the union of their fronts with each point's origin (`pareto.csv`), their histories one
//! after the other (`history.csv`), and the front's model files. The runs must share what
//! makes their objectives comparable (objectives, workload, engine, constraints, loss model,
//! llmforge version); seeds, substrates, spaces and NSGA-II settings may differ.
//!
//! Deterministic: the front is sorted by its objectives, ties kept in the order the runs are
//! given; the same runs in the same order give byte-identical outputs.

use llmforge::output::{self, InputRecord, Manifest, Outputs, Owned, Reuse, RunDir, Status, write_atomic};
use llmforge::trace::table::{Column, Table};
use miette::{IntoDiagnostic, WrapErr, miette};
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The searches' run directories (`search --space ... --out DIR`), each complete.
    #[arg(required = true, value_name = "DIR")]
    runs: Vec<PathBuf>,
    /// Run directory for the merged front and history.
    #[arg(long)]
    out: PathBuf,
    /// Replace the results of an earlier run in --out (they are removed first).
    #[arg(long)]
    force: bool,
}

const OUTPUTS: &[Owned] = &[
    Owned::File("pareto.csv"),
    Owned::File("history.csv"),
    Owned::Pattern {
        folder: "models",
        prefix: "pareto-",
        suffix: ".yaml",
    },
];

/// The settings that must agree for fronts to be comparable (from the manifest's
/// `settings.problem`); `space`, `substrate`, `set` and the NSGA-II settings may differ.
const SHARED: [&str; 9] = [
    "objectives",
    "prompt",
    "generate",
    "batch",
    "engine",
    "constraints",
    "quality",
    "tokens_per_param",
    "beta",
];

/// One search's run directory as the merge reads it.
struct Run {
    path: PathBuf,
    name: String,
    manifest: Manifest,
    header: String,
    rows: Vec<Vec<String>>,
    history_header: String,
    history: Vec<String>,
}

fn read_text(path: &Path) -> miette::Result<String> {
    std::fs::read_to_string(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read {}", path.display()))
}

impl Run {
    fn read(path: &Path) -> miette::Result<Run> {
        let name = path.display().to_string();
        let again = format!("finish it (`search --resume {name}`)");
        let manifest = super::finished_run(path, "search", "a search's", &again)?;
        if !manifest.settings["problem"].is_object() {
            return Err(miette!(
                "`{name}` holds the results of `llmforge {}`, not of an architecture search (search --space)",
                manifest.command.join(" ")
            ));
        }
        let text = read_text(&path.join("pareto.csv"))?;
        let mut lines = text.lines();
        let header = lines
            .next()
            .filter(|h| h.starts_with("rank,"))
            .ok_or_else(|| miette!("{}/pareto.csv: expected a header starting `rank,`", name))?
            .to_string();
        let width = header.split(',').count();
        let mut rows = Vec::new();
        for (k, line) in lines.enumerate() {
            let cells: Vec<String> = line.split(',').map(String::from).collect();
            if cells.len() != width || cells[0] != k.to_string() {
                return Err(miette!(
                    "{name}/pareto.csv:{}: expected row {k} with {width} fields, found `{line}`",
                    k + 2
                ));
            }
            rows.push(cells);
        }
        let text = read_text(&path.join("history.csv"))?;
        let mut lines = text.lines();
        let history_header = lines
            .next()
            .ok_or_else(|| miette!("{name}/history.csv: empty"))?
            .to_string();
        let history = lines.map(String::from).collect();
        Ok(Run {
            path: path.to_path_buf(),
            name,
            manifest,
            header,
            rows,
            history_header,
            history,
        })
    }

    fn problem(&self, key: &str) -> &serde_json::Value {
        &self.manifest.settings["problem"][key]
    }

    /// `space` on `substrate`, seed `s`.
    fn describe(&self) -> String {
        let spec = |v: &serde_json::Value| v["spec"].as_str().unwrap_or("?").to_string();
        format!(
            "`{}` ({} on {}, seed {})",
            self.name,
            spec(self.problem("space")),
            spec(self.problem("substrate")),
            self.manifest.settings["nsga2"]["seed"]
        )
    }
}

/// Refuses runs whose fronts are not comparable, naming every difference.
fn check_comparable(runs: &[Run]) -> miette::Result<()> {
    let first = &runs[0];
    let mut problems = Vec::new();
    for other in &runs[1..] {
        if other.manifest.llmforge != first.manifest.llmforge {
            problems.push(format!(
                "llmforge version: {} has {}, {} has {}",
                first.describe(),
                first.manifest.llmforge,
                other.describe(),
                other.manifest.llmforge
            ));
        }
        for key in SHARED {
            // a description named by a file is compared by its contents' hash
            let (a, b) = (first.problem(key), other.problem(key));
            let same = match (a.get("sha256"), b.get("sha256")) {
                (Some(x), Some(y)) if !x.is_null() || !y.is_null() => x == y,
                _ => a == b,
            };
            if !same {
                problems.push(format!(
                    "setting `{key}`: {} has {a}, {} has {b}",
                    first.describe(),
                    other.describe()
                ));
            }
        }
        if other.header != first.header {
            problems.push(format!(
                "pareto.csv columns: {} has `{}`, {} has `{}`",
                first.describe(),
                first.header,
                other.describe(),
                other.header
            ));
        }
        if other.history_header != first.history_header {
            problems.push(format!(
                "history.csv columns differ between {} and {}",
                first.describe(),
                other.describe()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(miette!(
            help = "merge searches whose objectives compare: the same objectives, workload, engine, constraints, loss model and llmforge (seeds, substrates, spaces and NSGA-II settings may differ)",
            "these searches' fronts are not comparable:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// A front row as the merge compares it.
struct Point {
    run: usize,
    rank: usize,
    objectives: Vec<f64>,
    feasible: bool,
    violation: f64,
}

/// Constrained domination (Deb 2002), as the search ranks: a feasible point dominates an
/// infeasible one, of two infeasible the smaller violation dominates, of two feasible the
/// Pareto-dominating one.
fn dominates(a: &Point, b: &Point) -> bool {
    match (a.feasible, b.feasible) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => {
            a.objectives.iter().zip(&b.objectives).all(|(x, y)| x <= y)
                && a.objectives.iter().zip(&b.objectives).any(|(x, y)| x < y)
        }
    }
}

fn parse(run: &Run, header: &[&str], objectives: usize) -> miette::Result<Vec<Point>> {
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| miette!("{}/pareto.csv has no `{name}` column", run.name))
    };
    let (feasible, violation) = (column("feasible")?, column("violation")?);
    run.rows
        .iter()
        .enumerate()
        .map(|(rank, cells)| {
            let number = |c: usize| {
                cells[c].parse::<f64>().map_err(|_| {
                    miette!(
                        "{}/pareto.csv:{}: column `{}`: expected a number, found `{}`",
                        run.name,
                        rank + 2,
                        header[c],
                        cells[c]
                    )
                })
            };
            Ok(Point {
                run: 0,
                rank,
                objectives: (1..=objectives).map(number).collect::<miette::Result<_>>()?,
                feasible: match cells[feasible].as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(miette!(
                            "{}/pareto.csv:{}: column `feasible`: expected true or false, found `{other}`",
                            run.name,
                            rank + 2
                        ));
                    }
                },
                violation: number(violation)?,
            })
        })
        .collect()
}

/// The unit of an objective as pareto.csv holds it.
fn unit(objective: &str) -> &'static str {
    match objective {
        "loss" => "nats",
        "ttft" | "tpot" | "latency" => "s",
        "energy" => "J",
        "weights" | "kv" => "B",
        _ => "",
    }
}

pub fn run(args: MergeArgs) -> miette::Result<()> {
    let runs: Vec<Run> = args
        .runs
        .iter()
        .map(|p| Run::read(p))
        .collect::<miette::Result<_>>()?;
    check_comparable(&runs)?;
    let mut plan = Outputs::new();
    for r in &runs {
        for name in [output::MANIFEST, "pareto.csv", "history.csv"] {
            plan.input("DIR", r.path.join(name));
        }
    }
    plan.dir("--out", &args.out, OUTPUTS).check().into_diagnostic()?;
    let inputs: Vec<InputRecord> = plan.records().into_diagnostic()?;

    let header: Vec<&str> = runs[0].header.split(',').collect();
    let objectives = runs[0].problem("objectives").as_array().map_or(0, Vec::len);
    if objectives == 0 || header.get(1..=objectives).is_none() {
        return Err(miette!(
            "{}: its manifest names no objectives",
            runs[0].describe()
        ));
    }
    let mut points = Vec::new();
    for (k, r) in runs.iter().enumerate() {
        for mut p in parse(r, &header, objectives)? {
            p.run = k;
            points.push(p);
        }
    }
    let mut front: Vec<&Point> = points
        .iter()
        .filter(|p| !points.iter().any(|q| dominates(q, p)))
        .collect();
    front.sort_by(|a, b| {
        a.objectives
            .iter()
            .zip(&b.objectives)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
            .then(a.run.cmp(&b.run))
            .then(a.rank.cmp(&b.rank))
    });

    let reuse = if args.force { Reuse::Force } else { Reuse::Fresh };
    let out = RunDir::open("--out", &args.out, reuse, OUTPUTS).into_diagnostic()?;
    let runs_json: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            serde_json::json!({
                "dir": r.name,
                "space": r.problem("space"),
                "substrate": r.problem("substrate"),
                "set": r.problem("set"),
                "nsga2": r.manifest.settings["nsga2"],
            })
        })
        .collect();
    let shared: serde_json::Map<String, serde_json::Value> = SHARED
        .iter()
        .map(|k| (k.to_string(), runs[0].problem(k).clone()))
        .collect();
    let mut manifest = Manifest::new(serde_json::json!({"shared": shared, "runs": runs_json}), inputs);
    manifest.merged_from = runs.iter().map(|r| r.name.clone()).collect();
    out.write_manifest(&manifest).into_diagnostic()?;

    // pareto.csv: the merged rank, where the row comes from, then the run's own columns
    let spec = |v: &serde_json::Value| v["spec"].as_str().unwrap_or("").replace(',', ";");
    let mut csv = format!(
        "rank,origin,origin_space,origin_substrate,origin_seed,origin_rank,{}\n",
        header[1..].join(",")
    );
    for (k, p) in front.iter().enumerate() {
        let r = &runs[p.run];
        let _ = writeln!(
            csv,
            "{k},{},{},{},{},{},{}",
            r.name.replace(',', ";"),
            spec(r.problem("space")),
            spec(r.problem("substrate")),
            r.manifest.settings["nsga2"]["seed"],
            p.rank,
            r.rows[p.rank][1..].join(",")
        );
    }
    let mut history = format!("origin,{}\n", runs[0].history_header);
    for r in &runs {
        for line in &r.history {
            let _ = writeln!(history, "{},{line}", r.name.replace(',', ";"));
        }
    }
    let mut write = |name: &str, bytes: &[u8]| {
        write_atomic(&out.join(name), bytes).into_diagnostic()?;
        manifest.outputs.push(name.to_string());
        Ok::<(), miette::Report>(())
    };
    write("pareto.csv", csv.as_bytes())?;
    write("history.csv", history.as_bytes())?;
    out.create_folder("models").into_diagnostic()?;
    for (k, p) in front.iter().enumerate() {
        let from = runs[p.run].path.join(format!("models/pareto-{}.yaml", p.rank));
        let bytes = std::fs::read(&from).into_diagnostic().wrap_err_with(|| {
            format!(
                "cannot read {} (the model of its front row {})",
                from.display(),
                p.rank
            )
        })?;
        write(&format!("models/pareto-{k}.yaml"), &bytes)?;
    }
    manifest.status = Status::Complete;
    out.write_manifest(&manifest).into_diagnostic()?;

    // the merged front, one line per point
    let names: Vec<&str> = header[1..=objectives].to_vec();
    let mut columns = vec![
        Column::number("#", ""),
        Column::text("origin"),
        Column::number("rank", ""),
    ];
    columns.extend(names.iter().map(|n| Column::number(n, unit(n))));
    columns.push(Column::text("feasible"));
    let mut table = Table::new(columns);
    for (k, p) in front.iter().enumerate() {
        let mut cells = vec![k.to_string(), runs[p.run].describe(), p.rank.to_string()];
        cells.extend(p.objectives.iter().map(|v| format!("{v:.6}")));
        cells.push(p.feasible.to_string());
        table.row(cells);
    }
    let from: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(k, r)| {
            format!(
                "{} points of {}",
                front.iter().filter(|p| p.run == k).count(),
                r.describe()
            )
        })
        .collect();
    println!(
        "merged {} searches: front of {} from {} front points ({})",
        runs.len(),
        front.len(),
        points.len(),
        from.join(", ")
    );
    print!("{}", table.render());
    println!(
        "wrote {}/{{pareto.csv, history.csv, models/}}: each row's origin in pareto.csv (origin, origin_rank)",
        args.out.display()
    );
    Ok(())
}
