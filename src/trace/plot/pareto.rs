//! The search's Pareto front as a scatter matrix: one panel for every pair of objectives
//! (lower triangle: objective `j` across, objective `i` up, `j < i`), every evaluated
//! candidate faint, the front's members bold, the same axis (unit, range) for an objective
//! in every panel. With one objective, its values against evaluation order.

use super::{
    Axis, Corner, Key, OrPlotError, Scale, Shape, Tip, chart, draw_marker, legend, legend_size,
    render_with_tips, text_size,
};
use crate::trace::TraceError;
use plotters::prelude::*;

/// What the scatter matrix shows; values in base units (seconds, joules, nats, ...).
#[derive(Clone, Debug)]
pub struct ParetoPlot {
    pub title: String,
    /// Objective names (`loss`, `ttft`, `tpot`, `energy`, ...), in column order.
    pub objectives: Vec<String>,
    /// Every evaluated candidate's objectives, with whether it met the constraints.
    pub evaluated: Vec<(Vec<f64>, bool)>,
    /// The front's members' objectives.
    pub front: Vec<Vec<f64>>,
}

const CELL: u32 = 330;
const TITLE_H: u32 = 46;
const FAINT: RGBColor = RGBColor(120, 150, 190);
const INFEASIBLE: RGBColor = RGBColor(185, 185, 185);
const FRONT: RGBColor = RGBColor(214, 39, 40);

/// Renders the matrix.
pub fn pareto_svg(p: &ParetoPlot) -> Result<String, TraceError> {
    let n = p.objectives.len();
    let column = |k: usize| -> Vec<f64> {
        p.evaluated
            .iter()
            .map(|(v, _)| v.get(k).copied().unwrap_or(f64::NAN))
            .chain(p.front.iter().map(|v| v.get(k).copied().unwrap_or(f64::NAN)))
            .filter(|v| v.is_finite())
            .collect()
    };
    let axes: Vec<Axis> = (0..n)
        .map(|k| Axis::for_metric(&p.objectives[k], &column(k)))
        .collect();
    let scales: Vec<Scale> = (0..n)
        .map(|k| Scale::of(axes[k].clone(), column(k), 0.06))
        .collect();
    let mut entries = vec![
        (
            Key::Mark {
                shape: Shape::Circle,
                color: FAINT.mix(0.5),
                filled: true,
                size: 2,
            },
            format!(
                "evaluated, meets the constraints ({})",
                p.evaluated.iter().filter(|e| e.1).count()
            ),
        ),
        (
            Key::Mark {
                shape: Shape::Circle,
                color: FRONT.to_rgba(),
                filled: true,
                size: 4,
            },
            format!("Pareto front ({})", p.front.len()),
        ),
    ];
    if p.evaluated.iter().any(|e| !e.1) {
        entries.insert(
            1,
            (
                Key::Mark {
                    shape: Shape::Circle,
                    color: INFEASIBLE.mix(0.6),
                    filled: true,
                    size: 2,
                },
                format!(
                    "evaluated, violates a constraint ({})",
                    p.evaluated.iter().filter(|e| !e.1).count()
                ),
            ),
        );
    }
    // The pairs, in a (n-1) x (n-1) lower-triangular grid; one objective: one panel.
    let side = n.saturating_sub(1).max(1) as u32;
    let (lw, lh) = legend_size(&entries, 1, 13.0);
    let title_w = text_size(&p.title, 18.0).0 + 40;
    let legend_below = n < 3;
    let width = (side * CELL).max(title_w).max(lw + 40);
    let height = TITLE_H + side * CELL + if legend_below { lh + 20 } else { 0 };

    render_with_tips(width, height, |root, tips| {
        let (head, rest) = root.split_vertically(TITLE_H);
        head.draw(&Text::new(
            p.title.clone(),
            ((width / 2) as i32, (TITLE_H / 2) as i32),
            super::font(18.0).pos(super::Pos::new(super::HPos::Center, super::VPos::Center)),
        ))
        .plot()?;
        let (grid, bottom) = rest.split_vertically(side * CELL);
        let cells = grid.split_evenly((side as usize, side as usize));
        let plotted: Vec<(usize, usize)> = if n >= 2 {
            (1..n).flat_map(|i| (0..i).map(move |j| (i, j))).collect()
        } else {
            vec![]
        };
        for &(i, j) in &plotted {
            let cell = &cells[(i - 1) * side as usize + j];
            let (x, y) = (&scales[j], &scales[i]);
            let c = chart(cell, x, y, None, 11.0, 12.0, 8)?;
            let place = |v: &[f64]| -> Option<(f64, f64)> {
                let tx = x.axis.t(*v.get(j)?)?;
                let ty = y.axis.t(*v.get(i)?)?;
                (x.contains(tx) && y.contains(ty)).then_some((tx, ty))
            };
            for (v, ok) in &p.evaluated {
                if let Some(at) = place(v) {
                    let colour = if *ok { FAINT.mix(0.45) } else { INFEASIBLE.mix(0.5) };
                    draw_marker(root, c.backend_coord(&at), Shape::Circle, colour, true, 2)?;
                }
            }
            for (k, v) in p.front.iter().enumerate() {
                if let Some(at) = place(v) {
                    let px = c.backend_coord(&at);
                    draw_marker(root, px, Shape::Circle, FRONT.to_rgba(), true, 4)?;
                    draw_marker(root, px, Shape::Circle, RGBColor(120, 0, 0).to_rgba(), false, 4)?;
                    let values: Vec<String> = axes
                        .iter()
                        .zip(v)
                        .map(|(a, x)| format!("{} {} {}", a.name, super::tick_label(x * a.scale), a.unit))
                        .collect();
                    tips.push(Tip {
                        x: px.0,
                        y: px.1,
                        r: 5,
                        text: format!("front member {k}: {}", values.join(", ")),
                    });
                }
            }
        }
        if n == 1 {
            let values = column(0);
            let x = Scale::new(
                Axis::new("evaluation", "order", 1.0, false),
                0.0,
                values.len() as f64,
                0.02,
            );
            let y = &scales[0];
            let c = chart(&cells[0], &x, y, None, 11.0, 12.0, 8)?;
            for (k, (v, ok)) in p.evaluated.iter().enumerate() {
                if let Some(ty) = v.first().and_then(|v| y.axis.t(*v)) {
                    let colour = if *ok { FAINT.mix(0.45) } else { INFEASIBLE.mix(0.5) };
                    draw_marker(
                        root,
                        c.backend_coord(&(k as f64, ty)),
                        Shape::Circle,
                        colour,
                        true,
                        2,
                    )?;
                }
            }
            for v in &p.front {
                if let Some(ty) = v.first().and_then(|v| y.axis.t(*v)) {
                    draw_marker(
                        root,
                        c.backend_coord(&(x.lo, ty)),
                        Shape::Circle,
                        FRONT.to_rgba(),
                        true,
                        4,
                    )?;
                }
            }
        }
        if legend_below {
            let (bx, by) = bottom.get_pixel_range();
            legend(root, (bx, by), Corner::TopLeft, &entries, 1, 13.0)?;
        } else {
            // the empty upper-right triangle
            let (gx, gy) = grid.get_pixel_range();
            legend(root, (gx, gy), Corner::TopRight, &entries, 1, 13.0)?;
        }
        Ok(())
    })
}
