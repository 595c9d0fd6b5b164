//! `phasecheck`: runs the conformance catalog against phased workloads.
//!
//! Exit codes and environment variables: see [`AFTER_HELP`] (what `--help` prints).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use harness::services::containers::{ContainerSettings, ObjectStoreImage};
use harness::services::external::ExternalServices;
use harness::subject::Backend;
use scenarios::runner::{RunOptions, RuntimeKind, Services};
use scenarios::{note, say};

/// What `phasecheck --help` and `phasecheck run --help` print after the options.
const AFTER_HELP: &str = "\
Exit codes:
  0      every selected case passed (or was skipped)
  1      one or more cases failed
  2      bad usage or input, found before the first case starts: a flag, a subject profile,
         a manifest, an image, the report directory, an unavailable runtime
  128+N  stopped by signal N: 130 SIGINT, 143 SIGTERM, 129 SIGHUP. Cases under way are
         cancelled and their pods, stores and files removed; report.json, junit.xml and
         report.html are written with the unfinished cases `interrupted`. A second signal
         exits at once.

Environment:
  PHASECHECK_LOG                  tracing filter for the harness's own logs (default: warn),
                                  e.g. debug or harness=trace
  PHASECHECK_KIND_NODE_IMAGE      kind node image for --runtime kind (pins the Kubernetes version)
  PHASECHECK_KUBE_CONTEXT         kubeconfig context for --runtime existing (default: the current)
  PHASECHECK_HOST_ADDRESS         IPv4 address the cluster's pods reach this host by
                                  (--runtime existing; minikube without the docker driver)
  PHASECHECK_KEEP_CLUSTER=1       keep a cluster this run created (deleted by default)
  PHASECHECK_S3_ENDPOINT          --services external: S3 endpoint URL (path-style)
  PHASECHECK_S3_BUCKET              an existing bucket
  PHASECHECK_S3_REGION              region (default: us-east-1)
  PHASECHECK_S3_PREFIX              key prefix phasecheck works under (default: empty)
  PHASECHECK_S3_ACCESS_KEY_ID       credentials, or PHASECHECK_S3_ACCESS_KEY_ID_FILE and
  PHASECHECK_S3_SECRET_ACCESS_KEY   PHASECHECK_S3_SECRET_ACCESS_KEY_FILE naming files
  PHASECHECK_GIT_URL              --services external: git repository, plain http:// only
  PHASECHECK_GIT_USERNAME           basic auth (optional), or PHASECHECK_GIT_USERNAME_FILE and
  PHASECHECK_GIT_PASSWORD           PHASECHECK_GIT_PASSWORD_FILE naming files
  PHASECHECK_REQUIRE_DOCKER=1     cargo test only: Docker-tier tests fail instead of skipping
                                  when no Docker daemon answers
  PHASECHECK_REQUIRE_TOOLS=1      cargo test only: tests of real tools (restic, rclone, the
                                  third-party subjects) fail instead of skipping without them
  GITHUB_ACTIONS=true             (set by GitHub Actions) an ::error annotation per failed case
                                  on stdout, and the matrix appended to GITHUB_STEP_SUMMARY
  NO_COLOR                        set (non-empty): no colour even on a terminal
  TMPDIR                          where a run keeps its files (the local runtime's pods, the
                                  embedded stores); unset: /dev/shm when it is a tmpfs with
                                  4 GiB free, else /tmp";

