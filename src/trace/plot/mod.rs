//! Every plot the project writes, as SVG through plotters: the roofline ([`roofline_svg`]),
//! predicted against measured ([`scatter_svg`]), the sweep's loss frontier
//! ([`frontier_svg`]) and feasible region ([`region_svg`]), and the search's scatter matrix
//! of every pair of objectives ([`pareto_svg`]).
//!
//! Every plot has a title, axis labels with units, ticks and a legend. Text is measured with
//! the embedded DejaVu Sans (`assets/fonts/`, registered with plotters' `ab_glyph` backend),
//! so label areas are sized to their text and nothing is clipped without any system font;
//! the SVG names DejaVu Sans first, then common fallbacks narrower than it. Charts are built
//! in *transformed* coordinates (log10 of the value on a log axis), so every straight line
//! of a log-log plot is straight in the chart and is clipped to the axes here ([`clip`])
//! before drawing (plotters clamps out-of-range coordinates, which would bend lines). Labels
//! are escaped by plotters' SVG backend; the tests parse and render every plot with resvg.

mod frontier;
mod pareto;
mod region;
mod roofline;
mod scatter;

pub use frontier::{FrontierPlot, Limit, frontier_svg};
pub use pareto::{ParetoPlot, pareto_svg};
pub use region::{RegionCell, RegionPlot, region_svg};
pub use roofline::{Ceiling, RooflinePlot, RooflinePoint, roofline_svg};
pub use scatter::{PlotPoint, scatter_svg};

use super::TraceError;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::FontStyle;
pub(crate) use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

/// The font family written into every SVG: DejaVu Sans (the font every label is measured
/// with), then fallbacks that are narrower, so text never outgrows the space laid out for it.
pub const FONT_FAMILY: &str = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif";

/// DejaVu Sans 2.37 (Bitstream Vera license, `assets/fonts/LICENSE-DejaVu.txt`).
pub static FONT_TTF: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An invalid embedded font would make every draw fail with FontUnavailable, which is
        // reported as an error by `render`; nothing to do here.
        let _ = plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_TTF);
    });
}

/// The drawing area of an SVG plot.
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A chart in transformed coordinates with our own tick positions.
pub(crate) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;

/// A linear f64 coordinate with our own tick positions (bold) and grid lines (light).
#[derive(Clone, Debug)]
pub(crate) struct Ticked {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if span == 0.0 {
            return (limit.0 + limit.1) / 2;
        }
        let f = (v - self.lo) / span;
        let len = (limit.1 - limit.0) as f64;
        if len >= 0.0 {
            limit.0 + (len * f + 1e-3).floor() as i32
        } else {
            limit.0 + (len * f - 1e-3).ceil() as i32
        }
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Turns a plotters error into ours.
pub(crate) trait OrPlotError<T> {
    fn plot(self) -> Result<T, TraceError>;
}

impl<T, E: std::fmt::Display> OrPlotError<T> for Result<T, E> {
    fn plot(self) -> Result<T, TraceError> {
        self.map_err(|e| TraceError::Encode(format!("cannot draw the plot: {e}")))
    }
}

/// Draws a `width` x `height` SVG on a white background.
pub(crate) fn render(
    width: u32,
    height: u32,
    draw: impl FnOnce(&Area) -> Result<(), TraceError>,
) -> Result<String, TraceError> {
    render_with_tips(width, height, |area, _| draw(area))
}

/// A hover tooltip: a circle of radius `r` around pixel (`x`, `y`) showing `text`.
pub(crate) struct Tip {
    pub x: i32,
    pub y: i32,
    pub r: u32,
    pub text: String,
}

/// Like [`render`], with the tooltips the drawing collects laid over the plot as invisible
/// circles with a `<title>` (browsers show it on hover; renderers draw nothing).
pub(crate) fn render_with_tips(
    width: u32,
    height: u32,
    draw: impl FnOnce(&Area, &mut Vec<Tip>) -> Result<(), TraceError>,
) -> Result<String, TraceError> {
    register_font();
    let mut out = String::new();
    let mut tips = Vec::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).plot()?;
        draw(&root, &mut tips)?;
        root.present().plot()?;
    }
    if !tips.is_empty() {
        let end = out.rfind("</svg>").unwrap_or(out.len());
        let mut layer = String::from("<g fill=\"#000\" fill-opacity=\"0\">\n");
        for t in &tips {
            layer.push_str(&format!(
                "<circle cx=\"{}\" cy=\"{}\" r=\"{}\"><title>{}</title></circle>\n",
                t.x,
                t.y,
                t.r,
                xml_escape(&t.text)
            ));
        }
        layer.push_str("</g>\n");
        out.insert_str(end, &layer);
    }
    out.push('\n');
    Ok(out)
}

