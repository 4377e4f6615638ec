// `bedrock-batch-bridge serve` as its users run it: a child process (`node cli.js serve --config
// <file> --port 0`) against the emulator, called by Python's boto3 (from BOTO3_PYTHON: `.ci/test`
// installs it; a missing one fails these tests, never skips them) and by the JavaScript SDK over
// HTTP/1.1 and HTTP/2. What reached AWS is checked at the emulator: its jobs (by a job name prefix
// of each test's own) and their input files in its S3.

import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from '@aws-sdk/client-bedrock-runtime'
import { NodeHttp2Handler, NodeHttpHandler } from '@smithy/node-http-handler'
import test from 'ava'

import {
  BatchInferenceClient,
  CLAUDE,
  CLI,
  childEnv,
  claudeBody,
  claudePrompt,
  getText,
  listKeys,
  PG_URL,
  performance,
  pgTest,
  serveConfig,
  spawnServe,
  startEmu,
  startServe,
  tempDir,
  URL_LINE,
  unique,
  waitFor,
} from './helpers.mjs'
import { runPythonScript } from './serve-wires.mjs'

const FIXTURES = fileURLToPath(new URL('./fixtures/serve/', import.meta.url))
/** What the callers sign with when serve checks no signatures (any key does). */
const CALLER = { accessKeyId: 'test-dummy-access-key', secretAccessKey: 'test-dummy-secret-key' }

const answerTo = (prompt) => `This is the emulator's answer to: ${prompt}`

// ---------------------------------------------------------------------------
// serve as a child process (spawnServe and childEnv are in helpers.mjs)

