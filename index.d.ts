/** Timing profile of emulated batch jobs. */
export type EmulatorProfile = 'fast' | 'realistic'

/** Options of {@link startEmulator}. Every field is optional. */
export interface EmulatorOptions {
  /** First port to use: the control plane, runtime and OpenAI endpoint share it, S3 takes the next. Default: free ports. */
  port?: number
  /** `fast` (default): a 1,000-record job ends well under a second. `realistic`: each stage takes 1–3 s, a 500-record job about 15 s. */
  profile?: EmulatorProfile
  /** Minimum records per job: one number, or a map from model id to number (others: 100). Default 100. */
  minRecords?: number | Record<string, number>
  /** Submitted + in-progress jobs per model before ServiceQuotaExceededException. Default 20. */
  maxConcurrentJobs?: number
  /** The first N calls of each operation get ThrottlingException. Default 0. */
  throttle?: { create?: number; get?: number }
  /** Added latency of CreateModelInvocationJob, in milliseconds. Default 0. */
  createLatencyMs?: number
  /** Delay of the reply to a CreateModelInvocationJob that created a new job (the job exists and runs meanwhile), in ms. Default 0. */
  createReplyDelayMs?: number
  /** Added latency of every runtime call (InvokeModel, Converse and their streaming twins), in milliseconds. Default 0. */
  runtimeLatencyMs?: number
  /** S3 faults: the first `failFirst` requests fail with 503 SlowDown; `latencyMs` is added to each request. */
  s3?: { failFirst?: number; latencyMs?: number }
  /** Stage timing overrides in milliseconds (instead of the profile's). */
  timing?: { stageMs?: number; perRecordMs?: number }
  /** Region the emulator claims to be. Default `us-east-1`. */
  region?: string
  /** Bucket created at start. Default `bedrock-batch-emulator`. */
  bucket?: string
  /** Folder for S3 objects; a temporary folder, removed on stop, by default. */
  dataDir?: string
  /** How long a `[[job:slow]]` job stays InProgress before completing anyway, in seconds. Default 300. */
  slowJobSeconds?: number
  /**
   * Check the SigV4 signature of every control-plane and runtime request against `credentials`, as AWS does:
   * an unknown access key gets `UnrecognizedClientException`, a wrong signature or a clock more than 5 minutes
   * off `InvalidSignatureException` (403). S3 always checks. Default true.
   */
  verifySignatures?: boolean
  /**
   * The Service Quotas API (ListServiceQuotas, GetServiceQuota for `ServiceCode` `bedrock`): `denied: true` answers both
   * with `AccessDeniedException`, as AWS does for a caller without the `servicequotas:*` permissions. Default false.
   */
  serviceQuotas?: { denied?: boolean }
  /**
   * Bedrock's Flex tier: the models that offer it (model id prefixes; default: the list in docs/spend.md)
   * and whether every Flex call is throttled (`ThrottlingException`); `POST /_emulator/flex` with
   * `{ "throttled": boolean }` changes that while it runs. A Flex call to another model is a ValidationException.
   */
  flex?: { models?: string[]; throttled?: boolean }
}

/** Base URLs of a running emulator; can be passed as is to a client's `endpoints` option. */
export interface EmulatorEndpoints {
  bedrock: string
  bedrockRuntime: string
  s3: string
  /** Ends in `/v1`. */
  openai: string
  /** AWS Service Quotas (ListServiceQuotas, GetServiceQuota): the control plane's base URL. */
  serviceQuotas: string
}

/** A fault storm to arm on a running emulator ({@link RunningEmulator.faults}); every field is optional. */
export interface EmulatorFaultsArm {
  /** The next `failNext` S3 requests (the emulator's own exempt) fail with 503 `SlowDown`. */
  s3?: { failNext?: number }
  /** The next `createNext` CreateModelInvocationJob and `getNext` GetModelInvocationJob calls get `ThrottlingException` (429). */
  throttle?: { createNext?: number; getNext?: number }
  /** Submitted + in-progress jobs per model before `ServiceQuotaExceededException`, from now on. */
  maxConcurrentJobs?: number
}

/** The faults armed on a running emulator and those it served since start. */
export interface EmulatorFaults {
  /** S3 requests still to fail, and the 503 `SlowDown` answers served so far. */
  s3: { failNext: number; served: number }
  /** Creates and gets still to throttle, and the `ThrottlingException` answers served so far. */
  throttle: { createNext: number; getNext: number; createServed: number; getServed: number }
  /** The job quota now. */
  maxConcurrentJobs: number
}

/** A running emulator. */
export interface RunningEmulator {
  region: string
  /** The static credentials it accepts: S3, the control plane and the runtime check signatures against them. */
  credentials: { accessKeyId: string; secretAccessKey: string }
  endpoints: EmulatorEndpoints
  /** A bucket that already exists. */
  bucket: string
  /**
   * Arms a fault storm from now on (`POST /_emulator/faults`): the next `s3.failNext` S3 requests fail with
   * 503 `SlowDown`, the next `throttle.createNext` / `throttle.getNext` CreateModelInvocationJob /
   * GetModelInvocationJob calls with 429 `ThrottlingException`; `maxConcurrentJobs` changes the job quota. A
   * given count replaces what is armed (0 disarms), an absent one stays. Without `arm`, only reads
   * (`GET /_emulator/faults`). Resolves with what is armed now and how many of each fault were served since
   * start (the start options' faults too); rejects with a TypeError for a field it does not know.
   */
  faults(arm?: EmulatorFaultsArm): Promise<EmulatorFaults>
  /** Stops every server and frees the ports and storage. */
  stop(): Promise<void>
}

/** Starts the local Bedrock batch emulator (control plane, runtime, OpenAI-compatible endpoint, S3) on 127.0.0.1. */
export declare function startEmulator(options?: EmulatorOptions): Promise<RunningEmulator>

// ===== the client =====

/** What to do with a queue below `minBatchSize` when it must be flushed. */
export type BelowMinimum = 'pad' | 'direct' | 'wait'

