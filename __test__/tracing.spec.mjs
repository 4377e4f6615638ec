// OpenTelemetry traces (issue 22): with the SDK's in-memory exporter registered, every call is one
// span `bedrock.batch <operation>`, a child of the caller's active span, linked to the span of the
// job that answered it; no request body, idempotency key or credential in any span. Without
// @opentelemetry/api (a child process whose require cannot resolve it), the package still works.

import { spawn } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BedrockRuntimeClient, InvokeModelCommand as SdkInvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import { context, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import test from 'ava'

import {
  CLAUDE,
  childEnv,
  claudeBody,
  claudeCommand,
  makeClient,
  settle,
  startEmu,
  startServe,
  tempDir,
  unique,
  waitFor,
} from './helpers.mjs'

const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
const tracer = trace.getTracer('tracing.spec')

/** Runs `fn` inside a new span of the test's own (ended after), returning `[span, result]`. */
async function inSpan(name, fn) {
  const span = tracer.startSpan(name)
  try {
    return [span, await context.with(trace.setSpan(context.active(), span), fn)]
  } finally {
    span.end()
  }
}

/** An idempotency key's hash as spans carry it: the first 16 hex digits of its SHA-256. */
const hashOf = (key) => createHash('sha256').update(key).digest('hex').slice(0, 16)

/** Every finished span of trace `traceId`. */
const spansOf = (traceId) => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId)

/** Every string a span carries: its name, attribute values, event names and status message. */
function spanTexts(span) {
  return [
    span.name,
    ...Object.values(span.attributes).map(String),
    ...span.events.map((e) => e.name),
    span.status.message ?? '',
  ]
}

test('200 calls: 200 call spans, children of the caller span active at send, linked to the span of the job that answered', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.05, maxBatchSize: 100 } })
  const tag = randomUUID()
  const keys = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? `key-${tag}-${i}` : undefined))
  // Two caller spans, each sending 100 calls.
  const callers = await Promise.all(
    [0, 1].map((half) =>
      inSpan(`caller ${half}`, () =>
        Promise.all(
          Array.from({ length: 100 }, (_, j) => {
            const i = half * 100 + j
            return client.send(claudeCommand(`trace ${tag} ${i}`), keys[i] ? { idempotencyKey: keys[i] } : {})
          }),
        ),
      ),
    ),
  )
  const stats = client.stats()
  t.true(stats.jobs.length >= 2)
  for (const [half, [caller, outs]] of callers.entries()) {
    const spans = spansOf(caller.spanContext().traceId)
    const calls = spans.filter((s) => s.name === 'bedrock.batch InvokeModel')
    t.is(calls.length, 100, `caller ${half}`)
    const jobSpans = new Map(
      exporter
        .getFinishedSpans()
        .filter((s) => s.name === 'bedrock.batch job')
        .map((s) => [s.attributes['bedrock_batch.job_arn'], s]),
    )
    for (const c of calls) {
      t.is(c.parentSpanContext?.spanId, caller.spanContext().spanId)
      t.like(c.attributes, {
        'gen_ai.system': 'aws.bedrock',
        'gen_ai.request.model': CLAUDE,
        'bedrock_batch.operation': 'InvokeModel',
        'bedrock_batch.route': 'batch',
        'bedrock_batch.outcome': 'success',
      })
      t.true(c.attributes['gen_ai.usage.input_tokens'] > 0)
      t.true(c.attributes['gen_ai.usage.output_tokens'] > 0)
      const arn = c.attributes['bedrock_batch.job_arn']
      t.true(
        stats.jobs.some((j) => j.jobArn === arn),
        arn,
      )
      const job = jobSpans.get(arn)
      t.truthy(job, `the span of job ${arn}`)
      t.deepEqual(
        c.links.map((l) => l.context.spanId),
        [job.spanContext().spanId],
      )
    }
    // Each keyed call's span (found by its key's hash) names the job whose answer the call got
    // (the answer's request id is `<jobArn>#<record>`).
    const byHash = new Map(calls.map((c) => [c.attributes['bedrock_batch.key_hash'], c]))
    for (const [j, out] of outs.entries()) {
      const key = keys[half * 100 + j]
      if (!key) continue
      const span = byHash.get(hashOf(key))
      t.truthy(span, key)
      t.true(
        out.$metadata.requestId.startsWith(`${span.attributes['bedrock_batch.job_arn']}#`),
        out.$metadata.requestId,
      )
    }
  }
  const callSpans = exporter
    .getFinishedSpans()
    .filter(
      (s) =>
        s.name === 'bedrock.batch InvokeModel' &&
        callers.some(([c]) => c.spanContext().traceId === s.spanContext().traceId),
    )
  t.is(callSpans.length, 200)
  t.is(callSpans.filter((s) => 'bedrock_batch.key_hash' in s.attributes).length, 100)
  const hashes = new Set(keys.filter(Boolean).map(hashOf))
  for (const s of callSpans)
    if (s.attributes['bedrock_batch.key_hash']) t.true(hashes.has(s.attributes['bedrock_batch.key_hash']))

  // The job spans: one per job, ended with its status and record counts.
  for (const j of stats.jobs) {
    const spans = exporter
      .getFinishedSpans()
      .filter((s) => s.attributes['bedrock_batch.job_arn'] === j.jobArn && s.name === 'bedrock.batch job')
    t.is(spans.length, 1, j.jobArn)
    t.like(spans[0].attributes, {
      'bedrock_batch.job_name': j.jobName,
      'bedrock_batch.job_status': j.status,
      'bedrock_batch.records.total': j.totalRecordCount,
      'bedrock_batch.records.success': j.successRecordCount,
    })
    t.true(spans[0].events.some((e) => e.name === 'Completed'))
  }
})

