//! What users look at (issue 18): every SVG the project writes is parsed and rendered by a
//! real SVG renderer (resvg, text with the embedded DejaVu Sans), must not be blank, must draw
//! every label and keep it inside the picture; report.html is checked in headless chromium
//! (its rows, its ready marker, no script error, a screenshot that is not blank).
//!
//! `LLMFORGE_SHOTS=<dir>` also writes every rendered plot and the report's screenshot there
//! as PNG, to look at.

mod browser;

use llmforge::trace::plot::{self, FONT_TTF, FrontierPlot, Limit};
use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn llmforge(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_llmforge"))
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "llmforge {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmforge-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Where to leave PNGs of what the tests rendered, when asked to.
pub fn shots() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("LLMFORGE_SHOTS")?);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// The fraction of pixels that are not (near) white, and the luminance variance.
pub fn ink(pixmap: &Pixmap) -> (f64, f64) {
    let px = pixmap.pixels();
    let lum: Vec<f64> = px
        .iter()
        .map(|p| {
            let c = p.demultiply();
            let a = c.alpha() as f64 / 255.0;
            // over a white background
            let l = 0.299 * c.red() as f64 + 0.587 * c.green() as f64 + 0.114 * c.blue() as f64;
            a * l + (1.0 - a) * 255.0
        })
        .collect();
    let n = lum.len().max(1) as f64;
    let mean = lum.iter().sum::<f64>() / n;
    let var = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
    let inked = lum.iter().filter(|l| **l < 245.0).count() as f64 / n;
    (inked, var)
}

fn options() -> &'static usvg::Options<'static> {
    static OPTIONS: OnceLock<usvg::Options<'static>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut o = usvg::Options::default();
        o.fontdb_mut().load_font_data(FONT_TTF.to_vec());
        o
    })
}

fn texts<'a>(g: &'a usvg::Group, out: &mut Vec<&'a usvg::Text>) {
    for n in g.children() {
        match n {
            usvg::Node::Group(g) => texts(g, out),
            usvg::Node::Text(t) => out.push(t),
            _ => {}
        }
    }
}

/// Parses and renders `svg`; fails when it is not valid SVG, when a label is not drawn (no
/// font) or sticks out of the picture, or when the picture is blank.
pub fn render(svg: &str, what: &str) -> Pixmap {
    let tree = usvg::Tree::from_str(svg, options()).unwrap_or_else(|e| panic!("{what}: not valid SVG: {e}"));
    let size = tree.size();
    let (w, h) = (size.width(), size.height());
    let mut labels = Vec::new();
    texts(tree.root(), &mut labels);
    assert_eq!(
        labels.len(),
        svg.matches("<text").count(),
        "{what}: every <text> is drawn with the embedded font"
    );
    for t in &labels {
        let b = t.abs_stroke_bounding_box();
        assert!(
            b.left() >= -0.5 && b.top() >= -0.5 && b.right() <= w + 0.5 && b.bottom() <= h + 0.5,
            "{what}: label {:?} at {b:?} is clipped by the {w}x{h} picture",
            t.chunks().iter().map(|c| c.text()).collect::<String>()
        );
    }
    let mut pixmap = Pixmap::new(w.ceil() as u32, h.ceil() as u32).unwrap();
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, Transform::default(), &mut pixmap.as_mut());
    let (inked, var) = ink(&pixmap);
    assert!(
        inked > 0.01 && var > 50.0,
        "{what}: blank picture ({inked:.4} inked, variance {var:.1})"
    );
    if let Some(dir) = shots() {
        let name: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        pixmap.save_png(dir.join(format!("{name}.png"))).unwrap();
    }
    pixmap
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `<svg ...>...</svg>` elements inside an HTML page.
pub fn embedded_svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..]
            .find("</svg>")
            .map(|e| start + e + "</svg>".len())
            .unwrap();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

/// One search (with --report) shared by the tests: a small run on the seeded SmolLM2 space.
pub fn search_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("search");
        llmforge(&[
            "search",
            "--space",
            "smollm2-135m-seeded",
            "--substrate",
            "gemmini",
            "--engine",
            "roofline",
            "--constraint",
            "loss<=3.9",
            "--population",
            "8",
            "--offspring",
            "16",
            "--generations",
            "3",
            "--format",
            "json",
            "--out",
            dir.to_str().unwrap(),
            "--report",
        ]);
        dir
    })
}

/// One sweep (with --report) on the tiny grid with budgets whose text needs escaping.
pub fn sweep_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("sweep");
        llmforge(&[
            "sweep",
            "--grid",
            "tiny",
            "--substrate",
            "jetson-orin-nano-super",
            "--budget",
            "tpot<=20ms",
            "--budget",
            "loss<=8",
            "--reference",
            "smollm2-135m",
            "--out",
            dir.to_str().unwrap(),
            "--report",
        ]);
        dir
    })
}