/** Batch-mode settings. Times are in seconds. Each can also come from the environment where noted. */
export interface BatchOptions {
  /** Where input JSONL is written, `s3://bucket/prefix/`. Required. Env: `BEDROCK_BATCH_S3_INPUT_URI`. */
  s3InputUri?: string
  /** Where Bedrock writes output, `s3://bucket/prefix/`. Required. Env: `BEDROCK_BATCH_S3_OUTPUT_URI`. */
  s3OutputUri?: string
  /** The service role Bedrock assumes to read and write S3. Required. Env: `BEDROCK_BATCH_ROLE_ARN`. */
  roleArn?: string
  /**
   * Below this many records a flush pads, goes on-demand or waits (see `belowMinimum`). When not
   * given: each model's "Minimum number of records per batch inference job" from Service Quotas,
   * else 100.
   */
  minBatchSize?: number
  /** Hard cap on records per job (at most 50,000). Default 1000. Env: `BEDROCK_BATCH_MAX_BATCH_SIZE`. */
  maxBatchSize?: number
  /** Flush this long after the oldest waiting request. Default 60. Env: `BEDROCK_BATCH_TIMEOUT`. */
  batchTimeout?: number
  /** Under `belowMinimum: "wait"`, the longest a request waits before its queue is padded. Default 3600. */
  maxWait?: number
  /** How often running jobs are polled (one shared loop per client). Default 5. */
  pollInterval?: number
  /** Job timeout given to Bedrock, in hours (24–168). Default 24. */
  jobTimeoutHours?: number
  /** Prefix of job names (letters, digits, `-`, `.`, `+`; no `_`). Default `batch-inference`. */
  jobNamePrefix?: string
  /**
   * Submitted + running jobs per model; further batches wait their turn. When not given: each
   * model's "Sum of in-progress and submitted batch inference jobs" quota from Service Quotas,
   * else 20.
   */
  maxConcurrentJobs?: number
  /** `pad` (default): fill with 1-token filler records; `direct`: send those requests on-demand; `wait`: keep collecting up to `maxWait`, then pad. */
  belowMinimum?: BelowMinimum
  /**
   * Where ConverseStreamCommand and InvokeModelWithResponseStreamCommand go. `batch` (default): into batch jobs like the
   * other commands, at batch prices; the answer arrives whole when its job ends and is then replayed as the stream's events
   * (ConverseStream events, or the model family's own chunks). `direct`: on-demand, a real event stream from the runtime
   * (events as the model writes them, on-demand prices, not in the journal). Streams with a guardrail or trace go on-demand either way.
   */
  streaming?: 'batch' | 'direct'
  /**
   * When requests go on Bedrock's Flex tier (discounted on-demand, best-effort), for models that
   * offer it (`tiers.flex`, else the shipped list; not Claude). `fallback` (default): whatever batch
   * mode sends on-demand (below the minimum under `belowMinimum: "direct"`, guardrails, trace,
   * models batch cannot take) goes on Flex, retried while Flex throttles for `flexPatience`, then
   * on standard. `prefer`: requests of models with Flex go on Flex instead of into jobs; when Flex
   * stays throttled for `flexPatience` they (and the model's next requests, for one patience) go
   * into batch jobs. `never`: no Flex. A caller's own `serviceTier` is always kept.
   */
  flex?: 'fallback' | 'prefer' | 'never'
  /** Seconds a request keeps retrying a throttled Flex tier before it leaves it. Default 60. */
  flexPatience?: number
  /** A request's deadline when its send gives none, in seconds after the send (see `SendOptions.deadline`). Default: none. */
  deadline?: number
  /**
   * Seconds before its deadline that a request whose job has not answered is sent on-demand
   * (its Flex tries then last at most half of it). Default 60.
   */
  fallbackMargin?: number
  /** Tries per request in all, the first included, for missing records and retryable errors (408, 429, 5xx). Default 2. */
  maxAttempts?: number
  /** Delete each job's input and output objects once its results are delivered. Default false. */
  cleanup?: boolean
  /** Most requests waiting in memory; beyond it `send()` rejects with ThrottlingException. Default 2,000,000. */
  maxQueuedRequests?: number
  /** KMS key for the job output. */
  s3EncryptionKeyId?: string
  /** Expected owner (12-digit account id) of the buckets. */
  s3BucketOwner?: string
  /** Path-style S3 addressing, for S3-compatible stores. Default: on when `endpoints.s3` is set. */
  forcePathStyle?: boolean
  /** Subnets and security groups the jobs run in. */
  vpcConfig?: { subnetIds: string[]; securityGroupIds: string[] }
  /** Tags of each job: `{ key: value }` or `[{ key, value }]`. */
  tags?: Record<string, string> | { key: string; value: string }[]
}

/** Endpoint overrides (the emulator's `endpoints` fit as they are). Env: `AWS_ENDPOINT_URL_BEDROCK`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL_S3`. */
export interface EndpointOptions {
  bedrock?: string
  bedrockRuntime?: string
  s3?: string
  /** An OpenAI-compatible base URL: openai mode's default `apiBase`. */
  openai?: string
  /**
   * Service Quotas (Bedrock's batch quotas, read when `minBatchSize` or `maxConcurrentJobs` is not
   * given). With a `bedrock` endpoint of your own and none here, the quotas are not read.
   */
  serviceQuotas?: string
}

/** Static AWS credentials. */
export interface StaticCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/** Temporary credentials, as a credentials function returns them (the SDK's `AwsCredentialIdentity`). */
export interface ExpiringCredentials extends StaticCredentials {
  /** When they stop working; the engine calls the function again shortly before. */
  expiration?: Date | number | string
}

/** Static credentials, or an async function returning them (called again before they expire: jobs outlive temporary credentials). */
export type CredentialsOption = StaticCredentials | (() => Promise<ExpiringCredentials> | ExpiringCredentials)

/** The durable journal (batch mode): crash recovery without paying twice. */
export interface JournalOptions {
  /** The SQLite file; its folder is created. One client (one process) at a time. */
  path: string
  /** Finished entries older than this are pruned when the journal opens. Default 7. */
  retentionDays?: number
}

/**
 * The store on PostgreSQL (batch mode), shared by every client with the same `url` and `group`, in any process on any
 * machine: one set of queues, batches, jobs and answers. One client at a time leads the group (forms its batches,
 * runs its jobs); when it goes, another takes over. Not with `journal`. Env: `BEDROCK_BATCH_STORE_URL` (the URL alone).
 */
export interface StoreOptions {
  /**
   * `postgres://user:password@host:port/database?sslmode=...`: `sslmode` is `disable`, `prefer` (default), `require`
   * (TLS, certificate not checked), `verify-ca` or `verify-full` (checked against `sslrootcert=/path/ca.pem`, else the
   * system's roots). The password is never shown in errors, logs or `client.config`.
   */
  url?: string
  /** The set of clients that share batches; every row is scoped by it. Default `"default"`. */
  group?: string
  /** Seconds to wait for the server when the client starts; after that every send rejects with `StoreUnavailableException`. Default 30. */
  connectTimeout?: number
  /** Finished entries of the group older than this are pruned when a client takes the lead. Default 7. */
  retentionDays?: number
  /**
   * Seconds between a follower's tries to take the lead (and between the leader's checks that it still holds it):
   * after the leader dies, another client leads within about this long. 0.05 to 60, default 1.
   */
  electionInterval?: number
  /**
   * Seconds callers wait through a lost connection to the server (reconnecting with backoff) before their sends reject
   * with `StoreUnavailableException`. 0 to 86400, default 120.
   */
  outageTimeout?: number
}

/** A batch job's status, as Bedrock reports it. */
export type JobStatus =
  | 'Submitted'
  | 'Validating'
  | 'Scheduled'
  | 'InProgress'
  | 'Stopping'
  | 'Completed'
  | 'PartiallyCompleted'
  | 'Failed'
  | 'Stopped'
  | 'Expired'

/** A job as `client.jobs()` reports it. */
export interface StoredJob {
  jobArn: string
  jobName: string
  modelId: string
  status: JobStatus
  /** When it was created (undefined without a store). */
  createdAt: Date | undefined
  totalRecordCount: number
  successRecordCount: number
  errorRecordCount: number
}

/** One answer of a job, from the store (`client.results(jobArn)`). */
export interface StoredResult {
  recordId: string
  /** The `idempotencyKey` it was sent with, else the key the store made of its content (`h:<hash>#<occurrence>`). */
  idempotencyKey: string
  output?: Uint8Array & { transformToString(encoding?: string): string }
  error?: { name: string; message: string }
}

