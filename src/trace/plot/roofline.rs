//! The roofline: attained FLOP/s against arithmetic intensity (FLOP per DRAM byte), log-log.
//! The memory roof (DRAM bandwidth x intensity), one ceiling per distinct matrix peak
//! (precisions with the same peak share a line and say so: `fp8 = int8`), the vector units'
//! ceiling, and every operator at (its FLOPs / DRAM bytes, its FLOPs / time). Operators with
//! no DRAM traffic are drawn hollow at the right edge; operators without FLOPs cannot be
//! placed on a log axis and are counted in the note under the plot.

use super::{
    Axis, Corner, HPos, Key, OrPlotError, PALETTE, Pos, Scale, Shape, Tip, VPos, chart, draw_line,
    draw_marker, label, legend, legend_size, render_with_tips, si,
};
use crate::trace::TraceError;
use plotters::prelude::*;

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

/// A matrix ceiling: a precision's name and its peak FLOP/s.
#[derive(Clone, Debug, PartialEq)]
pub struct Ceiling {
    pub name: String,
    pub peak: f64,
}

/// What the roofline shows.
#[derive(Clone, Debug)]
pub struct RooflinePlot<'a> {
    pub title: String,
    pub ceilings: Vec<Ceiling>,
    /// FLOP/s of the vector units.
    pub vector_peak: f64,
    /// DRAM bytes/s.
    pub bandwidth: f64,
    /// What the memory roof's bandwidth is, when it needs saying (e.g. reads only).
    pub roof_note: Option<String>,
    pub points: &'a [RooflinePoint],
}

const W: u32 = 1000;
const H: u32 = 680;
const NOTE_H: u32 = 26;
const PREFILL: RGBColor = RGBColor(214, 39, 40);
const DECODE: RGBColor = RGBColor(31, 119, 180);

/// Ceilings with the same peak (within 0.1%) merged: (names joined by ` = `, peak), highest
/// first.
fn groups(ceilings: &[Ceiling]) -> Vec<(String, f64)> {
    let mut sorted: Vec<&Ceiling> = ceilings
        .iter()
        .filter(|c| c.peak > 0.0 && c.peak.is_finite())
        .collect();
    sorted.sort_by(|a, b| b.peak.total_cmp(&a.peak).then(a.name.cmp(&b.name)));
    let mut out: Vec<(Vec<String>, f64)> = Vec::new();
    for c in sorted {
        match out.last_mut() {
            Some((names, p)) if (*p - c.peak).abs() <= 1e-3 * *p => names.push(c.name.clone()),
            _ => out.push((vec![c.name.clone()], c.peak)),
        }
    }
    out.into_iter().map(|(n, p)| (n.join(" = "), p)).collect()
}

