// The Batch APIs of `bedrock-batch-bridge serve` (docs/wires.md): OpenAI Files and Batches and
// Anthropic Message Batches, called by the official `openai` and `@anthropic-ai/sdk` npm SDKs,
// unchanged. serve runs as a child process on the emulator; what reached AWS is checked at the
// emulator (its jobs by each test's own job name prefix, their input records).

import { randomUUID } from 'node:crypto'
import Anthropic from '@anthropic-ai/sdk'
import test from 'ava'
import OpenAI, { toFile } from 'openai'

import { CLAUDE, MODELS, NOVA, startEmu, waitFor } from './helpers.mjs'
import {
  API_KEY,
  answerTo,
  jobInput,
  jobsEnded,
  jobsNamed,
  MAPPED,
  recordText,
  runPythonScript,
  startWireServe,
  wirePython,
} from './serve-wires.mjs'

const TERMINAL = ['completed', 'failed', 'cancelled', 'expired']

function openai(url) {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: API_KEY, maxRetries: 0 })
}

function anthropic(url) {
  return new Anthropic({ baseURL: url, apiKey: API_KEY, maxRetries: 0 })
}

/** A chat line of an input file. */
function chatLine(customId, model, prompt) {
  return {
    custom_id: customId,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model, messages: [{ role: 'user', content: prompt }], max_tokens: 50 },
  }
}

/** Uploads `lines` (objects, or raw strings) as a batch input file. */
async function upload(client, lines, name = 'input.jsonl') {
  const text = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n')
  return client.files.create({ file: await toFile(Buffer.from(`${text}\n`), name), purpose: 'batch' })
}

/** `batches.create` of an uploaded file for `endpoint`, in the 24 h window. */
function createBatch(client, file, endpoint = '/v1/chat/completions') {
  return client.batches.create({ input_file_id: file.id, endpoint, completion_window: '24h' })
}

/** Polls `batches.retrieve` until the batch is terminal (every status seen along the way). */
async function settle(client, id, timeoutMs = 30_000) {
  const seen = []
  const batch = await waitFor(
    `batch ${id} to end`,
    async () => {
      const b = await client.batches.retrieve(id)
      if (seen.at(-1) !== b.status) seen.push(b.status)
      return TERMINAL.includes(b.status) && b
    },
    { timeoutMs, intervalMs: 50 },
  )
  return { batch, seen }
}

/** A file's lines, parsed, by custom_id. */
async function fileLines(client, id) {
  const text = await (await client.files.content(id)).text()
  const lines = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))
  return { lines, byId: new Map(lines.map((l) => [l.custom_id, l])) }
}

