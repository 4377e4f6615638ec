//! The real back-ends: S3 + Bedrock control plane (batch) and Bedrock runtime (direct), through
//! the AWS SDK for Rust. Every SDK error is translated once, in [`map_sdk_error`] (`sdk_error.rs`).

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig, ModelInvocationJobS3InputDataConfig,
    ModelInvocationJobS3OutputDataConfig, S3InputFormat, Tag, VpcConfig,
};

use super::lines::{read_lines, RangeReads};
use super::sdk_error::map_sdk_error;
use super::{BatchBackend, JobInfo, JobSpec, Tokens};
use crate::config::BatchConfig;
use crate::error::{EngineError, ErrorName};
use crate::jsonl::{join_key, split_s3_uri};

/// Where to find AWS, and as whom.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Region; else the AWS config chain, else `us-west-2`.
    pub region: Option<String>,
    /// Static credentials (access key, secret, session token); else the default chain.
    pub credentials: Option<(String, String, Option<String>)>,
    /// Credentials from the application, fetched again before they expire (wins over `credentials`).
    pub credential_source: Option<std::sync::Arc<dyn super::credentials::CredentialSource>>,
    /// Control-plane endpoint override.
    pub bedrock_endpoint: Option<String>,
    /// Runtime endpoint override.
    pub bedrock_runtime_endpoint: Option<String>,
    /// S3 endpoint override.
    pub s3_endpoint: Option<String>,
    /// Service Quotas endpoint override.
    pub service_quotas_endpoint: Option<String>,
    /// Path-style S3 addressing (S3-compatible stores; on by default with an S3 endpoint).
    pub force_path_style: Option<bool>,
}

impl AwsSettings {
    /// The settings of a configuration (`source`: the application's credentials function).
    pub fn from_config(
        c: &crate::config::EngineConfig,
        source: Option<std::sync::Arc<dyn super::credentials::CredentialSource>>,
    ) -> AwsSettings {
        AwsSettings {
            region: Some(c.region.clone()),
            credentials: c
                .credentials
                .as_ref()
                .map(|k| (k.access_key_id.clone(), k.secret_access_key.clone(), k.session_token.clone())),
            credential_source: source,
            bedrock_endpoint: c.endpoints.bedrock.clone(),
            bedrock_runtime_endpoint: c.endpoints.bedrock_runtime.clone(),
            s3_endpoint: c.endpoints.s3.clone(),
            service_quotas_endpoint: c.endpoints.service_quotas.clone(),
            force_path_style: c.force_path_style,
        }
    }
}

/// The three SDK clients, built once per engine.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// S3: the batches' input and output files.
    pub s3: aws_sdk_s3::Client,
    /// The Bedrock control plane: creates, polls and stops jobs.
    pub bedrock: aws_sdk_bedrock::Client,
    /// The Bedrock runtime: on-demand calls.
    pub runtime: aws_sdk_bedrockruntime::Client,
    /// Service Quotas: Bedrock's batch-inference quotas; none when the control plane is another
    /// endpoint (an emulator, a proxy) and Service Quotas has none of its own: AWS's quotas would
    /// not be that endpoint's.
    pub quotas: Option<aws_sdk_servicequotas::Client>,
    /// The region the clients use (`us-west-2` when none is configured).
    pub region: String,
}

impl AwsClients {
    /// Builds the clients from settings and the AWS default configuration chain.
    pub async fn new(s: &AwsSettings) -> AwsClients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &s.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some((ak, sk, token)) = &s.credentials {
            loader = loader.credentials_provider(Credentials::new(ak, sk, token.clone(), None, "bedrock-batch-bridge"));
        }
        if let Some(source) = &s.credential_source {
            loader = loader.credentials_provider(super::credentials::SourceProvider(source.clone()));
        }
        let shared = loader.load().await;
        let region = shared.region().map(|r| r.to_string()).unwrap_or_else(|| "us-west-2".to_string());
        let region_obj = aws_config::Region::new(region.clone());

