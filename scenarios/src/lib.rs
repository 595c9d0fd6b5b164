//! The phasecheck conformance catalog: the requirements, the scenarios that check them, and the
//! runner behind the `phasecheck` CLI and the cargo tests.

pub mod catalog;
pub mod checks;
pub mod clean;
pub mod cluster;
pub mod context;
pub mod continuous;
pub mod environment;
pub mod lifecycle;
pub mod outcome;
pub mod pacing;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod rules;
pub mod runner;
pub mod stop;
pub mod subject_check;
pub mod term;
pub mod workdir;