/** A raw InvokeModel request, as an SDK sends it (with an `amz-sdk-invocation-id`). */
function rawInvoke(url, prompt, invocationId) {
  return fetch(`${url}/model/${encodeURIComponent(CLAUDE)}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', 'amz-sdk-invocation-id': invocationId },
    body: JSON.stringify(claudeBody(prompt)),
  })
}

// ---------------------------------------------------------------------------
// The emulator's side

/** The jobs the emulator has whose name contains `prefix` (paginated ListModelInvocationJobs). */
async function jobsNamed(bedrock, prefix) {
  const jobs = []
  let nextToken
  do {
    const res = await bedrock.send(
      new ListModelInvocationJobsCommand({ nameContains: prefix, maxResults: 100, nextToken }),
    )
    jobs.push(...(res.invocationJobSummaries ?? []))
    nextToken = res.nextToken
  } while (nextToken)
  return jobs
}

/** The records of a job's input (its JSONL files in the emulator's S3), parsed. */
async function jobInput(s3, job) {
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(job.inputDataConfig.s3InputDataConfig.s3Uri)
  const [bucket, key] = [m[1], m[2]]
  const keys = key.endsWith('/') ? (await listKeys(s3, bucket, key)).filter((k) => k.endsWith('.jsonl')) : [key]
  const records = []
  for (const k of keys) {
    for (const line of (await getText(s3, bucket, k)).split('\n'))
      if (line.trim() !== '') records.push(JSON.parse(line))
  }
  return records
}

/** Waits until every job named with `prefix` has ended; returns them. */
function jobsEnded(bedrock, prefix, count) {
  const ended = ['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']
  return waitFor(`${count ?? 'the'} jobs named ${prefix} to end`, async () => {
    const jobs = await jobsNamed(bedrock, prefix)
    return (
      (count === undefined ? jobs.length > 0 : jobs.length === count) &&
      jobs.every((j) => ended.includes(j.status)) &&
      jobs
    )
  })
}

/** The job ARN of a batch answer's request id (`<jobArn>#<recordId>`). */
const jobOfRequestId = (id) => String(id).split('#')[0]

// ---------------------------------------------------------------------------
// boto3

let boto3Checked = null

/** The Python with boto3 (BOTO3_PYTHON); a missing one fails the test, naming what to do. */
function boto3Python() {
  const py = process.env.BOTO3_PYTHON
  if (!py) {
    throw new Error(
      'BOTO3_PYTHON is not set: the serve tests need a Python with boto3 (bash .ci/test creates .cache/boto3; or: python3 -m venv .cache/boto3 && .cache/boto3/bin/pip install boto3, then BOTO3_PYTHON=.cache/boto3/bin/python)',
    )
  }
  if (boto3Checked !== py) {
    const r = spawnSync(py, ['-c', 'import boto3, botocore'], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`BOTO3_PYTHON=${py} cannot import boto3: ${r.error?.message ?? r.stderr}`)
    boto3Checked = py
  }
  return py
}

/** Runs `fixtures/serve/<script>` against serve with `input` (JSON); resolves with its JSON output. */
function runPython(script, url, region, input) {
  return runPythonScript(boto3Python(), script, input, {
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: url,
    AWS_ACCESS_KEY_ID: CALLER.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CALLER.secretAccessKey,
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    AWS_CONFIG_FILE: join(FIXTURES, 'no-such-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(FIXTURES, 'no-such-aws-credentials'),
  })
}

// ---------------------------------------------------------------------------
// The JavaScript SDK

function sdkClient(t, url, region, requestHandler, credentials = CALLER) {
  const client = new BedrockRuntimeClient({ region, endpoint: url, credentials, maxAttempts: 1, requestHandler })
  t.teardown(() => client.destroy())
  return client
}

function invokeCommand(prompt) {
  return new InvokeModelCommand({
    modelId: CLAUDE,
    contentType: 'application/json',
    accept: 'application/json',
    body: JSON.stringify(claudeBody(prompt)),
  })
}

const converseInput = (prompt) => ({
  modelId: CLAUDE,
  messages: [{ role: 'user', content: [{ text: prompt }] }],
  inferenceConfig: { maxTokens: 100 },
})

/** InvokeModel, Converse, ConverseStream and InvokeModelWithResponseStream: each answer's text and request id. */
async function fourOperations(client, tag) {
  const prompts = ['invoke', 'converse', 'converse-stream', 'invoke-stream'].map((op) => `${tag} ${op} ${randomUUID()}`)
  const [invoke, converse, converseStream, invokeStream] = await Promise.all([
    client.send(invokeCommand(prompts[0])),
    client.send(new ConverseCommand(converseInput(prompts[1]))),
    client.send(new ConverseStreamCommand(converseInput(prompts[2]))),
    client.send(
      new InvokeModelWithResponseStreamCommand({
        modelId: CLAUDE,
        contentType: 'application/json',
        body: JSON.stringify(claudeBody(prompts[3])),
      }),
    ),
  ])
  let converseStreamText = ''
  const converseEvents = []
  for await (const ev of converseStream.stream) {
    converseEvents.push(Object.keys(ev)[0])
    if (ev.contentBlockDelta) converseStreamText += ev.contentBlockDelta.delta?.text ?? ''
  }
  let invokeStreamText = ''
  const invokeEvents = []
  for await (const ev of invokeStream.body) {
    if (!ev.chunk) {
      invokeEvents.push(Object.keys(ev)[0])
      continue
    }
    const event = JSON.parse(Buffer.from(ev.chunk.bytes).toString('utf8'))
    invokeEvents.push(event.type)
    if (event.type === 'content_block_delta') invokeStreamText += event.delta?.text ?? ''
  }
  const invokeOut = JSON.parse(Buffer.from(invoke.body).toString('utf8'))
  return {
    prompts,
    texts: [
      invokeOut.content[0].text,
      converse.output.message.content.map((b) => b.text ?? '').join(''),
      converseStreamText,
      invokeStreamText,
    ],
    requestIds: [invoke, converse, converseStream, invokeStream].map((o) => o.$metadata.requestId),
    statuses: [invoke, converse, converseStream, invokeStream].map((o) => o.$metadata.httpStatusCode),
    converseEvents,
    invokeEvents,
  }
}

/** One raw request over HTTP/1.1 and one over HTTP/2 (prior knowledge), each with the version the server answered in. */
async function bothProtocols(url, path) {
  const h1 = await new Promise((resolve, reject) => {
    http
      .get(`${url}${path}`, { agent: false }, (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (d) => {
          body += d
        })
        res.on('end', () => resolve({ version: res.httpVersion, status: res.statusCode, body }))
      })
      .on('error', reject)
  })
  const session = http2.connect(url)
  try {
    const h2 = await new Promise((resolve, reject) => {
      session.on('error', reject)
      const req = session.request({ ':method': 'GET', ':path': path })
      let status
      let body = ''
      req.on('response', (headers) => {
        status = headers[':status']
      })
      req.setEncoding('utf8').on('data', (d) => {
        body += d
      })
      req.on('end', () => resolve({ version: '2.0', status, body, alpn: session.alpnProtocol }))
      req.on('error', reject)
      req.end()
    })
    return { h1, h2 }
  } finally {
    session.close()
  }
}

// ---------------------------------------------------------------------------
// Tests

test('boto3: 300 concurrent invoke_model and converse calls from threads each get their own answer, from batch jobs', async (t) => {
  boto3Python()
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startServe(t, emu, { batch: { maxBatchSize: 100, batchTimeout: 1 } })
  const tag = randomUUID().slice(0, 8)
  const invoke = Array.from({ length: 150 }, (_, i) => `boto3 invoke ${tag} question ${i}: what is ${i} + ${i}?`)
  const converse = Array.from({ length: 150 }, (_, i) => `boto3 converse ${tag} question ${i}: what is ${i} * ${i}?`)
  const results = await runPython('bulk.py', srv.url, emu.region, { modelId: CLAUDE, invoke, converse, workers: 300 })

  t.is(results.length, 300)
  const failed = results.filter((r) => r.error)
  t.deepEqual(
    failed.map((r) => `${r.kind} ${r.prompt}: ${r.error.code} ${r.error.status} ${r.error.message}`),
    [],
    'every call is answered',
  )
  t.deepEqual(
    results.filter((r) => r.text !== answerTo(r.prompt)).map((r) => `${r.kind} ${r.prompt} -> ${r.text}`),
    [],
    'each call gets the answer to its own prompt',
  )
  t.deepEqual(
    results.map((r) => r.kind),
    [...invoke.map(() => 'invoke'), ...converse.map(() => 'converse')],
  )

  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  t.true(jobs.length >= 4, `150 + 150 calls at 100 records per job make at least 4 jobs, got ${jobs.length}`)
  t.deepEqual(
    jobs.map((j) => j.status),
    jobs.map(() => 'Completed'),
  )
  const arns = new Set(jobs.map((j) => j.jobArn))
  t.deepEqual(
    results.filter((r) => !arns.has(jobOfRequestId(r.requestId))).map((r) => r.requestId),
    [],
    "every answer's request id names one of serve's jobs at the emulator",
  )
  // The job inputs hold each prompt exactly once; everything else is padding.
  const seen = new Map()
  let records = 0
  for (const job of jobs) {
    const input = await jobInput(s3, job)
    t.is(input.length, job.totalRecordCount, `${job.jobArn}: input lines = totalRecordCount`)
    t.is(input.length, 100, `${job.jobArn}: minBatchSize and maxBatchSize are 100`)
    records += input.length
    for (const r of input) {
      const p = claudePrompt(r.modelInput)
      seen.set(p, (seen.get(p) ?? 0) + 1)
    }
  }
  const ours = [...invoke, ...converse]
  t.deepEqual(
    ours.filter((p) => seen.get(p) !== 1).map((p) => `${p}: ${seen.get(p) ?? 0} records`),
    [],
    'one record per call',
  )
  t.is(records, 300 + stats.padded, `records at the emulator (${records}) = 300 calls + ${stats.padded} padding`)
  t.is(stats.sentDirect, 0, 'nothing went on-demand')
  t.is(stats.resubmitted, 0)
  t.is(stats.queued, 0)
  t.is(stats.inFlight, 0)
  t.deepEqual(stats.jobs.map((j) => j.jobArn).sort(), [...arns].sort(), "serve's stats list the emulator's jobs")
  t.is(
    new Set(jobs.map((j) => j.modelInvocationType)).size,
    2,
    'InvokeModel records and Converse records go in jobs of their own type',
  )
  t.log(
    `boto3: 300 calls -> ${jobs.length} jobs (${jobs.map((j) => `${j.modelInvocationType}:${j.totalRecordCount}`).join(', ')}), ${stats.padded} padding records`,
  )
})

test('boto3: a call that times out and is retried (same amz-sdk-invocation-id) joins its first attempt: one record', async (t) => {
  boto3Python()
  const { emu, bedrock, s3 } = await startEmu(t)
  // The job is flushed 1.5 s after the call: longer than boto3's 1 s read timeout, well within its attempts.
  const srv = await startServe(t, emu, { batch: { batchTimeout: 1.5 } })
  const prompt = `boto3 retried call ${randomUUID()}`
  const out = await runPython('retry.py', srv.url, emu.region, { modelId: CLAUDE, prompt })
  t.is(out.error, undefined, JSON.stringify(out.error))
  t.is(out.text, answerTo(prompt))
  t.true(out.sends.length >= 2, `boto3 retried (${JSON.stringify(out.sends)})`)
  t.true(out.retryAttempts >= 1, 'ResponseMetadata.RetryAttempts')
  t.true(
    out.attemptErrors.length >= 1 && out.attemptErrors.every((e) => e === 'ReadTimeoutError'),
    `attempts failed by read timeout: ${out.attemptErrors}`,
  )
  t.is(new Set(out.sends.map((s) => s.invocationId)).size, 1, 'every attempt carries the same amz-sdk-invocation-id')
  t.truthy(out.sends[0].invocationId)

  const [job] = await jobsEnded(bedrock, srv.prefix, 1)
  t.is(jobOfRequestId(out.requestId), job.jobArn)
  const input = await jobInput(s3, job)
  t.is(
    input.filter((r) => claudePrompt(r.modelInput) === prompt).length,
    1,
    'exactly one record for the call in the job input',
  )
  const stats = await srv.stats()
  t.is(stats.jobs.length, 1)
  t.is(stats.jobs[0].totalRecordCount - stats.padded, 1, 'stats: one request (the rest padding), not two')
  t.is(stats.queued + stats.inFlight, 0)
})

test('boto3 with --auth: the right credentials work, an unknown key and a wrong secret get 403s; --host 0.0.0.0 without auth refuses to start', async (t) => {
  boto3Python()
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startServe(t, emu, { args: ['--host', '127.0.0.1', '--auth', 'AKID_SERVE:secret1'] })
  const tag = randomUUID()
  const prompt = `signed call ${tag}`
  const refusedPrompts = [`unknown key ${tag}`, `wrong secret ${tag}`]
  const results = await runPython('auth.py', srv.url, emu.region, {
    modelId: CLAUDE,
    calls: [
      { label: 'unknown key', accessKeyId: 'AKID_NOBODY', secretAccessKey: 'secret1', prompt: refusedPrompts[0] },
      {
        label: 'wrong secret',
        accessKeyId: 'AKID_SERVE',
        secretAccessKey: 'not-the-secret',
        prompt: refusedPrompts[1],
      },
      { label: 'right', accessKeyId: 'AKID_SERVE', secretAccessKey: 'secret1', prompt },
    ],
  })
  const by = Object.fromEntries(results.map((r) => [r.label, r]))
  t.like(by['unknown key'], { error: { code: 'UnrecognizedClientException', status: 403 } })
  t.like(by['wrong secret'], { error: { code: 'InvalidSignatureException', status: 403 } })
  t.is(by.right.error, undefined, JSON.stringify(by.right.error))
  t.is(by.right.text, answerTo(prompt))
  // The refused calls made no record: one job, holding the signed call only.
  const [job] = await jobsEnded(bedrock, srv.prefix, 1)
  const inputPrompts = (await jobInput(s3, job)).map((r) => claudePrompt(r.modelInput))
  t.deepEqual(
    inputPrompts.filter((p) => p?.includes(tag)),
    [prompt],
  )
  // Unsigned, even the stats are refused.
  const unsigned = await fetch(`${srv.url}/_bridge/stats`)
  t.is(unsigned.status, 403)
  t.regex(unsigned.headers.get('x-amzn-errortype') ?? '', /^\w+Exception/)

  // Beyond loopback without auth: refused, naming --auth (exit code 2).
  const dir = tempDir(t)
  const configFile = join(dir, 'open.json')
  writeFileSync(configFile, JSON.stringify(serveConfig(emu, unique('open'))))
  const open = spawnServe(['--config', configFile, '--host', '0.0.0.0', '--port', '0'])
  t.teardown(open.kill)
  const exit = await open.exited
  t.not(exit.code, 0)
  t.is(exit.code, 2)
  t.regex(exit.stderr, /--auth/)
  t.notRegex(exit.stdout, URL_LINE, 'it never listened')
})

test('auth from the config file (one entry) and BEDROCK_BATCH_SERVE_AUTH (comma-separated) are all checked', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startServe(t, emu, {
    config: { auth: 'AKID_CONF:secret2' },
    env: { BEDROCK_BATCH_SERVE_AUTH: 'AKID_ENV:secret3, AKID_ENV2:secret4' },
  })
  // A body that is not JSON: a call that passes the signature check is refused at once with a 400.
  const call = (accessKeyId, secretAccessKey) =>
    sdkClient(t, srv.url, emu.region, new NodeHttpHandler(), { accessKeyId, secretAccessKey })
      .send(new InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body: 'not json' }))
      .then(
        () => 'answered',
        (e) => `${e.$metadata?.httpStatusCode} ${e.name}`,
      )
  t.deepEqual(
    await Promise.all([
      call('AKID_CONF', 'secret2'),
      call('AKID_ENV', 'secret3'),
      call('AKID_ENV2', 'secret4'),
      call('AKID_CONF', 'secret3'),
      call('AKID_NOBODY', 'x'),
    ]),
    [
      '400 ValidationException',
      '400 ValidationException',
      '400 ValidationException',
      '403 InvalidSignatureException',
      '403 UnrecognizedClientException',
    ],
  )
})

