// Where the Batch APIs of `serve` keep their files and batches (docs/wires.md, issue 21): with a
// journal, a restart of serve between batches.create and the batch's end still serves the batch
// and its files, takes the batch up again (its lines join the job already running: one job, each
// record once) and ends it with its output; with a PostgreSQL store, another serve of the group
// serves what one created; without a store, memory (a restart loses them). The official `openai`
// and `@anthropic-ai/sdk` npm SDKs against serve as a child process on the emulator; what reached
// AWS is checked at the emulator (its jobs by each test's own job name prefix, their input records).

import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import Anthropic from '@anthropic-ai/sdk'
import test from 'ava'
import OpenAI, { toFile } from 'openai'

import { CLAUDE, PG_URL, pgTest, serveConfig, startEmu, tempDir, unique, waitFor } from './helpers.mjs'
import { API_KEY, answerTo, jobInput, jobsEnded, jobsNamed, recordText, startWireServe } from './serve-wires.mjs'

const require = createRequire(import.meta.url)
const { MemoryObjects } = require('../lib/wires/objects.js')
const { Door } = require('../lib/door.js')

const TERMINAL = ['completed', 'failed', 'cancelled', 'expired']

const openai = (url) => new OpenAI({ baseURL: `${url}/v1`, apiKey: API_KEY, maxRetries: 0 })
const anthropic = (url) => new Anthropic({ baseURL: url, apiKey: API_KEY, maxRetries: 0 })

/** A chat line of an input file. */
function chatLine(customId, prompt) {
  return {
    custom_id: customId,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: CLAUDE, messages: [{ role: 'user', content: prompt }], max_tokens: 50 },
  }
}

/** The bytes of an input file of `lines`. */
const inputBytes = (lines) => Buffer.from(`${lines.map((l) => JSON.stringify(l)).join('\n')}\n`)

/** Polls `batches.retrieve` until the batch is terminal (bounded). */
function settled(client, id, timeoutMs = 60_000) {
  return waitFor(
    `batch ${id} to end`,
    async () => {
      const b = await client.batches.retrieve(id)
      return TERMINAL.includes(b.status) && b
    },
    { timeoutMs, intervalMs: 100 },
  )
}

/** A file's lines, parsed. */
async function fileLines(client, id) {
  const text = await (await client.files.content(id)).text()
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))
}

/** Stops a serve child as a restart does (SIGTERM without --drain: its job is left to the store). */
async function stop(t, srv) {
  srv.child.kill('SIGTERM')
  const exit = await srv.exited
  t.is(exit.code, 0, exit.stderr)
}

/** How many of the records of `jobs` carry each prompt (by the prompt's text, exactly). */
async function promptCounts(s3, jobs, prompts) {
  const counts = new Map(prompts.map((p) => [p, 0]))
  for (const job of jobs)
    for (const r of await jobInput(s3, job)) {
      const text = recordText(r.modelInput)
      if (counts.has(text)) counts.set(text, counts.get(text) + 1)
    }
  return counts
}

/**
 * What the wires need of a store of objects, the same of MemoryObjects and of the door's
 * storeObjects() on the journal and on PostgreSQL: insert, replace in place, kinds apart, bytes as
 * they were (an empty body too), delete saying whether it existed, bad input refused.
 */