/// Conformance harness for phased pods: restore in init, run without credentials, scheduled backups.
#[derive(Debug, Parser)]
#[command(name = "phasecheck", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the catalog's scenarios against subjects and write report.json, junit.xml and
    /// report.html.
    #[command(after_help = AFTER_HELP)]
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
        /// Cases run at once, each in its own namespace (at least 1) [default: 16 per CPU core,
        /// from 16 to 64]
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        /// The longest one case may take, e.g. 90s, 5m, 1m30s; a case over it fails [default:
        /// 120s on the local runtime, 300s on clusters]
        #[arg(long, value_name = "DURATION", value_parser = scenarios::runner::parse_duration)]
        timeout: Option<Duration>,
        /// Run each case N times to tell flaky cases from broken ones; the summary shows each
        /// case's pass count and flags cases that both passed and failed.
        #[arg(long, value_name = "N", default_value_t = 1)]
        repeat: u32,
        /// Stop at the first failed case: cancel the cases under way (reported `interrupted`)
        /// and start no more.
        #[arg(long)]
        fail_fast: bool,
        /// Check every input and print the plan (cases, runtime, services), then exit without
        /// running anything.
        #[arg(long)]
        dry_run: bool,
        /// Directory for report.json, junit.xml, report.html and failure artefacts (created if
        /// missing).
        #[arg(long, value_name = "DIR", default_value = "target/phasecheck")]
        report_dir: PathBuf,
        /// Keep a failed case's namespace (processes stopped, files kept) for inspection, and
        /// print where it is.
        #[arg(long)]
        keep_on_failure: bool,
        /// Judge requirements a subject does not claim (`claims:` in its profile) like claimed
        /// ones: their failures fail the run instead of being reported as not-claimed.
        #[arg(long)]
        strict: bool,
        /// Backup stores: a fresh embedded one per scenario, a container per scenario (MinIO or
        /// RustFS, Gitea), or the external bucket and repository named by PHASECHECK_S3_* /
        /// PHASECHECK_GIT_* (below) for drills.
        #[arg(long, value_enum, default_value = "embedded")]
        services: ServicesKind,
        /// The object store image with `--services container`.
        #[arg(long, value_enum, default_value = "minio")]
        object_store: ObjectStoreKind,
    },
    /// List the catalog: ID, name, requirement.
    List,
    /// Work with subject profiles.
    Subject {
        #[command(subcommand)]
        command: SubjectCommand,
    },
    /// Remove what killed runs left behind: processes, files, store containers, namespaces.
    ///
    /// On this host: the run directories (phasecheck-run-* under $TMPDIR, /dev/shm or /tmp) and
    /// local runtime directories (phasecheck-local-*) of runs that are gone, and the processes
    /// still working in them. In Docker: store containers labelled
    /// app.kubernetes.io/managed-by=phasecheck. On the cluster: namespaces so labelled. Never
    /// run it while a run uses the same cluster.
    Clean {
        /// Whose cluster: kind (context kind-phasecheck), minikube (profile phasecheck),
        /// existing (PHASECHECK_KUBE_CONTEXT or the current context), local (no cluster). An
        /// unreachable cluster named here exits 2 after the rest is cleaned [default: kind if
        /// it is reachable]
        #[arg(long, value_enum)]
        runtime: Option<RuntimeKind>,
    },
    /// Build the reference workload's container image offline.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Print a shell completion script.
    ///
    /// For example: `phasecheck completions bash > /etc/bash_completion.d/phasecheck`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
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
enum SubjectCommand {
    /// Validate profiles against their manifests and print what phasecheck would do with each
    /// (what it writes per backend, claims, local-runtime readiness), without running anything.
    /// Exit 0: all valid; 2: one is not (the error names the file, the field and the fix).
    Check {
        /// Subject profile(s).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
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
            scenarios::term::out_text(&scenarios::catalog::listing());
            ExitCode::SUCCESS
        }
        Command::Subject {
            command: SubjectCommand::Check { files },
        } => scenarios::subject_check::run(&files),
        Command::Image {
            command: ImageCommand::Build { tag, target },
        } => build_image(tag, target),
        Command::Clean { runtime } => {
            init_tracing();
            let tokio = tokio::runtime::Runtime::new().expect("tokio runtime starts");
            tokio.block_on(scenarios::clean::run(runtime))
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "phasecheck", &mut script);
            scenarios::term::out_text(&String::from_utf8_lossy(&script));
            ExitCode::SUCCESS
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
            timeout,
            repeat,
            fail_fast,
            dry_run,
            report_dir,
            keep_on_failure,
            strict,
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
                        note!("phasecheck: error: --services external: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            let options = RunOptions {
                runtime,
                subjects,
                scenarios,
                backends,
                jobs: jobs.unwrap_or_else(scenarios::runner::default_jobs),
                timeout,
                repeat,
                fail_fast,
                report_dir,
                keep_on_failure,
                strict,
                services,
                phasecheck: None,
            };
            scenarios::runner::run_cli(options, dry_run)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHASECHECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(scenarios::term::colour(scenarios::term::Stream::Stderr))
        // NB: its default is to `eprintln!` a failed write, which panics on a closed stderr.
        .log_internal_errors(false)
        .init();
}

fn build_image(tag: String, target: String) -> ExitCode {
    use harness::image::{Error, ImageBuilder};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let builder = ImageBuilder::new(root).with_tag(tag).with_target(target);
    let tokio = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    match tokio.block_on(builder.build(|line| note!("{line}"))) {
        Ok(image) => {
            say!(
                "built {} ({}, {:.1} MB)",
                image.tag,
                image.id,
                image.size_bytes as f64 / 1e6
            );
            ExitCode::SUCCESS
        }
        Err(e @ (Error::DockerMissing { .. } | Error::DaemonUnavailable { .. })) => {
            note!("phasecheck: error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            note!("phasecheck: error: {e}");
            ExitCode::from(1)
        }
    }
}
