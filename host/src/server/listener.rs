//! Accepting connections for `cordon serve`, with the limits a server facing the internet
//! needs and `axum::serve` does not set.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never runs: a client
//! that opened a connection and sent nothing, or half a request head, held it forever, and
//! enough of them used up the process's file descriptors, which the run history and the
//! connectors' own HTTP clients need too. Here every connection gets
//! [`ServerConfig::client_timeout`] to send each request head (which also closes keep-alive
//! connections left idle that long), and its writes may stall as long on a client that stops
//! reading its answer ([`WriteStallLimit`]). At most [`ServerConfig::max_connections`] are
//! open at once; beyond that the server stops accepting and new connections wait in the
//! kernel's listen backlog instead of being refused. A slow request *body* is bounded in the
//! trigger handler, which can answer 408 for it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::ServerConfig;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, asks every
/// open connection to finish the request it is on, and returns once they all have. (Callers
/// bound that wait: a request waiting for a workflow's Response can take long.)
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let counts = config.connections.clone();
    let connections = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.client_timeout);
    let mut saturated = false;
    tokio::pin!(shutdown);
    loop {
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => {
                saturated = false;
                permit
            }
            Err(_) => {
                if !saturated {
                    saturated = true;
                    counts.limit_reached.inc();
                    tracing::warn!(
                        max_connections = config.max_connections,
                        "every connection the server may hold is open; new ones wait until one closes \
                         (raise --max-connections if this is ordinary load)"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                }
            }
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) if is_about_one_connection(&error) => continue,
                Err(error) => {
                    // Out of file descriptors or memory: accepting again at once would spin.
                    tracing::error!(%error, "cannot accept a connection; trying again in 100 ms");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        // hyper writes an answer's head and body together; Nagle's algorithm would only hold
        // the last segment back waiting for an acknowledgement.
        let _ = stream.set_nodelay(true);
        counts.accepted.inc();
        counts.open.inc();
        let stream = WriteStallLimit::new(stream, config.client_timeout);
        let connection = connections
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone())));
        let counts = counts.clone();
        tokio::spawn(async move {
            // Errors here are the client's (it went away, or timed out sending its request).
            if let Err(error) = connection.await {
                if is_client_too_slow(&error) {
                    counts.clients_timed_out.inc();
                }
                tracing::debug!(%error, "connection ended with an error");
            }
            counts.open.dec();
            drop(permit);
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// Whether a connection ended because its client was slower than `--client-timeout`: hyper's
/// header read timeout, or a write that stalled ([`WriteStallLimit`]).
fn is_client_too_slow(error: &hyper::Error) -> bool {
    if error.is_timeout() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A connection whose writes may stall for at most `limit`. A client that sends a request and
/// then stops reading fills the socket's buffers, after which every write waits; hyper has no
/// write timeout, so without this the connection (and the answer it holds, up to a Response
/// action's 32 MiB) stayed until the client went away. The timer runs only while a write
/// waits and starts again after any progress.
#[derive(Debug)]
pub struct WriteStallLimit {
    stream: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteStallLimit {
    pub fn new(stream: TcpStream, limit: Duration) -> WriteStallLimit {
        WriteStallLimit {
            stream,
            limit,
            stalled: None,
        }
    }

    /// What a write's poll gives, unless it would wait past `limit` since the last progress:
    /// then an error that ends the connection.
    fn limited<T>(&mut self, outcome: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read none of its answer for {} s (--client-timeout)",
                    limit.as_secs_f64()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteStallLimit {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteStallLimit {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.limited(outcome, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.limited(outcome, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.stream).poll_flush(cx);
        self.limited(outcome, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Errors of `accept` that concern only the connection being accepted, after which the next
/// `accept` can succeed at once.
fn is_about_one_connection(error: &io::Error) -> bool {
    use io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
    )
}

/// How many connections the server may really hold: `wanted`, unless the process's limit on
/// open files leaves less than half of it for everything else (the run history, cached
/// artifacts, connectors' outbound connections). Raises the soft limit to the hard one first,
/// as servers commonly do, since the soft default (often 1,024) is a relic of `select`.
pub fn usable_connections(wanted: usize) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current;
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            },
        )
        .is_ok()
    {
        soft = Some(maximum);
    }
    let Some(soft) = soft else {
        return wanted;
    };
    let allowed = usize::try_from(soft / 2).unwrap_or(usize::MAX).max(1);
    if wanted > allowed {
        tracing::warn!(
            wanted,
            allowed,
            open_files_limit = soft,
            "--max-connections lowered to half the open-files limit (ulimit -n), so that the run \
             history and connectors keep descriptors to work with"
        );
        allowed
    } else {
        wanted
    }
}
