//! The `phasecheck` command line: listing, reports, exit codes, input errors and cleanup.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rstest::rstest;

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
    write_edited_subject(dir, "phasepod", "subject.yaml", profile_edit)
}

/// The reference profile `fixtures/subjects/{reference}.yaml`, edited, as `dir/{file}` (its
/// manifests where they are).
fn write_edited_subject(
    dir: &Path,
    reference: &str,
    file: &str,
    profile_edit: impl Fn(String) -> String,
) -> PathBuf {
    let reference = repo().join(format!("fixtures/subjects/{reference}.yaml"));
    let text = std::fs::read_to_string(&reference).unwrap().replace(
        "manifests/",
        &format!("{}/fixtures/subjects/manifests/", repo().display()),
    );
    let path = dir.join(file);
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
fn a_subject_whose_pods_an_operator_makes_is_refused_by_the_local_runtime_before_any_case() {
    let subject = repo().join("fixtures/subjects/phasepod-operator.yaml");
    expect_input_error(
        &["run", "--subject", subject.to_str().unwrap()],
        &[
            "phasepod-operator.yaml",
            "workload.kind",
            "PhasedApp",
            "--runtime kind, minikube or existing",
        ],
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

/// Processes whose command line, environment or mounts mention `marker` (a run's temporary
/// directory), as `(pid, command line)`: workload processes in their sandboxes (whose mounts
/// come from that directory; mount roots are shown relative to their file system, so the
/// directory's name is looked for there), the sandbox launchers and anything started with the
/// run's `TMPDIR`.
fn processes_with_marker(marker: &str) -> Vec<(i32, String)> {
    let name = Path::new(marker)
        .file_name()
        .map_or(marker.to_owned(), |n| n.to_string_lossy().into_owned());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        for (file, needle) in [
            ("cmdline", marker),
            ("environ", marker),
            ("mountinfo", name.as_str()),
        ] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file))
                && String::from_utf8_lossy(&bytes).contains(needle)
            {
                let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                found.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
                break;
            }
        }
    }
    found
}

/// Whether a command line is a reference workload process (`/phasepod …` in its sandbox).
fn is_workload(cmd: &str) -> bool {
    cmd.starts_with("/phasepod ")
}

/// Processes whose environment, command line or mounts mention `marker`.
fn processes_mentioning(marker: &str) -> Vec<String> {
    processes_with_marker(marker)
        .into_iter()
        .map(|(pid, cmd)| format!("{pid}: {cmd}"))
        .collect()
}

/// Every listening TCP socket on this host: inode → `address:port` (hex, as the kernel shows it).
fn listening_sockets() -> BTreeMap<u64, String> {
    let mut sockets = BTreeMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() > 9
                && fields[3] == "0A"
                && let Ok(inode) = fields[9].parse::<u64>()
            {
                sockets.insert(inode, fields[1].to_owned());
            }
        }
    }
    sockets
}

/// The socket inodes process `pid` holds open.
fn socket_inodes(pid: i32) -> BTreeSet<u64> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(link) = std::fs::read_link(fd.path())
            && let Some(inode) = link
                .to_string_lossy()
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
        {
            inodes.insert(inode);
        }
    }
    inodes
}

/// The listening sockets held by `pids`: inode → address.
fn listening_sockets_of(pids: &[i32]) -> BTreeMap<u64, String> {
    let held: BTreeSet<u64> = pids.iter().flat_map(|pid| socket_inodes(*pid)).collect();
    listening_sockets()
        .into_iter()
        .filter(|(inode, _)| held.contains(inode))
        .collect()
}

