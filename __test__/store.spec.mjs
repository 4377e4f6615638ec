// The store behaviour suite: what a client keeps in its store, written once and run against each
// store (`STORES`: the SQLite journal, and PostgreSQL on the server of BEDROCK_BATCH_TEST_PG_URL,
// which .ci/test starts with .ci/postgres.sh), against the emulator. Crash recovery with a killed
// child process, answers and idempotency keys from the store, jobs()/results(), retention, and a
// second client on the same store. Each test title starts with the store's name; where the stores
// differ on purpose, the title says how. Without a PostgreSQL server its tests fail, unless
// BEDROCK_BATCH_SKIP_PG=1, where each logs that it was skipped (see pgTest in helpers.mjs).
//
// Behaviours of one store only: store-sqlite.spec.mjs (corruption, the journal's options) and
// store-postgres.spec.mjs (outages, groups, the store's options and environment, the CLI), and
// group.spec.mjs (several processes on one PostgreSQL group).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'

import {
  BatchInferenceClient,
  bridge,
  CLAUDE,
  claudeCommand,
  claudeText,
  DEAD_ENDPOINTS,
  jobsNamed,
  listJobs,
  PG_URL,
  pgTest,
  ROLE_ARN,
  startEmu,
  startJournalChild,
  unique,
  waitFor,
} from './helpers.mjs'

// ---------------------------------------------------------------------------
// The stores

/**
 * Each store kind: `test` registers a test that needs it; `open(t)` makes a fresh store for one
 * test, as `{ options(extra), child, location, config(t, config), ready(client) }`: the client's
 * options for it (`extra`: retentionDays and the like), the store in the crash child's config,
 * where `stats().store.location` says it is, a check of what `client.config` shows of it, and a
 * promise that the client has taken the store (PostgreSQL: the lead of its group).
 */
const STORES = [
  {
    name: 'sqlite',
    kind: 'sqlite',
    test,
    open(t) {
      const dir = mkdtempSync(join(tmpdir(), 'bbb-journal-'))
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const path = join(dir, 'state', 'journal.db')
      return {
        options: (extra = {}) => ({ journal: { path, ...extra } }),
        child: { journal: path },
        location: path,
        config(t, config) {
          t.is(config.journal.path, path)
        },
        ready: async () => {},
      }
    },
  },
  {
    name: 'postgres',
    kind: 'postgres',
    test: pgTest,
    open() {
      const group = unique('pg')
      const u = new URL(PG_URL)
      const password = decodeURIComponent(u.password)
      return {
        // A short election interval: a client takes the lead of a group left by another at once.
        options: (extra = {}) => ({ store: { url: PG_URL, group, electionInterval: 0.05, ...extra } }),
        child: { store: { url: PG_URL, group } },
        location: `postgres://${u.host}${u.pathname}#${group}`,
        config(t, config) {
          t.false(JSON.stringify(config).includes(password), 'client.config never shows the password')
          t.is(config.store.group, group)
        },
        ready: (client) => waitFor('the client to lead its group', () => client.stats().leader === true),
      }
    },
  },
]

/** Registers `fn(t, store, kind)` once per store kind, titled `<store>: <title>`. */
function storeTest(title, fn) {
  for (const kind of STORES) kind.test(`${kind.name}: ${title}`, (t) => fn(t, kind.open(t), kind))
}

// ---------------------------------------------------------------------------
// Helpers

function batchOptions(emu, prefix, batch = {}) {
  return {
    s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
    s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
    roleArn: ROLE_ARN,
    maxBatchSize: 100,
    minBatchSize: 1,
    batchTimeout: 0.1,
    pollInterval: 0.05,
    ...batch,
  }
}

/**
 * A client for the emulator on `store`; `endpoints` may be replaced (e.g. by dead ones),
 * `options` are the store's own (retentionDays, ...).
 */
function storeClient(t, emu, store, { prefix, endpoints = emu.endpoints, batch = {}, options = {} } = {}) {
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints,
    ...store.options(options),
    batch: batchOptions(emu, prefix, batch),
  })
  t.teardown(() => client.destroy())
  return client
}

