// batchFetch (lib/fetch.js over lib/wire.js): a WHATWG `fetch` whose Bedrock runtime calls run as
// batch jobs. Real libraries that sign their own calls and take a custom `fetch` (the Vercel AI
// SDK's `@ai-sdk/amazon-bedrock` with `ai`, Anthropic's `@anthropic-ai/bedrock-sdk`) get their
// own answers from batch jobs, counted at the emulator (ListModelInvocationJobs filtered by the
// test's jobNamePrefix, with each job's record counts); everything that is not a runtime call
// reaches the underlying fetch untouched; answers and errors are shaped as the Bedrock runtime's
// (status, content type, x-amzn-requestid, token-count headers, event-stream framing,
// x-amzn-errortype + JSON `message`).
//
// The AI SDK needs Node >= 22: its tests fail (never skip) on an older Node. CI runs this file as
// `PATH=/work/main/.cache/node-runtimes/22:$PATH npx ava __test__/fetch.spec.mjs`.
//
// Where a test needs its calls in one batch, the batch timeout is long and the test flushes once
// the calls are queued (`stats().queued`), so no batch depends on timing.

import { once } from 'node:events'
import { createServer } from 'node:http'
import { crc32 } from 'node:zlib'
import { AnthropicBedrock } from '@anthropic-ai/bedrock-sdk'
import { ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'
import { InvokeModelCommand as SdkInvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'
import {
  BatchInferenceClient,
  bridge,
  CLAUDE,
  claudeBody,
  converseBody,
  inputRecords,
  MODELS,
  ROLE_ARN,
  runtimeRequests,
  settle,
  startEmu,
  unique,
  waitFor,
} from './helpers.mjs'

const { batchFetch } = bridge

/** Concurrent calls per library workload. */
const N = 200
const NODE_MAJOR = Number(process.versions.node.split('.')[0])
const ANSWER = "This is the emulator's answer to: "
const EVENT_STREAM = 'application/vnd.amazon.eventstream'
/** `x-amzn-requestid` of a batch answer: `<jobArn>#R<ten digits>`. */
const BATCH_REQUEST_ID = /^(arn:aws:bedrock:[a-z0-9-]+:\d{12}:model-invocation-job\/[a-z0-9]{12})#R\d{10}$/
const ERROR_TYPE_SUFFIX = ':http://internal.amazon.com/coral/com.amazon.bedrock/'
const DUMMY_KEY = 'AKIDUMMYAKIDUMMYAKID'

// ---------------------------------------------------------------------------
// Helpers

/** The AI SDK (`ai` + `@ai-sdk/amazon-bedrock`), or null after failing the test on Node < 22. */
async function aiSdk(t) {
  if (NODE_MAJOR < 22) {
    t.fail(
      `The AI SDK (ai 7, @ai-sdk/amazon-bedrock 5) needs Node >= 22, this is Node ${process.versions.node}. ` +
        'Run: PATH=/work/main/.cache/node-runtimes/22:$PATH npx ava __test__/fetch.spec.mjs',
    )
    return null
  }
  const [ai, provider] = await Promise.all([import('ai'), import('@ai-sdk/amazon-bedrock')])
  return { ...ai, createAmazonBedrock: provider.createAmazonBedrock }
}

/**
 * A batchFetch for the emulator under a prefix and a job-name prefix of its own (destroyed in
 * teardown). Defaults: batches form 0.2 s after their first call, up to 1000 records; the
 * underlying fetch is a recording one (`under`) that never reaches the network, unless the test
 * brings its own.
 */
function makeFetch(t, emu, { batch = {}, ...rest } = {}) {
  const prefix = unique('fetch')
  const jobNamePrefix = unique('bf')
  const under = rest.fetch ? null : recordingFetch()
  const fetchFn = batchFetch({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    ...(under ? { fetch: under.fn } : {}),
    ...rest,
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      jobNamePrefix,
      maxBatchSize: 1000,
      batchTimeout: 0.2,
      pollInterval: 0.05,
      ...batch,
    },
  })
  t.teardown(() => fetchFn.destroy())
  return { fetchFn, jobNamePrefix, under, inputPrefix: `${prefix}/in/` }
}

/** Waits until `n` calls wait in the engine's queue, then submits them (one batch per model and type). */
async function flushWhenQueued(fetchFn, n) {
  await waitFor(`${n} queued calls (stats().queued)`, () => fetchFn.stats().queued === n)
  await fetchFn.flush()
}

/** The jobs the emulator lists whose name contains `namePrefix` (ListModelInvocationJobs, paginated). */
async function jobsAt(bedrock, namePrefix) {
  const jobs = []
  let nextToken
  do {
    const res = await bedrock.send(
      new ListModelInvocationJobsCommand({
        nameContains: namePrefix,
        maxResults: 100,
        nextToken,
        sortOrder: 'Ascending',
      }),
    )
    jobs.push(...(res.invocationJobSummaries ?? []))
    nextToken = res.nextToken
  } while (nextToken)
  return jobs
}

const sum = (xs) => xs.reduce((n, x) => n + (x ?? 0), 0)

/**
 * Checks the jobs the emulator ran for a batchFetch (`f`, from makeFetch): all of `type`, finished,
 * each with at least the emulator's minimum of 100 records and every record processed; their
 * records are the `calls` plus the padding the client reports (one record per call); `errors`
 * records failed; the client's jobs are the emulator's; nothing went on-demand, nothing to the
 * underlying fetch (when makeFetch made it). Returns the jobs.
 */
async function assertJobs(t, bedrock, f, { calls, type, errors = 0, label }) {
  const { fetchFn, jobNamePrefix, under } = f
  if (under)
    t.deepEqual(
      under.calls.map((c) => String(c.input?.url ?? c.input)),
      [],
      `${label}: nothing went to the underlying fetch`,
    )
  const jobs = await jobsAt(bedrock, jobNamePrefix)
  const stats = fetchFn.stats()
  t.true(jobs.length >= 1, `${label}: at least one batch job at the emulator`)
  for (const j of jobs) {
    t.true(j.jobName.startsWith(jobNamePrefix), `${j.jobName} is this test's job`)
    t.is(j.modelInvocationType, type, `${j.jobName} is a ${type}-type job`)
    t.true(['Completed', 'PartiallyCompleted'].includes(j.status), `${j.jobName} finished (${j.status})`)
    t.true(j.totalRecordCount >= 100, `${j.jobName}: ${j.totalRecordCount} records, the emulator's minimum is 100`)
    t.is(j.processedRecordCount, j.totalRecordCount, `${j.jobName}: every record processed`)
    t.is(j.successRecordCount + j.errorRecordCount, j.totalRecordCount, `${j.jobName}: success + error = total`)
  }
  const records = sum(jobs.map((j) => j.totalRecordCount))
  t.is(
    records - stats.padded,
    calls,
    `${label}: ${records} records in ${jobs.length} job(s), ${stats.padded} of them padding: one record per call`,
  )
  t.is(sum(jobs.map((j) => j.errorRecordCount)), errors, `${label}: ${errors} record error(s)`)
  t.deepEqual(
    stats.jobs.map((j) => j.jobArn).sort(),
    jobs.map((j) => j.jobArn).sort(),
    `${label}: the client's jobs are the emulator's`,
  )
  t.is(stats.sentDirect, 0, `${label}: nothing went on-demand`)
  t.log(
    `${label}: ${calls} calls -> ${jobs.length} ${type}-type job(s) at the emulator, records ${jobs.map((j) => j.totalRecordCount).join(' + ')} (${stats.padded} padding)`,
  )
  return jobs
}

/** Checks that each marker is in exactly one record the client uploaded under `inputPrefix`. */
async function assertUploadedOnce(t, s3, emu, inputPrefix, markers) {
  const texts = (await inputRecords(s3, emu.bucket, inputPrefix)).map((r) => JSON.stringify(r.modelInput))
  const wrong = markers.map((m) => [m, texts.filter((x) => x.includes(m)).length]).filter(([, n]) => n !== 1)
  t.deepEqual(wrong, [], 'every call was uploaded in exactly one record')
}

/** The job ARN of a batch answer's `x-amzn-requestid`, or undefined. */
function jobArnOf(requestId) {
  return BATCH_REQUEST_ID.exec(requestId ?? '')?.[1]
}

/** The URL of one runtime operation under `base`. */
function opUrl(base, op, model = CLAUDE) {
  return `${base}/model/${encodeURIComponent(model)}/${op}`
}

const runtimeHost = (region) => `https://bedrock-runtime.${region}.amazonaws.com`

/** A raw runtime call as a library makes it: POST, JSON body, JSON content type. */
function rawCall(fetchFn, url, body, extra = {}) {
  return fetchFn(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...extra,
  })
}