/// Renders the plot.
pub fn roofline_svg(p: &RooflinePlot) -> Result<String, TraceError> {
    let bw = p.bandwidth;
    let placed: Vec<&RooflinePoint> = p
        .points
        .iter()
        .filter(|q| q.flops > 0.0 && q.time > 0.0 && q.flops.is_finite() && q.time.is_finite())
        .collect();
    let unplaced = p.points.len() - placed.len();
    let groups = groups(&p.ceilings);
    let max_peak = groups.iter().map(|g| g.1).fold(p.vector_peak, f64::max);
    let min_peak = groups.iter().map(|g| g.1).fold(p.vector_peak, f64::min);
    let scale = 1.0;
    let x_axis = Axis::new("arithmetic intensity", "FLOP per DRAM byte", 1.0, true);
    let mut y_axis = Axis::new("attained performance", "FLOP/s", 1.0, true);
    y_axis.si = true;
    // the vector units share a line with a matrix ceiling of the same peak
    let vector_group = groups
        .iter()
        .position(|g| (g.1 - p.vector_peak).abs() <= 1e-3 * g.1);
    let intensities: Vec<f64> = placed
        .iter()
        .filter(|q| q.dram_bytes > 0.0)
        .map(|q| q.flops / q.dram_bytes)
        .collect();
    let i_lo = intensities.iter().copied().fold(min_peak / bw, f64::min) / 3.0;
    let i_hi = intensities.iter().copied().fold(max_peak / bw, f64::max) * 6.0;
    let perf_lo = placed.iter().map(|q| q.flops / q.time).fold(bw * i_lo, f64::min) / 2.0;

    // Legend entries, then room for the legend above the highest ceiling.
    let mut entries: Vec<(Key, String)> = vec![(
        Key::Line {
            color: BLACK.to_rgba(),
            width: 2,
            dash: false,
        },
        match &p.roof_note {
            Some(n) => format!("DRAM roof: {} ({n})", si(bw, "B/s")),
            None => format!("DRAM roof: {}", si(bw, "B/s")),
        },
    )];
    for (k, (name, peak)) in groups.iter().enumerate() {
        entries.push((
            Key::Line {
                color: PALETTE[(k + 2) % PALETTE.len()].to_rgba(),
                width: 2,
                dash: false,
            },
            if vector_group == Some(k) {
                format!(
                    "matrix {name} = vector units: {} (ridge {:.0} FLOP/B)",
                    si(*peak, "FLOP/s"),
                    peak / bw
                )
            } else {
                format!(
                    "matrix {name}: {} (ridge {:.0} FLOP/B)",
                    si(*peak, "FLOP/s"),
                    peak / bw
                )
            },
        ));
    }
    if vector_group.is_none() {
        entries.push((
            Key::Line {
                color: PALETTE[3].to_rgba(),
                width: 2,
                dash: true,
            },
            format!("vector units: {}", si(p.vector_peak, "FLOP/s")),
        ));
    }
    for (phase, colour) in [("prefill", PREFILL), ("decode", DECODE)] {
        for (unit, shape) in [("matrix", Shape::Circle), ("vector", Shape::Triangle)] {
            if placed.iter().any(|q| q.phase == phase && q.unit == unit) {
                entries.push((
                    Key::Mark {
                        shape,
                        color: colour.mix(0.75),
                        filled: true,
                        size: 4,
                    },
                    format!("{phase} {unit} op"),
                ));
            }
        }
    }
    if placed.iter().any(|q| q.dram_bytes <= 0.0) {
        entries.push((
            Key::Mark {
                shape: Shape::Circle,
                color: RGBColor(80, 80, 80).to_rgba(),
                filled: false,
                size: 4,
            },
            "hollow: no DRAM traffic (at the right edge)".into(),
        ));
    }
    let columns = 2;
    let (_, legend_h) = legend_size(&entries, columns, 12.0);
    let x = Scale::new(x_axis.clone(), i_lo.log10(), i_hi.log10(), 0.0);
    let y_lo = (perf_lo / scale).log10();
    let peak_t = (max_peak / scale).log10();
    // The plotting area's height, roughly (caption, x label area, margins); the legend band
    // takes `a` of it above the highest ceiling.
    let plot_h = (H - NOTE_H) as f64 - 40.0 - 60.0 - 20.0;
    let a = ((legend_h as f64 + 24.0) / plot_h).min(0.6);
    let y_hi = (peak_t - a * y_lo) / (1.0 - a);
    let y = Scale::new(y_axis.clone(), y_lo, y_hi, 0.0);

    render_with_tips(W, H, |root, tips| {
        let (main, note) = root.split_vertically(H - NOTE_H);
        let mut c = chart(&main, &x, &y, Some((&p.title, 18.0)), 13.0, 14.0, 12)?;
        let xr = (x.lo, x.hi);
        // memory roof, from the left edge to the highest ridge
        let roof = |i_t: f64| ((10f64.powf(i_t) * bw) / scale).log10();
        let top_ridge = (max_peak / bw).log10();
        draw_line(
            &mut c,
            &x,
            &y,
            &[(xr.0, roof(xr.0)), (top_ridge, roof(top_ridge))],
            BLACK.stroke_width(2),
            false,
        )?;
        let mut drawn_labels: Vec<i32> = Vec::new();
        for (k, (name, peak)) in groups.iter().enumerate() {
            let colour = PALETTE[(k + 2) % PALETTE.len()];
            let ridge = (peak / bw).log10();
            let level = (peak / scale).log10();
            draw_line(
                &mut c,
                &x,
                &y,
                &[(ridge, level), (xr.1, level)],
                colour.stroke_width(2),
                false,
            )?;
            let at = c.backend_coord(&(xr.1, level));
            if drawn_labels.iter().all(|l| (l - at.1).abs() >= 15) {
                let name = if vector_group == Some(k) {
                    format!("{name} = vector")
                } else {
                    name.clone()
                };
                label(
                    root,
                    &format!("{name} {}", si(*peak, "FLOP/s")),
                    (at.0 - 6, at.1 - 3),
                    12.0,
                    HPos::Right,
                    VPos::Bottom,
                    colour,
                )?;
                drawn_labels.push(at.1);
            }
        }
        if vector_group.is_none() {
            let vr = (p.vector_peak / bw).log10();
            let vl = (p.vector_peak / scale).log10();
            draw_line(
                &mut c,
                &x,
                &y,
                &[(vr, vl), (xr.1, vl)],
                PALETTE[3].stroke_width(2),
                true,
            )?;
        }
        for q in &placed {
            let colour = if q.phase == "prefill" { PREFILL } else { DECODE };
            let shape = if q.unit == "vector" {
                Shape::Triangle
            } else {
                Shape::Circle
            };
            let perf = ((q.flops / q.time) / scale).log10();
            let (it, filled) = if q.dram_bytes > 0.0 {
                ((q.flops / q.dram_bytes).log10(), true)
            } else {
                (xr.1 - (xr.1 - xr.0) * 0.01, false)
            };
            if !x.contains(it) || !y.contains(perf) {
                continue;
            }
            let at = c.backend_coord(&(it, perf));
            draw_marker(root, at, shape, colour.mix(0.75), filled, 4)?;
            tips.push(Tip {
                x: at.0,
                y: at.1,
                r: 4,
                text: format!(
                    "{} ({} {}): {}, {} DRAM, {} per run, {}",
                    q.label,
                    q.phase,
                    q.unit,
                    si(q.flops, "FLOP"),
                    si(q.dram_bytes, "B"),
                    si(q.time, "s"),
                    si(q.flops / q.time, "FLOP/s")
                ),
            });
        }
        let inside = c.plotting_area().get_pixel_range();
        legend(root, inside, Corner::TopLeft, &entries, columns, 12.0)?;
        let text = if unplaced > 0 {
            format!(
                "{} operators placed; {unplaced} without FLOPs (KV-cache writes, gathers) cannot be placed on a log axis.",
                placed.len()
            )
        } else {
            format!("{} operators placed.", placed.len())
        };
        note.draw(&Text::new(
            text,
            (16, (NOTE_H / 2) as i32),
            super::font(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .plot()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_peaks_share_a_ceiling() {
        let c = |n: &str, p: f64| Ceiling {
            name: n.into(),
            peak: p,
        };
        let g = groups(&[
            c("fp16", 989e12),
            c("fp8", 1979e12),
            c("int8", 1979e12),
            c("fp32", 67e12),
        ]);
        assert_eq!(
            g,
            vec![
                ("fp8 = int8".to_string(), 1979e12),
                ("fp16".to_string(), 989e12),
                ("fp32".to_string(), 67e12)
            ]
        );
    }
}
