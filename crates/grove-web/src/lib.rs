//! What serves an app's `web` configuration: an nginx configuration generated from
//! `web.locations` (static files, front controllers, rules) and `web.upstream`, and
//! the PHP-FPM pool that runs a PHP app behind it.
//!
//! Pure: this crate writes no files and starts no processes. The deploy writes what
//! it returns into an instance's directory and runs the servers in the app's sandbox;
//! every path in the output is a path inside that sandbox.

mod nginx;
mod php;

pub use nginx::{AppUpstream, Listen, ServerSpec, nginx_config};
pub use php::{
    FpmSpec, MissingExtension, disabled_extensions, fpm_config, ini_enables, missing_extensions,
    requested_extensions,
};

/// A `web` configuration nginx cannot express safely. These are the app's input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebError {
    #[error("web.locations.\"{location}\": header `{name}` has a value nginx cannot carry: {why}")]
    Header {
        location: String,
        name: String,
        why: &'static str,
    },
    #[error("web.locations.\"{location}\": {what} contains a character nginx cannot carry: {why}")]
    Unquotable {
        location: String,
        what: String,
        why: &'static str,
    },
    #[error("web.locations.\"{location}\": invalid `expires: {value}`")]
    Expires { location: String, value: String },
    #[error("variables.php.{name}: {why}")]
    PhpSetting { name: String, why: &'static str },
}
