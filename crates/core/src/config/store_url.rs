//! `store.url`: a `postgres://user:password@host:port/database?sslmode=…` URL, read into its
//! parts. Every message names `store.url` and shows the URL without its password (or does not
//! show it at all): a password never reaches an error, a log or `client.config`.

use std::path::PathBuf;

use crate::error::EngineError;

/// How the connection to the server is protected (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not checked (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is not checked (libpq's `require`).
    Require,
    /// TLS; the certificate must chain to a trusted root (any host name).
    VerifyCa,
    /// TLS; the certificate must chain to a trusted root and name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        match s {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    /// As in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The parts of a `store.url`.
#[derive(Clone, PartialEq)]
pub struct PgUrl {
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// Port; 5432 when the URL gives none.
    pub port: u16,
    /// User name (the URL must give one).
    pub user: String,
    /// Password, if the URL gives one; `Debug` never shows it.
    pub password: Option<String>,
    /// Database name; the user name when the URL gives none.
    pub database: String,
    /// `sslmode`; `prefer` when the URL gives none.
    pub ssl_mode: SslMode,
    /// `sslrootcert`: a PEM file of the roots to trust (else the system's).
    pub ssl_root_cert: Option<PathBuf>,
    /// `application_name`, as the server's `pg_stat_activity` shows it.
    pub application_name: Option<String>,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The query parameters `store.url` understands.
const PARAMETERS: &[&str] = &["sslmode", "sslrootcert", "application_name"];

impl PgUrl {
    /// Reads a URL; errors name `store.url` (and never contain the password).
    pub fn parse(url: &str) -> Result<PgUrl, EngineError> {
        let bad = |why: &str| {
            EngineError::validation(format!(
                "store.url must be a postgres://user:password@host:port/database URL: {why}"
            ))
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("it must start with postgres:// or postgresql://"))?;
        if rest.contains('#') {
            return Err(bad("it has a #fragment (a '#' in a password must be written %23)"));
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (String::new(), None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (
                    decode(user).ok_or_else(|| bad("its user name has a bad %-escape"))?,
                    // The password's own text never goes into a message.
                    Some(decode(pass).ok_or_else(|| bad("its password has a bad %-escape"))?),
                ),
                None => (decode(u).ok_or_else(|| bad("its user name has a bad %-escape"))?, None),
            },
        };
        if user.is_empty() {
            return Err(bad("it names no user (postgres://user:password@host…)"));
        }
        if hostport.contains(',') {
            return Err(bad("it names more than one host; give one"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("an IPv6 host must be written [address]"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (decode(h).ok_or_else(|| bad("its host has a bad %-escape"))?, Some(p)),
                None => (decode(hostport).ok_or_else(|| bad("its host has a bad %-escape"))?, None),
            }
        };
        if host.is_empty() {
            return Err(bad("it names no host"));
        }
        let port = match port {
            None | Some("") => 5432,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("its port must be a number from 1 to 65535, got {p:?}")))?,
        };
        let database = decode(path).ok_or_else(|| bad("its database name has a bad %-escape"))?;
        if database.contains('/') {
            return Err(bad("its path must be just the database name"));
        }
        let database = if database.is_empty() { user.clone() } else { database };
        let mut out = PgUrl {
            host,
            port,
            user,
            password,
            database,
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            application_name: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k).ok_or_else(|| bad("a parameter has a bad %-escape"))?;
            let v = decode(v).ok_or_else(|| bad(&format!("the parameter {k} has a bad %-escape")))?;
            match k.as_str() {
                "sslmode" => {
                    out.ssl_mode = SslMode::parse(&v).ok_or_else(|| {
                        EngineError::validation(format!(
                            "store.url: sslmode must be disable, prefer, require, verify-ca or verify-full, got {v:?}"
                        ))
                    })?
                }
                "sslrootcert" if !v.is_empty() => out.ssl_root_cert = Some(PathBuf::from(v)),
                "application_name" if !v.is_empty() => out.application_name = Some(v),
                "sslrootcert" | "application_name" => {}
                other => {
                    return Err(EngineError::validation(format!(
                        "store.url: unknown parameter {other:?}; the parameters it understands are {}",
                        PARAMETERS.join(", ")
                    )))
                }
            }
        }
        Ok(out)
    }

    /// `host:port`, as messages name the server.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `postgres://host:port/database`: where the store is, without user or password.
    pub fn location(&self) -> String {
        format!("postgres://{}/{}", self.host_port(), self.database)
    }

    /// The URL without its password (as `client.config` shows it).
    pub fn redacted(&self) -> String {
        let mut s = format!(
            "postgres://{}@{}/{}?sslmode={}",
            encode(&self.user),
            self.host_port(),
            encode(&self.database),
            self.ssl_mode.as_str()
        );
        if let Some(p) = &self.ssl_root_cert {
            s.push_str(&format!("&sslrootcert={}", encode(&p.display().to_string())));
        }
        if let Some(a) = &self.application_name {
            s.push_str(&format!("&application_name={}", encode(a)));
        }
        s
    }
}

/// Percent-decodes (`None`: a bad escape or bytes that are not UTF-8).
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes what a URL part cannot hold as it is.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || b == b'/' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_read_into_its_parts() {
        let u = PgUrl::parse("postgres://bob:s%40cr%23t@db.example:6543/jobs?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=etl").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.user.as_str(), u.database.as_str()),
            ("db.example", 6543, "bob", "jobs")
        );
        assert_eq!(u.password.as_deref(), Some("s@cr#t"));
        assert_eq!(u.ssl_mode, SslMode::VerifyFull);
        assert_eq!(u.ssl_root_cert.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
        assert_eq!(u.location(), "postgres://db.example:6543/jobs");
        assert!(!format!("{u:?}").contains("s@cr"), "Debug hides the password");
        assert!(!u.redacted().contains("cr%23t") && !u.redacted().contains("s@cr"));

        let u = PgUrl::parse("postgresql://alice@[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.database.as_str(), u.ssl_mode), ("::1", 5432, "alice", SslMode::Prefer));
        assert_eq!(u.host_port(), "[::1]:5432");
        assert_eq!(u.password, None);
    }

    #[test]
    fn bad_urls_are_validation_errors_that_never_show_the_password() {
        for (url, want) in [
            ("mysql://u:hunter22@h/db", "must start with postgres://"),
            ("postgres://:hunter22@h/db", "no user"),
            ("postgres://u:hunter22@/db", "no host"),
            ("postgres://u:hunter22@h:99999/db", "port"),
            ("postgres://u:hunter22@h:5432/db?sslmode=maybe", "sslmode must be"),
            ("postgres://u:hunter22@h:5432/db?sslmod=require", "unknown parameter \"sslmod\""),
            ("postgres://u:hunter22@h1,h2/db", "more than one host"),
            ("postgres://u:hun#ter22@h/db", "fragment"),
            ("postgres://u:hunter%2@h/db", "password has a bad"),
        ] {
            let e = PgUrl::parse(url).unwrap_err();
            assert_eq!(e.name, crate::ErrorName::ValidationException);
            assert!(e.message.contains(want), "{url}: {}", e.message);
            assert!(e.message.contains("store.url"), "{}", e.message);
            assert!(!e.message.contains("hunter") && !e.message.contains("ter22"), "{}", e.message);
        }
    }
}