// Over HTTP/2, the JavaScript SDK's default for this client, the four operations are in the door
// suite (doors.spec.mjs).
test('JavaScript SDK over HTTP/1.1: InvokeModel, Converse, ConverseStream and InvokeModelWithResponseStream are answered from batch jobs', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const srv = await startServe(t, emu)
  const client = sdkClient(t, srv.url, emu.region, new NodeHttpHandler())
  const out = await fourOperations(client, 'HTTP/1.1')
  t.deepEqual(out.texts, out.prompts.map(answerTo))
  t.deepEqual(out.statuses, [200, 200, 200, 200])
  t.true(
    out.converseEvents.includes('messageStart') && out.converseEvents.includes('messageStop'),
    `ConverseStream events: ${out.converseEvents}`,
  )
  t.true(
    out.invokeEvents.includes('message_start') && out.invokeEvents.includes('message_stop'),
    `InvokeModelWithResponseStream events: ${out.invokeEvents}`,
  )
  const jobs = await jobsEnded(bedrock, srv.prefix)
  const arns = new Set(jobs.map((j) => j.jobArn))
  t.deepEqual(
    out.requestIds.filter((id) => !arns.has(jobOfRequestId(id))),
    [],
    'each answer names its job',
  )
  const stats = await srv.stats()
  t.is(stats.sentDirect, 0)
  t.is(stats.jobs.reduce((n, j) => n + j.totalRecordCount, 0) - stats.padded, 4, 'four records')
  t.log(
    `JS SDK (HTTP/1.1): 4 calls -> ${jobs.length} jobs (${jobs.map((j) => `${j.modelInvocationType}:${j.totalRecordCount}`).join(', ')})`,
  )
})

