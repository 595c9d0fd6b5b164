//! Change feeds: each embedded service counts the requests that may have changed what it stores,
//! once each has ended (its response sent, or abandoned by the client). Object stores and git
//! remotes offer no change feed to their clients; the embedded services can, because every write
//! passes through them. So a scenario waiting for a backup lists the store when something was
//! written, not every 200 ms.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::watch;

/// Counts the writes a service has finished. Clones share the count.
#[derive(Clone, Debug)]
pub(crate) struct WriteCounter {
    count: Arc<watch::Sender<u64>>,
}

impl WriteCounter {
    pub(crate) fn new() -> Self {
        Self {
            count: Arc::new(watch::channel(0).0),
        }
    }

    /// A receiver that sees every later write as a change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.count.subscribe()
    }

    /// The response body of a request: for a `write`, counted as one once it is dropped (sent
    /// in full or abandoned); for a read, never.
    pub(crate) fn response_body<B>(&self, body: B, write: bool) -> CountedBody<B> {
        CountedBody {
            body,
            counter: write.then(|| self.clone()),
        }
    }

    fn count(&self) {
        self.count.send_modify(|n| *n += 1);
    }
}

/// A response body that counts a write when it is dropped, or (for reads) does not.
pub(crate) struct CountedBody<B> {
    body: B,
    counter: Option<WriteCounter>,
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        if let Some(counter) = self.counter.take() {
            counter.count();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn a_write_counts_once_its_body_is_gone_and_not_before() {
        let counter = WriteCounter::new();
        let mut changes = counter.subscribe();
        let read = counter.response_body(Full::new(Bytes::from_static(b"read")), false);
        drop(read);
        assert!(!changes.has_changed().unwrap(), "a read counted as a write");
        let body = counter.response_body(Full::new(Bytes::from_static(b"ok")), true);
        assert!(
            !changes.has_changed().unwrap(),
            "counted before the response ended"
        );
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(sent, "ok");
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), 1);
    }
}
