//! The sweep's loss frontier: predicted loss against a latency metric (log axis), a sample of
//! the evaluated candidates (feasible and infeasible), the frontier as a line, budgets as
//! dashed lines with their text (escaped by the SVG backend: `tpot<=20ms` stays valid XML),
//! and an optional reference model.

use super::{
    Axis, Corner, HPos, Key, Scale, Shape, VPos, chart, draw_line, draw_marker, label, legend, legend_size,
    render, text_size,
};
use crate::trace::TraceError;
use plotters::prelude::*;

/// A budget drawn as a line: its text (`tpot<=20ms`) and its limit in base units.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub text: String,
    pub value: f64,
}

/// What the frontier plot shows; every value in base units (seconds, nats).
#[derive(Clone, Debug)]
pub struct FrontierPlot {
    pub title: String,
    /// The latency metric on the x axis: `ttft`, `tpot` or `latency`.
    pub x_metric: String,
    /// Evaluated candidates: (x, loss, feasible).
    pub sample: Vec<(f64, f64, bool)>,
    /// The frontier's points, by increasing x.
    pub front: Vec<(f64, f64)>,
    /// Budgets on the x metric (vertical lines).
    pub x_limits: Vec<Limit>,
    /// Budgets on the loss (horizontal lines).
    pub y_limits: Vec<Limit>,
    /// A reference model: (name, x, loss).
    pub reference: Option<(String, f64, f64)>,
}

const W: u32 = 900;
const H: u32 = 600;
const FEASIBLE: RGBColor = RGBColor(107, 174, 214);
const INFEASIBLE: RGBColor = RGBColor(190, 190, 190);
const FRONT: RGBColor = RGBColor(214, 39, 40);
const BUDGET: RGBColor = RGBColor(44, 140, 44);