/**
 * A fetch that records its calls and answers the local server's URLs with the global fetch; any
 * other URL (a runtime host that should have been batched) gets a 599 here, never the network.
 */
function recordingFetch() {
  const calls = []
  const fn = (input, init) => {
    calls.push({ input, init })
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)
    if (url.hostname === '127.0.0.1') return globalThis.fetch(input, init)
    return Promise.resolve(
      new Response('answered by the underlying fetch', { status: 599, headers: { 'x-underlying': 'yes' } }),
    )
  }
  return { fn, calls }
}

/** A local HTTP server that records each request and answers with JSON. */
async function startServer(t) {
  const seen = []
  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      seen.push({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      })
      res.writeHead(200, { 'content-type': 'application/json', 'x-from': 'local-server' })
      res.end(JSON.stringify({ echoed: req.url }))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { base: `http://127.0.0.1:${server.address().port}`, seen }
}

/**
 * Decodes AWS event-stream frames (prelude: total length, headers length, prelude CRC32; string
 * headers; payload; message CRC32), checking both CRCs. Returns `[{ headers, payload }]`.
 */
function decodeFrames(buf) {
  const frames = []
  let off = 0
  while (off < buf.length) {
    const total = buf.readUInt32BE(off)
    const headersLength = buf.readUInt32BE(off + 4)
    if (crc32(buf.subarray(off, off + 8)) !== buf.readUInt32BE(off + 8))
      throw new Error(`frame at ${off}: bad prelude CRC`)
    if (crc32(buf.subarray(off, off + total - 4)) !== buf.readUInt32BE(off + total - 4))
      throw new Error(`frame at ${off}: bad message CRC`)
    const headers = {}
    let h = off + 12
    const end = h + headersLength
    while (h < end) {
      const nameLength = buf[h]
      const name = buf.toString('utf8', h + 1, h + 1 + nameLength)
      h += 1 + nameLength
      if (buf[h] !== 7) throw new Error(`header ${name}: type ${buf[h]}, expected 7 (string)`)
      const valueLength = buf.readUInt16BE(h + 1)
      headers[name] = buf.toString('utf8', h + 3, h + 3 + valueLength)
      h += 3 + valueLength
    }
    frames.push({ headers, payload: buf.subarray(end, off + total - 4) })
    off += total
  }
  return frames
}

// ---------------------------------------------------------------------------
// 1. The Vercel AI SDK (@ai-sdk/amazon-bedrock)

test('AI SDK: 200 concurrent generateText calls each get their own answer, from Converse-type batch jobs', async (t) => {
  const lib = await aiSdk(t)
  if (!lib) return
  const { emu, bedrock, s3 } = await startEmu(t)
  const f = makeFetch(t, emu)
  const { fetchFn, inputPrefix } = f
  const bedrockAi = lib.createAmazonBedrock({
    region: emu.region,
    accessKeyId: DUMMY_KEY,
    secretAccessKey: 'dummy',
    fetch: fetchFn,
  })
  const prompt = (i) => `AI SDK generateText #${i}: name a colour.`
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      lib.generateText({ model: bedrockAi(CLAUDE), prompt: prompt(i), maxRetries: 0 }),
    ),
  )
  const jobs = await assertJobs(t, bedrock, f, { calls: N, type: 'Converse', label: 'generateText' })
  const arns = new Set(jobs.map((j) => j.jobArn))
  for (const [i, r] of results.entries()) {
    t.is(r.text, `${ANSWER}${prompt(i)}`, `call ${i} got its own answer`)
    t.is(r.finishReason, 'stop')
    t.true(r.usage.inputTokens > 0 && r.usage.outputTokens > 0, `call ${i} has usage`)
    t.true(
      arns.has(jobArnOf(r.response.headers['x-amzn-requestid'])),
      `call ${i} was answered by one of the jobs (${r.response.headers['x-amzn-requestid']})`,
    )
  }
  await assertUploadedOnce(
    t,
    s3,
    emu,
    inputPrefix,
    results.map((_, i) => `generateText #${i}:`),
  )
})

