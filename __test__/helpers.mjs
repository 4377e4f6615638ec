// The one module of helpers for every test: the package (index.js over the built addon), the
// local emulator with real AWS SDK clients for it, request bodies per model family, and checks of
// what the emulator saw.
//
// Expectations in the spec files come from ../shared/reference/bedrock-batch.md (AWS wire shapes),
// ../shared/design.md and the issues, never from the implementation.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Sha256 } from '@aws-crypto/sha256-js'
import {
  BedrockClient,
  CreateModelInvocationJobCommand,
  GetModelInvocationJobCommand,
  ListModelInvocationJobsCommand,
  StopModelInvocationJobCommand,
} from '@aws-sdk/client-bedrock'
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime'
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import test from 'ava'

const require = createRequire(import.meta.url)
export const INDEX_JS = require.resolve('../index.js')
export const bridge = require('../index.js')
export const { startEmulator, BatchInferenceClient, InvokeModelCommand } = bridge
export { performance, sleep }

// ---------------------------------------------------------------------------
// Constants taken from the reference

/** ARN of a job: `arn:aws(-*)?:bedrock:{region}:{account}:model-invocation-job/{12 lowercase alnum}` (§1.0). */
export const JOB_ARN_RE = /^arn:aws(-[^:]+)?:bedrock:([a-z0-9-]+):(\d{12}):model-invocation-job\/([a-z0-9]{12})$/

/** The ten statuses of ModelInvocationJobStatus (§1.5). */
export const ALL_STATUSES = [
  'Submitted',
  'Validating',
  'Scheduled',
  'InProgress',
  'Stopping',
  'Completed',
  'PartiallyCompleted',
  'Failed',
  'Stopped',
  'Expired',
]
export const TERMINAL_STATUSES = ['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']

/** Order in which a job that runs normally walks its statuses (issue 2, §3). */
export const NORMAL_WALK = ['Submitted', 'Validating', 'Scheduled', 'InProgress']

/** A role ARN matching `arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+` (§1.2). */
export const ROLE_ARN = 'arn:aws:iam::123456789012:role/BedrockBatchInferenceRole'

export const CLAUDE = 'anthropic.claude-3-haiku-20240307-v1:0'
export const NOVA = 'amazon.nova-lite-v1:0'

export const MODELS = {
  claude: CLAUDE,
  claudeProfile: 'us.anthropic.claude-3-5-haiku-20241022-v1:0',
  nova: NOVA,
  llama: 'meta.llama3-1-8b-instruct-v1:0',
  mistral: 'mistral.mistral-7b-instruct-v0:2',
  titanText: 'amazon.titan-text-express-v1',
  titanEmbed: 'amazon.titan-embed-text-v2:0',
}

// ---------------------------------------------------------------------------
// Emulator and clients

/**
 * Starts one emulator for this test (fast profile unless told otherwise), registers its stop and
 * the clients' as teardown, and returns it with SDK clients for it. `clientOptions.maxAttempts`
 * applies to the Bedrock and runtime clients (default 1, so the SDK's own retries never hide an
 * error); `clientOptions.s3MaxAttempts` to the S3 client (default: the SDK's; S3 reads by a test
 * retry, since an emulator may be told to fail the first S3 calls).
 */
export async function startEmu(t, options = {}, clientOptions = {}) {
  const emu = await startEmulator({ profile: 'fast', ...options })
  t.teardown(() => emu.stop())
  const clients = makeClients(emu, clientOptions)
  t.teardown(() => {
    clients.bedrock.destroy()
    clients.runtime.destroy()
    clients.s3.destroy()
  })
  return { emu, ...clients }
}

