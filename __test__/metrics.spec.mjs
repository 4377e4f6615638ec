// Prometheus metrics (issue 22): `client.metrics()` and `GET /_bridge/metrics` on serve, read back
// with a Prometheus text-format parser from npm and held against `stats()` before and after real
// calls to the emulator. The latency histogram counts every settled call once, with cumulative
// buckets; no request body, idempotency key or credential ever appears in the text.

import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { BedrockRuntimeClient, InvokeModelCommand as SdkInvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'
import parsePrometheus from 'parse-prometheus-text-format'

import { exposition, RequestMetrics } from '../lib/metrics.js'

import {
  bridge,
  CLAUDE,
  claudeBody,
  claudeCommand,
  claudeText,
  makeClient,
  PG_URL,
  performance,
  pgTest,
  ROLE_ARN,
  settle,
  signedGet,
  startEmu,
  startServe,
  tempDir,
  unique,
  waitFor,
} from './helpers.mjs'

const { ConverseCommand } = bridge
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
const HISTOGRAM = 'bedrock_batch_request_duration_seconds'

// ---------------------------------------------------------------------------
// Reading the exposition back

/**
 * The families of an exposition by name (`{ name, help, type, metrics }` as the parser gives them),
 * and the histogram's samples one by one. The parser folds a histogram's labelled series into one
 * (it keeps only `le`), so the histogram's lines are also read with its TYPE line as untyped: each
 * of `_bucket`, `_sum` and `_count` then reads as families of their own, with every label.
 */
function scrape(text) {
  const families = new Map(parsePrometheus(text).map((f) => [f.name, f]))
  // Untyped, each series' `_bucket`, `_sum` and `_count` lines come as three families: gathered by name.
  const untyped = parsePrometheus(text.replace(`# TYPE ${HISTOGRAM} histogram`, `# TYPE ${HISTOGRAM} untyped`))
  const lines = (suffix) => untyped.filter((f) => f.name === HISTOGRAM + suffix).flatMap((f) => f.metrics)
  return { families, buckets: lines('_bucket'), sums: lines('_sum'), counts: lines('_count') }
}

/** The samples of family `name` whose labels include `labels`. */
function samples(scraped, name, labels = {}) {
  const family = scraped.families.get(name)
  if (!family) throw new Error(`no family ${name}`)
  return family.metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
}

/** The value of the one sample of `name` with `labels` (0 when there is none: a counter not started). */
function value(scraped, name, labels = {}) {
  const found = samples(scraped, name, labels)
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found.length ? Number(found[0].value) : 0
}

/** The sum of the samples of `name` whose labels include `labels`. */
function total(scraped, name, labels = {}) {
  return samples(scraped, name, labels).reduce((n, m) => n + Number(m.value), 0)
}

const close = (a, b) => Math.abs(a - b) < 1e-9

/** Checks what every family must have: the prefix, HELP, a type, base-unit names. */
function assertWellFormed(t, scraped) {
  t.true(scraped.families.size >= 10, [...scraped.families.keys()].join(' '))
  for (const [name, f] of scraped.families) {
    t.regex(name, /^bedrock_batch_[a-z_]+$/, name)
    t.true(f.help.length > 10, `${name} has a HELP text`)
    t.true(['COUNTER', 'GAUGE', 'HISTOGRAM'].includes(f.type), `${name}: ${f.type}`)
    if (f.type === 'COUNTER') t.regex(name, /_total$/, `${name}: a counter ends in _total`)
    else t.notRegex(name, /_total$/, `${name}: only counters end in _total`)
    if (/usd/.test(name)) t.regex(name, /_usd(_total)?$/, `${name}: money in USD`)
    if (f.type !== 'HISTOGRAM')
      for (const m of f.metrics) t.false(Number.isNaN(Number(m.value)), `${name} ${JSON.stringify(m)}`)
  }
}

/**
 * The histogram's series (`{ labels, buckets: [[le, count]...], sum, count }`), each checked:
 * buckets in order of `le`, cumulative, the +Inf bucket equal to the count.
 */
function histogramSeries(t, scraped) {
  t.is(scraped.families.get(HISTOGRAM)?.type, 'HISTOGRAM')
  const key = (labels) => JSON.stringify({ model: labels.model, operation: labels.operation, outcome: labels.outcome })
  const series = new Map()
  for (const c of scraped.counts) series.set(key(c.labels), { labels: c.labels, buckets: [], count: Number(c.value) })
  for (const s of scraped.sums) series.get(key(s.labels)).sum = Number(s.value)
  for (const b of scraped.buckets) series.get(key(b.labels)).buckets.push([b.labels.le, Number(b.value)])
  for (const s of series.values()) {
    const les = s.buckets.map(([le]) => (le === '+Inf' ? Infinity : Number(le)))
    t.deepEqual(
      les,
      [...les].sort((a, b) => a - b),
      'buckets in order',
    )
    t.is(les.at(-1), Infinity)
    for (let i = 1; i < s.buckets.length; i++)
      t.true(s.buckets[i][1] >= s.buckets[i - 1][1], `cumulative at le=${s.buckets[i][0]}`)
    t.is(s.buckets.at(-1)[1], s.count, '+Inf bucket = count')
    t.true(s.sum >= 0)
  }
  return [...series.values()]
}

/** Holds the figures taken from stats() against the exposition. */
function assertMatchesStats(t, scraped, s) {
  t.is(value(scraped, 'bedrock_batch_requests', { state: 'queued' }), s.queued)
  t.is(value(scraped, 'bedrock_batch_requests', { state: 'in_flight' }), s.inFlight)
  t.is(total(scraped, 'bedrock_batch_jobs'), s.jobs.length)
  for (const j of s.jobs)
    t.is(
      value(scraped, 'bedrock_batch_jobs', { model: j.modelId, status: j.status }),
      s.jobs.filter((o) => o.modelId === j.modelId && o.status === j.status).length,
    )
  const sum = (k) => s.jobs.reduce((n, j) => n + j[k], 0)
  t.is(total(scraped, 'bedrock_batch_job_records', { outcome: 'success' }), sum('successRecordCount'))
  t.is(total(scraped, 'bedrock_batch_job_records', { outcome: 'error' }), sum('errorRecordCount'))
  t.is(
    total(scraped, 'bedrock_batch_job_records', { outcome: 'pending' }),
    sum('totalRecordCount') - sum('processedRecordCount'),
  )
  t.is(value(scraped, 'bedrock_batch_padded_records_total'), s.padded)
  t.is(value(scraped, 'bedrock_batch_resubmitted_requests_total'), s.resubmitted)
  t.is(total(scraped, 'bedrock_batch_on_demand_requests_total'), s.sentDirect)
  t.is(value(scraped, 'bedrock_batch_on_demand_requests_total', { reason: 'deadline' }), s.deadlineFallbacks)
  t.is(value(scraped, 'bedrock_batch_tokens_total', { type: 'input' }), s.tokens.input)
  t.is(value(scraped, 'bedrock_batch_tokens_total', { type: 'output' }), s.tokens.output)
  for (const tier of ['batch', 'flex', 'standard']) {
    t.is(value(scraped, 'bedrock_batch_tier_requests_total', { tier }), s.tiers[tier].requests, tier)
    t.true(close(value(scraped, 'bedrock_batch_estimated_cost_usd_total', { tier }), s.tiers[tier].estimatedUsd), tier)
  }
  for (const name of new Set(s.jobs.flatMap((j) => j.recordErrors.map((e) => e.name))))
    t.is(
      total(scraped, 'bedrock_batch_job_record_errors', { error: name }),
      s.jobs.reduce((n, j) => n + (j.recordErrors.find((e) => e.name === name)?.count ?? 0), 0),
      name,
    )
  if (s.estimatedSavingUsd === undefined) t.false(scraped.families.has('bedrock_batch_estimated_saving_usd_total'))
  else t.true(close(value(scraped, 'bedrock_batch_estimated_saving_usd_total'), s.estimatedSavingUsd))
}

// ---------------------------------------------------------------------------
// client.metrics()

test('metrics() agrees with stats() before and after a run; the histogram counts each settled call once', async (t) => {
  const { emu } = await startEmu(t)
  const pricing = { [CLAUDE]: { inputPer1kTokens: 0.25, outputPer1kTokens: 1.25 } }
  const { client } = makeClient(t, emu, { pricing, batch: { batchTimeout: 0.05 } })

  const before = scrape(client.metrics())
  assertWellFormed(t, before)
  assertMatchesStats(t, before, client.stats())
  t.is(total(before, 'bedrock_batch_requests_total'), 0)
  t.is(before.counts.length, 0, 'no histogram series before any call')
  t.is(value(before, 'bedrock_batch_estimated_saving_usd_total'), 0)

  const started = performance.now()
  const tag = randomUUID()
  const invokes = Array.from({ length: 17 }, (_, i) => settle(client.send(claudeCommand(`metrics ${tag} ${i}`))))
  const failing = Array.from({ length: 2 }, (_, i) =>
    settle(client.send(claudeCommand(`metrics ${tag} failing ${i} [[error:400]]`))),
  )
  const converse = Array.from({ length: 3 }, (_, i) =>
    settle(
      client.send(
        new ConverseCommand({ modelId: CLAUDE, messages: [{ role: 'user', content: [{ text: `converse ${i}` }] }] }),
      ),
    ),
  )
  const ok = await Promise.all(invokes)
  const failed = await Promise.all(failing)
  const conversed = await Promise.all(converse)
  const elapsedSeconds = (performance.now() - started) / 1000
  for (const [i, o] of ok.entries()) t.true(o.ok && claudeText(o.value).includes(`metrics ${tag} ${i}`))
  for (const o of conversed) t.true(o.ok)
  for (const o of failed) t.false(o.ok)
  const failedName = failed[0].error.name
  t.is(failed[1].error.name, failedName)

  const s = client.stats()
  const after = scrape(client.metrics())
  assertWellFormed(t, after)
  assertMatchesStats(t, after, s)
  t.true(s.jobs.length >= 1)
  t.true(value(after, 'bedrock_batch_tokens_total', { type: 'input' }) > 0)
  t.true(value(after, 'bedrock_batch_estimated_saving_usd_total') > 0)
  t.true(value(after, 'bedrock_batch_padded_records_total') > 0)

  const invoke = { model: CLAUDE, operation: 'InvokeModel' }
  t.is(value(after, 'bedrock_batch_requests_total', { ...invoke, outcome: 'success' }), 17)
  t.is(value(after, 'bedrock_batch_requests_total', { ...invoke, outcome: 'error' }), 2)
  t.is(value(after, 'bedrock_batch_requests_total', { model: CLAUDE, operation: 'Converse', outcome: 'success' }), 3)
  t.is(total(after, 'bedrock_batch_requests_total'), 22)
  t.is(value(after, 'bedrock_batch_request_errors_total', { ...invoke, error: failedName }), 2)
  t.is(total(after, 'bedrock_batch_request_errors_total'), 2)

  const series = histogramSeries(t, after)
  t.is(series.length, 3)
  t.is(
    series.reduce((n, h) => n + h.count, 0),
    22,
    'one observation per settled call',
  )
  for (const h of series) {
    t.is(h.count, value(after, 'bedrock_batch_requests_total', h.labels), JSON.stringify(h.labels))
    t.true(h.sum > 0 && h.sum <= h.count * elapsedSeconds, `${h.sum} s over ${h.count} calls in ${elapsedSeconds} s`)
  }
})

test('aborted calls count as aborted, destroyed ones as ClientClosedException errors', async (t) => {
  const { emu } = await startEmu(t)
  // A long batch timeout and a high minimum: the calls wait in the queue until aborted or destroyed.
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60, minBatchSize: 100 } })
  const controller = new AbortController()
  const aborted = settle(client.send(claudeCommand('abort me'), { abortSignal: controller.signal }))
  const destroyed = Array.from({ length: 3 }, (_, i) => settle(client.send(claudeCommand(`destroy me ${i}`))))
  await waitFor('the calls to be queued', () => client.stats().queued === 4)
  controller.abort()
  t.is((await aborted).error.name, 'AbortError')
  const mid = scrape(client.metrics())
  const invoke = { model: CLAUDE, operation: 'InvokeModel' }
  t.is(value(mid, 'bedrock_batch_requests_total', { ...invoke, outcome: 'aborted' }), 1)
  t.is(total(mid, 'bedrock_batch_requests_total'), 1)
  client.destroy()
  for (const o of await Promise.all(destroyed)) t.is(o.error.name, 'ClientClosedException')
  const after = scrape(client.metrics())
  t.is(value(after, 'bedrock_batch_requests_total', { ...invoke, outcome: 'error' }), 3)
  t.is(value(after, 'bedrock_batch_request_errors_total', { ...invoke, error: 'ClientClosedException' }), 3)
  const series = histogramSeries(t, after)
  t.deepEqual(series.map((h) => [h.labels.outcome, h.count]).sort(), [
    ['aborted', 1],
    ['error', 3],
  ])
})

