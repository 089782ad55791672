//! From what runs to a deployment: the steps, in order.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::plan::{DataSource, Deployment};

/// What an environment runs now, as far as a deploy cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Build keys whose builds are stored.
    pub builds: BTreeSet<String>,
    /// Running services, by name, with the signature they were started with.
    pub services: BTreeMap<String, String>,
    /// Whether app instances of an earlier deployment run.
    pub instances: bool,
}

/// The deploy-time hooks that run with traffic held (`deploy`) or flowing
/// (`post_deploy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    Deploy,
    PostDeploy,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Deploy => "deploy",
            Hook::PostDeploy => "post_deploy",
        }
    }
}

/// One idempotent step of a deploy. Steps up to and including `StartInstances` change
/// nothing the previous deployment serves from (except a service whose configuration
/// changed); `Switch` makes the new deployment the one that serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Refuse what this host cannot run (runtimes, service types, version changes)
    /// before anything changes.
    Check,
    /// The environment's volume exists.
    EnsureVolume,
    /// Its services stop: their data is about to be replaced.
    StopServices,
    /// Its volume becomes a copy of another environment's.
    FillVolume {
        source: DataSource,
    },
    Build {
        app: String,
    },
    /// A service starts, healthy (`restart`: a running one with another signature
    /// stops first; its data stays).
    StartService {
        name: String,
        restart: bool,
    },
    /// Every app's new instance starts and is ready (accepts connections, `post_start`
    /// passed).
    StartInstances,
    RunHooks {
        hook: Hook,
    },
    /// The new instances serve: the previous crons stop, the routes switch, requests
    /// held during the deploy hook are released.
    Switch,
    /// The previous instances drain and stop.
    StopPrevious,
    /// A service no longer asked for stops (its data stays).
    RetireService {
        name: String,
    },
    ScheduleCrons,
}

impl Step {
    /// Whether the new deployment serves once this step is done.
    pub fn switches(&self) -> bool {
        matches!(self, Step::Switch)
    }
}

