//! The actor mesh's listener under mutual TLS, and the check that ties an accepted session
//! to its certificate.
//!
//! ractor_cluster's own listener hands a TLS connection to its session without telling
//! anyone whose certificate it carried, and the session learns the peer's node name only
//! in its handshake. So under TLS the node accepts mesh connections itself: it completes
//! the TLS handshake, remembers the client certificate by the connection's peer address,
//! and hands the stream to the node server. When a session authenticates, [`NameCheck`]
//! stops it unless that certificate names the node the peer said it is: node-2's
//! certificate cannot open a session as node-3. (Dialled sessions are checked by the TLS
//! server name instead; see `mesh::dial`.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::ActorRef;
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NetworkStream, NodeEventSubscription, NodeServerMessage};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::CertificateDer;

use crate::tls::certificate_names;

/// How long a peer may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Client certificates of accepted connections, by peer address as ractor_cluster
/// reports it.
#[derive(Clone, Default)]
pub(crate) struct AcceptedCertificates(Arc<Mutex<HashMap<String, CertificateDer<'static>>>>);

/// Accepts mesh connections until the task is aborted, each after a TLS handshake.
pub(crate) async fn accept_forever(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    server: ActorRef<NodeServerMessage>,
    certificates: AcceptedCertificates,
) {
    loop {
        let (stream, peer_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a mesh connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let server = server.clone();
        let certificates = certificates.clone();
        // A slow handshake must not hold up the next connection.
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(local_addr) = stream.local_addr() else {
                return;
            };
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first());
            if let Some(certificate) = certificate {
                certificates
                    .0
                    .lock()
                    .insert(peer_addr.to_string(), certificate.clone().into_owned());
            }
            let stream = NetworkStream::TlsServer {
                peer_addr,
                local_addr,
                stream,
            };
            let _ = server.cast(NodeServerMessage::ConnectionOpened {
                stream: Box::new(stream),
                is_server: true,
            });
        });
    }
}

/// Stops an accepted session whose peer's certificate does not name the node it says it
/// is.
pub(crate) struct NameCheck(pub(crate) AcceptedCertificates);

impl NodeEventSubscription for NameCheck {
    fn node_session_opened(&self, _session: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, session: NodeServerSessionInformation) {
        self.0.0.lock().remove(&session.peer_addr);
    }

    fn node_session_authenticated(&self, session: NodeServerSessionInformation) {
        if !session.is_server {
            return;
        }
        let Some(name) = session.peer_name.as_ref().map(|name| name.name.clone()) else {
            return;
        };
        // ractor_cluster names a node `name@host`.
        let node = name.split_once('@').map_or(name.as_str(), |(node, _)| node);
        let named = self
            .0
            .0
            .lock()
            .get(&session.peer_addr)
            .is_some_and(|certificate| certificate_names(certificate, node));
        if !named {
            inkling_ops::metrics::PEER_REFUSALS
                .with_label_values(&["mesh"])
                .inc();
            tracing::warn!(
                node,
                peer = session.peer_addr,
                "mesh session whose certificate names another node closed"
            );
            session
                .actor
                .stop(Some(format!("the certificate does not name {node}")));
        }
    }
}
