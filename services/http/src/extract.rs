//! Extractors whose rejections are problem+json.

use axum::extract::{FromRequest, FromRequestParts};

use crate::HttpError;

/// Largest accepted request body, in bytes (64 KiB).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// A JSON body (at most [`BODY_LIMIT_BYTES`]; unknown fields are refused by
/// the body types themselves).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(HttpError))]
pub struct Body<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(HttpError))]
pub struct Path<T>(pub T);

/// Query parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(HttpError))]
pub struct Query<T>(pub T);
