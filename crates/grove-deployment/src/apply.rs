//! The executor: observes, plans the steps and applies them through a backend.

use std::future::Future;

use crate::plan::{AppPlan, DataSource, Deployment, ServicePlan};
use crate::steps::{Hook, Observed, Step, steps};

/// Where a deployment becomes processes, files and routes, for one environment and one
/// deploy. Every method is idempotent where a reconcile may repeat it (starting a
/// service that runs with the same signature, creating a volume that exists) and logs
/// what it does to the activity.
///
/// The local backend runs bubblewrap sandboxes on this host; a backend for several
/// hosts or Kubernetes implements the same methods (a build job, a StatefulSet per
/// service, a Deployment per app, an Ingress switch).
pub trait Backend: Send {
    /// What runs now.
    fn observe(&mut self) -> impl Future<Output = Result<Observed, String>> + Send;
    /// Refuses what cannot run here (runtimes, service types, data of another version),
    /// before anything changes.
    fn check(&mut self, desired: &Deployment) -> impl Future<Output = Result<(), String>> + Send;
    fn ensure_volume(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    fn stop_services(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    fn fill_volume(
        &mut self,
        source: &DataSource,
    ) -> impl Future<Output = Result<(), String>> + Send;
    fn build(&mut self, app: &AppPlan) -> impl Future<Output = Result<(), String>> + Send;
    fn start_service(
        &mut self,
        service: &ServicePlan,
        restart: bool,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Starts a new instance of every app and waits until each is ready.
    fn start_instances(
        &mut self,
        desired: &Deployment,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Runs a hook in every new instance. A failing hook is reported, not fatal (as on
    /// Platform.sh).
    fn run_hooks(&mut self, hook: Hook) -> impl Future<Output = Result<(), String>> + Send;
    /// The new instances serve from now on.
    fn switch(&mut self, desired: &Deployment) -> impl Future<Output = Result<(), String>> + Send;
    fn stop_previous(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    fn retire_service(&mut self, name: &str) -> impl Future<Output = Result<(), String>> + Send;
    fn schedule_crons(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Stops what this deploy started before it switched: the previous deployment
    /// keeps serving.
    fn abandon(&mut self) -> impl Future<Output = ()> + Send;
}

/// Brings the backend's environment to `desired`: observes what runs, plans the steps
/// and applies them in order. A failure before the switch abandons what this run
/// started and leaves the previous deployment serving; after the switch the new
/// deployment serves, and a failure is reported for the next reconcile to finish.
pub async fn apply<B: Backend>(
    backend: &mut B,
    desired: &Deployment,
    run_hooks: bool,
) -> Result<(), String> {
    let observed = backend.observe().await?;
    let mut switched = false;
    for step in steps(&observed, desired, run_hooks) {
        let done = match &step {
            Step::Check => backend.check(desired).await,
            Step::EnsureVolume => backend.ensure_volume().await,
            Step::StopServices => backend.stop_services().await,
            Step::FillVolume { source } => backend.fill_volume(source).await,
            Step::Build { app } => match desired.apps.iter().find(|a| a.name == *app) {
                Some(app) => backend.build(app).await,
                None => Err(format!("no app `{app}` in the deployment")),
            },
            Step::StartService { name, restart } => {
                match desired.services.iter().find(|s| s.name == *name) {
                    Some(service) => backend.start_service(service, *restart).await,
                    None => Err(format!("no service `{name}` in the deployment")),
                }
            }
            Step::StartInstances => backend.start_instances(desired).await,
            Step::RunHooks { hook } => backend.run_hooks(*hook).await,
            Step::Switch => backend.switch(desired).await,
            Step::StopPrevious => backend.stop_previous().await,
            Step::RetireService { name } => backend.retire_service(name).await,
            Step::ScheduleCrons => backend.schedule_crons().await,
        };
        if let Err(error) = done {
            if !switched {
                backend.abandon().await;
            }
            return Err(error);
        }
        switched |= step.switches();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::plan::{AppPlan, ServicePlan};

    /// A backend in memory. Builds and the volume outlive a crash (they are files);
    /// services, instances and routes do not (they are processes).
    #[derive(Default)]
    struct Fake {
        builds: BTreeSet<String>,
        /// What the volume holds: "own", or a copy of another environment's.
        volume: Option<String>,
        services: BTreeMap<String, String>,
        /// Serving instances: (commit, build key) per app.
        serving: BTreeMap<String, (String, String)>,
        /// Instances started by this deploy, not serving yet.
        new: BTreeMap<String, (String, String)>,
        /// The commit the routes lead to.
        routes: Option<String>,
        crons: Option<String>,
        calls: usize,
        /// The call at which the server dies.
        crash_at: Option<usize>,
        /// The call that fails (the server lives on).
        fail_at: Option<usize>,
        dead: bool,
    }

    impl Fake {
        /// Counts a call; at the crash point the process "dies" and nothing more
        /// happens until `restart`.
        fn call(&mut self) -> Result<(), String> {
            if self.dead {
                return Err("dead".into());
            }
            self.calls += 1;
            if Some(self.calls) == self.crash_at {
                self.dead = true;
                return Err("crashed".into());
            }
            if Some(self.calls) == self.fail_at {
                return Err("failed".into());
            }
            Ok(())
        }

        /// The server starts again: its processes are gone, its files stay.
        fn restart(&mut self) {
            self.services.clear();
            self.serving.clear();
            self.new.clear();
            self.routes = None;
            self.crons = None;
            self.crash_at = None;
            self.dead = false;
        }

        fn assert_complete(&self, desired: &Deployment, context: &str) {
            assert_eq!(
                self.routes.as_deref(),
                Some(desired.commit.as_str()),
                "{context}"
            );
            assert_eq!(
                self.crons.as_deref(),
                Some(desired.commit.as_str()),
                "{context}"
            );
            let expected: BTreeMap<String, (String, String)> = desired
                .apps
                .iter()
                .map(|a| {
                    (
                        a.name.clone(),
                        (desired.commit.clone(), a.build_key.clone()),
                    )
                })
                .collect();
            assert_eq!(
                self.serving, expected,
                "{context}: every app, of this deployment"
            );
            assert!(self.new.is_empty(), "{context}: nothing left half-started");
            let services: BTreeMap<String, String> = desired
                .services
                .iter()
                .map(|s| (s.name.clone(), s.signature.clone()))
                .collect();
            assert_eq!(self.services, services, "{context}: exactly its services");
            for app in &desired.apps {
                assert!(self.builds.contains(&app.build_key), "{context}");
            }
        }
    }

    impl Backend for Fake {
        async fn observe(&mut self) -> Result<Observed, String> {
            self.call()?;
            Ok(Observed {
                builds: self.builds.clone(),
                services: self.services.clone(),
                instances: !self.serving.is_empty(),
            })
        }
        async fn check(&mut self, _: &Deployment) -> Result<(), String> {
            self.call()
        }
        async fn ensure_volume(&mut self) -> Result<(), String> {
            self.call()?;
            self.volume.get_or_insert_with(|| "own".into());
            Ok(())
        }
        async fn stop_services(&mut self) -> Result<(), String> {
            self.call()?;
            self.services.clear();
            Ok(())
        }
        async fn fill_volume(&mut self, source: &DataSource) -> Result<(), String> {
            self.call()?;
            self.volume = Some(format!("{source:?}"));
            Ok(())
        }
        async fn build(&mut self, app: &AppPlan) -> Result<(), String> {
            self.call()?;
            self.builds.insert(app.build_key.clone());
            Ok(())
        }
        async fn start_service(&mut self, service: &ServicePlan, _: bool) -> Result<(), String> {
            self.call()?;
            self.services
                .insert(service.name.clone(), service.signature.clone());
            Ok(())
        }
        async fn start_instances(&mut self, desired: &Deployment) -> Result<(), String> {
            for app in &desired.apps {
                self.call()?;
                self.new.insert(
                    app.name.clone(),
                    (desired.commit.clone(), app.build_key.clone()),
                );
            }
            Ok(())
        }
        async fn run_hooks(&mut self, _: Hook) -> Result<(), String> {
            self.call()
        }
        async fn switch(&mut self, desired: &Deployment) -> Result<(), String> {
            self.call()?;
            self.crons = None;
            self.routes = Some(desired.commit.clone());
            // The previous instances keep running until `stop_previous`; the new
            // ones serve.
            let new = std::mem::take(&mut self.new);
            for (app, instance) in new {
                self.serving.insert(app, instance);
            }
            Ok(())
        }
        async fn stop_previous(&mut self) -> Result<(), String> {
            self.call()
        }
        async fn retire_service(&mut self, name: &str) -> Result<(), String> {
            self.call()?;
            self.services.remove(name);
            Ok(())
        }
        async fn schedule_crons(&mut self) -> Result<(), String> {
            self.call()?;
            self.crons = self.routes.clone();
            Ok(())
        }
        async fn abandon(&mut self) {
            if !self.dead {
                self.new.clear();
            }
        }
    }

    fn deployment(commit: &str, build_key: &str, services: &[(&str, &str)]) -> Deployment {
        Deployment {
            commit: commit.into(),
            tree_id: format!("tree-{commit}"),
            data: DataSource::Keep,
            apps: ["api", "web"]
                .iter()
                .map(|name| AppPlan {
                    name: name.to_string(),
                    runtime: "python:3.11".into(),
                    build_key: format!("{build_key}-{name}"),
                    start: Some("serve".into()),
                    mounts: vec![],
                    crons: vec![],
                })
                .collect(),
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

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(future))
            .unwrap_or_else(|e| panic!("a runtime: {e}"))
    }

    #[test]
    fn a_deploy_reaches_its_deployment_and_a_second_apply_changes_nothing() {
        let old = deployment("c1", "k1", &[("cache", "s1"), ("queue", "q1")]);
        let new = deployment("c2", "k2", &[("cache", "s2"), ("db", "d1")]);
        let mut fake = Fake::default();
        block_on(apply(&mut fake, &old, true)).unwrap_or_else(|e| panic!("{e}"));
        fake.assert_complete(&old, "first deploy");
        block_on(apply(&mut fake, &new, true)).unwrap_or_else(|e| panic!("{e}"));
        fake.assert_complete(&new, "second deploy");
        let builds = fake.builds.len();
        block_on(apply(&mut fake, &new, false)).unwrap_or_else(|e| panic!("{e}"));
        fake.assert_complete(&new, "again");
        assert_eq!(fake.builds.len(), builds, "nothing is built twice");
    }

    #[test]
    fn a_crash_at_any_step_then_a_reconcile_converges() {
        let old = deployment("c1", "k1", &[("cache", "s1"), ("queue", "q1")]);
        let new = deployment("c2", "k2", &[("cache", "s2"), ("db", "d1")]);
        let mut crashes = 0;
        for crash_at in 1.. {
            let mut fake = Fake::default();
            block_on(apply(&mut fake, &old, true)).unwrap_or_else(|e| panic!("{e}"));
            fake.calls = 0;
            fake.crash_at = Some(crash_at);
            let outcome = block_on(apply(&mut fake, &new, true));
            if outcome.is_ok() {
                // Past the last step: every step has been crashed at.
                break;
            }
            crashes += 1;
            // The server records a deployment only once it applied completely, so after
            // a crash it brings back the previous one, without its hooks.
            fake.restart();
            block_on(apply(&mut fake, &old, false)).unwrap_or_else(|e| panic!("{e}"));
            fake.assert_complete(&old, &format!("crash at call {crash_at}, reconciled"));
            // And the next deploy goes through.
            block_on(apply(&mut fake, &new, true)).unwrap_or_else(|e| panic!("{e}"));
            fake.assert_complete(&new, &format!("crash at call {crash_at}, deployed again"));
        }
        assert!(crashes >= 10, "every step was crashed at ({crashes})");
    }

    #[test]
    fn a_failure_before_the_switch_leaves_the_previous_deployment_serving() {
        let old = deployment("c1", "k1", &[("cache", "s1")]);
        let new = deployment("c2", "k2", &[("cache", "s1")]);
        let mut fake = Fake::default();
        block_on(apply(&mut fake, &old, true)).unwrap_or_else(|e| panic!("{e}"));
        // Observe, check, volume, two builds, the first instance; the second fails.
        fake.calls = 0;
        fake.fail_at = Some(7);
        assert!(block_on(apply(&mut fake, &new, true)).is_err());
        fake.fail_at = None;
        fake.assert_complete(&old, "the failed deploy changed nothing that serves");
    }
}
