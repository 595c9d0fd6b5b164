//! `phasecheck subject check FILE…`: validates subject profiles against their manifests and
//! says what phasecheck would do with each, without running anything.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use harness::subject::{AppAccess, Maintenance, Subject};

use crate::catalog;

/// Checks every profile; prints a summary of each valid one. Exit 0 when all are valid, 2 when
/// one is not (the error names the file, the field and the fix).
pub fn run(paths: &[std::path::PathBuf]) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for path in paths {
        match check(path) {
            Ok(summary) => crate::term::out_text(&summary),
            Err(e) => {
                crate::note!("phasecheck: error: {e}");
                code = ExitCode::from(2);
            }
        }
    }
    code
}

/// The summary of a valid profile, or why it is not.
pub fn check(path: &Path) -> Result<String, harness::subject::Error> {
    let subject = Subject::load(path)?;
    subject.check_claims(&catalog::ids())?;
    subject.check_images_mapped()?;
    Ok(summary(&subject))
}

fn summary(subject: &Subject) -> String {
    let p = &subject.profile;
    let mut out = String::new();
    let mut line = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    line(format!(
        "{}: subject `{}` is valid ({})",
        subject.path.display(),
        p.name,
        p.api_version
    ));
    let made_into = p
        .workload
        .pods
        .as_ref()
        .map(|pods| format!(" (its operator makes {}/{})", pods.kind, pods.name))
        .unwrap_or_default();
    line(format!(
        "  workload   {}/{}{made_into}; restore {:?}, run {:?}, maintenance {:?} ({})",
        p.workload.kind,
        p.workload.name,
        p.containers.restore,
        p.containers.run,
        p.containers.maintenance,
        if p.workload.is_custom_resource() {
            "made by its operator"
        } else if p.install.is_some() {
            "added when the pod is created"
        } else if subject.native_sidecar {
            "native sidecar"
        } else {
            "classic sidecar"
        }
    ));
    if let Some(install) = &p.install {
        let objects: Vec<String> = subject
            .install_objects()
            .iter()
            .map(|o| o.to_string())
            .collect();
        line(format!(
            "  install    into namespace {} once per run: {}{}",
            install.namespace,
            objects.join(", "),
            install
                .ca_bundle
                .as_ref()
                .map_or(String::new(), |s| format!(
                    "; caBundle from GET {} on port {} of {}",
                    s.path, s.port, s.deployment
                ))
        ));
    }
    line(format!(
        "  data       volume `{}` ({}) at {} in `{}`, root `{}`, layout {}, ignoring {:?}",
        p.data.volume,
        subject
            .data_claim
            .as_deref()
            .map_or("emptyDir".to_owned(), |c| format!("claim {c}")),
        p.data.mount_path,
        p.app.container,
        p.data.root,
        p.data.layout.name(),
        p.data.ignore
    ));
    line(format!(
        "  app        `{}` port {}; read {}; write {}",
        p.app.container,
        p.app.port,
        access(p.app.read.as_ref()),
        access(p.app.write.as_ref())
    ));
    line(format!(
        "  format     {}{}",
        p.backup.format,
        p.backup
            .path
            .as_deref()
            .map_or(String::new(), |path| format!(" (the dataset at /{path})"))
    ));
    for (backend, wiring) in &p.backup.backends {
        let mut written = Vec::new();
        for (name, data) in &wiring.config_maps {
            written.push(format!(
                "ConfigMap {name} {:?}",
                data.keys().collect::<Vec<_>>()
            ));
        }
        for (name, data) in &wiring.secrets {
            written.push(format!(
                "Secret {name} {:?}",
                data.keys().collect::<Vec<_>>()
            ));
        }
        if !wiring.env.is_empty() {
            written.push(format!(
                "env {:?} on restore and maintenance",
                wiring.env.keys().collect::<Vec<_>>()
            ));
        }
        if !wiring.annotations.is_empty() {
            written.push(format!(
                "annotations {:?} on the pod template",
                wiring.annotations.keys().collect::<Vec<_>>()
            ));
        }
        line(format!(
            "  {:<10} the harness writes {}",
            backend.as_str(),
            written.join(", ")
        ));
    }
    let maintenance = match &p.maintenance {
        Maintenance::Scheduled(knob) => format!("schedule {}", knob.place()),
        Maintenance::Continuous { lag } => format!("continuous, lag {lag:?}"),
    };
    line(format!(
        "  knobs      {maintenance}{}",
        p.retention.as_ref().map_or(
            ", no retention knob (MNT-4 not applicable)".to_owned(),
            |r| { format!(", retention {}", r.place()) }
        )
    ));
    line(match &p.claims {
        None => format!("  claims     all {} requirements", catalog::CATALOG.len()),
        Some(ids) => {
            let unclaimed: Vec<&str> = catalog::ids()
                .into_iter()
                .filter(|id| !ids.contains(*id))
                .collect();
            format!(
                "  claims     {} of {}; not claimed (reported `not-claimed`): {}",
                ids.len(),
                catalog::CATALOG.len(),
                unclaimed.join(", ")
            )
        }
    });
    let missing = subject.missing_host_programs();
    if let Err(e) = subject.check_runs_locally() {
        line(format!("  local      refused: {e}"));
    } else if missing.is_empty() {
        line("  local      every image mapped, every host program present".into());
    } else {
        for (program, install) in missing {
            line(format!(
                "  local      `{program}` is missing: the local runtime skips this subject (install: {install})"
            ));
        }
    }
    out
}

fn access(access: Option<&AppAccess>) -> String {
    match access {
        None => "-".into(),
        Some(AppAccess::HttpGet(p)) => format!("GET {p}"),
        Some(AppAccess::HttpPut(p)) => format!("PUT {p}"),
        Some(AppAccess::WebdavPut(p)) => format!("MKCOL+PUT {p}"),
        Some(AppAccess::Exec(argv)) => format!("exec {argv:?}"),
    }
}