async function objectsContract(t, objects) {
  const kind = `test.kind.${randomUUID()}`
  t.deepEqual(await objects.list(kind), [])
  t.is(await objects.get(kind, 'a'), null)
  await objects.put(kind, 'a', Buffer.from('one'))
  await objects.put(kind, 'b', Buffer.from('two'))
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  await objects.put(kind, 'bin', bytes)
  await objects.put(kind, 'empty', Buffer.alloc(0))
  await objects.put(kind, 'a', Buffer.from('three'))
  t.deepEqual(
    (await objects.list(kind)).map((o) => [o.id, Buffer.isBuffer(o.body), o.body.toString('hex')]),
    [
      ['a', true, Buffer.from('three').toString('hex')],
      ['b', true, Buffer.from('two').toString('hex')],
      ['bin', true, bytes.toString('hex')],
      ['empty', true, ''],
    ],
    'first-insert order; a replace keeps its place',
  )
  t.true(bytes.equals(await objects.get(kind, 'bin')))
  const empty = await objects.get(kind, 'empty')
  t.true(Buffer.isBuffer(empty) && empty.length === 0, 'an empty body is not a missing one')
  t.deepEqual(await objects.list(`${kind}.other`), [], 'kinds apart')
  t.is(await objects.get(`${kind}.other`, 'a'), null)
  t.true(await objects.delete(kind, 'a'))
  t.false(await objects.delete(kind, 'a'))
  t.is(await objects.get(kind, 'a'), null)
  t.deepEqual(
    (await objects.list(kind)).map((o) => o.id),
    ['b', 'bin', 'empty'],
  )
  // Not a string id: refused (a typed error), never stored under another name.
  for (const bad of [() => objects.get(kind, 42), () => objects.put(kind, null, Buffer.from('x'))]) {
    const err = await t.throwsAsync(async () => bad())
    t.is(typeof err.name, 'string')
  }
  for (const id of ['b', 'bin', 'empty']) await objects.delete(kind, id)
}

/** Bad input is a TypeError, in memory and in a store alike. */
async function badInputRefused(t, objects) {
  await t.throwsAsync(objects.put('k', 'x', 'text'), { instanceOf: TypeError })
  await t.throwsAsync(objects.put('k', 'x', null), { instanceOf: TypeError })
  await t.throwsAsync(objects.put('', 'x', Buffer.from('b')), { instanceOf: TypeError })
  await t.throwsAsync(objects.list(''), { instanceOf: TypeError })
  await t.throwsAsync(objects.get('k', 42), { instanceOf: TypeError })
  await t.throwsAsync(objects.delete('k', ''), { instanceOf: TypeError })
}

test('MemoryObjects: the interface of the store of objects; bad input is a TypeError', async (t) => {
  const objects = new MemoryObjects()
  await objectsContract(t, objects)
  await badInputRefused(t, objects)
})

test("the door's storeObjects(): null without a store; on the journal, the same interface as MemoryObjects", async (t) => {
  const { emu } = await startEmu(t)
  const bare = new Door(serveConfig(emu, unique('noobj')))
  t.teardown(() => bare.destroy())
  t.is(await bare.storeObjects(), null)
  const door = new Door({ ...serveConfig(emu, unique('jobj')), journal: { path: join(tempDir(t), 'j.db') } })
  t.teardown(() => door.destroy())
  const stored = await door.storeObjects()
  await objectsContract(t, stored)
  await badInputRefused(t, stored)
})

pgTest(
  "the door's storeObjects() on PostgreSQL: the same interface, and one group's objects seen by another door of it",
  async (t) => {
    const { emu } = await startEmu(t)
    const group = unique('obj-group')
    const open = () => {
      const door = new Door({ ...serveConfig(emu, unique('pobj')), store: { url: PG_URL, group } })
      t.teardown(() => door.destroy())
      return door.storeObjects()
    }
    const [one, two] = [await open(), await open()]
    await objectsContract(t, one)
    const kind = `test.kind.${randomUUID()}`
    await one.put(kind, 'shared', Buffer.from('seen'))
    t.is((await two.get(kind, 'shared'))?.toString(), 'seen')
    t.true(await two.delete(kind, 'shared'))
    t.is(await one.get(kind, 'shared'), null)
  },
)