export function makeClients(emu, { maxAttempts = 1, s3MaxAttempts } = {}) {
  const common = { region: emu.region, credentials: { ...emu.credentials } }
  const bedrock = new BedrockClient({ ...common, endpoint: emu.endpoints.bedrock, maxAttempts })
  const runtime = new BedrockRuntimeClient({
    ...common,
    endpoint: emu.endpoints.bedrockRuntime,
    maxAttempts,
  })
  const s3 = new S3Client({
    ...common,
    endpoint: emu.endpoints.s3,
    forcePathStyle: true,
    ...(s3MaxAttempts === undefined ? {} : { maxAttempts: s3MaxAttempts }),
  })
  return { bedrock, runtime, s3 }
}

/** A key segment no other test uses (only characters allowed by the S3Uri regex). */
export function unique(label = 't') {
  return `${label.replace(/[^A-Za-z0-9-]/g, '-')}-${randomBytes(5).toString('hex')}`
}

// ---------------------------------------------------------------------------
// Request bodies per model family (InvokeModel native bodies)

export function claudeBody(text, extra = {}) {
  return {
    anthropic_version: 'bedrock-2023-05-31',
    max_tokens: 200,
    messages: [{ role: 'user', content: text }],
    ...extra,
  }
}

export function novaBody(text) {
  return {
    schemaVersion: 'messages-v1',
    messages: [{ role: 'user', content: [{ text }] }],
    inferenceConfig: { maxTokens: 200 },
  }
}

export function llamaBody(text) {
  return {
    prompt: `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n${text}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`,
    max_gen_len: 200,
    temperature: 0.5,
  }
}

export function mistralBody(text) {
  return { prompt: `<s>[INST] ${text} [/INST]`, max_tokens: 200 }
}

export function titanTextBody(text) {
  return { inputText: text, textGenerationConfig: { maxTokenCount: 200 } }
}

export function titanEmbedBody(text) {
  return { inputText: text }
}

export function converseBody(text) {
  return { messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 200 } }
}

export const BODY_BY_FAMILY = {
  claude: claudeBody,
  nova: novaBody,
  llama: llamaBody,
  mistral: mistralBody,
  titanText: titanTextBody,
  titanEmbed: titanEmbedBody,
}

/** 'REC' + 8 digits: 11 ASCII alphanumerics, like the AWS examples (CALL0000001). */
export function recordId(i, prefix = 'REC') {
  return `${prefix}${String(i).padStart(8, '0')}`
}

/**
 * Builds `n` records `{recordId, modelInput}`. `promptOf(i)` gives the user text of record i
 * (default: a unique arithmetic question). `bodyOf(text, i)` gives the model input.
 */
export function makeRecords(
  n,
  { promptOf = (i) => `What is ${i} + ${i}?`, bodyOf = claudeBody, idPrefix = 'REC' } = {},
) {
  const records = []
  for (let i = 0; i < n; i++) {
    const prompt = promptOf(i)
    records.push({ recordId: recordId(i, idPrefix), modelInput: bodyOf(prompt, i), prompt })
  }
  return records
}

/** Serialises records (or raw line strings) as JSONL; `prompt` helpers are not written. */
export function toJsonl(records) {
  return `${records.map((r) => (typeof r === 'string' ? r : JSON.stringify({ recordId: r.recordId, modelInput: r.modelInput }))).join('\n')}\n`
}

export async function putText(s3, bucket, key, text) {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: text, ContentType: 'application/jsonl' }))
}

export async function putJsonl(s3, bucket, key, records) {
  await putText(s3, bucket, key, toJsonl(records))
}

export async function getText(s3, bucket, key) {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return res.Body.transformToString()
}

export async function listKeys(s3, bucket, prefix) {
  const keys = []
  let ContinuationToken
  do {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }))
    for (const o of res.Contents ?? []) keys.push(o.Key)
    ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined
  } while (ContinuationToken)
  return keys.sort()
}

// ---------------------------------------------------------------------------
// Jobs

export function jobIdOf(arn) {
  return arn.slice(-12)
}

let nameCounter = 0
export function jobName(label = 'job') {
  nameCounter += 1
  return `${label}-${process.pid}-${nameCounter}-${randomBytes(3).toString('hex')}`
}

