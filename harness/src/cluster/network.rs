//! The address of this machine on a docker network: where containers on that network (kind nodes,
//! minikube's docker-driver node, the pods inside them, the Docker tier's containers) reach
//! services the harness runs.
//!
//! The network's IPAM config names its gateway on most daemons, but not on all: a freshly
//! started Debian `docker.io` 20.10 reports the default `bridge` as `{"Subnet":"172.17.0.0/16"}`
//! with no `Gateway`, and so does any network created with `--subnet` but no `--gateway`. The
//! gateway is then still there, as the IPv4 address of the Linux bridge behind the network
//! (`docker0` for `bridge`, the `com.docker.network.bridge.name` option if set, else
//! `br-<first 12 hex digits of the network ID>`). So the lookup is, in order:
//!
//! 1. the first IPv4 `Gateway` of the IPAM config;
//! 2. the IPv4 address of the network's bridge interface on this machine that lies in one of the
//!    network's subnets (a daemon on this machine, as for kind and the Docker tier);
//! 3. otherwise no address, with an error saying what was looked at.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::command::Command;
use super::tools::{DOCKER_HINT, Tools, require};
use super::{Error, Result};

/// The `--format` template [`host_address`] inspects a network with.
pub const INSPECT_FORMAT: &str = "{{json .}}";

/// The docker option naming a bridge network's Linux interface.
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// What `docker network inspect NETWORK --format '{{json .}}'` says about one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkFacts {
    /// The network's name.
    pub name: String,
    /// The network's ID.
    pub id: String,
    /// The network driver (`bridge` for the default and user-defined networks).
    pub driver: String,
    /// Every IPv4 gateway of the IPAM config, in order.
    pub gateways: Vec<Ipv4Addr>,
    /// Every IPv4 subnet of the IPAM config: network address and prefix length.
    pub subnets: Vec<(Ipv4Addr, u8)>,
    /// The `com.docker.network.bridge.name` option, if set.
    pub bridge_option: Option<String>,
}

impl NetworkFacts {
    /// Parses the JSON `docker network inspect --format '{{json .}}'` prints for one network
    /// (a one-element array, as plain `docker network inspect` prints, is accepted too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text.trim())
            .map_err(|e| format!("`docker network inspect` printed no JSON ({e}): `{text}`"))?;
        let value = match value {
            Value::Array(mut items) if items.len() == 1 => items.remove(0),
            other => other,
        };
        let text_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let configs = value["IPAM"]["Config"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(NetworkFacts {
            name: text_of(&value["Name"]),
            id: text_of(&value["Id"]),
            driver: text_of(&value["Driver"]),
            gateways: configs
                .iter()
                .filter_map(|c| c["Gateway"].as_str()?.parse().ok())
                .collect(),
            subnets: configs
                .iter()
                .filter_map(|c| parse_subnet(c["Subnet"].as_str()?))
                .collect(),
            bridge_option: value["Options"][BRIDGE_NAME_OPTION]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }

    /// The Linux bridge interface behind the network, for the `bridge` driver: the daemon's
    /// option if set, else `br-` and the first 12 hex digits of the ID.
    pub fn bridge_interface(&self) -> Option<String> {
        if let Some(name) = &self.bridge_option {
            return Some(name.clone());
        }
        (self.driver == "bridge" && self.id.len() >= 12).then(|| format!("br-{}", &self.id[..12]))
    }

    /// Whether `address` lies in one of the network's IPv4 subnets.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.subnets.iter().any(|&(net, len)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(address) & mask == u32::from(net) & mask
        })
    }

    /// This machine's address on the network (see the module docs), with `interface_addresses`
    /// giving the IPv4 addresses of a local interface by name. `Err` says what was looked at.
    pub fn host_address(
        &self,
        interface_addresses: impl Fn(&str) -> Vec<Ipv4Addr>,
    ) -> Result<Ipv4Addr, String> {
        if let Some(&gateway) = self.gateways.first() {
            return Ok(gateway);
        }
        let Some(interface) = self.bridge_interface() else {
            return Err(format!(
                "its IPAM config names no IPv4 gateway and it is not a bridge network \
                 (driver `{}`), so no interface of this machine stands for it",
                self.driver
            ));
        };
        let addresses = interface_addresses(&interface);
        addresses
            .iter()
            .copied()
            .find(|a| self.contains(*a))
            .ok_or_else(|| {
                format!(
                    "its IPAM config names no IPv4 gateway, and its bridge interface `{interface}` \
                     has no IPv4 address in its subnets {:?} on this machine (addresses: {addresses:?}; \
                     is the daemon on another machine?)",
                    self.subnets
                        .iter()
                        .map(|(n, l)| format!("{n}/{l}"))
                        .collect::<Vec<_>>()
                )
            })
    }
}

