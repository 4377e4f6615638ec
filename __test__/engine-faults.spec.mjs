// End-to-end tests of the batch engine on every fault the emulator can play (issue 3, "Jobs" and
// "Tests"; design §4): record errors, missing and malformed lines, failed, expired and stopped
// jobs, bad bodies, throttled creates, the concurrent-job quota and failing S3 calls. Which AWS
// exception each record error code gives, through every door: doors.spec.mjs.

import { createRequire } from 'node:module'
import test from 'ava'

import {
  CLAUDE,
  claudeCommand,
  claudePrompt,
  claudeText,
  describe,
  failures,
  getJob,
  InvokeModelCommand,
  inputRecords,
  listJobs,
  makeClient,
  performance,
  recordJobEvents,
  settle,
  startEmu,
  stopJob,
  TERMINAL_STATUSES,
  waitFor,
} from './helpers.mjs'

const require = createRequire(import.meta.url)
// The app's SDK (a peer dependency): the client must use its exception classes (design §2).
const sdk = require('@aws-sdk/client-bedrock-runtime')

const RECORD_ID_RE = /^[A-Za-z0-9]+$/
const _ARN_RE = /^arn:aws:bedrock:[a-z0-9-]+:\d{12}:model-invocation-job\/[a-z0-9]{12}$/

/** Checks an AWS-named error as the SDK would build it: its class, name, $fault and fields. */
function assertSdkError(t, err, name, label) {
  t.is(err?.name, name, `${label}: ${err?.name}: ${err?.message}`)
  if (err?.name !== name) return
  t.true(err instanceof sdk[name], `${label}: instanceof the SDK's ${name}`)
  const reference = new sdk[name]({ message: 'x', $metadata: {} })
  t.is(err.$fault, reference.$fault, `${label}: $fault as the SDK has it`)
  t.is(typeof err.message, 'string')
  t.true(err.message.length > 0, `${label}: has a message`)
  t.is(typeof err.$metadata, 'object')
}

function assertRecordRef(t, err, jobArn, label) {
  t.is(err?.jobArn, jobArn, `${label}: jobArn`)
  t.true(typeof err?.recordId === 'string' && RECORD_ID_RE.test(err.recordId), `${label}: recordId ${err?.recordId}`)
}

test('every record marker among good records in one batch settles each caller with its own outcome, after one resubmission where the error is retryable', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { maxAttempts: 2 } })

  const good = Array.from({ length: 20 }, (_, i) => `Good question ${i}: what is ${i} + ${i}?`)
  const faults = {
    e400: 'Bad request [[error:400]] please',
    e429: 'Throttled [[error:429]] please',
    e500: 'Broken [[error:500]] please',
    e408: 'Slow model [[error:408]] please',
    missing: 'Lost [[missing]] please',
    malformed: 'Garbled [[malformed]] please',
  }
  // Faults spread among the good ones, all sent at once: one batch.
  const prompts = [
    ...good.slice(0, 7),
    faults.e400,
    faults.e429,
    ...good.slice(7, 14),
    faults.e500,
    faults.e408,
    faults.missing,
    ...good.slice(14),
    faults.malformed,
  ]
  const outcomes = await Promise.all(prompts.map((p) => settle(client.send(claudeCommand(p)))))
  const byPrompt = new Map(prompts.map((p, i) => [p, outcomes[i]]))

  const jobs = await listJobs(bedrock)
  t.is(
    jobs.length,
    2,
    `one job, then one for the resubmitted records: ${jobs.map((j) => `${j.jobName}:${j.status}`).join(', ')}`,
  )
  const [first, second] = jobs.map((j) => j.jobArn)

  for (const q of good) {
    const o = byPrompt.get(q)
    if (!o.ok) t.fail(`${q}: ${describe(o)}`)
    else {
      t.true(claudeText(o.value).includes(q), `answer to ${q}`)
      t.is(o.value.$metadata.attempts, 1, `${q}: answered by the first job`)
    }
  }

  const e400 = byPrompt.get(faults.e400)
  t.false(e400.ok, '[[error:400]] rejects')
  if (!e400.ok) {
    assertSdkError(t, e400.error, 'ValidationException', '[[error:400]]')
    assertRecordRef(t, e400.error, first, '[[error:400]] (not retried: it comes from the first job)')
    t.is(e400.error.$metadata.attempts, 1)
  }

  for (const [key, name] of [
    ['e429', 'ThrottlingException'],
    ['e500', 'InternalServerException'],
    ['e408', 'ModelTimeoutException'],
  ]) {
    const o = byPrompt.get(faults[key])
    t.false(o.ok, `${faults[key]} rejects`)
    if (o.ok) continue
    assertSdkError(t, o.error, name, faults[key])
    assertRecordRef(t, o.error, second, `${faults[key]} (its last try was in the second job)`)
    t.is(o.error.$metadata.attempts, 2, `${faults[key]}: $metadata.attempts counts the jobs`)
  }

  for (const key of ['missing', 'malformed']) {
    const o = byPrompt.get(faults[key])
    t.false(o.ok, `${faults[key]} rejects`)
    if (o.ok) continue
    t.is(o.error.name, 'RecordMissingException', `${faults[key]}: ${o.error.message}`)
    assertRecordRef(t, o.error, second, `${faults[key]} (its last try was in the second job)`)
    t.is(o.error.$metadata.attempts, 2, faults[key])
    t.true(typeof o.error.message === 'string' && o.error.message.length > 0)
  }

  // 429, 500, 408, missing and malformed were each resubmitted once (maxAttempts 2); 400 was not.
  t.is(client.stats().resubmitted, 5)
  t.is(client.stats().queued, 0)
  t.is(client.stats().inFlight, 0)
  const secondJob = second ? await getJob(bedrock, second) : undefined
  t.is(secondJob?.totalRecordCount, 100, 'the resubmitted records were padded into a job of their own')
  await client.close()
})