/** CreateModelInvocationJob with sensible defaults; `over` overrides/extends the input. */
export async function createJob(bedrock, { inputUri, outputUri, modelId = MODELS.claude, ...over }) {
  const res = await bedrock.send(
    new CreateModelInvocationJobCommand({
      jobName: jobName(),
      roleArn: ROLE_ARN,
      modelId,
      inputDataConfig: { s3InputDataConfig: { s3Uri: inputUri, s3InputFormat: 'JSONL' } },
      outputDataConfig: { s3OutputDataConfig: { s3Uri: outputUri } },
      ...over,
    }),
  )
  return res.jobArn
}

export async function getJob(bedrock, jobIdentifier) {
  return bedrock.send(new GetModelInvocationJobCommand({ jobIdentifier }))
}

/**
 * Polls GetModelInvocationJob every `intervalMs` until `until(job)` holds (default: a terminal
 * status) or the deadline passes (then throws, naming the statuses seen).
 * Returns `{ job, statuses }`, where `statuses` lists each distinct status in the order seen.
 */
export async function waitForJob(
  bedrock,
  jobArn,
  { until = (j) => TERMINAL_STATUSES.includes(j.status), timeoutMs = 15_000, intervalMs = 25 } = {},
) {
  const deadline = performance.now() + timeoutMs
  const statuses = []
  for (;;) {
    const job = await getJob(bedrock, jobArn)
    if (statuses[statuses.length - 1] !== job.status) statuses.push(job.status)
    if (until(job)) return { job, statuses }
    if (performance.now() > deadline) {
      throw new Error(
        `job ${jobArn} did not reach the expected state within ${timeoutMs} ms; statuses seen: ${statuses.join(' -> ')}`,
      )
    }
    await sleep(intervalMs)
  }
}

/**
 * Writes records to `<prefix>/input/<file>`, creates a job reading that object and writing to
 * `<prefix>/output/`, and waits for a terminal status.
 */
export async function runJob(
  { bedrock, s3, emu },
  records,
  { prefix = unique('job'), file = 'records.jsonl', timeoutMs, ...createOver } = {},
) {
  const inputKey = `${prefix}/input/${file}`
  await putJsonl(s3, emu.bucket, inputKey, records)
  const outputPrefix = `${prefix}/output`
  const jobArn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${inputKey}`,
    outputUri: `s3://${emu.bucket}/${outputPrefix}/`,
    ...createOver,
  })
  const { job, statuses } = await waitForJob(bedrock, jobArn, timeoutMs ? { timeoutMs } : undefined)
  return { jobArn, jobId: jobIdOf(jobArn), job, statuses, prefix, inputKey, outputPrefix }
}

/**
 * Reads everything a job wrote under `<outputPrefix>/<jobId>/`.
 * Returns `{ keys, outFiles: {key: lines[]}, lines (all record lines), records (parsed, valid JSON only),
 * badLines (not JSON), manifest (parsed or undefined) }`.
 */
export async function readJobOutput(s3, bucket, outputPrefix, jobId) {
  const folder = `${outputPrefix.replace(/\/+$/, '')}/${jobId}/`
  const keys = await listKeys(s3, bucket, folder)
  const outFiles = {}
  const lines = []
  const records = []
  const badLines = []
  let manifest
  for (const key of keys) {
    if (key === `${folder}manifest.json.out`) {
      manifest = JSON.parse(await getText(s3, bucket, key))
      continue
    }
    if (!key.endsWith('.out')) continue
    const fileLines = (await getText(s3, bucket, key)).split('\n').filter((l) => l.trim().length > 0)
    outFiles[key] = fileLines
    for (const line of fileLines) {
      lines.push(line)
      try {
        records.push(JSON.parse(line))
      } catch {
        badLines.push(line)
      }
    }
  }
  return { folder, keys, outFiles, lines, records, badLines, manifest }
}

/** errorCode may be a number (AWS example) or a numeric string (AWS sample) — §2.3. */
export function errorCodeOf(line) {
  return Number(line.error?.errorCode)
}

