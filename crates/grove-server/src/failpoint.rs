//! Failpoints: named steps of an operation where the server can be made to die, as a
//! crash or a power cut would kill it, so that tests can check that start-up after a
//! crash at any step converges (`GROVE_FAILPOINT=routes-switched grove server ...`).
//! Unset, a failpoint costs one comparison.

use std::sync::OnceLock;

/// The environment variable naming the step at which the server dies.
pub const FAILPOINT_VAR: &str = "GROVE_FAILPOINT";

/// Dies right here, without any clean-up, when `step` is the configured failpoint.
pub fn hit(step: &str) {
    static CONFIGURED: OnceLock<Option<String>> = OnceLock::new();
    let configured = CONFIGURED.get_or_init(|| std::env::var(FAILPOINT_VAR).ok());
    if configured.as_deref() == Some(step) {
        tracing::error!(step, "Failpoint reached: the server dies here (SIGKILL).");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // Not reached: SIGKILL cannot be caught.
        std::process::abort();
    }
}