#[test]
fn roofline_plots_render() {
    let dir = scratch("roofline");
    // H100: fp8 and int8 share a peak (one ceiling, both named); the simulator's rates
    let h100 = dir.join("h100.svg");
    let out = llmforge(&[
        "roofline",
        "--model",
        "smollm2-135m",
        "--substrate",
        "h100-sxm",
        "--engine",
        "sim",
        "--plot",
        h100.to_str().unwrap(),
    ]);
    assert!(out.contains("sim engine"), "{out}");
    let svg = read(&h100);
    assert!(svg.contains("fp8 = int8"), "fp8 and int8 are told apart");
    assert!(
        svg.contains("TFLOP/s") && svg.contains("TB/s"),
        "peaks have units"
    );
    assert!(svg.contains("sim engine"));
    render(&svg, "roofline h100 sim");
    let gemmini = dir.join("gemmini.svg");
    llmforge(&[
        "roofline",
        "--model",
        "smollm2-135m",
        "--substrate",
        "gemmini",
        "--precision",
        "int8",
        "--plot",
        gemmini.to_str().unwrap(),
    ]);
    render(&read(&gemmini), "roofline gemmini");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_plot_renders_with_one_panel_per_quantity() {
    let dir = scratch("validate");
    let path = dir.join("v.svg");
    llmforge(&[
        "validate",
        "--traces",
        "tests/fixtures/validate/sample.csv",
        "--svg",
        path.to_str().unwrap(),
    ]);
    let svg = read(&path);
    // decode and prefill token rates share the throughput panel; times are in seconds
    assert_eq!(svg.matches("\nthroughput (").count(), 1, "one throughput panel");
    assert!(svg.contains("measured throughput (tokens/s)"));
    assert!(svg.contains("phase: decode") && svg.contains("phase: prefill"));
    render(&svg, "validate scatter");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sweep_plots_render_and_escape_budgets() {
    let dir = sweep_dir();
    let frontier = read(&dir.join("frontier.svg"));
    assert!(frontier.contains("tpot&lt;=20ms"), "the budget label is escaped");
    render(&frontier, "sweep frontier");
    let region = read(&dir.join("region.svg"));
    assert!(region.contains("loss (nats)"), "colour scale named");
    render(&region, "sweep region");
    // a label with both < and &, through the library
    let p = FrontierPlot {
        title: "budgets <& \"quoted\" 'x'".into(),
        x_metric: "tpot".into(),
        sample: vec![(0.004, 3.9, true), (0.01, 3.5, false), (0.02, 3.3, true)],
        front: vec![(0.004, 3.9), (0.02, 3.3)],
        x_limits: vec![Limit {
            text: "tpot<=20ms & weights+kv<=8GB".into(),
            value: 0.015,
        }],
        y_limits: vec![Limit {
            text: "loss<=3.6 & more".into(),
            value: 3.6,
        }],
        reference: Some(("ref <model>".into(), 0.01, 3.4)),
    };
    render(&plot::frontier_svg(&p).unwrap(), "frontier escaping");
}

#[test]
fn search_scatter_matrix_shows_every_pair() {
    let dir = search_dir();
    let svg = read(&dir.join("pareto.svg"));
    // 4 objectives: 6 panels, each with both axis names
    for name in ["loss (nats)", "TTFT (", "TPOT (", "energy / token ("] {
        assert!(svg.contains(name), "axis {name}");
    }
    assert!(svg.contains("Pareto front ("));
    render(&svg, "search pareto matrix");
}

#[test]
fn reports_embed_every_plot_and_row() {
    for (dir, csv, plots) in [(search_dir(), "pareto.csv", 1), (sweep_dir(), "frontier.csv", 2)] {
        let html = read(&dir.join("report.html"));
        let rows = read(&dir.join(csv)).lines().count() - 1;
        assert!(rows > 0);
        assert_eq!(html.matches("<tbody class=\"design\"").count(), rows, "{csv}");
        let stripped = html.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !stripped.contains("http://") && !stripped.contains("https://"),
            "no network references"
        );
        assert!(
            !html.contains("<script src") && !html.contains("<link"),
            "self-contained"
        );
        let svgs = embedded_svgs(&html);
        assert_eq!(svgs.len(), plots, "{csv}");
        for (k, s) in svgs.iter().enumerate() {
            render(s, &format!("report {csv} plot {k}"));
        }
        // relative links to the models, which exist
        for line in html.split("href=\"").skip(1) {
            let href = &line[..line.find('"').unwrap()];
            assert!(
                !href.starts_with('/') && !href.contains(':'),
                "{href} is relative"
            );
            assert!(dir.join(href).is_file(), "{href} exists");
        }
    }
}

#[test]
fn report_refuses_a_directory_without_results() {
    let dir = scratch("empty");
    let out = Command::new(env!("CARGO_BIN_EXE_llmforge"))
        .args(["report", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pareto.csv") && err.contains("frontier.csv"),
        "{err}"
    );
    assert!(!dir.join("report.html").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
