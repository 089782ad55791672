//! Which language runtimes this host really has, and how config runtime types
//! (`python:3.11`, `nodejs:20`, ...) map onto them.
//!
//! Never pretend, never silently: a version is run exactly when the host or a
//! runtime image ([`crate::images`]) has it; otherwise the nearest newer minor of
//! the same major runs instead, and the resolution says so (the deploy logs it as a
//! warning) — unless the operator asked for exact versions only, or mapped the type
//! explicitly to an installed one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::images::ImageRecipe;

/// Platform.sh language names we can run.
pub const SUPPORTED_LANGUAGES: &[&str] = &["golang", "nodejs", "php", "python", "ruby"];

/// Where binaries are looked for: only what the sandbox can see.
const BIN_DIRS: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];

/// One interpreter found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRuntime {
    /// Platform.sh language name: `python`, `nodejs`, `php`, `golang`, `ruby`.
    pub language: String,
    /// What a config's version is matched against: major.minor (`3.11`,
    /// golang `1.19`), major only for nodejs (`20`).
    pub version: String,
    /// The full version the binary reported (`3.11.2`).
    pub full_version: String,
    pub binary: PathBuf,
}

impl InstalledRuntime {
    /// `python:3.11`
    pub fn type_name(&self) -> String {
        format!("{}:{}", self.language, self.version)
    }
}

/// Which versions run when the exact one asked for can't be had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionPolicy {
    /// The nearest newer minor of the same major (`python:3.10` → 3.11), with a
    /// warning.
    #[default]
    NearestNewerMinor,
    /// Only the version asked for (or an operator alias).
    Exact,
}

/// Where a resolved runtime's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSource {
    /// The host's own system directories.
    Host,
    /// A runtime image's, instead of the host's.
    Image(ImageRecipe),
}

/// A config runtime type resolved to a runtime that can run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRuntime {
    /// What the config asked for, e.g. `python:3.9`.
    pub requested: String,
    /// The runtime that runs it, e.g. `python:3.11`.
    pub provided: String,
    /// `true` when an operator mapping was used rather than an exact match.
    pub via_alias: bool,
    /// `true` when the version asked for could not be had and the nearest newer
    /// minor runs instead.
    pub substituted: bool,
    pub source: RuntimeSource,
    /// The interpreter (inside the image when `source` is one).
    pub binary: PathBuf,
}

impl ResolvedRuntime {
    /// The image whose system directories the app's sandboxes use, if any.
    pub fn image(&self) -> Option<&ImageRecipe> {
        match &self.source {
            RuntimeSource::Host => None,
            RuntimeSource::Image(recipe) => Some(recipe),
        }
    }

    fn where_from(&self) -> String {
        match &self.source {
            RuntimeSource::Host => "the host".to_owned(),
            RuntimeSource::Image(recipe) => recipe.to_string(),
        }
    }
}

impl fmt::Display for ResolvedRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.substituted {
            write!(
                f,
                "{} is not available: {} from {} runs instead (the nearest newer minor version)",
                self.requested,
                self.provided,
                self.where_from()
            )
        } else if let RuntimeSource::Image(recipe) = &self.source {
            write!(f, "{} runs on {recipe}", self.requested)
        } else if self.via_alias {
            write!(
                f,
                "{} runs on the installed {} (operator mapping)",
                self.requested, self.provided
            )
        } else {
            write!(
                f,
                "{} runs on the installed {}",
                self.requested, self.provided
            )
        }
    }
}

