//! The engine run from Python: on a scoped thread while this thread waits with the GIL
//! released; every 100 ms it takes the GIL back to check for signals (Ctrl-C sets the
//! engine's cancel flag, which stops it after the blocks in flight) and to call the progress
//! callback. Worker threads never touch Python.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use rustrates::sweep::{Progress, RunControl};

/// Waits for the engine with the GIL released, waking every 100 ms to let Python handle
/// signals and show progress.
struct Waiter {
    finished: Mutex<bool>,
    wake: Condvar,
    points_done: AtomicUsize,
    cancel: AtomicBool,
}

/// Runs `engine` on a scoped thread, handing it the cancel flag and progress hook. Returns its
/// result, or the Python error that interrupted it (Ctrl-C, an exception in the progress
/// callback), or a `RustratesError` when it panicked.
pub fn run_interruptible<R: Send>(
    py: Python<'_>,
    total: usize,
    progress: Option<&Bound<'_, PyAny>>,
    engine: impl FnOnce(RunControl<'_>) -> R + Send,
) -> Result<R, PyErr> {
    let w = Waiter {
        finished: Mutex::new(false),
        wake: Condvar::new(),
        points_done: AtomicUsize::new(0),
        cancel: AtomicBool::new(false),
    };
    // The engine reports one call at a time, counts only growing (RunControl::progress).
    let on_progress = |p: Progress| {
        w.points_done.store(p.points_done, Ordering::Relaxed);
    };
    let ctrl = RunControl {
        cancel: Some(&w.cancel),
        progress: Some(&on_progress),
        ..RunControl::default()
    };
    let mut interrupted: Option<PyErr> = None;
    let mut shown = usize::MAX;
    let outcome = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let r = engine(ctrl);
            *w.finished.lock().unwrap_or_else(|e| e.into_inner()) = true;
            w.wake.notify_all();
            r
        });
        loop {
            let done = py.detach(|| {
                let guard = w.finished.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, _) = w
                    .wake
                    .wait_timeout_while(guard, Duration::from_millis(100), |f| !*f)
                    .unwrap_or_else(|e| e.into_inner());
                *guard
            });
            if interrupted.is_none() {
                let step = py.check_signals().and_then(|()| {
                    let n = w.points_done.load(Ordering::Relaxed);
                    match progress {
                        Some(cb) if n != shown || done => {
                            shown = n;
                            cb.call1((n, total)).map(|_| ())
                        }
                        _ => Ok(()),
                    }
                });
                if let Err(e) = step {
                    w.cancel.store(true, Ordering::Relaxed);
                    interrupted = Some(e);
                }
            }
            if done {
                break;
            }
        }
        handle.join()
    });
    if let Some(e) = interrupted {
        return Err(e);
    }
    outcome.map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        crate::errors::RustratesError::new_err(format!("internal error in the engine: {what}"))
    })
}
