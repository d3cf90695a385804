//! The sweep's feasible region: a heat map over two grid axes, each cell coloured by the best
//! loss among its candidates that meet every budget (grey: none does), with a colour scale.

use super::{
    Axis, Corner, HPos, Key, OrPlotError, Pos, Scale, VPos, chart, legend, legend_size, linear_ticks, render,
    text_size, tick_label,
};
use crate::trace::TraceError;
use plotters::prelude::*;

/// One cell: its column and row (indices into the labels), counts and the best feasible
/// value.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionCell {
    pub x: usize,
    pub y: usize,
    pub candidates: u64,
    pub feasible: u64,
    pub best: Option<f64>,
}

/// What the region map shows.
#[derive(Clone, Debug)]
pub struct RegionPlot {
    pub title: String,
    pub x_name: String,
    pub y_name: String,
    pub x_labels: Vec<String>,
    pub y_labels: Vec<String>,
    pub cells: Vec<RegionCell>,
    /// What the colour shows, with its unit, e.g. `best feasible loss (nats)` (the legend).
    pub value: String,
    /// The colour bar's short heading, e.g. `loss (nats)`.
    pub bar: String,
}

const NONE: RGBColor = RGBColor(215, 215, 215);
const BAR_W: u32 = 150;

/// Viridis, sampled at 9 points (matplotlib's map, public domain), interpolated linearly.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// The colour of `t` in [0, 1].
pub(crate) fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let f = t * (VIRIDIS.len() - 1) as f64;
    let k = (f.floor() as usize).min(VIRIDIS.len() - 2);
    let r = f - k as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * r).round() as u8;
    let (a, b) = (VIRIDIS[k], VIRIDIS[k + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Renders the map.
pub fn region_svg(p: &RegionPlot) -> Result<String, TraceError> {
    let (nx, ny) = (p.x_labels.len().max(1), p.y_labels.len().max(1));
    // cells up to 60 x 40 px, the map at least 360 x 220 px
    let cw = (720.0 / nx as f64).clamp(6.0, 60.0).max(360.0 / nx as f64);
    let ch = (480.0 / ny as f64).clamp(6.0, 40.0).max(220.0 / ny as f64);
    let mut x = Scale::categories(Axis::new(&p.x_name, "", 1.0, false), p.x_labels.clone());
    let y = Scale::categories(Axis::new(&p.y_name, "", 1.0, false), p.y_labels.clone());
    let widest = p.x_labels.iter().map(|l| text_size(l, 12.0).0).max().unwrap_or(0) as f64;
    x.stride = ((widest + 8.0) / cw).ceil().max(1.0) as usize;
    let values: Vec<f64> = p.cells.iter().filter_map(|c| c.best).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let span = if hi > lo { hi - lo } else { 1.0 };
    let entries = vec![
        (
            Key::Swatch(viridis(0.5).to_rgba()),
            format!("colour: {}", p.value),
        ),
        (
            Key::Swatch(NONE.to_rgba()),
            "no candidate meets every budget".to_string(),
        ),
    ];
    let (legend_w, legend_h) = legend_size(&entries, 2, 12.0);
    let margins = super::margins(&y, 12.0, 14.0);
    let plot_w = cw * nx as f64;
    let plot_h = ch * ny as f64;
    let title_w = text_size(&p.title, 17.0).0 as f64 + 40.0;
    let width = (margins.left as f64 + plot_w + 40.0 + BAR_W as f64)
        .max(title_w)
        .max(legend_w as f64 + 30.0)
        .max(560.0) as u32;
    let height = (40.0 + 24.0 + plot_h + margins.bottom as f64 + 24.0 + legend_h as f64 + 12.0) as u32;

    render(width, height, |root| {
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(
            p.title.clone(),
            ((width / 2) as i32, 22),
            super::font(17.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .plot()?;
        let (_, body) = body.split_vertically(24);
        let (top, bottom) = body.split_vertically(height - 64 - legend_h - 12);
        let (left, bar) = top.split_horizontally(width - BAR_W);
        let mut c = chart(&left, &x, &y, None, 12.0, 14.0, 12)?;
        c.draw_series(p.cells.iter().map(|cell| {
            let colour = match cell.best {
                Some(v) => viridis((v - lo) / span),
                None => NONE,
            };
            let (x0, y0) = (cell.x as f64, cell.y as f64);
            Rectangle::new([(x0, y0), (x0 + 1.0, y0 + 1.0)], colour.filled())
        }))
        .plot()?;
        c.draw_series(p.cells.iter().map(|cell| {
            let (x0, y0) = (cell.x as f64, cell.y as f64);
            Rectangle::new([(x0, y0), (x0 + 1.0, y0 + 1.0)], WHITE.stroke_width(1))
        }))
        .plot()?;
        // colour scale, as tall as the plotting area, its heading above it
        let (_, yr) = c.plotting_area().get_pixel_range();
        let (bx, _) = bar.get_pixel_range();
        let x0 = bx.start + 16;
        let (top_px, bottom_px) = (yr.start, yr.end);
        root.draw(&Text::new(
            p.bar.clone(),
            (x0, top_px - 8),
            super::font(12.0).pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))
        .plot()?;
        if values.is_empty() {
            root.draw(&Text::new(
                "no feasible cell".to_string(),
                (x0, (top_px + bottom_px) / 2),
                super::font(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .plot()?;
        } else {
            let steps = 64;
            for k in 0..steps {
                let f0 = k as f64 / steps as f64;
                let f1 = (k + 1) as f64 / steps as f64;
                let y0 = bottom_px - (f0 * (bottom_px - top_px) as f64) as i32;
                let y1 = bottom_px - (f1 * (bottom_px - top_px) as f64) as i32;
                root.draw(&Rectangle::new(
                    [(x0, y1), (x0 + 18, y0)],
                    viridis((f0 + f1) / 2.0).filled(),
                ))
                .plot()?;
            }
            root.draw(&Rectangle::new(
                [(x0, top_px), (x0 + 18, bottom_px)],
                BLACK.stroke_width(1),
            ))
            .plot()?;
            for t in linear_ticks(lo, lo + span) {
                let f = (t - lo) / span;
                let py = bottom_px - (f * (bottom_px - top_px) as f64) as i32;
                root.draw(&PathElement::new(
                    vec![(x0 + 18, py), (x0 + 23, py)],
                    BLACK.stroke_width(1),
                ))
                .plot()?;
                root.draw(&Text::new(
                    tick_label(t),
                    (x0 + 26, py),
                    super::font(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .plot()?;
            }
        }
        let (lx, ly) = bottom.get_pixel_range();
        legend(root, (lx, ly), Corner::TopLeft, &entries, 2, 12.0)?;
        Ok(())
    })
}