/// Lines of `stderr` as they come, through a channel.
fn lines_of(stderr: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[rstest]
#[case::sigint(Signal::SIGINT)]
#[case::sigterm(Signal::SIGTERM)]
#[case::sighup(Signal::SIGHUP)]
fn a_signal_halfway_through_a_run_cleans_up_and_writes_a_partial_report(#[case] signal: Signal) {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().to_str().unwrap().to_owned();
    let reports = tmp.path().join("reports");
    let mut child = Command::new(PHASECHECK)
        .args([
            "run",
            "--scenario",
            "RUN-1",
            "--scenario",
            "MNT-*",
            "--report-dir",
        ])
        .arg(&reports)
        .current_dir(repo())
        .env("TMPDIR", tmp.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    // Halfway: once a case has finished while others still run workload processes (children
    // started with TMPDIR).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "no case finished while others ran:\n{}",
            seen.join("\n")
        );
        while let Ok(line) = stderr.try_recv() {
            seen.push(line);
        }
        let finished = seen.iter().any(|l| l.contains(" passed "));
        let workloads = processes_with_marker(&marker)
            .iter()
            .filter(|(_, cmd)| is_workload(cmd))
            .count();
        if finished && workloads >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut pids: Vec<i32> = processes_with_marker(&marker)
        .iter()
        .map(|(pid, _)| *pid)
        .collect();
    pids.push(child.id() as i32);
    let held = listening_sockets_of(&pids);
    assert!(
        !held.is_empty(),
        "the run listens on no socket: nothing to check"
    );

    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    seen.extend(stderr.iter());
    let all = seen.join("\n");
    let left = processes_mentioning(&marker);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let open = listening_sockets();
    let still: Vec<&String> = held
        .iter()
        .filter(|(inode, _)| open.contains_key(inode))
        .map(|(_, addr)| addr)
        .collect();
    assert!(still.is_empty(), "sockets still listening: {still:?}");
    expect_no_temporary_files(tmp.path());
    assert_eq!(status.code(), Some(128 + signal as i32), "{all}");
    assert!(!all.contains("panicked"), "{all}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.json")).expect(&all)).unwrap();
    let entries = report["scenarios"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        28,
        "every planned case has an entry: {report:#}"
    );
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"passed"), "{outcomes:?}");
    assert!(outcomes.contains(&"interrupted"), "{outcomes:?}");
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(junit.contains("interrupted"), "{junit}");
    let page = std::fs::read_to_string(reports.join("report.html")).unwrap();
    assert_eq!(
        page.matches("<td class=\"cell ").count(),
        entries.len(),
        "report.html has a matrix cell per case"
    );
    assert!(
        page.contains("<td class=\"cell o-interrupted\""),
        "report.html shows the interrupted cases"
    );
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
    let left = processes_mentioning(tmp.path().to_str().unwrap());
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

/// Runs `phasecheck run args…` with `--report-dir <tmp>/reports`, returning the output and the
/// report directory.
fn run_with_reports(args: &[&str], tmp: &Path) -> (Output, PathBuf) {
    let reports = tmp.join("reports");
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--report-dir", reports.to_str().unwrap()]);
    (phasecheck(&all, tmp), reports)
}

fn read_report(reports: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(reports.join("report.json")).unwrap()).unwrap()
}