test('OpenAI Batch API: files.create → batches.create → retrieve until completed → output file has an OpenAI chat.completion per custom_id; one job per model', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  const prompts = new Map()
  const lines = []
  for (let i = 0; i < 30; i++) {
    const model = i % 3 === 0 ? NOVA : i % 3 === 1 ? MAPPED : CLAUDE
    const prompt = `batch ${tag} line ${i}: what is ${i} + 1?`
    prompts.set(`req-${i}`, { prompt, model })
    lines.push(chatLine(`req-${i}`, model, prompt))
  }
  const file = await upload(client, lines)
  t.is(file.object, 'file')
  t.is(file.purpose, 'batch')
  t.regex(file.id, /^file-/)
  t.is(file.filename, 'input.jsonl')
  t.true(file.bytes > 0)
  t.deepEqual(await client.files.retrieve(file.id), file)
  t.true((await client.files.list()).data.some((f) => f.id === file.id))

  const created = await client.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
    metadata: { run: tag },
  })
  t.regex(created.id, /^batch_/)
  t.is(created.object, 'batch')
  t.true(['validating', 'in_progress'].includes(created.status))
  t.deepEqual(created.metadata, { run: tag })
  t.is(created.request_counts.total, 30)

  const { batch, seen } = await settle(client, created.id)
  t.is(batch.status, 'completed', `statuses seen: ${seen.join(' → ')}`)
  // Only forward, in the table's order.
  const order = ['validating', 'in_progress', 'finalizing', 'completed']
  t.deepEqual(
    seen,
    order.filter((s) => seen.includes(s)),
  )
  t.deepEqual(batch.request_counts, { total: 30, completed: 30, failed: 0 })
  t.is(batch.error_file_id, null)
  t.true(batch.completed_at >= batch.created_at)
  t.true(batch.in_progress_at !== null && batch.finalizing_at !== null)

  const out = await fileLines(client, batch.output_file_id)
  t.is(out.lines.length, 30)
  t.deepEqual([...out.byId.keys()].sort(), [...prompts.keys()].sort())
  for (const [id, { prompt, model }] of prompts) {
    const line = out.byId.get(id)
    t.regex(line.id, /^batch_req_/)
    t.is(line.error, null)
    t.is(line.response.status_code, 200)
    t.regex(line.response.request_id, /^arn:aws:bedrock:.*#/)
    const body = line.response.body
    t.is(body.object, 'chat.completion')
    t.is(body.model, model)
    t.is(body.choices[0].message.role, 'assistant')
    t.is(body.choices[0].message.content, answerTo(prompt))
    t.is(body.choices[0].finish_reason, 'stop')
    t.true(body.usage.prompt_tokens > 0 && body.usage.completion_tokens > 0)
  }
  const outFile = await client.files.retrieve(batch.output_file_id)
  t.is(outFile.purpose, 'batch_output')

  // At the emulator: one job per model (Claude named and mapped are one model), the lines as records.
  const jobs = await jobsEnded(bedrock, srv.prefix, 2)
  t.deepEqual(jobs.map((j) => j.modelId).sort(), [CLAUDE, NOVA].sort())
  let ours = 0
  for (const job of jobs)
    for (const r of await jobInput(s3, job)) if (recordText(r.modelInput).includes(`batch ${tag}`)) ours++
  t.is(ours, 30, 'each line once, as one record')

  // Listed, newest first, and paged.
  const second = await createBatch(client, file)
  const page1 = await client.batches.list({ limit: 1 })
  t.deepEqual(
    page1.data.map((b) => b.id),
    [second.id],
  )
  t.true(page1.has_more)
  const page2 = await client.batches.list({ limit: 1, after: second.id })
  t.deepEqual(
    page2.data.map((b) => b.id),
    [created.id],
  )
  // The second batch of the same file makes its own records (its own idempotency keys): settle it.
  t.is((await settle(client, second.id)).batch.status, 'completed')

  // Deleting a file.
  t.deepEqual(await client.files.delete(file.id), {
    id: file.id,
    object: 'file',
    deleted: true,
  })
  const gone = await t.throwsAsync(client.files.retrieve(file.id))
  t.is(gone.status, 404)
})

