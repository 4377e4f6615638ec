// `bedrock-batch-bridge jobs list|show|stop|results` against the emulator, through the AWS
// endpoint variables, as a user would point it at any endpoint.

import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

import { claudeCommand, getJob, makeClient, settle, startEmu, unique, waitFor } from './helpers.mjs'

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url))

function env(emu) {
  return {
    ...process.env,
    AWS_ENDPOINT_URL_BEDROCK: emu.endpoints.bedrock,
    AWS_ENDPOINT_URL_S3: emu.endpoints.s3,
    AWS_ACCESS_KEY_ID: emu.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: emu.credentials.secretAccessKey,
    AWS_REGION: emu.region,
    AWS_EC2_METADATA_DISABLED: 'true',
  }
}

// Starts the CLI; `done` resolves with its exit code and output, `stderrMatches(re)` when its
// standard error so far matches `re` (or rejects if it exits first).
function start(emu, args) {
  const child = spawn(process.execPath, [CLI, 'jobs', ...args], { env: env(emu) })
  let stdout = ''
  let stderr = ''
  const watchers = []
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d
  })
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d
    for (const w of watchers.splice(0))
      if (w.re.test(stderr)) w.resolve(stderr)
      else watchers.push(w)
  })
  const done = new Promise((resolve) =>
    child.on('close', (code) => {
      for (const w of watchers.splice(0))
        w.reject(new Error(`the CLI exited (${code}) before its stderr matched ${w.re}: ${stderr}`))
      resolve({ code, stdout, stderr })
    }),
  )
  const stderrMatches = (re) =>
    new Promise((resolve, reject) => {
      if (re.test(stderr)) resolve(stderr)
      else watchers.push({ re, resolve, reject })
    })
  return { done, stderrMatches }
}

const run = (emu, args) => start(emu, args).done

test('jobs list, show and results: the joined JSONL has one line per record, in input order, missing ones marked', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const prefix = unique('clijobs')
  const { client } = makeClient(t, emu, { batch: { minBatchSize: 1, maxBatchSize: 10, jobNamePrefix: prefix } })
  const prompts = ['first question', 'second [[error:400]]', 'third [[missing]]', 'fourth question']
  const outcomes = await Promise.all(prompts.map((p) => settle(client.send(claudeCommand(p), {}))))
  t.is(outcomes.filter((o) => o.ok).length, 2)
  const [job] = client.stats().jobs

  const listed = await run(emu, ['list', '--json', '--name-contains', prefix])
  t.is(listed.code, 0, listed.stderr)
  const jobs = JSON.parse(listed.stdout)
  t.true(jobs.length >= 1)
  t.true(jobs.some((j) => j.jobArn === job.jobArn && j.jobName.startsWith(prefix)))

  const shown = await run(emu, ['show', job.jobArn, '--json'])
  t.is(shown.code, 0, shown.stderr)
  t.like(JSON.parse(shown.stdout), { jobArn: job.jobArn, modelId: job.modelId, status: job.status })
  const text = await run(emu, ['show', job.jobArn])
  t.regex(text.stdout, new RegExp(job.status))

  // The first job's records were resubmitted ([[missing]] with maxAttempts 2): look at the first one.
  const dir = mkdtempSync(join(tmpdir(), 'bbb-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = join(dir, 'results.jsonl')
  const res = await run(emu, ['results', job.jobArn, '--out', out, '--json'])
  t.is(res.code, 0, res.stderr)
  const lines = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.is(lines.length, 4)
  const text0 = (l) => l.modelInput.messages[0].content
  t.deepEqual(lines.map(text0), prompts)
  t.truthy(lines[0].modelOutput)
  t.truthy(lines[1].error)
  t.is(lines[2].modelOutput, undefined)
  t.regex(lines[2].error.errorMessage, /no output line/)
  t.like(JSON.parse(res.stdout), { records: 4, succeeded: 2, failed: 1, missing: 1 })

  // To stdout.
  const piped = await run(emu, ['results', job.jobArn])
  t.is(piped.stdout.trim().split('\n').length, 4)
  t.regex(piped.stderr, /4 records: 2 succeeded, 1 failed, 1 without output/)
})

test('jobs stop stops a running job, and show --wait follows it to its end', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
  const { client } = makeClient(t, emu, { batch: { minBatchSize: 1 } })
  const pending = settle(client.send(claudeCommand('runs until stopped [[job:slow]]')))
  const job = await waitFor('the job to run', async () => {
    const j = client.stats().jobs[0]
    return j && (await getJob(bedrock, j.jobArn)).status === 'InProgress' && j
  })
  const waiting = start(emu, ['show', job.jobArn, '--wait', '--poll-interval', '0.05', '--json'])
  // Stop only once the waiting CLI has reported the running job, or it might start after the stop.
  await waiting.stderrMatches(/InProgress/)
  const stopped = await run(emu, ['stop', job.jobArn, '--json'])
  t.is(stopped.code, 0, stopped.stderr)
  t.true(['Stopping', 'Stopped'].includes(JSON.parse(stopped.stdout).status))
  const waited = await waiting.done
  t.is(waited.code, 0, waited.stderr)
  t.is(JSON.parse(waited.stdout).status, 'Stopped')
  t.regex(waited.stderr, /^InProgress /m, 'progress lines while waiting')
  const o = await pending
  t.false(o.ok)
  t.is(o.error.name, 'BatchJobFailedException')
})

test('jobs: unknown ids, subcommands and options fail with a clear message; --help works', async (t) => {
  const { emu } = await startEmu(t)
  const missing = await run(emu, ['show', 'arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghijkl'])
  t.is(missing.code, 2)
  t.regex(missing.stderr, /ResourceNotFoundException/)
  const bad = await run(emu, ['frobnicate'])
  t.is(bad.code, 2)
  t.regex(bad.stderr, /unknown jobs command/)
  const noId = await run(emu, ['results'])
  t.regex(noId.stderr, /needs a job ARN or id/)
  const badOpt = await run(emu, ['list', '--max', 'zero'])
  t.regex(badOpt.stderr, /--max needs a whole number/)
  const help = await run(emu, ['--help'])
  t.is(help.code, 0)
  t.regex(help.stdout, /jobs results <jobArn\|jobId>/)
})
