//! The Docker tier: the reference image, [`harness::image::REFERENCE_IMAGE`], run as real
//! containers against the embedded object store and git server.
//!
//! Each test checks that a Docker daemon answers; without one it prints
//! `SKIPPED (no Docker daemon): <test>` and passes, unless `PHASECHECK_REQUIRE_DOCKER=1` (CI) makes
//! it fail. The image is built once per test binary (a static release build of phasepod: minutes
//! when cold, seconds when warm).
//!
//! Network: containers run on Docker's default bridge network, as a pod runs on its own network.
//! The embedded services listen on the host's address on the bridge (its IPAM gateway, or the
//! address of `docker0` when the daemon reports no gateway, as a freshly started docker.io 20.10
//! does: `harness::cluster::docker_host_address`), looked up before the image is built so a daemon
//! the tier cannot use fails every test in seconds; containers reach the services by the name
//! `phasecheck-store` (`--add-host phasecheck-store:host-gateway`), so name resolution in the
//! static binary is exercised too. The host reaches `serve` at the container's bridge address.
//! Nothing is published and nothing listens beyond loopback and the bridge.
//!
//! Every container runs hardened, as a restricted pod would: `--read-only --tmpfs /tmp
//! --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges`. The data volume is a host
//! directory owned by uid 65532 mounted at `/data` (read-only for the maintenance container and
//! `verify`); credentials are files in a directory mounted read-only at
//! `/etc/phasepod/credentials`, named by the `*_FILE` variables (docs/CONTRACTS.md). The run
//! container gets no credentials at all.
//!
//! Containers are named `phasecheck-<run id>-<role>-<n>` and removed by a guard, also when a test
//! fails; volumes and credential directories are temporary directories.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use harness::app::AppClient;
use harness::cluster::{NetworkFacts, Tools, docker_host_address, interface_ipv4};
use harness::dataset::Dataset;
use harness::image::{
    BINARY_PATH, ImageBuilder, ImageInfo, ImageSpec, NONROOT_ID, REFERENCE_IMAGE, TOOLS_IMAGE,
    build_reference_image, docker_available,
};
use harness::services::{EmbeddedGitServer, EmbeddedObjectStore};
use harness::subject::Backend;
use rstest::rstest;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The name containers use for the host's loopback services.
const STORE_HOST: &str = "phasecheck-store";
/// The bucket backups go to.
const BUCKET: &str = "phasecheck";
/// The key prefix of backups in the bucket.
const PREFIX: &str = "backups/";
/// The git repository backups go to.
const REPOSITORY: &str = "backups";
/// The branch backups go to.
const BRANCH: &str = "main";
/// Where credentials are mounted in containers.
const CREDENTIALS_DIR: &str = "/etc/phasepod/credentials";
/// How long a run-to-completion container (restore, backup --once, verify) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for a condition (app healthy, backups appearing).
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The port `serve` listens on inside its container.
const APP_PORT: u16 = 8080;
/// How often to re-check a condition.
const POLL: Duration = Duration::from_millis(200);
/// The largest acceptable image.
const MAX_IMAGE_BYTES: u64 = 40_000_000;

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_reference_image_is_from_scratch_small_and_runs_as_nonroot() {
    let Some(image) =
        image_or_skip("the_reference_image_is_from_scratch_small_and_runs_as_nonroot").await
    else {
        return;
    };
    assert!(
        image.size_bytes < MAX_IMAGE_BYTES,
        "{} is {} bytes, more than {MAX_IMAGE_BYTES}",
        image.tag,
        image.size_bytes
    );

    let config = docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.User}} {{json .Config.Entrypoint}} {{len .RootFS.Layers}} {{json .Parent}}",
        REFERENCE_IMAGE,
    ])
    .await;
    assert_eq!(
        config.trim(),
        format!(r#""{NONROOT_ID}:{NONROOT_ID}" ["{BINARY_PATH}"] 1 """#),
        "user, entrypoint, one layer, no parent image"
    );

    // The one layer holds exactly the rootfs: no shell, no libc, nothing from a base image.
    let layer = only_layer_of(REFERENCE_IMAGE).await;
    let listing: Vec<String> = layer.keys().cloned().collect();
    let mut expected = vec![
        "etc/",
        "etc/group",
        "etc/nsswitch.conf",
        "etc/passwd",
        "phasepod",
        "tmp/",
    ];
    if listing.iter().any(|p| p.starts_with("etc/ssl/")) {
        expected.extend([
            "etc/ssl/",
            "etc/ssl/certs/",
            "etc/ssl/certs/ca-certificates.crt",
        ]);
    }
    expected.sort_unstable();
    assert_eq!(listing, expected, "the layer's files");
    assert_eq!(layer["tmp/"], 0o1777, "/tmp is world-writable and sticky");

    // The static binary starts under the hardening flags, as the image's default user.
    let container = Container::new("help");
    let output = container.run_to_completion(&["--help"], &[], &[]).await;
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("restore"),
        "`phasepod --help` in a container: {}",
        describe(&output)
    );
}

