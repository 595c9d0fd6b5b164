//! The sandbox launcher: a program of two stages the runtime starts for every container
//! process (see the [module docs](super) for why a separate program).
//!
//! **Stage 1** is what the runtime spawns, as the leader of a new process group with the
//! container's stdout and stderr pipes and a Unix socket as stdin (the *control socket*). It
//! reads the [`Spec`], enters or creates the user and PID namespaces, starts stage 2 (its only
//! child, PID 1 of a new PID namespace), relays stage 2's report, then waits for it and exits
//! the way it did (same code, or same signal). It ignores SIGTERM and friends (the runtime
//! signals the whole group, so the container gets them itself) and kills stage 2 when the
//! control socket closes: the runtime is gone, so is the container.
//!
//! **Stage 2** arms `PR_SET_PDEATHSIG` (it dies with stage 1), enters or creates the mount and
//! UTS namespaces, builds the root, and `exec`s the container's program with exactly the
//! spec's environment, as the spec's user. Its control socket closes at that `exec`, which is
//! how stage 1 knows the container runs; a failure before it is reported over the socket.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitCode, ExitStatus, Stdio};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigSet, Signal, kill, raise};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{
    Gid, Pid, Uid, chdir, getgid, getuid, setgroups, sethostname, setresgid, setresuid,
};

use super::root;
use super::spec::{Ns, Process, Report, Spec, Then};

/// Exit code of a launcher that could not do its job (as `docker run` uses 125).
const LAUNCHER_FAILED: u8 = 125;

/// Runs the launcher. `prefix` is the arguments that select it in this program (`["sandbox"]`
/// for `phasecheck sandbox …`, none for `phasecheck-sandbox`); the next argument is the stage,
/// the one after a label for `ps` (the container's host directory and name).
pub fn main(prefix: &[&str]) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let rest = args.get(1 + prefix.len()..).unwrap_or_default();
    let label = rest.get(1).cloned().unwrap_or_default();
    let argv0 = args.first().cloned().unwrap_or_default();
    match rest.first().and_then(|s| s.to_str()) {
        Some("stage1") => stage1(&argv0, prefix, &label),
        Some("stage2") => stage2(),
        _ => {
            eprintln!(
                "this is phasecheck's sandbox launcher, which the local runtime starts itself; it takes `stage1 LABEL` with a spec on a socket as stdin"
            );
            ExitCode::from(2)
        }
    }
}

/// The control socket: a copy of stdin.
fn control_socket() -> Result<UnixStream, String> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("stdin: {e}"))?;
    Ok(UnixStream::from(fd))
}

/// Reads one JSON line.
fn read_json<T: serde::de::DeserializeOwned>(stream: &UnixStream) -> Result<T, String> {
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| format!("reading the spec: {e}"))?;
    if line.is_empty() {
        return Err("no spec: the control socket closed".into());
    }
    serde_json::from_str(&line).map_err(|e| format!("a malformed spec: {e}"))
}

/// Writes one JSON line (best effort: the reader may be gone).
fn send<T: serde::Serialize>(mut stream: &UnixStream, message: &T) {
    if let Ok(mut line) = serde_json::to_string(message) {
        line.push('\n');
        let _ = stream.write_all(line.as_bytes());
    }
}

fn open_ns(pid: i32, kind: &str) -> Result<File, String> {
    let path = format!("/proc/{pid}/ns/{kind}");
    File::open(&path).map_err(|e| format!("opening {path}: {e}"))
}

fn join_ns(pid: i32, kind: &str, flag: CloneFlags) -> Result<(), String> {
    let file = open_ns(pid, kind)?;
    setns(file.as_fd(), flag).map_err(|e| format!("joining the {kind} namespace of {pid}: {e}"))
}

fn new_ns(flag: CloneFlags, kind: &str) -> Result<(), String> {
    unshare(flag).map_err(|e| format!("creating a {kind} namespace: {e}"))
}

// ----- stage 1 -----------------------------------------------------------------------------

fn stage1(argv0: &OsStr, prefix: &[&str], label: &OsStr) -> ExitCode {
    let harness = match control_socket() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox launcher: {e}");
            return ExitCode::from(LAUNCHER_FAILED);
        }
    };
    match run_stage1(argv0, prefix, label, &harness) {
        Ok(status) => exit_like(status),
        Err(message) => {
            send(&harness, &Report::Failed(message));
            ExitCode::from(LAUNCHER_FAILED)
        }
    }
}