test('OpenAI Batch API with a journal: serve restarted between batches.create and its end still serves the batch and its files; the batch completes from its one job, each record once', async (t) => {
  // [[job:slow]]: the job stays InProgress for 8 s, then completes.
  const { emu, bedrock, s3 } = await startEmu(t, { slowJobSeconds: 8 })
  const dir = tempDir(t)
  const prefix = unique('bstore')
  const opts = { prefix, dir, batch: { batchTimeout: 60 }, args: ['--journal', join(dir, 'j.db')] }
  const first = await startWireServe(t, emu, opts)
  const tag = randomUUID().slice(0, 8)
  const prompts = Array.from({ length: 6 }, (_, i) => `restart ${tag} ${i} [[job:slow]]`)
  const lines = prompts.map((p, i) => chatLine(`r${i}`, p))
  let client = openai(first.url)
  const file = await client.files.create({ file: await toFile(inputBytes(lines), 'in.jsonl'), purpose: 'batch' })
  const created = await client.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
    metadata: { run: tag },
  })
  const [job] = await waitFor('the job to run', async () => {
    const jobs = await jobsNamed(bedrock, prefix)
    return jobs.length === 1 && jobs[0].status === 'InProgress' && jobs
  })
  const before = await client.batches.retrieve(created.id)
  t.false(TERMINAL.includes(before.status), before.status)
  await stop(t, first)
  t.deepEqual(
    (await jobsNamed(bedrock, prefix)).map((j) => j.status),
    ['InProgress'],
    'the batch had not ended when serve stopped',
  )

  const second = await startWireServe(t, emu, opts)
  client = openai(second.url)
  // Served at once by the new process, as kept.
  const again = await client.batches.retrieve(created.id)
  t.is(again.id, created.id)
  t.false(TERMINAL.includes(again.status), `kept as it was when serve stopped, not ended by the stop: ${again.status}`)
  t.is(again.input_file_id, file.id)
  t.deepEqual(again.metadata, { run: tag })
  t.is(again.request_counts.total, 6)
  t.deepEqual(await client.files.retrieve(file.id), file)
  t.is(Buffer.from(await (await client.files.content(file.id)).arrayBuffer()).toString(), inputBytes(lines).toString())
  t.true((await client.files.list()).data.some((f) => f.id === file.id))
  t.deepEqual(
    (await client.batches.list()).data.map((b) => b.id),
    [created.id],
  )

  // Taken up: it completes, with an output line per custom_id, answered by the job of the first process.
  const batch = await settled(client, created.id)
  t.is(batch.status, 'completed', JSON.stringify(batch.errors))
  t.deepEqual(batch.request_counts, { total: 6, completed: 6, failed: 0 })
  t.is(batch.error_file_id, null)
  const out = await fileLines(client, batch.output_file_id)
  t.deepEqual(out.map((l) => l.custom_id).sort(), ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'])
  for (const l of out) {
    t.is(l.response.status_code, 200)
    t.is(l.response.body.choices[0].message.content, answerTo(prompts[Number(l.custom_id.slice(1))]))
    t.is(l.response.request_id.split('#')[0], job.jobArn, 'answered from the job made before the restart')
  }
  t.is((await client.files.retrieve(batch.output_file_id)).purpose, 'batch_output')

  // At the emulator: that one job, no second one, and each line in it once.
  const jobs = await jobsEnded(bedrock, prefix)
  t.deepEqual(
    jobs.map((j) => j.jobArn),
    [job.jobArn],
    'no second job',
  )
  t.deepEqual([...(await promptCounts(s3, jobs, prompts)).values()], [1, 1, 1, 1, 1, 1], 'no record paid twice')

  // Kept as it ended: a third serve on the journal serves it, and takes nothing up.
  await stop(t, second)
  const third = await startWireServe(t, emu, opts)
  client = openai(third.url)
  t.deepEqual(await client.batches.retrieve(created.id), batch)
  t.is((await fileLines(client, batch.output_file_id)).length, 6)
  t.deepEqual((await third.stats()).inFlight, 0)
  t.is((await jobsNamed(bedrock, prefix)).length, 1)
})