test('OpenAI Batch API: a duplicate custom_id or a bad line fails the batch with errors naming the lines, and no job is made', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.3 } })
  const client = openai(srv.url)
  const file = await upload(client, [
    chatLine('a', CLAUDE, 'one'),
    chatLine('b', CLAUDE, 'two'),
    chatLine('a', CLAUDE, 'three'),
    '{"custom_id": "c", not json',
    { ...chatLine('d', CLAUDE, 'four'), url: '/v1/embeddings' },
    { ...chatLine('e', CLAUDE, 'five'), body: { model: CLAUDE, messages: [], n: 3 } },
    chatLine('x'.repeat(65), CLAUDE, 'six'),
  ])
  const batch = await createBatch(client, file)
  t.is(batch.status, 'failed')
  t.is(batch.errors.object, 'list')
  t.deepEqual(
    batch.errors.data.map((e) => [e.line, e.code, e.param]),
    [
      [3, 'duplicate_custom_id', 'custom_id'],
      [4, 'invalid_json_line', null],
      [5, 'mismatched_endpoint', 'url'],
      [6, 'invalid_request', 'body.n'],
      [7, 'invalid_custom_id', 'custom_id'],
    ],
  )
  t.regex(batch.errors.data[0].message, /custom_id "a" is also on line 1/)
  t.is(batch.output_file_id, null)
  t.deepEqual((await client.batches.retrieve(batch.id)).status, 'failed')

  // Refused requests: unknown file, wrong endpoint, wrong window.
  const noFile = await t.throwsAsync(
    client.batches.create({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' }),
  )
  t.is(noFile.status, 404)
  const badEndpoint = await t.throwsAsync(
    client.batches.create({ input_file_id: file.id, endpoint: '/v1/completions', completion_window: '24h' }),
  )
  t.is(badEndpoint.status, 400)
  t.is(badEndpoint.error.param, 'endpoint')
  // A file upload without multipart, or of another purpose.
  const badPurpose = await t.throwsAsync(
    client.files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'assistants' }),
  )
  t.is(badPurpose.status, 400)
  t.is(badPurpose.error.param, 'purpose')

  // Behind the API key, as every route of the wires.
  const stranger = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'not-the-key', maxRetries: 0 })
  t.is((await t.throwsAsync(stranger.files.list())).status, 401)
  t.is((await t.throwsAsync(stranger.batches.retrieve(batch.id))).status, 401)

  // Nothing reached AWS.
  t.is((await srv.stats()).jobs.length, 0)
  t.deepEqual(await jobsNamed(bedrock, srv.prefix), [])
})

test('OpenAI Batch API: a job ending PartiallyCompleted → completed, the failed and missing records in the error file', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  // One try: a missing record is not sent again.
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60, maxAttempts: 1 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  const marker = (i) => (i === 0 || i === 8 ? ' [[error:400]]' : i === 4 ? ' [[missing]]' : '')
  const lines = Array.from({ length: 10 }, (_, i) => chatLine(`r${i}`, CLAUDE, `partial ${tag} ${i}${marker(i)}`))
  const file = await upload(client, lines)
  const created = await createBatch(client, file)
  const { batch } = await settle(client, created.id)
  t.is(batch.status, 'completed')
  t.deepEqual(batch.request_counts, { total: 10, completed: 7, failed: 3 })
  const out = await fileLines(client, batch.output_file_id)
  const err = await fileLines(client, batch.error_file_id)
  t.deepEqual([...out.byId.keys()].sort(), ['r1', 'r2', 'r3', 'r5', 'r6', 'r7', 'r9'])
  t.deepEqual([...err.byId.keys()].sort(), ['r0', 'r4', 'r8'])
  for (const id of ['r0', 'r8']) {
    const l = err.byId.get(id)
    t.is(l.response.status_code, 400)
    t.is(l.response.body.error.type, 'invalid_request_error')
    t.is(l.response.body.error.code, 'ValidationException')
    t.is(l.error, null)
  }
  // The record the job left out: an error of its own.
  const missing = err.byId.get('r4')
  t.is(missing.response.body.error.code, 'RecordMissingException')
  for (const l of out.lines)
    t.is(l.response.body.choices[0].message.content, answerTo(`partial ${tag} ${l.custom_id.slice(1)}`))
  const jobs = await jobsEnded(bedrock, srv.prefix, 1)
  t.is(jobs[0].status, 'PartiallyCompleted')
})

