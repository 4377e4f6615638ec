// The door behaviour suite: what a caller sees through each of the four doors (`DOORS`), written
// once and run through each, against the emulator: answers (the record's own, with its request id),
// errors (a bad request, a record's error, a failed job), abort, and the two streaming commands.
//
// Each door is driven as its users drive it, with the AWS SDK's command classes and output shapes:
// - client: the drop-in `BatchInferenceClient` (`BedrockRuntimeClient` of this package) with this
//   package's commands;
// - plugin: `batchPlugin` on a real `@aws-sdk/client-bedrock-runtime` `BedrockRuntimeClient`,
//   whose own endpoint is dead (a call the plugin let through would fail);
// - batchFetch: the `fetch` of a real `BedrockRuntimeClient` (the SDK's FetchHttpHandler with
//   `customFetch`), at the region's runtime host; the underlying fetch refuses every call;
// - serve: `bedrock-batch-bridge serve` as a child process, a real `BedrockRuntimeClient` pointed
//   at its URL.
// Each test title starts with the door's name; where the doors differ on purpose, the title says
// how. Batches form by size (`maxBatchSize`, a batch timeout of 10 minutes) or at close(), never
// by a timer. What only one door does stays in its own spec (client: engine-*.spec, stream.spec;
// plugin: plugin*.spec; batchFetch: fetch.spec; serve: serve.spec).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NodeHttp2Handler } from '@smithy/node-http-handler'
import test from 'ava'

import {
  bridge,
  CLAUDE,
  childEnv,
  claudeBody,
  claudePrompt,
  inputRecords,
  jobIdOf,
  jobsNamed,
  ROLE_ARN,
  readJobOutput,
  settle,
  spawnServe,
  startEmu,
  unique,
  waitFor,
} from './helpers.mjs'

const require = createRequire(import.meta.url)
const sdk = require('@aws-sdk/client-bedrock-runtime')
// The SDK's own fetch handler (what its browser build uses), as the SDK resolves it.
const { FetchHttpHandler } = createRequire(require.resolve('@aws-sdk/client-bedrock-runtime'))(
  '@smithy/fetch-http-handler',
)

const ANSWER = "This is the emulator's answer to: "
/** `$metadata.requestId` of a batch answer: `<jobArn>#R<ten digits>` (the record's id). */
const BATCH_REQUEST_ID = /^(arn:aws:bedrock:[a-z0-9-]+:\d{12}:model-invocation-job\/[a-z0-9]{12})#(R\d{10})$/
/** What the callers of serve sign with (serve checks no signatures here). */
const CALLER = { accessKeyId: 'test-dummy-access-key', secretAccessKey: 'test-dummy-secret-key' }
/** An abort settles its call in a few microtasks; this bounds how long a door that ignores it keeps a test. */
const AT_ONCE_MS = 3000

// ---------------------------------------------------------------------------
// The doors

/** The batch options every door gets: batches form by size or at close(); no retry of a record. */
function batchOptions(emu, prefix, batch) {
  return {
    s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
    s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
    roleArn: ROLE_ARN,
    jobNamePrefix: prefix,
    minBatchSize: 1,
    maxBatchSize: 100,
    batchTimeout: 600,
    pollInterval: 0.05,
    maxAttempts: 1,
    ...batch,
  }
}

/** A BedrockRuntimeClient of the SDK with `config`, destroyed in teardown. */
function sdkRuntime(t, emu, config) {
  const runtime = new sdk.BedrockRuntimeClient({
    region: emu.region,
    credentials: { ...emu.credentials },
    maxAttempts: 1,
    ...config,
  })
  t.teardown(() => runtime.destroy())
  return runtime
}

/**
 * Each door: `open(t, emu, prefix, batch)` gives `{ send(command, options), queued(), close() }`
 * over the door, `commands` are the command classes its callers use, `wire` says whether its
 * answers cross HTTP (then an error the SDK does not model is the SDK's
 * BedrockRuntimeServiceException of that name), and `abortKeepsCall` whether a call aborted while
 * it waits stays in its batch (serve: an SDK that gave up may retry with the same invocation id,
 * and the retry joins it).
 */