#[rstest]
#[case::s3(Backend::S3)]
#[case::git(Backend::Git)]
#[tokio::test]
async fn a_backup_taken_in_a_container_restores_in_a_fresh_container_and_verifies(
    #[case] backend: Backend,
) {
    let test = "a_backup_taken_in_a_container_restores_in_a_fresh_container_and_verifies";
    let Some(_image) = image_or_skip(&format!("{test}::{}", backend.as_str())).await else {
        return;
    };
    let store = Store::start(backend).await;
    let dataset = Dataset::generated("docker", 12, 3000).with_nested_paths();
    let data = Volume::seeded(&dataset);

    let backup = Container::new("backup");
    let output = backup
        .run_to_completion(
            &["backup", "--once"],
            &store.env(),
            &[data.mount_read_only(), store.credentials_mount()],
        )
        .await;
    assert!(
        output.status.success(),
        "backup --once: {}",
        describe(&output)
    );
    let backups = store.backups().await;
    assert_eq!(backups.len(), 1, "one backup in the store: {backups:?}");

    let restored = Volume::empty();
    restore_into(&restored, &store).await;
    verify_in_container(&restored).await;
    assert_eq!(restored.dataset(), dataset, "the restored files");
}

/// A user-defined network created with `--subnet` alone reports no gateway in its IPAM config,
/// like the default bridge of a freshly started Debian docker.io 20.10: the host is still found,
/// at its bridge interface's address, and containers on that network take a backup there and
/// restore it.
#[tokio::test]
async fn a_network_whose_ipam_config_names_no_gateway_still_reaches_the_host() {
    let test = "a_network_whose_ipam_config_names_no_gateway_still_reaches_the_host";
    let Some(_image) = image_or_skip(test).await else {
        return;
    };
    let network = Network::create_without_gateway().await;
    let inspected = docker_ok(&[
        "network",
        "inspect",
        &network.name,
        "--format",
        harness::cluster::INSPECT_FORMAT,
    ])
    .await;
    let facts = NetworkFacts::parse(&inspected).expect("docker prints the network as JSON");
    assert!(
        facts.gateways.is_empty(),
        "the case under test: no gateway in the IPAM config: {facts:?}"
    );
    let host = docker_host_address(&Tools::default(), &network.name)
        .await
        .expect("docker network inspect runs")
        .expect("the host address is found");
    assert_eq!(host, network.first_host, "the bridge's own address");
    let interface = facts.bridge_interface().expect("a bridge network");
    assert!(
        interface_ipv4(&interface).contains(&host),
        "{host} is an address of {interface}"
    );

    let store = Store::start_on(Backend::S3, host).await;
    let dataset = Dataset::generated("no-gateway", 4, 1000);
    let data = Volume::seeded(&dataset);
    let backup = Container::new("backup").on_network(&network.name, host);
    let output = backup
        .run_to_completion(
            &["backup", "--once"],
            &store.env(),
            &[data.mount_read_only(), store.credentials_mount()],
        )
        .await;
    assert!(
        output.status.success(),
        "backup --once on {}: {}",
        network.name,
        describe(&output)
    );
    assert_eq!(store.backups().await.len(), 1, "one backup in the store");
}

