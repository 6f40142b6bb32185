//! Interrupts: SIGINT, SIGTERM and SIGHUP while tamis works.
//!
//! The signal handler only records the signal. Long loops (every batch of the record pipeline,
//! every merge of vocabulary learning, every tensor of an embedding rewrite, every phase of near
//! dedup) call [`check`], which turns it into [`Error::Interrupted`]. The error unwinds like any
//! other: outputs are never committed, and temporary files are removed by their guards. So the
//! previous output stays as it was, and nothing is left behind.
//!
//! [`Guard::command_line`] is for the command line (the binary and the Python console script):
//! it takes the three signals over while it lives, so that Python's own SIGINT handler, if any,
//! does not see them. A second signal exits at once. [`Guard::python_call`] is for calls from
//! Python: it takes SIGINT and passes it on to the handler that was there (Python's), so that
//! the binding can raise `KeyboardInterrupt` once the work has stopped.
//!
//! libc's `sigaction` rather than a signal crate: the handler must not chain to Python's while
//! the command line runs, must chain while a Python call runs, and the previous handlers must
//! be put back exactly when the work ends.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::{Error, Result};

/// The signal received, 0 for none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// `Err(Error::Interrupted)` once a signal has been received while a [`Guard`] lives.
#[inline]
pub fn check() -> Result<()> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => Ok(()),
        s => Err(Error::Interrupted(s)),
    }
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// The conventional name of a signal number, for messages.
pub fn signal_name(signal: i32) -> String {
    #[cfg(unix)]
    {
        match signal {
            libc::SIGINT => return "SIGINT".into(),
            libc::SIGTERM => return "SIGTERM".into(),
            libc::SIGHUP => return "SIGHUP".into(),
            _ => {}
        }
    }
    format!("signal {signal}")
}

/// Record a signal as if it had been received (tests, and callers with their own handlers).
pub fn request(signal: i32) {
    SIGNAL.store(signal, Ordering::Relaxed);
}

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::SIGNAL;

    pub const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    /// Whether the handler passes signals on to the previous handler (Python calls).
    static CHAIN: AtomicBool = AtomicBool::new(false);
    /// The previous handler of each of [`SIGNALS`] and whether it takes `siginfo`, read by the
    /// handler (atomics: a signal handler may not take a lock).
    static PREVIOUS: [AtomicUsize; 3] = [
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ];
    static PREVIOUS_SIGINFO: [AtomicBool; 3] = [
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    ];

    /// Nesting depth and the saved actions (only touched outside the handler).
    pub struct Installed {
        pub depth: usize,
        pub saved: Vec<(libc::c_int, libc::sigaction)>,
    }
    pub static STATE: Mutex<Installed> = Mutex::new(Installed {
        depth: 0,
        saved: Vec::new(),
    });

    extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let first = SIGNAL
            .compare_exchange(0, sig, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if CHAIN.load(Ordering::Relaxed) {
            let Some(i) = SIGNALS.iter().position(|&s| s == sig) else {
                return;
            };
            let prev = PREVIOUS[i].load(Ordering::Relaxed);
            if prev == libc::SIG_DFL || prev == libc::SIG_IGN || prev == 0 {
                return;
            }
            // SAFETY: `prev` is the handler that was installed for `sig` before ours, called
            // as it was registered (with or without siginfo), with the arguments we received.
            unsafe {
                if PREVIOUS_SIGINFO[i].load(Ordering::Relaxed) {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(prev);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev);
                    f(sig);
                }
            }
        } else if !first {
            // A second signal: the user insists; stop now (async-signal-safe).
            // SAFETY: `_exit` may be called from a signal handler.
            unsafe { libc::_exit(128 + sig) };
        }
    }

    /// Install the handler for `signals` (outermost guard only); `chain` as in the guards.
    pub fn install(signals: &[libc::c_int], chain: bool) {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        st.depth += 1;
        if st.depth > 1 {
            return;
        }
        SIGNAL.store(0, Ordering::Relaxed);
        CHAIN.store(chain, Ordering::Relaxed);
        for &sig in signals {
            let Some(i) = SIGNALS.iter().position(|&s| s == sig) else {
                continue;
            };
            // SAFETY: plain sigaction calls on zero-initialized structs; the handler only uses
            // atomics and async-signal-safe calls.
            unsafe {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = handler as *const () as usize;
                new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
                libc::sigemptyset(&mut new.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &new, &mut old) == 0 {
                    PREVIOUS[i].store(old.sa_sigaction, Ordering::Relaxed);
                    PREVIOUS_SIGINFO[i]
                        .store(old.sa_flags & libc::SA_SIGINFO != 0, Ordering::Relaxed);
                    st.saved.push((sig, old));
                }
            }
        }
    }

    /// Put the previous handlers back (outermost guard only).
    pub fn uninstall() {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        st.depth = st.depth.saturating_sub(1);
        if st.depth > 0 {
            return;
        }
        for (sig, old) in st.saved.drain(..) {
            // SAFETY: restoring the action saved by `install` for this signal.
            unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
        }
        CHAIN.store(false, Ordering::Relaxed);
        // The error that stopped the work carries the signal; later work starts clean.
        SIGNAL.store(0, Ordering::Relaxed);
    }
}

/// While it lives, interrupts are recorded for [`check`] instead of killing the process.
/// Guards nest (the outermost one decides); the previous handlers come back when the last one
/// is dropped, and the recorded signal is cleared (the error that stopped the work carries it).
#[must_use]
pub struct Guard(());

impl Guard {
    /// For the command line: SIGINT, SIGTERM and SIGHUP, not passed on; a second one exits
    /// with `128 + signal` at once.
    pub fn command_line() -> Guard {
        #[cfg(unix)]
        imp::install(&imp::SIGNALS, false);
        Guard(())
    }

    /// For a call from Python: SIGINT only, passed on to the previous (Python's) handler so
    /// that Python raises `KeyboardInterrupt` when the call returns.
    pub fn python_call() -> Guard {
        #[cfg(unix)]
        imp::install(&[libc::SIGINT], true);
        Guard(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(unix)]
        imp::uninstall();
    }
}