const DOORS = [
  {
    name: 'client',
    commands: bridge,
    wire: false,
    abortKeepsCall: false,
    async open(t, emu, prefix, batch) {
      const client = new bridge.BatchInferenceClient({
        region: emu.region,
        credentials: emu.credentials,
        endpoints: emu.endpoints,
        batch: batchOptions(emu, prefix, batch),
      })
      t.teardown(() => client.destroy())
      return {
        send: (command, options) => client.send(command, options),
        queued: async () => client.stats().queued,
        close: () => client.close(),
      }
    },
  },
  {
    name: 'plugin',
    commands: sdk,
    wire: false,
    abortKeepsCall: false,
    async open(t, emu, prefix, batch) {
      const runtime = sdkRuntime(t, emu, { endpoint: 'http://127.0.0.1:9' })
      const plugin = bridge.batchPlugin({
        client: runtime,
        endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
        batch: batchOptions(emu, prefix, batch),
      })
      t.teardown(() => plugin.destroy())
      runtime.middlewareStack.use(plugin)
      return {
        send: (command, options) => runtime.send(command, options),
        queued: async () => plugin.stats().queued,
        close: () => plugin.close(),
      }
    },
  },
  {
    name: 'batchFetch',
    commands: sdk,
    wire: true,
    abortKeepsCall: false,
    async open(t, emu, prefix, batch) {
      const fetchFn = bridge.batchFetch({
        region: emu.region,
        credentials: emu.credentials,
        endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
        fetch: (input) => Promise.reject(new Error(`passed to the underlying fetch: ${input.url ?? input}`)),
        batch: batchOptions(emu, prefix, batch),
      })
      t.teardown(() => fetchFn.destroy())
      // No endpoint: the SDK calls the region's runtime host, which batchFetch answers.
      const runtime = sdkRuntime(t, emu, { requestHandler: new FetchHttpHandler({ customFetch: fetchFn }) })
      return {
        send: (command, options) => runtime.send(command, options),
        queued: async () => fetchFn.stats().queued,
        close: () => fetchFn.close(),
      }
    },
  },
  {
    name: 'serve',
    commands: sdk,
    wire: true,
    abortKeepsCall: true,
    async open(t, emu, prefix, batch) {
      const dir = mkdtempSync(join(tmpdir(), 'bbb-doors-'))
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const config = join(dir, 'serve.json')
      writeFileSync(
        config,
        JSON.stringify({
          region: emu.region,
          credentials: { ...emu.credentials },
          endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
          batch: batchOptions(emu, prefix, batch),
        }),
      )
      // --drain: SIGTERM sends what is queued and answers every call before the process exits.
      const serve = spawnServe(['--config', config, '--port', '0', '--quiet', '--drain'], childEnv())
      t.teardown(serve.kill)
      const url = await serve.url
      // HTTP/2, the runtime client's default handler, said here: serve.spec.mjs covers HTTP/1.1.
      const runtime = sdkRuntime(t, emu, { endpoint: url, credentials: CALLER, requestHandler: new NodeHttp2Handler() })
      return {
        send: (command, options) => runtime.send(command, options),
        queued: async () => (await (await fetch(`${url}/_bridge/stats`)).json()).queued,
        async close() {
          serve.child.kill('SIGTERM')
          const exit = await serve.exited
          if (exit.code !== 0) throw new Error(`serve exited with ${exit.code ?? exit.signal}: ${exit.stderr}`)
        },
      }
    },
  },
]

/**
 * Registers `fn(t, ctx)` once per door, titled `<door>: <title>`. `ctx`: the door opened on a
 * fresh emulator (`ctx.send`, `ctx.queued`, `ctx.close`, `ctx.door`), with the emulator and its
 * clients, the test's `prefix` (its S3 prefix and job name prefix). `options.batch` adds batch
 * options; `options.emulator` the emulator's.
 */
function doorTest(title, options, fn) {
  for (const door of DOORS) {
    test(`${door.name}: ${title}`, async (t) => {
      const started = await startEmu(t, { minRecords: 1, ...options.emulator })
      const prefix = unique(`door-${door.name}`)
      const opened = await door.open(t, started.emu, prefix, options.batch ?? {})
      await fn(t, { ...started, ...opened, door, prefix })
    })
  }
}

// ---------------------------------------------------------------------------
// Commands and what they give

function invoke(door, text) {
  return new door.commands.InvokeModelCommand({
    modelId: CLAUDE,
    contentType: 'application/json',
    accept: 'application/json',
    body: JSON.stringify(claudeBody(text)),
  })
}

