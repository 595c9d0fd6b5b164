use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: restore, image: i}]\n  containers: [{name: app, image: i, volumeMounts: [{name: data, mountPath: /srv}]}, {name: backup, image: i}]\n  volumes: [{name: data, emptyDir: {}}]\n";

fn profile(extra: &str) -> String {
    format!(
        "apiVersion: phasecheck/v1alpha1\nkind: Subject\nname: demo\nmanifests: [m.yaml]\nworkload: {{kind: Pod, name: p}}\ndata: {{volume: data, mountPath: /data}}\ncontainers: {{restore: [restore], run: [app], maintenance: [backup]}}\napp: {{container: app, port: 8080}}\nbackends: {{s3: {{}}}}\nschedule: {{env: RUNAT}}\n{extra}"
    )
}

fn profile_v2(backup: &str, extra: &str) -> String {
    format!(
        "apiVersion: phasecheck/v1alpha2\nkind: Subject\nname: demo\nmanifests: [m.yaml]\nworkload: {{kind: Pod, name: p}}\ncontainers: {{restore: [restore], run: [app], maintenance: [backup]}}\ndata: {{volume: data, ignore: [.git/**]}}\napp: {{container: app, port: 8080, read: {{httpGet: \"/{{path}}\"}}}}\nbackup:\n{backup}\nschedule: {{env: RUNAT}}\n{extra}"
    )
}

const RESTIC_BACKUP: &str = "  format: restic\n  backends:\n    s3:\n      env: {RESTIC_CACHE_DIR: /tmp/cache}\n      secrets:\n        - name: restic\n          data:\n            RESTIC_REPOSITORY: \"s3:{s3.endpoint}/{s3.bucket}/{prefix}\"\n            RESTIC_PASSWORD: \"{restic.password}\"\n";

fn load(profile: &str) -> Result<Subject> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", MANIFEST);
    let path = write(dir.path(), "s.yaml", profile);
    Subject::load(&path)
}

#[test]
fn a_well_formed_profile_loads_with_its_manifests() {
    let subject = load(&profile("")).unwrap();
    assert_eq!(subject.backends(), vec![Backend::S3]);
    assert_eq!(subject.data_claim, None);
    assert!(!subject.native_sidecar);
}

#[test]
fn a_v1alpha1_profile_means_phasepods_format_layout_api_and_wiring() {
    let subject = load(&profile("")).unwrap();
    let p = &subject.profile;
    assert_eq!(p.backup.format, FormatName::Phasepod);
    assert_eq!(p.data.layout, Layout::Phasepod);
    assert_eq!(p.data.root, "current");
    assert_eq!(p.data.mount_path, "/data");
    assert_eq!(p.app.read, Some(AppAccess::HttpGet("/files/{path}".into())));
    let wiring = subject.wiring(Backend::S3).unwrap();
    let values = TemplateValues::default().with("s3.secretAccessKey", "k");
    assert_eq!(
        wiring.secrets[V1_CREDENTIALS_SECRET]["s3-secret-access-key"].render(&values),
        "k"
    );
    assert!(wiring.config_maps[V1_ENDPOINT_CONFIGMAP].contains_key("S3_ENDPOINT"));
    assert!(subject.claims("MNT-4"), "everything is claimed");
}

#[test]
fn a_v1alpha2_profile_loads_its_format_wiring_data_and_claims() {
    let subject = load(&profile_v2(RESTIC_BACKUP, "claims: [INIT-1, RUN-2]\n")).unwrap();
    let p = &subject.profile;
    assert_eq!(p.backup.format, FormatName::Restic);
    assert_eq!(p.data.layout, Layout::Plain);
    assert_eq!(p.data.root, "");
    assert_eq!(p.data.mount_path, "/srv", "taken from the app's mount");
    assert!(p.data.is_ignored(".git/objects/ab/cdef"));
    assert!(!p.data.is_ignored("notes/.gitkeep"));
    let values = TemplateValues::default()
        .with("s3.endpoint", "http://s:9")
        .with("s3.bucket", "b")
        .with("prefix", "x");
    let wiring = subject.wiring(Backend::S3).unwrap();
    assert_eq!(
        wiring.secrets["restic"]["RESTIC_REPOSITORY"].render(&values),
        "s3:http://s:9/b/x"
    );
    assert!(subject.claims("RUN-2"));
    assert!(!subject.claims("MNT-4"));
    subject.check_claims(&["INIT-1", "RUN-2"]).unwrap();
}

