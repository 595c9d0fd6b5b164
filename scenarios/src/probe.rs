//! Background probes: an action repeated until stopped (availability checks, a writer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;

use crate::ensure;
use crate::outcome::{Check, Failure};

/// A task repeating an action until stopped, recording what failed.
pub struct BackgroundProbe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl BackgroundProbe {
    /// Starts repeating `action` (given the count of successes so far), `interval` apart.
    pub fn spawn<F, Fut>(action: F, interval: Duration) -> Self
    where
        F: Fn(usize) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut done, mut failures) = (0, Vec::new());
            while !flag.load(Ordering::SeqCst) {
                match action(done).await {
                    Ok(()) => done += 1,
                    Err(e) => failures.push(format!("{}: {e}", Utc::now().format("%H:%M:%S%.3f"))),
                }
                if !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
            }
            (done, failures)
        });
        BackgroundProbe { stop, task }
    }

    /// Stops the probe and returns its failures.
    pub async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.task
            .await
            .map(|(_, f)| f)
            .unwrap_or_else(|e| vec![e.to_string()])
    }

    /// Stops the probe; fails if any action failed, else returns how many succeeded.
    pub async fn stop_checked(self) -> Check<usize> {
        self.stop.store(true, Ordering::SeqCst);
        let (done, failures) = self.task.await.map_err(|e| Failure::error(e.to_string()))?;
        ensure!(
            failures.is_empty(),
            "{} request(s) failed: {failures:?}",
            failures.len()
        );
        Ok(done)
    }
}
