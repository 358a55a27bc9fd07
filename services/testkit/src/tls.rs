//! Certificates for servers that speak TLS: a private CA of the test's own
//! and a server certificate it signed, for `localhost` and `127.0.0.1`.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::servers::{chown_to_postgres, scratch_dir};

/// PEM files in a scratch directory, removed on drop: `ca.pem`,
/// `server.pem` and `server.key` (readable by the PostgreSQL server).
pub struct TlsFiles {
    dir: PathBuf,
    ca_pem: String,
}

impl TlsFiles {
    /// A new CA and a server certificate signed by it.
    pub fn generate() -> TlsFiles {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("self-sign the CA");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(names)
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("sign the server certificate");
        let dir = scratch_dir("tls");
        let files = TlsFiles {
            dir,
            ca_pem: ca.pem(),
        };
        write(&files.ca_file(), &files.ca_pem, 0o644);
        write(&files.cert_file(), &server.pem(), 0o644);
        // PostgreSQL refuses a key that others may read.
        write(&files.key_file(), &key.serialize_pem(), 0o600);
        chown_to_postgres(&files.dir);
        files
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &[u8] {
        self.ca_pem.as_bytes()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

fn write(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).expect("write a PEM file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("set a PEM file's mode");
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
