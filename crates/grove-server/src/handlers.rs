//! What the API's handlers share: their result type, the JSON body extractor and the
//! activity DTO.

use axum::Json;
use axum::extract::{FromRequest, Request};
use grove_store::ActivityRow;

use crate::error::Error;

pub(crate) type ApiResult<T> = Result<T, Error>;

/// A JSON request body. A body that is not JSON or not of the expected shape is the
/// client's mistake, answered with the same typed error body as every other error.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(body)| JsonBody(body))
            .map_err(|rejection| Error::Invalid(rejection.body_text()))
    }
}

pub(crate) fn activity_dto(row: &ActivityRow) -> grove_api::Activity {
    grove_api::Activity {
        id: row.id.clone(),
        kind: row.kind.clone(),
        project: row.project.clone(),
        environment: row.environment.clone(),
        state: row.state.clone(),
        result: row.result.clone(),
        description: row.description.clone(),
        created_at: row.created_at.clone(),
        started_at: row.started_at.clone(),
        completed_at: row.completed_at.clone(),
    }
}
