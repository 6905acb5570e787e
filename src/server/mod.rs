//! The HTTP server: a JSON search API and a small web page for shoppers.
//!
//! - `GET  /api/search?q=..&mode=..&k=..&diversify=..&lambda=..&alpha=..` text search
//! - `POST /api/search?...` with an image (JPEG/PNG/WebP bytes) as the body: search by
//!   image, with `q` too for a combined query (`text_weight` sets the mix); or a JSON
//!   body (`Content-Type: application/json`) with the same fields, `filter` as a list
//!   and the photo as `image_base64`
//!   `filter=FIELD:VALUE[,VALUE]` (repeatable; also `FIELD>=N`...) narrows any search
//! - `GET  /api/facets` the fields products have and their common values (filter chips)
//! - `GET  /images/{id}` a product's image, `GET /health`, `GET /` the page
//! - `GET  /api/products/{id}` one stored product; `GET /api/products/{id}/similar?mode=..
//!   &k=..&filter=..&diversify=..` the products closest to it ("more like this")
//! - `PUT  /api/products/{id}` add or replace a product (JSON, image as `image_base64`),
//!   `DELETE /api/products/{id}`: only when the server has a write key, checked as a
//!   bearer token (403 without a key configured, 401 for a missing or wrong one)
//!
//! Embedding and ranking are CPU-bound, so each request runs on tokio's blocking pool
//! and the async workers stay free to accept connections. A background thread looks
//! for changes to the store (from this server's writes or any other process's, such as
//! `vitrina upsert`) every [`REFRESH_EVERY`] and swaps in a new snapshot; a request
//! searches the snapshot it started with, so it never sees half of a change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query as UrlQuery, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::catalog::ProductInput;
use crate::encoder::preprocess::decode_image;
use crate::encoder::Model;
use crate::indexing::{embed_entries, vector_hash, Report};
use crate::search::{Mode, Ranking, ResultRow, SearchRequest, Searcher};
use crate::store::{Live, StoreWriter, Unavailable};

mod connections;
mod listener;
mod observe;

pub use observe::ACCESS_LOG;

use axum::serve::Listener as _;

const PAGE: &str = include_str!("page.html");
/// Largest accepted upload: a phone photo fits comfortably.
const MAX_UPLOAD: usize = 20 * 1024 * 1024;
/// How often the store is checked for changes made by other writers.
pub const REFRESH_EVERY: Duration = Duration::from_millis(250);
/// Folder (inside the store folder) for images uploaded through the write API.
pub const UPLOADS: &str = "uploads";

/// What `serve` is started with besides the store and the model.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Searches that may run at once (each holds a core while it ranks).
    pub max_searches: usize,
    /// Photo queries that may be decoded and embedded at once (each may take up to the
    /// decoder's memory limit).
    pub max_image_queries: usize,
    /// How long a request waits for its turn before it is answered 503.
    pub queue_wait: Duration,
    /// Connections open at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// A request's headers must arrive within this long, however slowly bytes trickle in.
    pub header_timeout: Duration,
    /// Web origins (`https://shop.example`, or `*` for any) whose pages may call the API
    /// from a browser; empty: no CORS headers, so browsers allow same-origin calls only.
    pub cors_origins: Vec<String>,
    /// Enables the write routes for requests with `Authorization: Bearer KEY`.
    pub write_key: Option<String>,
    /// Where uploaded images go (`uploads/` in a folder store; without one, images
    /// sent to the write API are refused).
    pub uploads: Option<std::path::PathBuf>,
}

struct AppState {
    store: Arc<dyn Live>,
    model: Model,
    options: ServeOptions,
    metrics: observe::Metrics,
    searches: Arc<tokio::sync::Semaphore>,
    image_queries: Arc<tokio::sync::Semaphore>,
}

/// Every `filter=` of the query string (repeatable, so read from the raw query).
fn with_filters(mut request: SearchRequest, raw: Option<String>) -> SearchRequest {
    request.filters = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.into_owned())
        .collect();
    request
}

#[derive(Serialize, utoipa::ToSchema)]
struct SearchResponse {
    took_ms: f64,
    mode: Mode,
    diversify: String,
    /// Query words understood as field values (boosted): the page's removable chips.
    understood: Vec<crate::store::text_index::Understood>,
    /// Results skipped before these (the request's offset).
    offset: usize,
    /// The offset of the next page ("load more"); absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<usize>,
    hits: Vec<ResultRow>,
}