/// Escapes text for XML content and attributes.
fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// A text style of the plot font.
pub(crate) fn font(size: f64) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

/// Width and height of `text` at `size`, measured with the embedded font.
pub(crate) fn text_size(text: &str, size: f64) -> (u32, u32) {
    register_font();
    FontDesc::new(FontFamily::Name(FONT_FAMILY), size, FontStyle::Normal)
        .box_size(text)
        .unwrap_or(((size * 0.7 * text.chars().count() as f64) as u32, size as u32))
}

/// The colours of categorical series (Tableau 10, colour-blind friendlier than the primaries).
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Grid lines.
pub(crate) const GRID: RGBColor = RGBColor(225, 225, 225);
pub(crate) const GRID_LIGHT: RGBColor = RGBColor(243, 243, 243);

/// A quantity on an axis: its name, the unit it is shown in, the factor from the base unit
/// (seconds, joules, bytes) to that unit, and whether the axis is logarithmic.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub name: String,
    pub unit: String,
    pub scale: f64,
    pub log: bool,
    /// Tick labels with SI prefixes (`10 G`, `1 T`) for values spanning many decades.
    pub si: bool,
}

impl Axis {
    pub fn new(name: &str, unit: &str, scale: f64, log: bool) -> Axis {
        Axis {
            name: name.to_string(),
            unit: unit.to_string(),
            scale,
            log,
            si: false,
        }
    }

    /// `name (unit)`.
    pub fn label(&self) -> String {
        if self.unit.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.unit)
        }
    }

    /// A base-unit value in chart coordinates (display unit, log10 on a log axis); `None`
    /// when it cannot be placed (not finite, or not positive on a log axis).
    pub fn t(&self, base: f64) -> Option<f64> {
        let v = base * self.scale;
        if !v.is_finite() {
            None
        } else if self.log {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    }

    /// The display-unit value at a chart coordinate.
    pub fn display(&self, t: f64) -> f64 {
        if self.log { 10f64.powf(t) } else { t }
    }

    /// The axis of a search / sweep metric (`loss`, `ttft`, `tpot`, `latency`, `energy`,
    /// `params`, `weights`, `kv`), in a unit chosen from the largest of `values` (base units),
    /// logarithmic when the values span more than a factor of 30.
    pub fn for_metric(metric: &str, values: &[f64]) -> Axis {
        let finite: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let max = finite.iter().copied().fold(0.0, f64::max);
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let log = !finite.is_empty() && max / min > 30.0;
        let (name, unit, scale) = metric_unit(metric, max);
        Axis::new(name, unit, scale, log && metric != "loss")
    }
}

/// Display name, unit and scale of a metric whose largest value is `max` (base units).
pub fn metric_unit(metric: &str, max: f64) -> (&'static str, &'static str, f64) {
    let time = |name| {
        if max < 1e-3 {
            (name, "µs", 1e6)
        } else if max < 1.0 {
            (name, "ms", 1e3)
        } else {
            (name, "s", 1.0)
        }
    };
    match metric {
        "loss" => ("loss", "nats", 1.0),
        "ttft" => time("TTFT"),
        "tpot" => time("TPOT"),
        "latency" => time("latency"),
        "energy" => {
            if max < 1e-3 {
                ("energy / token", "µJ", 1e6)
            } else if max < 1.0 {
                ("energy / token", "mJ", 1e3)
            } else {
                ("energy / token", "J", 1.0)
            }
        }
        "params" => {
            if max >= 1e9 {
                ("parameters", "billions", 1e-9)
            } else {
                ("parameters", "millions", 1e-6)
            }
        }
        "weights" | "kv" => {
            let name = if metric == "kv" { "KV cache" } else { "weights" };
            if max >= 1e9 {
                (name, "GB", 1e-9)
            } else {
                (name, "MB", 1e-6)
            }
        }
        _ => ("value", "", 1.0),
    }
}