function converseInput(text, extra = {}) {
  return {
    modelId: CLAUDE,
    messages: [{ role: 'user', content: [{ text }] }],
    inferenceConfig: { maxTokens: 200 },
    ...extra,
  }
}

const textOf = (out) => JSON.parse(Buffer.from(out.body).toString('utf8')).content[0].text

async function collect(iterable) {
  const out = []
  for await (const e of iterable) out.push(e)
  return out
}

/** The job ARN and record id of a batch answer's request id (fails the test when it is not one). */
function recordOf(t, requestId) {
  const m = BATCH_REQUEST_ID.exec(requestId ?? '')
  t.truthy(m, `the request id ${requestId} is <jobArn>#<recordId>`)
  return m ? { jobArn: m[1], recordId: m[2] } : {}
}

/** The output line of a record, as the emulator's job wrote it to S3. */
async function outputLine(ctx, { jobArn, recordId }) {
  const { records } = await readJobOutput(ctx.s3, ctx.emu.bucket, `${ctx.prefix}/out`, jobIdOf(jobArn))
  return records.find((r) => r.recordId === recordId)
}

/** The outcome of `promise` (see `settle`), or `{ pending: true }` if it has not settled within `ms`. */
async function within(promise, ms = AT_ONCE_MS) {
  let timer
  const bound = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ pending: true }), ms)
  })
  try {
    return await Promise.race([settle(promise), bound])
  } finally {
    clearTimeout(timer)
  }
}

function assertAbortError(t, o, what) {
  t.false(Boolean(o.pending), `${what}: settled at once`)
  t.false(Boolean(o.ok), `${what}: rejected`)
  t.is(o.error?.name, 'AbortError', `${what}: ${o.error?.name}: ${o.error?.message}`)
}

// ---------------------------------------------------------------------------
// Answers

doorTest(
  "an InvokeModel answer is its record's own output, byte for byte, with the request id <jobArn>#<recordId>",
  { batch: { maxBatchSize: 1 } },
  async (t, ctx) => {
    const prompt = `Door answer ${ctx.prefix}`
    const out = await ctx.send(invoke(ctx.door, prompt))
    t.true(out.body instanceof Uint8Array, 'the body is a Uint8Array')
    t.is(typeof out.body.transformToString, 'function', 'with transformToString()')
    t.is(out.body.transformToString(), Buffer.from(out.body).toString('utf8'))
    t.is(out.contentType, 'application/json')
    t.is(out.$metadata.httpStatusCode, 200)
    t.is(textOf(out), `${ANSWER}${prompt}`)
    const record = recordOf(t, out.$metadata.requestId)
    const [job] = await jobsNamed(ctx.bedrock, ctx.prefix)
    t.is(record.jobArn, job?.jobArn, "the request id names the door's one job")
    const line = await outputLine(ctx, record)
    t.truthy(line, `the job wrote record ${record.recordId}`)
    t.true(
      Buffer.from(out.body).equals(Buffer.from(JSON.stringify(line.modelOutput))),
      `the body is the record's modelOutput, byte for byte:\n${Buffer.from(out.body)}\n${JSON.stringify(line.modelOutput)}`,
    )
    t.is(claudePrompt(line.modelInput), prompt, "and that record is this call's")
  },
)

doorTest(
  "Converse answers are their records' own, in the SDK's ConverseCommand output shape, from one Converse-type job",
  { batch: { maxBatchSize: 3 } },
  async (t, ctx) => {
    const prompts = [0, 1, 2].map((i) => `Door converse ${i} ${ctx.prefix}`)
    const outs = await Promise.all(
      prompts.map((p) => ctx.send(new ctx.door.commands.ConverseCommand(converseInput(p)))),
    )
    const [job, ...more] = await jobsNamed(ctx.bedrock, ctx.prefix)
    t.deepEqual(more, [], 'one job')
    t.is(job?.modelInvocationType, 'Converse', 'a Converse-type job')
    for (const [i, out] of outs.entries()) {
      t.is(out.$metadata.httpStatusCode, 200)
      t.deepEqual(out.output, { message: { role: 'assistant', content: [{ text: `${ANSWER}${prompts[i]}` }] } })
      t.is(out.stopReason, 'end_turn')
      t.is(out.usage.totalTokens, out.usage.inputTokens + out.usage.outputTokens)
      t.is(typeof out.metrics?.latencyMs, 'number')
      const record = recordOf(t, out.$metadata.requestId)
      t.is(record.jobArn, job?.jobArn)
      const line = await outputLine(ctx, record)
      t.like(line?.modelOutput, { output: out.output, stopReason: out.stopReason, usage: out.usage }, `call ${i}`)
    }
  },
)