fn run_stage1(
    argv0: &OsStr,
    prefix: &[&str],
    label: &OsStr,
    harness: &UnixStream,
) -> Result<ExitStatus, String> {
    let spec: Spec = read_json(harness)?;
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        mask.add(signal);
    }
    // NB: stage 2 inherits this mask; it clears it before it starts the container's program.
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    match spec.user {
        Ns::Host => {}
        Ns::New(()) => {
            let (uid, gid) = (getuid(), getgid());
            new_ns(CloneFlags::CLONE_NEWUSER, "user")?;
            let write = |file: &str, text: String| {
                std::fs::write(format!("/proc/self/{file}"), text)
                    .map_err(|e| format!("writing /proc/self/{file}: {e}"))
            };
            write("setgroups", "deny".into())?;
            write("uid_map", format!("0 {uid} 1"))?;
            write("gid_map", format!("0 {gid} 1"))?;
        }
        Ns::Join(pid) => join_ns(pid, "user", CloneFlags::CLONE_NEWUSER)?,
    }
    match spec.pid {
        Ns::Host => {}
        Ns::New(()) => new_ns(CloneFlags::CLONE_NEWPID, "PID")?,
        Ns::Join(pid) => join_ns(pid, "pid", CloneFlags::CLONE_NEWPID)?,
    }
    let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0(argv0)
        .args(prefix)
        .arg("stage2")
        .arg(label)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .env_clear();
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting the sandbox's second stage: {e}"))?;
    // NB: the command holds the child's end of the socket; it must close for EOF to mean exec.
    drop(command);
    let pid = i32::try_from(child.id()).map_err(|_| "a pid out of range".to_owned())?;
    send(&ours, &spec);
    let mut from_child = Vec::new();
    let mut child_open = true;
    let mut harness_open = true;
    let mut reported = false;
    let mut buf = [0u8; 4096];
    loop {
        let (sig_ready, harness_ready, child_ready) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            if harness_open {
                fds.push(PollFd::new(harness.as_fd(), PollFlags::POLLIN));
            }
            if child_open {
                fds.push(PollFd::new(ours.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            let ready =
                |fd: Option<&PollFd>| fd.and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            let mut it = fds.iter();
            let sig = ready(it.next());
            let h = if harness_open {
                ready(it.next())
            } else {
                false
            };
            let c = if child_open { ready(it.next()) } else { false };
            (sig, h, c)
        };
        if child_ready {
            match (&ours).read(&mut buf) {
                Ok(0) | Err(_) => {
                    child_open = false;
                    if !reported {
                        reported = true;
                        send(harness, &report_from(&from_child, pid));
                    }
                }
                Ok(n) => from_child.extend_from_slice(&buf[..n]),
            }
        }
        if harness_ready {
            match (&*harness).read(&mut buf) {
                Ok(0) | Err(_) => {
                    // NB: the runtime is gone (or dropped the container): so is the container.
                    harness_open = false;
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                Ok(_) => {}
            }
        }
        if sig_ready {
            while let Ok(Some(_)) = signals.read_signal() {}
            if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
                if child_open {
                    let _ = (&ours).read_to_end(&mut from_child);
                }
                if !reported {
                    let report = match report_from(&from_child, pid) {
                        Report::Started(_) if !status.success() => Report::Failed(format!(
                            "the sandbox's second stage ended ({status}) before starting the container"
                        )),
                        report => report,
                    };
                    send(harness, &report);
                }
                return Ok(status);
            }
        }
    }
}

/// Stage 2's report: the failure it wrote, or `Started` when it wrote none.
fn report_from(from_child: &[u8], pid: i32) -> Report {
    String::from_utf8_lossy(from_child)
        .lines()
        .filter_map(|line| serde_json::from_str::<Report>(line).ok())
        .find(|r| matches!(r, Report::Failed(_)))
        .unwrap_or(Report::Started(pid))
}

/// Ends this process the way `status` ended: its exit code, or its signal.
fn exit_like(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let number = status.signal().unwrap_or(Signal::SIGKILL as i32);
    if let Ok(signal) = Signal::try_from(number) {
        // NB: no core file from the launcher for the container's crash.
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
        let mut only = SigSet::empty();
        only.add(signal);
        let _ = only.thread_unblock();
        let _ = raise(signal);
    }
    ExitCode::from((128 + number).clamp(0, 255) as u8)
}

// ----- stage 2 -----------------------------------------------------------------------------

fn stage2() -> ExitCode {
    // NB: first, so that stage 1 dying from here on takes this process with it.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    let control = match control_socket() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox launcher: {e}");
            return ExitCode::from(LAUNCHER_FAILED);
        }
    };
    let then = match run_stage2(&control) {
        Ok(then) => then,
        Err(message) => {
            send(&control, &Report::Failed(message));
            return ExitCode::from(LAUNCHER_FAILED);
        }
    };
    match then {
        Then::Exit => ExitCode::SUCCESS,
        Then::Pause => {
            drop(control);
            match pause() {
                Ok(never) => match never {},
                Err(message) => {
                    eprintln!("sandbox launcher: {message}");
                    ExitCode::from(LAUNCHER_FAILED)
                }
            }
        }
        Then::Exec(process) => {
            let message = exec(&process, &control);
            send(&control, &Report::Failed(message));
            ExitCode::from(LAUNCHER_FAILED)
        }
    }
}