test('a failed call: its span has the error status and type; no body, key or credential in any span', async (t) => {
  const { emu } = await startEmu(t)
  const canary = {
    body: `canary-body-${randomUUID()}`,
    key: `canary-key-${randomUUID()}`,
    token: `canary-token-${randomUUID()}`,
  }
  const { client } = makeClient(t, emu, {
    batch: { batchTimeout: 0.05 },
    credentials: { ...emu.credentials, sessionToken: canary.token },
  })
  const [caller, results] = await inSpan('caller', () =>
    Promise.all([
      settle(client.send(claudeCommand(`${canary.body} ok`), { idempotencyKey: canary.key })),
      settle(client.send(claudeCommand(`${canary.body} [[error:400]]`), { idempotencyKey: `${canary.key}-2` })),
    ]),
  )
  t.true(results[0].ok)
  t.false(results[1].ok)
  const spans = spansOf(caller.spanContext().traceId).filter((s) => s.name === 'bedrock.batch InvokeModel')
  t.is(spans.length, 2)
  const failed = spans.find((s) => s.attributes['bedrock_batch.outcome'] === 'error')
  t.is(failed.status.code, SpanStatusCode.ERROR)
  t.is(failed.attributes['error.type'], results[1].error.name)
  const jobSpans = exporter.getFinishedSpans().filter((s) => s.name === 'bedrock.batch job')
  for (const s of [...spans, ...jobSpans])
    for (const text of spanTexts(s))
      for (const c of [...Object.values(canary), emu.credentials.secretAccessKey])
        t.false(text.includes(c), `${s.name}: ${text}`)
})

test("calls sent on-demand (belowMinimum 'direct') have the on-demand route and no job", async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60, minBatchSize: 100, belowMinimum: 'direct' } })
  const [caller, outs] = await inSpan('caller', async () => {
    const calls = [0, 1, 2].map((i) => client.send(claudeCommand(`direct ${i}`)))
    await client.flush()
    return Promise.all(calls)
  })
  t.is(outs.length, 3)
  const s = client.stats()
  t.is(s.jobs.length, 0)
  t.is(s.sentDirect, 3)
  const spans = spansOf(caller.spanContext().traceId).filter((x) => x.name === 'bedrock.batch InvokeModel')
  t.is(spans.length, 3)
  for (const span of spans) {
    t.is(span.parentSpanContext?.spanId, caller.spanContext().spanId)
    t.like(span.attributes, { 'bedrock_batch.route': 'on-demand', 'bedrock_batch.outcome': 'success' })
    t.false('bedrock_batch.job_arn' in span.attributes)
    t.deepEqual(span.links, [])
    t.true(span.attributes['gen_ai.usage.input_tokens'] > 0)
  }
})