/// The IPv4 addresses of local interface `name` (none when it does not exist).
pub fn interface_ipv4(name: &str) -> Vec<Ipv4Addr> {
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addresses
        .filter(|a| a.interface_name == name)
        .filter_map(|a| Some(a.address?.as_sockaddr_in()?.ip()))
        .collect()
}

/// This machine's IPv4 address on docker network `network` (see the module docs).
///
/// `Ok(Err(reason))` when the network exists but no address could be found; `Err` when
/// `docker network inspect` itself failed.
pub async fn host_address(
    tools: &Tools,
    network: &str,
) -> Result<std::result::Result<Ipv4Addr, String>> {
    require(tools.docker(), DOCKER_HINT)?;
    let command = Command::new(
        tools.docker(),
        &["network", "inspect", network, "--format", INSPECT_FORMAT],
        tools.command_timeout(),
    );
    let stdout = command.run_ok(&|_: &str| {}).await?;
    Ok(NetworkFacts::parse(&stdout).and_then(|facts| facts.host_address(interface_ipv4)))
}

/// [`Error::NoHostAddress`] for a network that exists but offers no address of this machine.
pub(super) fn no_host_address(cluster: String, network: &str, why: &str) -> Error {
    Error::NoHostAddress {
        cluster,
        reason: format!(
            "docker network `{network}`: {why}; set PHASECHECK_HOST_ADDRESS to an IPv4 address of \
             this machine that the cluster's pods can reach"
        ),
    }
}

/// `a.b.c.d/len` as network address and prefix length.
fn parse_subnet(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (address, len) = text.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((address.parse().ok()?, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default bridge of a freshly started Debian docker.io 20.10.24, as seen on CI.
    const FRESH_BRIDGE: &str = r#"{"Name":"bridge","Id":"5f4d0c0e7a9b8e1c2d3f","Driver":"bridge","IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16"}]},"Options":{"com.docker.network.bridge.default_bridge":"true","com.docker.network.bridge.name":"docker0"}}"#;

    /// A user-defined network created with `--subnet` only.
    const USER_NETWORK: &str = r#"[{"Name":"kind","Id":"e5a179a0bfa0c3d2e1f00112233445566778899aabbccddeeff00112233445566","Driver":"bridge","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"fc00:f853:ccd:e793::/64"},{"Subnet":"172.31.0.0/16"}]},"Options":{}}]"#;

    fn no_interfaces(_: &str) -> Vec<Ipv4Addr> {
        Vec::new()
    }

    #[test]
    fn the_first_ipv4_gateway_is_taken_when_the_ipam_config_names_one() {
        let text = r#"{"Name":"kind","Id":"ab","Driver":"bridge","IPAM":{"Config":[{"Subnet":"fc00:f853:ccd:e793::/64","Gateway":"fc00:f853:ccd:e793::1"},{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]}}"#;
        let facts = NetworkFacts::parse(text).unwrap();
        assert_eq!(
            facts.host_address(no_interfaces),
            Ok(Ipv4Addr::new(172, 18, 0, 1))
        );
    }

    #[test]
    fn a_bridge_without_a_gateway_is_reached_at_its_interface_address_in_its_subnet() {
        let facts = NetworkFacts::parse(FRESH_BRIDGE).unwrap();
        assert_eq!(facts.bridge_interface().as_deref(), Some("docker0"));
        let interfaces = |name: &str| match name {
            "docker0" => vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(172, 17, 0, 1)],
            _ => Vec::new(),
        };
        assert_eq!(
            facts.host_address(interfaces),
            Ok(Ipv4Addr::new(172, 17, 0, 1))
        );
    }

    #[test]
    fn a_user_network_without_a_gateway_is_found_through_its_br_interface() {
        let facts = NetworkFacts::parse(USER_NETWORK).unwrap();
        assert_eq!(facts.bridge_interface().as_deref(), Some("br-e5a179a0bfa0"));
        let interfaces = |name: &str| {
            if name == "br-e5a179a0bfa0" {
                vec![Ipv4Addr::new(172, 31, 0, 1)]
            } else {
                Vec::new()
            }
        };
        assert_eq!(
            facts.host_address(interfaces),
            Ok(Ipv4Addr::new(172, 31, 0, 1))
        );
    }

    #[test]
    fn no_gateway_and_no_interface_is_an_error_saying_what_was_looked_at() {
        let facts = NetworkFacts::parse(FRESH_BRIDGE).unwrap();
        let why = facts.host_address(no_interfaces).unwrap_err();
        assert!(why.contains("docker0"), "{why}");
        assert!(why.contains("172.17.0.0/16"), "{why}");
    }

    #[test]
    fn output_that_is_not_json_is_an_error_quoting_it() {
        let why = NetworkFacts::parse("172.18.0.1 ").unwrap_err();
        assert!(why.contains("172.18.0.1"), "{why}");
    }
}
