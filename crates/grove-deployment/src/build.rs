//! What a build runs before the app's build hook, as on Platform.sh: the global
//! `dependencies`, then the `build.flavor`.

use grove_config::App;

/// One step of a build before its hook: what it is (for the log) and the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildCommand {
    pub what: String,
    /// Run with `dash -c`, in the app's directory.
    pub script: String,
}

/// The steps before the build hook, in order: `dependencies` (installed globally, on
/// `PATH` at build and run time), then the flavor.
pub fn build_commands(app: &App) -> Vec<BuildCommand> {
    let mut commands = Vec::new();
    for (manager, packages) in &app.dependencies {
        if packages.is_empty() {
            continue;
        }
        let script = match manager.as_str() {
            "python" | "python3" | "python2" => format!(
                "set -e\npip install {}",
                words(packages.iter().map(|(name, c)| pip_requirement(name, c)))
            ),
            "nodejs" => format!(
                "set -e\nnpm install --global {}",
                words(packages.iter().map(|(name, c)| versioned(name, c, "@")))
            ),
            "php" => format!(
                "set -e\ncomposer global require --no-interaction {}",
                words(packages.iter().map(|(name, c)| versioned(name, c, ":")))
            ),
            "ruby" => packages
                .iter()
                .map(|(name, c)| match version(c) {
                    Some(v) => format!("gem install {} -v {}", quote(name), quote(v)),
                    None => format!("gem install {}", quote(name)),
                })
                .fold("set -e".to_string(), |script, line| script + "\n" + &line),
            other => format!(
                "echo 'dependencies: `{other}` is not a package manager Grove knows (python3, nodejs, php, ruby)' >&2\nexit 1"
            ),
        };
        commands.push(BuildCommand {
            what: format!("Installing the {manager} dependencies"),
            script,
        });
    }
    if let Some(script) = flavor(app) {
        commands.push(BuildCommand {
            what: format!(
                "Running the `{}` build flavor",
                app.build_flavor.as_deref().unwrap_or("default")
            ),
            script,
        });
    }
    commands
}

/// The flavor's script: `none` nothing; by default npm for Node.js and composer for
/// PHP (each only when the app has its manifest); nothing for other languages.
fn flavor(app: &App) -> Option<String> {
    let flavor = app.build_flavor.as_deref().unwrap_or("default");
    let npm = "if [ -f package.json ]; then\n  npm prune --userconfig .npmrc && npm install --userconfig .npmrc\nfi";
    let composer = "if [ -f composer.json ]; then\n  composer --no-ansi --no-interaction install --no-progress --prefer-dist --optimize-autoloader --no-dev\nfi";
    match (flavor, app.runtime.language.as_str()) {
        ("none", _) => None,
        ("composer", _) | ("default", "php") => Some(format!("set -e\n{composer}")),
        ("default", "nodejs") => Some(format!("set -e\n{npm}")),
        _ => None,
    }
}

/// `flask: "2.0.1"` → `flask==2.0.1`; `"*"` → `flask`; `">=2"` → `flask>=2`.
fn pip_requirement(name: &str, constraint: &str) -> String {
    let constraint = constraint.trim();
    match constraint {
        "" | "*" => name.to_string(),
        c if c.starts_with(|ch: char| ch.is_ascii_digit()) => format!("{name}=={c}"),
        c => format!("{name}{c}"),
    }
}

/// `yarn: "1.22"` → `yarn@1.22`; `"*"` → `yarn`.
fn versioned(name: &str, constraint: &str, separator: &str) -> String {
    match version(constraint) {
        Some(v) => format!("{name}{separator}{v}"),
        None => name.to_string(),
    }
}

fn version(constraint: &str) -> Option<&str> {
    let constraint = constraint.trim();
    (!constraint.is_empty() && constraint != "*").then_some(constraint)
}

fn words(items: impl Iterator<Item = String>) -> String {
    items.map(|w| quote(&w)).collect::<Vec<_>>().join(" ")
}

/// One single-quoted shell word: package names and constraints come from the
/// repository.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(yaml: &str) -> App {
        let tree = grove_config::MemoryTree::new([(".platform.app.yaml", yaml)]);
        match grove_config::load(&tree) {
            Ok(mut project) => project.apps.remove(0),
            Err(errors) => panic!("{errors}"),
        }
    }

    fn check(yaml: &str, expected: &[(&str, &str)]) {
        let commands = build_commands(&app(yaml));
        let got: Vec<(&str, &str)> = commands
            .iter()
            .map(|c| (c.what.as_str(), c.script.as_str()))
            .collect();
        assert_eq!(got, expected, "{yaml}");
    }

    const WEB: &str = "web:\n  commands:\n    start: run\n";

    #[test]
    fn dependencies_and_flavors_as_on_platform_sh() {
        check(&format!("name: app\ntype: python:3.11\n{WEB}"), &[]);
        check(
            &format!(
                "name: app\ntype: python:3.11\n{WEB}dependencies:\n  python3:\n    pipenv: '2023.7.23'\n    poetry: '>=1.5'\n    wheel: '*'\n"
            ),
            &[(
                "Installing the python3 dependencies",
                "set -e\npip install 'pipenv==2023.7.23' 'poetry>=1.5' 'wheel'",
            )],
        );
        check(
            &format!(
                "name: app\ntype: nodejs:18\n{WEB}dependencies:\n  nodejs:\n    yarn: '1.22.19'\n"
            ),
            &[
                (
                    "Installing the nodejs dependencies",
                    "set -e\nnpm install --global 'yarn@1.22.19'",
                ),
                (
                    "Running the `default` build flavor",
                    "set -e\nif [ -f package.json ]; then\n  npm prune --userconfig .npmrc && npm install --userconfig .npmrc\nfi",
                ),
            ],
        );
        check(
            &format!("name: app\ntype: nodejs:18\n{WEB}build:\n  flavor: none\n"),
            &[],
        );
        check(
            &format!("name: app\ntype: php:8.2\n{WEB}"),
            &[(
                "Running the `default` build flavor",
                "set -e\nif [ -f composer.json ]; then\n  composer --no-ansi --no-interaction install --no-progress --prefer-dist --optimize-autoloader --no-dev\nfi",
            )],
        );
    }

    #[test]
    fn package_names_cannot_inject_commands() {
        let commands = build_commands(&app(&format!(
            "name: app\ntype: python:3.11\n{WEB}dependencies:\n  python3:\n    \"x'; rm -rf /; '\": '*'\n"
        )));
        assert_eq!(
            commands[0].script,
            "set -e\npip install 'x'\\''; rm -rf /; '\\'''"
        );
    }
}
