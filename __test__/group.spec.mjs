// Several processes sharing one group of the PostgreSQL store, against the emulator: one job for
// everybody's requests, the leader killed (while its jobs run, and between create-sent and
// ARN-stored), maxConcurrentJobs for the group, and the server restarted mid-run. Each process is
// a child running fixtures/group-child.mjs. Needs BEDROCK_BATCH_TEST_PG_URL (.ci/test starts a
// server); without it these tests fail, unless BEDROCK_BATCH_SKIP_PG=1, where each logs that it
// was skipped.

import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import {
  BatchInferenceClient,
  claudeCommand,
  listJobs,
  PG_URL,
  pgTest,
  startEmu,
  startScript,
  unique,
  waitFor,
} from './helpers.mjs'

const CHILD = fileURLToPath(new URL('./fixtures/group-child.mjs', import.meta.url))
const PG_SCRIPT = fileURLToPath(new URL('../.ci/postgres.sh', import.meta.url))

/** Starts one client process of the group. */
function startChild(t, cfg) {
  const { child, events, exited, stderr } = startScript(CHILD, cfg, { stdin: 'pipe' })
  t.teardown(() => child.kill('SIGKILL'))
  const has = (name) => events.find((e) => e.event === name)
  return {
    child,
    exited,
    has,
    leads: () => events.filter((e) => e.event === 'leader').at(-1)?.leading === true,
    go: () => child.stdin.write('go\n'),
    async done(what = 'its answers', timeoutMs = 60_000) {
      return waitFor(
        `child ${cfg.index}: ${what}`,
        () => has('done') || (child.exitCode !== null && !has('done') ? fail(child, stderr()) : false),
        {
          timeoutMs,
        },
      )
    },
  }
}

function fail(child, stderr) {
  throw new Error(`the child exited (${child.exitCode}) before it was done: ${stderr.slice(-2000)}`)
}

function baseConfig(emu, group, prefix, over = {}) {
  return {
    store: { url: PG_URL, group, electionInterval: 0.2 },
    endpoints: emu.endpoints,
    region: emu.region,
    credentials: emu.credentials,
    bucket: emu.bucket,
    prefix,
    maxBatchSize: 1000,
    batchTimeout: 2,
    ...over,
  }
}

const mine = async (bedrock, prefix) =>
  (await listJobs(bedrock)).filter((j) => j.inputDataConfig.s3InputDataConfig.s3Uri.includes(`/${prefix}/`))

pgTest.serial(
  '4 processes × 250 requests with maxBatchSize 1,000: one job of 1,000 records, and each process gets its own answers',
  async (t) => {
    const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
    const group = unique('grp-one')
    const prefix = unique('grpone')
    const children = [0, 1, 2, 3].map((index) =>
      startChild(t, { ...baseConfig(emu, group, prefix), index, count: 250, barrier: true }),
    )
    await waitFor(
      '4 ready clients, one of them leading',
      () => children.every((c) => c.has('ready')) && children.some((c) => c.leads()),
      {
        timeoutMs: 30_000,
      },
    )
    t.is(children.filter((c) => c.leads()).length, 1, 'one leader')
    for (const c of children) c.go()
    const results = await Promise.all(children.map((c) => c.done()))
    for (const r of results) {
      t.is(r.right, 250, JSON.stringify(r))
      t.deepEqual(r.errors, [])
    }
    const jobs = await mine(bedrock, prefix)
    t.is(jobs.length, 1, 'one job for the group')
    t.deepEqual(
      results.map((r) => r.jobArns),
      [0, 1, 2, 3].map(() => [jobs[0].jobArn]),
      'every process was answered by that job',
    )
    const job = await waitFor('the job to report its counts', async () => {
      const [j] = await mine(bedrock, prefix)
      return j.status === 'Completed' && j
    })
    t.is(job.jobArn, jobs[0].jobArn)
  },
)