/// A runtime type that can't be run here, or a bad aliases file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "unknown runtime language `{language}` in `{requested}` (supported: {})",
        SUPPORTED_LANGUAGES.join(", ")
    )]
    UnknownLanguage { requested: String, language: String },
    #[error("`{language}` is not a Platform.sh runtime name: write `{expected}:{version}`")]
    WrongLanguageName {
        language: String,
        expected: &'static str,
        version: String,
    },
    #[error(
        "runtime type `{requested}` has no version: write `{requested}:<version>`, e.g. `{requested}:{example}`"
    )]
    MissingVersion {
        requested: String,
        example: &'static str,
    },
    #[error("runtime `{requested}` is not installed on this host (installed: {}{}); {hint}", render_installed(.installed), render_installable(.installable))]
    NotInstalled {
        requested: String,
        installed: Vec<String>,
        /// What runtime images could provide (`python:3.13 (image, Debian trixie)`).
        installable: Vec<String>,
        hint: String,
    },
    #[error(
        "runtime `{requested}` is not available in exactly that version, and this server runs exact versions only (`versions: exact` in {config_file}); available: {}; ask for one of those",
        render_installed(.available)
    )]
    NotExact {
        requested: String,
        available: Vec<String>,
        config_file: String,
    },
    #[error(
        "runtime `{requested}` is mapped to `{target}` in {aliases_file}, but `{target}` is not installed on this host (installed: {})",
        render_installed(.installed)
    )]
    AliasTargetMissing {
        requested: String,
        target: String,
        aliases_file: String,
        installed: Vec<String>,
    },
    #[error("invalid runtime aliases file: {0}")]
    AliasFile(String),
}

fn render_installable(installable: &[String]) -> String {
    if installable.is_empty() {
        String::new()
    } else {
        format!("; installable as images: {}", installable.join(", "))
    }
}

fn render_installed(installed: &[String]) -> String {
    if installed.is_empty() {
        "none".to_owned()
    } else {
        installed.join(", ")
    }
}

/// The runtimes of this host plus the operator's explicit aliases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCatalog {
    installed: Vec<InstalledRuntime>,
    aliases: BTreeMap<String, String>,
    aliases_file: Option<PathBuf>,
    images: Vec<ImageRecipe>,
    policy: VersionPolicy,
}

/// One line of `runtime:list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEntry {
    pub language: String,
    pub version: String,
    pub full_version: String,
    pub source: RuntimeSource,
}

impl RuntimeCatalog {
    /// Probes the host for interpreters (blocking: runs each candidate's
    /// `--version`; call through `spawn_blocking`). Only binaries under
    /// /usr/local/bin, /usr/bin and /bin count: that's what the sandbox sees.
    pub fn probe(aliases: BTreeMap<String, String>) -> RuntimeCatalog {
        let mut installed: Vec<InstalledRuntime> = Vec::new();
        for (language, binary) in candidates() {
            let Some(output) = probe_output(language, &binary) else {
                continue;
            };
            let Some((full_version, version)) = parse_version(language, &output) else {
                tracing::debug!(binary = %binary.display(), output, "unrecognised version output");
                continue;
            };
            if installed
                .iter()
                .any(|r| r.language == language && r.version == version)
            {
                continue;
            }
            installed.push(InstalledRuntime {
                language: language.to_owned(),
                version,
                full_version,
                binary,
            });
        }
        RuntimeCatalog::from_parts(installed, aliases)
    }

    pub fn from_parts(
        mut installed: Vec<InstalledRuntime>,
        aliases: BTreeMap<String, String>,
    ) -> RuntimeCatalog {
        installed.sort_by(|a, b| {
            a.language
                .cmp(&b.language)
                .then_with(|| version_key(&a.version).cmp(&version_key(&b.version)))
        });
        RuntimeCatalog {
            installed,
            aliases,
            aliases_file: None,
            images: Vec::new(),
            policy: VersionPolicy::default(),
        }
    }

    /// Runtime images that can provide what the host lacks.
    pub fn with_images(mut self, images: &[ImageRecipe]) -> RuntimeCatalog {
        self.images = images.to_vec();
        self
    }

    pub fn with_policy(mut self, policy: VersionPolicy) -> RuntimeCatalog {
        self.policy = policy;
        self
    }

    pub fn policy(&self) -> VersionPolicy {
        self.policy
    }