impl SearchResponse {
    fn new(
        started: Instant,
        ranking: &Ranking,
        understood: Vec<crate::store::text_index::Understood>,
        hits: Vec<ResultRow>,
    ) -> Self {
        SearchResponse {
            took_ms: started.elapsed().as_secs_f64() * 1e3,
            mode: ranking.mode,
            diversify: ranking.diversify.label(),
            understood,
            offset: ranking.offset,
            next_offset: SearchRequest::next_offset(ranking, hits.len()),
            hits,
        }
    }
}

/// An error as a JSON body with the right status. Every 4xx and 5xx has one shape,
/// `{"error": {"code": "...", "message": "..."}}`: 4xx for the client's faults, 5xx
/// only for ours, 503 (with `Retry-After`) when a retry may succeed.
struct ApiError(StatusCode, String);

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `not_found`, `payload_too_large`, `unavailable`, ...
    code: String,
    message: String,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self.0 {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::TOO_MANY_REQUESTS => "overloaded",
            s if s.is_server_error() => "internal",
            _ => "error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message: self.1,
            },
        });
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            (self.0, [(header::RETRY_AFTER, "1")], body).into_response()
        } else {
            (self.0, body).into_response()
        }
    }
}

/// The query string, parsed; a malformed one (`k=abc`) is a JSON 400 like every other
/// error, not axum's plain-text rejection.
struct ApiQuery<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        UrlQuery::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| bad_request(e.body_text()))
    }
}

/// Waits briefly for one of `limit`'s permits; past that the server is saturated and
/// says so (503 with `Retry-After`) instead of queueing without bound.
async fn admit(
    limit: &Arc<tokio::sync::Semaphore>,
    wait: Duration,
    what: &str,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(wait, limit.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the server is busy ({what} at their limit); retry in a moment"),
        )),
    }
}

/// An unusable image is the client's fault: 413 when it is too large, else 400.
fn image_error(e: anyhow::Error) -> ApiError {
    if e.downcast_ref::<crate::encoder::preprocess::ImageTooLarge>()
        .is_some()
    {
        ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("{e:#}"))
    } else {
        bad_request(format!("{e:#}"))
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// A request the library refused (a parameter out of range, an unknown name): 400.
fn user_error(e: anyhow::Error) -> ApiError {
    bad_request(format!("{e:#}"))
}

/// A store error: 503 when the store cannot be reached right now (a database down or
/// restarting; the client may retry), else `otherwise`.
fn store_error(otherwise: StatusCode) -> impl Fn(anyhow::Error) -> ApiError {
    move |e| {
        let status = if e.downcast_ref::<Unavailable>().is_some() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            otherwise
        };
        ApiError(status, format!("{e:#}"))
    }
}

/// Runs store work on the blocking pool: a store read may wait on a database.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

fn run_search(
    state: &AppState,
    params: &SearchRequest,
    image: Option<Bytes>,
) -> Result<SearchResponse, ApiError> {
    let started = Instant::now();
    let snapshot = state.store.current();
    let ranking = params.ranking(snapshot.meta()).map_err(user_error)?;
    let image = match image {
        Some(bytes) if !bytes.is_empty() => Some(decode_image(&bytes).map_err(image_error)?),
        _ => None,
    };
    let query = params.query(image).map_err(user_error)?;
    let searcher = Searcher::new(&*snapshot, &state.model)
        .map_err(store_error(StatusCode::INTERNAL_SERVER_ERROR))?;
    let hits = searcher
        .search(&query, &ranking)
        .map_err(store_error(StatusCode::BAD_REQUEST))?;
    let understood = searcher
        .understand(query.text.as_deref().unwrap_or(""), &ranking)
        .map_err(store_error(StatusCode::INTERNAL_SERVER_ERROR))?;
    Ok(SearchResponse::new(started, &ranking, understood, hits))
}

async fn blocking_search(
    state: Arc<AppState>,
    params: SearchRequest,
    image: Option<Bytes>,
) -> Result<Json<SearchResponse>, ApiError> {
    let wait = state.options.queue_wait;
    let _image = match &image {
        Some(b) if !b.is_empty() => Some(admit(&state.image_queries, wait, "photo queries").await?),
        _ => None,
    };
    let _search = admit(&state.searches, wait, "searches").await?;
    blocking(move || run_search(&state, &params, image))
        .await
        .map(Json)
}

