// End-to-end tests of the client's lifecycle (issue 3, "Jobs": flush, close, destroy; design §2
// and §4): close() flushes and waits, later sends reject, destroy() rejects what is pending, an
// aborted request never reaches the batch, and a Node process exits once its requests settle.

import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'

import {
  bridge,
  CLAUDE,
  claudeCommand,
  claudePrompt,
  claudeText,
  describe,
  failures,
  getJob,
  INDEX_JS,
  inputRecords,
  listJobs,
  makeClient,
  ROLE_ARN,
  settle,
  startEmu,
  stopJob,
  waitFor,
} from './helpers.mjs'

test('close() with requests still queued flushes them, and resolves only after every one has resolved', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  // batchTimeout 60 s: only close() can send them in time.
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60 } })

  const questions = Array.from({ length: 25 }, (_, i) => `Closing question ${i}: what is ${i} + 3?`)
  let settledCount = 0
  const pending = questions.map((q) =>
    settle(client.send(claudeCommand(q))).then((o) => {
      settledCount += 1
      return o
    }),
  )
  t.is(client.stats().queued, 25)

  await client.close()
  t.is(settledCount, 25, 'every request had settled when close() resolved')
  const outcomes = await Promise.all(pending)
  t.deepEqual(failures(outcomes), [], 'every queued request resolves')
  for (const [i, o] of outcomes.entries()) if (o.ok) t.true(claudeText(o.value).includes(questions[i]), `answer ${i}`)
  t.is((await listJobs(bedrock)).length, 1)
  t.is(client.stats().queued, 0)
  t.is(client.stats().inFlight, 0)
})

test('a send after close() began, and after it ended, rejects with ClientClosedException', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60 } })

  const first = settle(client.send(claudeCommand('Before close: what is 1 + 2?')))
  const closing = client.close()
  // Several sends in the same tick as close(): every one of them comes after close() began.
  const during = await Promise.all(
    Array.from({ length: 20 }, (_, i) => settle(client.send(claudeCommand(`During close ${i}`)))),
  )
  const accepted = during.map((o, i) => [i, o]).filter(([, o]) => o.ok || o.error?.name !== 'ClientClosedException')
  t.deepEqual(
    accepted.map(([i, o]) => `during close ${i}: ${describe(o)}`),
    [],
    'every send after close() began rejects with ClientClosedException',
  )
  t.true(
    during.every((o) => o.ok || o.error instanceof bridge.ClientClosedException),
    'instanceof ClientClosedException',
  )
  await closing
  t.true((await first).ok, 'the request sent before close() resolves')
  const after = await t.throwsAsync(() => client.send(claudeCommand('After close')))
  t.is(after?.name, 'ClientClosedException', after?.message)
  // The engine's words (crates/core/src/error.rs CLIENT_CLOSED), said once for both languages.
  t.is(after?.message, createRequire(import.meta.url)('../binding.js').CLIENT_CLOSED)
  t.regex(after?.message, /The client is closed/)
  t.truthy(after?.$metadata)
})

test('a send on a client closed before its first request rejects with ClientClosedException', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu)

  await client.close()
  const p = settle(client.send(claudeCommand('Never sent: what is 2 + 2?')))
  // Bound the wait: a request that was accepted would otherwise run a whole job.
  const o = await Promise.race([p, new Promise((resolve) => setTimeout(() => resolve({ timedOut: true }), 10_000))])
  t.false(o.ok === true, `the send must not succeed after close(): ${o.ok ? 'it resolved' : ''}`)
  t.falsy(o.timedOut, 'the send settles at once')
  t.is(o.error?.name, 'ClientClosedException', o.error ? describe(o) : 'no error')
  t.deepEqual(await listJobs(bedrock), [], 'no job was created after close()')
})

test('destroy() rejects every pending request, queued or in a running job, with ClientClosedException, and leaves the job running', async (t) => {
  const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 120 })
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60, maxBatchSize: 100 } })

  // 100 requests fill a batch that runs as a slow job; 10 more wait in the queue.
  const inJob = Array.from({ length: 100 }, (_, i) =>
    settle(client.send(claudeCommand(i === 0 ? 'Slow [[job:slow]]' : `In job ${i}`))),
  )
  const queued = Array.from({ length: 10 }, (_, i) => settle(client.send(claudeCommand(`Still queued ${i}`))))
  const arn = await waitFor('the job in stats()', () => client.stats().jobs[0]?.jobArn)
  await waitFor('the slow job to wait', async () => {
    const j = await getJob(bedrock, arn)
    return j.status === 'InProgress' && j.processedRecordCount >= 50
  })

  client.destroy()
  const outcomes = await Promise.all([...inJob, ...queued])
  const wrong = outcomes.map((o, i) => [i, o]).filter(([, o]) => o.ok || o.error?.name !== 'ClientClosedException')
  t.deepEqual(
    wrong.map(([i, o]) => `${i}: ${describe(o)}`),
    [],
    'every pending request rejects with ClientClosedException',
  )
  const after = await t.throwsAsync(() => client.send(claudeCommand('After destroy')))
  t.is(after?.name, 'ClientClosedException')
  // Running jobs keep running on AWS unless destroy({ stopJobs: true }).
  t.is((await getJob(bedrock, arn)).status, 'InProgress')
  await stopJob(bedrock, arn)
})

