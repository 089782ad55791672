//! The server's error type: every failure says whose it is (the user's input, a missing
//! resource, a conflict with the current state, an unavailable upstream, or Grove
//! itself), which decides its HTTP status and the `kind` of the JSON error body.

use grove_api::ErrorKind;
use grove_git::GitError;
use grove_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (a name taken, an operation not
    /// allowed on this environment, a plan limit).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
    #[error("authentication required: send an API token as `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The user lacks the role the request needs (the message names it), or the
    /// request is one a web page could forge.
    #[error("{0}")]
    Forbidden(String),
    /// Something Grove depends on is unavailable right now (disk full, a host resource
    /// exhausted); the same request may work later.
    #[error("{0}")]
    Unavailable(String),
    /// Grove failed: the store, git, the host.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Invalid(_) => ErrorKind::UserInput,
            Error::Unauthorized => ErrorKind::Unauthorized,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Platform,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::Conflict(what) => Error::Conflict(format!("{what} already exists")),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<GitError> for Error {
    fn from(e: GitError) -> Error {
        Error::Internal(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        if is_resource_exhausted(&e) {
            Error::Unavailable(e.to_string())
        } else {
            Error::Internal(e.to_string())
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Error {
        Error::Internal(format!("background task failed: {e}"))
    }
}

/// A full disk, a quota or an exhausted table of the host: nothing wrong with the
/// request or with Grove, and it may work again later.
pub fn is_resource_exhausted(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno::ENOSPC | libc_errno::EDQUOT | libc_errno::EMFILE | libc_errno::ENFILE)
    ) || e.kind() == std::io::ErrorKind::StorageFull
}

/// The errno values of resource exhaustion (Linux), without a libc dependency here.
mod libc_errno {
    pub const EMFILE: i32 = 24;
    pub const ENFILE: i32 = 23;
    pub const ENOSPC: i32 = 28;
    pub const EDQUOT: i32 = 122;
}
