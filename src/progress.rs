//! How far a long computation is, for whoever shows it. The library only counts: a [`Tick`]
//! is called with (done, total) after each unit of work (a hold-out fit, a cross-validation
//! fold); the binary draws the progress bar or prints the lines (`src/cli/progress.rs`).
//! Nothing here writes anything, so results never depend on whether progress is shown.

use std::fmt;
use std::sync::Arc;

/// A callback told (done, total) after each unit of a long computation; `Tick::default()`
/// tells no one.
#[derive(Clone, Default)]
pub struct Tick(Option<Arc<dyn Fn(u64, u64) + Send + Sync>>);

impl Tick {
    pub fn new(f: impl Fn(u64, u64) + Send + Sync + 'static) -> Tick {
        Tick(Some(Arc::new(f)))
    }

    /// Tells the callback, if any, that `done` of `total` units are done.
    pub fn tell(&self, done: u64, total: u64) {
        if let Some(f) = &self.0 {
            f(done, total);
        }
    }
}

impl fmt::Debug for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Tick(callback)"
        } else {
            "Tick(none)"
        })
    }
}

impl PartialEq for Tick {
    /// Progress never changes a result: any two ticks compare equal.
    fn eq(&self, _: &Tick) -> bool {
        true
    }
}