pgTest.serial(
  'the leader killed with SIGKILL while its jobs run: another process takes over, every answer arrives, and no job is created again',
  async (t) => {
    const { emu, bedrock } = await startEmu(t, { minRecords: 1, timing: { stageMs: 300, perRecordMs: 10 } })
    const group = unique('grp-kill')
    const prefix = unique('grpkill')
    const cfg = (index) => ({
      ...baseConfig(emu, group, prefix, { maxBatchSize: 100, batchTimeout: 0.3 }),
      index,
      count: 100,
      barrier: true,
    })
    const children = [0, 1, 2].map((index) => startChild(t, cfg(index)))
    await waitFor(
      '3 ready clients, one leading',
      () => children.every((c) => c.has('ready')) && children.some((c) => c.leads()),
      { timeoutMs: 30_000 },
    )
    for (const c of children) c.go()
    const created = await waitFor('3 jobs at the emulator', async () => {
      const jobs = await mine(bedrock, prefix)
      return jobs.length === 3 && jobs
    })
    t.true(
      created.every((j) => !['Completed', 'PartiallyCompleted', 'Failed'].includes(j.status)),
      'the jobs still run when the leader dies',
    )
    const leader = children.find((c) => c.leads())
    const killed = children.indexOf(leader)
    leader.child.kill('SIGKILL')
    await leader.exited
    const rest = children.filter((c) => c !== leader)
    await waitFor('another process to take the lead', () => rest.some((c) => c.leads()), { timeoutMs: 15_000 })
    for (const r of await Promise.all(rest.map((c) => c.done()))) {
      t.is(r.right, 100, JSON.stringify(r))
      t.deepEqual(r.errors, [])
    }
    // The killed process's requests were in those jobs too: sent again, they resolve from the store.
    const again = startChild(t, { ...cfg(3), from: killed, barrier: false })
    const r = await again.done()
    t.is(r.right, 100, JSON.stringify(r))
    t.true(
      r.jobArns.every((arn) => created.some((j) => j.jobArn === arn)),
      'answered by the jobs the dead leader created',
    )
    const after = await mine(bedrock, prefix)
    t.deepEqual(after.map((j) => j.jobArn).sort(), created.map((j) => j.jobArn).sort(), 'the job list is unchanged')
  },
)

pgTest.serial(
  'the leader killed between create-sent and ARN-stored: the next leader creates again with the same token and gets the same job',
  async (t) => {
    // The emulator creates the job at once but answers the create a minute later.
    const { emu, bedrock } = await startEmu(t, { minRecords: 1, createReplyDelayMs: 60_000, timing: { stageMs: 50 } })
    const group = unique('grp-token')
    const prefix = unique('grptoken')
    const cfg = (index) => ({
      ...baseConfig(emu, group, prefix, { maxBatchSize: 100, batchTimeout: 0.5 }),
      index,
      count: 50,
      barrier: true,
    })
    const first = startChild(t, cfg(0))
    await waitFor('the first process to lead', () => first.leads(), { timeoutMs: 30_000 })
    const second = startChild(t, cfg(1))
    await waitFor('the second process to be ready', () => second.has('ready'), { timeoutMs: 30_000 })
    t.false(second.leads())
    first.go()
    second.go()
    const [job] = await waitFor('the job to exist at the emulator', async () => {
      const jobs = await mine(bedrock, prefix)
      return jobs.length > 0 && jobs
    })
    first.child.kill('SIGKILL')
    await first.exited
    const r = await second.done('its answers from the job created before the kill')
    t.is(r.right, 50, JSON.stringify(r))
    t.deepEqual(r.jobArns, [job.jobArn])
    const jobs = await mine(bedrock, prefix)
    t.is(jobs.length, 1, 'the create sent again returned the same job')
    t.is(jobs[0].jobArn, job.jobArn)
  },
)

pgTest.serial(
  'maxConcurrentJobs 2 across 3 processes with 6 batches: never more than 2 jobs at once at the emulator',
  async (t) => {
    const { emu, bedrock } = await startEmu(t, { minRecords: 1, timing: { stageMs: 150, perRecordMs: 3 } })
    const group = unique('grp-max')
    const prefix = unique('grpmax')
    const cfg = (index) => ({
      ...baseConfig(emu, group, prefix, { maxBatchSize: 100, batchTimeout: 0.3, maxConcurrentJobs: 2 }),
      index,
      count: 200,
      barrier: true,
    })
    const children = [0, 1, 2].map((index) => startChild(t, cfg(index)))
    await waitFor(
      '3 ready clients, one leading',
      () => children.every((c) => c.has('ready')) && children.some((c) => c.leads()),
      { timeoutMs: 30_000 },
    )
    for (const c of children) c.go()
    let most = 0
    let sampling = true
    const samples = (async () => {
      while (sampling) {
        const running = (await mine(bedrock, prefix)).filter(
          (j) => !['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired'].includes(j.status),
        )
        most = Math.max(most, running.length)
        await new Promise((r) => setTimeout(r, 15))
      }
    })()
    const results = await Promise.all(children.map((c) => c.done('its answers', 120_000)))
    sampling = false
    await samples
    for (const r of results) t.is(r.right, 200, JSON.stringify(r))
    t.is((await mine(bedrock, prefix)).length, 6, '6 batches of 100')
    t.is(most, 2, 'two jobs ran at once, never more')
  },
)