test('Anthropic Message Batches with a journal: serve restarted before the batch ended still serves it; it ends from its one job and results() has every custom_id', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t, { slowJobSeconds: 8 })
  const dir = tempDir(t)
  const prefix = unique('mstore')
  const opts = { prefix, dir, batch: { batchTimeout: 60 }, args: ['--journal', join(dir, 'j.db')] }
  const first = await startWireServe(t, emu, opts)
  const tag = randomUUID().slice(0, 8)
  const prompts = Array.from({ length: 5 }, (_, i) => `msg restart ${tag} ${i} [[job:slow]]`)
  const requests = prompts.map((p, i) => ({
    custom_id: `m-${i}`,
    params: { model: CLAUDE, max_tokens: 50, messages: [{ role: 'user', content: p }] },
  }))
  let client = anthropic(first.url)
  const created = await client.messages.batches.create({ requests })
  const [job] = await waitFor('the job to run', async () => {
    const jobs = await jobsNamed(bedrock, prefix)
    return jobs.length === 1 && jobs[0].status === 'InProgress' && jobs
  })
  t.is((await client.messages.batches.retrieve(created.id)).processing_status, 'in_progress')
  await stop(t, first)

  const second = await startWireServe(t, emu, opts)
  client = anthropic(second.url)
  const again = await client.messages.batches.retrieve(created.id)
  t.is(again.id, created.id)
  t.is(again.created_at, created.created_at)
  t.not(again.processing_status, 'ended')
  t.is(again.results_url, null)
  const batch = await waitFor(
    'the message batch to end',
    async () => {
      const b = await client.messages.batches.retrieve(created.id)
      return b.processing_status === 'ended' && b
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  )
  t.deepEqual(batch.request_counts, { processing: 0, succeeded: 5, errored: 0, canceled: 0, expired: 0 })
  // On the server that serves it now.
  t.is(batch.results_url, `${second.url}/v1/messages/batches/${created.id}/results`)
  const results = new Map()
  for await (const r of await client.messages.batches.results(created.id)) results.set(r.custom_id, r.result)
  t.deepEqual([...results.keys()].sort(), requests.map((r) => r.custom_id).sort())
  for (const [i, r] of requests.entries()) {
    t.is(results.get(r.custom_id).type, 'succeeded')
    t.is(results.get(r.custom_id).message.content[0].text, answerTo(prompts[i]))
  }
  const jobs = await jobsEnded(bedrock, prefix)
  t.deepEqual(
    jobs.map((j) => j.jobArn),
    [job.jobArn],
    'no second job',
  )
  t.deepEqual([...(await promptCounts(s3, jobs, prompts)).values()], [1, 1, 1, 1, 1], 'no record paid twice')
  t.deepEqual(
    (await client.messages.batches.list()).data.map((b) => b.id),
    [created.id],
  )
  // Deleted: gone from the journal too.
  t.deepEqual(await client.messages.batches.delete(created.id), { id: created.id, type: 'message_batch_deleted' })
  await stop(t, second)
  const third = await startWireServe(t, emu, opts)
  t.is((await t.throwsAsync(anthropic(third.url).messages.batches.retrieve(created.id))).status, 404)
})

test('OpenAI Batch API with a journal: a cancel under way when serve stopped goes on after the restart: the job is stopped, the batch ends cancelled', async (t) => {
  // [[job:slow]] stays InProgress far longer than the test: only the cancel ends it.
  const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 600 })
  const dir = tempDir(t)
  const prefix = unique('cstore')
  const opts = { prefix, dir, batch: { batchTimeout: 60 }, args: ['--journal', join(dir, 'j.db')] }
  const first = await startWireServe(t, emu, opts)
  const tag = randomUUID().slice(0, 8)
  const lines = Array.from({ length: 4 }, (_, i) => chatLine(`c${i}`, `cancel restart ${tag} ${i} [[job:slow]]`))
  let client = openai(first.url)
  const file = await client.files.create({ file: await toFile(inputBytes(lines), 'in.jsonl'), purpose: 'batch' })
  const created = await client.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
  })
  await waitFor('the job to run', async () => (await jobsNamed(bedrock, prefix)).some((j) => j.status === 'InProgress'))
  // Cancelled, and serve killed at once (SIGKILL: nothing more of it runs, the cancel is kept as asked).
  t.is((await client.batches.cancel(created.id)).status, 'cancelling')
  first.child.kill('SIGKILL')
  await first.exited

  const second = await startWireServe(t, emu, opts)
  client = openai(second.url)
  const batch = await settled(client, created.id)
  t.is(batch.status, 'cancelled')
  t.is(batch.request_counts.total, 4)
  t.is(batch.request_counts.completed + batch.request_counts.failed, 4)
  const jobs = await jobsEnded(bedrock, prefix)
  t.is(jobs.length, 1, 'no second job')
  t.is(jobs[0].status, 'Stopped')
})