/// Enters or creates the namespaces and builds the root; returns what to run.
fn run_stage2(control: &UnixStream) -> Result<Then, String> {
    let spec: Spec = read_json(control)?;
    if peer_gone(control) {
        return Err("the sandbox's first stage is gone".into());
    }
    let mut quiet = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        quiet.add(signal);
    }
    // NB: a stop requested while the sandbox is built takes effect once the program runs
    // (`exec` below clears the mask).
    quiet
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    // NB: open the namespaces to join before entering any: the mount namespace changes /proc.
    let uts = match &spec.uts {
        Ns::Join(pid) => Some(open_ns(*pid, "uts")?),
        _ => None,
    };
    let mnt = match &spec.mount {
        Ns::Join(pid) => Some(open_ns(*pid, "mnt")?),
        _ => None,
    };
    match &spec.uts {
        Ns::Host => {}
        Ns::New(hostname) => {
            new_ns(CloneFlags::CLONE_NEWUTS, "UTS")?;
            sethostname(hostname).map_err(|e| format!("setting the hostname: {e}"))?;
        }
        Ns::Join(_) => setns(uts.expect("opened").as_fd(), CloneFlags::CLONE_NEWUTS)
            .map_err(|e| format!("joining the UTS namespace: {e}"))?,
    }
    match &spec.mount {
        Ns::Host => {}
        Ns::New(root) => {
            new_ns(CloneFlags::CLONE_NEWNS, "mount")?;
            root::build(root)?;
        }
        Ns::Join(_) => setns(mnt.expect("opened").as_fd(), CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("joining the mount namespace: {e}"))?,
    }
    Ok(spec.then)
}

/// Whether the other end of `stream` has closed.
fn peer_gone(stream: &UnixStream) -> bool {
    // NB: a Unix stream socket whose peer closed polls POLLHUP, requested or not.
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        Err(_) => true,
    }
}

/// Starts the container's program in place of this process; returns only on failure.
fn exec(process: &Process, control: &UnixStream) -> String {
    let Some((program, args)) = process.argv.split_first() else {
        return "no command: the image gives no entrypoint and the spec no command".into();
    };
    if !process.cwd.is_empty() {
        // NB: as a container runtime does, the working directory is created if missing.
        let _ = std::fs::create_dir_all(&process.cwd);
    }
    if let Some(ids) = &process.user {
        let groups: Vec<Gid> = ids.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        let (uid, gid) = (Uid::from_raw(ids.uid), Gid::from_raw(ids.gid));
        if let Err(e) = setgroups(&groups)
            .and_then(|()| setresgid(gid, gid, gid))
            .and_then(|()| setresuid(uid, uid, uid))
        {
            return format!("switching to uid {} gid {}: {e}", ids.uid, ids.gid);
        }
        // NB: changing the user clears the parent-death signal: arm it again, and look again
        // whether stage 1 died in between.
        if let Err(e) = prctl::set_pdeathsig(Signal::SIGKILL) {
            return format!("setting the parent-death signal: {e}");
        }
        if peer_gone(control) {
            return "the sandbox's first stage is gone".into();
        }
    }
    if !process.cwd.is_empty()
        && let Err(e) = chdir(process.cwd.as_str())
    {
        return format!("chdir to the working directory {}: {e}", process.cwd);
    }
    if process.no_new_privs
        && let Err(e) = prctl::set_no_new_privs()
    {
        return format!("setting no_new_privs: {e}");
    }
    // NB: the program starts with no signal blocked: the mask survives `exec`, and std does
    // not clear it there.
    if let Err(e) = SigSet::empty().thread_set_mask() {
        return format!("clearing the signal mask: {e}");
    }
    let error = Command::new(program)
        .args(args)
        .env_clear()
        .envs(&process.env)
        .stdin(Stdio::null())
        .exec();
    format!("exec {program}: {error}")
}

/// PID 1 of a pod's shared PID namespace: reaps orphans until killed. The caller has closed
/// its copy of the control socket; this closes stdin, the other, which tells stage 1 it runs.
fn pause() -> Result<std::convert::Infallible, String> {
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        mask.add(signal);
    }
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("dup2: {e}"))?;
    loop {
        if let Ok(Signal::SIGCHLD) = mask.wait() {
            while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                if status == WaitStatus::StillAlive {
                    break;
                }
            }
        }
    }
}
