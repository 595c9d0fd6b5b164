//! phasecheck's library: runtimes that run phased pods, embedded backup services, subject
//! profiles, faults, observations and reports.
//!
//! The conformance catalog itself lives in the `scenarios` crate; this crate gives it the means.

pub mod app;
pub use archive;
pub mod backups;
pub mod cluster;
pub mod dataset;
pub mod faults;
pub mod formats;
pub mod image;
pub mod kind_config;
pub mod remote;
pub mod report;
pub mod runtime;
pub mod services;
pub mod subject;
