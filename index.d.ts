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
}

/** Base URLs of a running emulator; can be passed as is to a client's `endpoints` option. */
export interface EmulatorEndpoints {
  bedrock: string
  bedrockRuntime: string
  s3: string
  /** Ends in `/v1`. */
  openai: string
}

/** A running emulator. */
export interface RunningEmulator {
  region: string
  /** Static credentials its S3 accepts (the control plane accepts any). */
  credentials: { accessKeyId: string; secretAccessKey: string }
  endpoints: EmulatorEndpoints
  /** A bucket that already exists. */
  bucket: string
  /** Stops every server and frees the ports and storage. */
  stop(): Promise<void>
}

/** Starts the local Bedrock batch emulator (control plane, runtime, OpenAI-compatible endpoint, S3) on 127.0.0.1. */
export declare function startEmulator(options?: EmulatorOptions): Promise<RunningEmulator>
