// Log and file hygiene (issue 23): request bodies and credentials carrying canaries (unique random
// strings) go through every door and mode: the drop-in client in batch mode, direct mode and openai
// mode (the emulator's OpenAI-compatible endpoint), the plugin, batchFetch, and `serve` (the
// runtime wire signed with a secret key under --auth, the OpenAI and Anthropic wires with an API
// key, and their batch APIs: OpenAI's Files and Batch API, Anthropic's Message Batches), with calls
// that succeed, that fail validation and that fail in their batch. A logger takes every level
// (trace to fatal), process warnings and this process's own stdout and stderr are captured, and so
// are serve's stdout and stderr. No canary may appear in any log line, error (message, stack or any
// property), stats(), metrics(), OpenTelemetry span, serve's dashboard (/_bridge/, dashboard.json),
// /_bridge/metrics and /_bridge/stats, `jobs list` / `jobs show` of a journal, or
// `bedrock-batch-bridge dashboard` on a journal (its page, dashboard.json, job pages and metrics). The journal
// database itself holds bodies for replay by design: its bytes are not read.
//
// The Rust engine's `tracing` events have no subscriber in the addon (they reach neither the
// logger nor stderr); RUST_LOG=trace is set for serve so that one reading it would be covered.
//
// Every check is proven able to fail: each capture must hold what it is expected to hold (the
// job's name, the model id, the quota warning, the error's name), each answer must carry its prompt
// canary back (so the canary really travelled), and the first test plants canaries for the finder.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { format, inspect } from 'node:util'
import { AnthropicBedrock } from '@anthropic-ai/bedrock-sdk'
import Anthropic from '@anthropic-ai/sdk'
import {
  BedrockRuntimeClient,
  ConverseCommand as SdkConverseCommand,
  InvokeModelCommand as SdkInvokeModelCommand,
} from '@aws-sdk/client-bedrock-runtime'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import test from 'ava'
import OpenAI, { toFile } from 'openai'

import {
  BatchInferenceClient,
  bridge,
  CLAUDE,
  CLI,
  childEnv,
  claudeBody,
  claudeCommand,
  claudeText,
  converseBody,
  makeClient,
  ROLE_ARN,
  settle,
  signedGet,
  startDashboard,
  startEmu,
  startServe,
  tempDir,
  unique,
  waitFor,
} from './helpers.mjs'

const { ConverseCommand, InvokeModelCommand, batchPlugin, batchFetch } = bridge

const answerTo = (prompt) => `This is the emulator's answer to: ${prompt}`

// ---------------------------------------------------------------------------
// Captures: spans, process warnings, this process's stdout and stderr

const spans = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())

/** Everything this process printed or warned while the tests ran (every test's canaries are held against it). */
const processLines = []
process.on('warning', (w) => processLines.push(`warning ${w.name}: ${w.message}`))
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream)
  stream.write = (chunk, ...rest) => {
    processLines.push(String(chunk))
    return write(chunk, ...rest)
  }
}

/** A unique random string, labelled (letters and digits only, so no encoding changes it). */
function canary(label) {
  return `cnry${label}${randomBytes(9).toString('hex')}`
}

/** A logger with every level a logger may have; `lines` is what it got, as `level: text`. */
function captureLogger() {
  const lines = []
  const logger = {}
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
    logger[level] = (...args) => lines.push(`${level}: ${format(...args)}`)
  return { logger, lines }
}

/** Everything an error shows: message, stack, every property (nested), and its cause. */
function errorText(err) {
  return [String(err?.message), String(err?.stack), inspect(err, { depth: 10, showHidden: true, getters: true })].join(
    '\n',
  )
}

/** Any value as text (objects as inspect and JSON show them). */
function asText(v) {
  if (typeof v === 'string') return v
  if (v instanceof Error) return errorText(v)
  let json = ''
  try {
    json = JSON.stringify(v)
  } catch {}
  return `${inspect(v, { depth: 20, maxArrayLength: null, maxStringLength: null })}\n${json}`
}

/** `where: canary label` for each canary of `canaries` ({ label: value }) found in `texts` ({ where: value }). */
function leaks(canaries, texts) {
  const found = []
  for (const [where, v] of Object.entries(texts)) {
    const text = asText(v)
    for (const [label, c] of Object.entries(canaries)) {
      const at = text.indexOf(c)
      if (at >= 0)
        found.push(`${where}: the ${label} canary, in …${text.slice(Math.max(0, at - 80), at + c.length + 20)}…`)
    }
  }
  return found
}

/** Holds `texts` free of every canary, and the process's own output and warnings too. */
function assertNoLeak(t, canaries, texts) {
  t.deepEqual(leaks(canaries, { ...texts, 'process output and warnings': processLines.join('\n') }), [])
}

