//! The gateway of a docker network: the address of this machine as containers on that network
//! (kind nodes, minikube's docker-driver node, and the pods inside them) reach it.

use std::net::Ipv4Addr;

use super::command::Command;
use super::tools::{DOCKER_HINT, Tools, require};
use super::{Error, Result};

/// The `--format` template that prints every gateway of a network's IPAM config.
pub const GATEWAY_FORMAT: &str = "{{range .IPAM.Config}}{{.Gateway}} {{end}}";

/// The first IPv4 gateway of docker network `network`, from
/// `docker network inspect NETWORK --format '{{range .IPAM.Config}}{{.Gateway}} {{end}}'`.
///
/// `Ok(None)` when the network exists but has no IPv4 gateway.
pub(super) async fn gateway(tools: &Tools, network: &str) -> Result<Option<Ipv4Addr>> {
    require(tools.docker(), DOCKER_HINT)?;
    let command = Command::new(
        tools.docker(),
        &["network", "inspect", network, "--format", GATEWAY_FORMAT],
        tools.command_timeout(),
    );
    let stdout = command.run_ok(&|_: &str| {}).await?;
    Ok(first_ipv4(&stdout))
}

/// The first whitespace-separated word of `text` that is an IPv4 address.
pub fn first_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.split_whitespace().find_map(|word| word.parse().ok())
}

/// [`Error::NoHostAddress`] for a network that exists but has no IPv4 gateway.
pub(super) fn no_ipv4_gateway(cluster: String, network: &str) -> Error {
    Error::NoHostAddress {
        cluster,
        reason: format!(
            "docker network `{network}` has no IPv4 gateway (`docker network inspect {network}` \
             lists none); set PHASECHECK_HOST_ADDRESS to an IPv4 address of this machine that the cluster's pods \
                         can reach (external S3 and git services are not supported yet)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ipv4_among_several_gateways_is_taken() {
        assert_eq!(
            first_ipv4("fc00:f853:ccd:e793::1 172.18.0.1 10.0.0.1 "),
            Some(Ipv4Addr::new(172, 18, 0, 1))
        );
        assert_eq!(
            first_ipv4("172.18.0.1 fc00:f853:ccd:e793::1 \n"),
            Some(Ipv4Addr::new(172, 18, 0, 1))
        );
    }

    #[test]
    fn no_ipv4_gateway_is_none() {
        assert_eq!(first_ipv4("fc00:f853:ccd:e793::1 "), None);
        assert_eq!(first_ipv4(" \n"), None);
        assert_eq!(first_ipv4("<no value>"), None);
    }
}
