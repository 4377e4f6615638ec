// Adopting orphaned jobs (client.adopt): a job created by a process killed without a journal is
// found by its name prefix (or ARN), recorded in a new client's journal and polled; its answers
// are kept and read back with results(), and the same content sent again resolves from it with
// no new job. Jobs this package did not write are left alone with why. Real AWS SDK clients
// against the emulator; the orphaning process is a real child process, killed with SIGKILL.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'
import test from 'ava'

import {
  BatchInferenceClient,
  CLAUDE,
  claudeBody,
  createJob,
  INDEX_JS,
  InvokeModelCommand,
  PG_URL,
  pgTest,
  putJsonl,
  ROLE_ARN,
  startEmu,
  unique,
} from './helpers.mjs'

function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bbb-adopt-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function clientOptions(emu, prefix, extra = {}) {
  return {
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.1,
      pollInterval: 0.05,
      jobNamePrefix: prefix,
    },
    ...extra,
  }
}

const invoke = (text) => new InvokeModelCommand({ modelId: CLAUDE, body: JSON.stringify(claudeBody(text)) })

/** The emulator's jobs whose name contains `prefix`. */
async function jobsNamed(bedrock, prefix) {
  const out = await bedrock.send(new ListModelInvocationJobsCommand({ nameContains: prefix }))
  return out.invocationJobSummaries ?? []
}

/** Polls `check` every 50 ms until it gives a truthy value, for at most `ms`. */
async function until(what, check, ms = 20_000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * A child process that sends `prompts` through a client without a journal, killed (SIGKILL) as
 * soon as the emulator shows its job: the job is orphaned, as a crashed script leaves it.
 */
async function orphanJob(t, emu, bedrock, prefix, prompts) {
  const script = `
    const { BatchInferenceClient, InvokeModelCommand } = require(${JSON.stringify(INDEX_JS)})
    const client = new BatchInferenceClient(JSON.parse(process.env.ADOPT_OPTIONS))
    for (const p of JSON.parse(process.env.ADOPT_PROMPTS))
      client.send(new InvokeModelCommand({ modelId: ${JSON.stringify(CLAUDE)}, body: p })).catch(() => {})
    setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['-e', script], {
    env: {
      ...process.env,
      ADOPT_OPTIONS: JSON.stringify(clientOptions(emu, prefix)),
      ADOPT_PROMPTS: JSON.stringify(prompts.map((p) => JSON.stringify(claudeBody(p)))),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => child.kill('SIGKILL'))
  const [job] = await until('the child process to create its job', async () => {
    const jobs = await jobsNamed(bedrock, prefix)
    if (child.exitCode !== null) throw new Error(`the child process ended early: ${stderr}`)
    return jobs.length > 0 && jobs
  })
  child.kill('SIGKILL')
  t.like(await exited, { signal: 'SIGKILL' })
  return job
}

test('a job left by a process killed without a journal is adopted: its answers are read, and the same content sent again makes no new job', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1, slowJobSeconds: 2 })
  const prefix = unique('adopt')
  const prompts = ['first [[job:slow]]', 'second [[job:slow]]', 'first [[job:slow]]']
  const since = Date.now()
  const orphan = await orphanJob(t, emu, bedrock, prefix, prompts)
  t.not(orphan.status, 'Completed', 'the job still runs when its process dies')

  const path = join(tempDir(t), 'journal.db')
  const client = new BatchInferenceClient(clientOptions(emu, prefix, { journal: { path } }))
  t.teardown(() => client.destroy())
  const found = await client.adopt({ namePrefix: prefix, since: new Date(since) })
  t.is(found.length, 1)
  t.like(found[0], { jobArn: orphan.jobArn, adopted: true, records: 3, keyed: 3, modelId: CLAUDE })
  t.is(found[0].reason, undefined)
  t.true(['Submitted', 'Validating', 'Scheduled', 'InProgress'].includes(found[0].status), found[0].status)

  const again = await client.adopt({ jobArn: orphan.jobArn })
  t.like(again[0], { jobArn: orphan.jobArn, adopted: false })
  t.regex(again[0].reason, /in the store already/)

  // The same prompts sent again (one twice, as before) join the adopted job's records.
  const answers = await Promise.all(prompts.map((p) => client.send(invoke(p))))
  for (const a of answers) {
    t.true(a.$metadata.requestId.startsWith(`${orphan.jobArn}#R`), a.$metadata.requestId)
    t.is(JSON.parse(Buffer.from(a.body).toString()).type, 'message')
  }
  t.is(
    new Set(answers.map((a) => a.$metadata.requestId)).size,
    3,
    'each send its own record: the repeat its own occurrence',
  )
  await client.close()

  const results = []
  for await (const r of client.results(orphan.jobArn)) results.push(r)
  t.is(results.length, 3)
  t.true(
    results.every((r) => r.output && !r.error && /^R\d+$/.test(r.recordId)),
    JSON.stringify(results),
  )
  t.is((await jobsNamed(bedrock, prefix)).length, 1, 'no new job')
  const jobs = await client.jobs()
  t.deepEqual(
    jobs.map((j) => [j.jobArn, j.status]),
    [[orphan.jobArn, 'Completed']],
  )

  // A later process with the journal: the same content resolves from it, no call at all.
  const later = new BatchInferenceClient(clientOptions(emu, prefix, { journal: { path } }))
  t.teardown(() => later.destroy())
  const replay = await later.send(invoke('second [[job:slow]]'))
  t.true(replay.$metadata.requestId.startsWith(`${orphan.jobArn}#R`))
  await later.close()
  t.is((await jobsNamed(bedrock, prefix)).length, 1, 'still no new job')
})

