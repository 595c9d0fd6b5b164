//! [`super::Provider::Kind`]: clusters made with `kind`.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::Path;

use super::command::Command;
use super::tools::{KIND_HINT, Tools, require};
use super::{Error, Result, network};

/// What `kind create cluster --wait` is given to bring the control plane up.
pub const KIND_WAIT: &str = "180s";

/// The docker network kind puts every cluster's nodes on.
pub const KIND_NETWORK: &str = "kind";

/// Reuses kind cluster `name` when `kind get clusters` lists it, else creates it from `config`.
/// Returns whether it was created.
pub(super) async fn provision<P: Fn(&str) + ?Sized>(
    tools: &Tools,
    name: &str,
    config: &Path,
    node_image: Option<&str>,
    progress: &P,
) -> Result<bool> {
    require(tools.kind(), KIND_HINT)?;
    let list = Command::new(tools.kind(), &["get", "clusters"], tools.command_timeout());
    let clusters = list.run_ok(progress).await?;
    // NB: with no clusters kind prints "No kind clusters found." to standard error, not stdout.
    if clusters.lines().any(|line| line.trim() == name) {
        progress(&format!(
            "reusing kind cluster {name} (listed by `kind get clusters`)"
        ));
        return Ok(false);
    }
    if !config.is_file() {
        return Err(Error::ConfigMissing {
            path: config.to_owned(),
        });
    }
    let mut args: Vec<OsString> = vec![
        "create".into(),
        "cluster".into(),
        "--name".into(),
        name.into(),
        "--config".into(),
        config.into(),
    ];
    if let Some(image) = node_image {
        args.extend(["--image".into(), image.into()]);
    }
    args.extend(["--wait".into(), KIND_WAIT.into()]);
    let with_image = node_image
        .map(|image| format!(", node image {image}"))
        .unwrap_or_default();
    progress(&format!(
        "creating kind cluster {name} from {}{with_image} (takes a minute or two)",
        config.display()
    ));
    let create = Command::new(tools.kind(), &args, tools.create_timeout()).echo();
    let echo = |line: &str| progress(&format!("kind: {}", line.trim()));
    match create.run_ok(&echo).await {
        Ok(_) => {
            progress(&format!("kind cluster {name} is up"));
            Ok(true)
        }
        Err(timeout @ Error::Timeout { .. }) => {
            // NB: kind deletes a cluster it failed to create itself, but not when it is killed.
            progress(&format!(
                "kind create timed out; deleting the half-made cluster {name}"
            ));
            if let Err(e) = delete(tools, name).await {
                tracing::warn!(error = %e, cluster = name, "could not delete a half-made kind cluster");
            }
            Err(timeout)
        }
        Err(e) => Err(e),
    }
}

/// `kind load docker-image IMAGE --name NAME`.
pub(super) async fn load_image(tools: &Tools, name: &str, image: &str) -> Result<()> {
    require(tools.kind(), KIND_HINT)?;
    Command::new(
        tools.kind(),
        &["load", "docker-image", image, "--name", name],
        tools.command_timeout(),
    )
    .run_ok(&|_: &str| {})
    .await
    .map(drop)
}

/// `kind delete cluster --name NAME`.
pub(super) async fn delete(tools: &Tools, name: &str) -> Result<()> {
    require(tools.kind(), KIND_HINT)?;
    Command::new(
        tools.kind(),
        &["delete", "cluster", "--name", name],
        tools.command_timeout(),
    )
    .run_ok(&|_: &str| {})
    .await
    .map(drop)
}

/// This machine's address on the docker network [`KIND_NETWORK`].
pub(super) async fn host_address(tools: &Tools, cluster: String) -> Result<Ipv4Addr> {
    network::host_address(tools, KIND_NETWORK)
        .await?
        .map_err(|why| network::no_host_address(cluster, KIND_NETWORK, &why))
}
