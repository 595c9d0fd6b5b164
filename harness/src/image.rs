//! The images a cluster run loads, each one workspace binary linked statically and packed
//! `FROM scratch`, built offline with nothing but cargo and the Docker CLI ([`ImageSpec`]):
//! the reference image [`REFERENCE_IMAGE`] (`phasepod`, as `nonroot`) and the harness's tools
//! image [`TOOLS_IMAGE`] (`phasecheck-tools`, as root, for the helper pods). Below, `phasepod`
//! stands for the spec's binary.
//!
//! [`ImageBuilder::build`] (or [`build_reference_image`]):
//!
//! 1. asks the Docker daemon for its version, so a missing CLI or a stopped daemon is reported
//!    before a long build;
//! 2. runs `cargo build --release -p phasepod --bin phasepod --target x86_64-unknown-linux-gnu
//!    --message-format=json-render-diagnostics` with `RUSTFLAGS="-C target-feature=+crt-static"`
//!    and takes the executable from cargo's `compiler-artifact` messages. The explicit `--target`
//!    keeps build scripts and proc-macros dynamic (they cannot be loaded or run otherwise) and puts
//!    the static build under `target/x86_64-unknown-linux-gnu/`, so it never invalidates the normal
//!    builds. glibc's static libc still resolves host names through `/etc/hosts` and DNS
//!    (glibc ≥ 2.34 has those backends built in), which is all phasepod needs;
//! 3. checks that the executable has no ELF interpreter (a dynamic binary cannot start in an image
//!    without a libc);
//! 4. writes the image's only layer as a tar stream, owned by root, with fixed timestamps:
//!
//!    | path | mode | content |
//!    |---|---|---|
//!    | `/phasepod` | 0755 | the binary |
//!    | `/etc/passwd`, `/etc/group` | 0644 | `root` and `nonroot` (uid/gid 65532) |
//!    | `/etc/nsswitch.conf` | 0644 | `hosts: files dns` |
//!    | `/etc/ssl/certs/ca-certificates.crt` | 0644 | the host's CA bundle, when it has one (https endpoints) |
//!    | `/tmp` | 1777 | empty |
//!
//! 5. pipes it into `docker import` with `USER 65532:65532`, `ENTRYPOINT ["/phasepod"]` and a
//!    label holding the SHA-256 of the layer and those settings. When the tag already names an
//!    image with that label, the import is skipped; when it named another image, that image is
//!    removed if nothing uses it (no dangling image per rebuild).
//!
//! `docker import` works with the legacy builder and without any registry: nothing is pulled.
//! There is no shell in the image; run it as
//! `docker run --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges`.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The tag of the reference image.
pub const REFERENCE_IMAGE: &str = "phasecheck/phasepod:dev";

/// The tag of the harness's tools image (claim and node helpers on clusters).
pub const TOOLS_IMAGE: &str = "phasecheck/tools:dev";

/// Where the tools binary is in the tools image; also its entrypoint.
pub const TOOLS_BINARY_PATH: &str = "/phasecheck-tools";

/// What an image holds: one binary of a workspace package, at `/<binary>`, run as `user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    /// The workspace package, e.g. `phasepod`.
    pub package: &'static str,
    /// Its binary target, also the file name in the image.
    pub binary: &'static str,
    /// The default tag.
    pub tag: &'static str,
    /// The uid and gid the image runs as.
    pub user: u32,
}

impl ImageSpec {
    /// The reference workload: `phasepod` as `nonroot`, [`REFERENCE_IMAGE`].
    pub const REFERENCE: ImageSpec = ImageSpec {
        package: "phasepod",
        binary: "phasepod",
        tag: REFERENCE_IMAGE,
        user: NONROOT_ID,
    };

    /// The harness's helpers: `phasecheck-tools` as root (helpers mount claims and read
    /// other containers' processes), [`TOOLS_IMAGE`].
    pub const TOOLS: ImageSpec = ImageSpec {
        package: "phasecheck-tools",
        binary: "phasecheck-tools",
        tag: TOOLS_IMAGE,
        user: 0,
    };

    /// The binary's path in the image, its entrypoint.
    pub fn binary_path(&self) -> String {
        format!("/{}", self.binary)
    }
}