#[rstest]
#[case::s3(Backend::S3)]
#[case::git(Backend::Git)]
#[tokio::test]
async fn serve_in_a_container_answers_healthz_and_serves_the_restored_files(
    #[case] backend: Backend,
) {
    let test = "serve_in_a_container_answers_healthz_and_serves_the_restored_files";
    let Some(_image) = image_or_skip(&format!("{test}::{}", backend.as_str())).await else {
        return;
    };
    let store = Store::start(backend).await;
    let dataset = Dataset::generated("served", 5, 2000).with_nested_paths();
    let seed = Volume::seeded(&dataset);
    let backup = Container::new("backup");
    let output = backup
        .run_to_completion(
            &["backup", "--once"],
            &store.env(),
            &[seed.mount_read_only(), store.credentials_mount()],
        )
        .await;
    assert!(
        output.status.success(),
        "backup --once: {}",
        describe(&output)
    );

    let data = Volume::empty();
    restore_into(&data, &store).await;

    // The run phase: no credentials, no backend settings, reached at its bridge address.
    let serve = Container::new("serve");
    serve
        .start(
            &["serve"],
            &[
                ("DATA_DIR", "/data".to_owned()),
                ("POD_IP", Ipv4Addr::UNSPECIFIED.to_string()),
                ("PORT", APP_PORT.to_string()),
            ],
            &[data.mount()],
        )
        .await;
    let app = AppClient::new(SocketAddr::from((serve.ip().await, APP_PORT)))
        .with_timeout(Duration::from_secs(5));
    let deadline = Instant::now() + WAIT_TIMEOUT;
    while let Err(e) = app.get("/healthz").await {
        assert!(
            Instant::now() < deadline && serve.is_running().await,
            "serve never answered /healthz ({e}); its log:\n{}",
            serve.logs().await
        );
        tokio::time::sleep(POLL).await;
    }
    for (path, bytes) in &dataset.files {
        let served = app
            .get(&format!("/files/{path}"))
            .await
            .expect("the file is served");
        assert_eq!(served.as_ref(), bytes.as_slice(), "GET /files/{path}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&app.get("/manifest").await.expect("the manifest is served"))
            .expect("the manifest is JSON");
    assert_eq!(
        manifest["files"].as_array().map(Vec::len),
        Some(dataset.files.len()),
        "the served manifest lists the restored files: {manifest}"
    );

    // The process really runs as nonroot, without capabilities, unable to gain privileges.
    let status = serve.process_status().await;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let id = NONROOT_ID.to_string();
    assert_eq!(field("Uid:"), [id.as_str(); 4].join(" "), "uids");
    assert_eq!(field("Gid:"), [id.as_str(); 4].join(" "), "gids");
    assert_eq!(
        field("CapEff:"),
        "0000000000000000",
        "effective capabilities"
    );
    assert_eq!(field("NoNewPrivs:"), "1", "no_new_privs");
}

#[rstest]
#[case::s3(Backend::S3)]
#[case::git(Backend::Git)]
#[tokio::test]
async fn the_maintenance_container_takes_scheduled_backups_from_a_read_only_data_mount(
    #[case] backend: Backend,
) {
    let test = "the_maintenance_container_takes_scheduled_backups_from_a_read_only_data_mount";
    let Some(_image) = image_or_skip(&format!("{test}::{}", backend.as_str())).await else {
        return;
    };
    let store = Store::start(backend).await;
    let dataset = Dataset::generated("scheduled", 6, 1500);
    let data = Volume::seeded(&dataset);
    let before = harness::dataset::Snapshot::of(data.path()).expect("a snapshot");

    // Every two seconds: the sidecar must take a backup, then wait for the next one.
    let mut env = store.env();
    env.push(("CRON", "*/2 * * * * *".to_owned()));
    env.push(("KEEP", "5".to_owned()));
    let maintenance = Container::new("maintenance");
    maintenance
        .start(
            &["backup"],
            &env,
            &[data.mount_read_only(), store.credentials_mount()],
        )
        .await;
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let backups = store.backups().await;
        if backups.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline && maintenance.is_running().await,
            "the maintenance container took {} backup(s) before {WAIT_TIMEOUT:?} or exiting; \
             its log:\n{}",
            backups.len(),
            maintenance.logs().await
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(
        maintenance.is_running().await,
        "the maintenance container keeps waiting for the next run; its log:\n{}",
        maintenance.logs().await
    );
    maintenance.remove();
    let after = harness::dataset::Snapshot::of(data.path()).expect("a snapshot");
    assert_eq!(
        before.first_difference(&after),
        None,
        "the data volume is unchanged"
    );

    let restored = Volume::empty();
    restore_into(&restored, &store).await;
    verify_in_container(&restored).await;
    assert_eq!(restored.dataset(), dataset, "the restored files");
}

/// The claim helper's tools, as a cluster runs them (root, the claim mounted at `/claim`):
/// `pack` hands the files out as tar, `replace` swaps them for an archive read from a sized
/// stdin and gives them to the workload's user, `count` counts them.
#[tokio::test]
async fn the_claim_helper_tools_pack_replace_and_count_a_mounted_volume() {
    let test = "the_claim_helper_tools_pack_replace_and_count_a_mounted_volume";
    let Some(_image) = image_or_skip(test).await else {
        return;
    };
    let original = Dataset::generated("claim", 6, 1500).with_nested_paths();
    let volume = Volume::seeded(&original);
    let claim = format!("{}:/claim", volume.path().display());

    let packed = run_tool(&["--volume", &claim], &["pack", "/claim"], None).await;
    let copy = tempfile::tempdir().expect("a temporary directory");
    tar::Archive::new(&packed[..])
        .unpack(copy.path())
        .expect("pack writes a tar archive");
    for (path, bytes) in &original.files {
        let file = copy.path().join("current/files").join(path);
        assert_eq!(&std::fs::read(&file).expect("packed"), bytes, "{path}");
    }

    let replacement = Dataset::generated("replacement", 3, 700);
    let staging = tempfile::tempdir().expect("a temporary directory");
    replacement
        .write_files(&staging.path().join("current/files"))
        .expect("written");
    let archive = harness::archive::pack_dir(staging.path(), Vec::new()).expect("packed");
    let size = archive.len().to_string();
    run_tool(
        &["--volume", &claim, "--interactive"],
        &[
            "replace",
            "/claim",
            "--size",
            &size,
            "--owner",
            "65532:65532",
        ],
        Some(archive),
    )
    .await;
    assert_eq!(
        volume.dataset(),
        replacement,
        "the volume holds the archive's files"
    );
    for entry in walk(volume.path()).into_iter().skip(1) {
        let owner = std::fs::metadata(&entry).expect("stat").uid();
        assert_eq!(
            owner,
            NONROOT_ID,
            "{} is owned by the workload's user",
            entry.display()
        );
    }
    let counted = run_tool(&["--volume", &claim], &["count", "/claim", "100"], None).await;
    assert_eq!(String::from_utf8_lossy(&counted).trim(), "3");
}

/// The node helper's tools, as a cluster runs them (root with `KILL`, `SYS_PTRACE` and `DAC_READ_SEARCH` only, in
/// the host's PID namespace):
/// a container is found by its runtime ID, its main process's environment read, and a SIGKILL
/// ends it with exit code 137, as the kubelet would see a crash.
#[tokio::test]
async fn the_node_helper_tools_read_a_containers_environment_and_kill_it_by_id() {
    let test = "the_node_helper_tools_read_a_containers_environment_and_kill_it_by_id";
    let Some(_image) = image_or_skip(test).await else {
        return;
    };
    // NB: any long-running container will do as the victim; the tools image's `hold` is one.
    let victim = Container::new("victim");
    victim
        .start_image(
            &tools_image().await.tag,
            &["hold"],
            &[("PHASECHECK_MARKER", "node-helper-test".to_owned())],
        )
        .await;
    assert!(victim.is_running().await, "{}", victim.logs().await);
    let id = docker_ok(&["inspect", "--format", "{{.Id}}", &victim.name]).await;
    let id = format!("docker://{}", id.trim());
    let node = [
        "--pid",
        "host",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "KILL",
        "--cap-add",
        "SYS_PTRACE",
        "--cap-add",
        "DAC_READ_SEARCH",
    ];

    let environ = run_tool(&node, &["container-env", &id], None).await;
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ
            .split('\0')
            .any(|kv| kv == "PHASECHECK_MARKER=node-helper-test"),
        "the victim's environment: {environ:?}"
    );

    run_tool(&node, &["kill-container", &id], None).await;
    let deadline = Instant::now() + WAIT_TIMEOUT;
    while victim.is_running().await {
        assert!(
            Instant::now() < deadline,
            "the victim still runs after the kill"
        );
        tokio::time::sleep(POLL).await;
    }
    let code = docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", &victim.name]).await;
    assert_eq!(code.trim(), "137", "SIGKILL ends the container as a crash");
}

// ---------------------------------------------------------------------------------------------
// The image, built once per test binary
// ---------------------------------------------------------------------------------------------

static IMAGE: tokio::sync::OnceCell<Result<ImageInfo, String>> = tokio::sync::OnceCell::const_new();

/// The reference image, or `None` (after printing why) when no Docker daemon answers and Docker
/// is not required.
async fn image_or_skip(test: &str) -> Option<&'static ImageInfo> {
    let available = tokio::task::spawn_blocking(docker_available)
        .await
        .expect("the probe does not panic");
    if !available {
        let required = std::env::var_os("PHASECHECK_REQUIRE_DOCKER").is_some_and(|v| v == "1");
        assert!(
            !required,
            "PHASECHECK_REQUIRE_DOCKER=1 but no Docker daemon answers `docker version` ({test})"
        );
        // NB: straight to stderr, past libtest's capture, so that skips show in `cargo test`.
        let _ = writeln!(std::io::stderr(), "SKIPPED (no Docker daemon): {test}");
        return None;
    }
    // NB: before the image build (minutes when cold), so a daemon the tier cannot use fails
    // every test in seconds, saying what to check.
    bridge_host_address().await;
    let built = IMAGE
        .get_or_init(|| async {
            let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the harness is in the workspace");
            build_reference_image(workspace_root, |line| eprintln!("[image] {line}"))
                .await
                .map_err(|e| e.to_string())
        })
        .await;
    match built {
        Ok(image) => Some(image),
        Err(e) => panic!("building {REFERENCE_IMAGE}: {e}"),
    }
}

