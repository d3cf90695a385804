//! A hand-written SVG scatter plot of predicted against measured values: one log-log panel
//! per kind of quantity, the ideal line `predicted = measured`, dashed lines at +-25%, points
//! coloured by software stack (hollow for a second series, e.g. calibrated predictions).

use std::collections::BTreeMap;
use std::fmt::Write;

/// One point: its panel (e.g. `decode tokens/s`), colour key (stack), series index (0 filled,
/// 1 hollow), measured and predicted values (both positive).
#[derive(Clone, Debug, PartialEq)]
pub struct PlotPoint {
    pub panel: String,
    pub color_key: String,
    pub series: usize,
    pub measured: f64,
    pub predicted: f64,
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the plot; `title` heads it, `series` names the series in the legend.
pub fn svg(points: &[PlotPoint], title: &str, series: &[&str]) -> String {
    let mut panels: BTreeMap<&str, Vec<&PlotPoint>> = BTreeMap::new();
    for p in points {
        if p.measured > 0.0 && p.predicted > 0.0 && p.measured.is_finite() && p.predicted.is_finite() {
            panels.entry(p.panel.as_str()).or_default().push(p);
        }
    }
    let keys: Vec<&str> = {
        let mut k: Vec<&str> = points.iter().map(|p| p.color_key.as_str()).collect();
        k.sort_unstable();
        k.dedup();
        k
    };
    let color = |k: &str| PALETTE[keys.iter().position(|x| *x == k).unwrap_or(0) % PALETTE.len()];
    let (pw, ph, margin) = (360.0, 360.0, 60.0);
    let cols = panels.len().clamp(1, 3);
    let rows = panels.len().div_ceil(cols).max(1);
    let legend_h = 24.0 + 18.0 * (keys.len() + series.len()) as f64;
    let width = cols as f64 * (pw + margin) + margin;
    let height = rows as f64 * (ph + margin + 20.0) + 50.0 + legend_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        width / 2.0,
        esc(title)
    );
    for (pi, (name, pts)) in panels.iter().enumerate() {
        let x0 = margin + (pi % cols) as f64 * (pw + margin);
        let y0 = 50.0 + (pi / cols) as f64 * (ph + margin + 20.0);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in pts {
            for v in [p.measured, p.predicted] {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        let (llo, lhi) = (
            (lo.log10() - 0.1).floor(),
            (hi.log10() + 0.1).ceil().max(lo.log10().floor() + 1.0),
        );
        let map_x = |v: f64| x0 + (v.log10() - llo) / (lhi - llo) * pw;
        let map_y = |v: f64| y0 + ph - (v.log10() - llo) / (lhi - llo) * ph;
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="middle">{} ({} rows)</text>"#,
            x0 + pw / 2.0,
            y0 - 8.0,
            esc(name),
            pts.len()
        );
        // Decade grid and labels.
        let mut d = llo as i32;
        while f64::from(d) <= lhi {
            let v = 10f64.powi(d);
            let (gx, gy) = (map_x(v), map_y(v));
            let _ = writeln!(
                s,
                r##"<line x1="{gx:.1}" y1="{y0:.1}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><line x1="{x0:.1}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#ddd"/>"##,
                y0 + ph,
                x0 + pw
            );
            let _ = writeln!(
                s,
                r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">1e{d}</text><text x="{:.1}" y="{:.1}" text-anchor="end">1e{d}</text>"#,
                y0 + ph + 14.0,
                x0 - 4.0,
                gy + 4.0
            );
            d += 1;
        }
        let (a, b) = (10f64.powf(llo), 10f64.powf(lhi));
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000" stroke-width="1.2"/>"##,
            map_x(a),
            map_y(a),
            map_x(b),
            map_y(b)
        );
        for f in [1.25, 0.75] {
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="4 3"/>"##,
                map_x(a),
                map_y(a * f),
                map_x(b),
                map_y(b * f)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">measured</text>"#,
            x0 + pw / 2.0,
            y0 + ph + 30.0
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">predicted</text>"#,
            x0 - 40.0,
            y0 + ph / 2.0
        );
        for p in pts {
            let c = color(&p.color_key);
            let (cx, cy) = (map_x(p.measured), map_y(p.predicted));
            if p.series == 0 {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="2.6" fill="{c}" fill-opacity="0.7"/>"#
                );
            } else {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="3" fill="none" stroke="{c}" stroke-width="1"/>"#
                );
            }
        }
    }
    // Legend.
    let ly = height - legend_h + 10.0;
    let _ = writeln!(
        s,
        r#"<text x="{margin}" y="{ly:.1}">solid line: predicted = measured; dashed: +-25%</text>"#
    );
    let mut y = ly + 18.0;
    for (i, name) in series.iter().enumerate() {
        let mark = if i == 0 {
            format!(
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#444"/>"##,
                margin + 4.0,
                y - 4.0
            )
        } else {
            format!(
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="none" stroke="#444"/>"##,
                margin + 4.0,
                y - 4.0
            )
        };
        let _ = writeln!(
            s,
            r#"{mark}<text x="{:.1}" y="{y:.1}">{}</text>"#,
            margin + 14.0,
            esc(name)
        );
        y += 18.0;
    }
    for k in &keys {
        let _ = writeln!(
            s,
            r#"<rect x="{margin}" y="{:.1}" width="9" height="9" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 9.0,
            color(k),
            margin + 14.0,
            esc(k)
        );
        y += 18.0;
    }
    s.push_str("</svg>\n");
    s
}