test('OpenAI Batch API: batches.cancel on a running job → cancelling, then cancelled with the answered lines kept', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  // More lines than the minimum job: the slow job answers half its records (ours and no padding).
  const lines = Array.from({ length: 120 }, (_, i) => chatLine(`s${i}`, CLAUDE, `slow ${tag} ${i} [[job:slow]]`))
  const file = await upload(client, lines)
  const created = await createBatch(client, file)
  // Wait until its job runs at the emulator, and the batch says so.
  await waitFor('the job to run', async () =>
    (await jobsNamed(bedrock, srv.prefix)).some((j) => j.status === 'InProgress'),
  )
  await waitFor('in_progress', async () => (await client.batches.retrieve(created.id)).status === 'in_progress')
  const cancelling = await client.batches.cancel(created.id)
  t.is(cancelling.status, 'cancelling')
  t.true(cancelling.cancelling_at !== null)
  const { batch } = await settle(client, created.id)
  t.is(batch.status, 'cancelled')
  t.true(batch.cancelled_at !== null)
  const jobs = await jobsEnded(bedrock, srv.prefix, 1)
  t.is(jobs[0].status, 'Stopped')
  // The slow job answered half its records before it was stopped: those are kept.
  const out = await fileLines(client, batch.output_file_id)
  const err = await fileLines(client, batch.error_file_id)
  t.true(out.lines.length > 0 && out.lines.length < 120, `${out.lines.length} answered`)
  t.is(out.lines.length + err.lines.length, 120)
  t.deepEqual(batch.request_counts, { total: 120, completed: out.lines.length, failed: err.lines.length })
  for (const l of out.lines)
    t.is(l.response.body.choices[0].message.content, answerTo(`slow ${tag} ${l.custom_id.slice(1)} [[job:slow]]`))
  for (const l of err.lines) {
    t.is(l.response, null)
    t.is(l.error.code, 'batch_cancelled')
  }
  // A cancelled batch cannot be cancelled into anything else.
  t.is((await client.batches.cancel(created.id)).status, 'cancelled')
})

test('OpenAI Batch API: batches.cancel at once after create, while its job is being made → cancelled, and the job is stopped, not left running', async (t) => {
  // The job is still being created when the cancel comes.
  const { emu, bedrock } = await startEmu(t, { createLatencyMs: 500 })
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  const lines = Array.from({ length: 120 }, (_, i) => chatLine(`s${i}`, CLAUDE, `early ${tag} ${i} [[job:slow]]`))
  const file = await upload(client, lines)
  const created = await createBatch(client, file)
  t.is((await client.batches.cancel(created.id)).status, 'cancelling')
  const { batch } = await settle(client, created.id)
  t.is(batch.status, 'cancelled')
  t.is(batch.request_counts.completed + batch.request_counts.failed, 120)
  const answered = batch.output_file_id ? (await fileLines(client, batch.output_file_id)).lines.length : 0
  const cancelled = (await fileLines(client, batch.error_file_id)).lines
  t.is(answered + cancelled.length, 120)
  t.true(cancelled.every((l) => l.error.code === 'batch_cancelled'))
  // The job its lines went into was stopped, not left running (and billed) at AWS.
  const jobs = await jobsEnded(bedrock, srv.prefix, 1)
  t.is(jobs[0].status, 'Stopped')
})

test("OpenAI Batch API: a cancel leaves a job that also holds per-call requests running for them; the batch's own lines end cancelled", async (t) => {
  // The slow job holds its records InProgress for 3 s, then completes.
  const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 3 })
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  // Per-call requests queued first; the batch's create flushes them into the same job.
  const calls = Array.from({ length: 60 }, (_, i) =>
    client.chat.completions.create({
      model: CLAUDE,
      max_tokens: 50,
      messages: [{ role: 'user', content: `call ${tag} ${i} [[job:slow]]` }],
    }),
  )
  await waitFor('the calls to be queued', async () => {
    const r = await fetch(`${srv.url}/_bridge/stats`, { headers: { authorization: `Bearer ${API_KEY}` } })
    return (await r.json()).queued >= 60
  })
  const lines = Array.from({ length: 60 }, (_, i) => chatLine(`s${i}`, CLAUDE, `mine ${tag} ${i} [[job:slow]]`))
  const file = await upload(client, lines)
  const created = await createBatch(client, file)
  await waitFor('the shared job to run', async () =>
    (await jobsNamed(bedrock, srv.prefix)).some((j) => j.status === 'InProgress'),
  )
  t.is((await client.batches.cancel(created.id)).status, 'cancelling')
  const { batch } = await settle(client, created.id)
  t.is(batch.status, 'cancelled')
  t.is(batch.request_counts.total, 60)
  // The per-call requests are all answered: their job was not stopped for the batch's cancel.
  const answers = await Promise.all(calls)
  for (const [i, a] of answers.entries()) t.is(a.choices[0].message.content, answerTo(`call ${tag} ${i} [[job:slow]]`))
  const jobs = await jobsEnded(bedrock, srv.prefix, 1)
  t.is(jobs.length, 1, 'one job held both')
  t.is(jobs[0].status, 'Completed')
  // The batch's lines that were not answered before the cancel are cancelled.
  const err = batch.error_file_id ? (await fileLines(client, batch.error_file_id)).lines : []
  t.true(err.length > 0, 'the cancel gave up the lines still running')
  t.true(err.every((l) => l.error.code === 'batch_cancelled'))
})