/** The text of every finished span (name, attributes, events, links, status). */
function spanTexts() {
  return spans.getFinishedSpans().map((s) =>
    asText({
      name: s.name,
      attributes: s.attributes,
      events: s.events,
      links: s.links,
      status: s.status,
      resource: s.resource?.attributes,
    }),
  )
}

/** `node cli.js jobs ...args`, with its exit code and output. */
function runJobs(args) {
  const child = spawn(process.execPath, [CLI, 'jobs', ...args], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d
  })
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d
  })
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
}

/**
 * `jobs list` and `jobs show` (plain and --json) of a journal: checks that they list `jobName`
 * (the job of `jobArn`), and returns their outputs.
 */
async function journalListing(t, journal, jobArn, jobName) {
  const out = {}
  for (const [label, args] of [
    ['jobs list', ['list', '--journal', journal]],
    ['jobs list --json', ['list', '--journal', journal, '--json']],
    ['jobs show', ['show', jobArn, '--journal', journal]],
    ['jobs show --json', ['show', jobArn, '--journal', journal, '--json']],
  ]) {
    const r = await runJobs(args)
    t.is(r.code, 0, `${label}: ${r.stderr}`)
    t.true(r.stdout.includes(jobName), `${label} shows the job ${jobName}:\n${r.stdout}`)
    out[label] = `${r.stdout}\n${r.stderr}`
  }
  return out
}

/**
 * `bedrock-batch-bridge dashboard --journal`: its page, dashboard.json, each job's page (which
 * must show the job) and its metrics, by path.
 */
async function dashboardPages(t, journal, jobs) {
  const dash = await startDashboard(t, ['--journal', journal])
  const pages = {}
  const get = async (path) => {
    const res = await fetch(new URL(path, dash.url))
    const text = await res.text()
    t.is(res.status, 200, `dashboard ${path}: ${text}`)
    pages[`dashboard ${path}`] = text
    return text
  }
  t.true((await get('')).includes(jobs[0].jobArn), 'the dashboard page lists the job')
  t.true((await get('dashboard.json')).includes(jobs[0].jobName))
  for (const j of jobs) t.true((await get(`jobs/${j.jobArn.split('/').pop()}`)).includes(j.jobArn))
  t.true((await get('metrics')).includes(CLAUDE))
  dash.child.kill('SIGTERM')
  pages['dashboard stdout and stderr'] = JSON.stringify(await dash.exited)
  return pages
}

/**
 * makeClient's batch options, less the two a client reads from Service Quotas when not given
 * (minBatchSize, maxConcurrentJobs): the client then reads them and warns when it cannot.
 */
const READ_QUOTAS = { maxAttempts: 1, minBatchSize: undefined, maxConcurrentJobs: undefined }

/** Claude's body for `text` (the canary in the prompt). */
const claude = (text, extra) => JSON.stringify(claudeBody(text, extra))

// ---------------------------------------------------------------------------
// The checks check

test('the leak check finds a canary in a log line, an error property, a nested object and a process warning', async (t) => {
  const c = { prompt: canary('prompt'), key: canary('key') }
  t.is(new Set([canary('x'), canary('x')]).size, 2, 'canaries are unique')
  t.regex(c.prompt, /^cnryprompt[0-9a-f]{18}$/)
  const err = new Error('plain')
  err.$response = { body: { text: `said ${c.prompt}` } }
  t.deepEqual(leaks(c, { log: 'nothing here', err: new Error('fine') }), [])
  t.is(leaks(c, { err }).length, 1, 'a property of an error')
  t.is(leaks(c, { stats: { jobs: [{ deep: { deeper: [c.key] } }] } }).length, 1, 'a nested value')
  t.is(leaks(c, { both: `${c.prompt} and ${c.key}` }).length, 2)
  const { logger, lines } = captureLogger()
  logger.debug('an object %o', { k: c.key })
  t.is(leaks(c, { lines }).length, 1, 'a logger line')
  process.emitWarning(`a canary planted by the self-test of hygiene.spec: ${c.prompt}`, 'HygieneSelfTest')
  await waitFor('the planted warning', () => processLines.some((l) => l.includes(c.prompt)))
  t.true(leaks(c, { process: processLines.join('\n') }).length === 1, 'a process warning')
  // The planted canary is this test's own: other tests hold their own canaries against these lines.
})

// ---------------------------------------------------------------------------
// The drop-in client

