//! What the emulator's SDK tests share.

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use bedrock_batch_emulator::Emulator;

/// The real Rust SDK clients for S3 and the Bedrock control plane, pointed at `emu` (path-style
/// S3), with `retry`.
pub(crate) async fn clients(emu: &Emulator, retry: RetryConfig) -> (aws_sdk_s3::Client, aws_sdk_bedrock::Client) {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let creds = aws_sdk_s3::config::Credentials::new(&emu.access_key_id, &emu.secret_access_key, None, None, "test");
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(emu.region.clone()))
        .credentials_provider(creds)
        .retry_config(retry)
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared).endpoint_url(&emu.endpoints.s3).force_path_style(true).build(),
    );
    let br = aws_sdk_bedrock::Client::from_conf(
        aws_sdk_bedrock::config::Builder::from(&shared).endpoint_url(&emu.endpoints.bedrock).build(),
    );
    (s3, br)
}
