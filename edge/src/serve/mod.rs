//! `edge serve`: the board's web page and HTTP API over the same pipeline as `edge --file`.
//!
//! The socket is bound first and the models load behind it, so `GET /healthz` answers 503 until
//! they have loaded (and systemd hears READY then). Analyses run on a blocking thread each, at
//! most [`Limits::workers`] at a time with at most [`Limits::queue`] more waiting; beyond that an
//! upload gets 503 with `Retry-After` at once, so memory stays bounded under any load. The page is
//! [`page`], the routes [`api`], the counters [`stats`].

pub mod api;
pub mod auth;
pub mod page;
pub mod stats;

use crate::infer::pipeline::Pipeline;
use crate::service::Notifier;
use anyhow::{bail, Context, Result};
use auth::Token;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How much of the board one server may take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Analyses running at once (each on a core).
    pub workers: usize,
    /// Uploads waiting for a worker; one more is turned away with 503.
    pub queue: usize,
    /// Largest request body, in bytes.
    pub max_upload: usize,
    /// Open connections; more wait in the listen backlog.
    pub connections: usize,
    /// A client must send its request head, and then its body, within this time.
    pub client_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            workers: 1,
            queue: 8,
            max_upload: 20 << 20,
            connections: 64,
            client_timeout: Duration::from_secs(30),
        }
    }
}

/// The state every request sees.
pub struct Server {
    /// Set once the models have loaded.
    pipeline: OnceLock<Pipeline>,
    /// Admission: workers + queue permits, taken without waiting.
    admitted: Semaphore,
    /// Workers: taken in turn by the admitted uploads.
    running: Semaphore,
    stats: Mutex<stats::Stats>,
    limits: Limits,
}

impl Server {
    pub fn new(limits: Limits) -> Server {
        Server {
            pipeline: OnceLock::new(),
            admitted: Semaphore::new(limits.workers + limits.queue),
            running: Semaphore::new(limits.workers),
            stats: Mutex::new(stats::Stats::default()),
            limits,
        }
    }

    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.get()
    }

    /// Changes the counters; a panic elsewhere while they were held does not lose them.
    pub fn count<T>(&self, f: impl FnOnce(&mut stats::Stats) -> T) -> T {
        f(&mut self.stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// Only a loopback address may be served without a token, so a board is never opened to its
/// network by accident.
pub fn check_listen(addr: SocketAddr, token: Option<&Token>) -> Result<()> {
    if !addr.ip().is_loopback() && token.is_none() {
        bail!(
            "--listen {addr}: not a loopback address, which needs --token-file FILE (the token \
             programs send as `Authorization: Bearer` and people type on the login page)"
        );
    }
    Ok(())
}

/// Serves on `listen` until SIGTERM or SIGINT, loading the models with `load` behind the bound
/// socket; with a `token`, every route but `/healthz` and the login needs it. `on_listening`
/// hears the bound address (port 0 picks a free port). In-flight requests finish before it
/// returns; a failure to bind or to load the models is an error.
pub fn run(
    listen: SocketAddr,
    limits: Limits,
    token: Option<Token>,
    load: impl FnOnce() -> Result<Pipeline> + Send + 'static,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    check_listen(listen, token.as_ref())?;
    // One blocking thread per worker and one for the model loader: a pool that grew a thread (and
    // with it a malloc arena) whenever an analysis began before the last one's thread was idle
    // again grew the server's memory under load.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(limits.workers + 1)
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(listen).await.with_context(|| format!("--listen {listen}"))?;
        on_listening(listener.local_addr()?);
        let server = Arc::new(Server::new(limits));
        let loader = {
            let server = server.clone();
            tokio::task::spawn_blocking(move || {
                let pipeline = load()?;
                let _ = server.pipeline.set(pipeline);
                Ok::<_, anyhow::Error>(())
            })
        };
        let notifier = Notifier::from_env()?.map(Arc::new);
        if let Some(n) = notifier.clone() {
            // The pings say the runtime still turns; an analysis runs on a thread of its own.
            if let Some(every) = n.watchdog_interval() {
                tokio::spawn(async move {
                    let mut interval = tokio::time::interval(every);
                    loop {
                        interval.tick().await;
                        let _ = n.watchdog();
                    }
                });
            }
        }
        let mut loaded = std::pin::pin!(loader);
        let mut stop = std::pin::pin!(stop_signal()?);
        let app = TowerToHyperService::new(api::router(server.clone(), token.map(Arc::new)));
        let connections = Arc::new(Semaphore::new(limits.connections));
        let graceful = GracefulShutdown::new();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                joined = &mut loaded, if server.pipeline().is_none() => {
                    joined.context("the model loader panicked")??;
                    if let Some(n) = &notifier {
                        n.ready()?;
                    }
                }
                permit = connections.clone().acquire_owned() => {
                    let permit = permit.context("connection limit closed")?;
                    let (stream, _) = tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            // Out of file descriptors and the like: the next accept may succeed.
                            Err(_) => continue,
                        },
                    };
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.client_timeout)
                        .serve_connection(TokioIo::new(stream), app.clone());
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                        drop(permit);
                    });
                }
            }
        }
        // New connections are refused from here on.
        drop(listener);
        if let Some(n) = &notifier {
            let _ = n.stopping();
        }
        // In-flight requests finish; idle connections close at once.
        tokio::time::timeout(limits.client_timeout * 2, graceful.shutdown())
            .await
            .context("connections still open after the shutdown deadline")?;
        Ok(())
    })
}

/// Resolves at the first SIGTERM or SIGINT.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}