test('one port serves HTTP/1.1 and HTTP/2 with prior knowledge', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startServe(t, emu)
  const { h1, h2 } = await bothProtocols(srv.url, '/_bridge/stats')
  t.like(h1, { version: '1.1', status: 200 })
  t.like(h2, { version: '2.0', status: 200 })
  t.deepEqual(JSON.parse(h1.body), JSON.parse(h2.body))
})

test('GET /_bridge/stats answers stats() as JSON; an unknown path is a 404 with x-amzn-errortype', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startServe(t, emu)
  const before = await srv.stats()
  t.like(before, { queued: 0, inFlight: 0, sentDirect: 0, jobs: [] })
  const prompt = `stats ${randomUUID()}`
  const res = await rawInvoke(srv.url, prompt, randomUUID())
  t.is(res.status, 200)
  t.is(JSON.parse(await res.text()).content[0].text, answerTo(prompt))
  const after = await srv.stats()
  t.is(typeof after.queued, 'number')
  t.is(typeof after.inFlight, 'number')
  t.is(after.jobs.length, 1)
  t.like(after.jobs[0], { modelId: CLAUDE, totalRecordCount: 100 })
  t.is(after.padded, 99)
  t.is(typeof after.tokens?.input, 'number')

  for (const [method, path] of [
    ['GET', '/nothing/here'],
    ['POST', '/model/x/frobnicate'],
    ['GET', `/model/${encodeURIComponent(CLAUDE)}/invoke`],
  ]) {
    const r = await fetch(`${srv.url}${path}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) })
    t.is(r.status, 404, `${method} ${path}`)
    t.regex(r.headers.get('x-amzn-errortype') ?? '', /^\w+Exception/, `${method} ${path}`)
    t.is(typeof (await r.json()).message, 'string')
  }
})

test('SIGTERM without --drain exits at once, leaving the job to the journal; the next serve answers the retried call from that job', async (t) => {
  // [[job:slow]]: the job stays InProgress for 6 s, then completes.
  const { emu, bedrock, s3 } = await startEmu(t, { slowJobSeconds: 6 })
  const dir = tempDir(t)
  const prefix = unique('journal')
  const journal = join(dir, 'j.db')
  const first = await startServe(t, emu, { prefix, dir, args: ['--journal', journal] })
  const prompt = `survives a restart [[job:slow]] ${randomUUID()}`
  const invocationId = randomUUID()
  const pending = rawInvoke(first.url, prompt, invocationId).then(
    async (r) => ({ status: r.status, body: await r.text() }),
    (e) => ({ error: e }),
  )
  const [job] = await waitFor('the job to run', async () => {
    const jobs = await jobsNamed(bedrock, prefix)
    return jobs.length === 1 && jobs[0].status === 'InProgress' && jobs
  })
  const sent = performance.now()
  first.child.kill('SIGTERM')
  const exit = await first.exited
  t.is(exit.code, 0, exit.stderr)
  t.true(exit.at - sent < 4000, `exited ${Math.round(exit.at - sent)} ms after SIGTERM`)
  const stillRunning = (await jobsNamed(bedrock, prefix)).map((j) => j.status)
  t.deepEqual(stillRunning, ['InProgress'], 'it did not wait for the job')
  const firstAnswer = await pending
  t.not(firstAnswer.status, 200, 'the call was not answered by the stopped process')
  t.log(
    `the first process's pending call: ${firstAnswer.error ? `${firstAnswer.error.cause?.code ?? firstAnswer.error.message}` : `HTTP ${firstAnswer.status} ${firstAnswer.body}`}`,
  )

  const second = await startServe(t, emu, { prefix, dir, args: ['--journal', journal] })
  const res = await rawInvoke(second.url, prompt, invocationId)
  const body = await res.text()
  t.is(res.status, 200, body)
  t.regex(JSON.parse(body).content[0].text, /^This is the emulator's answer to: survives a restart/)
  t.is(jobOfRequestId(res.headers.get('x-amzn-requestid')), job.jobArn, 'answered from the original job')
  const jobs = await jobsEnded(bedrock, prefix)
  t.deepEqual(
    jobs.map((j) => j.jobArn),
    [job.jobArn],
    'no new job',
  )
  t.is((await jobInput(s3, jobs[0])).filter((r) => claudePrompt(r.modelInput) === prompt).length, 1)
  const stats = await second.stats()
  t.deepEqual(
    stats.jobs.filter((j) => j.jobArn !== job.jobArn),
    [],
    'the second serve made no job of its own',
  )
  // The journal keeps the call under its amz-sdk-invocation-id, with the record that answered it.
  second.child.kill('SIGTERM')
  t.is((await second.exited).code, 0)
  const reader = new BatchInferenceClient({ ...serveConfig(emu, prefix), journal: { path: journal } })
  t.teardown(() => reader.destroy())
  const kept = []
  for await (const r of reader.results(job.jobArn))
    if (r.idempotencyKey === `amz-sdk-invocation-id:${invocationId}`) kept.push(r.recordId)
  t.deepEqual(
    kept,
    [res.headers.get('x-amzn-requestid').split('#')[1]],
    "the journal's entry for the invocation id is the record that answered",
  )
})

/** A client for one call whose attempts all carry `invocationId` (an SDK keeps one across a call's retries). */
function pinnedClient(t, url, region, invocationId) {
  const client = sdkClient(t, url, region)
  client.middlewareStack.add(
    (next) => (args) => {
      args.request.headers['amz-sdk-invocation-id'] = invocationId
      return next(args)
    },
    // After the retry middleware, which sets a fresh id for each call.
    { step: 'finalizeRequest', priority: 'low', name: 'pinInvocationId' },
  )
  return client
}

/** A ConverseStream or InvokeModelWithResponseStream call read to its end: `{ text, stop, requestId }`. */
async function readStream(client, kind, prompt) {
  if (kind === 'ConverseStream') {
    const out = await client.send(new ConverseStreamCommand(converseInput(prompt)))
    let text = ''
    let stop = null
    for await (const ev of out.stream) {
      text += ev.contentBlockDelta?.delta?.text ?? ''
      stop = ev.messageStop?.stopReason ?? stop
    }
    return { text, stop, requestId: out.$metadata.requestId }
  }
  const out = await client.send(
    new InvokeModelWithResponseStreamCommand({
      modelId: CLAUDE,
      contentType: 'application/json',
      accept: 'application/json',
      body: JSON.stringify(claudeBody(prompt)),
    }),
  )
  let text = ''
  let stop = null
  for await (const ev of out.body) {
    const chunk = JSON.parse(Buffer.from(ev.chunk.bytes).toString('utf8'))
    if (chunk.type === 'content_block_delta') text += chunk.delta.text ?? ''
    stop = chunk.delta?.stop_reason ?? stop
  }
  return { text, stop, requestId: out.$metadata.requestId }
}

test('SIGKILL while streaming calls wait: sent again (same amz-sdk-invocation-id) to the next serve on the journal, each gets its stream from the original job', async (t) => {
  // A request joining a record restored from the journal once got the whole answer where a stream's
  // events were due: one validationException event, "stream events are not a JSON array of events".
  const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 3 })
  const dir = tempDir(t)
  const prefix = unique('streamjournal')
  const journal = join(dir, 'j.db')
  const first = await startServe(t, emu, { prefix, dir, args: ['--journal', journal] })
  const tag = randomUUID()
  const calls = ['ConverseStream', 'InvokeModelWithResponseStream'].map((kind) => ({
    kind,
    prompt: `${kind} rejoins after a restart [[job:slow]] ${tag}`,
    invocationId: randomUUID(),
  }))
  const pending = calls.map((c) =>
    readStream(pinnedClient(t, first.url, emu.region, c.invocationId), c.kind, c.prompt).then(
      (r) => r,
      (e) => ({ error: `${e.name}: ${e.message}` }),
    ),
  )
  const jobs = await waitFor('both calls to be in running jobs', async () => {
    const stats = await first.stats()
    const running = await jobsNamed(bedrock, prefix)
    // Two jobs: a Converse-type one and an InvokeModel-type one, both created and running.
    return (
      stats.inFlight === 2 &&
      running.length === 2 &&
      stats.jobs.length === 2 &&
      running.every((j) => j.status === 'InProgress') &&
      running
    )
  })
  first.child.kill('SIGKILL')
  await first.exited
  for (const [i, r] of (await Promise.all(pending)).entries())
    t.truthy(r.error, `${calls[i].kind}: the killed process did not answer`)

  const second = await startServe(t, emu, { prefix, dir, args: ['--journal', journal] })
  const answers = await Promise.all(
    calls.map((c) => readStream(pinnedClient(t, second.url, emu.region, c.invocationId), c.kind, c.prompt)),
  )
  const arns = jobs.map((j) => j.jobArn)
  for (const [i, r] of answers.entries()) {
    const { kind, prompt } = calls[i]
    t.is(r.text, answerTo(prompt), `${kind}: the stream's events carry its own answer`)
    t.truthy(r.stop, `${kind}: the stream ends with its stop reason`)
    t.true(arns.includes(jobOfRequestId(r.requestId)), `${kind}: answered from an original job (${r.requestId})`)
  }
  t.deepEqual((await jobsEnded(bedrock, prefix)).map((j) => j.jobArn).sort(), [...arns].sort(), 'no new job')
})

