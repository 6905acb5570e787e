//! Serving HTTP on the bounded listener: hyper's connection builder, with a time limit
//! on reading each request's headers, and graceful shutdown.
//!
//! axum's own `serve` sets no timer, so a client trickling a header one byte at a time
//! (slowloris) kept its connection slot for ever: each byte reset the idle timer. hyper
//! has the right setting (`header_read_timeout`), so this drives connections the way
//! `axum::serve` does, with that setting on.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use axum::serve::Listener as _;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use super::listener::Bounded;

/// Answers connections from `listener` with `app` until `shutdown` completes, then stops
/// accepting and waits for the requests in flight.
pub async fn serve(
    mut listener: Bounded,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            (io, _addr) = listener.accept() => {
                let service = TowerToHyperService::new(app.clone());
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that goes away or times out ends its own connection only.
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
