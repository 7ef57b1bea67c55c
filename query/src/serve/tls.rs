//! HTTPS without a reverse proxy (`--tls-cert FILE --tls-key FILE`): rustls with the *ring*
//! provider (pure Rust and C, nothing to install), served by axum-server, which bounds each
//! handshake in time so that a client that never finishes one holds nothing but its socket.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

/// A PEM certificate chain (the server's first) and its private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn refused(message: String) -> Error {
    Error::Refused(message)
}

impl TlsFiles {
    /// The server's TLS configuration; errors name the file and what is wrong with it.
    pub fn config(&self) -> Result<rustls::ServerConfig, Error> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect())
            .map_err(|e| {
                refused(format!(
                    "cannot read the certificate --tls-cert {}: {e}",
                    self.cert.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(refused(format!(
                "--tls-cert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                self.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| {
            refused(format!(
                "cannot read the private key --tls-key {}: {e} (a PEM key: PKCS#8, PKCS#1 or SEC1)",
                self.key.display()
            ))
        })?;
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map(|mut config| {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        })
        .map_err(|e| {
            refused(format!(
                "--tls-cert {} and --tls-key {} do not make a TLS configuration: {e}",
                self.cert.display(),
                self.key.display()
            ))
        })
    }
}

/// Serves `app` over TLS on `listener` until Ctrl-C (in-flight requests get 10 s to finish).
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    files: &TlsFiles,
    app: Router,
    ready: impl FnOnce(),
) -> Result<(), Error> {
    let config = RustlsConfig::from_config(Arc::new(files.config()?));
    listener
        .set_nonblocking(true)
        .map_err(|e| refused(format!("cannot listen: {e}")))?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let server = axum_server::from_tcp_rustls(listener, config)
        .map_err(|e| refused(format!("cannot listen: {e}")))?
        .handle(handle);
    ready();
    server
        .serve(app.into_make_service())
        .await
        .map_err(|e| refused(format!("server failed: {e}")))
}