#[test]
fn an_unknown_field_is_an_error_naming_file_and_field() {
    let message = load(&profile("colour: blue\n")).unwrap_err().to_string();
    assert!(message.contains("s.yaml"), "{message}");
    assert!(message.contains("colour"), "{message}");
}

#[test]
fn a_container_missing_from_the_manifests_is_named_with_the_choices() {
    let text = profile("").replace("restore: [restore]", "restore: [restor]");
    let message = load(&text).unwrap_err().to_string();
    assert!(message.contains("containers.restore[0]"), "{message}");
    assert!(message.contains("restore, app, backup"), "{message}");
}

#[test]
fn an_unknown_format_is_named_with_the_known_ones() {
    let backup = RESTIC_BACKUP.replace("format: restic", "format: tarball");
    let message = load(&profile_v2(&backup, "")).unwrap_err().to_string();
    assert!(message.contains("s.yaml"), "{message}");
    assert!(message.contains("`backup.format`"), "{message}");
    assert!(message.contains("phasepod, files, restic"), "{message}");
}

#[test]
fn a_template_naming_an_unknown_field_is_named_by_its_place() {
    let backup = RESTIC_BACKUP.replace("{s3.bucket}", "{s3.bukket}");
    let message = load(&profile_v2(&backup, "")).unwrap_err().to_string();
    assert!(
        message.contains("`backup.backends.s3.secrets[0].data.RESTIC_REPOSITORY`"),
        "{message}"
    );
    assert!(message.contains("{s3.bukket}"), "{message}");
}

#[test]
fn claims_naming_an_unknown_requirement_are_an_error() {
    let subject = load(&profile_v2(RESTIC_BACKUP, "claims: [INIT-1, INIT-9]\n")).unwrap();
    let message = subject
        .check_claims(&["INIT-1", "RUN-2"])
        .unwrap_err()
        .to_string();
    assert!(message.contains("`claims[1]`"), "{message}");
    assert!(message.contains("INIT-9"), "{message}");
}

#[test]
fn restic_on_git_is_refused() {
    let backup = format!("{RESTIC_BACKUP}    git: {{}}\n");
    let message = load(&profile_v2(&backup, "")).unwrap_err().to_string();
    assert!(message.contains("`backup.backends.git`"), "{message}");
    assert!(message.contains("s3 only"), "{message}");
}

#[test]
fn app_access_must_name_the_file() {
    let text = profile_v2(RESTIC_BACKUP, "").replace("/{path}", "/files");
    let message = load(&text).unwrap_err().to_string();
    assert!(message.contains("`app.read`"), "{message}");
}

#[test]
fn missing_host_programs_come_with_their_install_hints() {
    let text = profile_v2(
        RESTIC_BACKUP,
        "images: {i: {command: [sh, -c]}}\nhostPrograms: {no-such-program-here: \"apt-get install -y nothing\"}\n",
    );
    let subject = load(&text).unwrap();
    assert_eq!(
        subject.missing_host_programs(),
        [(
            "no-such-program-here".to_owned(),
            "apt-get install -y nothing".to_owned()
        )]
    );
}

#[test]
fn path_globs_match_within_and_across_directories() {
    assert!(path_glob_match(".git/**", ".git"));
    assert!(path_glob_match(".git/**", ".git/HEAD"));
    assert!(path_glob_match("**/*.tmp", "a/b/c.tmp"));
    assert!(path_glob_match("**/*.tmp", "c.tmp"));
    assert!(path_glob_match("*.tmp", "c.tmp"));
    assert!(!path_glob_match("*.tmp", "a/c.tmp"));
    assert!(path_glob_match("a/**/b", "a/b"));
    assert!(path_glob_match("a/**/b", "a/x/y/b"));
    assert!(!path_glob_match(".git/**", ".gitignore"));
}

#[test]
fn exec_access_fills_path_and_content() {
    let access = AppAccess::Exec(vec![
        "sh".into(),
        "-c".into(),
        "echo {content.base64} | base64 -d > /data/{path}".into(),
    ]);
    assert_eq!(
        access.for_file("a b", Some(b"hi")),
        AppRequest::Exec(vec![
            "sh".into(),
            "-c".into(),
            "echo aGk= | base64 -d > /data/a b".into()
        ])
    );
}

