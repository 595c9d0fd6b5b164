//! phasecheck's sandbox launcher as a program of its own, for users of the library whose
//! program cannot run it (the `phasecheck` binary runs it as `phasecheck sandbox`). The local
//! runtime looks for it next to the running program; see
//! `harness::runtime::local::sandbox`.

fn main() -> std::process::ExitCode {
    harness::runtime::local::sandbox_launcher(&[])
}
