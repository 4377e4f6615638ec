// Helpers for the end-to-end tests of the batch engine (engine-*.spec.mjs): the JS client
// (index.js, over the built addon) against the local emulator, with the real AWS SDKs to look
// at what the emulator saw.
//
// Expectations come from issue 3 and ../shared/design.md §2–§4, never from the engine's code.

import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

import { BedrockClient, GetModelInvocationJobCommand, ListModelInvocationJobsCommand, StopModelInvocationJobCommand } from '@aws-sdk/client-bedrock'
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime'
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3'

const require = createRequire(import.meta.url)
export const INDEX_JS = require.resolve('../index.js')
export const bridge = require('../index.js')
export const { startEmulator, BatchInferenceClient, InvokeModelCommand } = bridge
export { performance, sleep }

export const ROLE_ARN = 'arn:aws:iam::123456789012:role/BedrockBatch'
export const CLAUDE = 'anthropic.claude-3-haiku-20240307-v1:0'
export const NOVA = 'amazon.nova-lite-v1:0'
export const TERMINAL = ['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']

/** A key segment no other test uses. */
export function unique(label = 't') {
  return `${label}-${randomBytes(5).toString('hex')}`
}

export function claudeBody(text, extra = {}) {
  return { anthropic_version: 'bedrock-2023-05-31', max_tokens: 256, messages: [{ role: 'user', content: text }], ...extra }
}

export function novaBody(text) {
  return { schemaVersion: 'messages-v1', messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 200 } }
}

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
 * Starts an emulator (fast profile unless told otherwise), registers its stop as teardown, and
 * returns it with SDK clients for it.
 */
export async function startEmu(t, options = {}) {
  const emu = await startEmulator({ profile: 'fast', ...options })
  t.teardown(() => emu.stop())
  const common = { region: emu.region, credentials: { ...emu.credentials } }
  const bedrock = new BedrockClient({ ...common, endpoint: emu.endpoints.bedrock, maxAttempts: 1 })
  const runtime = new BedrockRuntimeClient({ ...common, endpoint: emu.endpoints.bedrockRuntime, maxAttempts: 1 })
  // S3 reads by the test retry (an emulator may be told to fail the first S3 calls).
  const s3 = new S3Client({ ...common, endpoint: emu.endpoints.s3, forcePathStyle: true })
  t.teardown(() => {
    bedrock.destroy()
    runtime.destroy()
    s3.destroy()
  })
  return { emu, bedrock, runtime, s3 }
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
    const res = await bedrock.send(new ListModelInvocationJobsCommand({ maxResults: 100, nextToken, sortOrder: 'Ascending' }))
    jobs.push(...(res.invocationJobSummaries ?? []))
    nextToken = res.nextToken
  } while (nextToken)
  return jobs
}

export async function getJob(bedrock, jobIdentifier) {
  return bedrock.send(new GetModelInvocationJobCommand({ jobIdentifier }))
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

export { listKeys } from './helpers.mjs'

import { listKeys } from './helpers.mjs'

export async function getText(s3, bucket, key) {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return res.Body.transformToString()
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

/** The entries the emulator logged for runtime (on-demand) calls. */
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