    /// Everything that can run: the host's runtimes, then the images of versions
    /// the host lacks, by language and version.
    pub fn entries(&self) -> Vec<RuntimeEntry> {
        let mut entries: Vec<RuntimeEntry> = self
            .installed
            .iter()
            .map(|r| RuntimeEntry {
                language: r.language.clone(),
                version: r.version.clone(),
                full_version: r.full_version.clone(),
                source: RuntimeSource::Host,
            })
            .collect();
        for recipe in &self.images {
            if self.find(recipe.language, recipe.version).is_none() {
                entries.push(RuntimeEntry {
                    language: recipe.language.to_owned(),
                    version: recipe.version.to_owned(),
                    full_version: recipe.full_version.to_owned(),
                    source: RuntimeSource::Image(*recipe),
                });
            }
        }
        entries.sort_by(|a, b| {
            a.language
                .cmp(&b.language)
                .then_with(|| version_key(&a.version).cmp(&version_key(&b.version)))
        });
        entries
    }

    /// The image that provides a type exactly (`nodejs:18`), for `runtime:install`.
    pub fn image_for(&self, runtime_type: &str) -> Option<&ImageRecipe> {
        let (language, version) = runtime_type.split_once(':')?;
        let key = matching_version(language, version);
        self.images
            .iter()
            .find(|r| r.language == language && r.version == key)
    }

    /// Names the aliases file in error messages.
    pub fn with_aliases_file(mut self, path: impl Into<PathBuf>) -> RuntimeCatalog {
        self.aliases_file = Some(path.into());
        self
    }

    pub fn installed(&self) -> &[InstalledRuntime] {
        &self.installed
    }

    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    /// Resolves a config `type:` such as `python:3.11`.
    pub fn resolve_type(&self, runtime_type: &str) -> Result<ResolvedRuntime, CatalogError> {
        match runtime_type.split_once(':') {
            Some((language, version)) => self.resolve(language, version),
            None => self.resolve(runtime_type, ""),
        }
    }

    /// Exact match on the host (major.minor; nodejs: major), else in a runtime image,
    /// else an operator alias, else (unless exact-only) the nearest newer minor of the
    /// same major, from the host or an image, else an error naming what is available.
    pub fn resolve(&self, language: &str, version: &str) -> Result<ResolvedRuntime, CatalogError> {
        check_language(language, version)?;
        let requested = format!("{language}:{version}");
        let key = matching_version(language, version);
        let exact = |source: RuntimeSource, provided: String, binary: PathBuf| ResolvedRuntime {
            requested: requested.clone(),
            provided,
            via_alias: false,
            substituted: false,
            source,
            binary,
        };
        if let Some(found) = self.find(language, &key) {
            return Ok(exact(
                RuntimeSource::Host,
                found.type_name(),
                found.binary.clone(),
            ));
        }
        if let Some(recipe) = self.find_image(language, &key) {
            return Ok(exact(
                RuntimeSource::Image(*recipe),
                recipe.type_name(),
                recipe.binary.into(),
            ));
        }
        let normalized = format!("{language}:{key}");
        let alias = self
            .aliases
            .get(&requested)
            .or_else(|| self.aliases.get(&normalized));
        if let Some(target) = alias {
            let found = target
                .split_once(':')
                .and_then(|(lang, ver)| self.find(lang, &matching_version(lang, ver)));
            return match found {
                Some(found) => Ok(ResolvedRuntime {
                    requested,
                    provided: found.type_name(),
                    via_alias: true,
                    substituted: false,
                    source: RuntimeSource::Host,
                    binary: found.binary.clone(),
                }),
                None => Err(CatalogError::AliasTargetMissing {
                    requested,
                    target: target.clone(),
                    aliases_file: self.aliases_file_name(),
                    installed: self.installed_names(),
                }),
            };
        }
        if self.policy == VersionPolicy::Exact {
            return Err(CatalogError::NotExact {
                requested,
                available: self
                    .entries()
                    .iter()
                    .filter(|e| e.language == language)
                    .map(entry_name)
                    .collect(),
                config_file: self.aliases_file_name(),
            });
        }
        if let Some(entry) = self.nearest_newer_minor(language, &key) {
            return Ok(ResolvedRuntime {
                requested,
                provided: format!("{}:{}", entry.language, entry.version),
                via_alias: false,
                substituted: true,
                binary: match &entry.source {
                    RuntimeSource::Host => self
                        .find(language, &entry.version)
                        .map(|r| r.binary.clone())
                        .unwrap_or_default(),
                    RuntimeSource::Image(recipe) => recipe.binary.into(),
                },
                source: entry.source,
            });
        }
        let newest_same_language = self.installed.iter().rfind(|r| r.language == language);
        let hint = match newest_same_language {
            Some(installed) => format!(
                "an operator can map it explicitly in {}: `{requested}: {}`",
                self.aliases_file_name(),
                installed.type_name()
            ),
            None => format!(
                "no {language} runtime is installed: install {language} {version} on the host"
            ),
        };
        Err(CatalogError::NotInstalled {
            requested,
            installed: self.installed_names(),
            installable: self
                .entries()
                .iter()
                .filter(|e| e.language == language && e.source != RuntimeSource::Host)
                .map(entry_name)
                .collect(),
            hint,
        })
    }

