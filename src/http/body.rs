//! `JsonBody<T>`: a JSON request body that is read with the request but parsed only when the
//! handler asks, after every other extractor (authentication, authorization) has passed. With
//! `web::Json` a malformed body could answer 422 before an unauthorized caller got their
//! 401/404, because actix polls a handler's extractors together.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;

use crate::http::error::{AppError, AppResult};

/// A body taken as it is (a file upload), at most `quotas.file_mount_kib` (64 MiB when that is
/// 0). Like `JsonBody`, an oversized body is reported only when the handler asks, after
/// authorization.
pub struct RawBody(AppResult<web::Bytes>);

/// The most any raw body may be, whatever the configuration says.
const RAW_HARD_LIMIT: usize = 64 << 20;

impl RawBody {
    pub fn bytes(self) -> AppResult<web::Bytes> {
        self.0
    }
}

impl FromRequest for RawBody {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<crate::state::AppState>>()
            .map(|s| s.config.quotas.file_mount_kib as usize * 1024)
            .filter(|&l| l > 0)
            .unwrap_or(RAW_HARD_LIMIT)
            .min(RAW_HARD_LIMIT);
        let mut payload = payload.take();
        Box::pin(async move {
            use futures_util::StreamExt;
            let too_large = || {
                AppError::PayloadTooLarge(format!(
                    "the file is larger than {} KiB (quotas.file_mount_kib)",
                    limit / 1024
                ))
            };
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        let message = format!("cannot read the request body: {e}");
                        return Ok(RawBody(Err(AppError::BadRequest(message))));
                    }
                };
                if body.len() + chunk.len() > limit {
                    // The rest is not read: the connection closes after the answer.
                    return Ok(RawBody(Err(too_large())));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(RawBody(Ok(body.freeze())))
        })
    }
}

pub struct JsonBody<T> {
    bytes: web::Bytes,
    json: bool,
    _t: PhantomData<T>,
}

impl<T: DeserializeOwned> JsonBody<T> {
    /// The body as `T`: 400 for a wrong content type or broken JSON, 422 for a wrong shape.
    pub fn parse(self) -> AppResult<T> {
        if !self.json {
            return Err(AppError::BadRequest(
                "expected Content-Type: application/json".into(),
            ));
        }
        serde_json::from_slice(&self.bytes).map_err(|e| {
            if e.is_data() {
                AppError::validation("body", e.to_string())
            } else {
                AppError::BadRequest(format!("malformed JSON: {e}"))
            }
        })
    }
}

impl<T: 'static> FromRequest for JsonBody<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
        let limit = req
            .app_data::<web::Data<crate::state::AppState>>()
            .map_or(256 * 1024, |s| s.config.http.body_limit_bytes);
        let mut payload = payload.take();
        Box::pin(async move {
            use futures_util::StreamExt;
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    AppError::BadRequest(format!("cannot read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(AppError::PayloadTooLarge(format!(
                        "request body is larger than {limit} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(JsonBody {
                bytes: body.freeze(),
                json,
                _t: PhantomData,
            })
        })
    }
}