// ---------------------------------------------------------------------------
// Response-shape checks (reference §4, §5 and issue 2)

export function isNonNegInt(v) {
  return Number.isInteger(v) && v >= 0
}

/** Extracts the answer text of a model output, per family. */
export function answerText(family, out) {
  switch (family) {
    case 'claude':
      return out.content
        .filter((b) => b.type === 'text')
        .map((b) => b.text)
        .join('')
    case 'nova':
    case 'converse':
      return out.output.message.content.map((b) => b.text ?? '').join('')
    case 'llama':
      return out.generation
    case 'mistral':
      return out.outputs.map((o) => o.text).join('')
    case 'titanText':
      return out.results.map((r) => r.outputText).join('')
    default:
      throw new Error(`no answer text for ${family}`)
  }
}

/** Asserts the response body shape of one model family with ava assertions. */
export function assertFamilyShape(t, family, out) {
  t.is(typeof out, 'object')
  switch (family) {
    case 'claude':
      t.is(typeof out.id, 'string')
      t.true(out.id.length > 0)
      t.is(out.type, 'message')
      t.is(out.role, 'assistant')
      t.true(Array.isArray(out.content) && out.content.length > 0)
      t.is(out.content[0].type, 'text')
      t.is(typeof out.content[0].text, 'string')
      t.is(typeof out.model, 'string')
      t.true(
        [
          'end_turn',
          'max_tokens',
          'stop_sequence',
          'tool_use',
          'pause_turn',
          'refusal',
          'model_context_window_exceeded',
        ].includes(out.stop_reason),
        `stop_reason ${out.stop_reason}`,
      )
      t.true(out.stop_sequence === null || typeof out.stop_sequence === 'string', 'stop_sequence is string or null')
      t.true(isNonNegInt(out.usage?.input_tokens), 'usage.input_tokens')
      t.true(isNonNegInt(out.usage?.output_tokens), 'usage.output_tokens')
      break
    case 'nova':
    case 'converse':
      t.is(out.output?.message?.role, 'assistant')
      t.true(Array.isArray(out.output.message.content) && out.output.message.content.length > 0)
      t.is(typeof out.output.message.content[0].text, 'string')
      t.true(
        [
          'end_turn',
          'tool_use',
          'max_tokens',
          'stop_sequence',
          'guardrail_intervened',
          'content_filtered',
          'malformed_model_output',
          'malformed_tool_use',
          'model_context_window_exceeded',
        ].includes(out.stopReason),
        `stopReason ${out.stopReason}`,
      )
      t.true(isNonNegInt(out.usage?.inputTokens), 'usage.inputTokens')
      t.true(isNonNegInt(out.usage?.outputTokens), 'usage.outputTokens')
      t.is(out.usage.totalTokens, out.usage.inputTokens + out.usage.outputTokens)
      break
    case 'llama':
      t.is(typeof out.generation, 'string')
      t.true(isNonNegInt(out.prompt_token_count), 'prompt_token_count')
      t.true(isNonNegInt(out.generation_token_count), 'generation_token_count')
      t.true(['stop', 'length'].includes(out.stop_reason), `stop_reason ${out.stop_reason}`)
      break
    case 'mistral':
      t.true(Array.isArray(out.outputs) && out.outputs.length > 0)
      t.is(typeof out.outputs[0].text, 'string')
      t.true(['stop', 'length'].includes(out.outputs[0].stop_reason), `stop_reason ${out.outputs[0].stop_reason}`)
      break
    case 'titanText':
      t.true(isNonNegInt(out.inputTextTokenCount), 'inputTextTokenCount')
      t.true(Array.isArray(out.results) && out.results.length > 0)
      t.is(typeof out.results[0].outputText, 'string')
      t.true(isNonNegInt(out.results[0].tokenCount), 'results[0].tokenCount')
      t.is(typeof out.results[0].completionReason, 'string')
      break
    case 'titanEmbed':
      t.true(Array.isArray(out.embedding) && out.embedding.length > 0, 'embedding is a non-empty array')
      t.true(
        out.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)),
        'embedding holds finite numbers',
      )
      t.true(isNonNegInt(out.inputTextTokenCount), 'inputTextTokenCount')
      break
    default:
      throw new Error(`unknown family ${family}`)
  }
}

