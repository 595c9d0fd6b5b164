//! The embedded local runtime's environment: every subject's images mapped to host programs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use harness::runtime::local::{ImageMap, LocalRuntime};
use harness::subject::ImageSource;

use super::Environment;
use crate::plan::{Case, InputError, RunOptions};

impl Environment<LocalRuntime> {
    /// The embedded runtime with every subject's images mapped to host commands.
    pub async fn local(options: &RunOptions, cases: &[Case]) -> Result<Self, InputError> {
        let phasecheck = match &options.phasecheck {
            Some(path) => path.clone(),
            None => this_phasecheck().map_err(InputError::Runtime)?,
        };
        let mut images = ImageMap::default();
        let mut seen: BTreeMap<String, ImageSource> = BTreeMap::new();
        for case in cases {
            case.subject.check_runs_locally()?;
            case.subject.check_images_mapped()?;
            for (image, source) in &case.subject.profile.images {
                if let Some(previous) = seen.get(image)
                    && previous != source
                {
                    return Err(InputError::Runtime(format!(
                        "{}: field `images.{image}`: mapped differently by another subject ({previous:?} vs {source:?})",
                        case.subject.path.display()
                    )));
                }
                seen.insert(image.clone(), source.clone());
                images = match source {
                    // NB: called `/phasepod`, this program runs as phasepod.
                    ImageSource::Builtin(_) => images.with_program(
                        image,
                        &phasecheck,
                        harness::image::BINARY_PATH,
                        Vec::<String>::new(),
                    ),
                    ImageSource::Command(argv) => {
                        images.with_image(image, argv.clone(), Vec::<String>::new())
                    }
                };
            }
        }
        let runtime = LocalRuntime::builder()
            .with_images(images)
            .with_sandbox_launcher([phasecheck.into_os_string(), "sandbox".into()])
            .with_backoff(Duration::from_millis(200), Duration::from_secs(2))
            .build()
            .map_err(|e| InputError::Runtime(e.to_string()))?;
        crate::workdir::claim_dir(runtime.root()).map_err(|e| {
            InputError::Runtime(format!("marking the local runtime's directory: {e}"))
        })?;
        let isolation = runtime.isolation().clone();
        if let Some(shortfall) = isolation.shortfall() {
            eprintln!("phasecheck: WARNING: the local runtime runs with {shortfall}");
        }
        let env = Environment::new(runtime, "local", options).with_isolation(isolation);
        env.check_store_images(cases).await?;
        Ok(env)
    }
}

/// This program, which must be the phasecheck binary.
fn this_phasecheck() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    if exe.file_stem().and_then(|s| s.to_str()) == Some("phasecheck") {
        Ok(exe)
    } else {
        Err(format!(
            "{} is not the phasecheck binary: set RunOptions::phasecheck to it",
            exe.display()
        ))
    }
}
