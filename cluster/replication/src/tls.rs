//! Mutual TLS from the cluster's certificate authority, for the actor mesh and the peer
//! plane: this node's certificate chain and key, and the authority every peer's
//! certificate must chain to. A certificate names its node by the node's name (a DNS
//! subject alternative name such as `node-2`).
//!
//! The mesh checks the name on the dialling side: a node dialling `node-3` accepts only a
//! certificate naming `node-3`. The peer plane checks it on the answering side: a request
//! signed as `node-3` must come over a connection whose client certificate names
//! `node-3` (see `peer_api`), so node-2's certificate cannot act as node-3 there either.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::verify_server_cert_signed_by_trust_anchor;
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// PEM files for mutual TLS between node servers: this node's certificate chain and key, and
/// the certificate authority every peer's certificate must chain to. A certificate names
/// its node by the node's name (a DNS subject alternative name such as `node-2`): a node
/// dialling `node-3` accepts only a certificate naming `node-3`.
#[derive(Debug, Clone)]
pub struct MeshTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// The certificate files, read and checked once.
pub struct ClusterTls {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
}

impl ClusterTls {
    pub fn load(files: &MeshTls) -> anyhow::Result<Self> {
        let certs = read_pem_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .with_context(|| format!("cannot read a private key from {}", files.key.display()))?;
        let mut roots = RootCertStore::empty();
        for ca in read_pem_certs(&files.ca)? {
            roots.add(ca).with_context(|| {
                format!("{} is not a usable CA certificate", files.ca.display())
            })?;
        }
        Ok(Self {
            certs,
            key,
            roots: Arc::new(roots),
        })
    }

    /// Accepts only clients whose certificate chains to the cluster's authority.
    pub fn acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
                .build()
                .context("cannot build the TLS client verifier")?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("no TLS protocol version in common")?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .context("the TLS certificate and key do not match")?;
        Ok(TlsAcceptor::from(Arc::new(server)))
    }

    /// For the mesh: the server's certificate must name the node dialled.
    pub fn mesh_connector(&self) -> anyhow::Result<TlsConnector> {
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("no TLS protocol version in common")?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .context("the TLS certificate and key do not match")?;
        Ok(TlsConnector::from(Arc::new(client)))
    }

    /// For the peer plane's HTTP client: peers are dialled by address, so the server's
    /// certificate must chain to the cluster's authority, whatever node it names; the
    /// answering side ties the caller's name to its certificate.
    pub fn peer_client(&self) -> anyhow::Result<ClientConfig> {
        let provider = CryptoProvider::get_default().cloned().unwrap_or_else(|| {
            Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider())
        });
        let verifier = Arc::new(ClusterAuthority {
            roots: self.roots.clone(),
            provider: provider.clone(),
        });
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("no TLS protocol version in common")?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .context("the TLS certificate and key do not match")
    }
}

/// The crypto every TLS configuration of the node uses, named rather than left to a
/// process-wide default: two providers are linked in (reqwest brings ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider())
}

/// Whether the certificate (DER) names the node `name`.
pub fn certificate_names(certificate: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(name) = ServerName::try_from(name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(certificate)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

/// Trusts a server certificate that chains to the cluster's authority.
#[derive(Debug)]
struct ClusterAuthority {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ClusterAuthority {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn read_pem_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds a malformed certificate", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
    Ok(certs)
}