/// The target triple the static binary is built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// `RUSTFLAGS` of the static build.
pub const STATIC_RUSTFLAGS: &str = "-C target-feature=+crt-static";

/// The uid and gid the image runs as (`nonroot`, as in distroless images).
pub const NONROOT_ID: u32 = 65532;

/// Where the binary is in the image; also its entrypoint.
pub const BINARY_PATH: &str = "/phasepod";

/// The image label holding the digest of the image's content and settings.
pub const DIGEST_LABEL: &str = "io.phasecheck.content-digest";

/// The host's CA bundle, copied into the image when present.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How long [`docker_available`] waits for the daemon.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a docker command (version, import, inspect, rm) may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// How many lines of cargo's output a build failure quotes.
const TAIL_LINES: usize = 40;

/// `/etc/passwd` of the image.
const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                      nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
/// `/etc/group` of the image.
const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";
/// `/etc/nsswitch.conf` of the image: static glibc has the `files` and `dns` backends built in.
const NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\n";

/// Errors building the reference image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Docker CLI cannot be run.
    #[error(
        "cannot run the Docker CLI `{program}`: {source} \
         (install it, e.g. `apt-get install -y --no-install-recommends docker.io`)"
    )]
    DockerMissing {
        /// The program tried.
        program: String,
        /// Why it could not be started.
        #[source]
        source: io::Error,
    },
    /// The Docker CLI runs but no daemon answers it.
    #[error(
        "the Docker daemon does not answer: {detail}\n\
         Start it: `sudo systemctl start docker`, or as root without systemd \
         `dockerd >/var/log/dockerd.log 2>&1 &`; or point DOCKER_HOST at a running daemon \
         (a permission error means the user needs access to /var/run/docker.sock)"
    )]
    DaemonUnavailable {
        /// What the CLI said.
        detail: String,
    },
    /// cargo cannot be run.
    #[error("cannot run `{program}`: {source}")]
    CargoSpawn {
        /// The program tried.
        program: String,
        /// Why it could not be started.
        #[source]
        source: io::Error,
    },
    /// The static build failed.
    #[error("`{command}` failed ({status}); the end of its output:\n{tail}")]
    CargoFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The last lines cargo wrote to standard error.
        tail: String,
    },
    /// cargo succeeded but reported no `phasepod` executable.
    #[error("`{command}` reported no `phasepod` executable; the end of its output:\n{tail}")]
    NoBinary {
        /// The command line.
        command: String,
        /// The last lines cargo wrote to standard error.
        tail: String,
    },
    /// The binary needs a dynamic loader, so it cannot run in an image without a libc.
    #[error(
        "{} is dynamically linked (it has an ELF interpreter); \
         was RUSTFLAGS overridden by CARGO_ENCODED_RUSTFLAGS or a linker setting?",
        path.display()
    )]
    NotStatic {
        /// The binary.
        path: PathBuf,
    },
    /// A local file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A docker command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    DockerFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// Its standard error.
        stderr: String,
    },
    /// A docker command did not finish in time (it was killed).
    #[error("`{command}` did not finish within {after:?}")]
    Timeout {
        /// The command line.
        command: String,
        /// The time allowed.
        after: Duration,
    },
    /// A docker command's output could not be understood.
    #[error("`{command}` printed something unexpected: {output:?}")]
    UnexpectedOutput {
        /// The command line.
        command: String,
        /// What it printed.
        output: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`ImageBuilder::build`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// The tag, e.g. [`REFERENCE_IMAGE`].
    pub tag: String,
    /// The image ID (`sha256:…`).
    pub id: String,
    /// The image size in bytes, as the daemon reports it.
    pub size_bytes: u64,
    /// The static binary the image holds, on the host.
    pub binary: PathBuf,
    /// `true` when the tag already held identical content and nothing was imported.
    pub reused: bool,
}

/// Builds the reference image. [`ImageBuilder::new`] gives the standard setup: tag
/// [`REFERENCE_IMAGE`], target [`TARGET`], the cargo running this process (`$CARGO`) or `cargo`,
/// `docker` from `PATH`, the host CA bundle when present.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    workspace_root: PathBuf,
    spec: ImageSpec,
    tag: String,
    target: String,
    cargo: OsString,
    docker: OsString,
    ca_bundle: Option<PathBuf>,
}