// ---------------------------------------------------------------------------
// Errors

doorTest(
  'a bad request rejects alone, before its batch, with ValidationException naming the member; the rest of the batch answers',
  { batch: { maxBatchSize: 3 } },
  async (t, ctx) => {
    const { commands } = ctx.door
    // A Converse request with tools goes as a native Claude record: a role Claude has not cannot.
    const badRole = settle(
      ctx.send(
        new commands.ConverseCommand(
          converseInput('a robot speaks', {
            messages: [{ role: 'robot', content: [{ text: 'a robot speaks' }] }],
            toolConfig: { tools: [{ toolSpec: { name: 'lookup', inputSchema: { json: { type: 'object' } } } }] },
          }),
        ),
      ),
    )
    const notJson = settle(
      ctx.send(
        new commands.InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body: '{"not json' }),
      ),
    )
    const good = [0, 1, 2].map((i) => settle(ctx.send(invoke(ctx.door, `good ${i} ${ctx.prefix}`))))
    for (const [what, o, message] of [
      ['the Converse request with a robot', await badRole, /messages\[0\]\.role/],
      ['the InvokeModel body that is not JSON', await notJson, /not valid JSON/],
    ]) {
      t.false(o.ok, `${what} rejected`)
      t.is(o.error?.name, 'ValidationException', `${what}: ${o.error?.name}: ${o.error?.message}`)
      t.true(o.error instanceof sdk.ValidationException, `${what}: the SDK's ValidationException`)
      t.is(o.error?.$metadata?.httpStatusCode, 400)
      t.regex(o.error?.message ?? '', message)
    }
    const answers = await Promise.all(good)
    const jobs = new Set()
    for (const [i, o] of answers.entries()) {
      t.true(o.ok, `good ${i}: ${o.error?.name}: ${o.error?.message}`)
      if (!o.ok) continue
      t.is(textOf(o.value), `${ANSWER}good ${i} ${ctx.prefix}`)
      jobs.add(recordOf(t, o.value.$metadata.requestId).jobArn)
    }
    const [job, ...more] = await jobsNamed(ctx.bedrock, ctx.prefix)
    t.deepEqual(more, [], 'one job')
    t.deepEqual([...jobs], [job?.jobArn], 'the good calls were one batch')
    t.is(job?.totalRecordCount, 3, 'of the three good calls only')
  },
)

/**
 * A marker per record error, with the AWS exception and status it maps to (docs/emulator.md,
 * "Fault markers": another 4xx is a 400 ValidationException, another code a 500
 * InternalServerException).
 */
const RECORD_ERRORS = [
  [400, 'ValidationException', 400],
  [403, 'AccessDeniedException', 403],
  [404, 'ResourceNotFoundException', 404],
  [408, 'ModelTimeoutException', 408],
  [409, 'ValidationException', 400],
  [424, 'ModelErrorException', 424],
  [429, 'ThrottlingException', 429],
  [500, 'InternalServerException', 500],
  [502, 'InternalServerException', 500],
  [503, 'ServiceUnavailableException', 503],
]

doorTest(
  "a record's error rejects its call with the AWS exception of its status, the SDK's class; the other calls of its job answer",
  { batch: { maxBatchSize: RECORD_ERRORS.length + 1 } },
  async (t, ctx) => {
    const failing = RECORD_ERRORS.map(([code]) => settle(ctx.send(invoke(ctx.door, `fails [[error:${code}]]`))))
    const fine = await ctx.send(invoke(ctx.door, `answered ${ctx.prefix}`))
    t.is(textOf(fine), `${ANSWER}answered ${ctx.prefix}`)
    const { jobArn } = recordOf(t, fine.$metadata.requestId)
    for (const [i, [code, name, status]] of RECORD_ERRORS.entries()) {
      const o = await failing[i]
      t.false(o.ok, `[[error:${code}]] rejected`)
      const e = o.error
      t.is(e?.name, name, `[[error:${code}]]: ${e?.name}: ${e?.message}`)
      t.true(e instanceof sdk[name], `[[error:${code}]]: the SDK's ${name}`)
      t.is(e?.$metadata?.httpStatusCode, status, `[[error:${code}]]: its status`)
      const record = recordOf(t, e?.$metadata?.requestId)
      t.is(record.jobArn, jobArn, `[[error:${code}]]: a record of the same job`)
      if (!ctx.door.wire) t.like(e, { jobArn, recordId: record.recordId }, `[[error:${code}]]: jobArn and recordId`)
    }
    const [job] = await jobsNamed(ctx.bedrock, ctx.prefix)
    t.like(job, { jobArn, totalRecordCount: RECORD_ERRORS.length + 1, errorRecordCount: RECORD_ERRORS.length })
  },
)