test("AI SDK agents: 100 tool-calling steps (generateText with tools, two steps each) are batched as Claude's native records, none on-demand, and stopSequence reads as AWS gives it", async (t) => {
  const lib = await aiSdk(t)
  if (!lib) return
  const { emu, bedrock } = await startEmu(t)
  const f = makeFetch(t, emu)
  const { fetchFn } = f
  const bedrockAi = lib.createAmazonBedrock({
    region: emu.region,
    accessKeyId: DUMMY_KEY,
    secretAccessKey: 'dummy',
    fetch: fetchFn,
  })
  const executed = []
  const tools = {
    weather: lib.tool({
      description: 'The weather in a city',
      inputSchema: lib.jsonSchema({
        type: 'object',
        properties: { city: { type: 'string' } },
        required: ['city'],
      }),
      execute: async ({ city }) => {
        executed.push(city)
        return `Sunny in ${city}`
      },
    }),
  }
  // 40 agents of two steps (a tool call, then the answer to its result), and 20 one-step calls that
  // offer the tool but end on a stop sequence: 100 steps, each a record.
  const agents = Array.from({ length: 40 }, (_, i) =>
    lib.generateText({
      model: bedrockAi(CLAUDE),
      tools,
      prompt: `Agent #${i}: use the tool weather for the city.`,
      stopWhen: lib.stepCountIs(2),
      maxRetries: 0,
    }),
  )
  const stopped = Array.from({ length: 20 }, (_, i) =>
    lib.generateText({
      model: bedrockAi(CLAUDE),
      tools,
      prompt: `Stop #${i}: say hello HALT and nothing more.`,
      stopSequences: ['HALT'],
      maxRetries: 0,
    }),
  )
  const [ran, ended] = await Promise.all([Promise.all(agents), Promise.all(stopped)])
  const jobs = await assertJobs(t, bedrock, f, { calls: 100, type: 'InvokeModel', label: 'agent steps' })
  t.deepEqual(await runtimeRequests(emu), [], 'no on-demand call')
  t.is(executed.length, 40, 'every agent ran its tool once')
  const arns = new Set(jobs.map((j) => j.jobArn))
  for (const [i, r] of ran.entries()) {
    t.is(r.steps.length, 2, `agent ${i}: two steps`)
    const [call] = r.steps[0].toolCalls
    t.like(call, { toolName: 'weather' }, `agent ${i} called the tool`)
    t.is(typeof call.input.city, 'string')
    t.is(r.steps[0].finishReason, 'tool-calls')
    t.is(r.finishReason, 'stop')
    t.true(r.text.length > 0, `agent ${i} answered`)
    for (const step of r.steps) {
      t.true(arns.has(jobArnOf(step.response.headers['x-amzn-requestid'])), `agent ${i}: each step from a job`)
      t.is(step.providerMetadata?.bedrock?.stopSequence, null, 'no stop sequence stopped it')
    }
  }
  for (const [i, r] of ended.entries()) {
    t.is(r.text, `${ANSWER}Stop #${i}: say hello `, `call ${i} stopped at its stop sequence`)
    t.is(r.finishReason, 'stop')
    t.is(r.providerMetadata?.bedrock?.stopSequence, 'HALT', `call ${i}: the stop sequence, where AWS puts it`)
  }
})

test('AI SDK: 200 concurrent streamText calls each stream their own answer, from Converse-type batch jobs', async (t) => {
  const lib = await aiSdk(t)
  if (!lib) return
  const { emu, bedrock, s3 } = await startEmu(t)
  const f = makeFetch(t, emu)
  const { fetchFn, inputPrefix } = f
  const bedrockAi = lib.createAmazonBedrock({
    region: emu.region,
    accessKeyId: DUMMY_KEY,
    secretAccessKey: 'dummy',
    fetch: fetchFn,
  })
  // Over 100 characters, so the replayed answer comes in more than one delta.
  const prompt = (i) =>
    `AI SDK streamText #${i}: please name a fruit, then describe its colour, its taste and where it grows.`
  const streamed = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const errors = []
      const r = lib.streamText({
        model: bedrockAi(CLAUDE),
        prompt: prompt(i),
        maxRetries: 0,
        onError: ({ error }) => errors.push(error),
      })
      let text = ''
      let chunks = 0
      for await (const piece of r.textStream) {
        text += piece
        chunks++
      }
      return { text, chunks, errors, usage: await r.usage, finishReason: await r.finishReason }
    }),
  )
  for (const [i, s] of streamed.entries()) {
    t.deepEqual(s.errors, [], `stream ${i} had no error`)
    t.is(s.text, `${ANSWER}${prompt(i)}`, `stream ${i} got its own answer`)
    t.true(s.chunks >= 2, `stream ${i} came in ${s.chunks} pieces`)
    t.is(s.finishReason, 'stop')
    t.true(s.usage.inputTokens > 0 && s.usage.outputTokens > 0, `stream ${i} has usage`)
  }
  await assertJobs(t, bedrock, f, { calls: N, type: 'Converse', label: 'streamText' })
  await assertUploadedOnce(
    t,
    s3,
    emu,
    inputPrefix,
    streamed.map((_, i) => `streamText #${i}:`),
  )
})

test('AI SDK: embed and embedMany of 200 values (InvokeModel) give each value its own vector, from batch jobs', async (t) => {
  const lib = await aiSdk(t)
  if (!lib) return
  const { emu, bedrock, runtime } = await startEmu(t)
  const f = makeFetch(t, emu)
  const { fetchFn } = f
  const bedrockAi = lib.createAmazonBedrock({
    region: emu.region,
    accessKeyId: DUMMY_KEY,
    secretAccessKey: 'dummy',
    fetch: fetchFn,
  })
  const model = bedrockAi.embedding(MODELS.titanEmbed)
  const values = Array.from({ length: N }, (_, i) => `AI SDK embedMany value #${i}`)
  const [single, many] = await Promise.all([
    lib.embed({ model, value: 'AI SDK embed: one value', maxRetries: 0 }),
    lib.embedMany({ model, values, maxRetries: 0 }),
  ])
  // Titan takes one text per call: embed makes one InvokeModel call, embedMany one per value.
  await assertJobs(t, bedrock, f, { calls: N + 1, type: 'InvokeModel', label: 'embed + embedMany' })
  t.is(many.embeddings.length, N)
  t.is(new Set(many.embeddings.map((e) => JSON.stringify(e))).size, N, 'the 200 vectors are distinct')
  // The emulator's vector depends on the text only: its on-demand answer is the expected vector.
  const expected = async (text) => {
    const out = await runtime.send(
      new SdkInvokeModelCommand({
        modelId: MODELS.titanEmbed,
        contentType: 'application/json',
        body: JSON.stringify({ inputText: text }),
      }),
    )
    return JSON.parse(Buffer.from(out.body).toString('utf8')).embedding
  }
  t.is(single.embedding.length, 1024)
  t.deepEqual(single.embedding, await expected('AI SDK embed: one value'), 'embed got the vector of its value')
  t.true(single.usage.tokens > 0)
  const wanted = await Promise.all(values.map(expected))
  const mismatched = many.embeddings
    .map((e, i) => (JSON.stringify(e) === JSON.stringify(wanted[i]) ? null : i))
    .filter((i) => i !== null)
  t.deepEqual(mismatched, [], 'embedMany: each value got its own vector, in order')
})

// ---------------------------------------------------------------------------
// 2. Anthropic's Bedrock SDK (@anthropic-ai/bedrock-sdk)

function anthropic(emu, fetchFn, extra = {}) {
  return new AnthropicBedrock({
    awsRegion: emu.region,
    awsAccessKey: DUMMY_KEY,
    awsSecretKey: 'dummy',
    fetch: fetchFn,
    maxRetries: 0,
    ...extra,
  })
}