test('with maxAttempts 1 a retryable record error rejects at once, without a resubmission', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { maxAttempts: 1 } })

  const prompts = ['Only once [[error:429]]', 'Only once [[missing]]', 'Fine question: what is 5 + 5?']
  const outcomes = await Promise.all(prompts.map((p) => settle(client.send(claudeCommand(p)))))
  t.is(outcomes[0].error?.name, 'ThrottlingException', describe(outcomes[0]))
  t.is(outcomes[1].error?.name, 'RecordMissingException', describe(outcomes[1]))
  t.true(outcomes[2].ok, describe(outcomes[2]))
  t.is(client.stats().resubmitted, 0)
  t.is((await listJobs(bedrock)).length, 1)
  await client.close()
})

test("[[job:failed]] rejects every caller of that job with BatchJobFailedException carrying status 'Failed' and the job's message, and no second job is created", async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu)

  const prompts = [
    ...Array.from({ length: 10 }, (_, i) => `Doomed question ${i}`),
    'This one fails the job [[job:failed]]',
  ]
  const outcomes = await Promise.all(prompts.map((p) => settle(client.send(claudeCommand(p)))))

  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1, 'a Failed job is never resubmitted')
  const job = jobs.length ? await getJob(bedrock, jobs[0].jobArn) : undefined
  t.is(job?.status, 'Failed')
  t.true(typeof job?.message === 'string' && job.message.length > 0, 'the emulator gave the job a message')
  for (const [i, o] of outcomes.entries()) {
    t.false(o.ok, `caller ${i} rejects`)
    if (o.ok) continue
    t.is(o.error.name, 'BatchJobFailedException', `caller ${i}: ${describe(o)}`)
    t.is(o.error.status, 'Failed', `caller ${i}: status`)
    t.is(o.error.message, job?.message, `caller ${i}: the job's message`)
    t.is(o.error.jobArn, job?.jobArn, `caller ${i}: jobArn`)
    t.truthy(o.error.$metadata, `caller ${i}: $metadata`)
  }
  t.is(client.stats().resubmitted, 0)
  t.is(client.stats().jobs.find((j) => j.jobArn === job?.jobArn)?.status, 'Failed', 'stats() report the job as Failed')
  await client.close()
})

test('[[job:expired]] resubmits the records of the expired job, then rejects them with RecordMissingException when the retry expires too', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { maxAttempts: 2 } })

  const prompts = ['Expiring question [[job:expired]]', 'Neighbour 1', 'Neighbour 2']
  const outcomes = await Promise.all(prompts.map((p) => settle(client.send(claudeCommand(p)))))

  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 2, `the first job and one retry: ${jobs.map((j) => `${j.jobName}:${j.status}`).join(', ')}`)
  t.deepEqual(
    jobs.map((j) => j.status),
    ['Expired', 'Expired'],
  )
  const marker = outcomes[0]
  t.false(marker.ok)
  if (!marker.ok) {
    t.is(marker.error.name, 'RecordMissingException', describe(marker))
    assertRecordRef(t, marker.error, jobs[1]?.jobArn, 'the expired record (last tried in the second job)')
  }
  // The emulator's expired job writes no output at all: its neighbours are missing too.
  for (const o of outcomes.slice(1)) t.is(o.error?.name, 'RecordMissingException', describe(o))
  t.is(client.stats().resubmitted, 3, 'each record of the expired job was resubmitted once')
  await client.close()
})