    /// The smallest version above `key` with the same major (a bare major matches
    /// nothing: there is no minor to be near to); the host's before an image's.
    fn nearest_newer_minor(&self, language: &str, key: &str) -> Option<RuntimeEntry> {
        let wanted = version_key(key);
        if wanted.len() < 2 {
            return None;
        }
        self.entries()
            .into_iter()
            .filter(|e| e.language == language)
            .filter(|e| {
                let have = version_key(&e.version);
                have.first() == wanted.first() && have > wanted
            })
            .min_by(|a, b| {
                version_key(&a.version)
                    .cmp(&version_key(&b.version))
                    .then_with(|| {
                        (a.source != RuntimeSource::Host).cmp(&(b.source != RuntimeSource::Host))
                    })
            })
    }

    fn find_image(&self, language: &str, version: &str) -> Option<&ImageRecipe> {
        self.images
            .iter()
            .find(|r| r.language == language && r.version == version)
    }

    fn find(&self, language: &str, version: &str) -> Option<&InstalledRuntime> {
        self.installed
            .iter()
            .find(|r| r.language == language && r.version == version)
    }

    fn installed_names(&self) -> Vec<String> {
        self.installed
            .iter()
            .map(InstalledRuntime::type_name)
            .collect()
    }

    fn aliases_file_name(&self) -> String {
        match &self.aliases_file {
            Some(path) => path.display().to_string(),
            None => "the runtime aliases file".to_owned(),
        }
    }

    /// Parses the operator's aliases file:
    /// `aliases: { "python:3.9": "python:3.11" }`. Empty text means no aliases.
    pub fn load_aliases(text: &str) -> Result<BTreeMap<String, String>, CatalogError> {
        Self::load_config(text).map(|(aliases, _)| aliases)
    }