/// A number as a tick label: at most 4 significant digits, no trailing zeros, exponent
/// notation only beyond 1e6 and below 1e-3.
pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        let e = a.log10().floor() as i32;
        let m = v / 10f64.powi(e);
        let m = trim(&format!("{m:.2}"));
        return if m == "1" || m == "-1" {
            format!("{}1e{e}", if v < 0.0 { "-" } else { "" })
        } else {
            format!("{m}e{e}")
        };
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    trim(&format!("{v:.digits$}"))
}

/// A value with an SI prefix and 3 significant digits: `312 TFLOP/s`, `1.56 TB/s`, `4.2 µs`.
pub fn si(value: f64, unit: &str) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value} {unit}");
    }
    // 999.6 rounds to 3 digits as 1000: take the next prefix up
    let (scale, prefix) = crate::units::si_prefix(value.abs() * 1.0005);
    let prefix = if prefix == "u" { "µ" } else { prefix };
    let v = value / scale;
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 3) as usize;
    format!("{} {prefix}{unit}", trim(&format!("{v:.digits$}")))
}

fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// An axis with its range and ticks, in chart coordinates.
#[derive(Clone, Debug)]
pub(crate) struct Scale {
    pub axis: Axis,
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
    pub minor: Vec<f64>,
    /// Category names: tick `k + 0.5` is labelled `names[k]` (region maps), every
    /// `stride`-th one when they would not fit side by side.
    pub names: Vec<String>,
    pub stride: usize,
}

impl Scale {
    /// The scale covering chart coordinates `lo..hi` (padded by `pad` of the span), with
    /// round ticks.
    pub fn new(axis: Axis, lo: f64, hi: f64, pad: f64) -> Scale {
        let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() && lo <= hi {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        if hi - lo < 1e-12 {
            let d = if axis.log { 0.5 } else { lo.abs().max(1e-9) * 0.1 };
            lo -= d;
            hi += d;
        }
        let span = hi - lo;
        lo -= span * pad;
        hi += span * pad;
        let (ticks, minor) = if axis.log {
            log_ticks(lo, hi)
        } else {
            (linear_ticks(lo, hi), Vec::new())
        };
        Scale {
            axis,
            lo,
            hi,
            ticks,
            minor,
            names: Vec::new(),
            stride: 1,
        }
    }

    /// A categorical scale: `names[k]` at `k + 0.5`, over `0..names.len()`.
    pub fn categories(axis: Axis, names: Vec<String>) -> Scale {
        Scale {
            axis,
            lo: 0.0,
            hi: names.len().max(1) as f64,
            ticks: (0..names.len()).map(|k| k as f64 + 0.5).collect(),
            minor: Vec::new(),
            names,
            stride: 1,
        }
    }

    /// The scale of every placeable base-unit value in `values`.
    pub fn of(axis: Axis, values: impl IntoIterator<Item = f64>, pad: f64) -> Scale {
        let t: Vec<f64> = values.into_iter().filter_map(|v| axis.t(v)).collect();
        let lo = t.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Scale::new(axis, lo, hi, pad)
    }

    pub fn contains(&self, t: f64) -> bool {
        t >= self.lo && t <= self.hi
    }

    pub fn label_of(&self, t: f64) -> String {
        if self.names.is_empty() {
            let v = self.axis.display(t);
            if self.axis.si { si(v, "") } else { tick_label(v) }
        } else {
            let k = (t - 0.5).round().max(0.0) as usize;
            if k % self.stride.max(1) == 0 {
                self.names.get(k).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
    }

    /// The widest tick label at `size`.
    pub fn widest_label(&self, size: f64) -> u32 {
        self.ticks
            .iter()
            .map(|t| text_size(&self.label_of(*t), size).0)
            .max()
            .unwrap_or(0)
    }

    fn range(&self) -> Ticked {
        Ticked {
            lo: self.lo,
            hi: self.hi,
            bold: self.ticks.clone(),
            light: self.minor.clone(),
        }
    }
}

/// Round linear ticks (1, 2, 2.5, 5 x 10^k steps, 4 to 10 of them).
pub(crate) fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 8.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            // round away float noise (0.30000000000000004)
            (v / step).round() * step
        })
        .collect()
}

