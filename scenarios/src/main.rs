//! `phasecheck`: runs the conformance catalog against phased workloads.
//!
//! Exit codes: 0 every selected scenario passed, 1 one or more failed, 2 usage or input error,
//! 130 interrupted.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::services::containers::{ContainerSettings, ObjectStoreImage};
use harness::services::external::ExternalServices;
use harness::subject::Backend;
use scenarios::runner::{RunOptions, RuntimeKind, Services};

/// Conformance harness for phased pods: restore in init, run without credentials, scheduled backups.
#[derive(Debug, Parser)]
#[command(name = "phasecheck", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the catalog's scenarios against subjects and write report.json and junit.xml.
    Run {
        /// Where the subjects run.
        #[arg(long, value_enum, default_value = "local")]
        runtime: RuntimeKind,
        /// Subject profile(s); default: the reference subjects under fixtures/subjects.
        #[arg(long = "subject", value_name = "FILE", num_args = 1..)]
        subjects: Vec<PathBuf>,
        /// Scenario ID or glob (e.g. `INIT-*`); repeatable; default: every scenario.
        #[arg(long = "scenario", value_name = "GLOB")]
        scenarios: Vec<String>,
        /// Backend(s) to run; default: every backend each subject declares.
        #[arg(long = "backend", value_name = "s3|git")]
        backends: Vec<Backend>,
        /// Scenarios run at once (each in its own namespace).
        #[arg(long, default_value_t = scenarios::runner::default_jobs())]
        jobs: usize,
        /// Directory for report.json, junit.xml and failure artefacts.
        #[arg(long, default_value = "target/phasecheck")]
        report_dir: PathBuf,
        /// Keep a failed scenario's namespace (processes stopped, files kept) for inspection.
        #[arg(long)]
        keep_on_failure: bool,
        /// Backup stores: a fresh embedded one per scenario, a container per scenario (MinIO or
        /// RustFS, Gitea), or the external bucket and repository named by PHASECHECK_S3_* /
        /// PHASECHECK_GIT_* (see README) for drills.
        #[arg(long, value_enum, default_value = "embedded")]
        services: ServicesKind,
        /// The object store image with `--services container`.
        #[arg(long, value_enum, default_value = "minio")]
        object_store: ObjectStoreKind,
    },
    /// List the catalog: ID, name, requirement.
    List,
    /// Remove what killed runs left behind: namespaces labelled
    /// app.kubernetes.io/managed-by=phasecheck on the cluster, and store containers so labelled.
    /// Never run it while a run uses the same cluster.
    Clean {
        /// Whose cluster: kind (context kind-phasecheck), minikube (profile phasecheck), existing
        /// (PHASECHECK_KUBE_CONTEXT or the current context); local cleans Docker only.
        #[arg(long, value_enum, default_value = "kind")]
        runtime: RuntimeKind,
    },
    /// Build the reference workload's container image offline.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// The reference workload itself (what the image `phasecheck/phasepod:dev` runs locally).
    #[command(hide = true, disable_help_flag = true)]
    Phasepod {
        /// Arguments for phasepod.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `--services`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ServicesKind {
    /// A fresh embedded object store or git server per scenario.
    Embedded,
    /// A store container per scenario (testcontainers; images must be pullable or present).
    Container,
    /// The external stores the PHASECHECK_S3_* and PHASECHECK_GIT_* variables describe.
    External,
}

/// `--object-store`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ObjectStoreKind {
    /// MinIO, pinned from quay.io.
    Minio,
    /// RustFS.
    Rustfs,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Build `phasecheck/phasepod:dev` from this workspace (static binary, FROM scratch, non-root).
    Build {
        /// Image tag.
        #[arg(long, default_value = harness::image::REFERENCE_IMAGE)]
        tag: String,
        /// Rust target triple of the static binary.
        #[arg(long, default_value = harness::image::TARGET)]
        target: String,
    },
}

fn main() -> ExitCode {
    // NB: two more programs live in this one. Called `phasepod` (the local runtime shows this
    // binary at the reference image's `/phasepod`), it is phasepod; `phasecheck sandbox …` is
    // the local runtime's sandbox launcher, started by the runtime itself. Both are decided
    // before the command line is parsed, which is theirs.
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    if std::path::Path::new(&program).file_name() == Some(std::ffi::OsStr::new("phasepod")) {
        return phasepod::cli::run(std::env::args_os());
    }
    if args.next().as_deref() == Some(std::ffi::OsStr::new("sandbox")) {
        return harness::runtime::local::sandbox_launcher(&["sandbox"]);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            print!("{}", scenarios::catalog::listing());
            ExitCode::SUCCESS
        }
        Command::Image {
            command: ImageCommand::Build { tag, target },
        } => build_image(tag, target),
        Command::Clean { runtime } => {
            init_tracing();
            let tokio = tokio::runtime::Runtime::new().expect("tokio runtime starts");
            tokio.block_on(scenarios::clean::run(runtime))
        }
        Command::Phasepod { args } => {
            let argv = std::iter::once("phasepod".to_owned()).chain(args);
            phasepod::cli::run(argv)
        }
        Command::Run {
            runtime,
            subjects,
            scenarios,
            backends,
            jobs,
            report_dir,
            keep_on_failure,
            services,
            object_store,
        } => {
            init_tracing();
            let services = match services {
                ServicesKind::Embedded => Services::Embedded,
                ServicesKind::Container => Services::Container(ContainerSettings {
                    object_store: match object_store {
                        ObjectStoreKind::Minio => ObjectStoreImage::MinIO,
                        ObjectStoreKind::Rustfs => ObjectStoreImage::RustFs(
                            harness::services::containers::RUSTFS_TAG.into(),
                        ),
                    },
                    network: None,
                }),
                ServicesKind::External => match ExternalServices::from_env() {
                    Ok(external) => Services::External(Box::new(external)),
                    Err(e) => {
                        eprintln!("phasecheck: error: --services external: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            let options = RunOptions {
                runtime,
                subjects,
                scenarios,
                backends,
                jobs: jobs.max(1),
                report_dir,
                keep_on_failure,
                services,
                phasecheck: None,
            };
            let tokio = tokio::runtime::Runtime::new().expect("tokio runtime starts");
            tokio.block_on(scenarios::runner::run_cli(options))
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHASECHECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn build_image(tag: String, target: String) -> ExitCode {
    use harness::image::{Error, ImageBuilder};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let builder = ImageBuilder::new(root).with_tag(tag).with_target(target);
    let tokio = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    match tokio.block_on(builder.build(|line| eprintln!("{line}"))) {
        Ok(image) => {
            println!(
                "built {} ({}, {:.1} MB)",
                image.tag,
                image.id,
                image.size_bytes as f64 / 1e6
            );
            ExitCode::SUCCESS
        }
        Err(e @ (Error::DockerMissing { .. } | Error::DaemonUnavailable { .. })) => {
            eprintln!("phasecheck: error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("phasecheck: error: {e}");
            ExitCode::from(1)
        }
    }
}
