//! Driving watch streams to a condition, with a timeout.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{reflector, watcher};

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

/// The pods of a namespace as a watch reports them: kube-runtime's reflector store, fed by the
/// caller's watch events.
pub(super) struct PodSet {
    reader: reflector::Store<Pod>,
    writer: reflector::store::Writer<Pod>,
    /// Whether a first full listing has been applied (the store swaps in a re-listing whole,
    /// once it is complete, so it stays complete from then on).
    listed: bool,
}

impl Default for PodSet {
    fn default() -> Self {
        let (reader, writer) = reflector::store();
        PodSet {
            reader,
            writer,
            listed: false,
        }
    }
}

impl PodSet {
    /// Applies one watch event; returns whether the set is complete (a first listing is done).
    pub(super) fn apply(&mut self, event: watcher::Event<Pod>) -> bool {
        self.listed |= matches!(event, watcher::Event::InitDone);
        self.writer.apply_watcher_event(&event);
        self.listed
    }

    /// Pods named `key` or owned by workload `key`: live before terminating, newest first.
    pub(super) fn candidates(&self, key: &str) -> Vec<Arc<Pod>> {
        let mut pods: Vec<Arc<Pod>> = self
            .reader
            .state()
            .into_iter()
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

    /// Every pod's name, sorted, for messages.
    pub(super) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .reader
            .state()
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.to_owned());
        p
    }

    #[test]
    fn a_pod_set_is_complete_after_its_first_listing_and_swaps_a_relisting_in_whole() {
        let mut set = PodSet::default();
        assert!(!set.apply(watcher::Event::Init));
        assert!(!set.apply(watcher::Event::InitApply(pod("a"))));
        assert!(set.names().is_empty(), "nothing is shown mid-listing");
        assert!(set.apply(watcher::Event::InitDone));
        assert_eq!(set.names(), ["a"]);
        // NB: a watch that is re-listed (410 Gone) keeps the last complete view until done.
        assert!(set.apply(watcher::Event::Init));
        assert!(set.apply(watcher::Event::InitApply(pod("b"))));
        assert_eq!(set.names(), ["a"]);
        assert!(set.apply(watcher::Event::InitDone));
        assert_eq!(set.names(), ["b"]);
        set.apply(watcher::Event::Delete(pod("b")));
        assert!(set.candidates("b").is_empty());
    }
}