test('a job this package did not write is left alone with why; adopt() needs a journal and a clear target', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t, { minRecords: 1 })
  const prefix = unique('foreign')
  await putJsonl(s3, emu.bucket, `${prefix}/other/input.jsonl`, [
    { recordId: 'CALL0000001', modelInput: claudeBody('made by another tool') },
  ])
  const foreign = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${prefix}/other/`,
    outputUri: `s3://${emu.bucket}/${prefix}/other-out/`,
  })
  const client = new BatchInferenceClient(
    clientOptions(emu, prefix, { journal: { path: join(tempDir(t), 'journal.db') } }),
  )
  t.teardown(() => client.destroy())
  const [left] = await client.adopt({ jobArn: foreign })
  t.like(left, { jobArn: foreign, adopted: false, records: 0 })
  t.regex(left.reason, /no records\.jsonl|not one this package writes/)
  t.deepEqual(await client.jobs(), [], 'nothing recorded')

  await t.throwsAsync(() => client.adopt({}), { name: 'ValidationException', message: /jobArn or namePrefix/ })
  await t.throwsAsync(() => client.adopt({ jobArn: foreign, namePrefix: 'x' }), { name: 'ValidationException' })
  await t.throwsAsync(() => client.adopt({ namePrefix: 'x', since: 'yesterday' }), {
    name: 'ValidationException',
    message: /since/,
  })
  await t.throwsAsync(
    () => client.adopt({ jobArn: 'arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/zzzzzzzzzzzz' }),
    {
      name: 'ResourceNotFoundException',
    },
  )

  const noJournal = new BatchInferenceClient(clientOptions(emu, prefix))
  t.teardown(() => noJournal.destroy())
  await t.throwsAsync(() => noJournal.adopt({ jobArn: foreign }), { name: 'ValidationException', message: /journal/ })
})