/** Which jobs `client.adopt()` takes: one by ARN (or id), or every job whose name starts with a prefix. */
export type AdoptTarget = { jobArn: string } | { namePrefix: string; since?: Date | number }

/** A job `client.adopt()` found: adopted into the journal, or left alone with `reason`. */
export interface AdoptedJob {
  jobArn: string
  jobName: string
  modelId: string
  /** Its status when it was found. */
  status: JobStatus
  /** Its records (fillers not counted). */
  records: number
  /** Records keyed by their content, so that a later send of the same content resolves from them. */
  keyed: number
  adopted: boolean
  /** Why it was not adopted (in the journal already, not a job of this package, ...). */
  reason?: string
}

/** @deprecated The same as {@link StoredJob}. */
export type JournalJob = StoredJob
/** @deprecated The same as {@link StoredResult}. */
export type JournalResult = StoredResult

/** OpenAI-compatible mode: a Bedrock Claude body goes to `chat/completions` and comes back as a Claude body. */
export interface OpenAiOptions {
  /** LiteLLM-style model string: `openai/`, `hosted_vllm/` (needs `apiBase`), `ollama/`, `groq/`, `together_ai/`, `deepseek/`, `mistral/`, `openrouter/`, `anthropic/`, `bedrock/<modelId>`. */
  model: string
  /** Base URL; default: the provider's. */
  apiBase?: string
  /** API key; default: the provider's environment variable (e.g. `OPENAI_API_KEY`). */
  apiKey?: string
  /** Calls at once. Default 32. */
  maxConcurrency?: number
  /** Seconds per call. Default 600. */
  timeout?: number
}

/** Options of {@link BatchInferenceClient}. */
export interface BatchInferenceClientOptions {
  /**
   * Region. Default: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the `region` of the AWS profile
   * (`AWS_PROFILE`, else `default`) in the shared credentials or config file (`AWS_SHARED_CREDENTIALS_FILE`,
   * `AWS_CONFIG_FILE`, else `~/.aws/credentials`, `~/.aws/config`), else `us-west-2`.
   */
  region?: string
  /** Default model; a command's own `modelId` wins. */
  modelId?: string
  /** `batch` (default): batch inference jobs; `direct`: one on-demand runtime call per request (no S3); `openai`: an OpenAI-compatible server. Env: `BEDROCK_BATCH_MODE`. */
  mode?: 'batch' | 'direct' | 'openai'
  batch?: BatchOptions
  /** Direct mode (and on-demand fallbacks in batch mode). */
  direct?: { /** Most on-demand calls at once. Default 32. */ maxConcurrency?: number }
  /** OpenAI-compatible mode. */
  openai?: OpenAiOptions
  endpoints?: EndpointOptions
  /** Static credentials or an async credentials function; else the AWS default credential chain. */
  credentials?: CredentialsOption
  /** Crash recovery (batch mode): every batch and request is recorded before it is acted on. Default: none. */
  journal?: JournalOptions
  /** The same, in PostgreSQL (batch mode; instead of `journal`). The client starts at once and connects in the background; sends wait for it. */
  store?: StoreOptions
  /**
   * On-demand (standard) prices per model in USD per 1,000 tokens, over the table the package
   * ships (us-east-1 list prices, dated; see docs/spend.md). Batch and Flex cost half. Used by
   * `stats().estimatedSavingUsd`, `plan()` and `maxCostUsd`.
   */
  pricing?: Record<string, { inputPer1kTokens: number; outputPer1kTokens: number }>
  /**
   * A dry run: sends are taken and batches formed exactly as they would be, nothing is uploaded,
   * created or sent; `plan()` says what the run would do and cost, and the requests then reject
   * with `DryRunException`. Not with `store`.
   */
  dryRun?: boolean
  /**
   * The most the run may commit to spend, in USD: before a batch is submitted or a request sent
   * on-demand, its upper-bound cost (estimated input tokens and its maximum output tokens, at its
   * tier's price) is committed; work that would cross the cap is not sent and its requests reject
   * with `CostLimitExceededException`. Every request must then set its maximum output tokens and
   * have a price.
   */
  maxCostUsd?: number
  /**
   * Which models offer the Flex tier, in place of the list the package ships (model ids, or id
   * prefixes ending in `-` or `.`; an inference profile of a listed model counts). See `batch.flex`.
   */
  tiers?: { flex?: string[] }
  /** Receives job-level events (`info`), never request bodies or credentials; the SDK's logger shape. */
  logger?: {
    debug?(...a: unknown[]): void
    info?(...a: unknown[]): void
    warn?(...a: unknown[]): void
    error?(...a: unknown[]): void
  }
}

/** On-demand latency profile (`performanceConfigLatency`, `performanceConfig.latency`). */
export type PerformanceConfigLatency = 'standard' | 'optimized'

/** On-demand processing tier (`serviceTier`, `serviceTier.type`). */
export type ServiceTierType = 'priority' | 'default' | 'flex' | 'reserved'

/** The InvokeModel input, as in `@aws-sdk/client-bedrock-runtime`. */
export interface InvokeModelCommandInput {
  modelId?: string
  body: string | Uint8Array | ArrayBuffer | ArrayBufferView
  contentType?: string
  accept?: string
  trace?: 'ENABLED' | 'DISABLED' | 'ENABLED_FULL'
  guardrailIdentifier?: string
  guardrailVersion?: string
  performanceConfigLatency?: PerformanceConfigLatency
  serviceTier?: ServiceTierType
  requestMetadata?: string
}

/** The SDK's response metadata. */
export interface ResponseMetadata {
  httpStatusCode?: number
  /** On-demand: the request id; batch: `<jobArn>#<recordId>`. */
  requestId?: string
  extendedRequestId?: string
  cfId?: string
  /** On-demand: 1; batch: the jobs the record was in (2 after one resubmission). */
  attempts?: number
  totalRetryDelay?: number
}

/** A Uint8Array with `transformToString`, as the AWS SDK returns bodies. */
export declare class Uint8ArrayBlobAdapter extends Uint8Array {
  static fromString(source: string, encoding?: string): Uint8ArrayBlobAdapter
  static mutate(source: Uint8Array): Uint8ArrayBlobAdapter
  /** UTF-8 text, or base64 with `"base64"`. */
  transformToString(encoding?: string): string
}

/** The InvokeModel output, key for key as the SDK shapes it. */
export interface InvokeModelCommandOutput {
  body: Uint8ArrayBlobAdapter
  contentType: string
  performanceConfigLatency?: PerformanceConfigLatency
  serviceTier?: ServiceTierType
  $metadata: ResponseMetadata
}

/** Our InvokeModelCommand; real ones from `@aws-sdk/client-bedrock-runtime` are accepted too. */
export declare class InvokeModelCommand {
  constructor(input: InvokeModelCommandInput)
  readonly input: InvokeModelCommandInput
  /** Types only (no such property at run time): keeps each command class its own type, so `send()` resolves to the right output. */
  private readonly operation
}

// ===== Converse, ConverseStream and InvokeModelWithResponseStream =====
// Shapes of bedrock-runtime 2023-09-30 (botocore 1.44.8's service model), as the SDK gives them to JavaScript: blobs are
// Uint8Array, `document` values any JSON, and a union is an object with exactly one of its members set.

