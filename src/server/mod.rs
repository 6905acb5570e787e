//! The HTTP server: a JSON search API and a small web page for shoppers.
//!
//! - `GET  /api/search?q=..&mode=..&k=..&diversify=..&lambda=..&alpha=..` text search
//! - `POST /api/search?...` with an image (JPEG/PNG/WebP bytes) as the body: search by
//!   image, with `q` too for a combined query (`text_weight` sets the mix)
//! - `GET  /images/{id}` a product's image, `GET /health`, `GET /` the page
//!
//! Embedding and ranking are CPU-bound, so each request runs on tokio's blocking pool
//! and the async workers stay free to accept connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query as UrlQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::encoder::preprocess::decode_image;
use crate::encoder::Model;
use crate::index::Index;
use crate::search::{diversify, Diversify, Mode, Query, Ranking, ResultRow, Searcher};

const PAGE: &str = include_str!("page.html");
/// Largest accepted upload: a phone photo fits comfortably.
const MAX_UPLOAD: usize = 20 * 1024 * 1024;
const MAX_K: usize = 200;

struct AppState {
    index: Index,
    model: Model,
    /// Product id -> position, for image requests (a page asks for dozens at once).
    by_id: std::collections::HashMap<String, usize>,
}

/// Search parameters shared by the GET and POST forms.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    mode: Option<String>,
    k: Option<usize>,
    diversify: Option<String>,
    lambda: Option<f32>,
    alpha: Option<f32>,
    text_weight: Option<f32>,
}

#[derive(Serialize)]
struct SearchResponse {
    took_ms: f64,
    mode: Mode,
    diversify: String,
    hits: Vec<ResultRow>,
}

/// An error as a JSON body with the right status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

impl SearchParams {
    fn ranking(&self) -> Result<Ranking, ApiError> {
        let mode = match self.mode.as_deref().unwrap_or("description") {
            "description" | "text" => Mode::Description,
            "image" => Mode::Image,
            "average" => Mode::Average,
            other => {
                return Err(bad_request(format!(
                    "unknown mode {other:?}: use description, image or average"
                )))
            }
        };
        let k = self.k.unwrap_or(24);
        if k == 0 || k > MAX_K {
            return Err(bad_request(format!("k must be within 1..={MAX_K}")));
        }
        let diversify = match self.diversify.as_deref().unwrap_or("none") {
            "none" | "" => Diversify::None,
            "kmeans" => Diversify::KMeans {
                clusters: diversify::CLUSTERS,
                seed: 0,
            },
            "mmr" => Diversify::Mmr {
                lambda: self.lambda.unwrap_or(0.7),
            },
            other => {
                return Err(bad_request(format!(
                    "unknown diversify {other:?}: use none, kmeans or mmr"
                )))
            }
        };
        let alpha = self.alpha.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&alpha) {
            return Err(bad_request("alpha must be within 0..1"));
        }
        Ok(Ranking {
            mode,
            k,
            alpha,
            diversify,
        })
    }
}

fn run_search(
    state: &AppState,
    params: &SearchParams,
    image: Option<Bytes>,
) -> Result<SearchResponse, ApiError> {
    let started = Instant::now();
    let ranking = params.ranking()?;
    let image = match image {
        Some(bytes) if !bytes.is_empty() => {
            Some(decode_image(&bytes).map_err(|e| bad_request(format!("{e:#}")))?)
        }
        _ => None,
    };
    let text = params.q.clone().filter(|q| !q.trim().is_empty());
    if text.is_none() && image.is_none() {
        return Err(bad_request(
            "give a text query (q) or an image (request body)",
        ));
    }
    let query = Query {
        text,
        image,
        text_weight: params.text_weight.unwrap_or(0.5),
    };
    let searcher = Searcher::new(&state.index, &state.model)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    let hits = searcher
        .search(&query, &ranking)
        .map_err(|e| bad_request(format!("{e:#}")))?;
    Ok(SearchResponse {
        took_ms: started.elapsed().as_secs_f64() * 1e3,
        mode: ranking.mode,
        diversify: ranking.diversify.label(),
        hits,
    })
}

async fn blocking_search(
    state: Arc<AppState>,
    params: SearchParams,
    image: Option<Bytes>,
) -> Result<Json<SearchResponse>, ApiError> {
    tokio::task::spawn_blocking(move || run_search(&state, &params, image))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map(Json)
}

async fn search_get(
    State(state): State<Arc<AppState>>,
    UrlQuery(params): UrlQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    blocking_search(state, params, None).await
}

async fn search_post(
    State(state): State<Arc<AppState>>,
    UrlQuery(params): UrlQuery<SearchParams>,
    body: Bytes,
) -> Result<Json<SearchResponse>, ApiError> {
    blocking_search(state, params, Some(body)).await
}

async fn product_image(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let found = state.by_id.get(&id).map(|&i| state.index.product(i));
    let Some(path) = found.and_then(|p| p.product.image.clone()) else {
        return (StatusCode::NOT_FOUND, "no such product image").into_response();
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
        Err(_) => (StatusCode::NOT_FOUND, "image file missing").into_response(),
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let h = &state.index.header;
    Json(serde_json::json!({
        "status": "ok",
        "catalog": h.catalog,
        "products": h.products.len(),
        "model": h.model,
        "vectors": state.index.kinds(),
    }))
}

/// The router, separate from `serve` so tests can drive it without a socket.
fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/health", get(health))
        .route("/api/search", get(search_get).post(search_post))
        .route("/images/{id}", get(product_image))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .with_state(state)
}

/// Serves `index` with `model` on `addr` until Ctrl-C.
pub fn serve(index: Index, model: Model, addr: SocketAddr) -> Result<()> {
    Searcher::new(&index, &model)?; // refuse a mismatched model before listening
    let by_id = index
        .header
        .products
        .iter()
        .enumerate()
        .map(|(i, p)| (p.product.id.clone(), i))
        .collect();
    let state = Arc::new(AppState {
        index,
        model,
        by_id,
    });
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!(
            "serving {} products on http://{}",
            state.index.len(),
            listener.local_addr()?
        );
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("server error")
    })
}