test('Anthropic SDK: 200 concurrent messages.create calls each get their own answer and usage, from InvokeModel-type batch jobs', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const f = makeFetch(t, emu)
  const { fetchFn, inputPrefix } = f
  const client = anthropic(emu, fetchFn)
  const prompt = (i) => `Anthropic create #${i}: name a river.`
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      client.messages
        .create({ model: CLAUDE, max_tokens: 200, messages: [{ role: 'user', content: prompt(i) }] })
        .withResponse(),
    ),
  )
  const jobs = await assertJobs(t, bedrock, f, { calls: N, type: 'InvokeModel', label: 'messages.create' })
  const arns = new Set(jobs.map((j) => j.jobArn))
  for (const [i, { data, response }] of results.entries()) {
    t.is(data.type, 'message')
    t.is(data.content[0].text, `${ANSWER}${prompt(i)}`, `call ${i} got its own answer`)
    t.is(data.stop_reason, 'end_turn')
    t.true(Number.isInteger(data.usage.input_tokens) && data.usage.input_tokens > 0, `call ${i}: usage.input_tokens`)
    t.true(Number.isInteger(data.usage.output_tokens) && data.usage.output_tokens > 0, `call ${i}: usage.output_tokens`)
    t.is(
      response.headers.get('x-amzn-bedrock-input-token-count'),
      String(data.usage.input_tokens),
      `call ${i}: input token header`,
    )
    t.is(
      response.headers.get('x-amzn-bedrock-output-token-count'),
      String(data.usage.output_tokens),
      `call ${i}: output token header`,
    )
    t.true(arns.has(jobArnOf(response.headers.get('x-amzn-requestid'))), `call ${i} was answered by one of the jobs`)
  }
  await assertUploadedOnce(
    t,
    s3,
    emu,
    inputPrefix,
    results.map((_, i) => `create #${i}:`),
  )
})

test('Anthropic SDK: 200 concurrent messages.create({ stream: true }) each stream their own answer, from InvokeModel-type batch jobs', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const f = makeFetch(t, emu)
  const { fetchFn, inputPrefix } = f
  const client = anthropic(emu, fetchFn)
  // Over 100 characters, so the replayed answer comes in more than one delta.
  const prompt = (i) =>
    `Anthropic stream #${i}: please name a mountain, then say how high it is and which country it is in.`
  const streamed = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const stream = await client.messages.create({
        model: CLAUDE,
        max_tokens: 200,
        stream: true,
        messages: [{ role: 'user', content: prompt(i) }],
      })
      const out = { text: '', types: [], inputTokens: undefined, outputTokens: undefined, metrics: undefined }
      for await (const ev of stream) {
        out.types.push(ev.type)
        if (ev.type === 'message_start') out.inputTokens = ev.message.usage.input_tokens
        if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') out.text += ev.delta.text
        if (ev.type === 'message_delta') out.outputTokens = ev.usage.output_tokens
        if (ev.type === 'message_stop') out.metrics = ev['amazon-bedrock-invocationMetrics']
      }
      return out
    }),
  )
  for (const [i, s] of streamed.entries()) {
    t.is(s.text, `${ANSWER}${prompt(i)}`, `stream ${i} got its own answer`)
    const deltas = s.types.filter((x) => x === 'content_block_delta').length
    t.true(deltas >= 2, `stream ${i} came in ${deltas} deltas`)
    t.deepEqual(
      s.types,
      [
        'message_start',
        'content_block_start',
        ...Array(deltas).fill('content_block_delta'),
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
      `stream ${i}: the events of a Claude stream`,
    )
    t.true(s.inputTokens > 0 && s.outputTokens > 0, `stream ${i} has usage`)
    t.is(s.metrics?.inputTokenCount, s.inputTokens, `stream ${i}: invocation metrics match the usage`)
    t.is(s.metrics?.outputTokenCount, s.outputTokens)
  }
  await assertJobs(t, bedrock, f, { calls: N, type: 'InvokeModel', label: 'messages.create stream' })
  await assertUploadedOnce(
    t,
    s3,
    emu,
    inputPrefix,
    streamed.map((_, i) => `stream #${i}:`),
  )
})

// ---------------------------------------------------------------------------
// 3. Pass-through

test('pass-through: non-runtime requests, and non-operation paths on the runtime host and under an intercept base, reach the underlying fetch untouched', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { base, seen } = await startServer(t)
  const under = recordingFetch()
  const f = makeFetch(t, emu, { fetch: under.fn, intercept: `${base}/bedrock/` })
  const { fetchFn } = f
  const model = encodeURIComponent(CLAUDE)

  // A POST elsewhere: the very input and init objects reach the underlying fetch.
  const url = `${base}/api/things?x=1`
  const init = {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-custom': 'kept' },
    body: JSON.stringify({ hello: 'world' }),
  }
  const res = await fetchFn(url, init)
  t.is(under.calls.length, 1)
  t.is(under.calls[0].input, url, 'same URL')
  t.is(under.calls[0].init, init, 'same init (method, headers, body)')
  t.is(res.status, 200)
  t.is(res.headers.get('x-from'), 'local-server')
  t.deepEqual(await res.json(), { echoed: '/api/things?x=1' })
  t.like(seen.at(-1), { method: 'POST', url: '/api/things?x=1', body: '{"hello":"world"}' })
  t.is(seen.at(-1).headers['x-custom'], 'kept')

  // A Request object and a URL object are handed on as they are.
  const request = new Request(`${base}/api/req`, { method: 'PUT', body: 'raw text' })
  await fetchFn(request)
  t.is(under.calls.at(-1).input, request)
  t.is(under.calls.at(-1).init, undefined)
  t.like(seen.at(-1), { method: 'PUT', url: '/api/req', body: 'raw text' })
  const asUrl = new URL(`${base}/api/url`)
  await fetchFn(asUrl)
  t.is(under.calls.at(-1).input, asUrl)
  t.like(seen.at(-1), { method: 'GET', url: '/api/url' })

  // Under the intercept base, only POST to the four operations is batched.
  const passing = [
    ['GET', `${base}/bedrock/model/${model}/invoke`],
    ['POST', `${base}/bedrock/model/${model}/count-tokens`],
    ['POST', `${base}/bedrock/foundation-models`],
    ['POST', `${base}/other/model/${model}/invoke`],
    ['POST', `${base}/bedrockx/model/${model}/converse`],
  ]
  for (const [method, u] of passing) {
    const before = under.calls.length
    const body = method === 'GET' ? undefined : JSON.stringify(claudeBody('pass me'))
    const r = await fetchFn(u, { method, body })
    t.is(under.calls.length, before + 1, `${method} ${u} reached the underlying fetch`)
    t.is(under.calls.at(-1).input, u)
    t.is(r.headers.get('x-from'), 'local-server', `${method} ${u} reached the server`)
    t.like(seen.at(-1), { method, url: new URL(u).pathname, body: body ?? '' })
  }

  // On the region's runtime host: what is not one of the four operations passes through, and so
  // does another region's host.
  const host = runtimeHost(emu.region)
  const alsoPassing = [
    ['GET', `${host}/model/${model}/invoke`],
    ['POST', `${host}/model/${model}/count-tokens`],
    ['POST', `${host}/guardrail/g1/version/1/apply`],
    ['POST', `${host}/model/${model}/invoke/extra`],
    ['POST', `${runtimeHost('eu-west-1')}/model/${model}/invoke`],
  ]
  for (const [method, u] of alsoPassing) {
    const before = under.calls.length
    const r = await fetchFn(u, { method, body: method === 'GET' ? undefined : '{}' })
    t.is(under.calls.length, before + 1, `${method} ${u} reached the underlying fetch`)
    t.is(under.calls.at(-1).input, u)
    t.is(r.status, 599)
    t.is(r.headers.get('x-underlying'), 'yes')
  }
  t.deepEqual(fetchFn.stats().jobs, [], 'nothing was batched so far')

  // A runtime operation under the intercept base is batched: neither the underlying fetch nor the
  // server sees it.
  const callsBefore = under.calls.length
  const seenBefore = seen.length
  const batched = await rawCall(
    fetchFn,
    `${base}/bedrock/model/${model}/invoke`,
    claudeBody('Intercepted under the base.'),
  )
  t.is(batched.status, 200)
  t.is((await batched.json()).content[0].text, `${ANSWER}Intercepted under the base.`)
  t.is(under.calls.length, callsBefore, 'the underlying fetch never saw the batched call')
  t.is(seen.length, seenBefore, 'the server never saw the batched call')
  await assertJobs(t, bedrock, f, { calls: 1, type: 'InvokeModel', label: 'intercepted call' })
})