/** The crash child's config (fixtures/journal-child.mjs) for `store`. */
function childConfig(emu, store, prefix, extra = {}) {
  return {
    ...store.child,
    endpoints: emu.endpoints,
    region: emu.region,
    credentials: emu.credentials,
    bucket: emu.bucket,
    prefix,
    count: 300,
    maxBatchSize: 100,
    ...extra,
  }
}

/** The emulator's jobs reading input under `prefix`. */
async function jobsUnder(bedrock, prefix) {
  return (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(prefix))
}

/** Waits until the emulator has `n` jobs under `prefix`; returns them. */
function jobsCreated(bedrock, prefix, n) {
  return waitFor(
    `the first run to create its ${n} jobs`,
    async () => {
      const mine = await jobsUnder(bedrock, prefix)
      return mine.length === n && mine
    },
    { timeoutMs: 30_000 },
  )
}

/** Runs the crash child to its end; checks it exited 0 and returns its `done` event. */
async function runToEnd(t, cfg) {
  const run = startJournalChild(cfg)
  t.teardown(() => run.child.kill('SIGKILL'))
  const out = await run.exited
  t.is(out.code, 0, out.stderr())
  const done = run.events.find((e) => e.event === 'done')
  t.truthy(done, 'the run finished')
  return done
}

// ---------------------------------------------------------------------------
// Crash recovery

storeTest(
  'a process killed while its jobs run gets every answer on restart, and no job is created twice',
  async (t, store) => {
    // Jobs take a few seconds here, so the first run is killed while they run.
    const { emu, bedrock } = await startEmu(t, { timing: { stageMs: 200, perRecordMs: 15 } })
    const prefix = unique('crash')
    const cfg = childConfig(emu, store, prefix)

    const first = startJournalChild(cfg)
    t.teardown(() => first.child.kill('SIGKILL'))
    const created = await jobsCreated(bedrock, prefix, 3)
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

    const done = await runToEnd(t, cfg)
    t.is(done.right, 300, JSON.stringify(done))
    t.is(done.wrong, 0)
    t.deepEqual(done.errors, [])
    t.deepEqual(
      (await jobsUnder(bedrock, prefix)).map((j) => j.jobArn).sort(),
      created.map((j) => j.jobArn).sort(),
      'exactly the jobs of the first run, none new',
    )
    t.deepEqual(done.jobArns, created.map((j) => j.jobArn).sort(), 'the answers came from those jobs')
  },
)

storeTest(
  'a process killed while its Converse jobs run gets every answer on restart, from the same Converse-type jobs',
  async (t, store) => {
    const { emu, bedrock } = await startEmu(t, { timing: { stageMs: 200, perRecordMs: 15 } })
    const prefix = unique('conv-crash')
    const cfg = childConfig(emu, store, prefix, { count: 200, converse: true })
    const first = startJournalChild(cfg)
    t.teardown(() => first.child.kill('SIGKILL'))
    const created = await jobsCreated(bedrock, prefix, 2)
    t.true(
      created.every((j) => j.modelInvocationType === 'Converse'),
      JSON.stringify(created.map((j) => j.modelInvocationType)),
    )
    first.child.kill('SIGKILL')
    await first.exited

    const done = await runToEnd(t, cfg)
    t.is(done.right, 200, JSON.stringify(done))
    t.deepEqual(done.errors, [])
    t.deepEqual(
      (await jobsUnder(bedrock, prefix)).map((j) => j.jobArn).sort(),
      created.map((j) => j.jobArn).sort(),
      'no job was created again',
    )
  },
)

