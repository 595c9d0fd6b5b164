//! [`super::Provider::Minikube`]: minikube profiles.

use std::net::Ipv4Addr;

use super::command::Command;
use super::tools::{MINIKUBE_HINT, Tools, require};
use super::{Error, Result, network};

/// Reuses minikube profile `profile` when `minikube -p PROFILE status` exits 0 (running), else
/// runs `minikube start -p PROFILE`. Returns whether it was started.
pub(super) async fn provision<P: Fn(&str) + ?Sized>(
    tools: &Tools,
    profile: &str,
    progress: &P,
) -> Result<bool> {
    require(tools.minikube(), MINIKUBE_HINT)?;
    let status = Command::new(
        tools.minikube(),
        &["-p", profile, "status"],
        tools.command_timeout(),
    )
    .run(progress)
    .await?;
    if status.status.success() {
        progress(&format!("reusing running minikube profile {profile}"));
        return Ok(false);
    }
    progress(&format!(
        "starting minikube profile {profile} (takes a few minutes)"
    ));
    let start = Command::new(
        tools.minikube(),
        &["start", "-p", profile],
        tools.create_timeout(),
    )
    .echo();
    start
        .run_ok(&|line: &str| progress(&format!("minikube: {}", line.trim())))
        .await?;
    progress(&format!("minikube profile {profile} is running"));
    Ok(true)
}

/// `minikube -p PROFILE image load IMAGE`.
pub(super) async fn load_image(tools: &Tools, profile: &str, image: &str) -> Result<()> {
    require(tools.minikube(), MINIKUBE_HINT)?;
    Command::new(
        tools.minikube(),
        &["-p", profile, "image", "load", image],
        tools.command_timeout(),
    )
    .run_ok(&|_: &str| {})
    .await
    .map(drop)
}

/// `minikube delete -p PROFILE`.
pub(super) async fn delete(tools: &Tools, profile: &str) -> Result<()> {
    require(tools.minikube(), MINIKUBE_HINT)?;
    Command::new(
        tools.minikube(),
        &["delete", "-p", profile],
        tools.command_timeout(),
    )
    .run_ok(&|_: &str| {})
    .await
    .map(drop)
}

/// This machine's address on the docker network named after the profile, which only minikube's docker
/// driver creates.
pub(super) async fn host_address(
    tools: &Tools,
    profile: &str,
    cluster: String,
) -> Result<Ipv4Addr> {
    let advice = "services embedded in the harness need minikube's docker driver \
                  (`minikube start --driver=docker`); with another driver set PHASECHECK_HOST_ADDRESS to an address of this \
                  machine the cluster's pods can reach";
    match network::host_address(tools, profile).await {
        Ok(Ok(address)) => Ok(address),
        Ok(Err(why)) => Err(network::no_host_address(cluster, profile, &why)),
        Err(Error::Failed { output, .. }) => Err(Error::NoHostAddress {
            cluster,
            reason: format!(
                "there is no docker network `{profile}` (`docker network inspect {profile}`: \
                 {output}); {advice}"
            ),
        }),
        Err(Error::ToolMissing { tool, .. }) => Err(Error::NoHostAddress {
            cluster,
            reason: format!("`{tool}` is not on PATH; {advice}"),
        }),
        Err(e) => Err(e),
    }
}