/**
 * A union of the service model: an object with exactly one of `Members`' keys, the others absent. Each key can be read on
 * the union (`block.toolUse` is a ToolUseBlock or undefined), so `if (block.toolUse)` tells which it is.
 */
export type OneMemberOf<Members> = {
  [K in keyof Members]: Pick<Members, K> & { [O in Exclude<keyof Members, K>]?: never }
}[keyof Members]

/** A `document` of the service model: any JSON value (tool inputs and their schemas, model-specific fields). */
export type JsonDocument = null | boolean | number | string | JsonDocument[] | { [key: string]: JsonDocument }

/** Who wrote a message. `system` messages carry mid-conversation tool changes (`toolAddition`, `toolRemoval`). */
export type ConversationRole = 'user' | 'assistant' | 'system'

/** Why the model stopped. */
export type StopReason =
  | 'end_turn'
  | 'tool_use'
  | 'max_tokens'
  | 'stop_sequence'
  | 'guardrail_intervened'
  | 'content_filtered'
  | 'malformed_model_output'
  | 'malformed_tool_use'
  | 'model_context_window_exceeded'

/** An object in S3. */
export interface S3Location {
  /** `s3://bucket/key`. */
  uri: string
  /** Account id of the bucket's owner, when it is another account. */
  bucketOwner?: string
}

/** Where the bytes of an image, video or audio block come from: inline, or an S3 object. */
export type ContentSource = OneMemberOf<{ bytes: Uint8Array; s3Location: S3Location }>

/** Why a block could not be processed. */
export interface ErrorBlock {
  message?: string
}

export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp'

export interface ImageBlock {
  format: ImageFormat
  source: ContentSource
  /** In answers: the image could not be produced. */
  error?: ErrorBlock
}

export interface DocumentBlock {
  format?: 'pdf' | 'csv' | 'doc' | 'docx' | 'xls' | 'xlsx' | 'html' | 'txt' | 'md'
  /** 1–200 characters: letters, digits, single spaces, hyphens, parentheses, square brackets. A neutral name: the model reads it. */
  name: string
  /** The file's bytes, an S3 object, plain text, or text blocks. */
  source: OneMemberOf<{ bytes: Uint8Array; s3Location: S3Location; text: string; content: { text: string }[] }>
  /** What the document is, for the model. */
  context?: string
  /** Ask for citations into this document. */
  citations?: { enabled: boolean }
}

export interface VideoBlock {
  format: 'mkv' | 'mov' | 'mp4' | 'webm' | 'flv' | 'mpeg' | 'mpg' | 'wmv' | 'three_gp'
  source: ContentSource
}

export interface AudioBlock {
  format:
    | 'mp3'
    | 'opus'
    | 'wav'
    | 'aac'
    | 'flac'
    | 'mp4'
    | 'ogg'
    | 'mkv'
    | 'mka'
    | 'x-aac'
    | 'm4a'
    | 'mpeg'
    | 'mpga'
    | 'pcm'
    | 'webm'
  source: ContentSource
  error?: ErrorBlock
}

/** The model asks for a tool call (in an assistant message). */
export interface ToolUseBlock {
  /** Echo it in the matching `toolResult`. */
  toolUseId: string
  name: string
  /** The arguments, as JSON that should fit the tool's input schema. */
  input: JsonDocument
  /** `server_tool_use`: a tool the provider runs itself. */
  type?: 'server_tool_use'
}

/** The answer of a tool call (in the next user message). */
export interface ToolResultBlock {
  /** The `toolUseId` of the call it answers. */
  toolUseId: string
  content: ToolResultContentBlock[]
  /** `error` tells the model the call failed (not every model reads it). */
  status?: 'success' | 'error'
  type?: string
}

export type ToolResultContentBlock = OneMemberOf<{
  json: JsonDocument
  text: string
  image: ImageBlock
  document: DocumentBlock
  video: VideoBlock
  searchResult: SearchResultBlock
}>

/** Content for a guardrail to assess (with `guardrailConfig`). */
export type GuardrailConverseContentBlock = OneMemberOf<{
  text: { text: string; qualifiers?: ('grounding_source' | 'query' | 'guard_content')[] }
  image: { format: 'png' | 'jpeg'; source: { bytes: Uint8Array } }
}>

/** Marks the end of a prefix the model may cache. */
export interface CachePointBlock {
  type: 'default'
  /** How long the entry lives; the default TTL when left out. */
  ttl?: '5m' | '1h'
}

/** The model's reasoning: its text (with a signature to send back unchanged), or an opaque redacted form. */
export type ReasoningContentBlock = OneMemberOf<{
  reasoningText: { text: string; signature?: string }
  redactedContent: Uint8Array
}>

/** Where a citation points. Indexes and offsets count from 0. */
export type CitationLocation = OneMemberOf<{
  web: { url?: string; domain?: string }
  documentChar: { documentIndex?: number; start?: number; end?: number }
  documentPage: { documentIndex?: number; start?: number; end?: number }
  documentChunk: { documentIndex?: number; start?: number; end?: number }
  searchResultLocation: { searchResultIndex?: number; start?: number; end?: number }
}>

export interface Citation {
  title?: string
  source?: string
  /** The cited passages. */
  sourceContent?: { text: string }[]
  location?: CitationLocation
}

/** Generated text with the citations that back it. */
export interface CitationsContentBlock {
  content?: { text: string }[]
  citations?: Citation[]
}

/** A search result given to the model as a source. */
export interface SearchResultBlock {
  source: string
  title: string
  content: { text: string }[]
  citations?: { enabled: boolean }
}

/** A tool of `toolConfig`, named for `toolAddition` and `toolRemoval` (`serverName` for an MCP server's tool). */
export interface ToolReference {
  type?: string
  name?: string
  serverName?: string
}

/** One block of a message. */
export type ContentBlock = OneMemberOf<{
  text: string
  image: ImageBlock
  document: DocumentBlock
  video: VideoBlock
  audio: AudioBlock
  toolUse: ToolUseBlock
  toolResult: ToolResultBlock
  guardContent: GuardrailConverseContentBlock
  cachePoint: CachePointBlock
  reasoningContent: ReasoningContentBlock
  citationsContent: CitationsContentBlock
  searchResult: SearchResultBlock
  /** Makes a tool of `toolConfig` available from here on. */
  toolAddition: { tool: ToolReference }
  /** Withdraws a tool from here on. */
  toolRemoval: { tool: ToolReference }
}>

export interface Message {
  role: ConversationRole
  content: ContentBlock[]
}

/** One block of the system prompt. */
export type SystemContentBlock = OneMemberOf<{
  text: string
  guardContent: GuardrailConverseContentBlock
  cachePoint: CachePointBlock
}>

/** The settings every Converse model takes; others go in `additionalModelRequestFields`. */
export interface InferenceConfiguration {
  /** At least 1. */
  maxTokens?: number
  /** 0–1. */
  temperature?: number
  /** 0–1. */
  topP?: number
  stopSequences?: string[]
}

/** A tool the caller runs: its name, what it does, and the JSON Schema of its input. */
export interface ToolSpecification {
  /** Letters, digits, `_` and `-`, at most 64. */
  name: string
  description?: string
  inputSchema: { json: JsonDocument }
  /** Hold the model to the schema exactly, where it supports that. */
  strict?: boolean
}