test('destroy({ stopJobs: true }) stops the running jobs', async (t) => {
  const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 120 })
  const { client } = makeClient(t, emu, { batch: { maxBatchSize: 100 } })

  const pending = Array.from({ length: 100 }, (_, i) =>
    settle(client.send(claudeCommand(i === 0 ? 'Slow [[job:slow]]' : `Stop me ${i}`))),
  )
  const arn = await waitFor('the job in stats()', () => client.stats().jobs[0]?.jobArn)
  await waitFor('the slow job to be in progress', async () => (await getJob(bedrock, arn)).status === 'InProgress')

  client.destroy({ stopJobs: true })
  const outcomes = await Promise.all(pending)
  t.true(
    outcomes.every((o) => !o.ok && o.error?.name === 'ClientClosedException'),
    'every pending request rejects with ClientClosedException',
  )
  const status = await waitFor(
    'the job to be stopped',
    async () => {
      const s = (await getJob(bedrock, arn)).status
      return ['Stopping', 'Stopped'].includes(s) && s
    },
    { timeoutMs: 10_000 },
  )
  t.true(['Stopping', 'Stopped'].includes(status))
})

test('an AbortSignal aborted before the flush rejects with AbortError, and that request is not in the uploaded input', async (t) => {
  const { emu, s3 } = await startEmu(t)
  const { client, inputPrefix } = makeClient(t, emu, { batch: { batchTimeout: 60 } })

  const questions = Array.from({ length: 20 }, (_, i) => `Abort neighbour ${i}: what is ${i} + 6?`)
  const aborted = 'ABORTED question: what is 13 + 13?'
  const controller = new AbortController()
  const pending = questions.map((q) => settle(client.send(claudeCommand(q))))
  const abortedP = settle(client.send(claudeCommand(aborted), { abortSignal: controller.signal }))
  // An already-aborted signal rejects at once as well.
  const preAborted = settle(client.send(claudeCommand('PREABORTED question'), { abortSignal: AbortSignal.abort() }))

  controller.abort()
  const a = await abortedP
  t.false(a.ok)
  t.is(a.error?.name, 'AbortError', describe(a))
  const b = await preAborted
  t.is(b.error?.name, 'AbortError', describe(b))

  await client.flush()
  const outcomes = await Promise.all(pending)
  t.deepEqual(failures(outcomes), [], 'the other requests resolve')
  for (const [i, o] of outcomes.entries()) if (o.ok) t.true(claudeText(o.value).includes(questions[i]))

  const records = await inputRecords(s3, emu.bucket, inputPrefix)
  const prompts = records.map((r) => claudePrompt(r.modelInput))
  t.false(prompts.includes(aborted), 'the aborted request was not uploaded')
  t.false(prompts.includes('PREABORTED question'))
  t.is(prompts.filter((p) => questions.includes(p)).length, 20)
  t.is(client.stats().padded, 80, 'the batch held the 20 others and 80 fillers')
  await client.close()
})

// ---------------------------------------------------------------------------
// Process exit: a child `node` that never calls close() or stop().

const EXIT_DEADLINE_MS = 20_000

function childPrelude(emulatorOptions = {}) {
  return `
import { createRequire } from 'node:module'
const require = createRequire(${JSON.stringify(INDEX_JS)})
const { startEmulator, BatchInferenceClient, InvokeModelCommand } = require(${JSON.stringify(INDEX_JS)})
const emu = await startEmulator(${JSON.stringify({ profile: 'fast', ...emulatorOptions })})
const client = new BatchInferenceClient({
  region: emu.region, credentials: emu.credentials, endpoints: emu.endpoints,
  batch: { s3InputUri: \`s3://\${emu.bucket}/child/in/\`, s3OutputUri: \`s3://\${emu.bucket}/child/out/\`,
           roleArn: ${JSON.stringify(ROLE_ARN)}, maxBatchSize: 100, batchTimeout: 0.2, pollInterval: 0.05,
           minBatchSize: 100, maxAttempts: 2, maxConcurrentJobs: 20 },
})
const question = (i) => \`What is \${i} + \${i}?\`
const send = (i) => client.send(new InvokeModelCommand({ modelId: ${JSON.stringify(CLAUDE)}, contentType: 'application/json',
  body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 256, messages: [{ role: 'user', content: question(i) }] }) }))
const answerOk = (out, i) => JSON.parse(out.body.transformToString()).content[0].text.includes(question(i))
`
}