storeTest(
  "after a crash, a script that sends nothing collects every answer, then jobs() and results() read the store (SQLite: close() waits for the jobs left running; PostgreSQL: the client that takes the lead polls them and records their answers; close() does not wait for the group's jobs)",
  async (t, store, kind) => {
    const { emu, bedrock } = await startEmu(t, { timing: { stageMs: 200, perRecordMs: 15 } })
    const prefix = unique('collect')
    const first = startJournalChild(childConfig(emu, store, prefix, { count: 200 }))
    t.teardown(() => first.child.kill('SIGKILL'))
    const created = await jobsCreated(bedrock, prefix, 2)
    first.child.kill('SIGKILL')
    await first.exited

    const client = storeClient(t, emu, store, { prefix })
    if (kind.name === 'postgres') {
      // The leader records a job's status first and its answers right after: wait for both.
      await store.ready(client)
      await waitFor('the leader to record every answer of the finished jobs', async () => {
        const jobs = await client.jobs()
        if (jobs.length !== 2 || jobs.some((j) => j.status !== 'Completed')) return false
        let answers = 0
        for (const job of jobs) for await (const _ of client.results(job.jobArn, { pageSize: 100 })) answers++
        return answers === 200
      })
    }
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
    t.is((await jobsUnder(bedrock, prefix)).length, 2, 'no new job')
  },
)

