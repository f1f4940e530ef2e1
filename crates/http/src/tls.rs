//! TLS with a certificate generated at start (rcgen) and rustls on the `ring` provider.
//!
//! The serving role generates a [`TlsIdentity`]; the client trusts exactly that certificate
//! ([`ClientTls`]), so no system trust store and no network are involved. The harness passes
//! [`TlsIdentity::certificate_der`] from the serving process to the client process.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::{HttpError, Protocol, ServerProtocol};

/// The name the generated certificate is issued for, and what clients verify by default.
pub const SERVER_NAME: &str = "localhost";

/// A certificate and its private key, for a TLS server.
#[derive(Clone)]
pub struct TlsIdentity {
    certificate_der: Vec<u8>,
    key_pkcs8_der: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificate_der_bytes", &self.certificate_der.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A fresh self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
    ///
    /// # Errors
    /// [`HttpError::Tls`] if key generation fails.
    pub fn generate() -> Result<TlsIdentity, HttpError> {
        let names = vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| HttpError::Tls(format!("cannot generate a certificate: {e}")))?;
        Ok(TlsIdentity {
            certificate_der: certified.cert.der().to_vec(),
            key_pkcs8_der: certified.signing_key.serialize_der(),
        })
    }

    /// An identity from a DER certificate and a PKCS#8 DER key.
    pub fn from_der(certificate_der: Vec<u8>, key_pkcs8_der: Vec<u8>) -> TlsIdentity {
        TlsIdentity {
            certificate_der,
            key_pkcs8_der,
        }
    }

    /// The certificate, DER-encoded: what a client must trust.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The private key, PKCS#8 DER: what a second serving process of the same identity needs.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        &self.key_pkcs8_der
    }

    /// Client settings that trust this certificate, with session resumption off.
    pub fn client(&self) -> ClientTls {
        ClientTls {
            trusted_certificate_der: self.certificate_der.clone(),
            server_name: SERVER_NAME.to_owned(),
            resumption: false,
        }
    }

    /// The rustls server configuration offering `protocol` by ALPN.
    pub(crate) fn server_config(&self, protocol: ServerProtocol) -> Result<Arc<rustls::ServerConfig>, HttpError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8_der.clone()));
        let certs = vec![CertificateDer::from(self.certificate_der.clone())];
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| HttpError::Tls(format!("unusable certificate or key: {e}")))?;
        config.alpn_protocols = protocol.alpn();
        Ok(Arc::new(config))
    }
}

/// What a TLS client trusts and how it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// The one certificate accepted (DER), usually [`TlsIdentity::certificate_der`].
    pub trusted_certificate_der: Vec<u8>,
    /// The name verified against the certificate (default [`SERVER_NAME`]).
    pub server_name: String,
    /// Resume sessions (TLS 1.3 tickets) on new connections. Off by default, so that with
    /// `keep_alive = false` every connection pays a full handshake.
    pub resumption: bool,
}

/// A ready rustls client: configuration plus the verified name.
#[derive(Clone)]
pub(crate) struct TlsClient {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl ClientTls {
    /// The rustls client configuration asking for `protocol` by ALPN.
    pub(crate) fn build(&self, protocol: Protocol) -> Result<TlsClient, HttpError> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.trusted_certificate_der.clone()))
            .map_err(|e| HttpError::Tls(format!("unusable trusted certificate: {e}")))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![protocol.alpn().to_vec()];
        if !self.resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        let server_name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| HttpError::Tls(format!("bad server name `{}`: {e}", self.server_name)))?;
        Ok(TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
