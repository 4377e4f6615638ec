//! SigV4 on the control plane and the runtime, through the real AWS SDK for Rust on 127.0.0.1:
//! the emulator's keys pass, other keys, secrets and clocks get AWS's 403 errors.

use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_sdk_bedrock::error::ProvideErrorMetadata;
use aws_smithy_async::time::{SharedTimeSource, StaticTimeSource};
use bedrock_batch_emulator::{Emulator, EmulatorOptions};

async fn bedrock(emu: &Emulator, key: &str, secret: &str, clock: Option<SystemTime>) -> aws_sdk_bedrock::Client {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let creds = aws_sdk_bedrock::config::Credentials::new(key, secret, None, None, "test");
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(emu.region.clone()))
        .credentials_provider(creds)
        .load()
        .await;
    let mut conf = aws_sdk_bedrock::config::Builder::from(&shared)
        .endpoint_url(&emu.endpoints.bedrock)
        .retry_config(aws_sdk_bedrock::config::retry::RetryConfig::disabled());
    if let Some(t) = clock {
        conf = conf.time_source(SharedTimeSource::new(StaticTimeSource::new(t)));
    }
    aws_sdk_bedrock::Client::from_conf(conf.build())
}

/// (HTTP status, error code) of a failed ListModelInvocationJobs.
async fn refusal(client: &aws_sdk_bedrock::Client) -> (u16, String) {
    let err = client.list_model_invocation_jobs().send().await.expect_err("refused");
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
    (status, err.code().unwrap_or_default().to_string())
}

#[tokio::test]
async fn the_emulators_own_credentials_are_accepted_and_others_refused_as_aws_refuses_them() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let ok = bedrock(&emu, &emu.access_key_id, &emu.secret_access_key, None).await;
    assert!(ok.list_model_invocation_jobs().send().await.is_ok());

    let unknown = bedrock(&emu, "AKIDNOTTHEEMULATORS1", &emu.secret_access_key, None).await;
    assert_eq!(refusal(&unknown).await, (403, "UnrecognizedClientException".to_string()));
    let wrong_secret = bedrock(&emu, &emu.access_key_id, "not-the-secret", None).await;
    assert_eq!(refusal(&wrong_secret).await, (403, "InvalidSignatureException".to_string()));
    // A client whose clock is six minutes late (its first call: the SDK corrects its clock from the
    // answer's Date header afterwards).
    let late = bedrock(
        &emu,
        &emu.access_key_id,
        &emu.secret_access_key,
        Some(SystemTime::now() - Duration::from_secs(6 * 60)),
    )
    .await;
    let err = late.list_model_invocation_jobs().send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    assert!(err.message().unwrap_or_default().starts_with("Signature expired: "), "{err:?}");
    emu.stop().await;
}

#[tokio::test]
async fn verification_can_be_turned_off() {
    let emu = Emulator::start(EmulatorOptions { verify_signatures: false, ..Default::default() }).await.unwrap();
    let anyone = bedrock(&emu, "AKIDNOTTHEEMULATORS1", "whatever", None).await;
    assert!(anyone.list_model_invocation_jobs().send().await.is_ok());
    emu.stop().await;
}