impl ImageBuilder {
    /// A builder for the workspace at `workspace_root` (the directory of the workspace
    /// `Cargo.toml`).
    pub fn new(workspace_root: impl Into<PathBuf>) -> Self {
        let ca_bundle = Path::new(HOST_CA_BUNDLE);
        ImageBuilder {
            workspace_root: workspace_root.into(),
            spec: ImageSpec::REFERENCE,
            tag: REFERENCE_IMAGE.to_owned(),
            target: TARGET.to_owned(),
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            docker: "docker".into(),
            ca_bundle: ca_bundle.is_file().then(|| ca_bundle.to_owned()),
        }
    }

    /// Build the image `spec` describes (tagged with its tag) instead of the reference image.
    pub fn with_spec(mut self, spec: ImageSpec) -> Self {
        self.spec = spec;
        self.tag = spec.tag.to_owned();
        self
    }

    /// Tag the image `tag` instead of [`REFERENCE_IMAGE`].
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    /// Build for target triple `target` instead of [`TARGET`] (it must match the daemon's
    /// architecture and have a static glibc, e.g. `aarch64-unknown-linux-gnu`).
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// Run this cargo program.
    pub fn with_cargo(mut self, program: impl Into<OsString>) -> Self {
        self.cargo = program.into();
        self
    }

    /// Run this Docker CLI program.
    pub fn with_docker(mut self, program: impl Into<OsString>) -> Self {
        self.docker = program.into();
        self
    }

    /// Copy this CA bundle into the image as `/etc/ssl/certs/ca-certificates.crt` (`None`: none).
    pub fn with_ca_bundle(mut self, path: Option<PathBuf>) -> Self {
        self.ca_bundle = path;
        self
    }