test('batch mode: bodies and a session token never reach logs, errors, stats, metrics, spans or jobs list/show of the journal', async (t) => {
  // Service Quotas denied: the client warns (through logger.warn), so the warn level is exercised.
  const { emu } = await startEmu(t, { serviceQuotas: { denied: true } })
  const c = {
    prompt: canary('prompt'),
    converse: canary('converse'),
    failed: canary('failed'),
    invalid: canary('invalid'),
    notJson: canary('notjson'),
    sessionToken: canary('token'),
  }
  const { logger, lines } = captureLogger()
  const journal = join(tempDir(t), 'journal.db')
  const { client } = makeClient(t, emu, {
    credentials: { ...emu.credentials, sessionToken: c.sessionToken },
    logger,
    journal: { path: journal },
    batch: READ_QUOTAS,
  })
  const [ok, conv, failed, invalid, notJson] = await Promise.all([
    settle(client.send(claudeCommand(`tell me about ${c.prompt}`))),
    settle(client.send(new ConverseCommand({ modelId: CLAUDE, ...converseBody(`and ${c.converse}`) }))),
    settle(client.send(claudeCommand(`broken ${c.failed} [[error:400]]`))),
    settle(
      client.send(
        new InvokeModelCommand({
          modelId: CLAUDE,
          contentType: 'application/json',
          body: JSON.stringify({
            anthropic_version: 'bedrock-2023-05-31',
            messages: [{ role: 'user', content: c.invalid }],
          }),
        }),
      ),
    ),
    settle(client.send(new InvokeModelCommand({ modelId: CLAUDE, body: `not json ${c.notJson}` }))),
  ])
  // The canaries travelled: each answer carries its prompt back.
  t.true(ok.ok, ok.error?.message)
  t.is(claudeText(ok.value), answerTo(`tell me about ${c.prompt}`))
  t.true(conv.ok, conv.error?.message)
  t.true(conv.value.output.message.content[0].text.includes(c.converse))
  // Records that failed in their batch (a fault marker; a body without max_tokens, which the
  // service refuses), and a body the client refused before any job.
  for (const o of [failed, invalid]) {
    t.false(o.ok)
    t.is(o.error?.name, 'ValidationException')
    t.truthy(o.error?.jobArn, 'it failed in its batch job')
  }
  t.false(notJson.ok)
  t.is(notJson.error?.name, 'ValidationException')
  t.falsy(notJson.error?.jobArn, 'refused before any job')

  const stats = client.stats()
  // InvokeModel and Converse records go in jobs of their own.
  t.is(stats.jobs.length, 2)
  // The captures hold what they should: each job's events, the quota warning, the spans.
  for (const job of stats.jobs)
    t.true(
      lines.some((l) => l.startsWith('info: ') && l.includes(job.jobName) && l.includes(job.status)),
      lines.join('\n'),
    )
  const job = stats.jobs.find((j) => j.modelId === CLAUDE) ?? stats.jobs[0]
  t.true(
    lines.some((l) => l.startsWith('warn: ') && /Service Quotas/.test(l)),
    lines.join('\n'),
  )
  const metrics = client.metrics()
  t.true(metrics.includes(CLAUDE), 'the metrics name the model')
  const spanText = spanTexts()
  t.true(
    spanText.some((s) => s.includes('bedrock.batch')),
    'spans were recorded',
  )
  const stored = await client.jobs()
  t.true(stored.some((j) => j.jobName === job.jobName))
  await client.close()
  const listing = await journalListing(t, journal, job.jobArn, job.jobName)
  const dashboard = await dashboardPages(t, journal, stats.jobs)

  assertNoLeak(t, c, {
    'logger lines': lines,
    'the answer error': failed.error,
    'the invalid body error': invalid.error,
    'the not-JSON error': notJson.error,
    'stats()': stats,
    'metrics()': metrics,
    'jobs()': stored,
    spans: spanText,
    ...listing,
    ...dashboard,
  })
})

test('batch mode: a secret key the service refuses (static, or from a provider) is in no log, error or stats', async (t) => {
  const { emu } = await startEmu(t)
  const c = { secret: canary('secret'), providedSecret: canary('provided'), prompt: canary('prompt') }
  const { logger, lines } = captureLogger()
  const clients = [
    makeClient(t, emu, {
      credentials: { accessKeyId: emu.credentials.accessKeyId, secretAccessKey: c.secret },
      logger,
      batch: READ_QUOTAS,
    }).client,
    makeClient(t, emu, {
      credentials: async () => ({
        accessKeyId: emu.credentials.accessKeyId,
        secretAccessKey: c.providedSecret,
        expiration: new Date(Date.now() + 3_600_000),
      }),
      logger,
      batch: READ_QUOTAS,
    }).client,
  ]
  const outcomes = await Promise.all(clients.map((client) => settle(client.send(claudeCommand(`hi ${c.prompt}`)))))
  for (const o of outcomes) {
    t.false(o.ok, 'S3 refuses the signature')
    t.is(o.error?.name, 'AccessDeniedException', o.error?.message)
    t.regex(o.error?.message ?? '', /SignatureDoesNotMatch/)
  }
  // The quota warning (its call was refused too) names the refusal, never the secret.
  await waitFor(
    'the warning of each client that its quotas could not be read',
    () => lines.filter((l) => l.startsWith('warn: ') && /signature/i.test(l)).length >= 2,
  )
  assertNoLeak(t, c, {
    'logger lines': lines,
    errors: outcomes.map((o) => o.error),
    'stats()': clients.map((client) => client.stats()),
    'metrics()': clients.map((client) => client.metrics()),
    spans: spanTexts(),
  })
})

