//! Chrome Trace Event Format (JSON object form): one `"X"` (complete) event per op interval,
//! `ts` and `dur` in microseconds, `pid` 1 for prefill and 2 for decode, one `tid` per
//! resource (matrix, vector, DMA, DRAM read, DRAM write), named by `"M"` metadata events.
//! Opens in Perfetto (ui.perfetto.dev) and chrome://tracing.

use crate::sim::{OpEvent, PhaseKind, Resource, Sink};
use crate::units::Seconds;
use std::fmt::Write as _;

/// A [`Sink`] that renders events as they arrive (nothing is kept but the text).
#[derive(Clone, Debug)]
pub struct ChromeTrace {
    body: String,
    events: u64,
}

impl Default for ChromeTrace {
    fn default() -> Self {
        Self::new()
    }
}

fn pid(p: PhaseKind) -> u32 {
    match p {
        PhaseKind::Prefill => 1,
        PhaseKind::Decode => 2,
    }
}

fn tid(r: Resource) -> u32 {
    Resource::ALL
        .iter()
        .position(|x| *x == r)
        .map_or(0, |i| i as u32 + 1)
}

/// JSON string escaping for the few characters labels could carry.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = writeln!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

impl ChromeTrace {
    pub fn new() -> ChromeTrace {
        let mut body = String::new();
        for phase in [PhaseKind::Prefill, PhaseKind::Decode] {
            let _ = writeln!(
                body,
                "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"tid\":0,\"args\":{{\"name\":\"{}\"}}}},",
                pid(phase),
                phase.name()
            );
            for r in Resource::ALL {
                let _ = writeln!(
                    body,
                    "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":\"{}\"}}}},",
                    pid(phase),
                    tid(r),
                    r.name()
                );
            }
        }
        ChromeTrace { body, events: 0 }
    }

    /// Number of interval events received.
    pub fn len(&self) -> u64 {
        self.events
    }
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The finished JSON document.
    pub fn finish(mut self) -> String {
        if self.body.ends_with(",\n") {
            self.body.truncate(self.body.len() - 2);
            self.body.push('\n');
        }
        format!(
            "{{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n{}]}}\n",
            self.body
        )
    }
}

impl Sink for ChromeTrace {
    fn event(&mut self, e: &OpEvent) {
        self.events += 1;
        let _ = writeln!(
            self.body,
            "{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{:.4},\"dur\":{:.4},\"pid\":{},\"tid\":{},\"args\":{{\"step\":{},\"context\":{}}}}},",
            esc(&e.label()),
            e.what,
            e.start.as_us(),
            (e.end - e.start).as_us(),
            pid(e.phase),
            tid(e.resource),
            e.step,
            e.context
        );
    }
    fn step_end(&mut self, phase: PhaseKind, step: u64, start: Seconds, end: Seconds) {
        self.events += 1;
        let name = match phase {
            PhaseKind::Prefill => "prefill".to_string(),
            PhaseKind::Decode => format!("decode step {step}"),
        };
        let _ = writeln!(
            self.body,
            "{{\"name\":\"{}\",\"cat\":\"pass\",\"ph\":\"X\",\"ts\":{:.4},\"dur\":{:.4},\"pid\":{},\"tid\":0,\"args\":{{}}}},",
            name,
            start.as_us(),
            (end - start).as_us(),
            pid(phase)
        );
    }
}
