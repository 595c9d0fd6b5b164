//! `harness::cluster` driving `kind`, `minikube` and `docker` as real child processes: fake CLIs
//! (shell scripts in a temporary directory) log their argv to `calls.log` and answer as the real
//! tools do. Files next to them steer the answers: `kind-clusters` (what `kind get clusters`
//! lists), `kind-create-stderr` (kind create fails printing it), `kind-create-hangs`,
//! `kind-delete-fails`, `minikube-running`, `network-<name>` (what `docker network inspect <name>
//! --format …` prints; no file = no such network).

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::cluster::{Cluster, Error, Provider, Tools};
use tempfile::TempDir;

const KIND: &str = r#"#!/bin/sh
printf '%s\n' "kind $*" >> "$DIR/calls.log"
case "$1 $2" in
  "get clusters")
    if [ -s "$DIR/kind-clusters" ]; then cat "$DIR/kind-clusters"; else echo "No kind clusters found." >&2; fi ;;
  "create cluster")
    if [ -f "$DIR/kind-create-hangs" ]; then exec sleep 60; fi
    if [ -f "$DIR/kind-create-stderr" ]; then cat "$DIR/kind-create-stderr" >&2; exit 1; fi
    echo "Creating cluster \"$4\" ..." >&2
    echo " ✓ Ensuring node image (kindest/node:v1.33.1) 🖼" >&2
    echo " ✓ Starting control-plane 🕹️" >&2
    echo "Set kubectl context to \"kind-$4\"" >&2 ;;
  "delete cluster")
    if [ -f "$DIR/kind-delete-fails" ]; then echo "ERROR: failed to delete cluster \"$4\": permission denied" >&2; exit 1; fi
    echo "Deleting cluster \"$4\" ..." >&2 ;;
  "load docker-image")
    echo "Image: \"$3\" with ID \"sha256:0123\" not yet present on node \"$5-control-plane\", loading..." >&2 ;;
  *) echo "ERROR: unknown command \"$*\" for \"kind\"" >&2; exit 1 ;;
esac
"#;

const MINIKUBE: &str = r#"#!/bin/sh
printf '%s\n' "minikube $*" >> "$DIR/calls.log"
case "$*" in
  "-p "*" status")
    if [ -f "$DIR/minikube-running" ]; then
      printf '%s\n' "$2" "type: Control Plane" "host: Running" "kubelet: Running" "apiserver: Running" "kubeconfig: Configured"
    else
      echo "Profile \"$2\" not found. Run \"minikube profile list\" to view all profiles."; exit 85
    fi ;;
  "start -p "*)
    echo "[$3] minikube v1.36.0 on Debian"; echo "Done! kubectl is now configured to use \"$3\" cluster"
    touch "$DIR/minikube-running" ;;
  "-p "*" image load "*) ;;
  "delete -p "*) echo "Deleting \"$3\" in docker ..."; rm -f "$DIR/minikube-running" ;;
  *) echo "Error: unknown command \"$*\"" >&2; exit 64 ;;
esac
"#;

const DOCKER: &str = r#"#!/bin/sh
printf '%s\n' "docker $*" >> "$DIR/calls.log"
case "$1 $2" in
  "network inspect")
    if [ -f "$DIR/network-$3" ]; then cat "$DIR/network-$3"
    else echo "Error response from daemon: network $3 not found" >&2; exit 1; fi ;;
  *) echo "unknown command $*" >&2; exit 1 ;;
esac
"#;

/// A directory of fake CLIs and the files that steer them.
struct Fakes {
    dir: TempDir,
}

impl Fakes {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fakes = Self { dir };
        for (name, script) in [("kind", KIND), ("minikube", MINIKUBE), ("docker", DOCKER)] {
            let path = fakes.path(name);
            let dir_line = format!("DIR='{}'\n", fakes.dir.path().display());
            let script = script.replacen('\n', &format!("\n{dir_line}"), 1);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(fakes.path("kind-config.yaml"), "kind: Cluster\n").unwrap();
        fakes
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set(&self, file: &str, content: &str) -> &Self {
        std::fs::write(self.path(file), content).unwrap();
        self
    }

    fn tools(&self) -> Tools {
        Tools::default()
            .with_kind(self.path("kind"))
            .with_minikube(self.path("minikube"))
            .with_docker(self.path("docker"))
    }

    /// Every command the fakes ran, one line each: `kind get clusters`.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn kind(&self, node_image: Option<&str>) -> Provider {
        Provider::Kind {
            name: "phasecheck".into(),
            config: self.path("kind-config.yaml"),
            node_image: node_image.map(str::to_owned),
        }
    }

