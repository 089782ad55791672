//! The server's error type: every failure says whose it is (the user's input, a missing
//! resource, or Grove itself), which decides its HTTP status.

use grove_git::GitError;
use grove_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (a name taken, an operation not
    /// allowed on this environment).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
    #[error("authentication required: send an API token as `Authorization: Bearer <token>`")]
    Unauthorized,
    /// Grove failed: the store, git, the host.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

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
        Error::Internal(e.to_string())
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Error {
        Error::Internal(format!("background task failed: {e}"))
    }
}
