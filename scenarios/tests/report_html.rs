//! `report.html` of a real run, in a real browser: `phasecheck run` on the local runtime with the
//! reference subject and a broken one (restore trusts the newest backup without verifying it, so
//! INIT-5 fails after its fault, corrupting that backup), then headless Chromium loads the page.
//! The DOM it dumps must hold the matrix with one cell per case, and every failed case open with
//! its message and a timeline with a marker per fault injected. A screenshot is kept next to the
//! report (`target/phasecheck-report-html/report.png`, a CI artefact).
//!
//! The run also plays GitHub Actions (`GITHUB_ACTIONS=true`): an `::error` annotation per failed
//! case on stdout, the matrix appended to `GITHUB_STEP_SUMMARY`.
//!
//! Without `chromium` on PATH the test prints `SKIPPED (…)` and passes, unless
//! `PHASECHECK_REQUIRE_TOOLS=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use scraper::{ElementRef, Html, Selector};

const PHASECHECK: &str = env!("CARGO_BIN_EXE_phasecheck");
/// How long one Chromium command may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether Chromium runs here; prints the skip line when it does not (and fails when tools are
/// required).
fn chromium_available() -> bool {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("PHASECHECK_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "chromium is not installed but PHASECHECK_REQUIRE_TOOLS=1 \
             (apt-get install -y --no-install-recommends chromium)"
        );
        println!(
            "SKIPPED (chromium not installed: apt-get install -y --no-install-recommends chromium)"
        );
    }
    found
}

/// Headless Chromium on `page` with `args`, its own profile under `profile`; fails unless it
/// exits 0 within [`BROWSER_TIMEOUT`].
fn chromium(args: &[String], page: &Path, profile: &Path) -> Output {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    // NB: Command has no timeout; the browser is polled, and killed once the deadline passes.
    while child.try_wait().expect("chromium is waited for").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium {args:?} took longer than {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("chromium's output");
    assert!(
        output.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn select<'a>(scope: ElementRef<'a>, css: &str) -> Vec<ElementRef<'a>> {
    let selector = Selector::parse(css).unwrap_or_else(|e| panic!("selector {css}: {e:?}"));
    scope.select(&selector).collect()
}

#[test]
fn report_html_of_a_real_run_shows_every_case_and_every_failure_with_its_faults_in_chromium() {
    if !chromium_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // NB: under target/, so the page, its artefacts and the screenshot outlive the test.
    let reports = repo().join("target/phasecheck-report-html");
    let _ = std::fs::remove_dir_all(&reports);
    let summary = tmp.path().join("step-summary.md");
    let reference = repo().join("fixtures/subjects/phasepod.yaml");
    let broken = repo().join("fixtures/subjects/broken/skip-verify.yaml");
    let output = Command::new(PHASECHECK)
        .args(["run", "--subject"])
        .args([&reference, &broken])
        .args([
            "--scenario",
            "INIT-5",
            "--scenario",
            "MNT-5",
            "--backend",
            "s3",
        ])
        .arg("--report-dir")
        .arg(&reports)
        .current_dir(repo())
        .env("TMPDIR", tmp.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .expect("phasecheck runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.json")).unwrap()).unwrap();
    let cases = report["scenarios"].as_array().unwrap();
    assert_eq!(cases.len(), 4, "{report:#}");
    let failed: Vec<(usize, &serde_json::Value)> = cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c["outcome"] == "failed")
        .collect();
    assert!(!failed.is_empty(), "no case failed: {stdout}");
    let faults_of = |case: &serde_json::Value| {
        case["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "fault")
            .count()
    };
    assert!(
        failed.iter().any(|(_, c)| faults_of(c) > 0),
        "no failed case injected a fault: {report:#}"
    );
    for (_, case) in &failed {
        assert!(!case["pods"].as_array().unwrap().is_empty(), "{case:#}");
    }

    // The page as Chromium built it.
    let page = reports.join("report.html");
    let profile = tmp.path().join("chromium-profile");
    let dom = chromium(&["--dump-dom".to_owned()], &page, &profile);
    let dom = Html::parse_document(&String::from_utf8(dom.stdout).unwrap());
    let root = dom.root_element();

    let cells = select(root, "table.matrix td.cell");
    assert_eq!(cells.len(), cases.len(), "one matrix cell per case");
    for case in cases {
        let cell = cells
            .iter()
            .find(|c| {
                let v = c.value();
                v.attr("data-id") == case["id"].as_str()
                    && v.attr("data-subject") == case["subject"].as_str()
                    && v.attr("data-backend") == case["backend"].as_str()
            })
            .unwrap_or_else(|| panic!("no matrix cell for {case:#}"));
        assert_eq!(cell.value().attr("data-outcome"), case["outcome"].as_str());
        let text: String = cell.text().collect();
        assert!(text.contains(case["outcome"].as_str().unwrap()), "{text}");
    }

    let details = select(root, "details.case");
    assert_eq!(details.len(), cases.len());
    assert_eq!(
        details[0].value().attr("data-outcome"),
        Some("failed"),
        "failed cases come first"
    );
    for (index, case) in &failed {
        let id = format!("details#case-{index}");
        let detail = select(root, &id)
            .pop()
            .unwrap_or_else(|| panic!("no {id} for {case:#}"));
        assert!(detail.value().attr("open").is_some(), "{id} is not open");
        let message: String = select(detail, "pre.message")
            .first()
            .unwrap_or_else(|| panic!("{id} shows no message"))
            .text()
            .collect();
        assert_eq!(message, case["message"].as_str().unwrap());
        let svg = select(detail, "svg.timeline")
            .pop()
            .unwrap_or_else(|| panic!("{id} has no timeline"));
        assert_eq!(
            select(svg, "polygon.fault").len(),
            faults_of(case),
            "{id}: one marker per fault"
        );
        let lanes = case["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["containers"].as_array().unwrap().len())
            .sum::<usize>();
        let runs = select(svg, "rect.run").len();
        assert!(runs >= lanes.min(1), "{id}: {runs} runs drawn");
    }
    for passed in details
        .iter()
        .filter(|d| d.value().attr("data-outcome") == Some("passed"))
    {
        assert!(
            passed.value().attr("open").is_none(),
            "a passed case is open"
        );
    }

    // A picture of it, kept with the report.
    let screenshot = reports.join("report.png");
    chromium(
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,2000".to_owned(),
            "--hide-scrollbars".to_owned(),
        ],
        &page,
        &profile,
    );
    let png = std::fs::read(&screenshot).expect("the screenshot is written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a blank screenshot ({} bytes)",
        png.len()
    );

    // What GitHub Actions gets.
    let annotations: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(annotations.len(), failed.len(), "{stdout}");
    assert!(
        annotations[0]
            .starts_with("::error title=INIT-5 skip-bad-backup broken-skip-verify/s3 failed::"),
        "{}",
        annotations[0]
    );
    let markdown = std::fs::read_to_string(&summary).expect("the job summary is written");
    assert!(markdown.starts_with("### phasecheck: "), "{markdown}");
    assert!(
        markdown.contains("| INIT-5 skip-bad-backup | ✔ passed | ✘ failed |"),
        "{markdown}"
    );
}