doorTest(
  "a failed job rejects its calls with BatchJobFailedException (the package's class; over HTTP, the SDK's service exception of that name)",
  { batch: { maxBatchSize: 2 } },
  async (t, ctx) => {
    const calls = [
      settle(ctx.send(invoke(ctx.door, 'this job fails [[job:failed]]'))),
      settle(ctx.send(invoke(ctx.door, `in the failed job ${ctx.prefix}`))),
    ]
    const [job] = await waitFor('the job to fail', async () => {
      const jobs = await jobsNamed(ctx.bedrock, ctx.prefix)
      return jobs.length === 1 && jobs[0].status === 'Failed' && jobs
    })
    for (const [i, o] of (await Promise.all(calls)).entries()) {
      t.false(o.ok, `call ${i} rejected`)
      const e = o.error
      t.is(e?.name, 'BatchJobFailedException', `call ${i}: ${e?.name}: ${e?.message}`)
      if (ctx.door.wire) {
        t.true(e instanceof sdk.BedrockRuntimeServiceException, `call ${i}: the SDK's service exception`)
        t.is(e?.$metadata?.httpStatusCode, 400)
        t.is(recordOf(t, e?.$metadata?.requestId).jobArn, job.jobArn, `call ${i}: the request id names the job`)
      } else {
        t.true(e instanceof bridge.BatchJobFailedException, `call ${i}: the package's BatchJobFailedException`)
        t.is(e?.jobArn, job.jobArn)
        t.is(e?.status, 'Failed')
      }
      t.true((e?.message ?? '').length > 0)
    }
  },
)

// ---------------------------------------------------------------------------
// Abort

doorTest(
  'a signal aborted before the send rejects with AbortError at once, and nothing is queued or sent',
  {},
  async (t, ctx) => {
    const reason = new Error('the user went away')
    const { commands } = ctx.door
    assertAbortError(
      t,
      await within(ctx.send(invoke(ctx.door, 'pre-aborted'), { abortSignal: AbortSignal.abort(reason) })),
      'InvokeModel',
    )
    assertAbortError(
      t,
      await within(
        ctx.send(new commands.ConverseStreamCommand(converseInput('pre-aborted stream')), {
          abortSignal: AbortSignal.abort(),
        }),
      ),
      'ConverseStream',
    )
    t.is(await ctx.queued(), 0)
    await ctx.close()
    t.deepEqual(await jobsNamed(ctx.bedrock, ctx.prefix), [], 'no job')
  },
)

doorTest(
  'a call aborted while it waits for its batch rejects with AbortError at once and the others are answered; it leaves the batch (serve: it stays, for a retry of it to join)',
  {},
  async (t, ctx) => {
    const victim = new AbortController()
    const live = new AbortController()
    const tag = ctx.prefix
    const others = [
      settle(ctx.send(invoke(ctx.door, `${tag} other 0`))),
      settle(ctx.send(invoke(ctx.door, `${tag} other 1`), { abortSignal: live.signal })),
    ]
    const aborted = ctx.send(invoke(ctx.door, `${tag} victim`), { abortSignal: victim.signal })
    await waitFor('the three calls to be queued', async () => (await ctx.queued()) === 3)
    victim.abort()
    assertAbortError(t, await within(aborted), 'the aborted call')
    if (!ctx.door.abortKeepsCall)
      await waitFor('the aborted call to leave the queue', async () => (await ctx.queued()) === 2)
    t.deepEqual(await jobsNamed(ctx.bedrock, ctx.prefix), [], 'no batch was sent before the rejection')

    await ctx.close()
    for (const [i, o] of (await Promise.all(others)).entries()) {
      t.true(o.ok, `other ${i}: ${o.error?.name}: ${o.error?.message}`)
      if (o.ok) t.is(textOf(o.value), `${ANSWER}${tag} other ${i}`)
    }
    const uploaded = (await inputRecords(ctx.s3, ctx.emu.bucket, `${ctx.prefix}/in/`)).map((r) =>
      claudePrompt(r.modelInput),
    )
    t.deepEqual(
      uploaded.sort(),
      [`${tag} other 0`, `${tag} other 1`, ...(ctx.door.abortKeepsCall ? [`${tag} victim`] : [])].sort(),
      ctx.door.abortKeepsCall ? 'the aborted call stayed in the batch' : 'the aborted call was never uploaded',
    )
  },
)