/// Search by text (the GET form; a photo needs POST).
#[utoipa::path(get, path = "/api/search", params(SearchRequest, ("filter" = Option<Vec<String>>, Query,
    description = "Repeatable: `field:value[,value..]` or a numeric comparison (`year>=2015`)")),
    responses((status = 200, body = SearchResponse), (status = "4XX", body = ErrorBody),
        (status = 503, body = ErrorBody, description = "busy or the store is unreachable: retry")))]
async fn search_get(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<SearchRequest>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchResponse>, ApiError> {
    blocking_search(state, with_filters(params, raw), None).await
}

/// `POST /api/search` with `Content-Type: application/json`: the same parameters as
/// the query string, filters as a list, and an optional photo as base64:
/// `{"q": "party dress", "mode": "average", "k": 10, "filter": ["gender=Women"],
/// "diversify": "kmeans", "image_base64": "..."}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct SearchBody {
    #[serde(flatten)]
    params: SearchRequest,
    #[serde(default)]
    filter: Vec<String>,
    #[serde(default)]
    image_base64: Option<String>,
}

/// Search by photo (the body is the image's bytes) or by a JSON request (`SearchBody`,
/// with `Content-Type: application/json`); query-string parameters as for GET.
#[utoipa::path(post, path = "/api/search", params(SearchRequest),
    request_body(content(
        (SearchBody = "application/json"),
        (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "image/webp"))),
    responses((status = 200, body = SearchResponse), (status = "4XX", body = ErrorBody),
        (status = 413, body = ErrorBody, description = "the photo is too large"),
        (status = 503, body = ErrorBody, description = "busy or the store is unreachable: retry")))]
async fn search_post(
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<SearchRequest>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SearchResponse>, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return blocking_search(state, with_filters(params, raw), Some(body)).await;
    }
    let request: SearchBody = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("invalid search JSON: {e}")))?;
    let mut params = request.params;
    params.filters = request.filter;
    let image = match request.image_base64 {
        Some(b64) => {
            use base64::Engine;
            Some(Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| bad_request(format!("image_base64 is not base64: {e}")))?,
            ))
        }
        None => None,
    };
    blocking_search(state, params, image).await
}

/// "More like this" for a product page.
/// "More like this": the products closest to a stored product by its own vectors.
#[utoipa::path(get, path = "/api/products/{id}/similar",
    params(("id" = String, Path), SearchRequest),
    responses((status = 200, body = SearchResponse), (status = 404, body = ErrorBody),
        (status = "4XX", body = ErrorBody)))]
async fn similar(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<SearchRequest>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchResponse>, ApiError> {
    let params = with_filters(params, raw);
    let _search = admit(&state.searches, state.options.queue_wait, "searches").await?;
    blocking(move || {
        let started = Instant::now();
        let snapshot = state.store.current();
        let ranking = params.ranking(snapshot.meta()).map_err(user_error)?;
        let searcher = crate::search::Searcher::stored_vectors_only(&*snapshot);
        match searcher.similar(&id, &ranking) {
            Ok(Some(hits)) => Ok(Json(SearchResponse::new(
                started,
                &ranking,
                Vec::new(),
                hits,
            ))),
            Ok(None) => Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no product {id:?}"),
            )),
            Err(e) => Err(store_error(StatusCode::BAD_REQUEST)(e)),
        }
    })
    .await
}

/// The catalogue's fields and their common values, for filter chips.
/// The catalogue's fields and their most common values (the page's filter chips).
#[utoipa::path(get, path = "/api/facets", responses((status = 200, body = crate::store::Facets)))]
async fn facets(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let facets = state
        .store
        .current()
        .facets()
        .map_err(store_error(StatusCode::INTERNAL_SERVER_ERROR))?;
    Ok(Json(&*facets).into_response())
}

/// A product's photo.
#[utoipa::path(get, path = "/images/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "the photo", content_type = "image/*"),
        (status = 404, body = ErrorBody)))]
async fn product_image(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let found = blocking(move || Ok(state.store.current().product(&id).ok().flatten())).await;
    let Some(path) = found.ok().flatten().and_then(|p| p.product.image) else {
        return ApiError(StatusCode::NOT_FOUND, "no such product image".into()).into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mime = match path.extension().and_then(|e| e.to_str()) {
                Some("png") => "image/png",
                Some("webp") => "image/webp",
                _ => "image/jpeg",
            };
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "max-age=86400"),
                ],
                bytes,
            )
                .into_response()
        }
        Err(_) => ApiError(StatusCode::NOT_FOUND, "image file missing".into()).into_response(),
    }
}

