//! Limited-memory BFGS with a strong-Wolfe line search (Nocedal & Wright 2006, algorithms 7.4,
//! 3.5 and 3.6), written here rather than taken from `argmin` (see the note in Cargo.toml).
//!
//! The minimiser is sequential and deterministic: the same objective, start and options give
//! bit-identical results. All buffers are allocated once per call to [`minimize`].

/// A differentiable objective: writes the gradient at `x` into `grad` and returns the value.
/// A non-finite return value marks `x` as outside the domain; the line search backs off.
pub trait Objective {
    fn dim(&self) -> usize;
    fn eval(&self, x: &[f64], grad: &mut [f64]) -> f64;
}

/// Stopping rules and memory size.
#[derive(Debug, Clone, Copy)]
pub struct LbfgsOptions {
    /// Number of (s, y) correction pairs kept.
    pub memory: usize,
    /// Maximum number of iterations (accepted steps).
    pub max_iter: usize,
    /// Stop when `max |g_i| <= gtol`.
    pub gtol: f64,
    /// Stop when the relative decrease `(f_prev - f) / |f_prev|` has stayed below `ftol` for
    /// `patience` consecutive iterations.
    pub ftol: f64,
    pub patience: usize,
    /// Maximum objective evaluations within one line search.
    pub max_linesearch: usize,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            memory: 10,
            max_iter: 2000,
            gtol: 0.0,
            ftol: 1e-11,
            patience: 3,
            max_linesearch: 40,
        }
    }
}

/// Why the minimiser stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The gradient fell below `gtol`.
    Gradient,
    /// The objective stopped decreasing (`ftol`, `patience`).
    NoProgress,
    /// `max_iter` reached.
    MaxIterations,
    /// No step with sufficient decrease along the steepest-descent direction either.
    LineSearch,
    /// The start point itself has a non-finite objective or gradient.
    NonFiniteStart,
}

