//! Ctrl-C and SIGTERM become a flag that the supervisor polls, so that shutdown happens
//! in our own order instead of by the default "die now" action.

use std::sync::{Arc, atomic::AtomicBool};

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

/// Installs the handlers and returns the flag they set.
pub fn on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .with_context(|| format!("installing a handler for signal {signal}"))?;
    }
    Ok(flag)
}
