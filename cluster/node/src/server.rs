//! Serving one listener: each connection through hyper-util, so a client that trickles
//! its headers (or its TLS handshake) is cut off after a deadline (axum::serve has no such
//! timeout), and every request knows the address it came from (for per-client limits) and,
//! under mutual TLS, the client's certificate (so the peer plane can tie a node's name to
//! it).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use inkling_replication::peer_api::PeerCertificate;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long in-flight requests may finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish.
/// A connection whose request head (or, with `tls`, TLS handshake) has not fully arrived
/// within `header_read_timeout` is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = Connection {
                        builder: builder.clone(),
                        watcher: graceful.watcher(),
                        app: app.clone(),
                        remote,
                    };
                    tokio::spawn(connection.serve(stream, tls.clone(), header_read_timeout));
                }
                // Out of file descriptors, say: wait a moment rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open {SHUTDOWN_GRACE:?} after shutdown began; closing them");
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    app: Router,
    remote: SocketAddr,
}

impl Connection {
    /// Serves the connection, after a TLS handshake when `tls` is set. A client that goes
    /// away, or fails or stalls its handshake, is no error of the node's.
    async fn serve(self, stream: TcpStream, tls: Option<TlsAcceptor>, handshake_timeout: Duration) {
        let Some(acceptor) = tls else {
            return self.serve_io(stream, None).await;
        };
        let Ok(Ok(stream)) = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
        else {
            return;
        };
        let certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|certificate| PeerCertificate(certificate.clone().into_owned()));
        self.serve_io(stream, certificate).await;
    }

    async fn serve_io<IO>(self, io: IO, certificate: Option<PeerCertificate>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            watcher,
            app,
            remote,
        } = self;
        // Every request knows the connection's remote address, and its client certificate.
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            if let Some(certificate) = &certificate {
                request.extensions_mut().insert(certificate.clone());
            }
            app.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let _ = watcher.watch(connection).await;
    }
}