export type Tool = OneMemberOf<{
  toolSpec: ToolSpecification
  /** A tool the model's provider defines and runs. */
  systemTool: { name: string }
  cachePoint: CachePointBlock
}>

/** `auto` (the default): the model decides; `any`: it must call some tool; `tool`: it must call the one named. */
export type ToolChoice = OneMemberOf<{
  auto: Record<string, never>
  any: Record<string, never>
  tool: { name: string }
}>

export interface ToolConfiguration {
  /** At least one. */
  tools: Tool[]
  toolChoice?: ToolChoice
}

/** A guardrail to apply (the request then goes on-demand: batch jobs apply none). */
export interface GuardrailConfiguration {
  guardrailIdentifier?: string
  /** A version number, or `DRAFT`. */
  guardrailVersion?: string
  trace?: 'enabled' | 'disabled' | 'enabled_full'
}

/** A guardrail for a stream. `sync` holds each chunk back until it is assessed; `async` sends chunks at once and assesses them alongside. */
export interface GuardrailStreamConfiguration extends GuardrailConfiguration {
  streamProcessingMode?: 'sync' | 'async'
}

export interface PerformanceConfiguration {
  latency?: PerformanceConfigLatency
}

export interface ServiceTier {
  type: ServiceTierType
}

/** Shapes the answer: JSON that follows a schema (`structure.jsonSchema.schema` is the schema as a JSON text), and reasoning effort. */
export interface OutputConfig {
  textFormat?: {
    type: 'json_schema'
    structure: { jsonSchema: { schema: string; name?: string; description?: string } }
  }
  /** E.g. `low`, `medium`, `high`. */
  effort?: string
}

/**
 * The Converse input, as in `@aws-sdk/client-bedrock-runtime`. In batch mode `messages`, `system`, `inferenceConfig`,
 * `additionalModelRequestFields`, `additionalModelResponseFieldPaths` and `outputConfig` go into the record; with `toolConfig`
 * the record is the model's own body (Claude, Nova; other models go on-demand); `guardrailConfig` and `promptVariables` send
 * the request on-demand; `performanceConfig`, `serviceTier`, `requestMetadata` and `projectIdentifier` only apply on-demand.
 */
export interface ConverseCommandInput {
  /** Model id, inference profile or ARN (a prompt's ARN too); default: the client's `modelId`. */
  modelId?: string
  /** The conversation so far, oldest first. The model leaves it optional for a prompt ARN, whose prompt has its own. */
  messages?: Message[]
  /** Instructions ahead of the conversation. */
  system?: SystemContentBlock[]
  inferenceConfig?: InferenceConfiguration
  toolConfig?: ToolConfiguration
  guardrailConfig?: GuardrailConfiguration
  /** The project an on-demand call is billed to. */
  projectIdentifier?: string
  /** Model-specific settings beyond `inferenceConfig` (e.g. `{ top_k: 50 }`). */
  additionalModelRequestFields?: JsonDocument
  /** Values of a prompt ARN's variables. */
  promptVariables?: Record<string, { text: string }>
  /** JSON Pointers (at most 10) of model-specific answer fields to return in `additionalModelResponseFields`. */
  additionalModelResponseFieldPaths?: string[]
  /** Invocation-log filters. */
  requestMetadata?: Record<string, string>
  performanceConfig?: PerformanceConfiguration
  serviceTier?: ServiceTier
  outputConfig?: OutputConfig
}

/** The ConverseStream input: the Converse one, with a stream's guardrail settings. */
export interface ConverseStreamCommandInput extends Omit<ConverseCommandInput, 'guardrailConfig'> {
  guardrailConfig?: GuardrailStreamConfiguration
}

export interface TokenUsage {
  inputTokens: number
  outputTokens: number
  totalTokens: number
  /** Input tokens read from the prompt cache. */
  cacheReadInputTokens?: number
  /** Input tokens written to the prompt cache. */
  cacheWriteInputTokens?: number
  /** Cache writes by TTL. */
  cacheDetails?: { ttl: '5m' | '1h'; inputTokens: number }[]
}

export interface ConverseMetrics {
  /** How long the model took, in milliseconds. */
  latencyMs: number
}

/**
 * A guardrail's findings per policy. Left untyped here (the service model nests a dozen shapes): `topicPolicy`, `contentPolicy`,
 * `wordPolicy`, `sensitiveInformationPolicy`, `contextualGroundingPolicy`, `automatedReasoningPolicy`, `invocationMetrics`,
 * `appliedGuardrailDetails`.
 */
export interface GuardrailAssessment {
  [policy: string]: unknown
}

export interface ConverseTrace {
  guardrail?: {
    modelOutput?: string[]
    /** By guardrail id. */
    inputAssessment?: Record<string, GuardrailAssessment>
    /** By guardrail id. */
    outputAssessments?: Record<string, GuardrailAssessment[]>
    actionReason?: string
  }
  /** The model a prompt router chose. */
  promptRouter?: { invokedModelId?: string }
}

/** The Converse output, member for member as the SDK shapes it (members the answer lacks are absent). */
export interface ConverseCommandOutput {
  /** The model's message (role `assistant`). */
  output: { message: Message }
  stopReason: StopReason
  usage: TokenUsage
  metrics: ConverseMetrics
  /** The fields `additionalModelResponseFieldPaths` asked for. */
  additionalModelResponseFields?: JsonDocument
  /** With a guardrail's trace, or a prompt router. */
  trace?: ConverseTrace
  performanceConfig?: PerformanceConfiguration
  serviceTier?: ServiceTier
  $metadata: ResponseMetadata
}

/** The `contentBlockStart` of a tool use, tool result or image block (only these kinds have one). */
export type ContentBlockStart = OneMemberOf<{
  toolUse: { toolUseId: string; name: string; type?: 'server_tool_use' }
  toolResult: { toolUseId: string; type?: string; status?: 'success' | 'error' }
  image: { format: ImageFormat }
}>

/** The next piece of a content block. */
export type ContentBlockDelta = OneMemberOf<{
  text: string
  /** More of the tool call's input, as JSON text: join every piece of the block, then parse. */
  toolUse: { input: string }
  toolResult: OneMemberOf<{ text: string; json: JsonDocument }>[]
  reasoningContent: OneMemberOf<{ text: string; redactedContent: Uint8Array; signature: string }>
  citation: { title?: string; source?: string; sourceContent?: { text?: string }[]; location?: CitationLocation }
  image: { source?: ContentSource; error?: ErrorBlock }
}>

/**
 * One event of a ConverseStream answer: `messageStart`, then per content block `contentBlockStart` (not for text),
 * `contentBlockDelta`s and `contentBlockStop`, then `messageStop` and `metadata`. An event type this package does not know
 * comes as `$unknown: [type, payload]`. An exception event is not yielded: the iteration throws it.
 */
export type ConverseStreamOutput = OneMemberOf<{
  messageStart: { role: ConversationRole }
  contentBlockStart: { start: ContentBlockStart; contentBlockIndex: number }
  contentBlockDelta: { delta: ContentBlockDelta; contentBlockIndex: number }
  contentBlockStop: { contentBlockIndex: number }
  messageStop: { stopReason: StopReason; additionalModelResponseFields?: JsonDocument }
  metadata: {
    usage: TokenUsage
    metrics: ConverseMetrics
    trace?: ConverseTrace
    performanceConfig?: PerformanceConfiguration
    serviceTier?: ServiceTier
  }
  $unknown: [string, unknown]
}>

