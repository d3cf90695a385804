//! A log-log roofline plot as a self-contained SVG (written by hand: no fonts or plotting
//! crate needed). One ceiling per arithmetic precision (`min(peak, bandwidth x intensity)`),
//! the vector-unit ceiling, and every operator placed at (FLOPs / DRAM byte, achieved
//! FLOP/s). Operators with no DRAM traffic (all operands on chip) are drawn as open markers
//! at the right edge; operators with no FLOPs (gathers, KV writes) cannot be placed on a
//! log axis and are counted in the caption.

use std::fmt::Write as _;

/// One operator on the plot.
#[derive(Clone, Debug, PartialEq)]
pub struct RooflinePoint {
    pub label: String,
    /// `prefill` or `decode`.
    pub phase: &'static str,
    /// `matrix`, `vector` or `memory`.
    pub unit: &'static str,
    pub flops: f64,
    pub dram_bytes: f64,
    /// Seconds per execution.
    pub time: f64,
}

const W: f64 = 900.0;
const H: f64 = 600.0;
const ML: f64 = 80.0;
const MR: f64 = 170.0;
const MT: f64 = 50.0;
const MB: f64 = 70.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the plot. `ceilings` are (name, peak FLOP/s) per precision, `vector_peak` the
/// vector units' FLOP/s, `bandwidth` DRAM bytes/s.
pub fn roofline_svg(
    title: &str,
    ceilings: &[(String, f64)],
    vector_peak: f64,
    bandwidth: f64,
    points: &[RooflinePoint],
) -> String {
    let placed: Vec<&RooflinePoint> = points.iter().filter(|p| p.flops > 0.0 && p.time > 0.0).collect();
    let unplaced = points.len() - placed.len();
    let max_peak = ceilings.iter().map(|c| c.1).fold(vector_peak, f64::max).max(1.0);
    let finite_i: Vec<f64> = placed
        .iter()
        .filter(|p| p.dram_bytes > 0.0)
        .map(|p| p.flops / p.dram_bytes)
        .collect();
    let ridge_max = max_peak / bandwidth;
    let ridge_min = ceilings.iter().map(|c| c.1).fold(vector_peak, f64::min).max(1.0) / bandwidth;
    let i_lo = finite_i.iter().copied().fold(ridge_min, f64::min) / 4.0;
    let i_hi = finite_i.iter().copied().fold(ridge_max, f64::max) * 8.0;
    let perf_lo = placed
        .iter()
        .map(|p| p.flops / p.time)
        .fold(bandwidth * i_lo, f64::min)
        .max(1.0)
        / 2.0;
    let perf_hi = max_peak * 3.0;
    let (x0, x1) = (i_lo.log10().floor(), i_hi.log10().ceil());
    let (y0, y1) = (perf_lo.log10().floor(), perf_hi.log10().ceil());
    let px = |i: f64| ML + (i.log10() - x0) / (x1 - x0) * (W - ML - MR);
    let py = |f: f64| H - MB - (f.log10() - y0) / (y1 - y0) * (H - MT - MB);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        (ML + W - MR) / 2.0,
        esc(title)
    );
    // grid and ticks
    for d in x0 as i64..=x1 as i64 {
        let x = px(10f64.powi(d as i32));
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{MT}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">1e{d}</text>",
            H - MB,
            H - MB + 16.0
        );
    }
    for d in y0 as i64..=y1 as i64 {
        let y = py(10f64.powi(d as i32));
        let _ = writeln!(
            s,
            "<line x1=\"{ML}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1e{d}</text>",
            W - MR,
            ML - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{ML}\" y=\"{MT}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"black\"/>",
        W - ML - MR,
        H - MT - MB
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">arithmetic intensity (FLOP per DRAM byte)</text>",
        (ML + W - MR) / 2.0,
        H - MB + 36.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">achieved FLOP/s</text>",
        (MT + H - MB) / 2.0
    );
    // ceilings
    let colours = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
    let mut legend_y = MT + 10.0;
    let mut ceiling = |s: &mut String, name: &str, peak: f64, colour: &str, dash: &str| {
        let ridge = peak / bandwidth;
        let a = (10f64.powf(x0), bandwidth * 10f64.powf(x0));
        let (ax, ay) = if a.1 < perf_lo {
            let i = perf_lo / bandwidth;
            (i, perf_lo)
        } else {
            a
        };
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"/>",
            px(ax),
            py(ay),
            px(ridge),
            py(peak),
            px(10f64.powf(x1)),
            py(peak)
        );
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{legend_y:.1}\" x2=\"{:.1}\" y2=\"{legend_y:.1}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/><text x=\"{:.1}\" y=\"{:.1}\">{} {:.3e}</text>",
            W - MR + 10.0,
            W - MR + 30.0,
            W - MR + 34.0,
            legend_y + 4.0,
            esc(name),
            peak
        );
        legend_y += 18.0;
    };
    for (k, (name, peak)) in ceilings.iter().enumerate() {
        ceiling(&mut s, name, *peak, colours[k % colours.len()], "none");
    }
    ceiling(&mut s, "vector", vector_peak, "#ff7f0e", "6,3");
    // points
    let mut legend = |s: &mut String, text: &str, colour: &str| {
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{legend_y:.1}\" r=\"4\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
            W - MR + 20.0,
            W - MR + 34.0,
            legend_y + 4.0
        );
        legend_y += 18.0;
    };
    legend(&mut s, "prefill op", "#d62728");
    legend(&mut s, "decode op", "#17becf");
    let right = 10f64.powf(x1);
    for p in &placed {
        let colour = if p.phase == "prefill" {
            "#d62728"
        } else {
            "#17becf"
        };
        let (i, open) = if p.dram_bytes > 0.0 {
            (p.flops / p.dram_bytes, false)
        } else {
            (right, true)
        };
        let (x, y) = (px(i.min(right)), py(p.flops / p.time));
        let fill = if open { "none" } else { colour };
        let shape = if p.unit == "vector" {
            format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"{fill}\" stroke=\"{colour}\" fill-opacity=\"0.6\">",
                x - 3.5,
                y - 3.5
            )
        } else {
            format!(
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{fill}\" stroke=\"{colour}\" fill-opacity=\"0.6\">"
            )
        };
        let end = if p.unit == "vector" {
            "</rect>"
        } else {
            "</circle>"
        };
        let _ = writeln!(
            s,
            "{shape}<title>{} ({}): {:.3e} FLOP, {:.3e} DRAM B, {:.3e} s</title>{end}",
            esc(&p.label),
            p.phase,
            p.flops,
            p.dram_bytes,
            p.time
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{ML}\" y=\"{:.1}\" font-size=\"11\">circles: matrix ops; squares: vector ops; open markers at the right edge: no DRAM traffic; {unplaced} ops without FLOPs not shown</text>",
        H - 10.0
    );
    s.push_str("</svg>\n");
    s
}