        let mut s3 = aws_sdk_s3::config::Builder::from(&shared).region(region_obj.clone());
        if let Some(e) = &s.s3_endpoint {
            s3 = s3.endpoint_url(e);
        }
        s3 = s3.force_path_style(s.force_path_style.unwrap_or(s.s3_endpoint.is_some()));
        let mut br = aws_sdk_bedrock::config::Builder::from(&shared).region(region_obj.clone());
        if let Some(e) = &s.bedrock_endpoint {
            br = br.endpoint_url(e);
        }
        let mut rt = aws_sdk_bedrockruntime::config::Builder::from(&shared).region(region_obj.clone());
        if let Some(e) = &s.bedrock_runtime_endpoint {
            rt = rt.endpoint_url(e);
        }
        let mut sq = aws_sdk_servicequotas::config::Builder::from(&shared).region(region_obj);
        if let Some(e) = &s.service_quotas_endpoint {
            sq = sq.endpoint_url(e);
        }
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        let own_control_plane = s.bedrock_endpoint.is_some() || set("AWS_ENDPOINT_URL_BEDROCK");
        let own_quotas =
            s.service_quotas_endpoint.is_some() || set("AWS_ENDPOINT_URL_SERVICE_QUOTAS") || set("AWS_ENDPOINT_URL");
        AwsClients {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            bedrock: aws_sdk_bedrock::Client::from_conf(br.build()),
            runtime: aws_sdk_bedrockruntime::Client::from_conf(rt.build()),
            quotas: (own_quotas || !own_control_plane).then(|| aws_sdk_servicequotas::Client::from_conf(sq.build())),
            region,
        }
    }
}

/// Input files larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 64 * 1024 * 1024;
/// Size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 16 * 1024 * 1024;

/// The Bedrock batch back-end.
#[derive(Debug, Clone)]
pub struct BedrockBatch {
    clients: AwsClients,
    config: BatchConfig,
    multipart_threshold: usize,
    part_size: usize,
    range_reads: RangeReads,
}

impl BedrockBatch {
    /// A back-end over built clients.
    pub fn new(clients: AwsClients, config: BatchConfig) -> Self {
        BedrockBatch {
            clients,
            config,
            multipart_threshold: MULTIPART_THRESHOLD,
            part_size: PART_SIZE,
            range_reads: RangeReads::default(),
        }
    }

    /// Reads output files over `range_bytes` in ranges, `readers` at once.
    pub fn with_range_reads(mut self, range_bytes: u64, readers: u64) -> Self {
        self.range_reads = RangeReads { range_bytes, readers };
        self
    }

    /// Uploads files over `threshold` bytes in parts of `part_size` bytes.
    pub fn with_multipart(mut self, threshold: usize, part_size: usize) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(1);
        self
    }

    async fn put_multipart(&self, bucket: &str, key: &str, data: bytes::Bytes) -> Result<(), EngineError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let s3 = &self.clients.s3;
        let owner = self.config.s3_bucket_owner.clone();
        let created = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("application/jsonl")
            .set_expected_bucket_owner(owner.clone())
            .send()
            .await
            .map_err(|e| map_sdk_error(&e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let result: Result<(), EngineError> = async {
            let mut parts = Vec::new();
            for (i, start) in (0..data.len()).step_by(self.part_size).enumerate() {
                let n = i as i32 + 1;
                let chunk = data.slice(start..(start + self.part_size).min(data.len()));
                let out = s3
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(n)
                    .set_expected_bucket_owner(owner.clone())
                    .body(aws_sdk_s3::primitives::ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(&e))?;
                parts.push(CompletedPart::builder().set_e_tag(out.e_tag().map(str::to_string)).part_number(n).build());
            }
            s3.complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .set_expected_bucket_owner(owner.clone())
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(|e| map_sdk_error(&e))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = s3.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).send().await;
        }
        result
    }
}

fn job_id(job_arn: &str) -> &str {
    job_arn.rsplit('/').next().unwrap_or(job_arn)
}

