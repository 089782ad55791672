//! Which user variables an environment's apps see: Platform.sh's precedence over the
//! project's variables and those of the environment and its ancestors.

use std::collections::BTreeMap;

use grove_config::UserVariable;
use serde_json::Value;

/// A variable as defined at one level (project or one environment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    /// `env:NAME` or any other name (an entry of `PLATFORM_VARIABLES`).
    pub name: String,
    pub value: Value,
    pub visible_build: bool,
    pub visible_runtime: bool,
    /// Environment level: whether child environments inherit it.
    pub inheritable: bool,
    pub enabled: bool,
}

/// The variables an environment's builds and its running apps see, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub build: Vec<UserVariable>,
    pub runtime: Vec<UserVariable>,
}

/// Resolves the variables of an environment from the project's and from `environments`:
/// the environment's own first, then its ancestors, nearest first. For each name the
/// nearest definition wins: the environment's own, then an ancestor's inheritable one,
/// then the project's (the app config's come below all of these). The winner decides
/// visibility; a disabled winner hides the variable (so a child can switch off an
/// inherited one).
pub fn resolve(project: &[Definition], environments: &[&[Definition]]) -> Resolved {
    let mut winners: BTreeMap<&str, &Definition> = BTreeMap::new();
    for definition in project {
        winners.insert(&definition.name, definition);
    }
    for (depth, level) in environments.iter().enumerate().rev() {
        for definition in level.iter() {
            if depth == 0 || definition.inheritable {
                winners.insert(&definition.name, definition);
            }
        }
    }
    let mut resolved = Resolved::default();
    for definition in winners.into_values().filter(|d| d.enabled) {
        let variable = UserVariable {
            name: definition.name.clone(),
            value: definition.value.clone(),
        };
        if definition.visible_build {
            resolved.build.push(variable.clone());
        }
        if definition.visible_runtime {
            resolved.runtime.push(variable);
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, value: &str, inheritable: bool) -> Definition {
        Definition {
            name: name.into(),
            value: Value::String(value.into()),
            visible_build: true,
            visible_runtime: true,
            inheritable,
            enabled: true,
        }
    }

    fn check(project: &[Definition], environments: &[&[Definition]], expected: &[(&str, &str)]) {
        let resolved = resolve(project, environments);
        let got: Vec<(String, String)> = resolved
            .runtime
            .iter()
            .map(|v| (v.name.clone(), v.value.as_str().unwrap_or_default().into()))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn nearest_definition_wins() {
        let project = [def("env:A", "project", true), def("env:B", "project", true)];
        let main = [def("env:A", "main", true), def("env:C", "main", false)];
        let child = [def("env:B", "child", true)];
        check(&project, &[], &[("env:A", "project"), ("env:B", "project")]);
        check(
            &project,
            &[&main],
            &[("env:A", "main"), ("env:B", "project"), ("env:C", "main")],
        );
        // Not inheritable: `C` stays on main.
        check(
            &project,
            &[&child, &main],
            &[("env:A", "main"), ("env:B", "child")],
        );
        let mut off = def("env:A", "off", true);
        off.enabled = false;
        check(&project, &[&[off], &main], &[("env:B", "project")]);
    }

    #[test]
    fn visibility_follows_the_winner() {
        let mut runtime_only = def("env:A", "env", true);
        runtime_only.visible_build = false;
        let resolved = resolve(&[def("env:A", "project", true)], &[&[runtime_only]]);
        assert!(resolved.build.is_empty());
        assert_eq!(resolved.runtime.len(), 1);
    }
}