/// The process is up: products, model, vector kinds, query cache.
#[utoipa::path(get, path = "/health", responses((status = 200, body = serde_json::Value)))]
async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let snapshot = state.store.current();
    let meta = snapshot.meta();
    let (batches, texts) = state.model.query_batcher().stats();
    Json(serde_json::json!({
        "status": "ok",
        "catalog": meta.catalog,
        "products": snapshot.len(),
        "model": meta.model,
        "vectors": meta.kinds,
        "query_cache": state.model.query_cache().map(|c| {
            let (hits, misses) = c.stats();
            serde_json::json!({"entries": c.len(), "hits": hits, "misses": misses})
        }),
        "text_encoder": {"batches": batches, "texts": texts},
    }))
}

/// Readiness, for a load balancer: 200 when the store answers (a database is
/// reachable), 503 while it does not. `/health` only says the process is up.
/// The store answers (503 while it does not, e.g. PostgreSQL down).
#[utoipa::path(get, path = "/ready",
    responses((status = 200, body = serde_json::Value), (status = 503, body = ErrorBody)))]
async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || {
        state
            .store
            .refresh()
            .map_err(store_error(StatusCode::SERVICE_UNAVAILABLE))?;
        Ok(Json(serde_json::json!({ "status": "ready" })))
    })
    .await
}

/// One stored product.
#[utoipa::path(get, path = "/api/products/{id}", params(("id" = String, Path)),
    responses((status = 200, body = crate::store::StoredProduct), (status = 404, body = ErrorBody)))]
async fn get_product(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    blocking(move || match state.store.current().product(&id) {
        Ok(Some(p)) => Ok(Json(p).into_response()),
        Ok(None) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no product {id:?}"),
        )),
        Err(e) => Err(store_error(StatusCode::INTERNAL_SERVER_ERROR)(e)),
    })
    .await
}

/// Checks the bearer token of a write request in constant time.
fn authorise(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.options.write_key else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "writes are disabled on this server: start it with --write-key-file FILE (or VITRINA_WRITE_KEY)".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = given.len() == key.len()
        && given
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong write key (Authorization: Bearer KEY)".into(),
        ))
    }
}

/// Stores an uploaded image under the store folder (named by a hash of the product id,
/// so no id can name a path) and returns its path.
fn save_upload(state: &AppState, id: &str, bytes: &[u8]) -> Result<std::path::PathBuf, ApiError> {
    decode_image(bytes).map_err(|e| match image_error(e) {
        ApiError(StatusCode::BAD_REQUEST, m) => {
            ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("image: {m}"))
        }
        other => other,
    })?;
    let ext = match image::guess_format(bytes) {
        Ok(image::ImageFormat::Png) => "png",
        Ok(image::ImageFormat::WebP) => "webp",
        _ => "jpg",
    };
    let internal = |e: std::io::Error| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let Some(dir) = state.options.uploads.clone() else {
        return Err(bad_request(
            "this server keeps its index in PostgreSQL and has no folder for uploaded images: \
             start it with --uploads DIR, or send the product without an image",
        ));
    };
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let path = dir.join(format!(
        "{:016x}.{ext}",
        crate::catalog::fnv1a64(id.as_bytes())
    ));
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(internal)?;
    std::fs::write(tmp.path(), bytes).map_err(internal)?;
    tmp.as_file().sync_all().map_err(internal)?;
    tmp.persist(&path).map_err(|e| internal(e.error))?;
    Ok(path)
}

/// One write through the store's writer (which waits for any other writer), then a
/// refresh, so this server's next request already sees it.
fn write<T>(
    state: &AppState,
    change: impl FnOnce(&mut dyn StoreWriter) -> anyhow::Result<T>,
) -> Result<T, ApiError> {
    let internal = store_error(StatusCode::INTERNAL_SERVER_ERROR);
    let mut writer = state.store.writer().map_err(&internal)?;
    let out = change(&mut *writer).map_err(&internal)?;
    writer.finish().map_err(&internal)?;
    drop(writer);
    state.store.refresh().map_err(&internal)?;
    Ok(out)
}

