//! `report.html` of a made-up run with every outcome, a pod restarted, a deleted pod, faults,
//! backups and a hostile message: its structure as an insta snapshot (times redacted), and what
//! must hold whatever the layout (escaping, one cell per case, failed cases first and open).

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use harness::report::{
    CaseEvent, EventKind, Outcome, Part, PodTrace, RunReport, ScenarioResult,
    trace::{ContainerTrace, RunTrace},
};

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_764_000_000_000 + ms).unwrap()
}

fn run(restart: u32, start: i64, end: Option<(i64, i32, &str)>) -> RunTrace {
    RunTrace {
        restart_count: restart,
        started_at: at(start),
        finished_at: end.map(|(t, ..)| at(t)),
        exit_code: end.map(|(_, code, _)| code),
        reason: end.map(|(.., reason)| reason.to_owned()),
        message: None,
    }
}

fn container(name: &str, role: &str, part: Part, runs: Vec<RunTrace>) -> ContainerTrace {
    ContainerTrace {
        name: name.into(),
        role: role.into(),
        part: Some(part),
        runs,
        waiting: None,
    }
}

fn pod(
    name: &str,
    created: i64,
    deleted: Option<i64>,
    containers: Vec<ContainerTrace>,
) -> PodTrace {
    PodTrace {
        pod: name.into(),
        uid: format!("uid-{name}"),
        created_at: at(created),
        deleted_at: deleted.map(at),
        phase: "Running".into(),
        ready: true,
        message: None,
        observed_at: at(9_000),
        containers,
    }
}

fn case(id: &str, name: &str, outcome: Outcome, message: &str) -> ScenarioResult {
    let mut r = ScenarioResult::new(
        id,
        name,
        "phasepod",
        "s3",
        outcome,
        Duration::from_millis(9_500),
        message,
    );
    r.started_at = Some(at(0));
    r
}

/// A run with one case of every outcome; the failed one fully drawn.
fn sample(dir: &Path) -> RunReport {
    let mut report = RunReport::new("v1", "local");
    report.tool = "phasecheck".into();
    report.version = "0.1.0".into();
    report.started_at = at(-100);
    report.wall_ms = 12_345;
    report.isolation = Some("sandbox".into());
    report.options = serde_json::json!({"services": "embedded"});
    let mut failed = case(
        "INIT-5",
        "skip-bad-backup",
        Outcome::Failed,
        "the app served <script>alert(\"x\")</script> & 'more'\nsecond line",
    );
    failed.namespace = Some("pc-init-5-s3-phasepod-abcde".into());
    failed.timeline = "namespace pc-init-5 <text>\n".into();
    failed.pods = vec![
        pod(
            "phasepod-a",
            100,
            Some(4_000),
            vec![
                container(
                    "restore",
                    "init",
                    Part::Restore,
                    vec![
                        run(0, 200, Some((900, 1, "Error"))),
                        run(1, 1_200, Some((2_000, 0, "Completed"))),
                    ],
                ),
                container("app", "app", Part::Run, vec![run(0, 2_100, None)]),
                container(
                    "backup",
                    "app",
                    Part::Maintenance,
                    vec![
                        run(0, 2_100, Some((3_000, 137, "Killed"))),
                        run(1, 3_300, None),
                    ],
                ),
            ],
        ),
        pod(
            "phasepod-b",
            4_200,
            None,
            vec![container(
                "restore",
                "init",
                Part::Restore,
                vec![run(0, 4_300, Some((5_000, 0, "Completed")))],
            )],
        ),
    ];
    failed.events = vec![
        CaseEvent::new(at(50), EventKind::Seeded, "20251124-160000"),
        CaseEvent::new(at(80), EventKind::Fault, "corrupt the newest backup"),
        CaseEvent::new(at(2_500), EventKind::Ready, "phasepod-a"),
        CaseEvent::new(at(2_900), EventKind::Fault, "kill container `backup`"),
        CaseEvent::new(at(3_500), EventKind::Backup, "20251124-160003").with_seen_at(at(3_700)),
        CaseEvent::new(at(3_900), EventKind::Fault, "delete the pod"),
    ];
    let artefacts = dir.join("artefacts").join("pc-init-5-s3-phasepod-abcde");
    std::fs::create_dir_all(&artefacts).unwrap();
    std::fs::write(artefacts.join("phasepod-a.restore.log"), "log").unwrap();
    std::fs::write(artefacts.join("events.txt"), "events").unwrap();
    failed.artefacts = Some(artefacts);
    let mut not_claimed = case("MNT-4", "retention", Outcome::NotClaimed, "6 kept, KEEP=2");
    not_claimed.would_have_been = Some(Outcome::Failed);
    let mut git = case("INIT-5", "skip-bad-backup", Outcome::Passed, "");
    git.backend = "git".into();
    report.scenarios = vec![
        case("INIT-1", "restore-empty", Outcome::Passed, ""),
        failed,
        git,
        case(
            "INIT-6",
            "no-start-blind",
            Outcome::Error,
            "starting the backup store: address in use",
        ),
        case(
            "MNT-1",
            "on-schedule",
            Outcome::Skipped,
            "missing on this machine: `restic`",
        ),
        not_claimed,
        case(
            "MNT-5",
            "sidecar-crash",
            Outcome::NotApplicable,
            "no retention knob",
        ),
        case(
            "LIFE-1",
            "recreate",
            Outcome::Interrupted,
            "interrupted by SIGTERM after 1.0s",
        ),
    ];
    report
}

