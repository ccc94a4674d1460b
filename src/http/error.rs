//! The one error type at the HTTP edge. Client errors carry a stable code and a message meant
//! for people; server errors log their full cause chain and answer with a generic body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A quota of `[quotas]` is used up: 429 with `Retry-After` and which quota.
    #[error("{message}")]
    OverQuota {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Validation { .. } => "validation_failed",
            Self::RateLimited { .. } => "rate_limited",
            Self::OverQuota { .. } => "quota_exceeded",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// Validation results from `crate::validate` become 422s naming the field.
pub trait FieldCheck {
    fn field(self, name: &str) -> AppResult<()>;
}

impl FieldCheck for crate::validate::Check {
    fn field(self, name: &str) -> AppResult<()> {
        self.map_err(|why| AppError::validation(name, why))
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

impl From<crate::access::Denied> for AppError {
    fn from(e: crate::access::Denied) -> Self {
        use crate::access::Denied as D;
        match e {
            D::NotFound(what) => Self::not_found(what),
            D::Forbidden(why) => Self::Forbidden(why),
            D::Db(e) => e.into(),
        }
    }
}

impl From<crate::deploy::DeployError> for AppError {
    fn from(e: crate::deploy::DeployError) -> Self {
        use crate::deploy::DeployError as D;
        match e {
            D::NotFound(what) => Self::not_found(what),
            D::Invalid { field, message } => Self::validation(field, message),
            D::Conflict(message) => Self::Conflict(message),
            D::TooLarge(message) => Self::PayloadTooLarge(message),
            D::Unavailable(message) => Self::Unavailable(message),
            D::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<crate::storage::StorageError> for AppError {
    fn from(e: crate::storage::StorageError) -> Self {
        use crate::storage::StorageError as E;
        match e {
            E::Invalid { field, message } => Self::validation(field, message),
            E::Conflict(message) => Self::Conflict(message),
            E::Unavailable(message) => Self::Unavailable(message),
            E::Internal(cause) => Self::Internal(cause),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } | Self::OverQuota { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal server error; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let field = match self {
            Self::Validation { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Self::RateLimited { retry_after_secs }
        | Self::OverQuota {
            retry_after_secs, ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
        }
        if let Self::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(Body {
            error: Detail {
                code: self.code(),
                message,
                field,
            },
        })
    }
}
