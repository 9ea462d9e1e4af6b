//! Ctrl-C (SIGINT) and SIGTERM during a sweep: the first one asks the sweep to stop between
//! blocks, so it can keep its finished chunks and say so; a second one ends the process at
//! once (the default action), for a block that takes too long.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first signal; the sweep polls it between blocks.
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// The signal that set [`STOP`] (for the exit status 128 + n).
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: signal and raise are async-signal-safe; the default action ends the process.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub(crate) fn install() {
    #[cfg(unix)]
    // SAFETY: the handler only touches atomics and calls async-signal-safe functions.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The exit status of a run stopped by a signal: 128 + its number (130 for Ctrl-C).
pub(crate) fn exit_status() -> u8 {
    let sig = SIGNAL.load(Ordering::SeqCst);
    u8::try_from(128 + if sig > 0 { sig } else { 2 }).unwrap_or(130)
}

pub(crate) fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