test('label values are escaped: a model id with a quote, a backslash and a line feed reads back whole', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.05 } })
  const odd = 'no-such-model "quoted" back\\slash\nnext line'
  const o = await settle(client.send(claudeCommand('odd model', { modelId: odd })))
  t.false(o.ok, 'no such model')
  const text = client.metrics()
  for (const line of text.split('\n')) t.false(line.startsWith('next line'), 'no raw line feed in a label')
  const scraped = scrape(text)
  t.is(value(scraped, 'bedrock_batch_requests_total', { model: odd, outcome: 'error' }), 1)
  t.is(value(scraped, 'bedrock_batch_request_errors_total', { model: odd, error: o.error.name }), 1)
  t.is(scraped.counts.find((c) => c.labels.model === odd)?.value, '1')
})

test('no request body, idempotency key or credential appears in metrics()', async (t) => {
  const { emu } = await startEmu(t)
  const canary = {
    body: `canary-body-${randomUUID()}`,
    key: `canary-key-${randomUUID()}`,
    token: `canary-token-${randomUUID()}`,
  }
  const { client } = makeClient(t, emu, {
    batch: { batchTimeout: 0.05 },
    // The emulator takes any session token with its key pair.
    credentials: { ...emu.credentials, sessionToken: canary.token },
  })
  const results = await Promise.all([
    settle(client.send(claudeCommand(`${canary.body} answered`), { idempotencyKey: canary.key })),
    settle(client.send(claudeCommand(`${canary.body} failing [[error:400]]`))),
  ])
  t.true(results[0].ok)
  t.true(claudeText(results[0].value).includes(canary.body), 'the canary went through the run')
  t.false(results[1].ok)
  const text = client.metrics()
  t.is(total(scrape(text), 'bedrock_batch_requests_total'), 2)
  for (const c of [...Object.values(canary), emu.credentials.secretAccessKey, emu.credentials.accessKeyId])
    t.false(text.includes(c), c)
})

