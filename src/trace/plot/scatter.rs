//! Predicted against measured, log-log: one panel per kind of quantity (time, throughput,
//! power, energy per token: rows of every phase that measure the same kind share a panel,
//! their phase told by the marker's shape), the ideal line `predicted = measured` and dashed
//! lines at +-25% (clipped to the axes), points coloured by software stack, filled for the
//! first series (e.g. uncalibrated) and hollow for a second (calibrated, held out).

use super::{
    Axis, Corner, HPos, Key, OrPlotError, PALETTE, Pos, Scale, Shape, VPos, chart, draw_line, draw_marker,
    legend, legend_size, render,
};
use crate::trace::TraceError;
use plotters::prelude::*;
use std::collections::BTreeMap;

/// One point, in its panel's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotPoint {
    /// The kind of quantity, e.g. `throughput`; one panel each.
    pub quantity: String,
    /// The panel's unit, e.g. `tokens/s`.
    pub unit: String,
    /// Colour key (the software stack).
    pub color_key: String,
    /// Shape key (the phase: decode, prefill, e2e, energy).
    pub shape_key: String,
    /// 0: filled, 1: hollow.
    pub series: usize,
    pub measured: f64,
    pub predicted: f64,
}

const SHAPES: [Shape; 4] = [Shape::Circle, Shape::Triangle, Shape::Square, Shape::Diamond];
const PANEL: u32 = 460;
const TITLE_H: u32 = 44;

fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Renders the plot; `title` heads it, `series` names the series (filled, hollow).
pub fn scatter_svg(points: &[PlotPoint], title: &str, series: &[&str]) -> Result<String, TraceError> {
    let mut panels: BTreeMap<(&str, &str), Vec<&PlotPoint>> = BTreeMap::new();
    for p in points {
        if p.measured > 0.0 && p.predicted > 0.0 && p.measured.is_finite() && p.predicted.is_finite() {
            panels
                .entry((p.quantity.as_str(), p.unit.as_str()))
                .or_default()
                .push(p);
        }
    }
    // throughput, time, power, energy: the usual reading order, others after
    let rank = |q: &str| {
        ["throughput", "time", "power", "energy per token"]
            .iter()
            .position(|x| *x == q)
            .unwrap_or(4)
    };
    let mut panels: Vec<((&str, &str), Vec<&PlotPoint>)> = panels.into_iter().collect();
    panels.sort_by_key(|((q, u), _)| (rank(q), *q, *u));
    let colours = distinct(points.iter().map(|p| p.color_key.as_str()));
    let shapes = distinct(points.iter().map(|p| p.shape_key.as_str()));
    let colour = |k: &str| PALETTE[colours.iter().position(|x| *x == k).unwrap_or(0) % PALETTE.len()];
    let shape = |k: &str| SHAPES[shapes.iter().position(|x| *x == k).unwrap_or(0) % SHAPES.len()];

    let grey = RGBColor(70, 70, 70);
    let mut entries: Vec<(Key, String)> = vec![
        (
            Key::Line {
                color: BLACK.to_rgba(),
                width: 1,
                dash: false,
            },
            "predicted = measured".into(),
        ),
        (
            Key::Line {
                color: RGBColor(120, 120, 120).to_rgba(),
                width: 1,
                dash: true,
            },
            "±25%".into(),
        ),
    ];
    for (i, s) in series.iter().enumerate() {
        entries.push((
            Key::Mark {
                shape: Shape::Circle,
                color: grey.to_rgba(),
                filled: i == 0,
                size: 4,
            },
            (*s).to_string(),
        ));
    }
    for s in &shapes {
        entries.push((
            Key::Mark {
                shape: shape(s),
                color: grey.to_rgba(),
                filled: true,
                size: 4,
            },
            format!("phase: {s}"),
        ));
    }
    for c in &colours {
        entries.push((Key::Swatch(colour(c).to_rgba()), format!("stack: {c}")));
    }
    let n = panels.len().max(1);
    let cols = n.min(3) as u32;
    let rows = n.div_ceil(3) as u32;
    let width = (cols * PANEL).max(760);
    let legend_cols = (width / 250).max(1) as usize;
    let (_, legend_h) = legend_size(&entries, legend_cols, 12.0);
    let height = TITLE_H + rows * PANEL + legend_h + 20;

    render(width, height, |root| {
        let (head, rest) = root.split_vertically(TITLE_H);
        head.draw(&Text::new(
            title.to_string(),
            ((width / 2) as i32, (TITLE_H / 2) as i32),
            super::font(18.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .plot()?;
        let (grid, bottom) = rest.split_vertically(rows * PANEL);
        let cells = grid.split_evenly((rows as usize, cols as usize));
        for (((quantity, unit), pts), cell) in panels.iter().zip(cells.iter()) {
            let values = pts.iter().flat_map(|p| [p.measured, p.predicted]);
            let t: Vec<f64> = values.map(f64::log10).collect();
            let lo = t.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let x = Scale::new(
                Axis::new(&format!("measured {quantity}"), unit, 1.0, true),
                lo,
                hi,
                0.06,
            );
            let y = Scale::new(
                Axis::new(&format!("predicted {quantity}"), unit, 1.0, true),
                lo,
                hi,
                0.06,
            );
            let caption = format!("{quantity} ({} rows)", pts.len());
            let mut c = chart(cell, &x, &y, Some((&caption, 15.0)), 12.0, 13.0, 10)?;
            let (a, b) = (x.lo.min(y.lo), x.hi.max(y.hi));
            draw_line(&mut c, &x, &y, &[(a, a), (b, b)], BLACK.stroke_width(1), false)?;
            for f in [1.25f64, 0.75] {
                let d = f.log10();
                draw_line(
                    &mut c,
                    &x,
                    &y,
                    &[(a, a + d), (b, b + d)],
                    RGBColor(120, 120, 120).stroke_width(1),
                    true,
                )?;
            }
            for p in pts {
                let at = c.backend_coord(&(p.measured.log10(), p.predicted.log10()));
                let col = colour(&p.color_key);
                if p.series == 0 {
                    draw_marker(root, at, shape(&p.shape_key), col.mix(0.7), true, 3)?;
                } else {
                    draw_marker(root, at, shape(&p.shape_key), col.to_rgba(), false, 4)?;
                }
            }
        }
        let (bx, by) = bottom.get_pixel_range();
        legend(root, (bx, by), Corner::TopLeft, &entries, legend_cols, 12.0)?;
        Ok(())
    })
}