    fn create_line(&self) -> String {
        format!(
            "kind create cluster --name phasecheck --config {} --wait 180s",
            self.path("kind-config.yaml").display()
        )
    }
}

fn minikube(profile: &str) -> Provider {
    Provider::Minikube {
        profile: profile.into(),
    }
}

/// A progress callback that records what it hears.
fn recorder() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(&str) + Send + Sync + 'static,
) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    (heard, move |line: &str| {
        sink.lock().unwrap().push(line.to_owned())
    })
}

fn quiet(_: &str) {}

#[tokio::test]
async fn provisioning_kind_without_the_kind_binary_is_tool_missing_with_the_install_hint() {
    let fakes = Fakes::new();
    let missing = fakes.path("no-such-dir/kind");
    let tools = fakes.tools().with_kind(&missing);
    let e = Cluster::provision(fakes.kind(None), tools, quiet)
        .await
        .unwrap_err();
    let Error::ToolMissing { tool, .. } = &e else {
        panic!("not ToolMissing: {e}");
    };
    assert_eq!(Path::new(tool), missing);
    let text = e.to_string();
    assert!(
        text.contains("https://kind.sigs.k8s.io/docs/user/quick-start/#installation"),
        "{text}"
    );
    assert!(text.contains("Docker"), "{text}");
    assert!(fakes.calls().is_empty());
}

#[tokio::test]
async fn a_kind_binary_that_is_not_executable_counts_as_missing() {
    let fakes = Fakes::new();
    let kind = fakes.path("kind");
    std::fs::set_permissions(&kind, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ToolMissing { .. }), "{e}");
}

#[tokio::test]
async fn provisioning_minikube_without_the_binary_is_tool_missing_with_the_install_hint() {
    let fakes = Fakes::new();
    let tools = fakes
        .tools()
        .with_minikube("phasecheck-test-no-such-minikube");
    let e = Cluster::provision(minikube("phasecheck"), tools, quiet)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ToolMissing { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("phasecheck-test-no-such-minikube"), "{text}");
    assert!(
        text.contains("https://minikube.sigs.k8s.io/docs/start/"),
        "{text}"
    );
}

#[tokio::test]
async fn an_existing_kind_cluster_of_that_name_is_reused_and_not_deleted_at_teardown() {
    let fakes = Fakes::new();
    fakes.set("kind-clusters", "other\nphasecheck\n");
    let (heard, progress) = recorder();
    let cluster = Cluster::provision(fakes.kind(None), fakes.tools(), progress)
        .await
        .unwrap();
    assert!(!cluster.created());
    assert_eq!(cluster.kube_context().as_deref(), Some("kind-phasecheck"));
    assert!(
        heard
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("reusing kind cluster phasecheck")),
        "{heard:?}"
    );
    cluster.teardown(false).await.unwrap();
    assert_eq!(fakes.calls(), ["kind get clusters"]);
}

#[tokio::test]
async fn a_cluster_whose_name_only_contains_the_wanted_name_is_not_reused() {
    let fakes = Fakes::new();
    fakes.set("kind-clusters", "phasecheck-old\nmy-phasecheck\n");
    let cluster = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap();
    assert!(cluster.created());
    assert_eq!(
        fakes.calls(),
        ["kind get clusters".to_owned(), fakes.create_line()]
    );
}