test('OpenAI Batch API: an embeddings batch → an embeddings list per line', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  const lines = Array.from({ length: 5 }, (_, i) => ({
    custom_id: `e${i}`,
    method: 'POST',
    url: '/v1/embeddings',
    body: { model: MODELS.titanEmbed, input: [`emb ${tag} ${i} a`, `emb ${tag} ${i} b`], dimensions: 256 },
  }))
  const file = await upload(client, lines)
  const created = await createBatch(client, file, '/v1/embeddings')
  const { batch } = await settle(client, created.id)
  t.is(batch.status, 'completed')
  t.deepEqual(batch.request_counts, { total: 5, completed: 5, failed: 0 })
  const out = await fileLines(client, batch.output_file_id)
  t.deepEqual([...out.byId.keys()].sort(), ['e0', 'e1', 'e2', 'e3', 'e4'])
  for (const l of out.lines) {
    const body = l.response.body
    t.is(body.object, 'list')
    t.is(body.model, MODELS.titanEmbed)
    t.deepEqual(
      body.data.map((d) => [d.object, d.index, d.embedding.length]),
      [
        ['embedding', 0, 256],
        ['embedding', 1, 256],
      ],
    )
    t.true(body.usage.prompt_tokens > 0)
  }
  const jobs = await jobsEnded(bedrock, srv.prefix, 1)
  const ours = (await jobInput(s3, jobs[0])).filter((r) => r.modelInput.inputText?.includes(`emb ${tag}`))
  t.is(ours.length, 10, 'one record per input string')
})