/** Runs a script in a child node; kills it after the deadline. */
async function runChild(t, source) {
  const dir = await mkdtemp(join(tmpdir(), 'engine-exit-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'child.mjs')
  await writeFile(file, source)
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  let killed = false
  const timer = setTimeout(() => {
    killed = true
    child.kill('SIGKILL')
  }, EXIT_DEADLINE_MS)
  t.teardown(() => {
    clearTimeout(timer)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const started = Date.now()
  // 'close', not 'exit': the process may exit before its output is read to the end.
  const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])))
  clearTimeout(timer)
  return { code, signal, killed, stdout, stderr, ms: Date.now() - started }
}

test('a process that awaits its 150 requests exits by itself with code 0, without close() or stop()', async (t) => {
  const r = await runChild(
    t,
    `${childPrelude()}
const outs = await Promise.all(Array.from({ length: 150 }, (_, i) => send(i)))
console.log('answered ' + outs.filter((o, i) => answerOk(o, i)).length)
`,
  )
  const info = `code=${r.code} signal=${r.signal} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr.slice(-2000)}`
  t.false(r.killed, `the child did not exit by itself within ${EXIT_DEADLINE_MS} ms\n${info}`)
  t.is(r.code, 0, info)
  t.regex(r.stdout, /^answered 150$/m, info)
})

test('a process that sends and reaches its end with work pending is kept alive until every answer arrives, then exits', async (t) => {
  const r = await runChild(
    t,
    `${childPrelude()}
let answers = 0
let errors = 0
for (let i = 0; i < 150; i++) send(i).then((o) => { if (answerOk(o, i)) answers += 1 }, () => { errors += 1 })
process.on('exit', () => console.log('answers ' + answers + ' errors ' + errors))
// The module ends here: nothing is awaited.
`,
  )
  const info = `code=${r.code} signal=${r.signal} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr.slice(-2000)}`
  t.false(r.killed, `the child did not exit by itself within ${EXIT_DEADLINE_MS} ms\n${info}`)
  t.is(r.code, 0, info)
  t.regex(r.stdout, /^answers 150 errors 0$/m, info)
})

// Jobs slow enough (each stage 300 ms) for progress events to fire while they run.
const SLOWER_JOBS = { timing: { stageMs: 300 } }

test('progress and job listeners never keep the process alive: it exits soon after its last answer', async (t) => {
  const r = await runChild(
    t,
    `${childPrelude(SLOWER_JOBS)}
let progress = 0
let jobEvents = 0
// Listeners registered and never removed; the last progress snapshot may still be due at the end.
client.on('progress', () => { progress += 1 })
client.on('job', () => { jobEvents += 1 })
const outs = await Promise.all(Array.from({ length: 150 }, (_, i) => send(i)))
const answeredAt = performance.now()
// What still holds the event loop: no timer may (a progress snapshot may be due, unref'd).
console.log('timers holding the loop: ' + process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length)
process.on('exit', () => console.log('exit ' + Math.round(performance.now() - answeredAt) + ' ms after the last answer'))
console.log('answered ' + outs.filter((o, i) => answerOk(o, i)).length + ', job events ' + (jobEvents > 0) + ', progress ' + (progress > 0))
`,
  )
  const info = `code=${r.code} signal=${r.signal} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr.slice(-2000)}`
  t.false(r.killed, `the child did not exit by itself within ${EXIT_DEADLINE_MS} ms\n${info}`)
  t.is(r.code, 0, info)
  t.regex(r.stdout, /^answered 150, job events true, progress true$/m, info)
  t.regex(r.stdout, /^timers holding the loop: 0$/m, info)
  const m = /^exit (\d+) ms after the last answer$/m.exec(r.stdout)
  t.truthy(m, info)
  // Nothing is left to wait for: no poll interval, no batch timer, no listener timer.
  t.true(Number(m?.[1]) < 2000, info)
})

test('a process with listeners and a request it never awaits is kept alive by the request only, then exits', async (t) => {
  const r = await runChild(
    t,
    `${childPrelude(SLOWER_JOBS)}
let progress = 0
client.on('progress', () => { progress += 1 })
client.on('job', () => {})
send(1).then((o) => console.log('answer ' + answerOk(o, 1)), (e) => console.log('error ' + e.name))
process.on('exit', () => console.log('exit, progress seen ' + (progress > 0)))
// Nothing is awaited: the pending request keeps the process alive (as an HTTP call would), the listeners do not.
`,
  )
  const info = `code=${r.code} signal=${r.signal} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr.slice(-2000)}`
  t.false(r.killed, `the child did not exit by itself within ${EXIT_DEADLINE_MS} ms\n${info}`)
  t.is(r.code, 0, info)
  t.regex(r.stdout, /^answer true$/m, info)
  t.regex(r.stdout, /^exit, progress seen true$/m, info)
})

test('a process that only registers listeners exits at once', async (t) => {
  const r = await runChild(
    t,
    `${childPrelude()}
client.on('progress', () => {})
client.on('job', () => {})
console.log('registered')
`,
  )
  const info = `code=${r.code} signal=${r.signal} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr.slice(-2000)}`
  t.false(r.killed, `the child did not exit by itself within ${EXIT_DEADLINE_MS} ms\n${info}`)
  t.is(r.code, 0, info)
  t.regex(r.stdout, /^registered$/m, info)
})