#[tokio::test]
async fn a_created_kind_cluster_is_deleted_at_teardown() {
    let fakes = Fakes::new();
    let cluster = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap();
    assert!(cluster.created());
    cluster.teardown(false).await.unwrap();
    assert_eq!(
        fakes.calls(),
        [
            "kind get clusters".to_owned(),
            fakes.create_line(),
            "kind delete cluster --name phasecheck".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_created_kind_cluster_is_kept_at_teardown_when_asked() {
    let fakes = Fakes::new();
    let cluster = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap();
    assert!(cluster.created());
    cluster.teardown(true).await.unwrap();
    assert!(
        !fakes.calls().iter().any(|c| c.starts_with("kind delete")),
        "{:?}",
        fakes.calls()
    );
}

#[tokio::test]
async fn a_failed_delete_is_an_error_naming_the_command() {
    let fakes = Fakes::new();
    let cluster = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap();
    fakes.set("kind-delete-fails", "");
    let e = cluster.teardown(false).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Failed { .. }), "{text}");
    assert!(
        text.contains("kind delete cluster --name phasecheck"),
        "{text}"
    );
    assert!(text.contains("permission denied"), "{text}");
}

#[tokio::test]
async fn the_node_image_is_passed_to_kind_create_as_image() {
    let fakes = Fakes::new();
    let image = "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f";
    let (heard, progress) = recorder();
    Cluster::provision(fakes.kind(Some(image)), fakes.tools(), progress)
        .await
        .unwrap();
    assert_eq!(
        fakes.calls()[1],
        format!(
            "kind create cluster --name phasecheck --config {} --image {image} --wait 180s",
            fakes.path("kind-config.yaml").display()
        )
    );
    let heard = heard.lock().unwrap();
    assert!(
        heard
            .iter()
            .any(|l| l.contains(image) && l.contains("creating kind cluster phasecheck")),
        "{heard:?}"
    );
}

#[tokio::test]
async fn kind_create_reports_progress_and_kinds_own_output_through_the_callback() {
    let fakes = Fakes::new();
    let (heard, progress) = recorder();
    Cluster::provision(fakes.kind(None), fakes.tools(), progress)
        .await
        .unwrap();
    let heard = heard.lock().unwrap();
    let creating = format!(
        "creating kind cluster phasecheck from {} (takes a minute or two)",
        fakes.path("kind-config.yaml").display()
    );
    assert!(heard.contains(&creating), "{heard:?}");
    assert!(
        heard.contains(&"kind: ✓ Starting control-plane 🕹️".to_owned()),
        "{heard:?}"
    );
}

#[tokio::test]
async fn a_failing_kind_create_is_an_error_naming_the_command_and_quoting_its_stderr() {
    let fakes = Fakes::new();
    let mut stderr: String = (1..=30).map(|i| format!("noise line {i}\n")).collect();
    stderr.push_str(
        "ERROR: failed to create cluster: failed to ensure docker network: \
         command \"docker network create -d=bridge kind\" failed with error: exit status 1\n",
    );
    fakes.set("kind-create-stderr", &stderr);
    let e = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap_err();
    let Error::Failed {
        command, output, ..
    } = &e
    else {
        panic!("not Failed: {e}");
    };
    // The command line names the program as it was run: here, the fake's path.
    assert_eq!(
        *command,
        format!("{}/{}", fakes.dir.path().display(), fakes.create_line())
    );
    assert_eq!(output.lines().count(), 20, "{output}");
    let text = e.to_string();
    assert!(text.contains(&fakes.create_line()), "{text}");
    assert!(text.contains("exit status: 1"), "{text}");
    assert!(text.contains("failed to ensure docker network"), "{text}");
    assert!(!text.contains("noise line 11\n"), "only the tail: {text}");
    assert!(text.contains("noise line 12\n"), "{text}");
}

#[tokio::test]
async fn a_kind_create_that_times_out_is_killed_and_its_half_made_cluster_deleted() {
    let fakes = Fakes::new();
    fakes.set("kind-create-hangs", "");
    let tools = fakes
        .tools()
        .with_create_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let e = Cluster::provision(fakes.kind(None), tools, quiet)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(e.to_string().contains(&fakes.create_line()), "{e}");
    assert_eq!(
        fakes.calls().last().map(String::as_str),
        Some("kind delete cluster --name phasecheck")
    );
}

#[tokio::test]
async fn a_missing_kind_config_is_reported_before_kind_create_runs() {
    let fakes = Fakes::new();
    let provider = Provider::Kind {
        name: "phasecheck".into(),
        config: fakes.path("nowhere.yaml"),
        node_image: None,
    };
    let e = Cluster::provision(provider, fakes.tools(), quiet)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ConfigMissing { .. }), "{e}");
    assert!(e.to_string().contains("nowhere.yaml"), "{e}");
    assert_eq!(fakes.calls(), ["kind get clusters"]);
}