pgTest(
  "in a PostgreSQL group, a member adopts an orphaned job and the group's leader polls it; its answers are the group's",
  async (t) => {
    const { emu, bedrock } = await startEmu(t, { minRecords: 1, slowJobSeconds: 2 })
    const prefix = unique('gadopt')
    const prompts = ['alpha [[job:slow]]', 'beta [[job:slow]]', 'gamma [[job:slow]]']
    const orphan = await orphanJob(t, emu, bedrock, prefix, prompts)
    const store = { url: PG_URL, group: unique('grp-adopt'), electionInterval: 0.2 }
    const leader = new BatchInferenceClient(clientOptions(emu, prefix, { store }))
    t.teardown(() => leader.destroy())
    await until('a leader', () => leader.stats().leader === true)
    const member = new BatchInferenceClient(clientOptions(emu, prefix, { store }))
    t.teardown(() => member.destroy())
    await until('a member', () => member.stats().leader === false)

    const [found] = await member.adopt({ namePrefix: prefix })
    t.like(found, { jobArn: orphan.jobArn, adopted: true, records: 3, keyed: 3 })
    // The member sends the same content: it joins the records the leader took up.
    const answers = await Promise.all(prompts.map((p) => member.send(invoke(p))))
    for (const a of answers) t.true(a.$metadata.requestId.startsWith(`${orphan.jobArn}#R`), a.$metadata.requestId)
    const jobs = await until('the adopted job to end in the store', async () => {
      const list = await member.jobs()
      return list.length === 1 && list[0].status === 'Completed' && list
    })
    t.is(jobs[0].jobArn, orphan.jobArn)
    const results = []
    for await (const r of member.results(orphan.jobArn)) results.push(r)
    t.is(results.length, 3)
    t.true(results.every((r) => r.output))
    t.is((await jobsNamed(bedrock, prefix)).length, 1, 'no new job')
    t.like((await leader.adopt({ jobArn: orphan.jobArn }))[0], { adopted: false })
  },
)

const CLI = new URL('../cli.js', import.meta.url).pathname

/** Runs the CLI against the emulator: its exit code, stdout and stderr. */
function cli(emu, args) {
  const env = {
    ...process.env,
    AWS_ENDPOINT_URL_BEDROCK: emu.endpoints.bedrock,
    AWS_ENDPOINT_URL_S3: emu.endpoints.s3,
    AWS_REGION: emu.region,
    AWS_ACCESS_KEY_ID: emu.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: emu.credentials.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
  }
  const child = spawn(process.execPath, [CLI, 'jobs', ...args], { env })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
}

test('jobs adopt --name-prefix --wait records an orphaned job in a journal with its answers; jobs list --journal shows it', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1, slowJobSeconds: 2 })
  const prefix = unique('cliadopt')
  const orphan = await orphanJob(t, emu, bedrock, prefix, ['one [[job:slow]]', 'two [[job:slow]]'])
  const journal = join(tempDir(t), 'journal.db')

  const usage = await cli(emu, ['adopt', '--journal', journal])
  t.is(usage.code, 2)
  t.regex(usage.stderr, /a job ARN or id, or --name-prefix/)
  const badSince = await cli(emu, ['adopt', '--journal', journal, '--name-prefix', prefix, '--since', 'soon'])
  t.is(badSince.code, 2)
  t.regex(badSince.stderr, /--since needs an ISO 8601 time/)

  const adopted = await cli(emu, [
    'adopt',
    '--journal',
    journal,
    '--name-prefix',
    prefix,
    '--since',
    '2026-01-01T00:00:00Z',
    '--wait',
    '--poll-interval',
    '0.1',
  ])
  t.is(adopted.code, 0, adopted.stderr)
  t.regex(adopted.stdout, new RegExp(`adopted +${prefix}\\S* +\\S+ +2 records \\(2 keyed by content\\)`))
  t.true(adopted.stdout.includes(orphan.jobArn))
  t.regex(adopted.stdout, /Completed +\S+: 2 answers, 0 errors kept in /)

  const listed = await cli(emu, ['list', '--journal', journal, '--json'])
  t.is(listed.code, 0, listed.stderr)
  t.deepEqual(
    JSON.parse(listed.stdout).map((j) => [j.jobArn, j.status, j.successRecordCount]),
    [[orphan.jobArn, 'Completed', 2]],
  )
  const again = await cli(emu, ['adopt', orphan.jobArn, '--journal', journal])
  t.is(again.code, 0, again.stderr)
  t.regex(again.stdout, /left +\S+: it is in the store already/)
})