// ---------------------------------------------------------------------------
// 4. Errors

test('AI SDK: a record error ([[error:400]]) fails only its generateText call with an APICallError 400 ValidationException; the others in the batch succeed', async (t) => {
  const lib = await aiSdk(t)
  if (!lib) return
  const { emu, bedrock } = await startEmu(t)
  const f = makeFetch(t, emu, { batch: { batchTimeout: 60, maxAttempts: 1 } })
  const { fetchFn } = f
  const bedrockAi = lib.createAmazonBedrock({
    region: emu.region,
    accessKeyId: DUMMY_KEY,
    secretAccessKey: 'dummy',
    fetch: fetchFn,
  })
  const BAD = 3
  const prompt = (i) => `AI SDK error batch #${i}${i === BAD ? ' [[error:400]]' : ''}: name a bird.`
  const outcomes = Array.from({ length: 10 }, (_, i) =>
    settle(lib.generateText({ model: bedrockAi(CLAUDE), prompt: prompt(i), maxRetries: 0 })),
  )
  await flushWhenQueued(fetchFn, 10)
  const settled = await Promise.all(outcomes)
  const [job] = await assertJobs(t, bedrock, f, { calls: 10, type: 'Converse', errors: 1, label: 'AI SDK error batch' })
  for (const [i, o] of settled.entries()) {
    if (i === BAD) continue
    t.true(o.ok, `call ${i} succeeded: ${o.error?.message}`)
    t.is(o.value?.text, `${ANSWER}${prompt(i)}`)
    t.is(jobArnOf(o.value?.response.headers['x-amzn-requestid']), job.jobArn, `call ${i} is in the same job`)
  }
  const { ok, error } = settled[BAD]
  t.false(ok, 'the marked call failed')
  t.true(lib.APICallError.isInstance(error), `an APICallError (${error?.name})`)
  t.is(error.statusCode, 400)
  t.false(error.isRetryable)
  t.is(error.responseHeaders['x-amzn-errortype'], `ValidationException${ERROR_TYPE_SUFFIX}`)
  t.is(jobArnOf(error.responseHeaders['x-amzn-requestid']), job.jobArn, 'the failed call is in the same job')
  const body = JSON.parse(error.responseBody)
  t.deepEqual(Object.keys(body), ['message'])
  t.is(error.message, body.message)
  t.true(body.message.length > 0)
})

test('Anthropic SDK: a record error ([[error:400]]) fails only its call with a BadRequestError carrying the AWS error; the others in the batch succeed', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const f = makeFetch(t, emu, { batch: { batchTimeout: 60, maxAttempts: 1 } })
  const { fetchFn } = f
  const client = anthropic(emu, fetchFn)
  const BAD = 6
  const prompt = (i) => `Anthropic error batch #${i}${i === BAD ? ' [[error:400]]' : ''}: name a tree.`
  const outcomes = Array.from({ length: 10 }, (_, i) =>
    settle(
      client.messages
        .create({ model: CLAUDE, max_tokens: 200, messages: [{ role: 'user', content: prompt(i) }] })
        .withResponse(),
    ),
  )
  await flushWhenQueued(fetchFn, 10)
  const settled = await Promise.all(outcomes)
  const [job] = await assertJobs(t, bedrock, f, {
    calls: 10,
    type: 'InvokeModel',
    errors: 1,
    label: 'Anthropic error batch',
  })
  for (const [i, o] of settled.entries()) {
    if (i === BAD) continue
    t.true(o.ok, `call ${i} succeeded: ${o.error?.message}`)
    t.is(o.value?.data.content[0].text, `${ANSWER}${prompt(i)}`)
    t.is(jobArnOf(o.value?.response.headers.get('x-amzn-requestid')), job.jobArn, `call ${i} is in the same job`)
  }
  const { ok, error } = settled[BAD]
  t.false(ok, 'the marked call failed')
  t.true(error instanceof AnthropicBedrock.BadRequestError, `a BadRequestError (${error?.constructor?.name})`)
  t.is(error.status, 400)
  t.is(error.headers.get('x-amzn-errortype'), `ValidationException${ERROR_TYPE_SUFFIX}`)
  t.is(jobArnOf(error.headers.get('x-amzn-requestid')), job.jobArn, 'the failed call is in the same job')
  t.deepEqual(Object.keys(error.error), ['message'], 'the error body is { message }')
  t.true(error.message.includes(error.error.message))
})