/**
 * The ConverseStream output. `stream` can be read once; in batch mode (`batch.streaming: "batch"`) every event is there
 * when the Promise resolves, with `streaming: "direct"` they come as the model writes them.
 */
export interface ConverseStreamCommandOutput {
  stream: AsyncIterable<ConverseStreamOutput>
  $metadata: ResponseMetadata
}

/** The InvokeModelWithResponseStream input: the InvokeModel one. */
export type InvokeModelWithResponseStreamCommandInput = InvokeModelCommandInput

/**
 * One event of an InvokeModelWithResponseStream answer: `chunk.bytes` is a piece of the model's own streaming format
 * (Claude: one JSON event, e.g. `content_block_delta`). An unknown event type comes as `$unknown: [type, payload]`; an
 * exception event is not yielded: the iteration throws it.
 */
export type ResponseStream = OneMemberOf<{ chunk: { bytes: Uint8Array }; $unknown: [string, unknown] }>

/** The InvokeModelWithResponseStream output, key for key as the SDK shapes it. `body` can be read once. */
export interface InvokeModelWithResponseStreamCommandOutput {
  body: AsyncIterable<ResponseStream>
  contentType: string
  performanceConfigLatency?: PerformanceConfigLatency
  serviceTier?: ServiceTierType
  $metadata: ResponseMetadata
}

/** Our ConverseCommand; real ones from `@aws-sdk/client-bedrock-runtime` are accepted too. */
export declare class ConverseCommand {
  constructor(input: ConverseCommandInput)
  readonly input: ConverseCommandInput
  private readonly operation
}

/** Our ConverseStreamCommand; real ones from `@aws-sdk/client-bedrock-runtime` are accepted too. */
export declare class ConverseStreamCommand {
  constructor(input: ConverseStreamCommandInput)
  readonly input: ConverseStreamCommandInput
  private readonly operation
}

/** Our InvokeModelWithResponseStreamCommand; real ones from `@aws-sdk/client-bedrock-runtime` are accepted too. */
export declare class InvokeModelWithResponseStreamCommand {
  constructor(input: InvokeModelWithResponseStreamCommandInput)
  readonly input: InvokeModelWithResponseStreamCommandInput
  private readonly operation
}

/**
 * A command of `@aws-sdk/client-bedrock-runtime`, as `send()` recognises it without depending on the SDK's types: by what
 * its handler resolves to (the SDK's commands carry their output type there). `Output` is what tells the operations apart.
 */
export interface AwsSdkCommand<Output> {
  readonly input: object
  resolveMiddleware(stack: never, configuration: never, options: never): (args: never) => Promise<{ output: Output }>
}

/** Options of one send. */
export interface SendOptions {
  abortSignal?: AbortSignal
  /** With a journal: the request's key (else a hash of its model, body and options, and its occurrence in this run). A key the journal has answered resolves from it; one in a running job joins it. */
  idempotencyKey?: string
  /**
   * Batch mode: when the answer must be there (a Date, or milliseconds since the epoch). If the
   * request's job has not answered by `deadline - batch.fallbackMargin`, the request is sent
   * on-demand (Flex where the model offers it, else standard) and the job's later answer for it is
   * dropped; if that moment has already passed at send, it goes on-demand at once. Default:
   * `batch.deadline` seconds after the send, if set.
   */
  deadline?: Date | number
}

/** One job in {@link Stats}. */
export interface JobStats {
  jobArn: string
  jobName: string
  modelId: string
  status: JobStatus
  totalRecordCount: number
  processedRecordCount: number
  successRecordCount: number
  errorRecordCount: number
  /** From the job's manifest, once it ended. */
  inputTokens: number
  outputTokens: number
  /**
   * The error names of the records its output answered with an error, as read so far, most
   * frequent first (each record once, including those sent again). Empty for a job this client did
   * not read.
   */
  recordErrors: { name: string; count: number }[]
}

/** What one model's requests are doing in a client now (`requestsByModel()`). */
export interface ModelLoad {
  modelId: string
  /** Waiting in the client: queued, waiting for a lookup of their key, or in a batch waiting for a job slot. */
  queued: number
  /** In batches whose job is being created or runs. */
  inJobs: number
  /** In on-demand calls (Flex or standard), or waiting for one. */
  onDemand: number
  /** A group's member: handed to the group, whose leader batches them. */
  inGroup: number
  /** Filler records added to this model's jobs so far. */
  padded: number
}

/** `client.stats()`. */
export interface Stats {
  queued: number
  inFlight: number
  /** Filler records added to reach `minBatchSize`. */
  padded: number
  /** Requests sent again after a missing output line or a retryable error. */
  resubmitted: number
  /** Requests sent on-demand (guardrails, trace, `belowMinimum: "direct"`, streams under `streaming: "direct"`). */
  sentDirect: number
  jobs: JobStats[]
  tokens: { input: number; output: number }
  /** With the `pricing` option: half the on-demand cost of the jobs' tokens (batch is 50% cheaper). */
  estimatedSavingUsd?: number
  /** With a store: which, where and how big. */
  store?: StoreStats
  /** @deprecated {@link Stats.store}: `path` is its `location`. */
  journal?: { path: string; bytes: number }
  /** A client of a store's group: whether it leads the group now (forms the group's batches and runs its jobs). */
  leader?: boolean
  /** With `maxCostUsd`: the upper-bound cost of everything sent so far, and the cap. */
  spend?: { committedUsd: number; maxCostUsd: number }
  /**
   * Per price tier: requests answered there and their estimated cost in USD (batch: from the jobs'
   * manifests; Flex and standard: from each answer's `usage`, else the request's own estimate), at
   * the model's price (`pricing`, else the shipped table; 0 without one).
   */
  tiers: Record<'batch' | 'flex' | 'standard', TierStats>
  /** Requests sent on-demand because their deadline came, or was already too close for a job at send. */
  deadlineFallbacks: number
  /**
   * Calls that failed after the AWS SDK's own retries: to S3 (input and output files), to Bedrock's
   * batch control plane (jobs, Service Quotas), to the store (journal or PostgreSQL).
   */
  failedCalls: { s3: number; bedrock: number; store: number }
}

/** What one price tier served. */
export interface TierStats {
  requests: number
  estimatedUsd: number
}

/** How a dry run counted a model's input tokens. */
export type InputTokensMethod = 'count-tokens' | 'count-tokens-sample' | 'estimate'

/** Requests by the price tier they take. */
export interface TierCounts {
  batch: number
  flex: number
  standard: number
}

/** One model's part of a {@link RunPlan}. */
export interface ModelPlan {
  modelId: string
  /** Batch jobs the run would create. */
  jobs: number
  /** Requests in those jobs. */
  records: number
  /** Filler records added to reach the minimum per job. */
  paddedRecords: number
  requestsByTier: TierCounts
  /** Input tokens of the requests and filler records. */
  inputTokens: number
  /**
   * `count-tokens`: every request counted with Bedrock's CountTokens; `count-tokens-sample`:
   * `inputTokensCounted` of them counted, the rest scaled from the local estimate; `estimate`: the
   * local estimate (one token per 4 bytes of the request's text).
   */
  inputTokensMethod: InputTokensMethod
  inputTokensCounted?: number
  /** The sum of the maximum output tokens the requests and filler records ask for. */
  outputTokensUpperBound: number
  /** Requests that set no maximum (their output has no bound). */
  requestsWithoutMaxTokens: number
  /** The upper-bound cost in USD at the tiers the requests would take (null: no price for the model). */
  costUsd: number | null
  /** The same requests all on-demand at the standard price. */
  standardCostUsd: number | null
}