test('the plugin and batchFetch handles have metrics() too, counting their own calls', async (t) => {
  const { emu } = await startEmu(t)
  const batch = (prefix) => ({
    s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
    s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
    roleArn: ROLE_ARN,
    batchTimeout: 0.05,
    pollInterval: 0.05,
  })
  // The plugin on an SDK client whose own endpoint goes nowhere: every call is a batch record.
  const runtime = runtimeOf(t, 'http://127.0.0.1:9', emu.region, { ...emu.credentials })
  const plugin = bridge.batchPlugin({
    client: runtime,
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
    batch: batch(unique('plugin')),
  })
  t.teardown(() => plugin.destroy())
  runtime.middlewareStack.use(plugin)
  await Promise.all([0, 1].map((i) => runtime.send(invoke(`plugin ${i}`))))
  const viaPlugin = scrape(plugin.metrics())
  assertMatchesStats(t, viaPlugin, plugin.stats())
  t.is(value(viaPlugin, 'bedrock_batch_requests_total', { model: CLAUDE, outcome: 'success' }), 2)

  const fetchBatched = bridge.batchFetch({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: batch(unique('fetch')),
  })
  t.teardown(() => fetchBatched.destroy())
  const res = await fetchBatched(`${emu.endpoints.bedrockRuntime}/model/${encodeURIComponent(CLAUDE)}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(claudeBody('batchFetch')),
  })
  t.is(res.status, 200)
  t.is((await res.json()).content[0].text, "This is the emulator's answer to: batchFetch")
  const viaFetch = scrape(fetchBatched.metrics())
  assertMatchesStats(t, viaFetch, fetchBatched.stats())
  t.is(
    value(viaFetch, 'bedrock_batch_requests_total', { model: CLAUDE, operation: 'InvokeModel', outcome: 'success' }),
    1,
  )
})

test('with a journal: the store size in bytes (kind sqlite), as stats() gives it', async (t) => {
  const { emu } = await startEmu(t)
  const path = join(tempDir(t), 'journal.db')
  const { client } = makeClient(t, emu, { journal: { path }, batch: { batchTimeout: 0.05 } })
  await Promise.all([0, 1].map((i) => client.send(claudeCommand(`journal ${i}`))))
  const s = client.stats()
  const scraped = scrape(client.metrics())
  assertMatchesStats(t, scraped, s)
  t.true(s.store.bytes > 0)
  t.is(value(scraped, 'bedrock_batch_store_size_bytes', { kind: 'sqlite' }), s.store.bytes)
  t.is(samples(scraped, 'bedrock_batch_store_size_bytes').length, 1)
  t.false(client.metrics().includes(path), 'the journal path is not a label')
})

pgTest('in a PostgreSQL group: the leader flag and the store size (kind postgres)', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, {
    store: { url: PG_URL, group: unique('metrics'), electionInterval: 0.2 },
    batch: { batchTimeout: 0.05 },
  })
  await Promise.all([0, 1].map((i) => client.send(claudeCommand(`group ${i}`))))
  await waitFor('the lead', () => client.stats().leader === true)
  const s = client.stats()
  const scraped = scrape(client.metrics())
  assertMatchesStats(t, scraped, s)
  t.is(value(scraped, 'bedrock_batch_leader'), 1)
  t.is(value(scraped, 'bedrock_batch_store_size_bytes', { kind: 'postgres' }), s.store.bytes)
  t.false(client.metrics().includes(PG_URL), 'the store URL is not a label')
})

test('past 200 distinct model ids, the rest are counted as model "other": every series stays unique', (t) => {
  // The registry itself (serve's callers choose model ids: the label values must stay bounded).
  const requests = new RequestMetrics()
  const emptyStats = new bridge.BatchInferenceClient().stats()
  for (let i = 0; i < 205; i++) requests.observe(requests.tag(`model-${i}`, 'Converse'), 0, 1.5)
  requests.observe(requests.tag('other', 'Converse'), 1, 2, 'ValidationException')
  const text = exposition(emptyStats, requests)
  const scraped = scrape(text)
  const series = samples(scraped, 'bedrock_batch_requests_total')
  t.is(series.length, 202, '200 models and other (success and error)')
  t.is(new Set(series.map((m) => JSON.stringify(m.labels))).size, 202)
  t.is(value(scraped, 'bedrock_batch_requests_total', { model: 'model-199', outcome: 'success' }), 1)
  t.is(value(scraped, 'bedrock_batch_requests_total', { model: 'other', outcome: 'success' }), 5)
  t.is(value(scraped, 'bedrock_batch_requests_total', { model: 'other', outcome: 'error' }), 1)
  t.is(
    histogramSeries(t, scraped).reduce((n, h) => n + h.count, 0),
    206,
  )
})

// ---------------------------------------------------------------------------
// serve: GET /_bridge/metrics

/** A JavaScript SDK client of a serve at `url`, signing with `credentials`. */
function runtimeOf(t, url, region, credentials) {
  const runtime = new BedrockRuntimeClient({ region, endpoint: url, credentials, maxAttempts: 1 })
  t.teardown(() => runtime.destroy())
  return runtime
}

const invoke = (prompt) =>
  new SdkInvokeModelCommand({
    modelId: CLAUDE,
    contentType: 'application/json',
    accept: 'application/json',
    body: JSON.stringify(claudeBody(prompt)),
  })

test('serve: GET /_bridge/metrics after JS SDK calls agrees with /_bridge/stats and holds no body or caller credential', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startServe(t, emu, { batch: { batchTimeout: 0.05 } })
  const canary = { body: `serve-canary-${randomUUID()}`, key: `AKIDCANARY${randomUUID().slice(0, 8)}` }
  const callerSecret = `canary-secret-${randomUUID()}`
  const runtime = runtimeOf(t, srv.url, emu.region, { accessKeyId: canary.key, secretAccessKey: callerSecret })

  const first = await fetch(`${srv.url}/_bridge/metrics`)
  t.is(first.status, 200)
  t.is(first.headers.get('content-type'), CONTENT_TYPE)
  const before = scrape(await first.text())
  assertWellFormed(t, before)
  assertMatchesStats(t, before, await srv.stats())

  const outs = await Promise.all(Array.from({ length: 6 }, (_, i) => runtime.send(invoke(`${canary.body} ${i}`))))
  for (const [i, out] of outs.entries())
    t.true(JSON.parse(Buffer.from(out.body).toString()).content[0].text.includes(`${canary.body} ${i}`))

  const res = await fetch(`${srv.url}/_bridge/metrics`)
  t.is(res.headers.get('content-type'), CONTENT_TYPE)
  const text = await res.text()
  const s = await srv.stats()
  const after = scrape(text)
  assertWellFormed(t, after)
  assertMatchesStats(t, after, s)
  t.is(value(after, 'bedrock_batch_requests_total', { model: CLAUDE, operation: 'InvokeModel', outcome: 'success' }), 6)
  const [series] = histogramSeries(t, after)
  t.is(series.count, 6)
  t.true(s.jobs.length >= 1)
  for (const c of [canary.body, canary.key, callerSecret, emu.credentials.secretAccessKey]) t.false(text.includes(c), c)
})

test("serve: the requests held by model and state while a job runs, and the job's failed records by error name", async (t) => {
  const { emu } = await startEmu(t, { slowJobSeconds: 3 })
  const srv = await startServe(t, emu, { batch: { batchTimeout: 0.05, maxAttempts: 1 } })
  const runtime = runtimeOf(t, srv.url, emu.region)
  const bodies = ['hold [[job:slow]]', 'bad [[error:400]]', 'fine']
  const sent = bodies.map((b) =>
    runtime.send(invoke(b)).then(
      () => 'ok',
      (e) => e.name,
    ),
  )
  const during = await waitFor('the three requests in a job', async () => {
    const m = scrape(await (await fetch(`${srv.url}/_bridge/metrics`)).text())
    return value(m, 'bedrock_batch_model_requests', { model: CLAUDE, state: 'in_jobs' }) === 3 && m
  })
  for (const state of ['queued', 'on_demand', 'in_group'])
    t.is(value(during, 'bedrock_batch_model_requests', { model: CLAUDE, state }), 0, state)
  t.deepEqual(await Promise.all(sent), ['ok', 'ValidationException', 'ok'])
  const after = scrape(await (await fetch(`${srv.url}/_bridge/metrics`)).text())
  t.is(value(after, 'bedrock_batch_job_record_errors', { model: CLAUDE, error: 'ValidationException' }), 1)
  t.is(total(after, 'bedrock_batch_model_requests'), 0, 'nothing held once everything settled')
  assertMatchesStats(t, after, await srv.stats())
})

test('serve --auth: /_bridge/metrics needs a signature like every other path', async (t) => {
  const { emu } = await startEmu(t)
  const key = { accessKeyId: 'AKID_METRICS', secretAccessKey: `secret-${randomUUID()}` }
  const srv = await startServe(t, emu, { args: ['--auth', `${key.accessKeyId}:${key.secretAccessKey}`] })
  const unsigned = await fetch(`${srv.url}/_bridge/metrics`)
  t.is(unsigned.status, 403)
  t.regex(unsigned.headers.get('x-amzn-errortype') ?? '', /^\w+Exception/)

  const res = await signedGet(`${srv.url}/_bridge/metrics`, emu.region, key)
  t.is(res.status, 200, await res.clone().text())
  t.is(res.headers.get('content-type'), CONTENT_TYPE)
  const text = await res.text()
  assertWellFormed(t, scrape(text))
  t.false(text.includes(key.secretAccessKey))
})

test('S3 calls that fail after the SDK retries are counted in stats().failedCalls and bedrock_batch_failed_calls_total', async (t) => {
  // The first three S3 requests answer 503 SlowDown: the SDK's three attempts at the upload fail,
  // the engine uploads again later, and the requests are answered.
  const { emu } = await startEmu(t, { s3: { failFirst: 3 } })
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.05 } })
  t.deepEqual(client.stats().failedCalls, { s3: 0, bedrock: 0, store: 0 })
  const outcomes = await Promise.all(Array.from({ length: 3 }, (_, i) => settle(client.send(claudeCommand(`s3 ${i}`)))))
  t.true(outcomes.every((o) => o.ok))
  const s = client.stats()
  t.true(s.failedCalls.s3 >= 1, `s3: ${s.failedCalls.s3}`)
  t.like(s.failedCalls, { bedrock: 0, store: 0 })
  const scraped = scrape(client.metrics())
  for (const service of ['s3', 'bedrock', 'store'])
    t.is(value(scraped, 'bedrock_batch_failed_calls_total', { service }), s.failedCalls[service], service)
})