test('direct mode: bodies, a secret key and a session token never reach errors, logs, stats, metrics or spans', async (t) => {
  // The runtime checks no signatures here, so any secret key signs.
  const { emu } = await startEmu(t, { verifySignatures: false })
  const c = {
    prompt: canary('prompt'),
    failed: canary('failed'),
    notJson: canary('notjson'),
    secret: canary('secret'),
    sessionToken: canary('token'),
  }
  const { logger, lines } = captureLogger()
  const client = new BatchInferenceClient({
    mode: 'direct',
    region: emu.region,
    endpoints: emu.endpoints,
    credentials: { accessKeyId: 'AKIDHYGIENEDIRECT', secretAccessKey: c.secret, sessionToken: c.sessionToken },
    logger,
  })
  t.teardown(() => client.destroy())
  const [ok, conv, failed, notJson] = await Promise.all([
    settle(client.send(claudeCommand(`direct ${c.prompt}`))),
    settle(client.send(new ConverseCommand({ modelId: CLAUDE, ...converseBody(`conv ${c.prompt}`) }))),
    settle(client.send(claudeCommand(`broken ${c.failed} [[error:424]]`))),
    settle(client.send(new InvokeModelCommand({ modelId: CLAUDE, body: `not json ${c.notJson}` }))),
  ])
  t.true(ok.ok, ok.error?.message)
  t.is(claudeText(ok.value), answerTo(`direct ${c.prompt}`))
  t.true(conv.ok, conv.error?.message)
  t.false(failed.ok)
  t.is(failed.error?.name, 'ModelErrorException')
  t.false(notJson.ok)
  t.is(notJson.error?.name, 'ValidationException')
  const stats = client.stats()
  t.true(stats.sentDirect >= 2, JSON.stringify(stats))
  const metrics = client.metrics()
  t.true(metrics.includes(CLAUDE))
  // Direct mode has no jobs, so the logger may get nothing; what it gets is checked all the same.
  assertNoLeak(t, c, {
    'logger lines': lines,
    'the model error': failed.error,
    'the not-JSON error': notJson.error,
    'stats()': stats,
    'metrics()': metrics,
    spans: spanTexts(),
  })
})

test('openai mode (the emulator as the OpenAI-compatible server): the API key and bodies are in no error, log, stats or metrics', async (t) => {
  const { emu } = await startEmu(t)
  const c = {
    apiKey: `sk-${canary('apikey')}`,
    prompt: canary('prompt'),
    failed: canary('failed'),
    other: canary('other'),
  }
  const { logger, lines } = captureLogger()
  const client = new BatchInferenceClient({
    mode: 'openai',
    region: emu.region,
    openai: { model: 'hosted_vllm/emulator-chat', apiBase: emu.endpoints.openai, apiKey: c.apiKey },
    logger,
  })
  t.teardown(() => client.destroy())
  const send = (body) => settle(client.send(new InvokeModelCommand({ modelId: CLAUDE, body })))
  const [ok, unauthorized, failed, unconvertible, notJson] = await Promise.all([
    send(claude(`openai ${c.prompt}`)),
    send(claude(`no entry ${c.failed} [[error:401]]`)),
    send(claude(`broken ${c.failed} [[error:400]]`)),
    send(JSON.stringify({ inputText: `titan ${c.other}` })),
    send(`not json ${c.other}`),
  ])
  t.true(ok.ok, ok.error?.message)
  t.true(JSON.parse(ok.value.body.transformToString()).content[0].text.includes(c.prompt))
  t.is(unauthorized.error?.name, 'AccessDeniedException')
  t.is(failed.error?.name, 'ValidationException')
  t.is(unconvertible.error?.name, 'ValidationException')
  t.is(notJson.error?.name, 'ValidationException')
  const stats = client.stats()
  const metrics = client.metrics()
  t.true(metrics.includes(CLAUDE))
  assertNoLeak(t, c, {
    'logger lines': lines,
    errors: [unauthorized, failed, unconvertible, notJson].map((o) => o.error),
    'stats()': stats,
    'metrics()': metrics,
    spans: spanTexts(),
  })
})