pgTest(
  'serve --store: a PostgreSQL store keeps the pending call over a restart; the next serve answers the retried call from the same job',
  async (t) => {
    const pgUrl = PG_URL
    const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 4 })
    const dir = tempDir(t)
    const prefix = unique('pgserve')
    const group = unique('serve-group')
    const args = ['--store', pgUrl, '--group', group]
    const first = await startServe(t, emu, { prefix, dir, args })
    const stats = await first.stats()
    t.is(stats.store.kind, 'postgres')
    t.true(stats.store.location.endsWith(`#${group}`), stats.store.location)
    t.false(JSON.stringify(stats).includes(decodeURIComponent(new URL(pgUrl).password)), 'no password in stats')
    t.is(stats.journal.path, stats.store.location, 'the deprecated name too')
    const prompt = `kept in PostgreSQL [[job:slow]] ${randomUUID()}`
    const invocationId = randomUUID()
    const pending = rawInvoke(first.url, prompt, invocationId).then(
      (r) => r.status,
      () => 'reset',
    )
    const [job] = await waitFor('the job to run', async () => {
      const jobs = await jobsNamed(bedrock, prefix)
      return jobs.length === 1 && jobs[0].status === 'InProgress' && jobs
    })
    first.child.kill('SIGTERM')
    t.is((await first.exited).code, 0)
    t.not(await pending, 200, 'the stopped process did not answer')

    const second = await startServe(t, emu, { prefix, dir, args })
    const res = await rawInvoke(second.url, prompt, invocationId)
    const body = await res.text()
    t.is(res.status, 200, body)
    t.regex(JSON.parse(body).content[0].text, /^This is the emulator's answer to: kept in PostgreSQL/)
    t.is(jobOfRequestId(res.headers.get('x-amzn-requestid')), job.jobArn, 'answered from the original job')
    t.deepEqual(
      (await jobsEnded(bedrock, prefix)).map((j) => j.jobArn),
      [job.jobArn],
      'no new job',
    )
  },
)