/// Renders the plot.
pub fn frontier_svg(p: &FrontierPlot) -> Result<String, TraceError> {
    let xs: Vec<f64> = p
        .sample
        .iter()
        .map(|s| s.0)
        .chain(p.front.iter().map(|f| f.0))
        .chain(p.x_limits.iter().map(|l| l.value))
        .chain(p.reference.iter().map(|r| r.1))
        .collect();
    let mut x_axis = Axis::for_metric(&p.x_metric, &xs);
    x_axis.log = true;
    let y_axis = Axis::for_metric("loss", &[]);
    let x = Scale::of(x_axis, xs.iter().copied(), 0.04);
    let ys: Vec<f64> = p
        .sample
        .iter()
        .map(|s| s.1)
        .chain(p.front.iter().map(|f| f.1))
        .chain(p.y_limits.iter().map(|l| l.value))
        .chain(p.reference.iter().map(|r| r.2))
        .filter(|v| v.is_finite())
        .collect();
    let mut entries: Vec<(Key, String)> = Vec::new();
    let mark = |color: RGBAColor, filled: bool, size: u32| Key::Mark {
        shape: Shape::Circle,
        color,
        filled,
        size,
    };
    if p.sample.iter().any(|s| s.2) {
        entries.push((
            mark(FEASIBLE.to_rgba(), true, 3),
            "candidate meeting every budget".into(),
        ));
    }
    if p.sample.iter().any(|s| !s.2) {
        entries.push((
            mark(INFEASIBLE.to_rgba(), true, 3),
            "candidate over a budget".into(),
        ));
    }
    entries.push((
        Key::Line {
            color: FRONT.to_rgba(),
            width: 2,
            dash: false,
        },
        format!("frontier: lowest loss at each {}", x.axis.name),
    ));
    if !p.x_limits.is_empty() || !p.y_limits.is_empty() {
        entries.push((
            Key::Line {
                color: BUDGET.to_rgba(),
                width: 1,
                dash: true,
            },
            "budget".into(),
        ));
    }
    if let Some((name, _, _)) = &p.reference {
        entries.push((mark(BLACK.to_rgba(), false, 6), format!("reference: {name}")));
    }
    let (_, legend_h) = legend_size(&entries, 2, 12.0);
    // Room for the legend below the lowest loss (nothing can lie there).
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let span = (hi - lo).max(1e-3);
    let plot_h = H as f64 - 40.0 - 60.0 - 24.0;
    let a = ((legend_h as f64 + 16.0) / plot_h).min(0.5);
    let lo_ext = lo - span * 0.04 - (span * 1.08) * a / (1.0 - a);
    let y = Scale::new(y_axis, lo_ext, hi + span * 0.04, 0.0);

    render(W, H, |root| {
        let mut c = chart(root, &x, &y, Some((&p.title, 18.0)), 13.0, 14.0, 12)?;
        for (a, b, feasible) in &p.sample {
            if let (Some(tx), Some(ty)) = (x.axis.t(*a), y.axis.t(*b)) {
                if x.contains(tx) && y.contains(ty) {
                    let colour = if *feasible { FEASIBLE } else { INFEASIBLE };
                    let at = c.backend_coord(&(tx, ty));
                    draw_marker(root, at, Shape::Circle, colour.mix(0.8), true, 2)?;
                }
            }
        }
        let path: Vec<(f64, f64)> = p
            .front
            .iter()
            .filter_map(|(a, b)| Some((x.axis.t(*a)?, y.axis.t(*b)?)))
            .collect();
        // the frontier is a staircase: a design's loss holds until the next, faster-to-slower
        let mut steps: Vec<(f64, f64)> = Vec::new();
        for (k, pt) in path.iter().enumerate() {
            if k > 0 {
                steps.push((pt.0, path[k - 1].1));
            }
            steps.push(*pt);
        }
        draw_line(&mut c, &x, &y, &steps, FRONT.stroke_width(2), false)?;
        for pt in &path {
            let at = c.backend_coord(pt);
            draw_marker(root, at, Shape::Circle, FRONT.to_rgba(), true, 3)?;
        }
        for l in &p.x_limits {
            if let Some(t) = x.axis.t(l.value) {
                draw_line(
                    &mut c,
                    &x,
                    &y,
                    &[(t, y.lo), (t, y.hi)],
                    BUDGET.stroke_width(1),
                    true,
                )?;
                let at = c.backend_coord(&(t, y.hi));
                // beside the line, on the side with room for the text
                let right_edge = c.plotting_area().get_pixel_range().0.end;
                let (w, _) = text_size(&l.text, 12.0);
                if at.0 + 4 + w as i32 <= right_edge {
                    label(
                        root,
                        &l.text,
                        (at.0 + 4, at.1 + 4),
                        12.0,
                        HPos::Left,
                        VPos::Top,
                        BUDGET,
                    )?;
                } else {
                    label(
                        root,
                        &l.text,
                        (at.0 - 4, at.1 + 4),
                        12.0,
                        HPos::Right,
                        VPos::Top,
                        BUDGET,
                    )?;
                }
            }
        }
        for l in &p.y_limits {
            if let Some(t) = y.axis.t(l.value) {
                draw_line(
                    &mut c,
                    &x,
                    &y,
                    &[(x.lo, t), (x.hi, t)],
                    BUDGET.stroke_width(1),
                    true,
                )?;
                let at = c.backend_coord(&(x.hi, t));
                label(
                    root,
                    &l.text,
                    (at.0 - 4, at.1 - 3),
                    12.0,
                    HPos::Right,
                    VPos::Bottom,
                    BUDGET,
                )?;
            }
        }
        if let Some((name, a, b)) = &p.reference {
            if let (Some(tx), Some(ty)) = (x.axis.t(*a), y.axis.t(*b)) {
                let at = c.backend_coord(&(tx, ty));
                draw_marker(root, at, Shape::Circle, BLACK.to_rgba(), false, 6)?;
                draw_marker(root, at, Shape::Circle, BLACK.to_rgba(), false, 7)?;
                label(
                    root,
                    name,
                    (at.0 + 9, at.1 - 9),
                    12.0,
                    HPos::Left,
                    VPos::Bottom,
                    BLACK,
                )?;
            }
        }
        let inside = c.plotting_area().get_pixel_range();
        legend(root, inside, Corner::BottomLeft, &entries, 2, 12.0)?;
        Ok(())
    })
}