/** What a dry run would do: `client.plan()`. */
export interface RunPlan {
  models: ModelPlan[]
  total: Omit<ModelPlan, 'modelId' | 'inputTokensMethod' | 'inputTokensCounted'>
}

/** The store in {@link Stats}. */
export interface StoreStats {
  /** `sqlite`: the journal (`journal: { path }`); `postgres`: a store on PostgreSQL (`store: { url }`). */
  kind: 'sqlite' | 'postgres'
  /** SQLite: the file's path. PostgreSQL: `postgres://host:port/database#group` (never a user or password). */
  location: string
  /** SQLite: the file's size on disk. PostgreSQL: about the group's size. */
  bytes: number
}

/** Fields every exception of this package has (the SDK's exceptions have the same). */
export declare class BedrockBatchBridgeException extends Error {
  readonly name: string
  readonly $fault: 'client' | 'server'
  readonly $metadata: ResponseMetadata
  /** The batch job, where known. */
  jobArn?: string
  /** The record in that job, where known. */
  recordId?: string
  /** The job's status, for BatchJobFailedException. */
  status?: JobStatus
}
export declare class BatchJobFailedException extends BedrockBatchBridgeException {}
export declare class RecordMissingException extends BedrockBatchBridgeException {}
export declare class ClientClosedException extends BedrockBatchBridgeException {}
export declare class ValidationException extends BedrockBatchBridgeException {}
export declare class ThrottlingException extends BedrockBatchBridgeException {}
export declare class ModelTimeoutException extends BedrockBatchBridgeException {}
export declare class InternalServerException extends BedrockBatchBridgeException {}
export declare class ServiceUnavailableException extends BedrockBatchBridgeException {}
export declare class AccessDeniedException extends BedrockBatchBridgeException {}
export declare class ResourceNotFoundException extends BedrockBatchBridgeException {}
export declare class ModelErrorException extends BedrockBatchBridgeException {}
/** A stream failed part way (an exception event of an on-demand stream, or an event that could not be read); the stream's iteration throws it. */
export declare class ModelStreamErrorException extends BedrockBatchBridgeException {}
export declare class ServiceQuotaExceededException extends BedrockBatchBridgeException {}
export declare class ModelNotReadyException extends BedrockBatchBridgeException {}
export declare class ConflictException extends BedrockBatchBridgeException {}
/** The journal is in use by another client or process. */
export declare class JournalLockedException extends BedrockBatchBridgeException {}
/** The journal file is not a journal or cannot be read; it is never replaced. */
export declare class JournalCorruptedException extends BedrockBatchBridgeException {}
/** The store (PostgreSQL) cannot be reached or opened: wrong host, closed port, refused password, missing database, or no answer within `store.connectTimeout`. Every send of the client rejects with it; the message names host and port, never the password. */
export declare class StoreUnavailableException extends BedrockBatchBridgeException {}
/** The credentials could not be loaded (the credentials function failed, or the AWS default chain found none). */
export declare class CredentialsProviderError extends BedrockBatchBridgeException {}
/** `startEmulator()` could not start (a port in use, storage that cannot be prepared). */
export declare class EmulatorStartException extends BedrockBatchBridgeException {}
/** Sending would have let the run's committed spend cross `maxCostUsd`: not sent, nothing paid. */
export declare class CostLimitExceededException extends BedrockBatchBridgeException {
  /** The cap, in USD. */
  capUsd: number
  /** What the run had committed when the work was refused. */
  committedUsd: number
  /** The refused work's upper-bound cost. */
  estimateUsd: number
}
/** The client is a dry run (`dryRun: true`): nothing was sent; `plan()` says what would have been. */
export declare class DryRunException extends BedrockBatchBridgeException {}
/** A failure a back-end reported that has no better name. */
export declare class UnknownError extends BedrockBatchBridgeException {}

/** The configuration a client runs with, as `client.config` shows it. */
export interface ResolvedConfig {
  region: string
  modelId?: string
  mode: 'batch' | 'direct' | 'openai'
  /** Every batch setting, with its default where it was not given. */
  batch: Required<Omit<BatchOptions, 'tags' | 'vpcConfig' | 's3EncryptionKeyId' | 's3BucketOwner' | 'forcePathStyle'>> &
    Pick<BatchOptions, 'vpcConfig' | 's3EncryptionKeyId' | 's3BucketOwner'> & { tags: { key: string; value: string }[] }
  direct: { maxConcurrency: number }
  endpoints: EndpointOptions
  /** In openai mode. */
  openai?: { model: string; apiBase?: string; maxConcurrency: number; timeout: number }
  /** With a journal. */
  journal?: { path: string; retentionDays: number }
  /** With a store (the URL without its password). */
  store?: {
    url: string
    group: string
    connectTimeout: number
    retentionDays: number
    electionInterval: number
    outageTimeout: number
  }
}

/**
 * A drop-in for BedrockRuntimeClient whose InvokeModel, InvokeModelWithResponseStream, Converse and ConverseStream calls run
 * as Bedrock batch inference jobs.
 */