#[test]
fn http_access_percent_encodes_the_path() {
    let access = AppAccess::HttpGet("/files/{path}".into());
    assert_eq!(
        access.for_file("a b/ü.txt", None),
        AppRequest::Http("/files/a%20b/%C3%BC.txt".into())
    );
}

#[test]
fn an_unknown_field_in_a_manifest_is_an_error_naming_the_manifest_and_document() {
    let manifest = MANIFEST.replace(
        "{name: backup, image: i}",
        "{name: backup, image: i, restartPolicyy: Always}",
    );
    assert_ne!(manifest, MANIFEST);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", &manifest);
    let path = write(dir.path(), "s.yaml", &profile(""));
    let message = Subject::load(&path).unwrap_err().to_string();
    assert!(message.contains("m.yaml: document 1 (Pod p)"), "{message}");
    assert!(message.contains("restartPolicyy"), "{message}");
    assert!(message.contains("s.yaml"), "{message}");
}

#[test]
fn a_continuous_workload_names_its_lag_and_no_schedule() {
    let continuous = |maintenance: &str| {
        profile_v2(RESTIC_BACKUP, "").replace("schedule: {env: RUNAT}\n", maintenance)
    };
    let subject = load(&continuous("maintenance: {kind: continuous, lag: 10s}\n")).unwrap();
    assert_eq!(
        subject.profile.maintenance,
        Maintenance::Continuous {
            lag: std::time::Duration::from_secs(10)
        }
    );
    assert_eq!(subject.profile.maintenance.schedule(), None);
    for (maintenance, field, hint) in [
        (
            "maintenance: {kind: continuous}\n",
            "`maintenance.lag`",
            "lag: 10s",
        ),
        (
            "maintenance: {kind: continuous, lag: soon}\n",
            "`maintenance.lag`",
            "not a duration",
        ),
        ("", "`schedule`", "schedule: {env: RUNAT}"),
        (
            "maintenance: {kind: hourly}\n",
            "`maintenance.kind`",
            "`scheduled` or `continuous`",
        ),
        (
            "maintenance: {kind: continuous, lag: 5s}\nschedule: {env: RUNAT}\n",
            "`schedule`",
            "remove `schedule`",
        ),
    ] {
        let message = load(&continuous(maintenance)).unwrap_err().to_string();
        assert!(message.contains(field), "{maintenance}: {message}");
        assert!(message.contains(hint), "{maintenance}: {message}");
    }
    let scheduled = load(&profile_v2(RESTIC_BACKUP, "")).unwrap();
    assert_eq!(
        scheduled
            .profile
            .maintenance
            .schedule()
            .map(|k| k.env.as_str()),
        Some("RUNAT")
    );
}

#[test]
fn a_sqlite_layout_names_the_database_file() {
    let text = profile_v2(RESTIC_BACKUP, "").replace(
        "data: {volume: data, ignore: [.git/**]}",
        "data: {volume: data, root: app.db, layout: sqlite}",
    );
    let subject = load(&text).unwrap();
    assert_eq!(subject.profile.data.layout, Layout::Sqlite);
    assert_eq!(subject.profile.data.root, "app.db");
    assert!(!Layout::Sqlite.compares_bytes());
    assert!(Layout::Sqlite.self_verifying());
    assert!(Layout::Sqlite.is_one_file() && !Layout::Plain.is_one_file());
    let message = load(&text.replace("root: app.db, ", ""))
        .unwrap_err()
        .to_string();
    assert!(message.contains("`data.root`"), "{message}");
    assert!(message.contains("database file"), "{message}");
}

const CUSTOM_RESOURCE: &str = "apiVersion: phasecheck.io/v1alpha1\nkind: PhasedApp\nmetadata: {name: app}\nspec: {replicas: 1, claimName: app-data}\n";

const OPERATOR: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: operator}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: operator, image: i}]}\n";

/// Line edits of a profile: `(from, to)`.
type Edits<'a> = &'a [(&'a str, &'a str)];