static TOOLS: tokio::sync::OnceCell<Result<ImageInfo, String>> = tokio::sync::OnceCell::const_new();

/// The harness's tools image, built once per test binary (a daemon must answer).
async fn tools_image() -> &'static ImageInfo {
    let built = TOOLS
        .get_or_init(|| async {
            let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the harness is in the workspace");
            ImageBuilder::new(workspace_root)
                .with_spec(ImageSpec::TOOLS)
                .build(|line| eprintln!("[tools image] {line}"))
                .await
                .map_err(|e| e.to_string())
        })
        .await;
    match built {
        Ok(image) => image,
        Err(e) => panic!("building {TOOLS_IMAGE}: {e}"),
    }
}

/// The files of the image's only layer, with their modes (directories end in `/`).
async fn only_layer_of(image: &str) -> BTreeMap<String, u32> {
    let saved = docker_bytes(&["image", "save", image]).await;
    let mut outer = tar::Archive::new(saved.as_slice());
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in outer.entries().expect("docker save writes a tar") {
        let mut entry = entry.expect("a tar entry");
        let path = entry.path().expect("a path").display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("readable");
        files.insert(path, bytes);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("the save manifest is JSON");
    let layers = manifest[0]["Layers"].as_array().expect("a list of layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    let layer = &files[layers[0].as_str().expect("a layer path")];
    let mut listing = BTreeMap::new();
    for entry in tar::Archive::new(layer.as_slice())
        .entries()
        .expect("the layer is a tar")
    {
        let entry = entry.expect("a layer entry");
        let header = entry.header();
        let path = entry.path().expect("a path").display().to_string();
        let mut path = path.trim_start_matches("./").to_owned();
        if path.is_empty() {
            continue;
        }
        if header.entry_type().is_dir() && !path.ends_with('/') {
            path.push('/');
        }
        assert_eq!(
            (header.uid().expect("uid"), header.gid().expect("gid")),
            (0, 0),
            "{path} is owned by root"
        );
        listing.insert(path, header.mode().expect("a mode") & 0o7777);
    }
    listing
}

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

/// This test process's run id: container names never collide with other runs.
static RUN_ID: LazyLock<String> = LazyLock::new(|| {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:08x}", std::process::id())
});

/// One container of the reference image; removed (`docker rm -f`) when dropped.
struct Container {
    name: String,
    /// A user-defined network and the host's address on it (`None`: the default bridge, the host
    /// reached through `host-gateway`).
    network: Option<(String, Ipv4Addr)>,
}

impl Container {
    /// A container name for `role`, unique to this run.
    fn new(role: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Container {
            name: format!("phasecheck-{}-{role}-{n}", *RUN_ID),
            network: None,
        }
    }

    /// Runs on user-defined network `network`, where the host is at `host`.
    fn on_network(mut self, network: &str, host: Ipv4Addr) -> Self {
        self.network = Some((network.to_owned(), host));
        self
    }

    /// `docker run` arguments up to the image: name, network, hardening, env, mounts.
    fn run_args(&self, detach: bool, env: &[(&str, String)], mounts: &[String]) -> Vec<String> {
        let mut args: Vec<String> = vec!["run".into(), "--name".into(), self.name.clone()];
        if detach {
            args.push("--detach".into());
        }
        let store_host = match &self.network {
            Some((network, host)) => {
                args.extend(["--network".to_owned(), network.clone()]);
                format!("{STORE_HOST}:{host}")
            }
            None => format!("{STORE_HOST}:host-gateway"),
        };
        args.extend(["--add-host".to_owned(), store_host]);
        args.extend(
            [
                "--read-only",
                "--tmpfs",
                "/tmp",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
            ]
            .map(String::from),
        );
        args.push("--user".into());
        args.push(format!("{NONROOT_ID}:{NONROOT_ID}"));
        for (name, value) in env {
            args.push("--env".into());
            args.push(format!("{name}={value}"));
        }
        for mount in mounts {
            args.push("--volume".into());
            args.push(mount.clone());
        }
        args.push(REFERENCE_IMAGE.into());
        args
    }

    /// Runs `phasepod args…` to completion (within [`RUN_TIMEOUT`]).
    async fn run_to_completion(
        &self,
        args: &[&str],
        env: &[(&str, String)],
        mounts: &[String],
    ) -> Output {
        let mut all = self.run_args(false, env, mounts);
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let run = tokio::process::Command::new("docker")
            .args(&all)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(RUN_TIMEOUT, run).await {
            Ok(output) => output.expect("docker runs"),
            Err(_) => panic!(
                "`phasepod {}` did not finish within {RUN_TIMEOUT:?}; its log:\n{}",
                args.join(" "),
                self.logs().await
            ),
        }
    }

    /// Starts `phasepod args…` in the background.
    async fn start(&self, args: &[&str], env: &[(&str, String)], mounts: &[String]) {
        let mut all = self.run_args(true, env, mounts);
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        docker_ok(&all).await;
    }

    /// Starts `image`'s entrypoint with `args…` in the background, set up as [`Self::start`]
    /// sets up the reference image.
    async fn start_image(&self, image: &str, args: &[&str], env: &[(&str, String)]) {
        let mut all = self.run_args(true, env, &[]);
        *all.last_mut().expect("the image ends the arguments") = image.to_owned();
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        docker_ok(&all).await;
    }

    /// Whether the container is running.
    async fn is_running(&self) -> bool {
        docker_ok(&["inspect", "--format", "{{.State.Running}}", &self.name])
            .await
            .trim()
            == "true"
    }

    /// The container's address on the bridge network.
    async fn ip(&self) -> Ipv4Addr {
        let ip = docker_ok(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.IPAddress}}",
            &self.name,
        ])
        .await;
        ip.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{} has no bridge address: `{}`", self.name, ip.trim()))
    }

    /// `/proc/<pid>/status` of the container's process, as the host sees it.
    async fn process_status(&self) -> String {
        let pid = docker_ok(&["inspect", "--format", "{{.State.Pid}}", &self.name]).await;
        let path = format!("/proc/{}/status", pid.trim());
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The container's output so far (for failure messages).
    async fn logs(&self) -> String {
        let output = tokio::process::Command::new("docker")
            .args(["logs", &self.name])
            .stdin(Stdio::null())
            .output()
            .await;
        match output {
            Ok(output) => describe(&output),
            Err(e) => format!("(no log: {e})"),
        }
    }

    /// Removes the container now.
    fn remove(&self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", "--volumes", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs `phasepod restore` in a fresh container onto `volume`, as the init container would.
async fn restore_into(volume: &Volume, store: &Store) {
    let restore = Container::new("restore");
    let output = restore
        .run_to_completion(
            &["restore"],
            &store.env(),
            &[volume.mount(), store.credentials_mount()],
        )
        .await;
    assert!(output.status.success(), "restore: {}", describe(&output));
}

/// Runs `phasepod verify /data/current` in a container on `volume`, mounted read-only.
async fn verify_in_container(volume: &Volume) {
    let verify = Container::new("verify");
    let output = verify
        .run_to_completion(
            &["verify", "/data/current"],
            &[],
            &[volume.mount_read_only()],
        )
        .await;
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("valid:"),
        "verify: {}",
        describe(&output)
    );
}

/// `docker args…`, which must succeed; its standard output.
async fn docker_ok(args: &[&str]) -> String {
    String::from_utf8(docker_bytes(args).await).expect("docker prints UTF-8")
}

/// `docker args…`, which must succeed; its standard output as bytes.
async fn docker_bytes(args: &[&str]) -> Vec<u8> {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_TIMEOUT, output)
        .await
        .unwrap_or_else(|_| panic!("`docker {}` timed out", args.join(" ")))
        .expect("docker runs");
    assert!(
        output.status.success(),
        "`docker {}`: {}",
        args.join(" "),
        describe(&output)
    );
    output.stdout
}