test('raw calls: answers and errors are shaped as the Bedrock runtime shapes them', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { fetchFn, jobNamePrefix, under } = makeFetch(t, emu, { batch: { batchTimeout: 60, maxAttempts: 1 } })
  const host = runtimeHost(emu.region)
  const calls = {
    ok: rawCall(fetchFn, opUrl(host, 'invoke'), claudeBody('Raw invoke, please.')),
    v400: rawCall(fetchFn, opUrl(host, 'invoke'), claudeBody('Raw invoke [[error:400]] please.')),
    v429: rawCall(fetchFn, opUrl(host, 'invoke'), claudeBody('Raw invoke [[error:429]] please.')),
    stream: rawCall(fetchFn, opUrl(host, 'invoke-with-response-stream'), claudeBody('Raw invoke stream, please.')),
    converse: rawCall(fetchFn, opUrl(host, 'converse'), converseBody('Raw converse, please.')),
    converseStream: rawCall(fetchFn, opUrl(host, 'converse-stream'), converseBody('Raw converse stream, please.')),
  }
  // A body that is not JSON is refused at once, as the runtime refuses it.
  const malformed = await rawCall(fetchFn, opUrl(host, 'invoke'), '{"messages": [not json')
  t.is(malformed.status, 400)
  t.is(malformed.headers.get('content-type'), 'application/json')
  t.is(malformed.headers.get('x-amzn-errortype'), `ValidationException${ERROR_TYPE_SUFFIX}`)
  t.truthy(malformed.headers.get('x-amzn-requestid'))
  const malformedBody = await malformed.json()
  t.deepEqual(Object.keys(malformedBody), ['message'])
  t.true(malformedBody.message.length > 0)

  await flushWhenQueued(fetchFn, 6)
  const res = Object.fromEntries(await Promise.all(Object.entries(calls).map(async ([k, p]) => [k, await p])))
  const jobs = await jobsAt(bedrock, jobNamePrefix)
  t.deepEqual(jobs.map((j) => j.modelInvocationType).sort(), ['Converse', 'InvokeModel'], 'one job per invocation type')
  const invokeJob = jobs.find((j) => j.modelInvocationType === 'InvokeModel')
  const converseJob = jobs.find((j) => j.modelInvocationType === 'Converse')
  t.is(invokeJob.errorRecordCount, 2)
  t.is(fetchFn.stats().sentDirect, 0)
  t.is(under.calls.length, 0, 'nothing went to the underlying fetch')

  // InvokeModel: JSON, x-amzn-requestid <jobArn>#R..., the token counts of the body's usage.
  t.is(res.ok.status, 200)
  t.is(res.ok.headers.get('content-type'), 'application/json')
  t.is(
    jobArnOf(res.ok.headers.get('x-amzn-requestid')),
    invokeJob.jobArn,
    `x-amzn-requestid ${res.ok.headers.get('x-amzn-requestid')}`,
  )
  const answer = await res.ok.json()
  t.is(answer.content[0].text, `${ANSWER}Raw invoke, please.`)
  t.is(res.ok.headers.get('x-amzn-bedrock-input-token-count'), String(answer.usage.input_tokens))
  t.is(res.ok.headers.get('x-amzn-bedrock-output-token-count'), String(answer.usage.output_tokens))
  t.regex(res.ok.headers.get('x-amzn-bedrock-invocation-latency') ?? '', /^\d+$/)

  // Record errors: the error's status and x-amzn-errortype, a JSON { message }, the record's request id.
  for (const [key, status, name] of [
    ['v400', 400, 'ValidationException'],
    ['v429', 429, 'ThrottlingException'],
  ]) {
    const r = res[key]
    t.is(r.status, status, key)
    t.is(r.headers.get('content-type'), 'application/json')
    t.true(r.headers.get('x-amzn-errortype')?.startsWith(`${name}:`), `${key}: ${r.headers.get('x-amzn-errortype')}`)
    t.is(r.headers.get('x-amzn-errortype'), `${name}${ERROR_TYPE_SUFFIX}`)
    t.is(jobArnOf(r.headers.get('x-amzn-requestid')), invokeJob.jobArn)
    const body = await r.json()
    t.deepEqual(Object.keys(body), ['message'])
    t.true(body.message.length > 0)
  }

  // InvokeModelWithResponseStream: event-stream frames of `chunk` events, each a base64 payload.
  t.is(res.stream.status, 200)
  t.is(res.stream.headers.get('content-type'), EVENT_STREAM)
  t.is(res.stream.headers.get('x-amzn-bedrock-content-type'), 'application/json')
  t.is(jobArnOf(res.stream.headers.get('x-amzn-requestid')), invokeJob.jobArn)
  const chunks = decodeFrames(Buffer.from(await res.stream.arrayBuffer()))
  t.true(chunks.length >= 4)
  for (const f of chunks)
    t.like(f.headers, { ':message-type': 'event', ':event-type': 'chunk', ':content-type': 'application/json' })
  const payloads = chunks.map((f) =>
    JSON.parse(Buffer.from(JSON.parse(f.payload.toString('utf8')).bytes, 'base64').toString('utf8')),
  )
  t.is(payloads[0].type, 'message_start')
  t.is(payloads.at(-1).type, 'message_stop')
  t.is(
    payloads
      .filter((p) => p.type === 'content_block_delta')
      .map((p) => p.delta.text)
      .join(''),
    `${ANSWER}Raw invoke stream, please.`,
  )
  t.truthy(payloads.at(-1)['amazon-bedrock-invocationMetrics'])

  // Converse: JSON, no token-count headers.
  t.is(res.converse.status, 200)
  t.is(res.converse.headers.get('content-type'), 'application/json')
  t.is(jobArnOf(res.converse.headers.get('x-amzn-requestid')), converseJob.jobArn)
  t.is(res.converse.headers.get('x-amzn-bedrock-input-token-count'), null)
  const conversed = await res.converse.json()
  t.is(conversed.output.message.content[0].text, `${ANSWER}Raw converse, please.`)
  t.is(conversed.usage.totalTokens, conversed.usage.inputTokens + conversed.usage.outputTokens)

  // ConverseStream: event-stream frames named by event, the deltas making the answer.
  t.is(res.converseStream.status, 200)
  t.is(res.converseStream.headers.get('content-type'), EVENT_STREAM)
  t.is(jobArnOf(res.converseStream.headers.get('x-amzn-requestid')), converseJob.jobArn)
  const events = decodeFrames(Buffer.from(await res.converseStream.arrayBuffer()))
  for (const f of events) t.is(f.headers[':message-type'], 'event')
  const names = events.map((f) => f.headers[':event-type'])
  t.is(names[0], 'messageStart')
  t.deepEqual(names.slice(-2), ['messageStop', 'metadata'])
  const bodies = events.map((f) => JSON.parse(f.payload.toString('utf8')))
  t.is(
    bodies
      .filter((_, i) => names[i] === 'contentBlockDelta')
      .map((b) => b.delta.text)
      .join(''),
    `${ANSWER}Raw converse stream, please.`,
  )
  t.truthy(bodies.at(-1).usage)
})

test("raw calls: this package's own errors answer as AWS errors, by name (BatchJobFailedException, ClientClosedException)", async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { fetchFn, jobNamePrefix, under } = makeFetch(t, emu, { batch: { batchTimeout: 60, maxAttempts: 1 } })
  const host = runtimeHost(emu.region)
  const failing = rawCall(fetchFn, opUrl(host, 'invoke'), claudeBody('This job fails [[job:failed]].'))
  await flushWhenQueued(fetchFn, 1)
  const res = await failing
  const [job] = await jobsAt(bedrock, jobNamePrefix)
  t.is(job?.status, 'Failed')
  t.is(under.calls.length, 0, 'nothing went to the underlying fetch')
  // A job's failure is a client fault without an HTTP status of its own: 400.
  t.is(res.status, 400)
  t.is(res.headers.get('content-type'), 'application/json')
  t.is(res.headers.get('x-amzn-errortype'), `BatchJobFailedException${ERROR_TYPE_SUFFIX}`)
  t.is(jobArnOf(res.headers.get('x-amzn-requestid')), job.jobArn)
  const body = await res.json()
  t.deepEqual(Object.keys(body), ['message'])
  t.true(body.message.length > 0)

  await fetchFn.close()
  const late = await rawCall(fetchFn, opUrl(host, 'converse'), converseBody('After close.'))
  t.is(late.status, 400)
  t.is(late.headers.get('x-amzn-errortype'), `ClientClosedException${ERROR_TYPE_SUFFIX}`)
  t.deepEqual(Object.keys(await late.json()), ['message'])
  t.is(under.calls.length, 0, 'a call after close() is answered, not passed on')
})

