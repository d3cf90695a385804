//! SIGINT, SIGTERM and SIGHUP.
//!
//! [`install`] (called once by the binary) handles the three signals on a thread of its own.
//! What a signal does depends on the command running:
//!
//! - A command that can stop cleanly between units of work holds a [`Cooperation`] while it
//!   works: the first signal sets its stop flag, and the command finishes the unit in flight,
//!   writes complete outputs for what was done, and returns; the binary then exits with
//!   128 + the signal's number (130 for SIGINT, 143 for SIGTERM) and says so on stderr.
//! - Otherwise, or at a second signal, the handler removes every temporary file in flight
//!   (outputs not yet renamed into place) and exits at once with the same status.
//!
//! Either way an interrupted run never exits 0 and never leaves a temporary file behind.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static COOPERATING: AtomicUsize = AtomicUsize::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

/// A signal that stops a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    /// `SIGINT`, `SIGTERM`, `SIGHUP` (or `signal N`).
    pub fn name(self) -> String {
        match self.0 {
            signal_hook::consts::SIGINT => "SIGINT".into(),
            signal_hook::consts::SIGTERM => "SIGTERM".into(),
            signal_hook::consts::SIGHUP => "SIGHUP".into(),
            n => format!("signal {n}"),
        }
    }

    /// The shell convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
    pub fn exit_code(self) -> u8 {
        (128 + self.0).clamp(0, 255) as u8
    }
}

/// Handles SIGINT, SIGTERM and SIGHUP from now on (see the module documentation).
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("llmforge-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                on_signal(signal);
            }
        })?;
    Ok(())
}

fn on_signal(number: i32) {
    let signal = Signal(number);
    let first = RECEIVED
        .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if first && COOPERATING.load(Ordering::SeqCst) > 0 {
        STOP.store(true, Ordering::SeqCst);
        eprintln!(
            "\nllmforge: {} received: finishing the work in flight, then stopping (send it again to stop at once)",
            signal.name()
        );
        return;
    }
    // the registry stays locked until the process is gone: nothing is renamed into place
    // after its temporary file was removed
    let (removed, _registry) = super::atomic::remove_in_flight();
    eprintln!(
        "\nllmforge: interrupted by {}; {removed} unfinished output file(s) removed, nothing else written",
        signal.name()
    );
    std::process::exit(signal.exit_code().into());
}

/// The signal that interrupted this run, if one did.
pub fn received() -> Option<Signal> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => Some(Signal(n)),
    }
}

/// Held by a command that stops cleanly when asked: while one exists, a first signal only
/// sets [`Cooperation::stop_flag`].
pub struct Cooperation(());

/// Declares that the calling command watches the stop flag from now on.
pub fn cooperate() -> Cooperation {
    COOPERATING.fetch_add(1, Ordering::SeqCst);
    Cooperation(())
}

impl Cooperation {
    /// Set when a signal asks the command to stop.
    pub fn stop_flag(&self) -> &'static AtomicBool {
        &STOP
    }

    /// Whether a signal asked the command to stop.
    pub fn stopping(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
}

impl Drop for Cooperation {
    fn drop(&mut self) {
        COOPERATING.fetch_sub(1, Ordering::SeqCst);
    }
}
