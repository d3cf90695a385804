//! Chrome Trace Event Format (JSON object form): one `"X"` (complete) event per op interval,
//! `ts` and `dur` in microseconds, `pid` 1 for prefill and 2 for decode, one `tid` per
//! resource (matrix, vector, DMA, DRAM read, DRAM write), named by `"M"` metadata events.
//! A multi-chip run (the ring engine, which announces its [`Topology`]) is laid out per chip
//! instead: one process per chip (pid = chip + 1, thread `layers`), a process `links` with a
//! track per link, and a process `passes` with the prefill and every decode step.
//! Opens in Perfetto (ui.perfetto.dev) and chrome://tracing.

use crate::sim::{DeviceEvent, OpEvent, PhaseKind, Place, Resource, Sink, Topology};
use crate::units::Seconds;
use std::fmt::Write as _;
use std::io::Write;

/// A [`Sink`] that writes events as they arrive to `W` (a file: nothing is kept but the
/// current line, so a trace of any length takes constant memory). Write errors are kept and
/// returned by [`ChromeTrace::finish`]. [`ChromeTrace::decode_steps`] limits the decode
/// steps recorded (`sim --trace-steps`).
#[derive(Debug)]
pub struct ChromeTrace<W: Write = Vec<u8>> {
    out: W,
    events: u64,
    first: bool,
    steps: Option<u64>,
    line: String,
    error: Option<std::io::Error>,
    layout: Layout,
}

/// Which processes and threads the trace has: decided by the first thing a run sends (its
/// topology, or an event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Nothing received yet: no metadata written.
    Pending,
    /// A single-device run: a process per phase, a thread per resource.
    Phases,
    /// A multi-chip run of `chips` chips: process ids 1..=chips, then links, then passes.
    Chips { chips: u64 },
}

impl Default for ChromeTrace<Vec<u8>> {
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
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

impl ChromeTrace<Vec<u8>> {
    /// A trace kept in memory ([`ChromeTrace::finish`] gives its bytes).
    pub fn new() -> ChromeTrace<Vec<u8>> {
        ChromeTrace::to_writer(Vec::new())
    }
}

impl<W: Write> ChromeTrace<W> {
    /// A trace written to `out` as events arrive.
    pub fn to_writer(out: W) -> ChromeTrace<W> {
        let mut t = ChromeTrace {
            out,
            events: 0,
            first: true,
            steps: None,
            line: String::new(),
            error: None,
            layout: Layout::Pending,
        };
        t.raw("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
        t
    }

    /// The single-device layout's metadata, unless a layout was chosen.
    fn phases(&mut self) {
        if self.layout != Layout::Pending {
            return;
        }
        self.layout = Layout::Phases;
        let t = self;
        for phase in [PhaseKind::Prefill, PhaseKind::Decode] {
            t.entry(format_args!(
                "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"tid\":0,\"args\":{{\"name\":\"{}\"}}}}",
                pid(phase),
                phase.name()
            ));
            for r in Resource::ALL {
                t.entry(format_args!(
                    "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":\"{}\"}}}}",
                    pid(phase),
                    tid(r),
                    r.name()
                ));
            }
        }
    }

    /// One `"M"` metadata entry naming a process or thread.
    fn meta(&mut self, what: &str, pid: u64, tid: u64, name: &str) {
        self.entry(format_args!(
            "{{\"name\":\"{what}\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":\"{}\"}}}}",
            esc(name)
        ));
    }

    /// Records only `steps` decode steps, spread over the run (see [`crate::sim::StepSample`]).
    pub fn decode_steps(mut self, steps: Option<u64>) -> ChromeTrace<W> {
        self.steps = steps;
        self
    }

    /// Number of interval events received.
    pub fn len(&self) -> u64 {
        self.events
    }
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    fn raw(&mut self, text: &str) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(text.as_bytes()) {
                self.error = Some(e);
            }
        }
    }

    /// One entry of the `traceEvents` array (entries are separated by ",\n").
    fn entry(&mut self, args: std::fmt::Arguments<'_>) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        if !self.first {
            line.push_str(",\n");
        }
        self.first = false;
        let _ = line.write_fmt(args);
        self.raw(&line);
        self.line = line;
    }

    /// Closes the document; gives the writer back, or the first write error.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.phases();
        self.raw("\n]}\n");
        match self.error.take() {
            Some(e) => Err(e),
            None => {
                self.out.flush()?;
                Ok(self.out)
            }
        }
    }
}