// ---------------------------------------------------------------------------
// 5. The FIPS host, an intercept base, the client's endpoints.bedrockRuntime

test('the FIPS host, a base URL in `intercept` and endpoints.bedrockRuntime are batched (raw and Anthropic SDK); nothing reaches the network', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const under = recordingFetch()
  const gateway = 'https://bedrock-gateway.corp.example/runtime/'
  const f = makeFetch(t, emu, { fetch: under.fn, intercept: [gateway], batch: { batchTimeout: 60 } })
  const { fetchFn } = f
  const fipsUrl = opUrl(`https://bedrock-runtime-fips.${emu.region}.amazonaws.com`, 'invoke')
  const answers = Promise.all([
    rawCall(fetchFn, fipsUrl, claudeBody('Through the FIPS host.')),
    anthropic(emu, fetchFn, { baseURL: gateway.replace(/\/$/, '') })
      .messages.create({
        model: CLAUDE,
        max_tokens: 200,
        messages: [{ role: 'user', content: 'Through the gateway.' }],
      })
      .withResponse(),
    anthropic(emu, fetchFn, { baseURL: emu.endpoints.bedrockRuntime })
      .messages.create({
        model: CLAUDE,
        max_tokens: 200,
        messages: [{ role: 'user', content: 'Through the configured runtime endpoint.' }],
      })
      .withResponse(),
  ])
  await flushWhenQueued(fetchFn, 3)
  const [fips, viaGateway, viaEndpoint] = await answers
  const [job] = await assertJobs(t, bedrock, f, { calls: 3, type: 'InvokeModel', label: 'FIPS + intercept + endpoint' })
  t.deepEqual(
    under.calls.map((c) => String(c.input?.url ?? c.input)),
    [],
    'the underlying fetch was never called',
  )
  t.is(fips.status, 200)
  t.is((await fips.json()).content[0].text, `${ANSWER}Through the FIPS host.`)
  t.is(jobArnOf(fips.headers.get('x-amzn-requestid')), job.jobArn)
  t.is(viaGateway.data.content[0].text, `${ANSWER}Through the gateway.`)
  t.is(jobArnOf(viaGateway.response.headers.get('x-amzn-requestid')), job.jobArn)
  t.is(viaEndpoint.data.content[0].text, `${ANSWER}Through the configured runtime endpoint.`)
  t.is(jobArnOf(viaEndpoint.response.headers.get('x-amzn-requestid')), job.jobArn)
  t.deepEqual(
    (await runtimeRequests(emu)).filter((r) => r.modelId === CLAUDE),
    [],
    "no call reached the emulator's on-demand runtime",
  )
})

test('AI SDK with a custom baseURL listed in `intercept`: generateText and streamText are batched, nothing reaches the network', async (t) => {
  const lib = await aiSdk(t)
  if (!lib) return
  const { emu, bedrock } = await startEmu(t)
  const under = recordingFetch()
  const baseURL = 'https://llm-proxy.corp.example/bedrock'
  const f = makeFetch(t, emu, { fetch: under.fn, intercept: baseURL })
  const { fetchFn } = f
  const bedrockAi = lib.createAmazonBedrock({
    region: emu.region,
    baseURL,
    accessKeyId: DUMMY_KEY,
    secretAccessKey: 'dummy',
    fetch: fetchFn,
  })
  const texts = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const prompt = `Through the proxy #${i}.`
      if (i % 2 === 0)
        return [prompt, (await lib.generateText({ model: bedrockAi(CLAUDE), prompt, maxRetries: 0 })).text]
      const r = lib.streamText({ model: bedrockAi(CLAUDE), prompt, maxRetries: 0 })
      return [prompt, await r.text]
    }),
  )
  for (const [prompt, text] of texts) t.is(text, `${ANSWER}${prompt}`)
  t.deepEqual(
    under.calls.map((c) => String(c.input?.url ?? c.input)),
    [],
    'the underlying fetch was never called',
  )
  await assertJobs(t, bedrock, f, { calls: 20, type: 'Converse', label: 'AI SDK via intercept baseURL' })
})

// ---------------------------------------------------------------------------
// 6. Abort

test('abort: a call aborted while queued rejects with AbortError and is never uploaded; the others are answered', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const f = makeFetch(t, emu, { batch: { batchTimeout: 60 } })
  const { fetchFn, inputPrefix } = f
  const url = opUrl(runtimeHost(emu.region), 'invoke')

  // Already aborted: rejected before it is queued.
  await t.throwsAsync(rawCall(fetchFn, url, claudeBody('Aborted before [abort-0].'), { signal: AbortSignal.abort() }), {
    name: 'AbortError',
  })
  t.is(fetchFn.stats().queued, 0)

  const kept = rawCall(fetchFn, url, claudeBody('Kept [keep-1].'))
  const controller = new AbortController()
  const aborted = rawCall(fetchFn, url, claudeBody('Aborted while queued [abort-1].'), { signal: controller.signal })
  const requestController = new AbortController()
  const abortedRequest = fetchFn(
    new Request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(claudeBody('Aborted Request [abort-2].')),
      signal: requestController.signal,
    }),
  )
  await waitFor('3 queued calls', () => fetchFn.stats().queued === 3)
  controller.abort()
  await t.throwsAsync(aborted, { name: 'AbortError' })
  // The engine takes the cancellation on its own thread: the count follows shortly.
  await waitFor('the aborted call to leave the queue', () => fetchFn.stats().queued === 2)
  requestController.abort()
  await t.throwsAsync(abortedRequest, { name: 'AbortError' }, "a Request's own signal counts too")
  await waitFor('the aborted Request to leave the queue', () => fetchFn.stats().queued === 1)

  await fetchFn.flush()
  const res = await kept
  t.is(res.status, 200)
  t.is((await res.json()).content[0].text, `${ANSWER}Kept [keep-1].`)
  await assertJobs(t, bedrock, f, { calls: 1, type: 'InvokeModel', label: 'abort' })
  const uploaded = (await inputRecords(s3, emu.bucket, inputPrefix)).map((r) => JSON.stringify(r.modelInput))
  t.is(uploaded.filter((x) => x.includes('[keep-1]')).length, 1, 'the kept call was uploaded')
  t.deepEqual(
    uploaded.filter((x) => x.includes('[abort-')),
    [],
    'no aborted call was uploaded',
  )
})