/// Log ticks in log10 coordinates: decades (every other one when there are many), or 1-2-5
/// when the range spans fewer than two decades; minor lines at the other integers.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (d0, d1) = (lo.floor() as i32, hi.ceil() as i32);
    let span = hi - lo;
    let mantissas: &[f64] = if span <= 1.2 {
        &[1.0, 2.0, 3.0, 5.0, 7.0]
    } else if span <= 2.6 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let every = if span > 12.0 { 2 } else { 1 };
    let mut ticks = Vec::new();
    let mut minor = Vec::new();
    for d in d0..=d1 {
        for m in 1..10 {
            let t = (m as f64 * 10f64.powi(d)).log10();
            if t < lo - 1e-9 || t > hi + 1e-9 {
                continue;
            }
            if mantissas.contains(&(m as f64)) && (m != 1 || (d - d0) % every == 0) {
                ticks.push(t);
            } else {
                minor.push(t);
            }
        }
    }
    (ticks, minor)
}

/// Sizes of the label areas around a chart.
pub(crate) struct Margins {
    pub left: u32,
    pub bottom: u32,
}

/// Label areas for tick labels (the widest of `y`'s) at `tick` size with axis names at `desc` size.
pub(crate) fn margins(y: &Scale, tick: f64, desc: f64) -> Margins {
    let (_, th) = text_size("0", tick);
    let (_, dh) = text_size("Ag", desc);
    Margins {
        left: y.widest_label(tick) + dh + 22,
        bottom: th + dh + 22,
    }
}

/// Builds a chart on `area` with the two scales, draws the grid, ticks and axis names.
pub(crate) fn chart<'a, 'b>(
    area: &'a Area<'b>,
    x: &Scale,
    y: &Scale,
    caption: Option<(&str, f64)>,
    tick: f64,
    desc: f64,
    margin: u32,
) -> Result<Chart<'a, 'b>, TraceError> {
    let m = margins(y, tick, desc);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(margin)
        .margin_right(margin + 8)
        .x_label_area_size(m.bottom)
        .y_label_area_size(m.left);
    if let Some((text, size)) = caption {
        builder.caption(text, font(size));
    }
    let mut chart = builder.build_cartesian_2d(x.range(), y.range()).plot()?;
    let xf = |t: &f64| x.label_of(*t);
    let yf = |t: &f64| y.label_of(*t);
    chart
        .configure_mesh()
        .x_labels(x.ticks.len().max(1))
        .y_labels(y.ticks.len().max(1))
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .x_desc(x.axis.label())
        .y_desc(y.axis.label())
        .label_style(font(tick))
        .axis_desc_style(font(desc))
        .bold_line_style(GRID)
        .light_line_style(GRID_LIGHT)
        .axis_style(BLACK)
        .draw()
        .plot()?;
    Ok(chart)
}

/// How a legend entry is drawn.
#[derive(Clone, Debug)]
pub(crate) enum Key {
    /// A line segment; `dash` draws it dashed.
    Line {
        color: RGBAColor,
        width: u32,
        dash: bool,
    },
    /// A marker.
    Mark {
        shape: Shape,
        color: RGBAColor,
        filled: bool,
        size: u32,
    },
    /// A colour swatch.
    Swatch(RGBAColor),
}

/// Marker shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Circle,
    Triangle,
    Square,
    Diamond,
}

/// Draws one marker centred at pixel `c` on `area`.
pub(crate) fn draw_marker(
    area: &Area,
    c: (i32, i32),
    shape: Shape,
    color: RGBAColor,
    filled: bool,
    size: u32,
) -> Result<(), TraceError> {
    let style = if filled {
        ShapeStyle::from(color).filled()
    } else {
        ShapeStyle::from(color).stroke_width(1)
    };
    let s = size as i32;
    match shape {
        Shape::Circle => area.draw(&Circle::new(c, size, style)).plot(),
        Shape::Square => area
            .draw(&Rectangle::new([(c.0 - s, c.1 - s), (c.0 + s, c.1 + s)], style))
            .plot(),
        Shape::Triangle => polygon(
            area,
            vec![(c.0, c.1 - s - 1), (c.0 + s + 1, c.1 + s), (c.0 - s - 1, c.1 + s)],
            style,
            filled,
        ),
        Shape::Diamond => polygon(
            area,
            vec![
                (c.0, c.1 - s - 1),
                (c.0 + s + 1, c.1),
                (c.0, c.1 + s + 1),
                (c.0 - s - 1, c.1),
            ],
            style,
            filled,
        ),
    }
}

