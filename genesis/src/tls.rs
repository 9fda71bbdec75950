//! Certificates for the nodes' HTTP APIs: a consortium CA and one certificate per node.
//!
//! `interpool-genesis localnet` uses [`Ca::generate`] and [`Ca::issue`]: the CA signs each
//! node's certificate and is then forgotten (its key is never written), so nobody can issue
//! another certificate for the local network later. A real consortium brings its own: any
//! PEM certificate chain and key named by `[rpc] tls_cert` and `tls_key` in each node's
//! config, and its CA's certificate given to the clients (`interpool-wallet --ca`).

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::files::write_private;

/// A certificate authority that lives only while certificates are issued.
pub struct Ca {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Ca {
    /// A new CA named `name` (ECDSA P-256).
    pub fn generate(name: &str) -> Result<Ca> {
        let key = KeyPair::generate().context("generate the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params
            .self_signed(&key)
            .context("sign the CA certificate")?;
        Ok(Ca { key, cert })
    }

    /// The CA's certificate (PEM), for the clients.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes a certificate for `names` (host names or IP addresses) and its key into
    /// `cert` and `key` (the key owner-only).
    pub fn issue(&self, common_name: &str, names: &[&str], cert: &Path, key: &Path) -> Result<()> {
        let node_key = KeyPair::generate().context("generate a node's TLS key")?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .with_context(|| format!("certificate names {names:?}"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        // Strict X.509 checkers (Python 3.13's, for one) want the issuer named by key id.
        params.use_authority_key_identifier_extension = true;
        let issued = params
            .signed_by(&node_key, &self.cert, &self.key)
            .context("sign a node's certificate")?;
        std::fs::write(cert, issued.pem())
            .with_context(|| format!("cannot write {}", cert.display()))?;
        write_private(key, node_key.serialize_pem().as_bytes())
    }
}
