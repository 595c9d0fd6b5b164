//! The `phasecheck` command line: listing, reports, exit codes, input errors and cleanup.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PHASECHECK: &str = env!("CARGO_BIN_EXE_phasecheck");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn phasecheck(args: &[&str], tmp: &Path) -> Output {
    phasecheck_with_env(args, tmp, &[])
}

/// `phasecheck args…` from the checkout, temporary files under `tmp`, with `env` added.
fn phasecheck_with_env(args: &[&str], tmp: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    Command::new(PHASECHECK)
        .args(args)
        .current_dir(repo())
        .env("TMPDIR", tmp)
        .envs(env.iter().copied())
        .output()
        .expect("phasecheck runs")
}

/// Nothing but the reports is left in `tmp`.
fn expect_no_temporary_files(tmp: &Path) {
    let entries: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "reports")
        .collect();
    assert!(
        entries.is_empty(),
        "temporary files left behind: {entries:?}"
    );
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn list_prints_every_catalog_id_with_its_requirement() {
    let tmp = tempfile::tempdir().unwrap();
    let output = phasecheck(&["list"], tmp.path());
    assert!(output.status.success());
    let out = String::from_utf8(output.stdout).unwrap();
    assert_eq!(out.lines().count(), 18);
    for id in ["INIT-1", "INIT-7", "RUN-2", "SEC-2", "MNT-6", "LIFE-1"] {
        assert!(out.contains(id), "{id} missing from:\n{out}");
    }
    assert!(out.contains("restore-empty"));
}

#[test]
fn a_run_writes_report_json_and_junit_xml_and_exits_zero_when_all_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let reports = tmp.path().join("reports");
    let output = phasecheck(
        &[
            "run",
            "--scenario",
            "INIT-1",
            "--backend",
            "s3",
            "--report-dir",
            reports.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("2 passed, 0 failed, 0 skipped in"), "{all}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.json")).unwrap()).unwrap();
    let entries = report["scenarios"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "one entry per reference subject");
    assert!(
        entries
            .iter()
            .all(|e| e["outcome"] == "passed" && e["backend"] == "s3")
    );
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(junit.contains("INIT-1 restore-empty"), "{junit}");
}

fn expect_input_error(args: &[&str], needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let output = phasecheck(args, tmp.path());
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    for needle in needles {
        assert!(all.contains(needle), "`{needle}` missing from:\n{all}");
    }
}

fn write_subject(dir: &Path, profile_edit: impl Fn(String) -> String) -> PathBuf {
    let reference = repo().join("fixtures/subjects/phasepod.yaml");
    let text = std::fs::read_to_string(&reference).unwrap().replace(
        "manifests/",
        &format!("{}/fixtures/subjects/manifests/", repo().display()),
    );
    let path = dir.join("subject.yaml");
    std::fs::write(&path, profile_edit(text)).unwrap();
    path
}

#[test]
fn a_malformed_subject_file_is_an_input_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_subject(dir.path(), |t| t.replace("workload: {", "workload: {{{"));
    expect_input_error(
        &["run", "--subject", path.to_str().unwrap()],
        &["subject.yaml"],
    );
}

#[test]
fn an_unknown_field_in_a_subject_is_an_input_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_subject(dir.path(), |t| format!("{t}retries: 3\n"));
    expect_input_error(
        &["run", "--subject", path.to_str().unwrap()],
        &["subject.yaml", "retries"],
    );
}

#[test]
fn an_unknown_scenario_id_is_an_input_error() {
    expect_input_error(
        &["run", "--scenario", "INIT-99"],
        &["INIT-99", "phasecheck list"],
    );
}

#[test]
fn an_image_without_a_host_command_is_an_input_error_naming_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_subject(dir.path(), |t| {
        t.replace(
            "phasecheck/phasepod:dev: {builtin: phasepod}",
            "other/image:1: {builtin: phasepod}",
        )
    });
    expect_input_error(
        &["run", "--subject", path.to_str().unwrap()],
        &["subject.yaml", "images", "phasecheck/phasepod:dev"],
    );
}

#[test]
fn the_kind_runtime_without_kind_installed_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::new(PHASECHECK)
        .args(["run", "--runtime", "kind"])
        .current_dir(repo())
        .env("PATH", tmp.path())
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(all.contains("install kind"), "{all}");
}

/// Processes whose command line, environment or mounts mention `marker`: workload processes
/// in their sandboxes (whose mounts come from the run's temporary directory), the sandbox
/// launchers (whose command line names it) and anything started with the run's `TMPDIR`.
fn processes_mentioning(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        for file in ["cmdline", "environ", "mountinfo"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file))
                && String::from_utf8_lossy(&bytes).contains(marker)
            {
                let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                found.push(format!(
                    "{pid} ({file}): {}",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
                break;
            }
        }
    }
    found
}

/// The run's marker: the name of its temporary directory (mount roots are shown relative to
/// their file system, so the name, not the whole path).
fn marker_of(tmp: &Path) -> String {
    tmp.file_name().unwrap().to_string_lossy().into_owned()
}

/// Starts `phasecheck run` on the MNT scenarios and waits until at least three apps
/// (`phasepod serve`, which runs until stopped) run in sandboxes built from the run's
/// temporary directory.
fn start_run_with_sandboxes(tmp: &Path) -> std::process::Child {
    start_run_with_sandboxes_and_env(tmp, &[])
}