/// A product body: JSON (image as `image_base64`), or multipart/form-data with a
/// `product` part (the same JSON, without the image) and an `image` part (the bytes).
async fn read_product(
    headers: &HeaderMap,
    request: axum::extract::Request,
) -> Result<(ProductInput, Option<Vec<u8>>), ApiError> {
    use axum::extract::FromRequest;
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let parse = |bytes: &[u8]| {
        serde_json::from_slice::<ProductInput>(bytes)
            .map_err(|e| bad_request(format!("invalid product JSON: {e}")))
    };
    if !multipart {
        let body = Bytes::from_request(request, &())
            .await
            .map_err(|e| bad_request(format!("cannot read the body: {e}")))?;
        let mut input = parse(&body)?;
        let image = match input.image_base64.take() {
            Some(b64) => {
                use base64::Engine;
                Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| bad_request(format!("image_base64 is not base64: {e}")))?,
                )
            }
            None => None,
        };
        return Ok((input, image));
    }
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| bad_request(format!("invalid multipart body: {e}")))?;
    let (mut input, mut image) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad_request(format!("invalid multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad_request(format!("multipart part `{name}`: {e}")))?;
        match name.as_str() {
            "product" => input = Some(parse(&bytes)?),
            "image" => image = Some(bytes.to_vec()),
            other => {
                return Err(bad_request(format!(
                    "unknown multipart part `{other}`: send `product` (JSON) and optionally `image`"
                )))
            }
        }
    }
    let input = input.ok_or_else(|| bad_request("the multipart body has no `product` part"))?;
    if input.image_base64.is_some() && image.is_some() {
        return Err(bad_request(
            "give the image once: `image_base64` or the `image` part",
        ));
    }
    Ok((input, image))
}

fn put_product_blocking(
    state: &AppState,
    id: &str,
    mut input: ProductInput,
    image_bytes: Option<Vec<u8>>,
) -> Result<serde_json::Value, ApiError> {
    if input.id.as_deref().is_some_and(|given| given != id) {
        return Err(bad_request(format!(
            "the body's id {:?} differs from the URL's {id:?}",
            input.id.as_deref().unwrap_or_default()
        )));
    }
    if input.image.is_some() {
        return Err(bad_request(
            "`image` paths are not accepted over HTTP: send the image bytes as `image_base64` or a multipart `image` part",
        ));
    }
    input.id = Some(id.to_string());
    input.image_base64 = None;
    let (mut product, _) = input
        .into_product(None)
        .map_err(|e| bad_request(format!("{e:#}")))?;
    product.image = match image_bytes {
        Some(bytes) => Some(save_upload(state, id, &bytes)?),
        None => None,
    };
    let has_image = write(state, |writer| {
        let meta = writer.current().meta().clone();
        let hash = vector_hash(&product).0;
        let entries = embed_entries(
            &state.model,
            &meta,
            std::slice::from_ref(&product),
            &[hash],
            writer.current(),
            &mut Report::default(),
        )?;
        let has_image = entries[0].product.has_image;
        writer.upsert(entries)?;
        Ok(has_image)
    })?;
    Ok(serde_json::json!({ "id": id, "upserted": true, "has_image": has_image }))
}

/// Adds or replaces a product (needs the write key): JSON, or multipart with an `image`.
#[utoipa::path(put, path = "/api/products/{id}", params(("id" = String, Path)),
    request_body(content = crate::catalog::ProductInput, content_type = "application/json"),
    security(("write_key" = [])),
    responses((status = 200, body = serde_json::Value), (status = 401, body = ErrorBody),
        (status = "4XX", body = ErrorBody)))]
async fn put_product(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorise(&state, &headers)?;
    let (input, image) = read_product(&headers, request).await?;
    blocking(move || put_product_blocking(&state, &id, input, image))
        .await
        .map(Json)
}

/// Removes a product (needs the write key).
#[utoipa::path(delete, path = "/api/products/{id}", params(("id" = String, Path)),
    security(("write_key" = [])),
    responses((status = 200, body = serde_json::Value), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_product(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorise(&state, &headers)?;
    blocking(move || {
        let deleted = write(&state, |writer| writer.delete(std::slice::from_ref(&id)))?;
        if deleted.is_empty() {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no product {id:?}"),
            ));
        }
        Ok(Json(serde_json::json!({ "id": id, "deleted": true })))
    })
    .await
}

/// SIGTERM (what a process manager sends) or Ctrl-C: stop accepting, finish the
/// requests in flight, exit.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("shutting down: finishing requests in flight");
}

