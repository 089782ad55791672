//! What an environment should run, as data, and how it gets there.
//!
//! - [`plan`] computes an environment's [`Deployment`] from its inputs (the pushed
//!   configuration, the environment, its build keys, where its data comes from).
//! - [`steps`] compares a deployment with what runs ([`Observed`]) and lists the
//!   idempotent [`Step`]s that take one to the other.
//! - [`apply`] runs those steps through a [`Backend`], which is where processes, files
//!   and the network are; on a failure before the switch it abandons what it started,
//!   so the previous deployment keeps serving.
//!
//! - [`resources`] says what an environment may use (cgroup limits, its volume's
//!   disk cap) from the configuration's `size` and `disk` and its type.
//!
//! This crate never touches the filesystem, the network or processes: the server
//! persists a deployment before acting and implements the backend (the local one runs
//! bubblewrap sandboxes; a Kubernetes one would create pods), tests use a fake.

mod apply;
mod build;
mod plan;
pub mod resources;
mod steps;
mod variables;

pub use apply::{Backend, apply};
pub use build::{BuildCommand, build_commands};
pub use plan::{
    APP_DIR, AppPlan, CACHE_DIR, CronPlan, DataSource, Deployment, Inputs, MountPlan, RoutePlan,
    RouteTarget, ServicePlan, build_key, build_variables, plan,
};
pub use steps::{Hook, Observed, Step, steps};
pub use variables::{Definition, Resolved, resolve};