/// A profile whose workload is a PhasedApp made by the operator of `install:`; `replace`
/// swaps lines of it (`(from, to)`).
fn operator_profile(replace: Edits) -> String {
    let mut text = "apiVersion: phasecheck/v1alpha2\nkind: Subject\nname: demo\nmanifests: [m.yaml]\ninstall: {manifests: [o.yaml]}\nworkload: {kind: PhasedApp, name: app, pods: {kind: Deployment, name: app}}\ncontainers: {restore: [restore], run: [app], maintenance: [backup]}\ndata: {volume: data, mountPath: /data, claim: app-data}\napp: {container: app, port: 8080}\nbackup:\n  format: phasepod\n  backends:\n    s3: {fields: {/spec/backend: s3}}\nschedule: {field: /spec/runAt}\nretention: {field: /spec/keep}\n".to_owned();
    for (from, to) in replace {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    text
}

fn load_operator(profile: &str) -> Result<Subject> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.yaml", CUSTOM_RESOURCE);
    write(dir.path(), "o.yaml", OPERATOR);
    let path = write(dir.path(), "s.yaml", profile);
    Subject::load(&path)
}

fn problem(result: Result<Subject>) -> (String, String) {
    match result {
        Err(Error::Invalid { field, problem, .. }) => (field, problem),
        other => panic!("expected an invalid profile, got {other:?}"),
    }
}

#[test]
fn a_custom_resource_workload_is_judged_by_the_pods_its_operator_makes() {
    let subject = load_operator(&operator_profile(&[])).unwrap();
    let p = &subject.profile;
    assert!(p.workload.is_custom_resource());
    assert_eq!(p.workload.pods_name(), "app");
    assert_eq!(subject.data_claim.as_deref(), Some("app-data"));
    assert_eq!(p.data.mount_path, "/data");
    assert_eq!(
        p.maintenance.schedule().unwrap().place(),
        KnobPlace::Field("/spec/runAt")
    );
    assert_eq!(
        p.retention.as_ref().unwrap().place(),
        KnobPlace::Field("/spec/keep")
    );
    assert!(
        subject
            .wiring(Backend::S3)
            .unwrap()
            .fields
            .contains_key("/spec/backend")
    );
    let (field, problem) = match subject.check_runs_locally() {
        Err(Error::Invalid { field, problem, .. }) => (field, problem),
        other => panic!("{other:?}"),
    };
    assert_eq!(field, "workload.kind");
    assert!(problem.contains("--runtime kind"), "{problem}");
}

#[test]
fn a_custom_resource_workload_without_what_only_its_profile_can_say_is_refused_naming_the_field() {
    let cases: [(Edits, &str, &str); 5] = [
        (
            &[("install: {manifests: [o.yaml]}\n", "")],
            "workload.kind",
            "install:",
        ),
        (
            &[(", pods: {kind: Deployment, name: app}", "")],
            "workload.pods",
            "pods: {kind: Deployment, name: app}",
        ),
        (
            &[(
                "kind: Deployment, name: app}",
                "kind: ReplicaSet, name: app}",
            )],
            "workload.pods.kind",
            "Deployment or StatefulSet",
        ),
        (
            &[("mountPath: /data, ", "")],
            "data.mountPath",
            "mountPath: /data",
        ),
        (
            &[("schedule: {field: /spec/runAt}", "schedule: {env: RUNAT}")],
            "schedule",
            "field: /spec/",
        ),
    ];
    for (replace, want_field, hint) in cases {
        let (field, problem) = problem(load_operator(&operator_profile(replace)));
        assert_eq!(field, want_field, "{replace:?}: {problem}");
        assert!(problem.contains(hint), "{replace:?}: {problem}");
    }
    let (field, problem) = problem(load_operator(&operator_profile(&[(
        "/spec/runAt}",
        "spec.runAt}",
    )])));
    assert_eq!(field, "schedule");
    assert!(problem.contains("JSON pointer"), "{problem}");
}

#[test]
fn pods_and_a_claim_belong_to_custom_resource_workloads_only() {
    let (field, problem) = problem(load(&profile_v2(RESTIC_BACKUP, "").replace(
        "{kind: Pod, name: p}",
        "{kind: Pod, name: p, pods: {kind: Deployment, name: p}}",
    )));
    assert_eq!(field, "workload.pods");
    assert!(problem.contains("remove it"), "{problem}");
}

#[test]
fn the_reference_operator_subject_loads_and_is_refused_by_the_local_runtime() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/subjects/phasepod-operator.yaml");
    let subject = Subject::load(&path).unwrap();
    assert_eq!(subject.profile.workload.pods_name(), "phasepod");
    assert!(subject.check_runs_locally().is_err());
    let kinds: Vec<String> = subject
        .install_objects()
        .iter()
        .map(|o| o.kind().to_owned())
        .collect();
    assert!(
        kinds.iter().any(|k| k == "CustomResourceDefinition"),
        "{kinds:?}"
    );
}