/// A filled polygon, or its closed outline.
fn polygon(area: &Area, points: Vec<(i32, i32)>, style: ShapeStyle, filled: bool) -> Result<(), TraceError> {
    if filled {
        area.draw(&Polygon::new(points, style)).plot()
    } else {
        let mut closed = points.clone();
        closed.push(points[0]);
        area.draw(&PathElement::new(closed, style)).plot()
    }
}

/// Where a legend sits inside the plotting area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
}

/// Pixel size of a legend of `entries` in `columns` columns at text `size`.
pub(crate) fn legend_size(entries: &[(Key, String)], columns: usize, size: f64) -> (u32, u32) {
    let (cols, rows, col_w) = legend_grid(entries, columns, size);
    let row_h = (size * 1.6) as u32;
    (cols as u32 * col_w + 12, rows as u32 * row_h + 10)
}

fn legend_grid(entries: &[(Key, String)], columns: usize, size: f64) -> (usize, usize, u32) {
    let cols = columns.clamp(1, entries.len().max(1));
    let rows = entries.len().div_ceil(cols);
    let col_w = entries
        .iter()
        .map(|(_, t)| 34 + text_size(t, size).0 + 14)
        .max()
        .unwrap_or(0);
    (cols, rows, col_w)
}

/// Draws a boxed legend (entries fill columns left to right, row by row) in a corner of the
/// pixel rectangle `inside` (x range, y range).
pub(crate) fn legend(
    area: &Area,
    inside: (std::ops::Range<i32>, std::ops::Range<i32>),
    corner: Corner,
    entries: &[(Key, String)],
    columns: usize,
    size: f64,
) -> Result<(), TraceError> {
    if entries.is_empty() {
        return Ok(());
    }
    let (cols, _, col_w) = legend_grid(entries, columns, size);
    let (w, h) = legend_size(entries, columns, size);
    let (w, h) = (w as i32, h as i32);
    let inset = 8;
    let x0 = match corner {
        Corner::TopLeft | Corner::BottomLeft => inside.0.start + inset,
        Corner::TopRight => inside.0.end - inset - w,
    };
    let y0 = match corner {
        Corner::TopLeft | Corner::TopRight => inside.1.start + inset,
        Corner::BottomLeft => inside.1.end - inset - h,
    };
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        WHITE.mix(0.92).filled(),
    ))
    .plot()?;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        RGBColor(150, 150, 150).stroke_width(1),
    ))
    .plot()?;
    let row_h = (size * 1.6) as i32;
    for (k, (key, text)) in entries.iter().enumerate() {
        let (col, row) = ((k % cols) as i32, (k / cols) as i32);
        let x = x0 + 8 + col * col_w as i32;
        let y = y0 + 5 + row * row_h + row_h / 2;
        match key {
            Key::Line { color, width, dash } => {
                let style = ShapeStyle::from(*color).stroke_width(*width);
                if *dash {
                    for (a, b) in [(0, 7), (10, 17), (20, 26)] {
                        area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], style))
                            .plot()?;
                    }
                } else {
                    area.draw(&PathElement::new(vec![(x, y), (x + 26, y)], style))
                        .plot()?;
                }
            }
            Key::Mark {
                shape,
                color,
                filled,
                size,
            } => draw_marker(area, (x + 13, y), *shape, *color, *filled, *size)?,
            Key::Swatch(color) => {
                area.draw(&Rectangle::new([(x + 6, y - 6), (x + 20, y + 6)], color.filled()))
                    .plot()?;
            }
        }
        area.draw(&Text::new(
            text.clone(),
            (x + 34, y),
            font(size).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .plot()?;
    }
    Ok(())
}