storeTest(
  'a process killed after "create" was sent but before the ARN came back re-creates with the same token and gets the same job',
  async (t, store) => {
    const { emu, bedrock } = await startEmu(t, { createReplyDelayMs: 60_000, timing: { stageMs: 50 } })
    const prefix = unique('token')
    const cfg = childConfig(emu, store, prefix, { count: 100 })

    const first = startJournalChild(cfg)
    t.teardown(() => first.child.kill('SIGKILL'))
    const [job] = await waitFor(
      'the job to exist on the service',
      async () => {
        const mine = await jobsUnder(bedrock, prefix)
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

    const done = await runToEnd(t, cfg)
    t.is(done.right, 100, JSON.stringify(done))
    const mine = await jobsUnder(bedrock, prefix)
    t.is(mine.length, 1, 'still one job')
    t.is(mine[0].jobArn, job.jobArn)
    t.deepEqual(done.jobArns, [job.jobArn])
  },
)

// ---------------------------------------------------------------------------
// Answers from the store

storeTest(
  'one idempotencyKey sent as Converse, ConverseStream and again, at once: one record, each caller reads it its own way (events for a stream, whole otherwise)',
  async (t, store) => {
    const { emu } = await startEmu(t, { minRecords: 1 })
    const client = storeClient(t, emu, store, { prefix: unique('ways') })
    await store.ready(client)
    const input = {
      modelId: CLAUDE,
      messages: [{ role: 'user', content: [{ text: 'one key, read two ways' }] }],
      inferenceConfig: { maxTokens: 64 },
    }
    const key = { idempotencyKey: 'row-ways' }
    // The first of each pair works on the key; the others wait for its answer.
    const [whole, stream, wholeAgain, streamAgain] = await Promise.all([
      client.send(new bridge.ConverseCommand(input), key),
      client.send(new bridge.ConverseStreamCommand(input), key),
      client.send(new bridge.ConverseCommand(input), key),
      client.send(new bridge.ConverseStreamCommand(input), key),
    ])
    const text = whole.output.message.content[0].text
    t.true(text.length > 0)
    t.is(wholeAgain.output.message.content[0].text, text)
    for (const s of [stream, streamAgain]) {
      let streamed = ''
      let stop = null
      for await (const e of s.stream) {
        streamed += e.contentBlockDelta?.delta?.text ?? ''
        stop = e.messageStop?.stopReason ?? stop
      }
      t.is(streamed, text, 'the stream carries the same answer as events')
      t.truthy(stop)
    }
    t.is(client.stats().jobs.length, 1, 'one job, one record for the key')
  },
)

storeTest(
  'one idempotencyKey sent first as ConverseStream, then as Converse: the whole answer for the second',
  async (t, store) => {
    const { emu } = await startEmu(t, { minRecords: 1 })
    const client = storeClient(t, emu, store, { prefix: unique('ways2') })
    await store.ready(client)
    const input = { modelId: CLAUDE, messages: [{ role: 'user', content: [{ text: 'stream first' }] }] }
    const key = { idempotencyKey: 'row-stream-first' }
    const [stream, whole] = await Promise.all([
      client.send(new bridge.ConverseStreamCommand(input), key),
      client.send(new bridge.ConverseCommand(input), key),
    ])
    let streamed = ''
    for await (const e of stream.stream) streamed += e.contentBlockDelta?.delta?.text ?? ''
    t.true(streamed.length > 0)
    t.is(whole.output.message.content[0].text, streamed)
  },
)

storeTest(
  'finished work sent again resolves from the store, with no S3 or Bedrock call; idempotency keys; jobs() and results() read it, also after close()',
  async (t, store, kind) => {
    const { emu } = await startEmu(t, { minRecords: 1 })
    const prefix = unique('resend')
    const prompts = Array.from({ length: 30 }, (_, i) => `store question ${i}`)

    const first = storeClient(t, emu, store, { prefix })
    store.config(t, first.config)
    const outs = await Promise.all([
      ...prompts.map((p) => first.send(claudeCommand(p))),
      first.send(claudeCommand('keyed question'), { idempotencyKey: 'row-42' }),
    ])
    const stats = first.stats()
    t.is(stats.store.kind, kind.kind)
    t.is(stats.store.location, store.location)
    t.true(stats.store.bytes > 0)
    t.deepEqual(stats.journal, { path: store.location, bytes: stats.store.bytes }, 'the deprecated name says the same')
    await first.close()
    first.destroy()

    // Endpoints where nothing listens: anything not answered from the store would fail.
    const second = storeClient(t, emu, store, { prefix, endpoints: DEAD_ENDPOINTS })
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
    t.true(claudeText(again[30]).includes('keyed question'))
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
    await second.close()
    // After close, the store is still read (on PostgreSQL, without the group's lock).
    t.is((await second.jobs()).length, 1)
  },
)

storeTest(
  'the k-th send of the same content matches the k-th stored answer; one more is a new request',
  async (t, store) => {
    const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
    const prefix = unique('occ')
    const first = storeClient(t, emu, store, { prefix, batch: { jobNamePrefix: `${prefix}-a` } })
    const a = await Promise.all([first.send(claudeCommand('same prompt')), first.send(claudeCommand('same prompt'))])
    await first.close()
    first.destroy()
    t.is((await jobsNamed(bedrock, `${prefix}-a`)).length, 1)
    const firstIds = a.map((o) => o.$metadata.requestId).sort()
    t.not(firstIds[0], firstIds[1], 'two records')

    const second = storeClient(t, emu, store, { prefix, batch: { jobNamePrefix: `${prefix}-b` } })
    const b = await Promise.all([1, 2, 3].map(() => second.send(claudeCommand('same prompt'))))
    await second.close()
    t.deepEqual(
      b
        .slice(0, 2)
        .map((o) => o.$metadata.requestId)
        .sort(),
      firstIds,
      'the first two come from the store',
    )
    const newJobs = await jobsNamed(bedrock, `${prefix}-b`)
    t.is(newJobs.length, 1, 'the third went to a new job')
    t.is(b[2].$metadata.requestId.split('#')[0], newJobs[0].jobArn)
    t.true(claudeText(b[2]).includes('same prompt'))
  },
)

storeTest('a per-record error is kept; a failed job is not, so sending again retries it', async (t, store) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
  const prefix = unique('errs')
  const first = storeClient(t, emu, store, { prefix, batch: { jobNamePrefix: `${prefix}-a`, maxBatchSize: 2 } })
  const bad = first.send(claudeCommand('bad one [[error:400]]'))
  const ok = first.send(claudeCommand('good one'))
  await t.throwsAsync(bad, { name: 'ValidationException' })
  await ok
  const failedJob = first.send(claudeCommand('this job fails [[job:failed]]'))
  await t.throwsAsync(failedJob, { name: 'BatchJobFailedException' })
  await first.close()
  first.destroy()

  const second = storeClient(t, emu, store, { prefix, batch: { jobNamePrefix: `${prefix}-b` } })
  await t.throwsAsync(second.send(claudeCommand('bad one [[error:400]]')), { name: 'ValidationException' })
  t.true(claudeText(await second.send(claudeCommand('good one'))).includes('good one'))
  t.is((await jobsNamed(bedrock, `${prefix}-b`)).length, 0, 'both answered from the store')
  // The failed job's request is sent again: a new job (which fails again, by its marker).
  await t.throwsAsync(second.send(claudeCommand('this job fails [[job:failed]]')), { name: 'BatchJobFailedException' })
  t.is((await jobsNamed(bedrock, `${prefix}-b`)).length, 1)
})

// ---------------------------------------------------------------------------
// Retention and ownership

storeTest(
  'retentionDays: 0 prunes finished work when the store is taken (SQLite: when it opens; PostgreSQL: when a client takes the lead of the group)',
  async (t, store) => {
    const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
    const prefix = unique('prune')
    const first = storeClient(t, emu, store, { prefix, batch: { jobNamePrefix: `${prefix}-a` } })
    await first.send(claudeCommand('to be pruned'))
    await first.close()
    first.destroy()
    const second = storeClient(t, emu, store, {
      prefix,
      options: { retentionDays: 0 },
      batch: { jobNamePrefix: `${prefix}-b` },
    })
    await store.ready(second)
    t.deepEqual(await second.jobs(), [])
    t.true(claudeText(await second.send(claudeCommand('to be pruned'))).includes('to be pruned'))
    t.is((await jobsNamed(bedrock, `${prefix}-b`)).length, 1, 'sent again after the pruning')
  },
)

storeTest(
  'a second client on the same store: on SQLite it is refused with JournalLockedException naming the file, in this process or another; on PostgreSQL it joins the group, one client leads, and one job answers both',
  async (t, store, kind) => {
    const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
    const prefix = unique('second')
    const batch = { batchTimeout: 1.5, jobNamePrefix: `${prefix}-g` }
    const first = storeClient(t, emu, store, { prefix, batch })
    if (kind.name === 'sqlite') {
      const err = t.throws(() => storeClient(t, emu, store, { prefix, batch }), { name: 'JournalLockedException' })
      t.true(err.message.includes(store.location), err.message)
      // Another process: the child exits with the error.
      const other = startJournalChild(childConfig(emu, store, prefix, { count: 1 }))
      t.teardown(() => other.child.kill('SIGKILL'))
      const out = await other.exited
      t.not(out.code, 0)
      t.regex(out.stderr(), /JournalLockedException/)
      t.true(out.stderr().includes(store.location))
      // The first client is not disturbed.
      t.true(claudeText(await first.send(claudeCommand('still mine'))).includes('still mine'))
      return
    }
    const second = storeClient(t, emu, store, { prefix, batch })
    await waitFor('one of the two to lead', () => first.stats().leader || second.stats().leader)
    t.true(first.stats().leader !== second.stats().leader, 'exactly one leads')
    const [a, b] = await Promise.all([
      first.send(claudeCommand('asked by the first')),
      second.send(claudeCommand('asked by the second')),
    ])
    t.true(claudeText(a).includes('asked by the first'))
    t.true(claudeText(b).includes('asked by the second'))
    t.is(a.$metadata.requestId.split('#')[0], b.$metadata.requestId.split('#')[0], 'one job answered both')
    t.is((await jobsNamed(bedrock, `${prefix}-g`)).length, 1)
  },
)

// ---------------------------------------------------------------------------
// Without a store

test("results() without a store is a clear error; jobs() lists this run's jobs", async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: batchOptions(emu, unique('nostore')),
  })
  t.teardown(() => client.destroy())
  await client.send(claudeCommand('hello'))
  const jobs = await client.jobs()
  t.is(jobs.length, 1)
  t.like(jobs[0], { modelId: CLAUDE, totalRecordCount: 1 })
  const it = client.results(jobs[0].jobArn)
  await t.throwsAsync(it.next(), { name: 'ValidationException', message: /journal/ })
})
