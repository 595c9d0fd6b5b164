//! Making a service on this host reachable from a cluster's pods by name: a Service without a
//! selector plus an EndpointSlice naming the host's address, applied in each scenario's
//! namespace, so workloads use `http://<name>:<port>` on every runtime that has cluster DNS.

use std::net::SocketAddr;

use serde_json::{Value, json};

/// The name workloads reach the scenario's backup store by.
pub const STORE_SERVICE: &str = "phasecheck-store";

/// The Service and EndpointSlice documents that make `name:<port>` reach `addr`.
///
/// `addr` must be an address the cluster's nodes route to (for kind, the gateway of the `kind`
/// Docker network), not loopback: EndpointSlices refuse loopback and link-local addresses.
pub fn service_documents(name: &str, addr: SocketAddr) -> Vec<Value> {
    let port = addr.port();
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]},
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-host"),
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "phasecheck",
                },
            },
            "addressType": if addr.is_ipv4() { "IPv4" } else { "IPv6" },
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [addr.ip().to_string()], "conditions": {"ready": true}}],
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_slice_points_the_service_at_the_host_address() {
        let docs = service_documents(STORE_SERVICE, "172.18.0.1:40123".parse().unwrap());
        let service: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(docs[0].clone()).unwrap();
        let spec = service.spec.unwrap();
        assert!(
            spec.selector.is_none(),
            "a selector would replace our endpoints"
        );
        assert_eq!(spec.ports.unwrap()[0].port, 40123);
        let slice: k8s_openapi::api::discovery::v1::EndpointSlice =
            serde_json::from_value(docs[1].clone()).unwrap();
        assert_eq!(
            slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
            STORE_SERVICE
        );
        assert_eq!(slice.endpoints[0].addresses, vec!["172.18.0.1".to_owned()]);
        assert_eq!(slice.address_type, "IPv4");
    }
}