// ---------------------------------------------------------------------------
// Errors

/** Runs `fn`, expects it to reject, and returns the error (never passes when `fn` resolves). */
export async function rejectsWith(t, fn, name, httpStatus) {
  const err = await t.throwsAsync(fn)
  if (!err) return err
  t.is(err.name, name, `error name (message: ${err.message})`)
  if (httpStatus !== undefined) t.is(err.$metadata?.httpStatusCode, httpStatus, 'HTTP status')
  t.is(typeof err.message, 'string')
  t.true(err.message.length > 0, 'error has a message')
  return err
}

/**
 * Adds a build-step middleware that rewrites the JSON request body before it is signed,
 * so the server sees a request the SDK would not normally produce (e.g. a missing member).
 */
export function rewriteJsonBody(client, edit) {
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request
      if (req && req.body !== undefined && req.body !== null) {
        const text = typeof req.body === 'string' ? req.body : new TextDecoder().decode(Uint8Array.from(req.body))
        const body = JSON.parse(text)
        edit(body)
        req.body = JSON.stringify(body)
        for (const h of Object.keys(req.headers)) if (h.toLowerCase() === 'content-length') delete req.headers[h]
        req.headers['content-length'] = String(Buffer.byteLength(req.body))
      }
      return next(args)
    },
    { step: 'build', name: 'testRewriteJsonBody', priority: 'high' },
  )
}

/** Adds a deserialize-step middleware that records the raw HTTP response headers of each call. */
export function captureResponseHeaders(client) {
  const captured = []
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        const result = await next(args)
        captured.push(lowerKeys(result.response?.headers ?? {}))
        return result
      } catch (err) {
        if (err?.$response?.headers) captured.push(lowerKeys(err.$response.headers))
        throw err
      }
    },
    { step: 'deserialize', name: 'testCaptureHeaders', priority: 'low' },
  )
  return captured
}

function lowerKeys(h) {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]))
}

/** Checks that the statuses seen follow the documented order (no going back). */
export function assertStatusOrder(t, statuses, order = [...NORMAL_WALK]) {
  let last = -1
  for (const s of statuses) {
    t.true(ALL_STATUSES.includes(s), `status ${s} is one of the 10 documented statuses`)
    const i = order.indexOf(s)
    if (i === -1) continue
    t.true(i >= last, `status ${s} came after ${order[last]} (seen: ${statuses.join(' -> ')})`)
    last = i
  }
}

/** Joins a base URL (with or without a trailing slash) and a path starting with '/'. */
export function joinUrl(base, path) {
  return base.replace(/\/+$/, '') + path
}

// ---------------------------------------------------------------------------
// The client against the emulator

/** An InvokeModelCommand for a Claude question (modelId omitted when `modelId` is null). */
export function claudeCommand(text, { modelId = CLAUDE, ...input } = {}) {
  return new InvokeModelCommand({
    ...(modelId === null ? {} : { modelId }),
    contentType: 'application/json',
    accept: 'application/json',
    body: JSON.stringify(claudeBody(text)),
    ...input,
  })
}

export function claudeText(out) {
  return JSON.parse(out.body.transformToString()).content[0].text
}

export function novaText(out) {
  return JSON.parse(out.body.transformToString())
    .output.message.content.map((b) => b.text ?? '')
    .join('')
}

/**
 * Builds a BatchInferenceClient for the emulator with the brief's defaults (fast timers),
 * under a prefix of its own; destroyed in teardown.
 */
