//! Stopping a run early: SIGINT, SIGTERM and SIGHUP, and `--fail-fast`.
//!
//! A [`StopSwitch`] is flipped once, by whichever comes first; cases under way are cancelled
//! (their namespaces removed, their outcome `interrupted`), cases not yet started are reported
//! `interrupted` without running, and the run still writes its reports. [`Signals::install`]
//! handles the three signals the same way: the first flips the switch; a second one runs the
//! registered [`Signals::on_abort`] hook (kill every process now, best effort) and resolves
//! [`Signals::aborted`], on which the run gives up at once (no report); should that take more
//! than [`ABORT_DEADLINE`], the process exits anyway with `128 + signal`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::note;

/// A signal that stops a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// Ctrl-C.
    Int,
    /// What CI runners send on cancel and timeout.
    Term,
    /// The terminal went away.
    Hup,
}

impl StopSignal {
    /// The three, in the order `--help` names them.
    pub const ALL: [StopSignal; 3] = [StopSignal::Int, StopSignal::Term, StopSignal::Hup];

    /// `SIGINT`, `SIGTERM` or `SIGHUP`.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Int => "SIGINT",
            StopSignal::Term => "SIGTERM",
            StopSignal::Hup => "SIGHUP",
        }
    }

    fn kind(self) -> SignalKind {
        match self {
            StopSignal::Int => SignalKind::interrupt(),
            StopSignal::Term => SignalKind::terminate(),
            StopSignal::Hup => SignalKind::hangup(),
        }
    }

    /// The process exit code of a run it stopped: 128 + the signal's number, as a shell reports
    /// a process the signal killed (130, 143, 129).
    pub fn exit_code(self) -> u8 {
        128 + self.kind().as_raw_value() as u8
    }
}

/// Why a run stopped before every case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A signal arrived.
    Signal(StopSignal),
    /// `--fail-fast`, after this case (`ID name subject/backend`) failed.
    FailFast(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Signal(signal) => f.write_str(signal.name()),
            StopReason::FailFast(case) => write!(f, "--fail-fast: {case} failed"),
        }
    }
}

/// Flipped once, when a run must stop; cheap to clone and to wait on.
#[derive(Clone, Debug)]
pub struct StopSwitch {
    tx: Arc<watch::Sender<Option<StopReason>>>,
}

impl Default for StopSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl StopSwitch {
    /// A switch not flipped yet.
    pub fn new() -> Self {
        StopSwitch {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    /// Flips the switch for `reason`; returns false when it was flipped already (the first
    /// reason stays).
    pub fn stop(&self, reason: StopReason) -> bool {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        })
    }

    /// Why the run stops, once it does.
    pub fn reason(&self) -> Option<StopReason> {
        self.tx.borrow().clone()
    }

    /// Resolves when the switch is flipped (at once if it is).
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.tx.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().expect("waited for Some"),
            // NB: the sender lives in `self`, so the channel cannot close while we wait.
            Err(_) => std::future::pending().await,
        }
    }
}

/// What a second signal runs before the run gives up: stops everything at once; resolves to
/// whether the run's files may go (false when a failed case's namespace is kept among them).
pub type AbortHook = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// How long after a second signal the process exits, whatever is still under way.
pub const ABORT_DEADLINE: Duration = Duration::from_secs(8);

/// How a second signal ended the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aborted {
    /// The signal.
    pub signal: StopSignal,
    /// Whether the run's files may be removed (nothing kept for inspection).
    pub remove_files: bool,
}

/// The handlers of SIGINT, SIGTERM and SIGHUP for one run.
pub struct Signals {
    abort: Arc<Mutex<Option<AbortHook>>>,
    aborted: watch::Sender<Option<Aborted>>,
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    /// Handles the three signals from now on (inside a tokio runtime): the first flips `switch`,
    /// the second runs the abort hook and resolves [`Signals::aborted`].
    pub fn install(switch: StopSwitch) -> std::io::Result<Signals> {
        let mut streams = Vec::new();
        for which in StopSignal::ALL {
            streams.push((which, signal(which.kind())?));
        }
        let abort: Arc<Mutex<Option<AbortHook>>> = Arc::default();
        let hook = abort.clone();
        let aborted = watch::channel(None).0;
        let tell = aborted.clone();
        let task = tokio::spawn(async move {
            let mut received = 0;
            loop {
                let arrivals = streams.iter_mut().map(|(which, stream)| {
                    let which = *which;
                    Box::pin(async move {
                        stream.recv().await;
                        which
                    })
                });
                let (which, _, _) = futures::future::select_all(arrivals).await;
                received += 1;
                if received == 1 {
                    switch.stop(StopReason::Signal(which));
                    note!(
                        "phasecheck: {}: stopping; cancelling cases, removing their pods, stores and files, then writing the reports (send it again to exit at once)",
                        which.name()
                    );
                    continue;
                }
                note!(
                    "phasecheck: {} again: exiting now after a best-effort cleanup; `phasecheck clean` removes what is left",
                    which.name()
                );
                let code = i32::from(which.exit_code());
                // NB: a deadline, not a wait: whatever hangs, the process is gone by then.
                std::thread::spawn(move || {
                    std::thread::sleep(ABORT_DEADLINE);
                    std::process::exit(code);
                });
                let abort = hook.lock().expect("not poisoned").take();
                let remove_files = match abort {
                    Some(abort) => abort().await,
                    None => true,
                };
                tell.send_replace(Some(Aborted {
                    signal: which,
                    remove_files,
                }));
                return;
            }
        });
        Ok(Signals {
            abort,
            aborted,
            task,
        })
    }

    /// Resolves once a second signal has stopped everything: the run must give up now.
    pub async fn aborted(&self) -> Aborted {
        let mut rx = self.aborted.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(aborted) => aborted.expect("waited for Some"),
            // NB: the sender lives in `self`, so the channel cannot close while we wait.
            Err(_) => std::future::pending().await,
        }
    }

    /// Sets what a second signal runs before exiting (replacing any earlier hook).
    pub fn on_abort(&self, hook: AbortHook) {
        *self.abort.lock().expect("not poisoned") = Some(hook);
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal_number() {
        let codes: Vec<u8> = StopSignal::ALL.iter().map(|s| s.exit_code()).collect();
        assert_eq!(codes, [130, 143, 129]);
    }

    #[tokio::test]
    async fn the_first_reason_to_stop_wins() {
        let switch = StopSwitch::new();
        assert_eq!(switch.reason(), None);
        assert!(switch.stop(StopReason::FailFast(
            "INIT-1 restore-empty phasepod/s3".into()
        )));
        assert!(!switch.stop(StopReason::Signal(StopSignal::Term)));
        assert_eq!(
            switch.stopped().await.to_string(),
            "--fail-fast: INIT-1 restore-empty phasepod/s3 failed"
        );
    }
}
