// The durable journal (issue 6): crash recovery without a second job, answers from the journal
// without any AWS call, idempotency keys, jobs()/results(), locking and corruption.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'

import {
  BatchInferenceClient,
  CLAUDE,
  claudeCommand,
  claudeText,
  DEAD_ENDPOINTS,
  jobsNamed,
  listJobs,
  ROLE_ARN,
  startEmu,
  startJournalChild,
  unique,
  waitFor,
} from './helpers.mjs'

function tempJournal(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bbb-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'state', 'journal.db')
}

/** A client for the emulator with a journal; `endpoints` may be replaced (e.g. by dead ones). */
function journalClient(t, emu, path, { prefix, endpoints = emu.endpoints, batch = {}, journal = {} } = {}) {
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints,
    journal: { path, ...journal },
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      maxBatchSize: 100,
      minBatchSize: 1,
      batchTimeout: 0.1,
      pollInterval: 0.05,
      ...batch,
    },
  })
  t.teardown(() => client.destroy())
  return client
}

function childConfig(emu, path, prefix, extra = {}) {
  return {
    journal: path,
    endpoints: emu.endpoints,
    region: emu.region,
    credentials: emu.credentials,
    bucket: emu.bucket,
    prefix,
    count: 500,
    maxBatchSize: 100,
    ...extra,
  }
}