export function makeClient(t, emu, { batch = {}, ...rest } = {}) {
  const prefix = unique('eng')
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    ...rest,
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      maxBatchSize: 100,
      batchTimeout: 0.2,
      pollInterval: 0.05,
      minBatchSize: 100,
      maxAttempts: 2,
      maxConcurrentJobs: 20,
      ...batch,
    },
  })
  t.teardown(() => client.destroy())
  return { client, prefix, inputPrefix: `${prefix}/in/`, outputPrefix: `${prefix}/out/` }
}

/** Settles a promise into `{ ok, value | error }` (never rejects). */
export function settle(promise) {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error) => ({ ok: false, error }),
  )
}

/** Describes an outcome for assertion messages. */
export function describe(o) {
  if (o.ok) return `resolved (${o.value.body?.length} bytes)`
  const e = o.error
  return `rejected ${e?.name}: ${e?.message} [jobArn=${e?.jobArn} recordId=${e?.recordId} status=${e?.status}]`
}

/** Every job the emulator has, oldest first (paginated ListModelInvocationJobs). */
export async function listJobs(bedrock) {
  const jobs = []
  let nextToken
  do {
    const res = await bedrock.send(
      new ListModelInvocationJobsCommand({ maxResults: 100, nextToken, sortOrder: 'Ascending' }),
    )
    jobs.push(...(res.invocationJobSummaries ?? []))
    nextToken = res.nextToken
  } while (nextToken)
  return jobs
}

export async function stopJob(bedrock, jobIdentifier) {
  return bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier }))
}

/** Polls `probe()` until it returns a truthy value, or throws after `timeoutMs`, naming `what`. */
export async function waitFor(what, probe, { timeoutMs = 15_000, intervalMs = 20 } = {}) {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v) return v
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** Every JSONL line (parsed) the client uploaded under its input prefix, with the key it came from. */
export async function inputRecords(s3, bucket, inputPrefix) {
  const out = []
  for (const key of await listKeys(s3, bucket, inputPrefix)) {
    if (!key.endsWith('.jsonl')) continue
    for (const line of (await getText(s3, bucket, key)).split('\n')) {
      if (line.trim() === '') continue
      out.push({ key, ...JSON.parse(line) })
    }
  }
  return out
}

/** The user text of a Claude modelInput (a string or text blocks). */
export function claudePrompt(modelInput) {
  const c = modelInput?.messages?.at(-1)?.content
  if (typeof c === 'string') return c
  if (Array.isArray(c)) return c.map((b) => b.text ?? '').join('')
  return undefined
}