pgTest(
  'OpenAI Batch API and Message Batches with a PostgreSQL store: what one serve of the group created, another serves',
  async (t) => {
    const { emu, bedrock } = await startEmu(t)
    const group = unique('wire-group')
    const prefix = unique('gstore')
    const dir = tempDir(t)
    // batchTimeout 60: the flush at a batch's create cuts its job at once, also in a group (where a
    // member's keyed requests wait for their keys' lookup when the flush comes).
    const opts = { prefix, dir, batch: { batchTimeout: 60 }, args: ['--store', PG_URL, '--group', group] }
    const one = await startWireServe(t, emu, opts)
    const two = await startWireServe(t, emu, { ...opts, dir: tempDir(t) })
    const a = openai(one.url)
    const b = openai(two.url)
    const tag = randomUUID().slice(0, 8)
    const prompts = Array.from({ length: 4 }, (_, i) => `group ${tag} ${i}`)
    const lines = prompts.map((p, i) => chatLine(`g${i}`, p))
    const file = await a.files.create({ file: await toFile(inputBytes(lines), 'in.jsonl'), purpose: 'batch' })
    t.deepEqual(await b.files.retrieve(file.id), file)
    const created = await a.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    })
    t.teardown(async () => {
      if (!t.passed) t.log('leading:', (await one.stats()).leader, (await two.stats()).leader)
    })
    const seen = await b.batches.retrieve(created.id)
    t.is(seen.id, created.id)
    t.is(seen.request_counts.total, 4)
    t.true((await b.batches.list()).data.some((x) => x.id === created.id))
    const batch = await settled(b, created.id)
    t.is(batch.status, 'completed')
    if (batch.error_file_id) t.log(JSON.stringify((await fileLines(b, batch.error_file_id))[0]))
    t.deepEqual(batch.request_counts, { total: 4, completed: 4, failed: 0 })
    const out = await fileLines(b, batch.output_file_id)
    t.deepEqual(out.map((l) => l.custom_id).sort(), ['g0', 'g1', 'g2', 'g3'])
    for (const l of out)
      t.is(l.response.body.choices[0].message.content, answerTo(prompts[Number(l.custom_id.slice(1))]))

    const ma = anthropic(one.url)
    const mb = anthropic(two.url)
    const mc = await ma.messages.batches.create({
      requests: [
        {
          custom_id: 'x',
          params: { model: CLAUDE, max_tokens: 20, messages: [{ role: 'user', content: `group msg ${tag}` }] },
        },
      ],
    })
    const ended = await waitFor(
      'the message batch to end, seen by the other serve',
      async () => {
        const m = await mb.messages.batches.retrieve(mc.id)
        return m.processing_status === 'ended' && m
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    )
    t.is(ended.request_counts.succeeded, 1)
    const results = []
    for await (const r of await mb.messages.batches.results(mc.id)) results.push(r)
    t.deepEqual(
      results.map((r) => [r.custom_id, r.result.message?.content[0].text]),
      [['x', answerTo(`group msg ${tag}`)]],
    )
    const jobs = await jobsEnded(bedrock, prefix)
    t.true(jobs.length >= 1)
  },
)

test('without a store, files and batches are in memory: served while serve runs, gone after a restart', async (t) => {
  const { emu } = await startEmu(t)
  const dir = tempDir(t)
  const prefix = unique('mem')
  const first = await startWireServe(t, emu, { prefix, dir, batch: { batchTimeout: 0.3 } })
  let client = openai(first.url)
  const file = await client.files.create({
    file: await toFile(inputBytes([chatLine('a', `memory ${randomUUID()}`)]), 'in.jsonl'),
    purpose: 'batch',
  })
  const created = await client.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
  })
  const batch = await settled(client, created.id)
  t.is(batch.status, 'completed')
  t.is((await fileLines(client, batch.output_file_id)).length, 1)
  await stop(t, first)
  const second = await startWireServe(t, emu, { prefix, dir, batch: { batchTimeout: 0.3 } })
  client = openai(second.url)
  t.is((await t.throwsAsync(client.files.retrieve(file.id))).status, 404)
  t.is((await t.throwsAsync(client.batches.retrieve(created.id))).status, 404)
  t.deepEqual((await client.batches.list()).data, [])
})
