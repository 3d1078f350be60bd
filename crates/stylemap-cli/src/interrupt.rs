//! Ctrl-C / SIGINT handling.
//!
//! A handler (the `ctrlc` crate; it runs on its own thread, not in signal
//! context) records the interruption. Long loops call [`check`] between
//! batches while a [`Polling`] guard is alive: they then stop, the partial
//! temporary output is deleted by its guard, and the process exits with 130.
//! Outside such loops (loading a checkpoint, estimating w_avg), and on a
//! second Ctrl-C, the handler deletes the registered temporary file itself
//! and exits with 130 at once.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Failure;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static POLLING: AtomicUsize = AtomicUsize::new(0);
static TEMP_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Installs the handler. Failing to install it (no signal support) is not
/// fatal: the default behaviour (immediate termination) remains, and the
/// temporary file may then be left behind.
pub fn install() {
    let _ = ctrlc::set_handler(handle);
}

fn handle() {
    let again = INTERRUPTED.swap(true, Ordering::SeqCst);
    if POLLING.load(Ordering::SeqCst) == 0 || again {
        remove_temp_files();
        eprintln!("error: interrupted");
        std::process::exit(130);
    }
}

fn remove_temp_files() {
    let files = match TEMP_FILES.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

/// Returns [`Failure::Interrupted`] once Ctrl-C was pressed.
pub fn check() -> Result<(), Failure> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(Failure::Interrupted)
    } else {
        Ok(())
    }
}

/// While alive, Ctrl-C only sets the flag that [`check`] reports.
pub struct Polling(());

impl Polling {
    /// Starts a section that calls [`check`] regularly.
    pub fn start() -> Self {
        POLLING.fetch_add(1, Ordering::SeqCst);
        Polling(())
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Registers a temporary file for deletion by the handler.
pub fn register_temp(path: PathBuf) {
    let mut g = TEMP_FILES.lock().unwrap_or_else(|p| p.into_inner());
    g.push(path);
}

/// Forgets a temporary file (renamed or already removed).
pub fn unregister_temp(path: &std::path::Path) {
    let mut g = TEMP_FILES.lock().unwrap_or_else(|p| p.into_inner());
    g.retain(|p| p != path);
}