/// Draws `text` at pixel `at` with the given anchor.
pub(crate) fn label(
    area: &Area,
    text: &str,
    at: (i32, i32),
    size: f64,
    h: HPos,
    v: VPos,
    color: RGBColor,
) -> Result<(), TraceError> {
    area.draw(&Text::new(
        text.to_string(),
        at,
        font(size).color(&color).pos(Pos::new(h, v)),
    ))
    .plot()
}

/// A polyline in chart coordinates, clipped to the chart, solid or dashed.
pub(crate) fn draw_line(
    chart: &mut Chart,
    x: &Scale,
    y: &Scale,
    points: &[(f64, f64)],
    style: ShapeStyle,
    dash: bool,
) -> Result<(), TraceError> {
    for piece in clip_path(points, (x.lo, x.hi), (y.lo, y.hi)) {
        if dash {
            chart
                .draw_series(DashedLineSeries::new(piece, 7, 5, style))
                .plot()?;
        } else {
            chart.draw_series(LineSeries::new(piece, style)).plot()?;
        }
    }
    Ok(())
}

/// Clips the segment a-b (chart coordinates) to the rectangle; `None` when it lies outside.
pub(crate) fn clip(a: (f64, f64), b: (f64, f64), x: (f64, f64), y: (f64, f64)) -> Option<[(f64, f64); 2]> {
    // Liang-Barsky.
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let mut t0: f64 = 0.0;
    let mut t1: f64 = 1.0;
    for (p, q) in [
        (-dx, a.0 - x.0),
        (dx, x.1 - a.0),
        (-dy, a.1 - y.0),
        (dy, y.1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    (t0 <= t1).then_some([(a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy)])
}

/// Clips a polyline to the rectangle, giving its visible pieces.
pub(crate) fn clip_path(points: &[(f64, f64)], x: (f64, f64), y: (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for w in points.windows(2) {
        match clip(w[0], w[1], x, y) {
            Some([p, q]) => {
                if current.last() != Some(&p) {
                    if current.len() > 1 {
                        pieces.push(std::mem::take(&mut current));
                    }
                    current.clear();
                    current.push(p);
                }
                current.push(q);
            }
            None => {
                if current.len() > 1 {
                    pieces.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    if current.len() > 1 {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.1), "0.1");
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(12345.0), "12345");
        assert_eq!(tick_label(1e7), "1e7");
        assert_eq!(tick_label(2e-5), "2e-5");
        assert_eq!(tick_label(0.30000000000000004), "0.3");
    }

    #[test]
    fn si_values_have_three_digits() {
        assert_eq!(si(312e12, "FLOP/s"), "312 TFLOP/s");
        assert_eq!(si(2.039e12, "B/s"), "2.04 TB/s");
        assert_eq!(si(19.5e12, "FLOP/s"), "19.5 TFLOP/s");
        assert_eq!(si(4e9, "B/s"), "4 GB/s");
    }

    #[test]
    fn linear_ticks_are_round_and_inside() {
        let t = linear_ticks(2.63, 3.91);
        assert!(t.len() >= 4 && t.len() <= 10, "{t:?}");
        assert!(t.iter().all(|v| (2.63..=3.91).contains(v)));
        assert_eq!(tick_label(t[0]), "2.8");
    }

    #[test]
    fn log_ticks_cover_decades() {
        let (t, minor) = log_ticks(-1.2, 3.4);
        assert_eq!(log_ticks(-0.6, 1.4).0.len(), 6, "1-2-5 over two decades");
        let labels: Vec<String> = t.iter().map(|v| tick_label(10f64.powf(*v))).collect();
        assert_eq!(labels, ["0.1", "1", "10", "100", "1000"]);
        assert!(!minor.is_empty());
    }

    #[test]
    fn clipping_keeps_lines_straight_inside_the_box() {
        let c = clip((-1.0, -1.0), (3.0, 3.0), (0.0, 2.0), (0.0, 1.0)).unwrap();
        assert_eq!(c, [(0.0, 0.0), (1.0, 1.0)]);
        assert!(clip((-1.0, 5.0), (3.0, 5.0), (0.0, 2.0), (0.0, 1.0)).is_none());
        let p = clip_path(&[(-1.0, 0.5), (0.5, 0.5), (0.5, 3.0)], (0.0, 1.0), (0.0, 1.0));
        assert_eq!(p, vec![vec![(0.0, 0.5), (0.5, 0.5), (0.5, 1.0)]]);
    }
}
