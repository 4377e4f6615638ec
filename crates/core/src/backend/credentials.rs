//! Credentials the application supplies through a callback (in JS: an async function), fetched
//! again by the SDK's identity cache shortly before they expire: batch jobs outlive temporary
//! credentials.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;

/// One set of credentials as the application returned it.
#[derive(Debug, Clone)]
pub struct SuppliedCredentials {
    /// The access key id (`AKIA...`, or `ASIA...` for temporary credentials).
    pub access_key_id: String,
    /// The secret key that signs requests.
    pub secret_access_key: String,
    /// The session token of temporary credentials; `None` for long-term keys.
    pub session_token: Option<String>,
    /// When they stop working; `None`: they do not expire.
    pub expiration: Option<SystemTime>,
}

/// The future a [`CredentialSource`] returns.
pub type CredentialsFuture<'a> = Pin<Box<dyn Future<Output = Result<SuppliedCredentials, String>> + Send + 'a>>;

/// Something that hands out credentials on request.
pub trait CredentialSource: Send + Sync + std::fmt::Debug + 'static {
    /// Fetches credentials (each call may return new ones).
    fn fetch(&self) -> CredentialsFuture<'_>;
}

/// A [`CredentialSource`] as the AWS SDK's credentials provider.
#[derive(Debug, Clone)]
pub struct SourceProvider(pub Arc<dyn CredentialSource>);

impl ProvideCredentials for SourceProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let c = self.0.fetch().await.map_err(CredentialsError::provider_error)?;
            if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
                return Err(CredentialsError::invalid_configuration(
                    "the credentials function returned no accessKeyId or secretAccessKey",
                ));
            }
            Ok(Credentials::new(
                c.access_key_id,
                c.secret_access_key,
                c.session_token,
                c.expiration,
                "bedrock-batch-bridge-function",
            ))
        })
    }
}