/// `phasecheck-tools args…` in a throwaway container of the tools image (as the cluster's
/// helper pods run it: root) with `docker_args`, fed `stdin`; must succeed; its standard output.
/// Only called once [`image_or_skip`] found a daemon.
async fn run_tool(docker_args: &[&str], args: &[&str], stdin: Option<Vec<u8>>) -> Vec<u8> {
    let image = tools_image().await;
    let tool = Container::new("tool");
    let mut all: Vec<&str> = vec!["run", "--name", &tool.name, "--user", "0:0", "--read-only"];
    all.extend(docker_args);
    all.push(&image.tag);
    all.extend(args);
    let mut child = tokio::process::Command::new("docker")
        .args(&all)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("docker runs");
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use tokio::io::AsyncWriteExt as _;
        pipe.write_all(&bytes).await.expect("stdin is written");
    }
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`phasecheck-tools {}` timed out", args.join(" ")))
        .expect("docker runs");
    assert!(
        output.status.success(),
        "`phasecheck-tools {}`: {}",
        args.join(" "),
        describe(&output)
    );
    output.stdout
}

/// The host's address on Docker's default bridge network: its IPAM gateway, or the address of
/// its bridge interface when the daemon reports none (see `harness::cluster::NetworkFacts`).
async fn bridge_host_address() -> Ipv4Addr {
    static ADDRESS: tokio::sync::OnceCell<Result<Ipv4Addr, String>> =
        tokio::sync::OnceCell::const_new();
    let found = ADDRESS
        .get_or_init(|| async {
            match docker_host_address(&Tools::default(), "bridge").await {
                Ok(Ok(address)) => Ok(address),
                Ok(Err(why)) => Err(why),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
    match found {
        Ok(address) => *address,
        Err(why) => panic!(
            "containers on Docker's default bridge cannot reach this machine: {why}; check \
             `docker network inspect bridge` and `ip -4 addr show docker0`"
        ),
    }
}

/// A user-defined Docker network of this test run, removed on drop.
struct Network {
    name: String,
    /// The first host address of its subnet, which Docker gives the bridge.
    first_host: Ipv4Addr,
}

impl Network {
    /// `docker network create --subnet 10.213.N.0/24 NAME`, no `--gateway`; the first free `N`.
    async fn create_without_gateway() -> Self {
        let name = format!("phasecheck-{}-nogw", *RUN_ID);
        let mut last = String::new();
        for n in 0..32u8 {
            let third = (std::process::id() as u8).wrapping_add(n.wrapping_mul(7));
            let subnet = format!("10.213.{third}.0/24");
            let output = tokio::process::Command::new("docker")
                .args(["network", "create", "--subnet", &subnet, &name])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .expect("docker runs");
            if output.status.success() {
                return Network {
                    name,
                    first_host: Ipv4Addr::new(10, 213, third, 1),
                };
            }
            last = describe(&output);
        }
        panic!("no free subnet 10.213.*.0/24 for a test network: {last}");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Exit status and output, for failure messages.
fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end()
    )
}

// ---------------------------------------------------------------------------------------------
// Volumes and the store
// ---------------------------------------------------------------------------------------------

/// A data volume: a host directory uid 65532 owns, mounted at `/data`.
struct Volume {
    dir: TempDir,
}

impl Volume {
    /// An empty volume.
    fn empty() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("phasecheck-volume-")
            .tempdir()
            .expect("a temporary directory");
        give_to_nonroot(dir.path(), 0o755);
        Volume { dir }
    }

    /// A volume holding `dataset` as a valid phasepod dataset (docs/CONTRACTS.md), generation 1.
    fn seeded(dataset: &Dataset) -> Self {
        let volume = Volume::empty();
        let current = volume.path().join("current");
        dataset
            .write_files(&current.join("files"))
            .expect("the files are written");
        let files: Vec<serde_json::Value> = dataset
            .files
            .iter()
            .map(|(path, bytes)| {
                serde_json::json!({
                    "path": path,
                    "size": bytes.len(),
                    "sha256": hex::encode(Sha256::digest(bytes)),
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "format": 1,
            "generation": 1,
            "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "files": files,
        });
        std::fs::write(
            current.join("manifest.json"),
            serde_json::to_vec_pretty(&manifest).expect("JSON"),
        )
        .expect("the manifest is written");
        for entry in walk(volume.path()) {
            let mode = if entry.is_dir() { 0o755 } else { 0o644 };
            give_to_nonroot(&entry, mode);
        }
        volume
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `--volume` for a read-write mount at `/data`.
    fn mount(&self) -> String {
        format!("{}:/data", self.path().display())
    }

    /// `--volume` for a read-only mount at `/data`.
    fn mount_read_only(&self) -> String {
        format!("{}:/data:ro", self.path().display())
    }

    /// The files of the dataset in `current/files/`.
    fn dataset(&self) -> Dataset {
        let files_dir = self.path().join("current").join("files");
        let files = walk(&files_dir)
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| {
                let relative = p.strip_prefix(&files_dir).expect("under files/");
                let bytes = std::fs::read(&p).expect("readable");
                (relative.to_string_lossy().into_owned(), bytes)
            })
            .collect();
        Dataset { files }
    }
}

/// `dir` and everything under it.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_owned()];
    let mut i = 0;
    while i < found.len() {
        if found[i].is_dir() {
            let entries = std::fs::read_dir(&found[i]).expect("a readable directory");
            let mut children: Vec<PathBuf> = entries.map(|e| e.expect("an entry").path()).collect();
            children.sort();
            found.extend(children);
        }
        i += 1;
    }
    found
}

/// Makes uid/gid 65532 own `path` with `mode`. Without the privilege to chown (tests not run as
/// root), the path is opened to everyone instead; the temporary directory may then outlive the
/// test, as files the container creates belong to uid 65532.
fn give_to_nonroot(path: &Path, mode: u32) {
    let owned = std::os::unix::fs::chown(path, Some(NONROOT_ID), Some(NONROOT_ID)).is_ok();
    let mode = if owned {
        mode
    } else if path.is_dir() {
        0o777
    } else {
        0o644
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// An embedded backup store with a bucket or repository, and the credential files for it.
struct Store {
    service: Service,
    credentials: TempDir,
}

enum Service {
    S3(EmbeddedObjectStore),
    Git(EmbeddedGitServer),
}

impl Store {
    /// A store containers on the default bridge reach.
    async fn start(backend: Backend) -> Self {
        Self::start_on(backend, bridge_host_address().await).await
    }

    /// A store listening on `address`.
    async fn start_on(backend: Backend, address: Ipv4Addr) -> Self {
        let (service, secrets) = match backend {
            Backend::S3 => {
                let store = EmbeddedObjectStore::builder()
                    .with_bind_addr(address)
                    .start()
                    .await
                    .expect("the object store starts");
                store
                    .create_bucket(BUCKET)
                    .await
                    .expect("the bucket is created");
                let secrets = [
                    ("s3-access-key-id", store.access_key_id().to_owned()),
                    ("s3-secret-access-key", store.secret_access_key().to_owned()),
                ];
                (Service::S3(store), secrets)
            }
            Backend::Git => {
                let server = EmbeddedGitServer::builder()
                    .with_bind_addr(address)
                    .start()
                    .await
                    .expect("the git server starts");
                server
                    .create_repo(REPOSITORY)
                    .await
                    .expect("the repository is created");
                let secrets = [
                    ("git-username", server.username().to_owned()),
                    ("git-password", server.password().to_owned()),
                ];
                (Service::Git(server), secrets)
            }
        };
        let credentials = tempfile::Builder::new()
            .prefix("phasecheck-credentials-")
            .tempdir()
            .expect("a temporary directory");
        for (key, value) in secrets {
            let path = credentials.path().join(key);
            std::fs::write(&path, value).expect("the credential is written");
            give_to_nonroot(&path, 0o400);
        }
        give_to_nonroot(credentials.path(), 0o500);
        Store {
            service,
            credentials,
        }
    }

    /// The backend's environment, as the endpoint ConfigMap and `*_FILE` credentials give it.
    fn env(&self) -> Vec<(&'static str, String)> {
        let file = |key: &str| format!("{CREDENTIALS_DIR}/{key}");
        match &self.service {
            Service::S3(store) => vec![
                ("BACKEND", "s3".to_owned()),
                (
                    "S3_ENDPOINT",
                    format!("http://{STORE_HOST}:{}", store.port()),
                ),
                ("S3_BUCKET", BUCKET.to_owned()),
                ("S3_PREFIX", PREFIX.to_owned()),
                ("S3_REGION", store.region().to_owned()),
                ("S3_ACCESS_KEY_ID_FILE", file("s3-access-key-id")),
                ("S3_SECRET_ACCESS_KEY_FILE", file("s3-secret-access-key")),
            ],
            Service::Git(server) => vec![
                ("BACKEND", "git".to_owned()),
                (
                    "GIT_URL",
                    format!("http://{STORE_HOST}:{}/{REPOSITORY}.git", server.port()),
                ),
                ("GIT_BRANCH", BRANCH.to_owned()),
                ("GIT_USERNAME_FILE", file("git-username")),
                ("GIT_PASSWORD_FILE", file("git-password")),
            ],
        }
    }

    /// `--volume` for the credentials, read-only.
    fn credentials_mount(&self) -> String {
        format!("{}:{CREDENTIALS_DIR}:ro", self.credentials.path().display())
    }

    /// The IDs of the complete backups in the store, newest first (docs/CONTRACTS.md layout).
    async fn backups(&self) -> Vec<String> {
        let mut ids = match &self.service {
            Service::S3(store) => {
                let index = format!("{PREFIX}index/");
                let listed = store
                    .client()
                    .list_objects_v2()
                    .bucket(BUCKET)
                    .prefix(&index)
                    .send()
                    .await
                    .expect("the bucket lists");
                listed
                    .contents()
                    .iter()
                    .filter_map(|object| object.key()?.strip_prefix(&index).map(str::to_owned))
                    .collect()
            }
            Service::Git(server) => {
                let repo =
                    git2::Repository::open_bare(server.repo_path(REPOSITORY)).expect("a bare repo");
                let Ok(tip) = repo.refname_to_id(&format!("refs/heads/{BRANCH}")) else {
                    return Vec::new();
                };
                let mut ids = Vec::new();
                let mut commit = repo.find_commit(tip).ok();
                while let Some(c) = commit {
                    let message = c.message().unwrap_or_default();
                    ids.extend(
                        message
                            .trim()
                            .strip_prefix("phasepod backup ")
                            .map(str::to_owned),
                    );
                    commit = c.parent(0).ok();
                }
                ids
            }
        };
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids
    }
}