/// [`start_run_with_sandboxes`] with `env` added to phasecheck's environment.
fn start_run_with_sandboxes_and_env(tmp: &Path, env: &[(&str, &str)]) -> std::process::Child {
    let marker = marker_of(tmp);
    let child = Command::new(PHASECHECK)
        .args(["run", "--scenario", "MNT-*", "--report-dir"])
        .arg(tmp.join("reports"))
        .current_dir(repo())
        .env("TMPDIR", tmp)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_mentioning(&marker)
        .iter()
        .filter(|p| p.contains("(mountinfo): /phasepod serve"))
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "no sandboxed workload process started: {:?}",
            processes_mentioning(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn an_interrupted_run_leaves_no_process_and_no_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = start_run_with_sandboxes(tmp.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let left = processes_mentioning(&marker_of(tmp.path()));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    expect_no_temporary_files(tmp.path());
}

#[test]
fn containers_get_none_of_the_environment_phasecheck_runs_with() {
    let tmp = tempfile::tempdir().unwrap();
    let leak = "leak-marker-5d0c";
    let mut child = start_run_with_sandboxes_and_env(
        tmp.path(),
        &[
            ("AWS_CA_BUNDLE", "/nonexistent/ca.pem"),
            ("PHASECHECK_TEST_LEAK", leak),
        ],
    );
    let apps: Vec<String> = processes_mentioning(&marker_of(tmp.path()))
        .into_iter()
        .filter(|p| p.contains("(mountinfo): /phasepod serve"))
        .collect();
    let mut checked = 0;
    for app in &apps {
        let pid = app.split(' ').next().unwrap();
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
        assert!(environ.contains("DATA_DIR=/data"), "{environ}");
        assert!(!environ.contains(leak), "{environ}");
        assert!(!environ.contains("AWS_CA_BUNDLE"), "{environ}");
        checked += 1;
    }
    assert!(checked >= 3, "{apps:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

#[test]
fn a_killed_run_leaves_no_sandbox_process_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = start_run_with_sandboxes(tmp.path());
    child.kill().unwrap();
    child.wait().unwrap();
    // NB: SIGKILL leaves no time to clean up: each sandbox notices its runtime is gone (its
    // control socket closes) and takes its PID namespace down; death is no event to await.
    let marker = marker_of(tmp.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = processes_mentioning(&marker);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = processes_mentioning(&marker);
    }
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn a_finished_run_leaves_no_process_and_no_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let output = phasecheck(
        &[
            "run",
            "--scenario",
            "RUN-1",
            "--report-dir",
            tmp.path().join("reports").to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let left = processes_mentioning(&marker_of(tmp.path()));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    expect_no_temporary_files(tmp.path());
}

#[test]
fn store_containers_whose_images_cannot_be_had_stop_the_run_before_any_case() {
    let tmp = tempfile::tempdir().unwrap();
    let output = phasecheck_with_env(
        &["run", "--services", "container", "--scenario", "INIT-1"],
        tmp.path(),
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock".as_ref())],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(all.contains("quay.io/minio/minio:"), "{all}");
    assert!(all.contains("docker load"), "{all}");
    assert!(!all.contains("INIT-1 restore-empty"), "no case ran:\n{all}");
}

#[test]
fn clean_without_a_reachable_cluster_says_which_context_it_tried_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("no-kubeconfig");
    let output = phasecheck_with_env(
        &["clean", "--runtime", "kind"],
        tmp.path(),
        &[("KUBECONFIG", kubeconfig.as_os_str())],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(all.contains("kind-phasecheck"), "{all}");
}

#[test]
fn clean_removes_store_containers_that_carry_the_phasecheck_label() {
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .stdin(Stdio::null())
            .output()
    };
    if !docker(&["version"]).is_ok_and(|o| o.status.success()) {
        let required = std::env::var_os("PHASECHECK_REQUIRE_DOCKER").is_some_and(|v| v == "1");
        assert!(
            !required,
            "PHASECHECK_REQUIRE_DOCKER=1 but no Docker daemon answers"
        );
        eprintln!(
            "SKIPPED (no Docker daemon): clean_removes_store_containers_that_carry_the_phasecheck_label"
        );
        return;
    }
    // An empty image and a container that is never started: no registry needed.
    let empty = tempfile::tempdir().unwrap();
    let tar = empty.path().join("empty.tar");
    std::fs::write(&tar, [0u8; 1024]).unwrap();
    let image = "phasecheck-clean-test:empty";
    let imported = docker(&["import", tar.to_str().unwrap(), image]).unwrap();
    assert!(imported.status.success(), "{}", text(&imported));
    let name = format!("phasecheck-clean-test-{}", std::process::id());
    let label = "app.kubernetes.io/managed-by=phasecheck";
    let created = docker(&["create", "--name", &name, "--label", label, image, "/none"]).unwrap();
    assert!(created.status.success(), "{}", text(&created));

    let tmp = tempfile::tempdir().unwrap();
    let output = phasecheck(&["clean", "--runtime", "local"], tmp.path());
    let left = docker(&[
        "ps",
        "--all",
        "--quiet",
        "--filter",
        &format!("name={name}"),
    ])
    .unwrap();
    let _ = docker(&["rm", "--force", &name]);
    let _ = docker(&["rmi", image]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "the labelled container is still there"
    );
}
