//! Reaching a pod's port from this host: a loopback listener per (pod, port) whose every
//! connection is a `portforward` stream to the pod, as `kubectl port-forward` does.
//!
//! Pod IPs on kind and minikube are not routable from the host; the API server is. Forwarders
//! stop when their namespace is deleted or the runtime shuts down.

use std::net::{Ipv4Addr, SocketAddr};

use kube::api::Api;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{Error, KubeRuntime, Result};

/// A running forwarder.
pub(super) struct Forwarder {
    ns: String,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeRuntime {
    /// A loopback address whose connections reach `port` of `pod`.
    pub async fn forward(&self, ns: &str, pod: &str, port: u16) -> Result<SocketAddr> {
        let key = (ns.to_owned(), pod.to_owned(), port);
        if let Some(f) = self.forwarders.lock().expect("not poisoned").get(&key) {
            return Ok(f.addr);
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|source| Error::Io {
                what: format!("listen for a port-forward to {ns}/{pod}:{port}"),
                path: Default::default(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            what: "read the port-forward listener's address".into(),
            path: Default::default(),
            source,
        })?;
        let api: Api<k8s_openapi::api::core::v1::Pod> = self.pod_api(ns);
        let pod_name = pod.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let api = api.clone();
                let pod_name = pod_name.clone();
                tokio::spawn(async move {
                    let Ok(mut forwarder) = api.portforward(&pod_name, &[port]).await else {
                        // NB: dropping the socket is what a refused connection looks like.
                        return;
                    };
                    let Some(mut upstream) = forwarder.take_stream(port) else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                    drop(upstream);
                    let _ = forwarder.join().await;
                });
            }
        });
        let forwarder = Forwarder {
            ns: ns.to_owned(),
            addr,
            task,
        };
        let mut forwarders = self.forwarders.lock().expect("not poisoned");
        // NB: a concurrent caller may have won; keep theirs, ours stops when dropped.
        Ok(forwarders.entry(key).or_insert(forwarder).addr)
    }

    /// Stops the forwarders into `ns`.
    pub(super) fn stop_forwarders(&self, ns: &str) {
        self.forwarders
            .lock()
            .expect("not poisoned")
            .retain(|_, f| f.ns != ns);
    }

    /// Stops every forwarder.
    pub(super) fn stop_all_forwarders(&self) {
        self.forwarders.lock().expect("not poisoned").clear();
    }
}