/** What the emulator reports of itself: `runtime-requests` or `runtime-stats`. */
export async function emulatorInfo(emu, what) {
  const res = await fetch(`${emu.endpoints.bedrock.replace(/\/+$/, '')}/_emulator/${what}`)
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status}`)
  return res.json()
}

export const runtimeRequests = (emu) => emulatorInfo(emu, 'runtime-requests')

/** Records job status changes seen through `client.on('job')`. */
export function recordJobEvents(client) {
  const events = []
  client.on('job', (job) => events.push({ ...job }))
  return events
}

/** The failures among outcomes, grouped: `["3 × rejected ValidationException: ..."]` (empty when all resolved). */
export function failures(outcomes) {
  const counts = new Map()
  for (const o of outcomes) {
    if (o.ok) continue
    const d = describe(o).replace(/recordId=\w+/, 'recordId=…')
    counts.set(d, (counts.get(d) ?? 0) + 1)
  }
  return [...counts].map(([d, n]) => `${n} × ${d}`)
}

/** Endpoints where nothing listens: any AWS call through them fails. */
export const DEAD_ENDPOINTS = {
  bedrock: 'http://127.0.0.1:9',
  bedrockRuntime: 'http://127.0.0.1:9',
  s3: 'http://127.0.0.1:9',
}

/** Jobs of the emulator whose names start with `namePrefix` (a test's jobNamePrefix). */
export async function jobsNamed(bedrock, namePrefix) {
  return (await listJobs(bedrock)).filter((j) => j.jobName.startsWith(namePrefix))
}

const JOURNAL_CHILD = fileURLToPath(new URL('./fixtures/journal-child.mjs', import.meta.url))

/**
 * Runs a fixture script with config `cfg` as its one argument; the script reports each event as
 * a JSON line on its stdout. Returns { child, events, exited, stderr() } to drive it; `stdin`
 * is 'ignore' or 'pipe'.
 */
export function startScript(script, cfg, { stdin = 'ignore' } = {}) {
  const child = spawn(process.execPath, [script, JSON.stringify(cfg)], {
    stdio: [stdin, 'pipe', 'pipe'],
    env: { ...process.env },
  })
  const events = []
  let buffer = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    buffer += d
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      events.push(JSON.parse(buffer.slice(0, i)))
      buffer = buffer.slice(i + 1)
    }
  })
  child.stderr.on('data', (d) => (stderr += d))
  // 'close': the process ended and its output was read to the end.
  const exited = new Promise((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr: () => stderr })),
  )
  return { child, events, exited, stderr: () => stderr }
}

/**
 * Runs fixtures/journal-child.mjs with config `cfg` (a client on a journal or a store that sends,
 * reporting each event as a JSON line); resolves with { child, events, exited } to drive it.
 */
export function startJournalChild(cfg) {
  return startScript(JOURNAL_CHILD, cfg)
}

/** The PostgreSQL server of the store tests (.ci/test starts one), or undefined. */
export const PG_URL = process.env.BEDROCK_BATCH_TEST_PG_URL

/**
 * Runs `fn(t)` when PG_URL is set; without it the test fails, unless BEDROCK_BATCH_SKIP_PG=1,
 * where it logs that it was skipped. `pgTest.serial` runs it serially in its file.
 */
export function pgTest(title, fn) {
  test(title, pgGate(fn))
}
pgTest.serial = (title, fn) => test.serial(title, pgGate(fn))

function pgGate(fn) {
  return async (t) => {
    if (!PG_URL) {
      if (process.env.BEDROCK_BATCH_SKIP_PG === '1') {
        t.log('skipped: no PostgreSQL (BEDROCK_BATCH_SKIP_PG=1)')
        t.pass()
        return
      }
      t.fail(
        'BEDROCK_BATCH_TEST_PG_URL is not set: this test needs a PostgreSQL server (bash .ci/postgres.sh start DIR prints a URL). Set BEDROCK_BATCH_SKIP_PG=1 to skip it.',
      )
      return
    }
    await fn(t)
  }
}

// ---------------------------------------------------------------------------
// `bedrock-batch-bridge serve` as a child process

export const CLI = fileURLToPath(new URL('../cli.js', import.meta.url))
/** The line serve prints on stdout once it listens. */
export const URL_LINE = /^AWS_ENDPOINT_URL_BEDROCK_RUNTIME=(http:\/\/\S+)$/m

/** The environment of a child: this one's, without what would point it elsewhere. */
export function childEnv(extra = {}) {
  const env = { ...process.env }
  for (const k of Object.keys(env)) {
    if (
      k.startsWith('BEDROCK_BATCH_') ||
      k.startsWith('AWS_ENDPOINT_URL') ||
      k === 'AWS_PROFILE' ||
      k === 'AWS_SESSION_TOKEN'
    )
      delete env[k]
  }
  return { ...env, AWS_EC2_METADATA_DISABLED: 'true', ...extra }
}

/**
 * Runs `node cli.js serve ...args`. `url` resolves with the URL it prints (rejects if it exits
 * first); `exited` with `{ code, signal, stdout, stderr, at }`; `kill()` ends it (teardown).
 */
export function spawnServe(args, env = childEnv()) {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const watchers = []
  const check = () => {
    for (const w of watchers.splice(0)) {
      const m = w.re.exec(w.stream === 'stdout' ? stdout : stderr)
      if (m) w.resolve(m)
      else watchers.push(w)
    }
  }
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d
    check()
  })
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d
    check()
  })
  const exited = new Promise((resolve) =>
    child.on('close', (code, signal) => {
      const out = { code, signal, stdout, stderr, at: performance.now() }
      for (const w of watchers.splice(0))
        w.reject(new Error(`serve exited (${code ?? signal}) before its ${w.stream} matched ${w.re}:\n${stderr}`))
      resolve(out)
    }),
  )
  const matches = (stream, re, timeoutMs = 30_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`serve's ${stream} did not match ${re} within ${timeoutMs} ms:\n${stderr}`)),
        timeoutMs,
      )
      const done = (f) => (v) => {
        clearTimeout(timer)
        f(v)
      }
      watchers.push({ stream, re, resolve: done(resolve), reject: done(reject) })
      check()
    })
  const url = matches('stdout', URL_LINE).then((m) => m[1])
  url.catch(() => {})
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  return { child, url, exited, kill, stderrMatches: (re, ms) => matches('stderr', re, ms) }
}