#[async_trait]
impl BatchBackend for BedrockBatch {
    async fn upload(&self, folder: &str, file_name: &str, data: bytes::Bytes) -> Result<String, EngineError> {
        let (bucket, prefix) =
            split_s3_uri(&self.config.s3_input_uri).ok_or_else(|| EngineError::validation("bad s3InputUri"))?;
        let folder_key = join_key(&prefix, folder);
        let key = join_key(&folder_key, file_name);
        if data.len() > self.multipart_threshold {
            self.put_multipart(&bucket, &key, data).await?;
            return Ok(format!("s3://{bucket}/{folder_key}/"));
        }
        let mut req = self
            .clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .content_type("application/jsonl")
            .body(aws_sdk_s3::primitives::ByteStream::from(data));
        if let Some(owner) = &self.config.s3_bucket_owner {
            req = req.expected_bucket_owner(owner);
        }
        req.send().await.map_err(|e| map_sdk_error(&e))?;
        Ok(format!("s3://{bucket}/{folder_key}/"))
    }

    async fn create_job(&self, spec: &JobSpec) -> Result<String, EngineError> {
        let c = &self.config;
        let input = ModelInvocationJobS3InputDataConfig::builder()
            .s3_uri(&spec.input_uri)
            .s3_input_format(S3InputFormat::Jsonl)
            .set_s3_bucket_owner(c.s3_bucket_owner.clone())
            .build()
            .map_err(|e| EngineError::validation(e.to_string()))?;
        let output = ModelInvocationJobS3OutputDataConfig::builder()
            .s3_uri(&spec.output_uri)
            .set_s3_encryption_key_id(c.s3_encryption_key_id.clone())
            .set_s3_bucket_owner(c.s3_bucket_owner.clone())
            .build()
            .map_err(|e| EngineError::validation(e.to_string()))?;
        let mut req = self
            .clients
            .bedrock
            .create_model_invocation_job()
            .job_name(&spec.job_name)
            .client_request_token(&spec.client_request_token)
            .role_arn(&c.role_arn)
            .model_id(&spec.model_id)
            .timeout_duration_in_hours(c.job_timeout_hours as i32)
            .model_invocation_type(aws_sdk_bedrock::types::ModelInvocationType::from(spec.invocation_type.as_str()))
            .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(input))
            .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(output));
        if let Some((subnets, groups)) = &c.vpc_config {
            let vpc = VpcConfig::builder()
                .set_subnet_ids(Some(subnets.clone()))
                .set_security_group_ids(Some(groups.clone()))
                .build()
                .map_err(|e| EngineError::validation(e.to_string()))?;
            req = req.vpc_config(vpc);
        }
        for (k, v) in &c.tags {
            req = req.tags(Tag::builder().key(k).value(v).build().map_err(|e| EngineError::validation(e.to_string()))?);
        }
        let out = req.send().await.map_err(|e| map_sdk_error(&e))?;
        Ok(out.job_arn().to_string())
    }

    async fn get_job(&self, job_arn: &str) -> Result<JobInfo, EngineError> {
        let j = self
            .clients
            .bedrock
            .get_model_invocation_job()
            .job_identifier(job_arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(&e))?;
        let count = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
        Ok(JobInfo {
            status: j.status().map(|s| super::JobStatus::parse(s.as_str())).unwrap_or_default(),
            message: j.message().map(str::to_string),
            total_record_count: count(j.total_record_count()),
            processed_record_count: count(j.processed_record_count()),
            success_record_count: count(j.success_record_count()),
            error_record_count: count(j.error_record_count()),
        })
    }

    async fn stop_job(&self, job_arn: &str) -> Result<(), EngineError> {
        self.clients
            .bedrock
            .stop_model_invocation_job()
            .job_identifier(job_arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(&e))?;
        Ok(())
    }

    async fn read_output(
        &self,
        output_uri: &str,
        job_arn: &str,
        on_line: &mut super::LineSink<'_>,
    ) -> Result<Option<Tokens>, EngineError> {
        read_job_output(&self.clients.s3, output_uri, job_arn, self.range_reads, on_line).await
    }

    fn rereads_input(&self) -> bool {
        true
    }

    async fn read_input(
        &self,
        input_uri: &str,
        file_name: &str,
        on_line: &mut super::LineSink<'_>,
    ) -> Result<(), EngineError> {
        let (bucket, prefix) = split_s3_uri(input_uri).ok_or_else(|| EngineError::validation("bad input URI"))?;
        read_lines(&self.clients.s3, &bucket, &join_key(&prefix, file_name), None, RangeReads::default(), on_line).await
    }

    async fn batch_quotas(&self) -> Result<Option<Vec<(String, f64)>>, EngineError> {
        let Some(quotas) = &self.clients.quotas else { return Ok(None) };
        let mut out = Vec::new();
        let mut pages = quotas.list_service_quotas().service_code("bedrock").into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error(&e))?;
            for q in page.quotas() {
                if let (Some(name), Some(value)) = (q.quota_name(), q.value()) {
                    out.push((name.to_string(), value));
                }
            }
        }
        Ok(Some(out))
    }

    async fn describe_job(&self, job: &str) -> Result<super::job_views::JobView, EngineError> {
        super::job_views::get_job(&self.clients.bedrock, job).await
    }

    async fn list_jobs(
        &self,
        filter: &super::job_views::ListFilter,
    ) -> Result<(Vec<super::job_views::JobView>, Option<String>), EngineError> {
        super::job_views::list_jobs(&self.clients.bedrock, filter).await
    }

    async fn cleanup(&self, input_uri: &str, output_uri: &str, job_arn: &str) -> Result<(), EngineError> {
        for (uri, sub) in [(input_uri, None), (output_uri, Some(job_id(job_arn)))] {
            let Some((bucket, prefix)) = split_s3_uri(uri) else { continue };
            let folder = match sub {
                Some(id) => join_key(&prefix, id) + "/",
                None => prefix,
            };
            for key in list_keys(&self.clients.s3, &bucket, &folder).await? {
                self.clients
                    .s3
                    .delete_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(&e))?;
            }
        }
        Ok(())
    }
}