/// The outcome of one minimisation.
#[derive(Debug, Clone)]
pub struct LbfgsResult {
    pub x: Vec<f64>,
    pub f: f64,
    pub iterations: usize,
    pub evaluations: usize,
    pub stop: StopReason,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

struct Workspace {
    s: Vec<f64>,
    y: Vec<f64>,
    rho: Vec<f64>,
    alpha: Vec<f64>,
    d: Vec<f64>,
    x_trial: Vec<f64>,
    g_trial: Vec<f64>,
    x_lo: Vec<f64>,
    g_lo: Vec<f64>,
}

/// One point on the line search: step length, value and directional derivative.
#[derive(Clone, Copy)]
struct LinePoint {
    a: f64,
    f: f64,
    dphi: f64,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm(a: &[f64]) -> f64 {
    a.iter().fold(0.0_f64, |m, v| m.max(v.abs()))
}

/// Minimiser of the cubic interpolating (a, f, dphi) at both ends, safeguarded into the inner
/// 80% of the bracket; bisection when the cubic is not usable.
fn interpolate(lo: LinePoint, hi: LinePoint) -> f64 {
    let (left, right) = if lo.a < hi.a { (lo.a, hi.a) } else { (hi.a, lo.a) };
    let width = right - left;
    let mid = 0.5 * (lo.a + hi.a);
    if !hi.f.is_finite() || !hi.dphi.is_finite() || width <= 0.0 {
        return mid;
    }
    let d1 = lo.dphi + hi.dphi - 3.0 * (lo.f - hi.f) / (lo.a - hi.a);
    let disc = d1 * d1 - lo.dphi * hi.dphi;
    if disc < 0.0 {
        return mid;
    }
    let d2 = (hi.a - lo.a).signum() * disc.sqrt();
    let denom = hi.dphi - lo.dphi + 2.0 * d2;
    if denom == 0.0 {
        return mid;
    }
    let a = hi.a - (hi.a - lo.a) * (hi.dphi + d2 - d1) / denom;
    if !a.is_finite() {
        return mid;
    }
    a.clamp(left + 0.1 * width, right - 0.1 * width)
}

enum Search {
    /// Accepted step; the new point and gradient are in `x_lo`/`g_lo`.
    Accepted(LinePoint),
    Failed,
}

/// Strong-Wolfe line search along `ws.d` from `x` (`origin`: a = 0, value, slope < 0).
fn line_search<O: Objective>(
    obj: &O,
    x: &[f64],
    origin: LinePoint,
    a_init: f64,
    opts: &LbfgsOptions,
    ws: &mut Workspace,
    evals: &mut usize,
) -> Search {
    let eval_at = |a: f64, ws: &mut Workspace, evals: &mut usize| -> LinePoint {
        for ((t, xi), di) in ws.x_trial.iter_mut().zip(x).zip(&ws.d) {
            *t = xi + a * di;
        }
        *evals += 1;
        let f = obj.eval(&ws.x_trial, &mut ws.g_trial);
        let dphi = dot(&ws.g_trial, &ws.d);
        if f.is_finite() && dphi.is_finite() {
            LinePoint { a, f, dphi }
        } else {
            LinePoint {
                a,
                f: f64::INFINITY,
                dphi: f64::NAN,
            }
        }
    };
    let keep = |ws: &mut Workspace| {
        ws.x_lo.copy_from_slice(&ws.x_trial);
        ws.g_lo.copy_from_slice(&ws.g_trial);
    };
    let (f0, dphi0) = (origin.f, origin.dphi);
    let mut prev = origin;
    let mut a = a_init;
    let mut used = 0;
    // Bracketing phase.
    let (mut lo, mut hi) = loop {
        if used >= opts.max_linesearch {
            return if prev.a > 0.0 {
                Search::Accepted(prev)
            } else {
                Search::Failed
            };
        }
        used += 1;
        let p = eval_at(a, ws, evals);
        if p.f > f0 + C1 * a * dphi0 || (prev.a > 0.0 && p.f >= prev.f) {
            break (prev, p);
        }
        if p.dphi.abs() <= -C2 * dphi0 {
            keep(ws);
            return Search::Accepted(p);
        }
        keep(ws);
        if p.dphi >= 0.0 {
            break (p, prev);
        }
        prev = p;
        a *= 4.0;
    };
    // Zoom phase: `lo` satisfies sufficient decrease (its point is in x_lo/g_lo unless a = 0).
    while used < opts.max_linesearch {
        let a = interpolate(lo, hi);
        if (hi.a - lo.a).abs() <= 1e-16 * lo.a.abs().max(hi.a.abs()).max(1e-300) {
            break;
        }
        used += 1;
        let p = eval_at(a, ws, evals);
        if p.f > f0 + C1 * a * dphi0 || p.f >= lo.f {
            hi = p;
        } else {
            keep(ws);
            if p.dphi.abs() <= -C2 * dphi0 {
                return Search::Accepted(p);
            }
            if p.dphi * (hi.a - lo.a) >= 0.0 {
                hi = lo;
            }
            lo = p;
        }
    }
    if lo.a > 0.0 && lo.f < f0 {
        Search::Accepted(lo)
    } else {
        Search::Failed
    }
}

/// Minimise `obj` from `x0`.
pub fn minimize<O: Objective>(obj: &O, x0: &[f64], opts: &LbfgsOptions) -> LbfgsResult {
    let n = obj.dim();
    debug_assert_eq!(x0.len(), n);
    let m = opts.memory.max(1);
    let mut ws = Workspace {
        s: vec![0.0; m * n],
        y: vec![0.0; m * n],
        rho: vec![0.0; m],
        alpha: vec![0.0; m],
        d: vec![0.0; n],
        x_trial: vec![0.0; n],
        g_trial: vec![0.0; n],
        x_lo: vec![0.0; n],
        g_lo: vec![0.0; n],
    };
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut evaluations = 1;
    let mut f = obj.eval(&x, &mut g);
    if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return LbfgsResult {
            x,
            f: f64::INFINITY,
            iterations: 0,
            evaluations,
            stop: StopReason::NonFiniteStart,
        };
    }
    // Ring buffer of correction pairs: `stored` valid pairs, newest at index `head - 1`.
    let mut stored = 0usize;
    let mut head = 0usize;
    let mut gamma = 1.0;
    let mut slow = 0usize;
    let mut iterations = 0usize;
    let stop = loop {
        if inf_norm(&g) <= opts.gtol {
            break StopReason::Gradient;
        }
        if iterations >= opts.max_iter {
            break StopReason::MaxIterations;
        }
        // Two-loop recursion: d = -H g.
        ws.d.copy_from_slice(&g);
        for k in 0..stored {
            let j = (head + m - 1 - k) % m;
            let a = ws.rho[j] * dot(&ws.s[j * n..(j + 1) * n], &ws.d);
            ws.alpha[j] = a;
            for i in 0..n {
                ws.d[i] -= a * ws.y[j * n + i];
            }
        }
        for v in ws.d.iter_mut() {
            *v *= gamma;
        }
        for k in (0..stored).rev() {
            let j = (head + m - 1 - k) % m;
            let b = ws.rho[j] * dot(&ws.y[j * n..(j + 1) * n], &ws.d);
            for i in 0..n {
                ws.d[i] += (ws.alpha[j] - b) * ws.s[j * n + i];
            }
        }
        for v in ws.d.iter_mut() {
            *v = -*v;
        }
        let mut dphi0 = dot(&g, &ws.d);
        if dphi0.is_nan() || dphi0 >= 0.0 {
            // Not a descent direction: drop the memory and use steepest descent.
            stored = 0;
            for (d, gi) in ws.d.iter_mut().zip(&g) {
                *d = -gi;
            }
            dphi0 = -dot(&g, &g);
        }
        let a_init = if stored == 0 {
            (1.0 / inf_norm(&ws.d)).min(1.0)
        } else {
            1.0
        };
        let mut search = line_search(
            obj,
            &x,
            LinePoint {
                a: 0.0,
                f,
                dphi: dphi0,
            },
            a_init,
            opts,
            &mut ws,
            &mut evaluations,
        );
        if matches!(search, Search::Failed) && stored > 0 {
            stored = 0;
            for (d, gi) in ws.d.iter_mut().zip(&g) {
                *d = -gi;
            }
            let dphi_sd = -dot(&g, &g);
            let a0 = (1.0 / inf_norm(&ws.d)).min(1.0);
            search = line_search(
                obj,
                &x,
                LinePoint {
                    a: 0.0,
                    f,
                    dphi: dphi_sd,
                },
                a0,
                opts,
                &mut ws,
                &mut evaluations,
            );
        }
        let Search::Accepted(p) = search else {
            break StopReason::LineSearch;
        };
        iterations += 1;
        // Correction pair s = x_new - x, y = g_new - g.
        let j = head;
        let mut sy = 0.0;
        let mut yy = 0.0;
        for i in 0..n {
            let si = ws.x_lo[i] - x[i];
            let yi = ws.g_lo[i] - g[i];
            ws.s[j * n + i] = si;
            ws.y[j * n + i] = yi;
            sy += si * yi;
            yy += yi * yi;
        }
        if sy > 1e-300 && yy > 0.0 {
            ws.rho[j] = 1.0 / sy;
            gamma = sy / yy;
            head = (head + 1) % m;
            stored = (stored + 1).min(m);
        }
        let rel = (f - p.f) / f.abs().max(1e-300);
        x.copy_from_slice(&ws.x_lo);
        g.copy_from_slice(&ws.g_lo);
        f = p.f;
        if rel <= opts.ftol {
            slow += 1;
            if slow >= opts.patience {
                break StopReason::NoProgress;
            }
        } else {
            slow = 0;
        }
    };
    LbfgsResult {
        x,
        f,
        iterations,
        evaluations,
        stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rosenbrock;
    impl Objective for Rosenbrock {
        fn dim(&self) -> usize {
            2
        }
        fn eval(&self, x: &[f64], g: &mut [f64]) -> f64 {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        }
    }

    #[test]
    fn rosenbrock_converges() {
        let r = minimize(
            &Rosenbrock,
            &[-1.2, 1.0],
            &LbfgsOptions {
                gtol: 1e-10,
                ..Default::default()
            },
        );
        assert!(
            (r.x[0] - 1.0).abs() < 1e-6 && (r.x[1] - 1.0).abs() < 1e-6,
            "{r:?}"
        );
        assert!(r.f < 1e-12);
    }

    /// A quadratic restricted to x > 0 (non-finite outside): the line search must back off.
    struct Walled;
    impl Objective for Walled {
        fn dim(&self) -> usize {
            1
        }
        fn eval(&self, x: &[f64], g: &mut [f64]) -> f64 {
            if x[0] <= 0.0 {
                g[0] = f64::NAN;
                return f64::NAN;
            }
            g[0] = 2.0 * (x[0] - 0.01) - 1e-3 / x[0];
            (x[0] - 0.01).powi(2) - 1e-3 * x[0].ln()
        }
    }

    #[test]
    fn non_finite_region_is_avoided() {
        let r = minimize(
            &Walled,
            &[5.0],
            &LbfgsOptions {
                gtol: 1e-12,
                ..Default::default()
            },
        );
        // minimum of (x-0.01)^2 - 1e-3 ln x: 2x^2 - 0.02x - 1e-3 = 0
        let want = (0.02 + (0.0004f64 + 0.008).sqrt()) / 4.0;
        assert!((r.x[0] - want).abs() < 1e-8, "{r:?} want {want}");
    }
}
