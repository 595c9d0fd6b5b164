//! phasecheck's library: runtimes that run phased pods, embedded backup services, subject
//! profiles, faults, observations and reports.
//!
//! The conformance catalog itself lives in the `scenarios` crate; this crate gives it the means.
//!
//! # From a check down to a runtime
//!
//! ```text
//! scenarios::checks    mnt_1_on_schedule(s)            one short function per requirement
//!  └ Scenario          s.deploy, s.wait_backup_after    scenarios/src/context/: one module per concern,
//!    │                                                  paced by scenarios::pacing::Pacing
//!    ├ scenarios::rules restore_finished_before_run(&Timeline, &Roles), restarted(container):
//!    │                  pure functions and named conditions on a runtime::timeline::Timeline
//!    ├ backups          BackupStore: the embedded or external store, with formats::* reading it
//!    │                  in the format's own terms (never the subject's code)
//!    └ runtime          Namespaced (Runtime::namespace): pods, logs, containers, claims of one
//!                       namespace; Runtime = Namespaces + Pods + Logs + Containers + Claims
//!        ├ local        LocalRuntime: pods as sandboxed host processes (runtime/local/*_api.rs)
//!        └ kube         KubeRuntime: kube-rs against kind, minikube or any cluster
//! ```
//!
//! Both runtimes report the one [`runtime::Error`], so a caller matches a timeout or a missing
//! pod the same way on either.

pub mod app;
pub use archive;
pub mod backups;
pub mod cluster;
pub mod dataset;
pub mod duration;
pub mod faults;
pub mod formats;
pub mod image;
pub mod kind_config;
pub mod remote;
pub mod report;
pub mod runtime;
pub mod services;
pub mod subject;