test('serve with the SDK preloaded: one span per call, linked to its job span, keyed by the hash of its invocation id', async (t) => {
  const { emu } = await startEmu(t)
  const spansFile = join(tempDir(t), 'spans.jsonl')
  const register = fileURLToPath(new URL('./fixtures/otel/register.cjs', import.meta.url))
  const srv = await startServe(t, emu, {
    batch: { batchTimeout: 0.05 },
    env: { NODE_OPTIONS: `--require ${register}`, OTEL_TEST_SPANS_FILE: spansFile },
  })
  const runtime = new BedrockRuntimeClient({
    region: emu.region,
    endpoint: srv.url,
    credentials: { accessKeyId: 'AKIDCALLER', secretAccessKey: 'caller-secret' },
    maxAttempts: 1,
  })
  t.teardown(() => runtime.destroy())
  // The invocation ids the SDK sends, read off its requests.
  const invocationIds = []
  runtime.middlewareStack.add(
    (next) => async (args) => {
      invocationIds.push(args.request.headers['amz-sdk-invocation-id'])
      return next(args)
    },
    { step: 'finalizeRequest', name: 'recordInvocationId' },
  )
  const canary = `serve-trace-${randomUUID()}`
  await Promise.all(
    [0, 1, 2].map((i) =>
      runtime.send(
        new SdkInvokeModelCommand({
          modelId: CLAUDE,
          contentType: 'application/json',
          body: JSON.stringify(claudeBody(`${canary} ${i}`)),
        }),
      ),
    ),
  )
  const read = () =>
    existsSync(spansFile)
      ? readFileSync(spansFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l))
      : []
  const spans = await waitFor('the spans of 3 calls and their job', () => {
    const all = read()
    return all.filter((s) => s.name === 'bedrock.batch InvokeModel').length === 3 &&
      all.some((s) => s.name === 'bedrock.batch job')
      ? all
      : null
  })
  const job = spans.find((s) => s.name === 'bedrock.batch job')
  const calls = spans.filter((s) => s.name === 'bedrock.batch InvokeModel')
  t.is(invocationIds.length, 3)
  t.deepEqual(
    calls.map((c) => c.attributes['bedrock_batch.key_hash']).sort(),
    invocationIds.map((id) => hashOf(`amz-sdk-invocation-id:${id}`)).sort(),
  )
  for (const c of calls) {
    t.like(c.attributes, {
      'bedrock_batch.route': 'batch',
      'bedrock_batch.job_arn': job.attributes['bedrock_batch.job_arn'],
      'bedrock_batch.outcome': 'success',
    })
    t.deepEqual(c.links, [job.spanId])
  }
  const text = readFileSync(spansFile, 'utf8')
  for (const c of [canary, 'caller-secret', ...invocationIds]) t.false(text.includes(c), c)
})

test('without @opentelemetry/api the package loads and answers calls', async (t) => {
  const { emu } = await startEmu(t)
  const script = fileURLToPath(new URL('./fixtures/no-otel/calls.cjs', import.meta.url))
  const hook = fileURLToPath(new URL('./fixtures/no-otel/hide-otel.cjs', import.meta.url))
  const env = childEnv({
    BEDROCK_BATCH_TEST_EMU: JSON.stringify({
      region: emu.region,
      credentials: emu.credentials,
      endpoints: emu.endpoints,
      bucket: emu.bucket,
      prefix: unique('no-otel'),
    }),
  })
  const child = spawn(process.execPath, ['--require', hook, script], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d
  })
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d
  })
  const code = await new Promise((resolve) => child.on('close', resolve))
  t.is(code, 0, stderr)
  const out = JSON.parse(stdout.trim().split('\n').at(-1))
  t.false(out.apiResolvable, 'the child cannot resolve @opentelemetry/api')
  t.deepEqual(
    out.answers,
    [0, 1, 2].map((i) => `This is the emulator's answer to: no otel ${i}`),
  )
  t.is(out.jobs, 1)
  t.true(out.metricsBytes > 0)
})