// ---------------------------------------------------------------------------
// Streaming

doorTest(
  "InvokeModelWithResponseStream delivers the Claude stream chunks of its record's answer",
  { batch: { maxBatchSize: 1 } },
  async (t, ctx) => {
    const prompt = `Door chunks ${ctx.prefix}`
    const out = await ctx.send(
      new ctx.door.commands.InvokeModelWithResponseStreamCommand({
        modelId: CLAUDE,
        contentType: 'application/json',
        body: JSON.stringify(claudeBody(prompt)),
      }),
    )
    t.is(out.$metadata.httpStatusCode, 200)
    t.is(out.contentType, 'application/json')
    const record = recordOf(t, out.$metadata.requestId)
    const events = await collect(out.body)
    t.true(
      events.every((e) => e.chunk?.bytes instanceof Uint8Array),
      'every event is a chunk of bytes',
    )
    const payloads = events.map((e) => JSON.parse(Buffer.from(e.chunk.bytes).toString('utf8')))
    t.deepEqual(
      payloads.map((p) => p.type),
      [
        'message_start',
        'content_block_start',
        ...payloads.slice(2, -3).map(() => 'content_block_delta'),
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
    )
    t.is(
      payloads
        .filter((p) => p.type === 'content_block_delta')
        .map((p) => p.delta.text)
        .join(''),
      `${ANSWER}${prompt}`,
    )
    const [job] = await jobsNamed(ctx.bedrock, ctx.prefix)
    t.is(record.jobArn, job?.jobArn)
    t.is(job?.modelInvocationType ?? 'InvokeModel', 'InvokeModel', 'an InvokeModel-type job')
    const line = await outputLine(ctx, record)
    t.is(payloads[0].message.id, line?.modelOutput?.id, "the stream is the record's answer")
    t.is(payloads.at(-2).delta.stop_reason, line?.modelOutput?.stop_reason)
    const metrics = payloads.at(-1)['amazon-bedrock-invocationMetrics']
    t.is(metrics?.inputTokenCount, line?.modelOutput?.usage?.input_tokens)
    t.is(metrics?.outputTokenCount, line?.modelOutput?.usage?.output_tokens)
  },
)

doorTest(
  "ConverseStream delivers the events of its record's answer",
  { batch: { maxBatchSize: 1 } },
  async (t, ctx) => {
    const prompt = `Door converse stream ${ctx.prefix}`
    const out = await ctx.send(new ctx.door.commands.ConverseStreamCommand(converseInput(prompt)))
    t.is(out.$metadata.httpStatusCode, 200)
    const record = recordOf(t, out.$metadata.requestId)
    const events = await collect(out.stream)
    const names = events.map((e) => Object.keys(e)[0])
    t.deepEqual(events[0], { messageStart: { role: 'assistant' } })
    t.deepEqual(names.slice(-3), ['contentBlockStop', 'messageStop', 'metadata'], names.join(' '))
    t.true(
      names.slice(1, -3).every((n) => n === 'contentBlockDelta'),
      names.join(' '),
    )
    t.is(events.map((e) => e.contentBlockDelta?.delta?.text ?? '').join(''), `${ANSWER}${prompt}`)
    const [job] = await jobsNamed(ctx.bedrock, ctx.prefix)
    t.is(record.jobArn, job?.jobArn)
    t.is(job?.modelInvocationType, 'Converse', 'a Converse-type job')
    const line = await outputLine(ctx, record)
    t.is(events.at(-2).messageStop.stopReason, line?.modelOutput?.stopReason)
    t.deepEqual(events.at(-1).metadata.usage, line?.modelOutput?.usage, "the record's usage")
    t.is(typeof events.at(-1).metadata.metrics?.latencyMs, 'number')
  },
)