#[tokio::test]
async fn load_image_runs_kind_load_docker_image_with_the_cluster_name() {
    let fakes = Fakes::new();
    fakes.set("kind-clusters", "phasecheck\n");
    let cluster = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap();
    cluster.load_image("phasecheck/phasepod:dev").await.unwrap();
    assert_eq!(
        fakes.calls(),
        [
            "kind get clusters",
            "kind load docker-image phasecheck/phasepod:dev --name phasecheck"
        ]
    );
}

#[tokio::test]
async fn load_image_runs_minikube_image_load_for_the_profile() {
    let fakes = Fakes::new();
    fakes.set("minikube-running", "");
    let cluster = Cluster::provision(minikube("drill"), fakes.tools(), quiet)
        .await
        .unwrap();
    cluster.load_image("phasecheck/phasepod:dev").await.unwrap();
    assert_eq!(
        fakes.calls(),
        [
            "minikube -p drill status",
            "minikube -p drill image load phasecheck/phasepod:dev"
        ]
    );
}

#[tokio::test]
async fn an_existing_cluster_runs_no_tool_loads_nothing_and_is_never_deleted() {
    let fakes = Fakes::new();
    let provider = Provider::Existing {
        context: Some("staging".into()),
    };
    let cluster = Cluster::provision(provider, fakes.tools(), quiet)
        .await
        .unwrap();
    assert!(!cluster.created());
    assert_eq!(cluster.kube_context().as_deref(), Some("staging"));
    cluster.load_image("phasecheck/phasepod:dev").await.unwrap();
    cluster.teardown(false).await.unwrap();
    assert!(fakes.calls().is_empty(), "{:?}", fakes.calls());

    let current = Cluster::provision(Provider::Existing { context: None }, fakes.tools(), quiet)
        .await
        .unwrap();
    assert_eq!(current.kube_context(), None);
}

#[tokio::test]
async fn the_kind_host_address_is_the_first_ipv4_gateway_of_the_kind_network() {
    let fakes = Fakes::new();
    fakes.set("kind-clusters", "phasecheck\n").set(
        "network-kind",
        r#"{"Name":"kind","Id":"0123456789abcdef","Driver":"bridge","IPAM":{"Config":[{"Subnet":"fc00:f853:ccd:e793::/64","Gateway":"fc00:f853:ccd:e793::1"},{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"},{"Subnet":"10.9.0.0/16","Gateway":"10.9.0.1"}]}}"#,
    );
    let cluster = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap();
    assert_eq!(
        cluster.host_address().await.unwrap(),
        Ipv4Addr::new(172, 18, 0, 1)
    );
    assert_eq!(
        fakes.calls()[1],
        "docker network inspect kind --format {{json .}}"
    );
}