test('SIGTERM with --drain waits for the running jobs: their calls (HTTP/1.1 and HTTP/2, a stream included) are answered before the process exits', async (t) => {
  const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 3 })
  const srv = await startServe(t, emu, { args: ['--drain'] })
  const client = sdkClient(t, srv.url, emu.region, new NodeHttp2Handler())
  const tag = randomUUID()
  const prompts = [
    `drained raw [[job:slow]] ${tag}`,
    `drained sdk [[job:slow]] ${tag}`,
    `drained stream [[job:slow]] ${tag}`,
  ]
  const settled = (p) =>
    p.then(
      (v) => ({ ...v, at: performance.now() }),
      (e) => ({ error: `${e.name}: ${e.message}`, at: performance.now() }),
    )
  const calls = Promise.all(
    [
      // HTTP/1.1 (fetch), InvokeModel
      rawInvoke(srv.url, prompts[0], randomUUID()).then(async (r) => {
        const body = await r.text()
        return { status: r.status, text: r.status === 200 ? JSON.parse(body).content[0].text : body }
      }),
      // HTTP/2 (the SDK), InvokeModel and ConverseStream
      client.send(invokeCommand(prompts[1])).then((o) => ({
        status: o.$metadata.httpStatusCode,
        text: JSON.parse(Buffer.from(o.body).toString('utf8')).content[0].text,
      })),
      client.send(new ConverseStreamCommand(converseInput(prompts[2]))).then(async (o) => {
        let text = ''
        for await (const ev of o.stream) text += ev.contentBlockDelta?.delta?.text ?? ''
        return { status: o.$metadata.httpStatusCode, text }
      }),
    ].map(settled),
  )
  await waitFor('the three calls to be in running jobs', async () => {
    const stats = await srv.stats()
    const jobs = await jobsNamed(bedrock, srv.prefix)
    return (
      stats.queued === 0 &&
      stats.inFlight === 3 &&
      jobs.length === stats.jobs.length &&
      jobs.every((j) => j.status === 'InProgress')
    )
  })
  const sent = performance.now()
  srv.child.kill('SIGTERM')
  await srv.stderrMatches(/SIGTERM: waiting for running jobs/)
  // It takes no new calls meanwhile.
  const late = await rawInvoke(srv.url, `too late ${randomUUID()}`, randomUUID()).then(
    (r) => r.status,
    (e) => e.cause?.code ?? e.message,
  )
  t.not(late, 200, `a new call after SIGTERM: ${late}`)
  t.log(`a new call after SIGTERM: ${late}`)
  const [results, exit] = await Promise.all([calls, srv.exited])
  t.is(exit.code, 0, exit.stderr)
  t.deepEqual(
    results.map((r) => r.error ?? r.status),
    [200, 200, 200],
    'every pending call is answered',
  )
  results.forEach((r, i) => {
    t.true(r.text?.startsWith(answerTo(prompts[i].split(' [[')[0])), `${prompts[i]} -> ${r.text}`)
    t.true(r.at > sent, 'answered after SIGTERM, not before')
  })
  t.true(exit.at - Math.max(...results.map((r) => r.at)) < 5000, 'and then it exits')
  const jobs = await jobsNamed(bedrock, srv.prefix)
  t.deepEqual(
    jobs.map((j) => j.status),
    jobs.map(() => 'Completed'),
    'the jobs had finished when the process exited',
  )
  t.true(jobs.length >= 2, 'an InvokeModel job and a Converse job')
})

test('serve --help lists every flag', async (t) => {
  const r = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8', env: childEnv() })
  t.is(r.status, 0, r.stderr)
  for (const flag of [
    '--config',
    '--port',
    '--host',
    '--auth',
    '--region',
    '--endpoint-url',
    '--s3-endpoint-url',
    '--runtime-endpoint-url',
    '--mode',
    '--s3-input-uri',
    '--s3-output-uri',
    '--role-arn',
    '--min-batch-size',
    '--max-batch-size',
    '--batch-timeout',
    '--poll-interval',
    '--max-concurrent-jobs',
    '--journal',
    '--store',
    '--group',
    '--max-cost-usd',
    '--dry-run',
    '--drain',
    '--quiet',
  ]) {
    t.regex(r.stdout, new RegExp(`^\\s+${flag}\\b`, 'm'), flag)
  }
  t.regex(r.stdout, /AWS_ENDPOINT_URL_BEDROCK_RUNTIME/)
  t.regex(r.stdout, /GET \/_bridge\/plan/)
})