    /// Builds the binary and the image; `progress` hears each step and every line cargo prints.
    pub async fn build(&self, progress: impl Fn(&str)) -> Result<ImageInfo> {
        progress("asking the Docker daemon for its version");
        let version = docker_server_version(&self.docker, DOCKER_TIMEOUT).await?;
        progress(&format!("Docker {version} answers"));

        progress(&format!(
            "building {} (release, static, {}) — a cold build takes minutes",
            self.spec.binary, self.target
        ));
        let binary = self.cargo_build(&progress).await?;
        let bytes = tokio::fs::read(&binary).await.map_err(|source| Error::Io {
            path: binary.clone(),
            source,
        })?;
        if has_elf_interpreter(&bytes) {
            return Err(Error::NotStatic { path: binary });
        }
        progress(&format!(
            "{} ({}, static)",
            binary.display(),
            human_size(bytes.len() as u64)
        ));

        let ca_bundle = match &self.ca_bundle {
            Some(path) => Some(tokio::fs::read(path).await.map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let layer = rootfs_tar(&self.spec.binary_path(), &bytes, ca_bundle.as_deref());
        drop(bytes);

        let mut changes = vec![
            format!("USER {0}:{0}", self.spec.user),
            format!(r#"ENTRYPOINT ["{}"]"#, self.spec.binary_path()),
        ];
        let digest = {
            let mut hasher = Sha256::new();
            hasher.update(&layer);
            for change in &changes {
                hasher.update([0]);
                hasher.update(change.as_bytes());
            }
            hex::encode(hasher.finalize())
        };
        changes.push(format!("LABEL {DIGEST_LABEL}={digest}"));

        let existing = self.inspect_existing().await;
        let reused = existing.as_ref().is_some_and(|(_, d)| *d == digest);
        if reused {
            progress(&format!("{} is up to date", self.tag));
        } else {
            progress(&format!(
                "importing {} ({} layer)",
                self.tag,
                human_size(layer.len() as u64)
            ));
            let mut args: Vec<OsString> = vec!["import".into()];
            for change in &changes {
                args.push("--change".into());
                args.push(change.into());
            }
            args.push("-".into());
            args.push(self.tag.clone().into());
            run_docker(&self.docker, &args, Some(layer), DOCKER_TIMEOUT).await?;
        }

        let args = [
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Size}}",
            &self.tag,
        ];
        let output = run_docker(&self.docker, &os_args(&args), None, DOCKER_TIMEOUT).await?;
        let unexpected = || Error::UnexpectedOutput {
            command: command_line(&self.docker, &os_args(&args)),
            output: output.clone(),
        };
        let (id, size) = output.trim().split_once(' ').ok_or_else(unexpected)?;
        let size_bytes = size.parse().map_err(|_| unexpected())?;
        let info = ImageInfo {
            tag: self.tag.clone(),
            id: id.to_owned(),
            size_bytes,
            binary,
            reused,
        };

        if let Some((old_id, _)) = existing.filter(|(old_id, _)| *old_id != info.id) {
            // NB: the tag moved, so the old image is dangling; it stays when a container uses it.
            let args = os_args(&["image", "rm", &old_id]);
            match run_docker(&self.docker, &args, None, DOCKER_TIMEOUT).await {
                Ok(_) => progress(&format!("removed the previous image {old_id}")),
                Err(e) => tracing::debug!(error = %e, "previous image kept"),
            }
        }
        progress(&format!(
            "{} is {} ({})",
            info.tag,
            info.id,
            human_size(info.size_bytes)
        ));
        Ok(info)
    }

    /// Runs the static cargo build; returns the executable cargo reported.
    async fn cargo_build(&self, progress: &impl Fn(&str)) -> Result<PathBuf> {
        let manifest = self.workspace_root.join("Cargo.toml");
        let mut args: Vec<OsString> = os_args(&[
            "build",
            "--release",
            "-p",
            self.spec.package,
            "--bin",
            self.spec.binary,
            "--target",
            &self.target,
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ]);
        args.push(manifest.into());
        let command = format!(
            "RUSTFLAGS=\"{STATIC_RUSTFLAGS}\" {}",
            command_line(&self.cargo, &args)
        );
        let mut child = tokio::process::Command::new(&self.cargo)
            .args(&args)
            .current_dir(&self.workspace_root)
            .env("RUSTFLAGS", STATIC_RUSTFLAGS)
            // NB: CARGO_ENCODED_RUSTFLAGS would take precedence over RUSTFLAGS.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("CARGO_TERM_COLOR", "never")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::CargoSpawn {
                program: self.cargo.to_string_lossy().into_owned(),
                source,
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let artifacts = async {
            let mut executable = None;
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(path) = executable_in(&line, self.spec.binary) {
                    executable = Some(path);
                }
            }
            executable
        };
        let messages = async {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                progress(line.trim_end());
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        };
        let (executable, ()) = tokio::join!(artifacts, messages);
        let status = child.wait().await.map_err(|source| Error::CargoSpawn {
            program: self.cargo.to_string_lossy().into_owned(),
            source,
        })?;
        let tail = Vec::from(tail).join("\n");
        if !status.success() {
            return Err(Error::CargoFailed {
                command,
                status,
                tail,
            });
        }
        executable.ok_or(Error::NoBinary { command, tail })
    }

    /// The ID and content digest of the image the tag names now, if any.
    async fn inspect_existing(&self) -> Option<(String, String)> {
        let format = format!("{{{{.Id}}}} {{{{index .Config.Labels \"{DIGEST_LABEL}\"}}}}");
        let args = os_args(&["image", "inspect", "--format", &format, &self.tag]);
        let output = run_docker(&self.docker, &args, None, DOCKER_TIMEOUT)
            .await
            .ok()?;
        let (id, digest) = output.trim().split_once(' ')?;
        Some((id.to_owned(), digest.to_owned()))
    }
}

/// Builds [`REFERENCE_IMAGE`] from the workspace at `workspace_root` with the standard setup of
/// [`ImageBuilder::new`]; `progress` hears each step and every line cargo prints.
pub async fn build_reference_image(
    workspace_root: &Path,
    progress: impl Fn(&str),
) -> Result<ImageInfo> {
    ImageBuilder::new(workspace_root).build(progress).await
}

/// Whether a Docker daemon answers `docker version` within a few seconds.
///
/// Blocks the calling thread; in async code call it through `spawn_blocking`.
pub fn docker_available() -> bool {
    let child = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut version = String::new();
        let read = io::Read::read_to_string(&mut stdout, &mut version);
        let _ = tx.send(read.map(|_| version));
    });
    // NB: stdout reaches end-of-file when docker exits; the reader thread ends with it, also after
    // the kill below.
    let answered = match rx.recv_timeout(PROBE_TIMEOUT) {
        Ok(Ok(version)) => !version.trim().is_empty(),
        Ok(Err(_)) | Err(_) => false,
    };
    if !answered {
        let _ = child.kill();
    }
    matches!(child.wait(), Ok(status) if status.success()) && answered
}