/// Streams every line of a job's `*.out` files under `<output_uri>/<jobId>/` to `on_line` (large
/// files in ranges at once, lines in no particular order); returns the token totals of its
/// `manifest.json.out`, when it has one.
pub(crate) async fn read_job_output(
    s3: &aws_sdk_s3::Client,
    output_uri: &str,
    job_arn: &str,
    how: RangeReads,
    on_line: &mut super::LineSink<'_>,
) -> Result<Option<Tokens>, EngineError> {
    let (bucket, prefix) = split_s3_uri(output_uri).ok_or_else(|| EngineError::validation("bad s3OutputUri"))?;
    let folder = join_key(&prefix, job_id(job_arn)) + "/";
    let mut tokens = None;
    for (key, size) in list_objects(s3, &bucket, &folder).await? {
        if key.ends_with("/manifest.json.out") {
            let obj = s3.get_object().bucket(&bucket).key(&key).send().await.map_err(|e| map_sdk_error(&e))?;
            let data =
                obj.body.collect().await.map_err(|e| {
                    EngineError::new(ErrorName::ServiceUnavailableException, e.to_string()).transient(true)
                })?;
            if let Some((input, output)) = crate::jsonl::manifest_tokens(&data.into_bytes()) {
                tokens = Some(Tokens { input, output });
            }
            continue;
        }
        if key.ends_with(".out") {
            read_lines(s3, &bucket, &key, Some(size), how, on_line).await?;
        }
    }
    Ok(tokens)
}

/// The keys under a prefix.
pub(crate) async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>, EngineError> {
    Ok(list_objects(s3, bucket, prefix).await?.into_iter().map(|(k, _)| k).collect())
}

/// The objects under a prefix, with their sizes.
pub(crate) async fn list_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, u64)>, EngineError> {
    let mut out = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| map_sdk_error(&e))?;
        out.extend(
            page.contents().iter().filter_map(|o| {
                Some((o.key()?.to_string(), o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0)))
            }),
        );
    }
    Ok(out)
}