// A request that carries `amz-sdk-invocation-id` (every AWS SDK sends one; its retries share it)
// may be joined by a retry, yet through batchFetch its signal still works as fetch's does: once
// every attempt waiting for it has aborted, it leaves the queue (never uploaded, never paid for).
test('abort: a call carrying amz-sdk-invocation-id also rejects with AbortError and leaves the queue', async (t) => {
  const { emu } = await startEmu(t)
  const { fetchFn } = makeFetch(t, emu, { batch: { batchTimeout: 60 } })
  const controller = new AbortController()
  const call = fetchFn(opUrl(runtimeHost(emu.region), 'invoke'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'amz-sdk-invocation-id': '6d3c8f2e-0b7a-4f57-9f55-1c2d3e4f5a6b' },
    body: JSON.stringify(claudeBody('Aborted with an invocation id.')),
    signal: controller.signal,
  })
  const tracked = settle(call)
  let settled = false
  tracked.then(() => {
    settled = true
  })
  await waitFor('1 queued call', () => fetchFn.stats().queued === 1)
  controller.abort()
  // An abort settles the call in microtasks; setImmediate runs after they have all run.
  await new Promise((resolve) => setImmediate(resolve))
  t.true(settled, 'the aborted call settled')
  if (settled) await waitFor('the aborted call to leave the queue', () => fetchFn.stats().queued === 0)
  else fetchFn.destroy() // ends the call that ignored its signal, so the test ends now
  const o = await tracked
  t.is(
    o.error?.name,
    'AbortError',
    `rejected with AbortError (got ${o.ok ? `a ${o.value.status} response` : o.error?.name})`,
  )
})

// ---------------------------------------------------------------------------
// 7. The handle: flush(), stats(), on('job'), close(), destroy(), client

test('flush() submits the queue, on("job") reports its statuses, stats() counts, close() answers the last calls and resolves, destroy() settles', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const f = makeFetch(t, emu, { batch: { batchTimeout: 60 } })
  const { fetchFn, jobNamePrefix } = f
  t.true(fetchFn.client instanceof BatchInferenceClient)
  t.throws(() => fetchFn.on('no-such-event', () => {}), { instanceOf: TypeError })
  const events = []
  t.is(
    fetchFn.on('job', (job) => events.push({ ...job })),
    fetchFn,
    'on() returns the fetch',
  )
  const completed = new Promise((resolve) => fetchFn.on('job', (job) => job.status === 'Completed' && resolve(job)))
  t.like(fetchFn.stats(), { queued: 0, inFlight: 0, padded: 0, sentDirect: 0 })
  t.deepEqual(fetchFn.stats().jobs, [])

  const url = opUrl(runtimeHost(emu.region), 'invoke')
  const calls = Array.from({ length: 5 }, (_, i) => rawCall(fetchFn, url, claudeBody(`Flush me #${i}.`)))
  await waitFor('5 queued calls', () => fetchFn.stats().queued === 5)
  t.like(fetchFn.stats(), { queued: 5, inFlight: 0 }, 'nothing is submitted before flush() (batchTimeout 60 s)')
  t.deepEqual(fetchFn.stats().jobs, [], 'no job before flush()')
  await fetchFn.flush()
  const responses = await Promise.all(calls)
  const job = await completed
  for (const [i, r] of responses.entries()) {
    t.is(r.status, 200)
    t.is((await r.json()).content[0].text, `${ANSWER}Flush me #${i}.`)
    t.is(jobArnOf(r.headers.get('x-amzn-requestid')), job.jobArn)
  }
  const mine = events.filter((e) => e.jobArn === job.jobArn)
  t.is(mine[0].status, 'Submitted')
  t.is(mine.at(-1).status, 'Completed')
  t.like(job, { modelId: CLAUDE, totalRecordCount: 100, successRecordCount: 100, errorRecordCount: 0 })
  t.true(job.jobName.startsWith(jobNamePrefix))
  const stats = fetchFn.stats()
  t.like(stats, { queued: 0, inFlight: 0, padded: 95, sentDirect: 0 })
  t.deepEqual(
    stats.jobs.map((j) => [j.jobArn, j.status, j.totalRecordCount]),
    [[job.jobArn, 'Completed', 100]],
  )
  t.true(stats.tokens.input > 0 && stats.tokens.output > 0)
  await assertJobs(t, bedrock, f, { calls: 5, type: 'InvokeModel', label: 'flush' })

  // close(): the queued call is submitted and answered, then close() resolves.
  const last = rawCall(fetchFn, url, claudeBody('Answered by close.'))
  await waitFor('1 queued call', () => fetchFn.stats().queued === 1)
  const [lastRes] = await Promise.all([last, fetchFn.close()])
  t.is(lastRes.status, 200)
  t.is((await lastRes.json()).content[0].text, `${ANSWER}Answered by close.`)
  t.is((await jobsAt(bedrock, jobNamePrefix)).length, 2, 'close() ran a second job for the last call')
  t.is(fetchFn.stats().queued, 0)

  // destroy(): a queued call is answered at once with ClientClosedException.
  const other = makeFetch(t, emu, { batch: { batchTimeout: 60 } })
  const pending = rawCall(other.fetchFn, url, claudeBody('Destroyed.'))
  await waitFor('1 queued call', () => other.fetchFn.stats().queued === 1)
  other.fetchFn.destroy()
  const destroyed = await pending
  t.is(destroyed.status, 400)
  t.is(destroyed.headers.get('x-amzn-errortype'), `ClientClosedException${ERROR_TYPE_SUFFIX}`)
  t.deepEqual(await jobsAt(bedrock, other.jobNamePrefix), [], 'the destroyed call made no job')
})

test('a retry (same amz-sdk-invocation-id) joins its pending call, but a call that failed is sent again when retried', async (t) => {
  const { emu } = await startEmu(t)
  const { fetchFn } = makeFetch(t, emu, { batch: { batchTimeout: 60, maxQueuedRequests: 1 } })
  const url = opUrl(runtimeHost(emu.region), 'invoke')
  const withId = (id) => ({ headers: { 'content-type': 'application/json', 'amz-sdk-invocation-id': id } })
  const first = rawCall(fetchFn, url, claudeBody('The first call [join-1].'), withId('id-first'))
  await waitFor('the first call queued', () => fetchFn.stats().queued === 1)
  // The queue holds one request: a second call is throttled.
  const throttled = await rawCall(fetchFn, url, claudeBody('The second call [join-2].'), withId('id-second'))
  t.is(throttled.status, 429)
  t.true(throttled.headers.get('x-amzn-errortype').startsWith('ThrottlingException:'))
  // A retry of the pending call joins it: still one request queued, and both attempts get one answer.
  const again = rawCall(fetchFn, url, claudeBody('The first call [join-1].'), withId('id-first'))
  await new Promise((resolve) => setImmediate(resolve))
  t.is(fetchFn.stats().queued, 1)
  await fetchFn.flush()
  const [a, b] = await Promise.all([first, again])
  t.is(a.status, 200)
  t.is(b.status, 200)
  t.is(a.headers.get('x-amzn-requestid'), b.headers.get('x-amzn-requestid'))
  t.is(await a.text(), await b.text())
  // The throttled call, retried with its id once there is room, is sent and answered.
  const retried = rawCall(fetchFn, url, claudeBody('The second call [join-2].'), withId('id-second'))
  await waitFor('the retried call queued', () => fetchFn.stats().queued === 1)
  await fetchFn.flush()
  const r = await retried
  t.is(r.status, 200, await r.clone().text())
  t.true((await r.text()).includes('[join-2]'))
  const records = fetchFn.stats().jobs.reduce((n, j) => n + j.totalRecordCount, 0)
  t.is(records - fetchFn.stats().padded, 2, 'two calls, two records')
})