test("[[job:slow]] stopped with StopModelInvocationJob resolves the finished records and rejects the rest with BatchJobFailedException, status 'Stopped', never resubmitted", async (t) => {
  const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 120 })
  const { client } = makeClient(t, emu, { batch: { maxBatchSize: 100, minBatchSize: 100 } })

  // 100 real requests (no fillers), so both halves of the slow job are callers.
  const prompts = Array.from({ length: 100 }, (_, i) =>
    i === 0 ? 'Slow job [[job:slow]] question 0' : `Slow job question ${i}: what is ${i} * 2?`,
  )
  const pending = prompts.map((p) => settle(client.send(claudeCommand(p))))

  const arn = await waitFor('the job in stats()', () => client.stats().jobs[0]?.jobArn)
  // The slow job answers half of its records, then waits: stop it there.
  await waitFor('the slow job to answer half its records', async () => {
    const j = await getJob(bedrock, arn)
    return j.status === 'InProgress' && j.processedRecordCount >= 50
  })
  t.true(pending.length === 100)
  await stopJob(bedrock, arn)
  const outcomes = await Promise.all(pending)

  const job = await getJob(bedrock, arn)
  t.is(job.status, 'Stopped')
  const resolved = outcomes.map((o, i) => [i, o]).filter(([, o]) => o.ok)
  const rejected = outcomes.map((o, i) => [i, o]).filter(([, o]) => !o.ok)
  t.true(resolved.length > 0, 'some records had finished')
  t.true(rejected.length > 0, 'some records had not')
  t.is(resolved.length, job.successRecordCount, 'every record the job finished resolves')
  for (const [i, o] of resolved) t.true(claudeText(o.value).includes(prompts[i]), `answer ${i}`)
  for (const [i, o] of rejected) {
    t.is(o.error.name, 'BatchJobFailedException', `caller ${i}: ${describe(o)}`)
    t.is(o.error.status, 'Stopped', `caller ${i}: status`)
    t.is(o.error.jobArn, arn, `caller ${i}: jobArn`)
  }
  t.is(client.stats().resubmitted, 0, 'a stopped job is never resubmitted')
  t.is((await listJobs(bedrock)).length, 1, 'no second job')
  await client.close()
})

test('a body that is not JSON among good ones rejects at once with ValidationException, never reaches the batch, and the others all resolve', async (t) => {
  const { emu, s3, bedrock } = await startEmu(t)
  // batchTimeout 60 s: nothing leaves the queue before the flush.
  const { client, inputPrefix } = makeClient(t, emu, { batch: { batchTimeout: 60 } })

  const good = Array.from({ length: 20 }, (_, i) => `Good neighbour ${i}: what is ${i} + 2?`)
  const goodP = good.slice(0, 10).map((q) => settle(client.send(claudeCommand(q))))
  const bad = settle(
    client.send(
      new InvokeModelCommand({
        modelId: CLAUDE,
        contentType: 'application/json',
        body: 'this is {not JSON BADBODYMARK',
      }),
    ),
  )
  goodP.push(...good.slice(10).map((q) => settle(client.send(claudeCommand(q)))))

  const deadline = new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ timedOut: true }), 5000)
    bad.then(() => clearTimeout(timer))
  })
  const badOut = await Promise.race([bad, deadline])
  t.falsy(badOut.timedOut, 'the bad body settles without waiting for a batch')
  t.false(badOut.ok === true, 'the bad body rejects')
  if (badOut.ok === false) {
    assertSdkError(t, badOut.error, 'ValidationException', 'bad body')
    t.is(badOut.error.$metadata?.httpStatusCode, 400)
  }
  t.is(client.stats().queued, 20, 'the good ones still wait, untouched')
  t.deepEqual(client.stats().jobs, [])

  await client.flush()
  const outcomes = await Promise.all(goodP)
  t.deepEqual(failures(outcomes), [], 'every good request resolves')
  for (const [i, o] of outcomes.entries()) if (o.ok) t.true(claudeText(o.value).includes(good[i]))
  t.is((await listJobs(bedrock)).length, 1)
  const records = await inputRecords(s3, emu.bucket, inputPrefix)
  t.is(records.filter((r) => good.includes(claudePrompt(r.modelInput))).length, 20)
  t.false(
    records.some((r) => JSON.stringify(r).includes('BADBODYMARK')),
    'the bad body is not in the input',
  )
  await client.close()
})