export declare class BatchInferenceClient {
  constructor(options?: BatchInferenceClientOptions)
  /** The resolved configuration, as plain values (defaults filled in; no credentials). */
  readonly config: ResolvedConfig
  // Each command takes our class or the SDK's (told apart by its output type); InvokeModel's overloads come last, as
  // their `{ input }` form would also fit the other commands.
  send(
    command: ConverseCommand | AwsSdkCommand<{ stopReason: unknown }>,
    options?: SendOptions,
  ): Promise<ConverseCommandOutput>
  send(
    command: ConverseCommand | AwsSdkCommand<{ stopReason: unknown }>,
    cb: (err: unknown, data?: ConverseCommandOutput) => void,
  ): void
  send(
    command: ConverseCommand | AwsSdkCommand<{ stopReason: unknown }>,
    options: SendOptions,
    cb: (err: unknown, data?: ConverseCommandOutput) => void,
  ): void
  send(
    command: ConverseStreamCommand | AwsSdkCommand<{ stream?: AsyncIterable<unknown> }>,
    options?: SendOptions,
  ): Promise<ConverseStreamCommandOutput>
  send(
    command: ConverseStreamCommand | AwsSdkCommand<{ stream?: AsyncIterable<unknown> }>,
    cb: (err: unknown, data?: ConverseStreamCommandOutput) => void,
  ): void
  send(
    command: ConverseStreamCommand | AwsSdkCommand<{ stream?: AsyncIterable<unknown> }>,
    options: SendOptions,
    cb: (err: unknown, data?: ConverseStreamCommandOutput) => void,
  ): void
  send(
    command:
      | InvokeModelWithResponseStreamCommand
      | AwsSdkCommand<{ body: AsyncIterable<unknown> | undefined; contentType: unknown }>,
    options?: SendOptions,
  ): Promise<InvokeModelWithResponseStreamCommandOutput>
  send(
    command:
      | InvokeModelWithResponseStreamCommand
      | AwsSdkCommand<{ body: AsyncIterable<unknown> | undefined; contentType: unknown }>,
    cb: (err: unknown, data?: InvokeModelWithResponseStreamCommandOutput) => void,
  ): void
  send(
    command:
      | InvokeModelWithResponseStreamCommand
      | AwsSdkCommand<{ body: AsyncIterable<unknown> | undefined; contentType: unknown }>,
    options: SendOptions,
    cb: (err: unknown, data?: InvokeModelWithResponseStreamCommandOutput) => void,
  ): void
  send(
    command: InvokeModelCommand | { input: InvokeModelCommandInput } | AwsSdkCommand<{ body: Uint8Array }>,
    options?: SendOptions,
  ): Promise<InvokeModelCommandOutput>
  send(
    command: InvokeModelCommand | { input: InvokeModelCommandInput } | AwsSdkCommand<{ body: Uint8Array }>,
    cb: (err: unknown, data?: InvokeModelCommandOutput) => void,
  ): void
  send(
    command: InvokeModelCommand | { input: InvokeModelCommandInput } | AwsSdkCommand<{ body: Uint8Array }>,
    options: SendOptions,
    cb: (err: unknown, data?: InvokeModelCommandOutput) => void,
  ): void
  invokeModel(args: InvokeModelCommandInput, options?: SendOptions): Promise<InvokeModelCommandOutput>
  /** The Python SDK's form, before the first send: {@link SetupOptions}. */
  setup(options: SetupOptions): Promise<void>
  /**
   * A dry run's plan (`dryRun: true`): what is queued goes as `close()` would send it, and the plan
   * says per model and in total what the run would do and cost. The requests sent so far then
   * reject with `DryRunException`.
   */
  plan(): Promise<RunPlan>
  /** The store's jobs (from this and earlier processes); without a store, this client's jobs. After `close()`, the journal is read again, read-only. */
  jobs(): Promise<StoredJob[]>
  /** The answers of one job from the store, in record order (needs a store; also after `close()`, read-only). */
  results(jobArn: string, options?: { pageSize?: number }): AsyncIterable<StoredResult>
  /**
   * Adopts jobs no store knows (created by a run without a journal, a crashed script) into the
   * journal: each job of this package found is polled and its answers kept, and a later send of
   * the same content resolves from them with no new job. Needs batch mode and a journal or a store (a group's leader polls the job).
   */
  adopt(target: AdoptTarget): Promise<AdoptedJob[]>
}

/** `flush`, `close`, `destroy`, `stats`, `metrics` and `on`, as {@link BatchHandle} declares them. */
export interface BatchInferenceClient extends BatchHandle {}

/** The seed-compatible `setup()` options (times in seconds, the seed's defaults). */
export interface SetupOptions
  extends Pick<
    BatchOptions,
    | 's3InputUri'
    | 's3OutputUri'
    | 'roleArn'
    | 'minBatchSize'
    | 'maxBatchSize'
    | 'batchTimeout'
    | 'pollInterval'
    | 'jobTimeoutHours'
    | 'jobNamePrefix'
  > {
  modelId?: string
  region?: string
  /** Direct mode. */
  debugMode?: boolean
  /** OpenAI-compatible mode, with `litellmModel` and `litellmApiBase`. */
  litellmMode?: boolean
  litellmModel?: string
  litellmApiBase?: string
  endpoints?: EndpointOptions
  credentials?: CredentialsOption
  /** `journal.path`. */
  journalPath?: string
}

/** What the client and the plugin share: the handle of a running engine. */
export interface BatchHandle {
  /** Submits what is queued now (below the minimum: pads, or on-demand under `belowMinimum: "direct"`). */
  flush(): Promise<void>
  /** Flushes, waits for every job, then releases; later sends reject with ClientClosedException. */
  close(): Promise<void>
  /** Stops at once; pending requests reject with ClientClosedException. Jobs keep running on AWS unless `stopJobs`. */
  destroy(options?: { stopJobs?: boolean }): void
  stats(): Stats
  /**
   * Prometheus metrics of this engine: the text exposition format 0.0.4 (content type
   * `text/plain; version=0.0.4; charset=utf-8`), for a program's own `/metrics` endpoint. The names
   * and their meaning: docs/observability.md. Never holds a request body, key or credential.
   */
  metrics(): string
  /** What each model's requests are doing now (this process's), by model id. */
  requestsByModel(): Promise<ModelLoad[]>
  /** `job`: one job entry on each status change. Listeners never keep the process alive. */
  on(event: 'job', listener: (job: JobStats) => void): this
  /** `progress`: the {@link Stats} snapshot on changes, at most every 250 ms. */
  on(event: 'progress', listener: (stats: Stats) => void): this
}

/** The same class under the SDK's name, so changing the import is the whole migration. */
export declare const BedrockRuntimeClient: typeof BatchInferenceClient

/** Options of {@link batchPlugin}: the client's options, plus the host client to read region and credentials from. */
export interface BatchPluginOptions extends BatchInferenceClientOptions {
  /**
   * The `BedrockRuntimeClient` the plugin is added to; its region and credentials fill the options' gaps. Its `send` is
   * wrapped so that each call's `abortSignal` reaches the plugin with SDKs that do not hand it to middleware.
   */
  client?: { config?: { region?: unknown; credentials?: unknown }; send?: unknown }
}

/** The plugin: `runtime.middlewareStack.use(plugin)`, and the handle of its engine (the host's `destroy()` cannot wait for jobs: `close()` the plugin). */
export interface BatchPlugin extends BatchHandle {
  applyToStack(stack: { add(middleware: unknown, options: Record<string, unknown>): void }): void
}

/** Options of {@link batchFetch}: the client's options, plus the fetch to pass other requests to and more base URLs to batch. */
export interface BatchFetchOptions extends BatchInferenceClientOptions {
  /** Where every request that is not a Bedrock runtime call goes, untouched. Default: the global `fetch`. */
  fetch?: (input: any, init?: any) => Promise<any>
  /**
   * Base URLs (besides the region's runtime host, its FIPS host and `endpoints.bedrockRuntime`) whose
   * `POST /model/{modelId}/invoke`, `/converse`, `/invoke-with-response-stream` and `/converse-stream` are batched.
   */
  intercept?: string | URL | Array<string | URL>
}

/**
 * A WHATWG `fetch` (`(input, init) => Promise<Response>`) whose Bedrock runtime calls run through the batch engine,
 * answered as the Bedrock runtime answers; also the handle of its engine.
 */
export interface BatchFetch extends BatchHandle {
  (input: any, init?: any): Promise<any>
  /** The client whose engine answers the calls. */
  readonly client: BatchInferenceClient
}

/**
 * A `fetch` for libraries that sign their own Bedrock runtime calls and take a custom `fetch` (the Vercel AI SDK's
 * `createAmazonBedrock({ fetch })`, `new AnthropicBedrock({ fetch })`): their calls become batch records.
 */
export declare function batchFetch(options?: BatchFetchOptions): BatchFetch

/**
 * Routes InvokeModelCommand, InvokeModelWithResponseStreamCommand, ConverseCommand and ConverseStreamCommand of an existing
 * BedrockRuntimeClient through batch inference (the streaming ones as `batch.streaming` says); other commands pass untouched.
 */
export declare function batchPlugin(options?: BatchPluginOptions): BatchPlugin