/// The page's `<body>`, with the temporary directory redacted.
fn body(html: &str, dir: &Path) -> String {
    let start = html.find("<body>").unwrap();
    html[start..].replace(dir.to_str().unwrap(), "[dir]")
}

#[test]
fn report_html_structure_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let report = sample(dir.path());
    let html = harness::report::html::render(&report, dir.path());
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[time]"),
        (r"\+\d+\.\d\ds", "+[s]"),
        (r#"<td class="t">-?\d+\.\d\d</td>"#, r#"<td class="t">[s]</td>"#),
    ]}, {
        insta::assert_snapshot!("report_html_body", body(&html, dir.path()));
    });
}

#[test]
fn every_text_from_the_run_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let html = harness::report::html::render(&sample(dir.path()), dir.path());
    assert!(!html.contains("<script>alert"), "a message was not escaped");
    assert!(!html.contains("<text>"), "a timeline was not escaped");
    assert!(
        html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;more&#39;")
    );
    // NB: the only script is the page's own (open every <details> for print).
    assert_eq!(html.matches("<script>").count(), 1);
}

#[test]
fn the_page_is_self_contained_with_one_matrix_cell_per_case_and_failures_first_and_open() {
    let dir = tempfile::tempdir().unwrap();
    let report = sample(dir.path());
    let html = harness::report::html::render(&report, dir.path());
    for remote in ["http://", "https://", "<link", "src="] {
        assert!(!html.contains(remote), "the page loads something: {remote}");
    }
    assert_eq!(
        html.matches("<td class=\"cell ").count(),
        report.scenarios.len()
    );
    let cases: Vec<&str> = html
        .match_indices("<details class=\"case ")
        .map(|(i, _)| &html[i..i + 200])
        .collect();
    assert_eq!(cases.len(), report.scenarios.len());
    assert!(cases[0].contains("data-outcome=\"failed\"") && cases[0].contains(" open>"));
    assert!(cases[1].contains("data-outcome=\"error\"") && cases[1].contains(" open>"));
    assert!(
        cases
            .iter()
            .filter(|c| c.contains("data-outcome=\"passed\""))
            .all(|c| !c.contains(" open>"))
    );
    assert_eq!(html.matches("<polygon class=\"fault\"").count(), 3);
    assert_eq!(html.matches("<circle class=\"backup\"").count(), 1);
    assert_eq!(html.matches("<polygon class=\"ready\"").count(), 1);
    assert!(html.contains("href=\"artefacts/pc-init-5-s3-phasepod-abcde/phasepod-a.restore.log\""));
}