test('throttled creates still resolve every request, with exactly one job per batch', async (t) => {
  const { emu, bedrock } = await startEmu(t, { throttle: { create: 3 } })
  const { client } = makeClient(t, emu, { batch: { maxBatchSize: 100 } })

  const questions = Array.from({ length: 300 }, (_, i) => `Throttle question ${i}: what is ${i} + 9?`)
  const outcomes = await Promise.all(questions.map((q) => settle(client.send(claudeCommand(q)))))

  t.deepEqual(failures(outcomes), [], 'every request resolves')
  for (const [i, o] of outcomes.entries())
    if (o.ok && !claudeText(o.value).includes(questions[i])) t.fail(`answer ${i}`)
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 3, `3 batches, 3 jobs: ${jobs.map((j) => j.jobName).join(', ')}`)
  t.is(new Set(jobs.map((j) => j.jobName)).size, jobs.length, 'no job name twice')
  for (const j of jobs) t.is((await getJob(bedrock, j.jobArn)).totalRecordCount, 100)
  t.is(client.stats().jobs.length, 3)
  await client.close()
})

test('a quota of 2 concurrent jobs with 6 batches delivers every answer, never more than 2 jobs run at once, and no caller sees ServiceQuotaExceeded', async (t) => {
  const { emu, bedrock } = await startEmu(t, { maxConcurrentJobs: 2, timing: { stageMs: 60 } })
  const { client } = makeClient(t, emu, { batch: { maxBatchSize: 100, maxConcurrentJobs: 2 } })
  const events = recordJobEvents(client)

  const questions = Array.from({ length: 600 }, (_, i) => `Quota question ${i}: what is ${i} + 11?`)
  const all = Promise.all(questions.map((q) => settle(client.send(claudeCommand(q)))))
  let done = false
  all.then(() => {
    done = true
  })
  // Watch the emulator while the work runs.
  let maxActive = 0
  let samples = 0
  while (!done) {
    const jobs = await listJobs(bedrock)
    samples += 1
    maxActive = Math.max(maxActive, jobs.filter((j) => !TERMINAL_STATUSES.includes(j.status)).length)
    await Promise.race([all, new Promise((r) => setTimeout(r, 20))])
  }
  const outcomes = await all

  t.deepEqual(failures(outcomes), [], 'every request resolves')
  t.false(
    outcomes.some((o) => !o.ok && o.error?.name === 'ServiceQuotaExceededException'),
    'no ServiceQuotaExceededException',
  )
  for (const [i, o] of outcomes.entries())
    if (o.ok && !claudeText(o.value).includes(questions[i])) t.fail(`answer ${i}`)
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 6)
  t.true(samples > 1, `the emulator was watched (${samples} samples)`)
  t.true(maxActive <= 2, `at most 2 jobs ran at once on the emulator (saw ${maxActive})`)

  // Through the client's own job events: never more than 2 jobs live at once.
  const live = new Map()
  let maxLive = 0
  for (const e of events) {
    if (TERMINAL_STATUSES.includes(e.status)) live.delete(e.jobArn)
    else live.set(e.jobArn, e.status)
    maxLive = Math.max(maxLive, live.size)
  }
  t.true(maxLive <= 2, `at most 2 live jobs in the client's job events (saw ${maxLive})`)
  t.true(events.length >= 6, 'job events were emitted')
  await client.close()
})

test('the first 2 S3 requests failing with 503 SlowDown still resolve every request', async (t) => {
  const { emu, bedrock } = await startEmu(t, { s3: { failFirst: 2 } })
  const { client } = makeClient(t, emu)

  const started = performance.now()
  const questions = Array.from({ length: 50 }, (_, i) => `S3 question ${i}: what is ${i} + 4?`)
  const outcomes = await Promise.all(questions.map((q) => settle(client.send(claudeCommand(q)))))
  t.deepEqual(failures(outcomes), [], 'every request resolves')
  for (const [i, o] of outcomes.entries()) if (o.ok) t.true(claudeText(o.value).includes(questions[i]))
  t.is((await listJobs(bedrock)).length, 1, 'one job: the retried upload did not create a second')
  t.log(`settled in ${Math.round(performance.now() - started)} ms`)
  await client.close()
})

test('throttled GetModelInvocationJob polls are retried and never reject the callers of a running job', async (t) => {
  const { emu, bedrock } = await startEmu(t, { throttle: { get: 4 } })
  const { client } = makeClient(t, emu)

  const questions = Array.from({ length: 30 }, (_, i) => `Polled question ${i}`)
  const outcomes = await Promise.all(questions.map((q) => settle(client.send(claudeCommand(q)))))
  t.deepEqual(failures(outcomes), [], 'every request resolves')
  for (const [i, o] of outcomes.entries()) if (o.ok) t.true(claudeText(o.value).includes(questions[i]))
  t.is((await listJobs(bedrock)).length, 1)
  await client.close()
})