/// The Docker daemon's version, as `docker version` reports it; errors say whether the CLI or the
/// daemon is missing.
pub async fn docker_server_version(docker: &OsStr, timeout: Duration) -> Result<String> {
    let args = os_args(&["version", "--format", "{{.Server.Version}}"]);
    let version = run_docker(docker, &args, None, timeout)
        .await
        .map_err(|e| match e {
            Error::DockerFailed { stderr, .. } => Error::DaemonUnavailable { detail: stderr },
            Error::Timeout { after, .. } => Error::DaemonUnavailable {
                detail: format!("no answer within {after:?}"),
            },
            e => e,
        })?;
    let version = version.trim();
    if version.is_empty() {
        return Err(Error::DaemonUnavailable {
            detail: "`docker version` printed no server version".to_owned(),
        });
    }
    Ok(version.to_owned())
}

/// Runs `docker args…` (feeding it `stdin`), returns its standard output.
async fn run_docker(
    docker: &OsStr,
    args: &[OsString],
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<String> {
    let command = || command_line(docker, args);
    let mut child = tokio::process::Command::new(docker)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::DockerMissing {
            program: docker.to_string_lossy().into_owned(),
            source,
        })?;
    let pipe = child.stdin.take();
    let feed = async move {
        if let (Some(bytes), Some(mut pipe)) = (stdin, pipe) {
            // NB: a write error means docker exited early; its status and stderr say why.
            let _ = pipe.write_all(&bytes).await;
            let _ = pipe.shutdown().await;
        }
    };
    let run = async {
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    let output = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| Error::Timeout {
            command: command(),
            after: timeout,
        })?
        .map_err(|source| Error::DockerMissing {
            program: docker.to_string_lossy().into_owned(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if !output.status.success() {
        if is_daemon_unavailable(&stderr) {
            return Err(Error::DaemonUnavailable { detail: stderr });
        }
        return Err(Error::DockerFailed {
            command: command(),
            status: output.status,
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether the Docker CLI's error says it reached no daemon.
fn is_daemon_unavailable(stderr: &str) -> bool {
    stderr.contains("Cannot connect to the Docker daemon")
        || stderr.contains("Is the docker daemon running")
        || stderr.contains("permission denied while trying to connect to the Docker daemon")
        || stderr.contains("error during connect")
}

/// The executable of binary target `binary` a line of cargo's JSON messages reports, if it does.
fn executable_in(line: &str, binary: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["target"]["name"] != binary {
        return None;
    }
    let is_bin = message["target"]["kind"]
        .as_array()?
        .iter()
        .any(|kind| kind == "bin");
    if !is_bin {
        return None;
    }
    message["executable"].as_str().map(PathBuf::from)
}

/// Whether an ELF file has a `PT_INTERP` program header (needs a dynamic loader). Anything that
/// is not a little-endian ELF64 file counts as "no".
fn has_elf_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    // e_ident: magic, class 2 (64-bit), data 1 (little-endian).
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        usize::try_from(phoff)
            .ok()
            .and_then(|phoff| u32_at(phoff + i * usize::from(phentsize)))
            == Some(PT_INTERP)
    })
}

/// The image's only layer: the rootfs described in the module docs, as an uncompressed tar with
/// root ownership and fixed timestamps.
fn rootfs_tar(path: &str, binary: &[u8], ca_bundle: Option<&[u8]>) -> Vec<u8> {
    write_rootfs(path, binary, ca_bundle).expect("writing a tar into memory cannot fail")
}

fn write_rootfs(path: &str, binary: &[u8], ca_bundle: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::with_capacity(binary.len() + (1 << 20)));
    let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut header = header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut header, path, io::empty())
    };
    let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, content: &[u8]| {
        let mut header = header(tar::EntryType::Regular, mode, content.len() as u64);
        tar.append_data(&mut header, path, content)
    };
    dir(&mut tar, "etc", 0o755)?;
    file(&mut tar, "etc/passwd", 0o644, PASSWD.as_bytes())?;
    file(&mut tar, "etc/group", 0o644, GROUP.as_bytes())?;
    file(&mut tar, "etc/nsswitch.conf", 0o644, NSSWITCH.as_bytes())?;
    if let Some(bundle) = ca_bundle {
        dir(&mut tar, "etc/ssl", 0o755)?;
        dir(&mut tar, "etc/ssl/certs", 0o755)?;
        file(&mut tar, "etc/ssl/certs/ca-certificates.crt", 0o644, bundle)?;
    }
    dir(&mut tar, "tmp", 0o1777)?;
    file(&mut tar, path.trim_start_matches('/'), 0o755, binary)?;
    tar.into_inner()
}

/// A tar header owned by root with a fixed timestamp.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

/// `program args…` for messages, arguments quoted where a shell would need it.
fn command_line(program: &OsStr, args: &[OsString]) -> String {
    let mut line = program.to_string_lossy().into_owned();
    for arg in args {
        let arg = arg.to_string_lossy();
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c));
        if plain {
            let _ = write!(line, " {arg}");
        } else {
            let _ = write!(line, " '{}'", arg.replace('\'', r"'\''"));
        }
    }
    line
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// `12.3 MB`.
fn human_size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_holds_the_binary_the_users_and_a_sticky_tmp_owned_by_root() {
        let layer = rootfs_tar(BINARY_PATH, b"\x7fELF binary", Some(b"CA"));
        let mut archive = tar::Archive::new(layer.as_slice());
        let entries: Vec<(String, u32, u64, u64, Vec<u8>)> = archive
            .entries()
            .expect("a tar")
            .map(|entry| {
                let mut entry = entry.expect("an entry");
                let header = entry.header().clone();
                let mut content = Vec::new();
                io::Read::read_to_end(&mut entry, &mut content).expect("content");
                (
                    header.path().expect("a path").display().to_string(),
                    header.mode().expect("a mode"),
                    header.uid().expect("a uid"),
                    header.gid().expect("a gid"),
                    content,
                )
            })
            .collect();
        let listing: Vec<(&str, u32)> = entries.iter().map(|e| (e.0.as_str(), e.1)).collect();
        assert_eq!(
            listing,
            [
                ("etc", 0o755),
                ("etc/passwd", 0o644),
                ("etc/group", 0o644),
                ("etc/nsswitch.conf", 0o644),
                ("etc/ssl", 0o755),
                ("etc/ssl/certs", 0o755),
                ("etc/ssl/certs/ca-certificates.crt", 0o644),
                ("tmp", 0o1777),
                ("phasepod", 0o755),
            ]
        );
        assert!(
            entries.iter().all(|e| e.2 == 0 && e.3 == 0),
            "root owns all"
        );
        let content = |path: &str| {
            let entry = entries.iter().find(|e| e.0 == path).expect("present");
            String::from_utf8_lossy(&entry.4).into_owned()
        };
        assert!(content("etc/passwd").contains("nonroot:x:65532:65532:"));
        assert!(content("etc/group").contains("nonroot:x:65532:"));
        assert!(content("etc/nsswitch.conf").contains("hosts: files dns"));
        assert_eq!(content("phasepod"), "\x7fELF binary");
    }

    #[test]
    fn the_layer_is_the_same_for_the_same_binary() {
        assert_eq!(
            rootfs_tar(BINARY_PATH, b"x", None),
            rootfs_tar(BINARY_PATH, b"x", None)
        );
    }

    #[test]
    fn a_binary_with_an_interpreter_is_dynamic_and_one_without_is_static() {
        let elf = |p_type: u32| {
            let mut elf = vec![0u8; 0x40 + 2 * 0x38];
            elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
            elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
            elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
            elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
            elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            elf[0x78..0x7c].copy_from_slice(&p_type.to_le_bytes());
            elf
        };
        assert!(has_elf_interpreter(&elf(3)));
        assert!(!has_elf_interpreter(&elf(1)));
        assert!(!has_elf_interpreter(b"#!/bin/sh\n"));
        let truncated = &elf(3)[..0x60];
        assert!(!has_elf_interpreter(truncated));
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        // NB: tests are built without crt-static, so they do have an interpreter.
        let exe = std::fs::read(std::env::current_exe().expect("current exe")).expect("readable");
        assert!(has_elf_interpreter(&exe));
    }

    #[test]
    fn the_phasepod_executable_is_found_in_cargo_messages() {
        let artifact = r#"{"reason":"compiler-artifact","target":{"name":"phasepod","kind":["bin"]},"executable":"/w/target/x86_64-unknown-linux-gnu/release/phasepod"}"#;
        let library = r#"{"reason":"compiler-artifact","target":{"name":"phasepod","kind":["lib"]},"executable":null}"#;
        let other = r#"{"reason":"compiler-artifact","target":{"name":"tokio","kind":["lib"]},"executable":null}"#;
        assert_eq!(
            executable_in(artifact, "phasepod"),
            Some(PathBuf::from(
                "/w/target/x86_64-unknown-linux-gnu/release/phasepod"
            ))
        );
        assert_eq!(executable_in(library, "phasepod"), None);
        assert_eq!(executable_in(other, "phasepod"), None);
        assert_eq!(executable_in(artifact, "phasecheck-tools"), None);
        assert_eq!(executable_in("   Compiling tokio v1", "phasepod"), None);
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args = os_args(&[
            "import",
            "--change",
            r#"ENTRYPOINT ["/phasepod"]"#,
            "-",
            "a:b",
        ]);
        assert_eq!(
            command_line(OsStr::new("docker"), &args),
            r#"docker import --change 'ENTRYPOINT ["/phasepod"]' - a:b"#
        );
    }

    /// A builder whose "cargo" is `sh` running `script` (cargo's first argument, `build`, is the
    /// script's file name in the workspace root).
    // NB: `sh` reads the script, so no freshly written file is executed (no ETXTBSY races with
    // other tests spawning processes).
    fn fake_cargo(script: &str) -> (tempfile::TempDir, ImageBuilder) {
        let root = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(root.path().join("build"), script).expect("the script is written");
        let builder = ImageBuilder::new(root.path()).with_cargo("sh");
        (root, builder)
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn the_static_build_reports_the_executable_cargo_names() {
        let (_root, builder) = fake_cargo(
            r#"echo '   Compiling phasepod v0.1.0' >&2
echo '{"reason":"compiler-artifact","target":{"name":"phasepod","kind":["bin"]},"executable":"/t/'"$RUSTFLAGS"'"}'
echo '{"reason":"build-finished","success":true}'
"#,
        );
        let heard = std::sync::Mutex::new(Vec::new());
        let executable = block_on(builder.cargo_build(&|line: &str| {
            heard.lock().expect("not poisoned").push(line.to_owned());
        }))
        .expect("the build succeeds");
        assert_eq!(
            executable,
            PathBuf::from(format!("/t/{STATIC_RUSTFLAGS}")),
            "cargo ran with the static RUSTFLAGS"
        );
        assert_eq!(
            *heard.lock().expect("not poisoned"),
            ["   Compiling phasepod v0.1.0"]
        );
    }

    #[test]
    fn a_failed_static_build_quotes_the_end_of_cargos_output() {
        let (_root, builder) = fake_cargo(
            "i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo \"line $i\" >&2; done\n\
             echo 'error: could not compile `phasepod`' >&2\n\
             exit 101\n",
        );
        let error = block_on(builder.cargo_build(&|_: &str| {})).expect_err("the build fails");
        let Error::CargoFailed { tail, status, .. } = &error else {
            panic!("not a cargo failure: {error}");
        };
        assert_eq!(status.code(), Some(101));
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.starts_with("line 22\n"), "{tail}");
        assert!(
            tail.ends_with("error: could not compile `phasepod`"),
            "{tail}"
        );
        assert!(error.to_string().contains("RUSTFLAGS="), "{error}");
    }

    #[test]
    fn a_build_without_a_phasepod_executable_is_an_error() {
        let (_root, builder) = fake_cargo("echo '{\"reason\":\"build-finished\"}'\n");
        let error = block_on(builder.cargo_build(&|_: &str| {})).expect_err("no executable");
        assert!(matches!(error, Error::NoBinary { .. }), "{error}");
    }

    #[test]
    fn a_missing_docker_cli_is_reported_as_such() {
        let error = block_on(docker_server_version(
            OsStr::new("/nonexistent/docker"),
            Duration::from_secs(5),
        ))
        .expect_err("no such program");
        assert!(matches!(error, Error::DockerMissing { .. }), "{error}");
    }
}