    /// Parses the operator's runtimes file: `aliases` and the version policy
    /// (`versions: exact` or `versions: nearest-newer-minor`, the default).
    pub fn load_config(
        text: &str,
    ) -> Result<(BTreeMap<String, String>, VersionPolicy), CatalogError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct AliasFile {
            #[serde(default)]
            aliases: Option<BTreeMap<String, String>>,
            #[serde(default)]
            versions: Option<VersionPolicy>,
        }
        if text.trim().is_empty() {
            return Ok((BTreeMap::new(), VersionPolicy::default()));
        }
        let file: AliasFile = serde_saphyr::from_str(text).map_err(|e| {
            let message = e.to_string();
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            CatalogError::AliasFile(message.to_owned())
        })?;
        let aliases = file.aliases.unwrap_or_default();
        for (from, to) in &aliases {
            let bad = |why: String| Err(CatalogError::AliasFile(format!("`{from}: {to}`: {why}")));
            let (Some((from_lang, from_ver)), Some((to_lang, to_ver))) =
                (from.split_once(':'), to.split_once(':'))
            else {
                return bad("both sides must be `language:version`".to_owned());
            };
            if let Err(e) = check_language(from_lang, from_ver) {
                return bad(e.to_string());
            }
            if let Err(e) = check_language(to_lang, to_ver) {
                return bad(e.to_string());
            }
            if from_lang != to_lang {
                return bad(format!(
                    "a {from_lang} version can only be mapped to another {from_lang} version"
                ));
            }
        }
        Ok((aliases, file.versions.unwrap_or_default()))
    }

    /// Reads the aliases file at `path`; a missing file means no aliases.
    pub fn load_aliases_file(path: &Path) -> Result<BTreeMap<String, String>, CatalogError> {
        Self::load_config_file(path).map(|(aliases, _)| aliases)
    }

    /// Reads the runtimes file at `path`; a missing file means no aliases and the
    /// default policy.
    pub fn load_config_file(
        path: &Path,
    ) -> Result<(BTreeMap<String, String>, VersionPolicy), CatalogError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::load_config(&text)
                .map_err(|e| CatalogError::AliasFile(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok((BTreeMap::new(), VersionPolicy::default()))
            }
            Err(e) => Err(CatalogError::AliasFile(format!(
                "could not read {}: {e}",
                path.display()
            ))),
        }
    }
}

/// `python:3.13 (image, Debian trixie)`, `python:3.11 (host)`.
fn entry_name(entry: &RuntimeEntry) -> String {
    match &entry.source {
        RuntimeSource::Host => format!("{}:{} (host)", entry.language, entry.version),
        RuntimeSource::Image(recipe) => format!(
            "{}:{} (image, Debian {})",
            entry.language, entry.version, recipe.release
        ),
    }
}

fn check_language(language: &str, version: &str) -> Result<(), CatalogError> {
    let expected = match language {
        "node" => Some("nodejs"),
        "go" => Some("golang"),
        "python3" => Some("python"),
        _ => None,
    };
    if let Some(expected) = expected {
        return Err(CatalogError::WrongLanguageName {
            language: language.to_owned(),
            expected,
            version: version.to_owned(),
        });
    }
    if !SUPPORTED_LANGUAGES.contains(&language) {
        return Err(CatalogError::UnknownLanguage {
            requested: if version.is_empty() {
                language.to_owned()
            } else {
                format!("{language}:{version}")
            },
            language: language.to_owned(),
        });
    }
    if version.trim().is_empty() {
        return Err(CatalogError::MissingVersion {
            requested: language.to_owned(),
            example: match language {
                "python" => "3.11",
                "nodejs" => "20",
                "php" => "8.2",
                "golang" => "1.22",
                _ => "3.3",
            },
        });
    }
    Ok(())
}

/// The part of a requested version that is matched: major for nodejs, else
/// major.minor (a bare major such as `python:3` matches nothing, on purpose).
fn matching_version(language: &str, version: &str) -> String {
    let take = if language == "nodejs" { 1 } else { 2 };
    version
        .trim()
        .split('.')
        .take(take)
        .collect::<Vec<_>>()
        .join(".")
}

