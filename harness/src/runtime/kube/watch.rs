//! Driving watch streams to a condition, with a timeout.

use std::collections::BTreeMap;
use std::pin::pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;

use super::status::is_named_or_owned_by;

/// Why a watch stopped before its condition held.
pub(super) enum Stopped {
    /// Time ran out; the last transient watch error, if any, is kept for the message.
    TimedOut(Option<watcher::Error>),
    /// The API server refused the watch (401, 403): retrying cannot help.
    Fatal(watcher::Error),
    /// The stream ended (it does not for kube's watchers; kept for completeness).
    Ended,
}

/// Feeds `stream`'s items to `step` until it returns `Some`, or `timeout` passes.
///
/// Transient errors (a dropped connection, `410 Gone`) are retried by the watcher itself when
/// the stream has a backoff; refusals are returned at once.
pub(super) async fn until<S, E, T>(
    stream: S,
    timeout: Duration,
    mut step: impl FnMut(E) -> Option<T>,
) -> Result<T, Stopped>
where
    S: Stream<Item = Result<E, watcher::Error>>,
{
    let mut stream = pin!(stream);
    let mut last_error = None;
    let drive = async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if let Some(done) = step(event) {
                        return Ok(done);
                    }
                }
                Err(err) if is_refusal(&err) => return Err(Stopped::Fatal(err)),
                Err(err) => {
                    tracing::debug!(error = %err, "watch error, retrying");
                    last_error = Some(err);
                }
            }
        }
        Err(Stopped::Ended)
    };
    match tokio::time::timeout(timeout, drive).await {
        Ok(result) => result,
        Err(_) => Err(Stopped::TimedOut(last_error)),
    }
}

fn is_refusal(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => {
            matches!(status.code, 401 | 403)
        }
        _ => false,
    }
}

/// The pods of a namespace as a watch reports them.
#[derive(Default)]
pub(super) struct PodSet {
    pods: BTreeMap<String, Pod>,
    listing: bool,
}

impl PodSet {
    /// Applies one watch event; returns whether the set is complete (not mid-listing).
    pub(super) fn apply(&mut self, event: watcher::Event<Pod>) -> bool {
        let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
        match event {
            watcher::Event::Init => {
                self.listing = true;
                self.pods.clear();
            }
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                self.pods.insert(name(&p), p);
            }
            watcher::Event::InitDone => self.listing = false,
            watcher::Event::Delete(p) => {
                self.pods.remove(&name(&p));
            }
        }
        !self.listing
    }

    /// Pods named `key` or owned by workload `key`: live before terminating, newest first.
    pub(super) fn candidates(&self, key: &str) -> Vec<&Pod> {
        let mut pods: Vec<&Pod> = self
            .pods
            .values()
            .filter(|p| is_named_or_owned_by(p, key))
            .collect();
        pods.sort_by_key(|p| {
            (
                p.metadata.deletion_timestamp.is_some(),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
                p.metadata.name.clone(),
            )
        });
        pods
    }

    /// Every pod's name, for messages.
    pub(super) fn names(&self) -> Vec<&str> {
        self.pods.keys().map(String::as_str).collect()
    }
}