// ---------------------------------------------------------------------------
// The plugin and batchFetch

test("the plugin: bodies and the host client's session token never reach logs, errors, stats or metrics", async (t) => {
  const { emu } = await startEmu(t)
  const c = { prompt: canary('prompt'), failed: canary('failed'), notJson: canary('notjson'), token: canary('token') }
  const { logger, lines } = captureLogger()
  const runtime = new BedrockRuntimeClient({
    region: emu.region,
    credentials: { ...emu.credentials, sessionToken: c.token },
    endpoint: emu.endpoints.bedrockRuntime,
    maxAttempts: 1,
  })
  t.teardown(() => runtime.destroy())
  const prefix = unique('hyg-plugin')
  const plugin = batchPlugin({
    client: runtime,
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
    logger,
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      batchTimeout: 0.2,
      pollInterval: 0.05,
      maxAttempts: 1,
    },
  })
  t.teardown(() => plugin.destroy())
  runtime.middlewareStack.use(plugin)
  const send = (body) =>
    settle(runtime.send(new SdkInvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body })))
  const [ok, conv, failed, notJson] = await Promise.all([
    send(claude(`plugin ${c.prompt}`)),
    settle(runtime.send(new SdkConverseCommand({ modelId: CLAUDE, ...converseBody(`conv ${c.prompt}`) }))),
    send(claude(`broken ${c.failed} [[error:400]]`)),
    send(`not json ${c.notJson}`),
  ])
  t.true(ok.ok, ok.error?.message)
  t.is(JSON.parse(ok.value.body.transformToString()).content[0].text, answerTo(`plugin ${c.prompt}`))
  t.true(conv.ok, conv.error?.message)
  t.is(failed.error?.name, 'ValidationException')
  t.truthy(failed.error?.jobArn)
  t.is(notJson.error?.name, 'ValidationException')
  const stats = plugin.stats()
  t.true(stats.jobs.length >= 1)
  t.true(
    lines.some((l) => l.startsWith('info: ') && l.includes(stats.jobs[0].jobName)),
    lines.join('\n'),
  )
  const metrics = plugin.metrics()
  assertNoLeak(t, c, {
    'logger lines': lines,
    errors: [failed.error, notJson.error],
    'stats()': stats,
    'metrics()': metrics,
    spans: spanTexts(),
  })
})