// ---------------------------------------------------------------------------
// `bedrock-batch-bridge dashboard` as a child process

/**
 * Runs `node cli.js dashboard ...args` (killed in teardown); resolves once it printed its URL:
 * `{ url (of /_bridge/), child, exited, stderr() }`; rejects when it exits first.
 */
export function startDashboard(t, args) {
  const child = spawn(process.execPath, [CLI, 'dashboard', '--port', '0', ...args], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d
  })
  const exited = new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  const url = new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d
      const m = /^(http:\/\/\S+\/_bridge\/)$/m.exec(stdout)
      if (m) resolve(m[1])
    })
    exited.then(({ code }) => reject(new Error(`dashboard exited (${code}) before printing its URL: ${stderr}`)))
  })
  return url.then((u) => ({ url: u, child, exited, stderr: () => stderr }))
}

/** A temporary folder, removed in teardown. */
export function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bbb-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The client options serve gets in its config file: the emulator, and a prefix of this test's own. */
export function serveConfig(emu, prefix, batch = {}) {
  return {
    region: emu.region,
    credentials: { ...emu.credentials },
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3, bedrockRuntime: emu.endpoints.bedrockRuntime },
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      jobNamePrefix: prefix,
      minBatchSize: 100,
      batchTimeout: 0.3,
      pollInterval: 0.05,
      ...batch,
    },
  }
}

/**
 * Starts serve for a test with a config file (`serveConfig` plus `batch`, then `config`),
 * `--port 0 --quiet`, `args` and `env`; killed in teardown. Resolves once it printed its URL.
 */
export async function startServe(
  t,
  emu,
  { batch = {}, config = {}, args = [], env = {}, prefix = unique('serve'), dir = tempDir(t) } = {},
) {
  const configFile = join(dir, `${prefix}.json`)
  writeFileSync(configFile, JSON.stringify({ ...serveConfig(emu, prefix, batch), ...config }))
  const proc = spawnServe(['--config', configFile, '--port', '0', '--quiet', ...args], childEnv(env))
  t.teardown(proc.kill)
  const url = await proc.url
  const stats = async () => {
    const res = await fetch(`${url}/_bridge/stats`)
    if (!res.ok) throw new Error(`GET ${url}/_bridge/stats: HTTP ${res.status} ${await res.text()}`)
    return res.json()
  }
  return { ...proc, url, prefix, dir, configFile, stats }
}

/**
 * A GET of `url` signed with SigV4 for service `bedrock` in `region` with `credentials`, as serve
 * and the dashboard check it under --auth; the fetch Response.
 */
export async function signedGet(url, region, credentials) {
  const u = new URL(url)
  const signer = new SignatureV4({ credentials, region, service: 'bedrock', sha256: Sha256 })
  const signed = await signer.sign(
    new HttpRequest({
      method: 'GET',
      protocol: u.protocol,
      hostname: u.hostname,
      port: Number(u.port),
      path: u.pathname,
      headers: { host: u.host },
    }),
  )
  return fetch(u, { headers: signed.headers })
}
