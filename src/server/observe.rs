//! What an operator watches: `GET /metrics` in the Prometheus / OpenMetrics text format
//! (requests by route, method and status; latency histograms by route; requests in
//! flight; products served; query cache), and one access-log line per request (tracing
//! target `vitrina::access`; `VITRINA_LOG_FORMAT=json` for JSON lines). One middleware
//! observes every request for both, so they cannot disagree.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::AppState;

/// The tracing target of access-log lines.
pub const ACCESS_LOG: &str = "vitrina::access";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route pattern (`/api/products/{id}`), never the raw path: ids would make
    /// one series per product.
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
    products: Gauge,
    cache_entries: Gauge,
    cache_hits: Gauge,
    cache_misses: Gauge,
    encoder_batches: Gauge,
    encoder_texts: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vitrina");
        let requests = Family::<RequestLabels, Counter>::default();
        // 1 ms to about 16 s, doubling.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        let (in_flight, products) = (Gauge::default(), Gauge::default());
        let (cache_entries, cache_hits, cache_misses) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        let (encoder_batches, encoder_texts) = (Gauge::default(), Gauge::default());
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being answered",
            in_flight.clone(),
        );
        registry.register(
            "products",
            "Products in the index being served",
            products.clone(),
        );
        registry.register(
            "query_cache_entries",
            "Text queries whose vectors are cached",
            cache_entries.clone(),
        );
        registry.register(
            "query_cache_hits",
            "Text queries answered from the cache since start",
            cache_hits.clone(),
        );
        registry.register(
            "query_cache_misses",
            "Text queries encoded since start",
            cache_misses.clone(),
        );
        registry.register(
            "text_encoder_batches",
            "Batches of text queries encoded since start (queries asked together share one)",
            encoder_batches.clone(),
        );
        registry.register(
            "text_encoder_texts",
            "Text queries encoded since start, over all batches",
            encoder_texts.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            products,
            cache_entries,
            cache_hits,
            cache_misses,
            encoder_batches,
            encoder_texts,
        }
    }
}

/// Counts a request in flight until dropped: also when the client goes away mid-request
/// and the handler's future is dropped.
struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The middleware: metrics and the access log for every request.
pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = request.method().to_string();
    // The path without the query string: queries are the shoppers' words.
    let path = request.uri().path().to_string();
    let metrics = &state.metrics;
    metrics.in_flight.inc();
    let in_flight = InFlight(metrics.in_flight.clone());
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
            method: method.clone(),
        })
        .observe(seconds);
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.clone(),
            status,
        })
        .inc();
    tracing::info!(
        target: ACCESS_LOG,
        method,
        path,
        route,
        status,
        ms = (seconds * 1e4).round() / 10.0,
        "request"
    );
    response
}

/// Prometheus / OpenMetrics text: requests, latencies, in flight, products, query cache.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "metrics",
    content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    m.products.set(state.store.current().len() as i64);
    if let Some(cache) = state.model.query_cache() {
        let (hits, misses) = cache.stats();
        m.cache_entries.set(cache.len() as i64);
        m.cache_hits.set(hits as i64);
        m.cache_misses.set(misses as i64);
    }
    let (batches, texts) = state.model.query_batcher().stats();
    m.encoder_batches.set(batches as i64);
    m.encoder_texts.set(texts as i64);
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &m.registry) {
        return super::ApiError(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
        .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