/// SIGHUP, the conventional "reload", reads the store's changes at once (they are
/// followed anyway); it never stops the server.
async fn reload_on_hangup(state: Arc<AppState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangup.recv().await.is_some() {
        let state = state.clone();
        let result = tokio::task::spawn_blocking(move || state.store.refresh()).await;
        match result {
            Ok(Ok(changed)) => eprintln!(
                "SIGHUP: store re-read ({})",
                if changed { "changed" } else { "no changes" }
            ),
            Ok(Err(e)) => eprintln!("SIGHUP: cannot re-read the store: {e:#}"),
            Err(e) => eprintln!("SIGHUP: {e}"),
        }
    }
}

/// The router, separate from `serve` so tests can drive it without a socket.
/// The CORS policy for `origins` (see [`ServeOptions::cors_origins`]).
fn cors(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let mut values = Vec::new();
        for origin in origins {
            let uri: axum::http::Uri = origin
                .parse()
                .ok()
                .filter(|u: &axum::http::Uri| {
                    u.scheme().is_some()
                        && u.host().is_some()
                        && matches!(u.path(), "" | "/")
                        && u.query().is_none()
                })
                .with_context(|| {
                    format!("--cors-origin {origin:?} is not an origin like https://shop.example")
                })?;
            let origin = format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("https"),
                uri.authority().map_or("", |a| a.as_str())
            );
            values.push(origin.parse().context("origin header value")?);
        }
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                axum::http::Method::GET,
                axum::http::Method::POST,
                axum::http::Method::PUT,
                axum::http::Method::DELETE,
            ])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(Duration::from_secs(600)),
    ))
}

/// The search page.
#[utoipa::path(get, path = "/", responses((status = 200, description = "the web page", content_type = "text/html")))]
async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
async fn openapi() -> Response {
    use utoipa::OpenApi;
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The API contract, generated from the handlers and types above so it cannot drift.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "vitrina", description = "Multimodal product search: text, photo or both."),
    paths(page, openapi, health, ready, observe::metrics, search_get, search_post, similar,
        facets, product_image, get_product, put_product, delete_product),
    modifiers(&WriteKey)
)]
pub struct ApiDoc;

/// The write routes' bearer key, as a security scheme.
struct WriteKey;

impl utoipa::Modify for WriteKey {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "write_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn router(state: Arc<AppState>, cors: Option<tower_http::cors::CorsLayer>) -> Router {
    let router = Router::new()
        .route("/", get(page))
        .route("/openapi.json", get(openapi))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(observe::metrics))
        .route("/api/search", get(search_get).post(search_post))
        .route("/api/facets", get(facets))
        .route("/api/products/{id}/similar", get(similar))
        .route("/images/{id}", get(product_image))
        .route(
            "/api/products/{id}",
            get(get_product).put(put_product).delete(delete_product),
        )
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route".into(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state);
    match cors {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// Serves a store with `model` on `addr` until Ctrl-C, following the store's changes.
pub fn serve(
    store: Arc<dyn Live>,
    model: Model,
    addr: SocketAddr,
    options: ServeOptions,
) -> Result<()> {
    Searcher::new(&*store.current(), &model)?; // refuse a mismatched model before listening
    let cors = cors(&options.cors_origins)?;
    let state = Arc::new(AppState {
        store,
        model,
        searches: Arc::new(tokio::sync::Semaphore::new(options.max_searches.max(1))),
        image_queries: Arc::new(tokio::sync::Semaphore::new(
            options.max_image_queries.max(1),
        )),
        options,
        metrics: observe::Metrics::new(),
    });
    let watcher = Arc::downgrade(&state);
    std::thread::spawn(move || {
        let mut failing = false;
        while let Some(state) = watcher.upgrade() {
            match state.store.refresh() {
                Ok(_) => failing = false,
                // Keep serving the last good snapshot; say so once per failure streak.
                Err(e) if !failing => {
                    failing = true;
                    eprintln!("cannot read changes to the index (still serving the last good state): {e:#}");
                }
                Err(_) => {}
            }
            drop(state);
            std::thread::sleep(REFRESH_EVERY);
        }
    });
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let listener = listener::Bounded::new(
            listener,
            state.options.max_connections,
            state.options.idle_timeout,
        );
        eprintln!(
            "serving {} products on http://{}{}",
            state.store.current().len(),
            listener.local_addr()?,
            if state.options.write_key.is_some() {
                " (write API enabled)"
            } else {
                ""
            }
        );
        tokio::spawn(reload_on_hangup(state.clone()));
        let header_timeout = state.options.header_timeout;
        connections::serve(
            listener,
            router(state, cors),
            header_timeout,
            shutdown_signal(),
        )
        .await
    })
}