test('a process killed while its jobs run gets every answer on restart, and no job is created twice', async (t) => {
  // Jobs take a few seconds here, so the first run is killed while they run.
  const { emu, bedrock } = await startEmu(t, { timing: { stageMs: 200, perRecordMs: 15 } })
  const path = tempJournal(t)
  const prefix = unique('crash')
  const cfg = childConfig(emu, path, prefix)

  const first = startJournalChild(cfg)
  t.teardown(() => first.child.kill('SIGKILL'))
  const created = await waitFor(
    'the first run to create its 5 jobs',
    async () => {
      const jobs = await jobsNamed(bedrock, 'batch-inference-')
      const mine = jobs.filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
      return mine.length === 5 && mine
    },
    { timeoutMs: 30_000 },
  )
  t.true(
    created.every((j) => !['Completed', 'PartiallyCompleted', 'Failed'].includes(j.status)),
    'jobs still running at the kill',
  )
  first.child.kill('SIGKILL')
  const end = await first.exited
  t.is(end.signal, 'SIGKILL')
  t.falsy(
    first.events.find((e) => e.event === 'done'),
    'the first run never finished',
  )

  const second = startJournalChild(cfg)
  t.teardown(() => second.child.kill('SIGKILL'))
  const out = await second.exited
  t.is(out.code, 0, out.stderr())
  const done = second.events.find((e) => e.event === 'done')
  t.truthy(done, 'the second run finished')
  t.is(done.right, 500, JSON.stringify(done))
  t.is(done.wrong, 0)
  t.deepEqual(done.errors, [])
  const after = (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
  t.deepEqual(
    after.map((j) => j.jobArn).sort(),
    created.map((j) => j.jobArn).sort(),
    'exactly the jobs of the first run, none new',
  )
  t.deepEqual(done.jobArns, created.map((j) => j.jobArn).sort(), 'the answers came from those jobs')
})

test('a process killed while its Converse jobs run gets every answer on restart, from the same Converse-type jobs', async (t) => {
  const { emu, bedrock } = await startEmu(t, { timing: { stageMs: 200, perRecordMs: 15 } })
  const path = tempJournal(t)
  const prefix = unique('conv-crash')
  const cfg = childConfig(emu, path, prefix, { count: 200, converse: true })
  const first = startJournalChild(cfg)
  t.teardown(() => first.child.kill('SIGKILL'))
  const created = await waitFor(
    'the first run to create its 2 jobs',
    async () => {
      const mine = (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
      return mine.length === 2 && mine
    },
    { timeoutMs: 30_000 },
  )
  t.true(
    created.every((j) => j.modelInvocationType === 'Converse'),
    JSON.stringify(created.map((j) => j.modelInvocationType)),
  )
  first.child.kill('SIGKILL')
  await first.exited

  const second = startJournalChild(cfg)
  t.teardown(() => second.child.kill('SIGKILL'))
  const out = await second.exited
  t.is(out.code, 0, out.stderr())
  const done = second.events.find((e) => e.event === 'done')
  t.is(done?.right, 200, JSON.stringify(done))
  t.deepEqual(done.errors, [])
  const after = (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
  t.deepEqual(after.map((j) => j.jobArn).sort(), created.map((j) => j.jobArn).sort(), 'no job was created again')
})

test('after a crash, a script that sends nothing collects every answer: close() waits for the jobs left running, then jobs() and results() read the journal', async (t) => {
  const { emu, bedrock } = await startEmu(t, { timing: { stageMs: 200, perRecordMs: 15 } })
  const path = tempJournal(t)
  const prefix = unique('collect')
  const first = startJournalChild(childConfig(emu, path, prefix, { count: 200 }))
  t.teardown(() => first.child.kill('SIGKILL'))
  const created = await waitFor(
    'the first run to create its 2 jobs',
    async () => {
      const mine = (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
      return mine.length === 2 && mine
    },
    { timeoutMs: 30_000 },
  )
  first.child.kill('SIGKILL')
  await first.exited

  const client = journalClient(t, emu, path, { prefix })
  await client.close()
  const jobs = await client.jobs()
  t.deepEqual(jobs.map((j) => j.jobArn).sort(), created.map((j) => j.jobArn).sort())
  t.true(
    jobs.every((j) => j.status === 'Completed' && j.successRecordCount === 100),
    JSON.stringify(jobs),
  )
  const texts = []
  for (const job of jobs) {
    for await (const r of client.results(job.jobArn, { pageSize: 64 })) {
      t.falsy(r.error, r.recordId)
      texts.push(JSON.parse(new TextDecoder().decode(r.output)).content[0].text)
    }
  }
  t.is(texts.length, 200)
  const asked = new Set(texts.map((x) => /Question number (\d+):/.exec(x)?.[1]))
  t.is(asked.size, 200, 'each of the 200 questions answered once')
  const after = (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
  t.is(after.length, 2, 'no new job')
})

test('a process killed after "create" was sent but before the ARN came back re-creates with the same token and gets the same job', async (t) => {
  const { emu, bedrock } = await startEmu(t, { createReplyDelayMs: 60_000, timing: { stageMs: 50 } })
  const path = tempJournal(t)
  const prefix = unique('token')
  const cfg = childConfig(emu, path, prefix, { count: 100 })

  const first = startJournalChild(cfg)
  t.teardown(() => first.child.kill('SIGKILL'))
  const [job] = await waitFor(
    'the job to exist on the service',
    async () => {
      const mine = (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
      return mine.length === 1 && mine
    },
    { timeoutMs: 30_000 },
  )
  t.falsy(
    first.events.find((e) => e.event === 'job'),
    'the first run never learned the job ARN',
  )
  first.child.kill('SIGKILL')
  await first.exited

  const second = startJournalChild(cfg)
  t.teardown(() => second.child.kill('SIGKILL'))
  const out = await second.exited
  t.is(out.code, 0, out.stderr())
  const done = second.events.find((e) => e.event === 'done')
  t.is(done.right, 100, JSON.stringify(done))
  const mine = (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
  t.is(mine.length, 1, 'still one job')
  t.is(mine[0].jobArn, job.jobArn)
  t.deepEqual(done.jobArns, [job.jobArn])
})

test('finished work sent again resolves from the journal, with no S3 or Bedrock call; jobs() and results() read it', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const path = tempJournal(t)
  const prefix = unique('resend')
  const prompts = Array.from({ length: 30 }, (_, i) => `journal question ${i}`)

  const first = journalClient(t, emu, path, { prefix })
  const outs = await Promise.all([
    ...prompts.map((p) => first.send(claudeCommand(p))),
    first.send(claudeCommand('keyed question'), { idempotencyKey: 'row-42' }),
  ])
  const firstStats = first.stats()
  t.is(firstStats.store.kind, 'sqlite')
  t.is(firstStats.store.location, path)
  t.true(firstStats.store.bytes > 0)
  t.deepEqual(firstStats.journal, { path, bytes: firstStats.store.bytes }, 'the deprecated name says the same')
  await first.close()
  first.destroy()

  // Endpoints where nothing listens: anything not answered from the journal would fail.
  const second = journalClient(t, emu, path, { prefix, endpoints: DEAD_ENDPOINTS })
  const again = await Promise.all([
    ...prompts.map((p) => second.send(claudeCommand(p))),
    // The key decides, not the body.
    second.send(claudeCommand('another body entirely'), { idempotencyKey: 'row-42' }),
  ])
  t.deepEqual(
    again.map((o) => o.body.transformToString()),
    outs.map((o) => o.body.transformToString()),
  )
  t.true(claudeText(again[5]).includes(prompts[5]))
  t.is(
    again[0].$metadata.requestId.split('#')[0],
    outs[0].$metadata.requestId.split('#')[0],
    'the request id names the job that answered',
  )
  t.deepEqual(second.stats().jobs, [], 'no job in this run')

  const jobs = await second.jobs()
  t.is(jobs.length, 1)
  t.like(jobs[0], {
    modelId: CLAUDE,
    status: 'Completed',
    totalRecordCount: 31,
    successRecordCount: 31,
    errorRecordCount: 0,
  })
  t.true(jobs[0].createdAt instanceof Date)
  const results = []
  for await (const r of second.results(jobs[0].jobArn, { pageSize: 7 })) results.push(r)
  t.is(results.length, 31)
  t.is(new Set(results.map((r) => r.recordId)).size, 31)
  t.deepEqual(
    outs.map((o) => o.$metadata.requestId).sort(),
    results.map((r) => `${jobs[0].jobArn}#${r.recordId}`).sort(),
    "each answer's request id (written by the JS layer) is its job and the record id the engine wrote",
  )
  const keyed = results.find((r) => r.idempotencyKey === 'row-42')
  t.truthy(keyed)
  t.true(new TextDecoder().decode(keyed.output).includes('keyed question'))
  t.true(results.every((r) => r.output instanceof Uint8Array && !r.error))
})

test('the k-th send of the same content matches the k-th journal entry; one more is a new request', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
  const path = tempJournal(t)
  const prefix = unique('occ')
  const first = journalClient(t, emu, path, { prefix, batch: { jobNamePrefix: `${prefix}-a` } })
  const a = await Promise.all([first.send(claudeCommand('same prompt')), first.send(claudeCommand('same prompt'))])
  await first.close()
  first.destroy()
  t.is((await jobsNamed(bedrock, `${prefix}-a`)).length, 1)
  const firstIds = a.map((o) => o.$metadata.requestId).sort()
  t.not(firstIds[0], firstIds[1], 'two records')

  const second = journalClient(t, emu, path, { prefix, batch: { jobNamePrefix: `${prefix}-b` } })
  const b = await Promise.all([1, 2, 3].map(() => second.send(claudeCommand('same prompt'))))
  await second.close()
  t.deepEqual(
    b
      .slice(0, 2)
      .map((o) => o.$metadata.requestId)
      .sort(),
    firstIds,
    'the first two come from the journal',
  )
  const newJobs = await jobsNamed(bedrock, `${prefix}-b`)
  t.is(newJobs.length, 1, 'the third went to a new job')
  t.is(b[2].$metadata.requestId.split('#')[0], newJobs[0].jobArn)
  t.true(claudeText(b[2]).includes('same prompt'))
})

test('a per-record error is kept; a failed job is not, so sending again retries it', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
  const path = tempJournal(t)
  const prefix = unique('errs')
  const first = journalClient(t, emu, path, { prefix, batch: { jobNamePrefix: `${prefix}-a`, maxBatchSize: 2 } })
  const bad = first.send(claudeCommand('bad one [[error:400]]'))
  const ok = first.send(claudeCommand('good one'))
  await t.throwsAsync(bad, { name: 'ValidationException' })
  await ok
  const failedJob = first.send(claudeCommand('this job fails [[job:failed]]'))
  await t.throwsAsync(failedJob, { name: 'BatchJobFailedException' })
  await first.close()
  first.destroy()

  const second = journalClient(t, emu, path, { prefix, batch: { jobNamePrefix: `${prefix}-b` } })
  await t.throwsAsync(second.send(claudeCommand('bad one [[error:400]]')), { name: 'ValidationException' })
  t.true(claudeText(await second.send(claudeCommand('good one'))).includes('good one'))
  t.is((await jobsNamed(bedrock, `${prefix}-b`)).length, 0, 'both answered from the journal')
  // The failed job's request is sent again: a new job (which fails again, by its marker).
  await t.throwsAsync(second.send(claudeCommand('this job fails [[job:failed]]')), { name: 'BatchJobFailedException' })
  t.is((await jobsNamed(bedrock, `${prefix}-b`)).length, 1)
})

test('retentionDays: 0 prunes finished work when the journal opens', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
  const path = tempJournal(t)
  const prefix = unique('prune')
  const first = journalClient(t, emu, path, { prefix, batch: { jobNamePrefix: `${prefix}-a` } })
  await first.send(claudeCommand('to be pruned'))
  await first.close()
  first.destroy()
  const second = journalClient(t, emu, path, {
    prefix,
    journal: { retentionDays: 0 },
    batch: { jobNamePrefix: `${prefix}-b` },
  })
  t.deepEqual(await second.jobs(), [])
  t.true(claudeText(await second.send(claudeCommand('to be pruned'))).includes('to be pruned'))
  t.is((await jobsNamed(bedrock, `${prefix}-b`)).length, 1, 'sent again after the pruning')
})

test('a journal in use by another client or process gives JournalLockedException naming the file', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const path = tempJournal(t)
  const prefix = unique('lock')
  journalClient(t, emu, path, { prefix })
  const err = t.throws(() => journalClient(t, emu, path, { prefix }), { name: 'JournalLockedException' })
  t.true(err.message.includes(path), err.message)

  // Another process: the child exits with the error.
  const other = startJournalChild(childConfig(emu, path, prefix, { count: 1 }))
  const out = await other.exited
  t.not(out.code, 0)
  t.regex(out.stderr(), /JournalLockedException/)
  t.true(out.stderr().includes(path))
})

test('a corrupted or unreadable journal gives JournalCorruptedException naming the file, and is left as it was', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const path = tempJournal(t)
  const prefix = unique('corrupt')
  const first = journalClient(t, emu, path, { prefix })
  await first.send(claudeCommand('before the damage'))
  await first.close()
  first.destroy()
  // Overwrite the header and some pages with garbage.
  const bytes = readFileSync(path)
  const damaged = Buffer.from(bytes)
  damaged.fill(0x5a, 0, Math.min(damaged.length, 4096))
  writeFileSync(path, damaged)
  const err = t.throws(() => journalClient(t, emu, path, { prefix }), { name: 'JournalCorruptedException' })
  t.true(err.message.includes(path), err.message)
  t.deepEqual(readFileSync(path), damaged, 'never silently replaced')

  // A directory where the file should be.
  const dir = mkdtempSync(join(tmpdir(), 'bbb-journal-dir-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.throws(() => journalClient(t, emu, dir, { prefix }), { name: 'JournalCorruptedException' })
})

test('journal options are checked at construction', (t) => {
  const batch = { s3InputUri: 's3://b/in/', s3OutputUri: 's3://b/out/', roleArn: ROLE_ARN }
  t.throws(() => new BatchInferenceClient({ region: 'us-east-1', batch, journal: { path: '' } }), {
    name: 'ValidationException',
    message: /journal\.path/,
  })
  t.throws(
    () => new BatchInferenceClient({ region: 'us-east-1', batch, journal: { path: 'x.db', retentionDays: -1 } }),
    {
      name: 'ValidationException',
      message: /retentionDays/,
    },
  )
  t.throws(() => new BatchInferenceClient({ region: 'us-east-1', mode: 'direct', journal: { path: 'x.db' } }), {
    name: 'ValidationException',
    message: /batch mode/,
  })
})

test("results() without a journal is a clear error; jobs() lists this run's jobs", async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: {
      s3InputUri: `s3://${emu.bucket}/nojournal/in/`,
      s3OutputUri: `s3://${emu.bucket}/nojournal/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.1,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => client.destroy())
  await client.send(claudeCommand('hello'))
  const jobs = await client.jobs()
  t.is(jobs.length, 1)
  t.like(jobs[0], { modelId: CLAUDE, totalRecordCount: 1 })
  const it = client.results(jobs[0].jobArn)
  await t.throwsAsync(it.next(), { name: 'ValidationException', message: /journal/ })
})

test('credentials as an async function: called for the first request and again once they expire', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  let calls = 0
  const client = new BatchInferenceClient({
    region: emu.region,
    endpoints: emu.endpoints,
    // Short-lived credentials: each call's expire within the SDK's refresh margin, so every
    // signed request needs the function again.
    credentials: async () => {
      calls++
      return { ...emu.credentials, sessionToken: `session-${calls}`, expiration: new Date(Date.now() + 1000) }
    },
    batch: {
      s3InputUri: `s3://${emu.bucket}/creds/in/`,
      s3OutputUri: `s3://${emu.bucket}/creds/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.05,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => client.destroy())
  t.true(claudeText(await client.send(claudeCommand('signed with a function'))).includes('signed with a function'))
  t.true(calls >= 2, `called ${calls} times`)

  // Long-lived ones are fetched once and reused.
  let longCalls = 0
  const steady = new BatchInferenceClient({
    region: emu.region,
    endpoints: emu.endpoints,
    credentials: async () => {
      longCalls++
      return { ...emu.credentials, expiration: Date.now() + 3600_000 }
    },
    batch: {
      s3InputUri: `s3://${emu.bucket}/creds2/in/`,
      s3OutputUri: `s3://${emu.bucket}/creds2/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.05,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => steady.destroy())
  await steady.send(claudeCommand('steady'))
  t.is(longCalls, 1)
})

test('a credentials function that fails rejects the requests with CredentialsProviderError and its message', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const failing = new BatchInferenceClient({
    region: emu.region,
    endpoints: emu.endpoints,
    credentials: async () => {
      throw new Error('vault is sealed')
    },
    batch: {
      s3InputUri: `s3://${emu.bucket}/credsfail/in/`,
      s3OutputUri: `s3://${emu.bucket}/credsfail/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.05,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => failing.destroy())
  const err = await t.throwsAsync(failing.send(claudeCommand('never sent')), { name: 'CredentialsProviderError' })
  t.regex(err.message, /vault is sealed/)
  t.throws(() => new BatchInferenceClient({ region: 'us-east-1', mode: 'direct', credentials: { accessKeyId: 1 } }), {
    name: 'ValidationException',
    message: /credentials/,
  })
})