test('Anthropic Message Batches: create → retrieve until ended → results() has every custom_id; list, delete', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60 } })
  const client = anthropic(srv.url)
  const tag = randomUUID().slice(0, 8)
  const requests = Array.from({ length: 12 }, (_, i) => ({
    custom_id: `m-${i}`,
    params: {
      model: i % 2 ? MAPPED : CLAUDE,
      max_tokens: 50,
      messages: [{ role: 'user', content: `msg ${tag} ${i}${i === 5 ? ' [[error:400]]' : ''}` }],
    },
  }))
  const created = await client.messages.batches.create({ requests })
  t.regex(created.id, /^msgbatch_/)
  t.is(created.type, 'message_batch')
  t.is(created.processing_status, 'in_progress')
  t.is(created.request_counts.processing, 12)
  t.is(created.results_url, null)
  t.false(Number.isNaN(Date.parse(created.created_at)))

  const batch = await waitFor(
    'the message batch to end',
    async () => {
      const b = await client.messages.batches.retrieve(created.id)
      return b.processing_status === 'ended' && b
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  )
  t.deepEqual(batch.request_counts, { processing: 0, succeeded: 11, errored: 1, canceled: 0, expired: 0 })
  t.is(batch.results_url, `${srv.url}/v1/messages/batches/${created.id}/results`)
  const results = new Map()
  for await (const r of await client.messages.batches.results(created.id)) results.set(r.custom_id, r.result)
  t.deepEqual([...results.keys()].sort(), requests.map((r) => r.custom_id).sort())
  for (const [i, r] of requests.entries()) {
    const result = results.get(r.custom_id)
    if (i === 5) {
      t.is(result.type, 'errored')
      t.is(result.error.type, 'error')
      t.is(result.error.error.type, 'invalid_request_error')
      continue
    }
    t.is(result.type, 'succeeded')
    t.is(result.message.type, 'message')
    t.is(result.message.model, r.params.model)
    t.is(result.message.content[0].text, answerTo(r.params.messages[0].content))
  }
  const jobs = await jobsEnded(bedrock, srv.prefix, 1)
  t.is(jobs[0].modelId, CLAUDE)

  // A bad request is refused whole, naming it; nothing is made.
  const bad = await t.throwsAsync(
    client.messages.batches.create({
      requests: [
        { custom_id: 'ok', params: { model: CLAUDE, max_tokens: 5, messages: [] } },
        { custom_id: 'ok', params: { model: CLAUDE, max_tokens: 5, messages: [] } },
      ],
    }),
  )
  t.is(bad.status, 400)
  t.is(bad.error.error.type, 'invalid_request_error')
  t.regex(bad.error.error.message, /requests\.1\.custom_id/)

  // Listed newest first, paged; deleted once ended.
  const second = await client.messages.batches.create({ requests: requests.slice(0, 2) })
  const page = await client.messages.batches.list({ limit: 1 })
  t.deepEqual(
    page.data.map((b) => b.id),
    [second.id],
  )
  t.true(page.has_more)
  const older = await client.messages.batches.list({ limit: 5, after_id: second.id })
  t.deepEqual(
    older.data.map((b) => b.id),
    [created.id],
  )
  t.deepEqual(await client.messages.batches.delete(created.id), { id: created.id, type: 'message_batch_deleted' })
  t.is((await t.throwsAsync(client.messages.batches.retrieve(created.id))).status, 404)
})

test('Anthropic Message Batches: cancel on a running job → canceling, then ended with canceled results and the answered ones kept', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60 } })
  const client = anthropic(srv.url)
  const tag = randomUUID().slice(0, 8)
  const requests = Array.from({ length: 120 }, (_, i) => ({
    custom_id: `c-${i}`,
    params: { model: CLAUDE, max_tokens: 50, messages: [{ role: 'user', content: `cancel ${tag} ${i} [[job:slow]]` }] },
  }))
  const created = await client.messages.batches.create({ requests })
  await waitFor('the job to run', async () =>
    (await jobsNamed(bedrock, srv.prefix)).some((j) => j.status === 'InProgress'),
  )
  const deleteEarly = await t.throwsAsync(client.messages.batches.delete(created.id))
  t.is(deleteEarly.status, 400)
  const canceling = await client.messages.batches.cancel(created.id)
  t.is(canceling.processing_status, 'canceling')
  t.truthy(canceling.cancel_initiated_at)
  const batch = await waitFor(
    'the message batch to end',
    async () => {
      const b = await client.messages.batches.retrieve(created.id)
      return b.processing_status === 'ended' && b
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  )
  const { succeeded, canceled } = batch.request_counts
  t.true(succeeded > 0 && canceled > 0 && succeeded + canceled === 120, JSON.stringify(batch.request_counts))
  const types = new Map()
  for await (const r of await client.messages.batches.results(created.id)) types.set(r.custom_id, r.result.type)
  t.is(types.size, 120)
  t.is([...types.values()].filter((x) => x === 'canceled').length, canceled)
  t.is([...types.values()].filter((x) => x === 'succeeded').length, succeeded)
  t.is((await jobsEnded(bedrock, srv.prefix, 1))[0].status, 'Stopped')
})