/// The steps from `observed` to `desired`. Hooks run only when `run_hooks` (a deploy;
/// not bringing back a deployment after a restart, whose hooks already ran).
pub fn steps(observed: &Observed, desired: &Deployment, run_hooks: bool) -> Vec<Step> {
    let mut steps = vec![Step::Check];
    let replacing_data = desired.data != DataSource::Keep;
    if replacing_data {
        if !observed.services.is_empty() {
            steps.push(Step::StopServices);
        }
        steps.push(Step::FillVolume {
            source: desired.data.clone(),
        });
    } else {
        steps.push(Step::EnsureVolume);
    }
    for app in &desired.apps {
        if !observed.builds.contains(&app.build_key) {
            steps.push(Step::Build {
                app: app.name.clone(),
            });
        }
    }
    for service in &desired.services {
        // After a copy every service starts afresh on the copied data.
        match observed.services.get(&service.name) {
            Some(signature) if !replacing_data && *signature == service.signature => {}
            Some(_) if !replacing_data => steps.push(Step::StartService {
                name: service.name.clone(),
                restart: true,
            }),
            _ => steps.push(Step::StartService {
                name: service.name.clone(),
                restart: false,
            }),
        }
    }
    steps.push(Step::StartInstances);
    if run_hooks {
        steps.push(Step::RunHooks { hook: Hook::Deploy });
    }
    steps.push(Step::Switch);
    if observed.instances {
        steps.push(Step::StopPrevious);
    }
    if !replacing_data {
        let wanted: BTreeSet<&str> = desired.services.iter().map(|s| s.name.as_str()).collect();
        for name in observed.services.keys() {
            if !wanted.contains(name.as_str()) {
                steps.push(Step::RetireService { name: name.clone() });
            }
        }
    }
    if run_hooks {
        steps.push(Step::RunHooks {
            hook: Hook::PostDeploy,
        });
    }
    steps.push(Step::ScheduleCrons);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{AppPlan, ServicePlan};

    fn desired(data: DataSource, services: &[(&str, &str)]) -> Deployment {
        Deployment {
            commit: "c".into(),
            tree_id: "t".into(),
            data,
            apps: vec![AppPlan {
                name: "app".into(),
                runtime: "python:3.11".into(),
                build_key: "k2".into(),
                start: Some("serve".into()),
                mounts: vec![],
                crons: vec![],
            }],
            services: services
                .iter()
                .map(|(name, signature)| ServicePlan {
                    name: name.to_string(),
                    kind: "redis:7.0".into(),
                    signature: signature.to_string(),
                })
                .collect(),
            routes: vec![],
        }
    }

    fn observed(builds: &[&str], services: &[(&str, &str)], instances: bool) -> Observed {
        Observed {
            builds: builds.iter().map(|b| b.to_string()).collect(),
            services: services
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
            instances,
        }
    }

    /// The steps as short names, for tables.
    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|step| match step {
                Step::Check => "check".to_string(),
                Step::EnsureVolume => "volume".to_string(),
                Step::StopServices => "stop-services".to_string(),
                Step::FillVolume { source } => format!("fill:{source:?}"),
                Step::Build { app } => format!("build:{app}"),
                Step::StartService { name, restart } => {
                    format!("{}:{name}", if *restart { "restart" } else { "start" })
                }
                Step::StartInstances => "instances".to_string(),
                Step::RunHooks { hook } => format!("hook:{}", hook.name()),
                Step::Switch => "switch".to_string(),
                Step::StopPrevious => "stop-previous".to_string(),
                Step::RetireService { name } => format!("retire:{name}"),
                Step::ScheduleCrons => "crons".to_string(),
            })
            .collect()
    }

    fn check(observed: Observed, desired: Deployment, run_hooks: bool, expected: &[&str]) {
        assert_eq!(names(&steps(&observed, &desired, run_hooks)), expected);
    }

    #[test]
    fn observed_and_desired_give_these_steps() {
        let keep = DataSource::Keep;
        let copy = DataSource::CopyOf {
            environment: "main".into(),
        };
        // A first deploy: nothing runs, nothing is built.
        check(
            observed(&[], &[], false),
            desired(keep.clone(), &[("cache", "s1")]),
            true,
            &[
                "check",
                "volume",
                "build:app",
                "start:cache",
                "instances",
                "hook:deploy",
                "switch",
                "hook:post_deploy",
                "crons",
            ],
        );
        // A redeploy of the same build with the same services: new instances only.
        check(
            observed(&["k2"], &[("cache", "s1")], true),
            desired(keep.clone(), &[("cache", "s1")]),
            true,
            &[
                "check",
                "volume",
                "instances",
                "hook:deploy",
                "switch",
                "stop-previous",
                "hook:post_deploy",
                "crons",
            ],
        );
        // A new build, a changed service, a removed one.
        check(
            observed(&["k1"], &[("cache", "s1"), ("old", "s0")], true),
            desired(keep.clone(), &[("cache", "s2")]),
            true,
            &[
                "check",
                "volume",
                "build:app",
                "restart:cache",
                "instances",
                "hook:deploy",
                "switch",
                "stop-previous",
                "retire:old",
                "hook:post_deploy",
                "crons",
            ],
        );
        // Bringing a deployment back after a restart: nothing runs, no hooks.
        check(
            observed(&["k2"], &[], false),
            desired(keep, &[("cache", "s1")]),
            false,
            &[
                "check",
                "volume",
                "start:cache",
                "instances",
                "switch",
                "crons",
            ],
        );
        // A copy of the parent's data: the services stop, the data is replaced, every
        // service starts afresh on the copy.
        check(
            observed(&["k2"], &[("cache", "s1")], true),
            desired(copy.clone(), &[("cache", "s1")]),
            true,
            &[
                "check",
                "stop-services",
                "fill:CopyOf { environment: \"main\" }",
                "start:cache",
                "instances",
                "hook:deploy",
                "switch",
                "stop-previous",
                "hook:post_deploy",
                "crons",
            ],
        );
        // A new environment with a copy of its parent's data.
        check(
            observed(&["k2"], &[], false),
            desired(copy, &[]),
            true,
            &[
                "check",
                "fill:CopyOf { environment: \"main\" }",
                "instances",
                "hook:deploy",
                "switch",
                "hook:post_deploy",
                "crons",
            ],
        );
    }
}