fn version_key(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Parses a binary's version output into (full version, matching version).
pub fn parse_version(language: &str, output: &str) -> Option<(String, String)> {
    let text = output.trim();
    let full = match language {
        // "Python 3.11.2"
        "python" => text.strip_prefix("Python ")?.split_whitespace().next()?,
        // "v20.20.2"
        "nodejs" => text.strip_prefix('v')?.split_whitespace().next()?,
        // "8.2.7" (from `php -r 'echo PHP_VERSION;'`)
        "php" => text.split_whitespace().next()?,
        // "go version go1.19.8 linux/amd64"
        "golang" => text.split_whitespace().find_map(|w| {
            w.strip_prefix("go")
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })?,
        // "ruby 3.1.2p20 (2022-04-12 revision 4491bb740a) [x86_64-linux-gnu]"
        "ruby" => text.strip_prefix("ruby ")?.split_whitespace().next()?,
        _ => return None,
    };
    // Keep only the numeric dotted prefix ("3.1.2p20" -> "3.1.2", "8.2.7-1" -> "8.2.7").
    let full: String = full
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let full = full.trim_end_matches('.').to_owned();
    let parts: Vec<&str> = full.split('.').filter(|p| !p.is_empty()).collect();
    let wanted = if language == "nodejs" { 1 } else { 2 };
    if parts.len() < wanted {
        return None;
    }
    let version = parts[..wanted].join(".");
    Some((full, version))
}

/// (language, binary) pairs worth asking for a version, most specific dirs first.
fn candidates() -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for dir in BIN_DIRS {
        let dir = Path::new(dir);
        let mut names: Vec<(&'static str, String)> = vec![
            ("python", "python3".to_owned()),
            ("nodejs", "node".to_owned()),
            ("nodejs", "nodejs".to_owned()),
            ("php", "php".to_owned()),
            ("golang", "go".to_owned()),
            ("ruby", "ruby".to_owned()),
        ];
        // Versioned side-by-side installs: python3.11, php8.2, ruby3.1.
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut versioned: Vec<(&'static str, String)> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|name| {
                    let language = [("python3.", "python"), ("php", "php"), ("ruby", "ruby")]
                        .into_iter()
                        .find(|(prefix, _)| {
                            name.strip_prefix(prefix).is_some_and(|rest| {
                                !rest.is_empty()
                                    && rest.contains(|c: char| c.is_ascii_digit())
                                    && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
                            })
                        })?
                        .1;
                    Some((language, name))
                })
                .collect();
            versioned.sort();
            names.extend(versioned);
        }
        for (language, name) in names {
            let path = dir.join(&name);
            let Ok(canonical) = std::fs::canonicalize(&path) else {
                continue;
            };
            if path.is_file() && seen.insert(canonical) {
                out.push((language, path));
            }
        }
    }
    out
}

/// Runs the binary's version command, with a time limit (a broken interpreter
/// must not hang the daemon's startup).
fn probe_output(language: &str, binary: &Path) -> Option<String> {
    let mut cmd = Command::new(binary);
    match language {
        "php" => cmd.args(["-r", "echo PHP_VERSION;"]),
        "golang" => cmd.arg("version"),
        _ => cmd.arg("--version"),
    };
    let mut child = cmd
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let output = child.wait_with_output().ok()?;
    if !output.status.success() {
        return None;
    }
    // Python 2 and some old tools print their version on stderr.
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if text.trim().is_empty() {
        text = String::from_utf8_lossy(&output.stderr).into_owned();
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_outputs_are_parsed() {
        let check = |language, output, expected: Option<(&str, &str)>| {
            assert_eq!(
                parse_version(language, output),
                expected.map(|(a, b)| (a.to_owned(), b.to_owned())),
                "{language}: {output}"
            );
        };
        check("python", "Python 3.11.2\n", Some(("3.11.2", "3.11")));
        check("nodejs", "v20.20.2\n", Some(("20.20.2", "20")));
        check("php", "8.2.7", Some(("8.2.7", "8.2")));
        check(
            "golang",
            "go version go1.19.8 linux/amd64\n",
            Some(("1.19.8", "1.19")),
        );
        check(
            "golang",
            "go version go1.22 linux/amd64",
            Some(("1.22", "1.22")),
        );
        check(
            "ruby",
            "ruby 3.1.2p20 (2022-04-12 revision 4491bb740a) [x86_64-linux-gnu]",
            Some(("3.1.2", "3.1")),
        );
        check("python", "garbage", None);
        check("python", "Python 3", None);
    }
}