impl<W: Write> Sink for ChromeTrace<W> {
    fn decode_steps(&self) -> Option<u64> {
        self.steps
    }
    fn event(&mut self, e: &OpEvent) {
        self.phases();
        self.events += 1;
        self.entry(format_args!(
            "{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{:.4},\"dur\":{:.4},\"pid\":{},\"tid\":{},\"args\":{{\"step\":{},\"context\":{}}}}}",
            esc(&e.label()),
            e.what,
            e.start.as_us(),
            (e.end - e.start).as_us(),
            pid(e.phase),
            tid(e.resource),
            e.step,
            e.context
        ));
    }
    fn step_end(&mut self, phase: PhaseKind, step: u64, start: Seconds, end: Seconds) {
        self.phases();
        self.events += 1;
        let name = match phase {
            PhaseKind::Prefill => "prefill".to_string(),
            PhaseKind::Decode => format!("decode step {step}"),
        };
        let pid = match self.layout {
            Layout::Chips { chips } => chips + 2,
            _ => u64::from(pid(phase)),
        };
        self.entry(format_args!(
            "{{\"name\":\"{}\",\"cat\":\"pass\",\"ph\":\"X\",\"ts\":{:.4},\"dur\":{:.4},\"pid\":{},\"tid\":0,\"args\":{{}}}}",
            name,
            start.as_us(),
            (end - start).as_us(),
            pid
        ));
    }
    fn topology(&mut self, t: &Topology) {
        if self.layout != Layout::Pending {
            return;
        }
        let chips = t.chips.len() as u64;
        self.layout = Layout::Chips { chips };
        for (c, name) in t.chips.iter().enumerate() {
            let pid = c as u64 + 1;
            self.meta("process_name", pid, 0, name);
            self.meta("thread_name", pid, 1, "layers");
        }
        self.meta("process_name", chips + 1, 0, "links");
        for (i, name) in t.links.iter().enumerate() {
            self.meta("thread_name", chips + 1, i as u64 + 1, name);
        }
        self.meta("process_name", chips + 2, 0, "passes");
    }
    fn device_event(&mut self, e: &DeviceEvent<'_>) {
        let Layout::Chips { chips } = self.layout else {
            // no topology: the run is shown as one device (the trait's default)
            if let Some(op) = e.as_op_event() {
                self.event(&op);
            }
            return;
        };
        self.events += 1;
        let (ts, dur) = (e.start.as_us(), (e.end - e.start).as_us());
        let label = esc(e.label);
        match e.place {
            Place::Chips { first, end } => {
                for chip in first..end {
                    self.entry(format_args!(
                        "{{\"name\":\"{label}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{ts:.4},\"dur\":{dur:.4},\"pid\":{},\"tid\":1,\"args\":{{\"phase\":\"{}\",\"step\":{},\"context\":{}}}}}",
                        e.what,
                        chip + 1,
                        e.phase.name(),
                        e.step,
                        e.context
                    ));
                }
            }
            Place::Link(link) => self.entry(format_args!(
                "{{\"name\":\"{label}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{ts:.4},\"dur\":{dur:.4},\"pid\":{},\"tid\":{},\"args\":{{\"phase\":\"{}\",\"step\":{}}}}}",
                e.what,
                chips + 1,
                link + 1,
                e.phase.name(),
                e.step
            )),
        }
    }
}

/// A system's timeline ([`crate::sim::system::timeline`]) as a Chrome trace: one process per
/// device (its ops, collectives and hand-offs), and a `links` process with one track per
/// link (the collectives crossing it, for its busy time).
pub fn system_trace(
    events: &[crate::sim::system::TimelineEvent],
    devices: u64,
    links: &[crate::sim::system::LinkFigures],
) -> String {
    use crate::sim::system::Track;
    let mut t = ChromeTrace::new();
    t.first = true;
    t.out.clear();
    t.raw("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    for d in 0..devices {
        t.entry(format_args!(
            "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"tid\":0,\"args\":{{\"name\":\"device d{d}\"}}}}",
            d + 1
        ));
    }
    let link_pid = devices + 1;
    if !links.is_empty() {
        t.entry(format_args!(
            "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{link_pid},\"tid\":0,\"args\":{{\"name\":\"links\"}}}}"
        ));
        for l in links {
            t.entry(format_args!(
                "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{link_pid},\"tid\":{},\"args\":{{\"name\":\"l{} {} - {}\"}}}}",
                l.link + 1,
                l.link,
                esc(&l.from),
                esc(&l.to)
            ));
        }
    }
    for e in events {
        let (pid, tid) = match e.track {
            Track::Device(d) => (d + 1, 1),
            Track::Link(l) => (link_pid, l as u64 + 1),
        };
        t.entry(format_args!(
            "{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{:.4},\"dur\":{:.4},\"pid\":{pid},\"tid\":{tid},\"args\":{{\"phase\":\"{}\"}}}}",
            esc(&e.name),
            e.what,
            e.start * 1e6,
            (e.end - e.start) * 1e6,
            e.phase.name()
        ));
    }
    let bytes = t.finish().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}