#[tokio::test]
async fn a_kind_network_without_an_ipv4_gateway_or_a_local_bridge_is_no_host_address() {
    let fakes = Fakes::new();
    // NB: no interface `br-0123456789ab` exists on this machine, so the fallback finds nothing.
    fakes.set("kind-clusters", "phasecheck\n").set(
        "network-kind",
        r#"{"Name":"kind","Id":"0123456789abcdef","Driver":"bridge","IPAM":{"Config":[{"Subnet":"fc00:f853:ccd:e793::/64","Gateway":"fc00:f853:ccd:e793::1"},{"Subnet":"172.18.0.0/16"}]}}"#,
    );
    let cluster = Cluster::provision(fakes.kind(None), fakes.tools(), quiet)
        .await
        .unwrap();
    let e = cluster.host_address().await.unwrap_err();
    assert!(matches!(e, Error::NoHostAddress { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("no IPv4 gateway"), "{text}");
    assert!(text.contains("br-0123456789ab"), "{text}");
    assert!(text.contains("PHASECHECK_HOST_ADDRESS"), "{text}");
}

#[tokio::test]
async fn an_existing_cluster_has_no_host_address_and_the_error_says_to_set_one() {
    let fakes = Fakes::new();
    let provider = Provider::Existing {
        context: Some("staging".into()),
    };
    let cluster = Cluster::provision(provider, fakes.tools(), quiet)
        .await
        .unwrap();
    let e = cluster.host_address().await.unwrap_err();
    assert!(matches!(e, Error::NoHostAddress { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("staging"), "{text}");
    assert!(text.contains("PHASECHECK_HOST_ADDRESS"), "{text}");
    assert!(
        fakes.calls().is_empty(),
        "nothing guessed: {:?}",
        fakes.calls()
    );
}

#[tokio::test]
async fn the_minikube_host_address_is_the_gateway_of_the_network_named_after_the_profile() {
    let fakes = Fakes::new();
    fakes
        .set("minikube-running", "")
        .set(
            "network-drill",
            r#"{"Name":"drill","Id":"fedcba9876543210","Driver":"bridge","IPAM":{"Config":[{"Subnet":"192.168.49.0/24","Gateway":"192.168.49.1"}]}}"#,
        );
    let cluster = Cluster::provision(minikube("drill"), fakes.tools(), quiet)
        .await
        .unwrap();
    assert_eq!(
        cluster.host_address().await.unwrap(),
        Ipv4Addr::new(192, 168, 49, 1)
    );
}

#[tokio::test]
async fn a_minikube_profile_without_a_docker_network_has_no_host_address_and_the_error_names_the_docker_driver()
 {
    let fakes = Fakes::new();
    fakes.set("minikube-running", "");
    let cluster = Cluster::provision(minikube("drill"), fakes.tools(), quiet)
        .await
        .unwrap();
    let e = cluster.host_address().await.unwrap_err();
    assert!(matches!(e, Error::NoHostAddress { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("--driver=docker"), "{text}");
    assert!(text.contains("network drill not found"), "{text}");
    assert!(text.contains("PHASECHECK_HOST_ADDRESS"), "{text}");
}

#[tokio::test]
async fn a_running_minikube_profile_is_reused_and_not_deleted_at_teardown() {
    let fakes = Fakes::new();
    fakes.set("minikube-running", "");
    let cluster = Cluster::provision(minikube("drill"), fakes.tools(), quiet)
        .await
        .unwrap();
    assert!(!cluster.created());
    assert_eq!(cluster.kube_context().as_deref(), Some("drill"));
    cluster.teardown(false).await.unwrap();
    assert_eq!(fakes.calls(), ["minikube -p drill status"]);
}

#[tokio::test]
async fn a_minikube_profile_that_is_not_running_is_started_and_deleted_at_teardown() {
    let fakes = Fakes::new();
    let (heard, progress) = recorder();
    let cluster = Cluster::provision(minikube("drill"), fakes.tools(), progress)
        .await
        .unwrap();
    assert!(cluster.created());
    assert!(
        heard
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("minikube: Done!")),
        "{heard:?}"
    );
    cluster.teardown(false).await.unwrap();
    assert_eq!(
        fakes.calls(),
        [
            "minikube -p drill status",
            "minikube start -p drill",
            "minikube delete -p drill"
        ]
    );
}

#[tokio::test]
async fn provisioning_runs_on_a_spawned_task_when_the_callback_is_sync() {
    let fakes = Fakes::new();
    let tools = fakes.tools();
    let provider = fakes.kind(None);
    let (_, progress) = recorder();
    let cluster = tokio::spawn(Cluster::provision(provider, tools, progress))
        .await
        .unwrap()
        .unwrap();
    assert!(cluster.created());
}

#[tokio::test]
async fn kind_is_found_on_path_by_name_and_a_bare_unknown_name_is_missing() {
    assert!(harness::cluster::tool_on_path(&OsString::from("sh")));
    assert!(!harness::cluster::tool_on_path(&OsString::from(
        "phasecheck-test-no-such-tool"
    )));
    let fakes = Fakes::new();
    let path = std::env::join_paths([fakes.dir.path()]).unwrap();
    assert_eq!(
        harness::cluster::resolve_tool(&OsString::from("kind"), Some(&path)),
        Some(fakes.path("kind"))
    );
}