/// Waits until at least `n` workload processes of the run marked by `marker` run.
fn wait_for_workloads(marker: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_with_marker(marker)
        .iter()
        .filter(|(_, cmd)| is_workload(cmd))
        .count()
        < n
    {
        assert!(Instant::now() < deadline, "no workload process started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_signal_exits_at_once_and_leaves_no_process_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().to_str().unwrap().to_owned();
    let mut child = Command::new(PHASECHECK)
        .args(["run", "--scenario", "MNT-*", "--report-dir"])
        .arg(tmp.path().join("reports"))
        .current_dir(repo())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    wait_for_workloads(&marker, 3);
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    // NB: the first signal's cleanup stops every pod with a grace period; this lands inside it.
    std::thread::sleep(Duration::from_millis(50));
    kill(pid, Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    let all: Vec<String> = stderr.iter().collect();
    let all = all.join("\n");
    assert!(all.contains("SIGTERM again: exiting now"), "{all}");
    assert_eq!(status.code(), Some(143), "{all}");
    let left = processes_mentioning(&marker);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    expect_no_temporary_files(tmp.path());
}

#[test]
fn a_closed_stdout_and_stderr_neither_panic_nor_stop_the_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let reports = tmp.path().join("reports");
    // `phasecheck run 2>&1 | head -1`: one pipe for both, closed after the first line.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = Command::new(PHASECHECK)
        .args(["run", "--scenario", "RUN-1", "--report-dir"])
        .arg(&reports)
        .current_dir(repo())
        .env("TMPDIR", tmp.path())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(reader).read_line(&mut first).unwrap();
    assert!(first.starts_with("phasecheck: running"), "{first}");
    // The reader is dropped here: every later write meets a closed pipe.
    let status = child.wait().unwrap();
    assert!(
        matches!(status.code(), Some(0) | Some(141)),
        "exit {status:?}: a panic is 101"
    );
    let report = read_report(&reports);
    let entries = report["scenarios"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{report:#}");
    assert!(
        entries.iter().all(|e| e["outcome"] == "passed"),
        "{report:#}"
    );
    assert!(reports.join("junit.xml").is_file());
}

#[test]
fn a_manifest_with_an_unknown_field_stops_the_run_before_any_case_naming_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let manifest =
        std::fs::read_to_string(repo().join("fixtures/subjects/manifests/phasepod-classic.yaml"))
            .unwrap();
    let typo = manifest.replacen(
        "imagePullPolicy: IfNotPresent",
        "imagePullPolicyy: IfNotPresent",
        1,
    );
    assert_ne!(typo, manifest);
    std::fs::write(manifests.join("phasepod-classic.yaml"), typo).unwrap();
    let profile = std::fs::read_to_string(repo().join("fixtures/subjects/phasepod.yaml")).unwrap();
    let subject = dir.path().join("subject.yaml");
    std::fs::write(&subject, profile).unwrap();
    let (output, reports) = run_with_reports(&["--subject", subject.to_str().unwrap()], dir.path());
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("manifests/phasepod-classic.yaml: document"),
        "{all}"
    );
    assert!(all.contains("imagePullPolicyy"), "{all}");
    assert!(
        !all.contains("phasecheck: running"),
        "a case started:\n{all}"
    );
    assert!(!reports.join("report.json").exists());
}

#[test]
fn a_report_dir_that_is_a_file_stops_the_run_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let started = Instant::now();
    let output = phasecheck(&["run", "--report-dir", file.to_str().unwrap()], tmp.path());
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(all.contains("--report-dir"), "{all}");
    assert!(all.contains("not-a-dir is not a directory"), "{all}");
    assert!(
        !all.contains("phasecheck: running"),
        "a case started:\n{all}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn zero_jobs_or_zero_repeats_are_input_errors() {
    expect_input_error(&["run", "--jobs", "0"], &["--jobs 0", "--jobs 1 or more"]);
    expect_input_error(&["run", "--repeat", "0"], &["--repeat 0"]);
    expect_input_error(&["run", "--timeout", "soon"], &["--timeout", "90s"]);
}

#[test]
fn repeat_runs_each_case_that_often_and_counts_the_passes_per_case() {
    let tmp = tempfile::tempdir().unwrap();
    let subject = repo().join("fixtures/subjects/phasepod.yaml");
    let (output, reports) = run_with_reports(
        &[
            "--subject",
            subject.to_str().unwrap(),
            "--scenario",
            "RUN-1",
            "--scenario",
            "INIT-4",
            "--backend",
            "s3",
            "--repeat",
            "3",
        ],
        tmp.path(),
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    for case in ["INIT-4 fresh-start", "RUN-1 ordering"] {
        let row = all
            .lines()
            .find(|l| l.starts_with(case))
            .unwrap_or_else(|| panic!("no summary row for {case}:\n{all}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[4..6], ["3/3", "passed"], "{row}");
    }
    assert!(
        all.contains("2 case(s), each run 3 time(s): 0 flaky"),
        "{all}"
    );
    let report = read_report(&reports);
    let entries = report["scenarios"].as_array().unwrap();
    let iterations: Vec<u64> = entries
        .iter()
        .map(|e| e["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iterations, [1, 2, 3, 1, 2, 3], "{report:#}");
    assert_eq!(report["options"]["repeat"], 3);
}

#[test]
fn dry_run_prints_the_plan_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (output, reports) = run_with_reports(&["--scenario", "INIT-*", "--dry-run"], tmp.path());
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(
        all.contains("runtime: local (each case at most 120s)"),
        "{all}"
    );
    assert!(all.contains("services: embedded"), "{all}");
    assert!(all.contains("28 case(s), each run 1 time(s)"), "{all}");
    assert!(all.contains("INIT-7 atomic-restore"), "{all}");
    assert!(!all.contains("phasecheck: running"), "{all}");
    assert!(!reports.exists(), "a dry run writes nothing");
    expect_no_temporary_files(tmp.path());
}

#[test]
fn a_case_over_its_timeout_fails_with_its_timeline_and_leaves_nothing_running() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().to_str().unwrap().to_owned();
    let subject = repo().join("fixtures/subjects/phasepod.yaml");
    let (output, reports) = run_with_reports(
        &[
            "--subject",
            subject.to_str().unwrap(),
            "--scenario",
            "MNT-1",
            "--backend",
            "s3",
            "--timeout",
            "3s",
        ],
        tmp.path(),
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("did not finish within 3s"), "{all}");
    let report = read_report(&reports);
    let entry = &report["scenarios"][0];
    // NB: a case the harness gave up on is no verdict on the subject.
    assert_eq!(entry["outcome"], "error");
    assert_eq!(report["options"]["timeout_ms"], 3000);
    let artefacts = PathBuf::from(entry["artefacts"].as_str().expect("an artefact directory"));
    let timeline = std::fs::read_to_string(artefacts.join("case.timeline.txt")).unwrap();
    assert!(timeline.contains("restore"), "{timeline}");
    let left = processes_mentioning(&marker);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    expect_no_temporary_files(tmp.path());
}

#[test]
fn fail_fast_cancels_the_cases_under_way_after_the_first_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = repo().join("fixtures/subjects/broken/creds-to-app.yaml");
    let (output, reports) = run_with_reports(
        &[
            "--subject",
            broken.to_str().unwrap(),
            "--scenario",
            "SEC-1",
            "--scenario",
            "MNT-1",
            "--fail-fast",
        ],
        tmp.path(),
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    let report = read_report(&reports);
    assert!(
        report["stopped"]
            .as_str()
            .unwrap()
            .starts_with("--fail-fast: SEC-1 creds-isolated"),
        "{report:#}"
    );
    let mnt: Vec<&serde_json::Value> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"] == "MNT-1")
        .collect();
    assert_eq!(mnt.len(), 2);
    for entry in mnt {
        assert_eq!(entry["outcome"], "interrupted", "{entry:#}");
        assert!(
            entry["message"].as_str().unwrap().contains("--fail-fast"),
            "{entry:#}"
        );
    }
    expect_no_temporary_files(tmp.path());
}

#[test]
fn keep_on_failure_prints_where_each_kept_namespace_is() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = repo().join("fixtures/subjects/broken/creds-to-app.yaml");
    let (output, reports) = run_with_reports(
        &[
            "--subject",
            broken.to_str().unwrap(),
            "--scenario",
            "SEC-1",
            "--backend",
            "s3",
            "--keep-on-failure",
        ],
        tmp.path(),
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    let report = read_report(&reports);
    let ns = report["scenarios"][0]["namespace"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = all
        .lines()
        .find(|l| l.starts_with("kept for inspection:"))
        .unwrap_or_else(|| panic!("no kept line:\n{all}"));
    let path = line
        .split(" kept at ")
        .nth(1)
        .unwrap_or_else(|| panic!("no path in `{line}`"));
    assert!(path.ends_with(&ns), "{line}");
    assert!(
        Path::new(path).join("pods").is_dir(),
        "{path} holds no pods"
    );
    let left = processes_mentioning(tmp.path().to_str().unwrap());
    assert!(
        left.is_empty(),
        "a kept namespace's processes are stopped: {left:?}"
    );
}

#[test]
fn clean_removes_what_a_killed_run_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().to_str().unwrap().to_owned();
    let mut child = Command::new(PHASECHECK)
        .args(["run", "--scenario", "MNT-*", "--report-dir"])
        .arg(tmp.path().join("reports"))
        .current_dir(repo())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_workloads(&marker, 3);
    // SIGKILL: no handler, no cleanup, as when a CI runner gives up.
    child.kill().unwrap();
    child.wait().unwrap();
    // NB: its sandboxes go down by themselves (a_killed_run_leaves_no_sandbox_process_behind);
    // its directories stay until `clean`, which also ends any process still working in them.

    // A live run's directory, and one no run claims, stay.
    let live = tmp.path().join("phasecheck-run-live");
    std::fs::create_dir(&live).unwrap();
    scenarios::workdir::claim_dir(&live).unwrap();
    let unclaimed = tmp.path().join("phasecheck-local-unclaimed");
    std::fs::create_dir(&unclaimed).unwrap();

    let output = phasecheck(&["clean", "--runtime", "local"], tmp.path());
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    // NB: the killed run's sandboxes end by themselves, usually before `clean` looks; what
    // matters is that nothing is left after it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = processes_mentioning(&marker);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(live.is_dir() && unclaimed.is_dir(), "{all}");
    assert!(all.contains("left alone"), "{all}");
    std::fs::remove_dir_all(&live).unwrap();
    std::fs::remove_dir_all(&unclaimed).unwrap();
    let rest: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("phasecheck-"))
        .collect();
    assert!(rest.is_empty(), "left behind: {rest:?}");
}

#[test]
fn plain_clean_without_a_kubeconfig_still_cleans_this_host_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let output = phasecheck_with_env(
        &["clean"],
        tmp.path(),
        &[
            ("KUBECONFIG", tmp.path().join("none").as_os_str()),
            ("PATH", tmp.path().as_os_str()),
        ],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("the kind cluster is not reachable"), "{all}");
    assert!(all.contains("no `docker` program"), "{all}");
    assert!(
        all.contains("director(y/ies) of runs that are gone"),
        "{all}"
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let output = phasecheck(&["completions", shell], tmp.path());
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{shell}: {}", text(&output));
        assert!(out.contains("fail-fast"), "{shell}:\n{out}");
    }
}

/// Every `PHASECHECK_*` variable the harness, the CLI and CI read.
fn variables_in_the_code() -> BTreeSet<String> {
    let mut files = vec![repo().join(".ci/run")];
    let mut dirs = vec![repo().join("harness/src"), repo().join("scenarios/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("PHASECHECK_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // A prefix in prose (`PHASECHECK_S3_*`) is no variable.
            if !name.ends_with('_') {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn help_lists_every_phasecheck_variable_the_code_reads() {
    let variables = variables_in_the_code();
    assert!(variables.len() >= 15, "{variables:?}");
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["run", "--help"][..]] {
        let help = String::from_utf8(phasecheck(args, tmp.path()).stdout).unwrap();
        for variable in &variables {
            assert!(
                help.contains(variable.as_str()),
                "{args:?}: {variable} missing"
            );
        }
        for code in [
            "0 ",
            "1 ",
            "2 ",
            "128+N",
            "130 SIGINT",
            "143 SIGTERM",
            "129 SIGHUP",
        ] {
            assert!(help.contains(code), "{args:?}: exit code {code} missing");
        }
    }
}

#[test]
fn help_output_is_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = phasecheck(&["--help"], tmp.path());
    assert!(root.status.success());
    insta::assert_snapshot!("phasecheck_help", String::from_utf8(root.stdout).unwrap());
    let run = phasecheck(&["run", "--help"], tmp.path());
    assert!(run.status.success());
    insta::assert_snapshot!(
        "phasecheck_run_help",
        String::from_utf8(run.stdout).unwrap()
    );
}

#[test]
fn junit_of_a_run_holds_properties_failure_bodies_timelines_and_timestamps() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = repo().join("fixtures/subjects/phasepod.yaml");
    let broken = repo().join("fixtures/subjects/broken/creds-to-app.yaml");
    let (output, reports) = run_with_reports(
        &[
            "--subject",
            reference.to_str().unwrap(),
            broken.to_str().unwrap(),
            "--scenario",
            "RUN-1",
            "--scenario",
            "SEC-1",
            "--backend",
            "s3",
            "--jobs",
            "1",
        ],
        tmp.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    let reports = reports.to_str().unwrap().to_owned();
    insta::with_settings!({filters => vec![
        (reports.as_str(), "[reports]"),
        (r#"timestamp="[^"]+""#, r#"timestamp="[timestamp]""#),
        (r#"time="[^"]+""#, r#"time="[time]""#),
        // A timeline's columns keep their width.
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z(  )", "[time]                  $1"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[time]"),
        (r"uid [0-9a-f-]{36}", "uid [uid]"),
        (r"(pc-[a-z0-9-]+)-[0-9a-f]{5}\b", "$1-[nonce]"),
        (r"phasepod-[a-z0-9]{10}-[a-z0-9]{5}", "phasepod-[pod]"),
    ]}, {
        insta::assert_snapshot!("junit", junit);
    });
}

#[test]
fn containers_get_none_of_the_environment_phasecheck_runs_with() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().to_str().unwrap().to_owned();
    let leak = "leak-marker-5d0c";
    let mut child = Command::new(PHASECHECK)
        .args(["run", "--scenario", "MNT-*", "--report-dir"])
        .arg(tmp.path().join("reports"))
        .current_dir(repo())
        .env("TMPDIR", tmp.path())
        .env("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
        .env("PHASECHECK_TEST_LEAK", leak)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // NB: the first workload processes are restores; the check needs an app that is up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut checked = 0;
    while checked == 0 {
        assert!(Instant::now() < deadline, "no app process was checked");
        for (pid, cmd) in processes_with_marker(&marker) {
            if !cmd.starts_with("/phasepod serve") {
                continue;
            }
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
            assert!(environ.contains("DATA_DIR=/data"), "{environ}");
            assert!(!environ.contains(leak), "{environ}");
            assert!(!environ.contains("AWS_CA_BUNDLE"), "{environ}");
            checked += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

#[test]
fn a_killed_run_leaves_no_sandbox_process_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().to_str().unwrap().to_owned();
    let mut child = Command::new(PHASECHECK)
        .args(["run", "--scenario", "MNT-*", "--report-dir"])
        .arg(tmp.path().join("reports"))
        .current_dir(repo())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_workloads(&marker, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    // NB: SIGKILL leaves no time to clean up: each sandbox notices its runtime is gone (its
    // control socket closes) and takes its PID namespace down; death is no event to await.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = processes_mentioning(&marker);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = processes_mentioning(&marker);
    }
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// The restic reference profile, edited, in `dir` (its manifests where they are).
fn write_restic_subject(dir: &Path, profile_edit: impl Fn(String) -> String) -> PathBuf {
    write_edited_subject(dir, "restic", "restic-subject.yaml", profile_edit)
}

#[test]
fn subject_check_prints_what_phasecheck_would_do_with_a_valid_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_restic_subject(tmp.path(), |t| t);
    let output = phasecheck(&["subject", "check", path.to_str().unwrap()], tmp.path());
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    for needle in [
        "subject `restic` is valid",
        "format     restic (the dataset at /data)",
        "the harness writes Secret restic",
        "RESTIC_PASSWORD",
        "claims     all 18 requirements",
    ] {
        assert!(all.contains(needle), "`{needle}` missing from:\n{all}");
    }
}

#[rstest]
#[case::unknown_format("format: restic", "format: borg", &["backup.format", "borg", "restic"])]
#[case::unknown_template_field(
    "{restic.password}",
    "{restic.passphrase}",
    &["backup.backends.s3.secrets", "restic.passphrase", "restic.password"]
)]
#[case::unknown_claim("schedule: {env: RUNAT}", "schedule: {env: RUNAT}\nclaims: [INIT-1, INIT-99]", &["claims", "INIT-99"])]
#[case::a_secret_nobody_writes("        - name: restic\n", "        - name: restic-creds\n", &["backup.backends.s3", "Secret `restic`", "envFrom"])]
#[case::a_path_for_a_format_without_paths("format: restic", "format: files", &["backup.path", "files"])]
fn subject_check_names_the_file_and_field_of_a_bad_profile(
    #[case] from: &str,
    #[case] to: &str,
    #[case] needles: &[&str],
) {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_restic_subject(tmp.path(), |t| {
        assert!(t.contains(from), "the reference profile has `{from}`");
        t.replacen(from, to, 1)
    });
    let mut all_needles = vec!["restic-subject.yaml"];
    all_needles.extend_from_slice(needles);
    expect_input_error(&["subject", "check", path.to_str().unwrap()], &all_needles);
}