/** A PostgreSQL server of the test's own (so that stopping it disturbs no other test); `null` after failing the test. */
function privateServer(t) {
  try {
    execFileSync('bash', [PG_SCRIPT, 'bindir'], { stdio: 'pipe' })
  } catch {
    t.fail('PostgreSQL binaries were not found (.ci/postgres.sh bindir): this test needs a server of its own to stop')
    return null
  }
  const dir = mkdtempSync(join(tmpdir(), 'bbb-pg-own-'))
  const url = execFileSync('bash', [PG_SCRIPT, 'start', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    .trim()
    .split('\n')
    .at(-1)
  t.teardown(() => execFileSync('bash', [PG_SCRIPT, 'stop', dir], { stdio: 'ignore' }))
  return {
    url,
    restart: () => execFileSync('bash', [PG_SCRIPT, 'restart', dir], { stdio: 'ignore' }),
    stop: () => execFileSync('bash', [PG_SCRIPT, 'stop', dir], { stdio: 'ignore' }),
  }
}

pgTest.serial(
  'the database restarted mid-run: clients reconnect and every request is answered, with no job created twice',
  async (t) => {
    const server = privateServer(t)
    if (!server) return
    const { url } = server
    const { emu, bedrock } = await startEmu(t, { minRecords: 1, timing: { stageMs: 400, perRecordMs: 10 } })
    const group = unique('grp-restart')
    const prefix = unique('grprestart')
    const cfg = (index) => ({
      ...baseConfig(emu, group, prefix, { maxBatchSize: 100, batchTimeout: 0.3 }),
      store: { url, group, electionInterval: 0.2, outageTimeout: 60 },
      index,
      count: 150,
      barrier: true,
    })
    const children = [0, 1].map((index) => startChild(t, cfg(index)))
    await waitFor(
      '2 ready clients, one leading',
      () => children.every((c) => c.has('ready')) && children.some((c) => c.leads()),
      { timeoutMs: 30_000 },
    )
    for (const c of children) c.go()
    await waitFor('jobs running at the emulator', async () => (await mine(bedrock, prefix)).length >= 2)
    server.restart()
    const results = await Promise.all(children.map((c) => c.done('its answers after the restart', 120_000)))
    for (const r of results) {
      t.is(r.right, 150, JSON.stringify(r))
      t.deepEqual(r.errors, [])
    }
    const jobs = await mine(bedrock, prefix)
    t.is(jobs.length, 3, '300 requests in batches of 100: no job was created twice')
    t.is(new Set(jobs.map((j) => j.jobName)).size, 3)
  },
)

pgTest.serial(
  'the database gone longer than outageTimeout: waiting callers reject with StoreUnavailableException naming host and port',
  async (t) => {
    const server = privateServer(t)
    if (!server) return
    const { emu, bedrock } = await startEmu(t, { minRecords: 1, timing: { stageMs: 2000 } })
    const prefix = unique('grpgone')
    const client = new BatchInferenceClient({
      region: emu.region,
      credentials: emu.credentials,
      endpoints: emu.endpoints,
      store: { url: server.url, group: unique('grp-gone'), electionInterval: 0.2, outageTimeout: 2 },
      batch: {
        s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
        s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
        roleArn: 'arn:aws:iam::123456789012:role/BedrockBatch',
        maxBatchSize: 100,
        minBatchSize: 1,
        batchTimeout: 0.2,
        pollInterval: 0.05,
      },
    })
    t.teardown(() => client.destroy())
    const sends = Array.from({ length: 10 }, (_, i) =>
      client.send(claudeCommand(`question ${i}`)).then(
        () => null,
        (e) => e,
      ),
    )
    await waitFor('the job to run at the emulator', async () => (await mine(bedrock, prefix)).length === 1)
    // The outage starts as the server begins to stop (its sessions end then), not once the stop
    // command has returned: measured from before it, as a caller would see it.
    const stopped = performance.now()
    server.stop()
    const errors = await Promise.all(sends)
    const waited = performance.now() - stopped
    for (const e of errors) {
      t.is(e?.name, 'StoreUnavailableException', String(e))
    }
    const port = new URL(server.url).port
    t.true(errors[0].message.includes(`127.0.0.1:${port}`), errors[0].message)
    t.false(errors[0].message.includes(decodeURIComponent(new URL(server.url).password)), 'never the password')
    t.true(waited >= 1500, `callers waited through the outage first (${Math.round(waited)} ms)`)
    t.true(waited < 15_000, `then rejected (${Math.round(waited)} ms)`)
  },
)