test('OpenAI Batch API: a job that fails → failed, every line in the error file; a job that expires → expired, its lines batch_expired', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.5 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  const failing = await upload(
    client,
    Array.from({ length: 4 }, (_, i) => chatLine(`f${i}`, CLAUDE, `fail ${tag} ${i} [[job:failed]]`)),
  )
  const expiring = await upload(
    client,
    Array.from({ length: 4 }, (_, i) => chatLine(`x${i}`, NOVA, `expire ${tag} ${i} [[job:expired]]`)),
  )
  const [a, b] = await Promise.all(
    [failing, expiring].map((f) =>
      client.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
    ),
  )
  const failed = (await settle(client, a.id)).batch
  t.is(failed.status, 'failed')
  t.true(failed.failed_at !== null)
  t.is(failed.errors.data[0].code, 'batch_job_failed')
  t.deepEqual(failed.request_counts, { total: 4, completed: 0, failed: 4 })
  const failedLines = await fileLines(client, failed.error_file_id)
  t.deepEqual([...failedLines.byId.keys()].sort(), ['f0', 'f1', 'f2', 'f3'])
  for (const l of failedLines.lines) t.is(l.response.body.error.code, 'BatchJobFailedException')

  const expired = (await settle(client, b.id)).batch
  t.is(expired.status, 'expired')
  t.true(expired.expired_at !== null)
  t.is(expired.output_file_id, null)
  const expiredLines = await fileLines(client, expired.error_file_id)
  t.deepEqual([...expiredLines.byId.keys()].sort(), ['x0', 'x1', 'x2', 'x3'])
  for (const l of expiredLines.lines) t.deepEqual([l.response, l.error.code], [null, 'batch_expired'])
  const jobs = await jobsEnded(bedrock, srv.prefix)
  t.true(jobs.some((j) => j.status === 'Failed') && jobs.some((j) => j.status === 'Expired'))
})

test('Anthropic Message Batches: a job that expires → its requests are expired results', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.5 } })
  const client = anthropic(srv.url)
  const requests = Array.from({ length: 3 }, (_, i) => ({
    custom_id: `x-${i}`,
    params: { model: CLAUDE, max_tokens: 20, messages: [{ role: 'user', content: `expire ${i} [[job:expired]]` }] },
  }))
  const created = await client.messages.batches.create({ requests })
  const batch = await waitFor(
    'the message batch to end',
    async () => {
      const b = await client.messages.batches.retrieve(created.id)
      return b.processing_status === 'ended' && b
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  )
  t.deepEqual(batch.request_counts, { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 3 })
  const results = []
  for await (const r of await client.messages.batches.results(created.id)) results.push([r.custom_id, r.result.type])
  t.deepEqual(results.sort(), [
    ['x-0', 'expired'],
    ['x-1', 'expired'],
    ['x-2', 'expired'],
  ])
})

test('the Python SDKs from PyPI (openai, anthropic): a batch and a message batch as docs/wires.md shows them', async (t) => {
  const py = wirePython('OPENAI_PYTHON', 'openai, anthropic')
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 60 } })
  const tag = randomUUID().slice(0, 8)
  const prompts = Array.from({ length: 6 }, (_, i) => `py batch ${tag} ${i}`)
  const out = await runPythonScript(py, 'batches.py', { baseUrl: srv.url, apiKey: API_KEY, model: MAPPED, prompts })
  t.is(out.openai.status, 'completed')
  t.deepEqual(out.openai.counts, { total: 6, completed: 6, failed: 0 })
  t.deepEqual(out.openai.answers, Object.fromEntries(prompts.map((p, i) => [`q${i}`, answerTo(p)])))
  t.is(out.anthropic.status, 'ended')
  t.deepEqual(out.anthropic.counts, { processing: 0, succeeded: 6, errored: 0, canceled: 0, expired: 0 })
  t.deepEqual(out.anthropic.answers, Object.fromEntries(prompts.map((p, i) => [`m${i}`, answerTo(p)])))
  // Two batches, one after the other: two jobs, each with the six prompts once.
  const jobs = await jobsEnded(bedrock, srv.prefix, 2)
  for (const job of jobs) {
    const ours = (await jobInput(s3, job)).filter((r) => recordText(r.modelInput).startsWith(`py batch ${tag}`))
    t.is(ours.length, 6)
  }
})