test("batchFetch: bodies and the calling library's secret key and session token never reach logs, errors, stats or metrics", async (t) => {
  const { emu } = await startEmu(t)
  const c = {
    prompt: canary('prompt'),
    failed: canary('failed'),
    notJson: canary('notjson'),
    secret: canary('secret'),
    token: canary('token'),
  }
  const { logger, lines } = captureLogger()
  const prefix = unique('hyg-fetch')
  const fetchFn = batchFetch({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    logger,
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      batchTimeout: 0.2,
      pollInterval: 0.05,
      maxAttempts: 1,
    },
  })
  t.teardown(() => fetchFn.destroy())
  // Anthropic's Bedrock SDK signs its calls with its own (canary) credentials; batchFetch takes them.
  const anthropic = new AnthropicBedrock({
    awsRegion: emu.region,
    awsAccessKey: 'AKIDHYGIENEFETCH',
    awsSecretKey: c.secret,
    awsSessionToken: c.token,
    fetch: fetchFn,
    maxRetries: 0,
  })
  const ask = (text) =>
    settle(anthropic.messages.create({ model: CLAUDE, max_tokens: 50, messages: [{ role: 'user', content: text }] }))
  const [ok, failed, notJson] = await Promise.all([
    ask(`fetch ${c.prompt}`),
    ask(`broken ${c.failed} [[error:400]]`),
    settle(
      fetchFn(`https://bedrock-runtime.${emu.region}.amazonaws.com/model/${encodeURIComponent(CLAUDE)}/invoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-amz-security-token': c.token },
        body: `not json ${c.notJson}`,
      }).then(async (res) => ({
        status: res.status,
        headers: Object.fromEntries(res.headers),
        body: await res.text(),
      })),
    ),
  ])
  t.true(ok.ok, ok.error?.message)
  t.is(ok.value.content[0].text, answerTo(`fetch ${c.prompt}`))
  t.false(failed.ok)
  t.is(failed.error?.status, 400)
  t.true(notJson.ok, notJson.error?.message)
  t.is(notJson.value.status, 400)
  t.regex(notJson.value.body, /ValidationException|not valid JSON/)
  const stats = fetchFn.stats()
  t.true(stats.jobs.length >= 1)
  t.true(
    lines.some((l) => l.startsWith('info: ') && l.includes(stats.jobs[0].jobName)),
    lines.join('\n'),
  )
  assertNoLeak(t, c, {
    'logger lines': lines,
    "the SDK's error": failed.error,
    'the not-JSON answer': notJson.value,
    'stats()': stats,
    'metrics()': fetchFn.metrics(),
    spans: spanTexts(),
  })
})

// ---------------------------------------------------------------------------
// serve

test('serve: the runtime, OpenAI and Anthropic wires keep bodies, secret keys and API keys out of its output, errors, dashboard, metrics, stats and jobs list/show', async (t) => {
  const { emu } = await startEmu(t)
  const c = {
    secret: canary('secret'),
    wrongSecret: canary('wrongsecret'),
    apiKey: canary('apikey'),
    wrongKey: canary('wrongkey'),
    prompt: canary('prompt'),
    converse: canary('converse'),
    failed: canary('failed'),
    invalid: canary('invalid'),
    openai: canary('openai'),
    openaiFailed: canary('openaifailed'),
    openaiInvalid: canary('openaiinvalid'),
    anthropic: canary('anthropic'),
    anthropicFailed: canary('anthropicfailed'),
    anthropicInvalid: canary('anthropicinvalid'),
  }
  const dir = tempDir(t)
  const journal = join(dir, 'serve-journal.db')
  const caller = { accessKeyId: 'AKIDHYGIENESERVE', secretAccessKey: c.secret }
  // The secret and the API key come from the environment (a command line is visible to every user).
  const srv = await startServe(t, emu, {
    dir,
    args: ['--model-map', `house=${CLAUDE}`, '--journal', journal],
    env: {
      BEDROCK_BATCH_SERVE_AUTH: `${caller.accessKeyId}:${c.secret}`,
      BEDROCK_BATCH_SERVE_API_KEYS: c.apiKey,
      RUST_LOG: 'trace',
    },
  })

  // The runtime wire, signed: two answers, a record that fails in its batch, a body refused at once,
  // and a caller with the wrong secret.
  const runtime = (credentials) => {
    const client = new BedrockRuntimeClient({ region: emu.region, endpoint: srv.url, credentials, maxAttempts: 1 })
    t.teardown(() => client.destroy())
    return client
  }
  const signedClient = runtime(caller)
  const invoke = (client, body) =>
    settle(client.send(new SdkInvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body })))
  const openai = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: c.apiKey, maxRetries: 0 })
  const wrongOpenai = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: c.wrongKey, maxRetries: 0 })
  const anthropic = new Anthropic({ baseURL: srv.url, apiKey: c.apiKey, maxRetries: 0 })
  const chat = (client, text, extra = {}) =>
    settle(client.chat.completions.create({ model: 'house', messages: [{ role: 'user', content: text }], ...extra }))
  const message = (text, extra = {}) =>
    settle(
      anthropic.messages.create({
        model: 'house',
        max_tokens: 50,
        messages: [{ role: 'user', content: text }],
        ...extra,
      }),
    )
  const [
    ok,
    conv,
    failed,
    invalid,
    wrongSecret,
    openaiOk,
    openaiFailed,
    openaiInvalid,
    openaiWrongKey,
    anthropicOk,
    anthropicFailed,
    anthropicInvalid,
  ] = await Promise.all([
    invoke(signedClient, claude(`runtime ${c.prompt}`)),
    settle(signedClient.send(new SdkConverseCommand({ modelId: CLAUDE, ...converseBody(`conv ${c.converse}`) }))),
    invoke(signedClient, claude(`broken ${c.failed} [[error:400]]`)),
    invoke(signedClient, `not json ${c.invalid}`),
    invoke(runtime({ accessKeyId: caller.accessKeyId, secretAccessKey: c.wrongSecret }), claude(`wrong ${c.prompt}`)),
    chat(openai, `openai ${c.openai}`),
    chat(openai, `broken ${c.openaiFailed} [[error:400]]`),
    chat(openai, `twice ${c.openaiInvalid}`, { n: 2 }),
    chat(wrongOpenai, `wrong key ${c.openai}`),
    message(`anthropic ${c.anthropic}`),
    message(`broken ${c.anthropicFailed} [[error:400]]`),
    message(`bad ${c.anthropicInvalid}`, { max_tokens: -1 }),
  ])
  t.true(ok.ok, ok.error?.message)
  t.is(JSON.parse(ok.value.body.transformToString()).content[0].text, answerTo(`runtime ${c.prompt}`))
  t.true(conv.ok, conv.error?.message)
  t.is(failed.error?.name, 'ValidationException')
  t.is(invalid.error?.name, 'ValidationException')
  t.is(wrongSecret.error?.name, 'InvalidSignatureException')
  t.true(openaiOk.ok, openaiOk.error?.message)
  t.true(openaiOk.value.choices[0].message.content.includes(c.openai))
  t.is(openaiFailed.error?.status, 400)
  t.is(openaiInvalid.error?.status, 400)
  t.is(openaiWrongKey.error?.status, 401)
  t.true(anthropicOk.ok, anthropicOk.error?.message)
  t.true(anthropicOk.value.content[0].text.includes(c.anthropic))
  t.is(anthropicFailed.error?.status, 400)
  t.is(anthropicInvalid.error?.status, 400)

  // What serve shows of itself, signed as --auth wants.
  const pages = {}
  for (const path of ['/_bridge/', '/_bridge/dashboard.json', '/_bridge/metrics', '/_bridge/stats']) {
    const signed = await signedGet(`${srv.url}${path}`, emu.region, caller)
    const res = { status: signed.status, text: await signed.text() }
    t.is(res.status, 200, `${path}: ${res.text}`)
    pages[`GET ${path}`] = res.text
  }
  const stats = JSON.parse(pages['GET /_bridge/stats'])
  t.true(stats.jobs.length >= 1, pages['GET /_bridge/stats'])
  const [job] = stats.jobs
  t.true(pages['GET /_bridge/'].includes(job.jobName), 'the dashboard lists the job')
  t.true(pages['GET /_bridge/dashboard.json'].includes(job.jobName))
  t.true(pages['GET /_bridge/metrics'].includes(CLAUDE))
  const listing = await journalListing(t, journal, job.jobArn, job.jobName)

  // Its whole output, to its end (SIGTERM: it says so on stderr as it stops).
  srv.child.kill('SIGTERM')
  const exit = await srv.exited
  t.is(exit.code, 0, exit.stderr)
  t.regex(exit.stdout, /AWS_ENDPOINT_URL_BEDROCK_RUNTIME=/)
  t.regex(exit.stderr, /SIGTERM/)

  assertNoLeak(t, c, {
    "serve's stdout": exit.stdout,
    "serve's stderr": exit.stderr,
    'runtime errors': [failed, invalid, wrongSecret].map((o) => o.error),
    'OpenAI errors': [openaiFailed, openaiInvalid, openaiWrongKey].map((o) => o.error),
    'Anthropic errors': [anthropicFailed, anthropicInvalid].map((o) => o.error),
    ...pages,
    ...listing,
  })
})

test("serve's batch wires (OpenAI Files and Batch API, Anthropic Message Batches): bodies and the API key are in no batch object, error, error file, output, page or listing", async (t) => {
  const { emu } = await startEmu(t)
  const c = {
    apiKey: canary('apikey'),
    prompt: canary('prompt'),
    failed: canary('failed'),
    badLine: canary('badline'),
    badParams: canary('badparams'),
    message: canary('message'),
    messageFailed: canary('messagefailed'),
    refused: canary('refused'),
  }
  const dir = tempDir(t)
  const journal = join(dir, 'serve-journal.db')
  const srv = await startServe(t, emu, {
    dir,
    batch: { batchTimeout: 0.3 },
    args: ['--model-map', `house=${CLAUDE}`, '--journal', journal],
    env: { BEDROCK_BATCH_SERVE_API_KEYS: c.apiKey, RUST_LOG: 'trace' },
  })
  const openai = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: c.apiKey, maxRetries: 0 })
  const anthropic = new Anthropic({ baseURL: srv.url, apiKey: c.apiKey, maxRetries: 0 })
  const line = (id, text, body = {}) =>
    JSON.stringify({
      custom_id: id,
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'house', messages: [{ role: 'user', content: text }], max_tokens: 50, ...body },
    })
  const upload = async (lines) =>
    openai.files.create({ file: await toFile(Buffer.from(`${lines.join('\n')}\n`), 'input.jsonl'), purpose: 'batch' })
  const create = (file) =>
    openai.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
  const ended = (id) =>
    waitFor(
      `OpenAI batch ${id} to end`,
      async () => {
        const b = await openai.batches.retrieve(id)
        return ['completed', 'failed', 'cancelled', 'expired'].includes(b.status) && b
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    )
  const fileText = async (id) => (await openai.files.content(id)).text()

  // A batch whose one line fails in its job, and one refused for its bad lines (not JSON; bad params).
  const good = await create(
    await upload([line('ok', `batch ${c.prompt}`), line('broken', `broken ${c.failed} [[error:400]]`)]),
  )
  const bad = await create(
    await upload([
      line('fine', 'fine'),
      `{"custom_id": "nope", "body": "${c.badLine}" not json`,
      line('params', `n ${c.badParams}`, { n: 3 }),
    ]),
  )
  t.is(bad.status, 'failed')
  t.deepEqual(
    bad.errors.data.map((e) => e.line),
    [2, 3],
  )
  // Anthropic: a batch with a record that fails in its job, and a create refused whole.
  const message = (id, text) => ({
    custom_id: id,
    params: { model: 'house', max_tokens: 50, messages: [{ role: 'user', content: text }] },
  })
  const mb = await anthropic.messages.batches.create({
    requests: [message('m-ok', `message ${c.message}`), message('m-broken', `broken ${c.messageFailed} [[error:400]]`)],
  })
  const refused = await settle(
    anthropic.messages.batches.create({
      requests: [message('same', `refused ${c.refused}`), message('same', `refused ${c.refused}`)],
    }),
  )
  t.is(refused.error?.status, 400)

  const done = await ended(good.id)
  t.is(done.status, 'completed')
  t.deepEqual(done.request_counts, { total: 2, completed: 1, failed: 1 })
  const output = await fileText(done.output_file_id)
  t.true(output.includes(answerTo(`batch ${c.prompt}`)), 'the answer carries its prompt back')
  const errorFile = await fileText(done.error_file_id)
  t.true(errorFile.includes('"broken"'), errorFile)
  const mbDone = await waitFor(
    'the message batch to end',
    async () => {
      const b = await anthropic.messages.batches.retrieve(mb.id)
      return b.processing_status === 'ended' && b
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  )
  t.deepEqual(mbDone.request_counts, { processing: 0, succeeded: 1, errored: 1, canceled: 0, expired: 0 })
  const results = []
  for await (const r of await anthropic.messages.batches.results(mb.id)) results.push(r)
  const ok = results.find((r) => r.custom_id === 'm-ok')
  t.is(ok?.result.message.content[0].text, answerTo(`message ${c.message}`))
  const broken = results.find((r) => r.custom_id === 'm-broken')
  t.is(broken?.result.type, 'errored')

  const pages = {}
  for (const path of ['/_bridge/', '/_bridge/dashboard.json', '/_bridge/metrics', '/_bridge/stats']) {
    const res = await fetch(`${srv.url}${path}`)
    pages[`GET ${path}`] = await res.text()
    t.is(res.status, 200, `${path}: ${pages[`GET ${path}`]}`)
  }
  const stats = JSON.parse(pages['GET /_bridge/stats'])
  t.true(stats.jobs.length >= 2, 'a job for each batch')
  t.true(pages['GET /_bridge/'].includes(stats.jobs[0].jobName))
  const listing = await journalListing(t, journal, stats.jobs[0].jobArn, stats.jobs[0].jobName)
  const lists = {
    'the OpenAI batch list': (await openai.batches.list()).data,
    'the OpenAI file list': (await openai.files.list()).data,
    'the message batch list': (await anthropic.messages.batches.list()).data,
  }
  t.is(lists['the OpenAI batch list'].length, 2)
  const badAgain = await openai.batches.retrieve(bad.id)
  srv.child.kill('SIGTERM')
  const exit = await srv.exited
  t.is(exit.code, 0, exit.stderr)

  assertNoLeak(t, c, {
    "serve's stdout": exit.stdout,
    "serve's stderr": exit.stderr,
    'the OpenAI batches': [good, bad, done, badAgain],
    ...lists,
    'the error file': errorFile,
    'the message batches': [mb, mbDone],
    'the errored result': broken,
    'the refused create': refused.error,
    ...pages,
    ...listing,
  })
})

// ---------------------------------------------------------------------------
// Files

/** A client with a journal in a folder of its own answers one call and closes: `{ journal, files }` (the journal's files). */
async function journalRun(t) {
  const { emu } = await startEmu(t)
  const dir = tempDir(t)
  const journal = join(dir, 'journal.db')
  const { client } = makeClient(t, emu, { journal: { path: journal } })
  const out = await client.send(claudeCommand('journal mode'))
  await client.close()
  return { journal, out, files: readdirSync(dir).filter((f) => f.startsWith('journal.db')) }
}

test('a journal file the client creates is there and holds its call (the journal of the mode check)', async (t) => {
  const { journal, out, files } = await journalRun(t)
  t.is(claudeText(out), answerTo('journal mode'))
  t.true(statSync(journal).isFile())
  t.true(statSync(journal).size > 0)
  t.true(files.includes('journal.db'))
})

// The journal holds request bodies and answers: the SQLite store creates it 0600 whatever the
// process's umask, and SQLite gives its -wal and -shm files the same mode.
test('a journal file the client creates (and its -wal and -shm files) is readable by its owner only (0600)', async (t) => {
  const { journal, files } = await journalRun(t)
  const dir = join(journal, '..')
  const modes = Object.fromEntries(files.map((f) => [f, (statSync(join(dir, f)).mode & 0o777).toString(8)]))
  t.deepEqual(modes, Object.fromEntries(files.map((f) => [f, '600'])))
})
