//! Progress of long commands (sweep, search, validate hold-outs, surrogate cv) on standard
//! error, never on standard output or in a file: results are the same with or without it.
//!
//! - On a terminal: a bar (indicatif) with the count, the rate and the time left.
//! - Otherwise (a log file, a pipe, a Slurm job's output): one plain line every 5 s, e.g.
//!   `sweep: 45,056/11,232,000 grid points (0.4%), 31,744 candidates, 7,211 candidates/s, 25 min
//!   left`, and a closing line when any was printed.
//! - `--quiet` (any command) prints nothing.
//!
//! `LLMFORGE_PROGRESS=bar|lines|off` overrides the choice, `LLMFORGE_PROGRESS_SECONDS` the
//! interval between lines (the tests set 0 to get a line per update).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use llmforge::progress::Tick;
use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress at all.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

enum Mode {
    Off,
    Bar(ProgressBar),
    Lines(Duration),
}

struct State {
    done: u64,
    counted: u64,
    note: String,
    last_line: Instant,
    printed: bool,
    finished: bool,
}

/// The progress of one long computation: `total` units (`unit`, e.g. "grid points"), and
/// optionally a count of things whose rate is shown (`counting`, e.g. "candidates": a sweep's
/// rate counts candidates evaluated, not grid points passed).
pub struct Progress {
    mode: Mode,
    what: String,
    unit: &'static str,
    counting: Option<&'static str>,
    total: u64,
    started: Instant,
    state: Mutex<State>,
}

/// `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration for people: `42 s`, `7 min 5 s`, `2 h 13 min`.
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".into();
    }
    let s = seconds.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

fn mode() -> Mode {
    if QUIET.load(Ordering::Relaxed) {
        return Mode::Off;
    }
    let every = std::env::var("LLMFORGE_PROGRESS_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(5.0);
    let lines = Mode::Lines(Duration::from_secs_f64(every));
    match std::env::var("LLMFORGE_PROGRESS").as_deref() {
        Ok("off") => Mode::Off,
        Ok("lines") => lines,
        Ok("bar") => Mode::Bar(ProgressBar::hidden()),
        _ if std::io::stderr().is_terminal() => Mode::Bar(ProgressBar::hidden()),
        _ => lines,
    }
}

impl Progress {
    /// Starts showing the progress of `what` over `total` units.
    pub fn start(what: &str, total: u64, unit: &'static str) -> Progress {
        let mode = match mode() {
            Mode::Bar(_) => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template("{prefix} [{elapsed}] {wide_bar} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                bar.set_prefix(what.to_string());
                Mode::Bar(bar)
            }
            other => other,
        };
        let now = Instant::now();
        Progress {
            mode,
            what: what.to_string(),
            unit,
            counting: None,
            total,
            started: now,
            state: Mutex::new(State {
                done: 0,
                counted: 0,
                note: String::new(),
                last_line: now,
                printed: false,
                finished: false,
            }),
        }
    }

    /// The rate counts these (e.g. "candidates") instead of the units of the total.
    pub fn counting(mut self, what: &'static str) -> Progress {
        self.counting = Some(what);
        self
    }

    /// `done` of the total units are done, `counted` of the things the rate counts; `note` is
    /// shown after them (e.g. "front 24").
    pub fn update(&self, done: u64, counted: u64, note: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.done = done.min(self.total);
        s.counted = counted;
        if s.note != note {
            s.note = note.to_string();
        }
        match &self.mode {
            Mode::Off => {}
            Mode::Bar(bar) => {
                bar.set_position(s.done);
                bar.set_message(self.message(&s, false));
            }
            Mode::Lines(every) => {
                if s.last_line.elapsed() >= *every {
                    let line = format!("{}: {}\n", self.what, self.message(&s, true));
                    let _ = std::io::stderr().lock().write_all(line.as_bytes());
                    s.last_line = Instant::now();
                    s.printed = true;
                }
            }
        }
    }

    /// The rate and what is left, e.g. `31,744 candidates, 7,211 candidates/s, 25 min left`.
    fn message(&self, s: &State, with_count: bool) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut text = String::new();
        if with_count {
            text.push_str(&format!(
                "{}/{} {}",
                thousands(s.done),
                thousands(self.total),
                self.unit
            ));
            if self.total > 0 {
                text.push_str(&format!(" ({:.1}%)", 100.0 * s.done as f64 / self.total as f64));
            }
            text.push_str(", ");
        } else {
            text.push_str(self.unit);
            text.push_str(", ");
        }
        let (n, name) = match self.counting {
            Some(name) => {
                text.push_str(&format!("{} {name}, ", thousands(s.counted)));
                (s.counted, name)
            }
            None => (s.done, self.unit),
        };
        let rate = n as f64 / elapsed;
        if rate >= 10.0 {
            text.push_str(&format!("{} {name}/s", thousands(rate.round() as u64)));
        } else {
            text.push_str(&format!("{rate:.2} {name}/s"));
        }
        if s.done > 0 && s.done < self.total {
            let left = elapsed * (self.total - s.done) as f64 / s.done as f64;
            text.push_str(&format!(", {} left", duration(left)));
        }
        if !s.note.is_empty() {
            text.push_str(", ");
            text.push_str(&s.note);
        }
        text
    }

    /// The computation ended: the bar stays drawn as it is; after lines, one closing line.
    pub fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.finished {
            return;
        }
        s.finished = true;
        match &self.mode {
            Mode::Off => {}
            Mode::Bar(bar) => bar.abandon(),
            Mode::Lines(_) => {
                if s.printed {
                    let line = format!(
                        "{}: ended after {}: {}\n",
                        self.what,
                        duration(self.started.elapsed().as_secs_f64()),
                        self.message(&s, true)
                    );
                    let _ = std::io::stderr().lock().write_all(line.as_bytes());
                }
            }
        }
    }
}

/// A library [`Tick`] shown as the progress of `what` (in `unit`s): a fresh bar or series of
/// lines each time the computation starts over (told `done = 0`, or another total), e.g. once
/// per hold-out scheme.
pub fn tick(what: &str, unit: &'static str) -> Tick {
    let what = what.to_string();
    let current: Mutex<Option<Progress>> = Mutex::new(None);
    Tick::new(move |done, total| {
        let mut c = current.lock().unwrap_or_else(|p| p.into_inner());
        if done == 0 || c.as_ref().is_none_or(|p| p.total != total) {
            if let Some(p) = c.take() {
                p.finish();
            }
            *c = Some(Progress::start(&what, total, unit));
        }
        if let Some(p) = c.as_ref() {
            p.update(done, done, "");
            if done >= total {
                p.finish();
            }
        }
    })
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(14_700_000), "14,700,000");
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(425.0), "7 min 5 s");
        assert_eq!(duration(7980.0), "2 h 13 min");
    }
}
