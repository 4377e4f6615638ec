// `npm run bench:chaos`: the chaos suite. Rounds of a run of R requests with the SQLite journal in a
// child process (bench/chaos-worker.mjs), killed with SIGKILL at random moments and restarted on the
// same journal until it finishes, under fault storms from the emulator: S3 503 storms (the next N
// S3 requests fail), throttled CreateModelInvocationJob calls (the next N creates) with a job quota
// lowered to 2, and in every round per-record errors, missing and malformed output lines (markers in
// some prompts). A round's storm begins at a random (seeded) moment of the round, armed with
// `emu.faults()` (`POST /_emulator/faults`) while the worker runs; the table says when (`storm at
// ms`). Each round has an emulator of its own, so its jobs and its faults are that round's alone.
// With --pg-rounds N, N more rounds run a PostgreSQL group of two members (BENCH_PG_URL, else
// BEDROCK_BATCH_TEST_PG_URL) under an S3 storm, its leader killed at random moments.
// With --serve-rounds N, N more rounds run `serve` as a child process with a SQLite journal on a
// fixed port, SIGKILLed (1 to --kills times, each once it holds calls) and restarted on the same port
// and journal while boto3 (streams too), the AWS CLI and the OpenAI SDK wait on it with their own
// retries (bench/chaos-serve.mjs); every call must get its own answer, once, from one job (a stream
// cut by a kill after its response began, which no SDK retries, is counted apart as `cut`).
// Usage: node bench/chaos.mjs [--rounds 20] [--requests 5000] [--kills 3] [--batch 1000] [--seed N]
//   [--life-limit 120] [--pg-rounds 0]   (life limit: seconds before a life counts as hung and is killed)
//   [--storm-window MS]   (storms begin at a random moment of their round's first MS milliseconds;
//   default: half the time a life takes)
//   [--serve-rounds 0] [--serve-boto3 40] [--serve-boto3-stream 20] [--serve-cli 4] [--serve-openai 80]
//   [--serve-limit 180]   (calls per serve round: boto3 InvokeModel and Converse each, boto3
//   InvokeModelWithResponseStream and ConverseStream each, AWS CLI invoke-model and converse each,
//   OpenAI chat completions; serve limit: seconds before a round's waiting calls count as hung)
// It prints one table row per round and a totals row; it exits 1 when anything was lost, answered
// twice, wrong, paid twice or hung. `runChaos()` is what __test__/chaos.spec.mjs runs, smaller.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { startEmulator } = require(path.join(root, 'index.js'))
const { BedrockClient, ListModelInvocationJobsCommand } = require('@aws-sdk/client-bedrock')
const { GetObjectCommand, ListObjectsV2Command, S3Client } = require('@aws-sdk/client-s3')

import {
  awsCli,
  boto3Python,
  freePort,
  runAwsCli,
  runBoto3,
  runOpenAI,
  startServe,
  writeServeConfig,
} from './chaos-serve.mjs'

const WORKER = path.join(root, 'bench', 'chaos-worker.mjs')
const PREFIX = 'chaos'

/** A seeded random number generator (mulberry32), so that a round's schedule can be replayed. */
function random(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The faults of round r: kills in every round; in turn, no storm, an S3 storm, a control-plane
 * storm (throttled creates, and a quota of 2 running jobs where the client allows 20), or both. An
 * S3 storm stays below what the engine outlasts on one upload (8 tries of the SDK's 3 attempts):
 * a longer one rejects the batch's callers with ServiceUnavailableException, by design. `stormAt`
 * (0..1) places the storm's beginning in the round (see `armStorm`).
 */
function roundFaults(r, rnd, maxKills) {
  const kind = r % 4
  const control = kind === 2 || kind === 3
  return {
    kills: 1 + Math.floor(rnd() * maxKills),
    s3FailNext: kind === 1 || kind === 3 ? 8 + Math.floor(rnd() * 16) : 0,
    createThrottles: control ? 5 + Math.floor(rnd() * 15) : 0,
    jobQuota: control ? 2 : 20,
    stormAt: rnd(),
  }
}

/**
 * Arms the round's storm on `emu` at a random moment of the round: `faults.stormAt` of `windowMs`
 * (by default the first half of the time a life usually takes, the kills' window), so that it falls
 * in a life still uploading, creating jobs and reading answers (the first life, or the one after a
 * kill: a life that is not killed ends the round, and a storm after its last create throttles none).
 * `stop()` cancels it if it has not begun (the round ended first) and resolves once it is armed;
 * `at()` is when it began (ms since `t0`), null if it did not.
 */
function armStorm(emu, faults, windowMs, t0) {
  let at = null
  let arming = Promise.resolve()
  if (!faults.s3FailNext && !faults.createThrottles) return { stop: async () => {}, at: () => at }
  const arm = {
    s3: { failNext: faults.s3FailNext },
    throttle: { createNext: faults.createThrottles },
    maxConcurrentJobs: faults.jobQuota,
  }
  const timer = setTimeout(
    () => {
      arming = emu.faults(arm).then(() => {
        at = Math.round(performance.now() - t0)
      })
    },
    Math.round(faults.stormAt * windowMs),
  )
  return {
    stop: async () => {
      clearTimeout(timer)
      await arming
    },
    at: () => at,
  }
}

/**
 * Starts one life of the worker; it is killed with SIGKILL by `kill(reason)`, or after `limitMs`
 * (then it hung). `leading()` says whether it last reported that it leads its group. `exited`
 * resolves `{ killed, hung, summary, ms }` (`summary`: its last JSON line, if it finished).
 */
function startLife(cfg, limitMs) {
  const t0 = performance.now()
  const child = spawn(process.execPath, [WORKER, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  let leading = false
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d
    const last = stdout.split('\n').findLast((l) => l.startsWith('{"leader"'))
    if (last) leading = JSON.parse(last).leader
  })
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  let reason = null
  let running = true
  const kill = (why) => {
    if (!running) return
    reason = why
    child.kill('SIGKILL')
  }
  const timer = setTimeout(() => kill('hung'), limitMs)
  const exited = new Promise((resolve) =>
    child.on('close', (code, signal) => {
      running = false
      clearTimeout(timer)
      const line = stdout.split('\n').find((l) => l.startsWith('{"done"'))
      const summary = code === 0 && line ? JSON.parse(line) : null
      if (!summary && !signal) process.stderr.write(`chaos: a life ended with ${code}: ${stderr}\n`)
      resolve({ killed: reason === 'killed', hung: reason === 'hung', summary, ms: performance.now() - t0 })
    }),
  )
  return { kill, exited, leading: () => running && leading, running: () => running }
}

/** One life of a journal's worker, killed after `killAfterMs` when given. */
function life(cfg, killAfterMs, limitMs) {
  const l = startLife(cfg, limitMs)
  if (killAfterMs != null) {
    const timer = setTimeout(() => l.kill('killed'), killAfterMs)
    l.exited.then(() => clearTimeout(timer))
  }
  return l.exited
}

/** The answers files as one Map key → [{ answer, requestId }], one entry per line written. */
function readAnswers(files) {
  const byKey = new Map()
  let text = ''
  for (const file of files) {
    try {
      text += readFileSync(file, 'utf8')
    } catch {}
  }
  for (const line of text.split('\n')) {
    const [key, answer, requestId] = line.split('\t')
    if (!key || !answer) continue
    if (!byKey.has(key)) byKey.set(key, [])
    byKey.get(key).push({ answer, requestId })
  }
  return byKey
}

/** What the client saw: delivered lines, keys never answered, keys with two different answers, wrong answers. */
function judgeAnswers(byKey, requests) {
  let delivered = 0
  let twice = 0
  let wrong = 0
  for (const entries of byKey.values()) {
    delivered += entries.length
    if (new Set(entries.map((e) => e.answer)).size > 1) twice++
    if (entries.some((e) => e.answer.startsWith('wrong:'))) wrong++
  }
  let lost = 0
  for (let i = 0; i < requests; i++) if (!byKey.has(`k-${i}`)) lost++
  return { delivered, lost, twice, wrong }
}

/** Clients of the round's emulator: Bedrock's control plane and S3, with the SDK's retries off. */
function awsClients(emu) {
  const common = { region: emu.region, credentials: emu.credentials, maxAttempts: 1 }
  return {
    bedrock: new BedrockClient({ ...common, endpoint: emu.endpoints.bedrock }),
    s3: new S3Client({ ...common, endpoint: emu.endpoints.s3, forcePathStyle: true }),
  }
}

/** Every job the emulator has (paginated ListModelInvocationJobs). */
async function emulatorJobs(bedrock) {
  const jobs = []
  let nextToken
  do {
    const res = await bedrock.send(new ListModelInvocationJobsCommand({ maxResults: 100, nextToken }))
    jobs.push(...(res.invocationJobSummaries ?? []))
    nextToken = res.nextToken
  } while (nextToken)
  return jobs
}

async function listKeys(s3, bucket, prefix) {
  const keys = []
  let ContinuationToken
  do {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }))
    keys.push(...(res.Contents ?? []).map((o) => o.Key))
    ContinuationToken = res.NextContinuationToken
  } while (ContinuationToken)
  return keys
}

/**
 * Reads every job's output lines: request number → the `jobId#recordId` of each record that
 * answered it (has a `modelOutput`). A request is known by the number in its prompt.
 */
async function answeringRecords(s3, bucket) {
  const byRequest = new Map()
  for (const key of await listKeys(s3, bucket, `${PREFIX}/out/`)) {
    if (!key.endsWith('.out') || key.endsWith('manifest.json.out')) continue
    const jobId = key.split('/').at(-2)
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    for (const line of (await res.Body.transformToString()).split('\n')) {
      const m = line.includes('"modelOutput"') && /Chaos question (\d+):/.exec(line)
      if (!m) continue
      if (!byRequest.has(m[1])) byRequest.set(m[1], [])
      byRequest.get(m[1]).push(`${jobId}#${JSON.parse(line).recordId}`)
    }
  }
  return byRequest
}

/** Requests answered (a `modelOutput`) by more than one job: work Bedrock did, and would bill, twice. */
const answeredByTwoJobs = (byRequest) =>
  [...byRequest.values()].filter((records) => new Set(records.map((r) => r.split('#')[0])).size > 1).length

/**
 * The storms' faults the emulator served in the round, its S3 503s and its throttled creates, as it
 * counts them (`GET /_emulator/faults`); what was armed and not served is disarmed first, so that
 * the checks that follow read S3 in calm.
 */
async function stormsServed(emu) {
  const f = await emu.faults({ s3: { failNext: 0 }, throttle: { createNext: 0 } })
  return { s3503s: f.s3.served, create429s: f.throttle.createServed, jobQuota: f.maxConcurrentJobs }
}

/** Jobs the emulator ran vs what the journal knows: duplicate tokens and jobs the journal never recorded. */
function judgeJobs(jobs, journalJobs) {
  const tokens = new Map()
  for (const j of jobs) tokens.set(j.clientRequestToken, (tokens.get(j.clientRequestToken) ?? 0) + 1)
  const dupTokens = [...tokens.values()].filter((n) => n > 1).length
  const recorded = new Set(journalJobs.map((j) => j.jobArn))
  const untracked = jobs.filter((j) => !recorded.has(j.jobArn)).length
  return { jobs: jobs.length, batches: journalJobs.length, dupTokens, untracked }
}

/**
 * A journal's round: lives killed at random moments until one finishes (each planned kill comes at
 * a random moment of a life that would otherwise run on; a life that finishes first ends the round).
 */
async function journalLives(cfg, faults, opts, rnd) {
  const out = { kills: 0, hung: 0, lives: 0, answerFiles: [cfg.answers], summaries: [] }
  let summary = null
  while (!summary && out.lives < faults.kills + 5) {
    const killAfter = out.kills < faults.kills ? 50 + rnd() * opts.killWindowMs : null
    const l = await life(cfg, killAfter, opts.lifeLimitMs)
    out.lives++
    if (l.killed) out.kills++
    if (l.hung) out.hung++
    summary = l.summary
    if (summary) opts.onLifeMs?.(l.ms)
  }
  out.summaries.push(summary)
  return out
}

/**
 * A PostgreSQL group's round: two members each send half the keys; at random moments the one that
 * leads is killed and started again, until every member has finished.
 */
async function groupLives(cfg, faults, opts, rnd) {
  const half = Math.ceil(opts.requests / 2)
  const members = [0, 1].map((m) => ({
    ...cfg,
    answers: `${cfg.answers}.${m}`,
    from: m * half,
    count: Math.min(half, opts.requests - m * half),
  }))
  const out = { kills: 0, hung: 0, lives: 2, answerFiles: members.map((m) => m.answers), summaries: [null, null] }
  const lives = members.map((m) => startLife(m, opts.lifeLimitMs))
  const restart = async (i) => {
    const l = await lives[i].exited
    if (l.killed) out.kills++
    if (l.hung) out.hung++
    if (l.summary || out.lives >= faults.kills + 8) {
      out.summaries[i] = l.summary
      return
    }
    out.lives++
    lives[i] = startLife(members[i], opts.lifeLimitMs)
    await restart(i)
  }
  const done = Promise.all([0, 1].map(restart))
  // The killer: after a random pause, the member that leads gets SIGKILL.
  for (let planned = faults.kills; planned > 0 && lives.some((l) => l.running()); ) {
    await sleep(50 + rnd() * opts.killWindowMs)
    // No leader at that moment (one was just killed, or none elected yet): the next one.
    let leader = lives.find((l) => l.leading())
    while (!leader && lives.some((l) => l.running())) {
      await sleep(20)
      leader = lives.find((l) => l.leading())
    }
    if (!leader) break
    leader.kill('killed')
    planned--
  }
  await done
  return out
}

/** The union of the jobs the lives that finished read from their journal or group (by ARN). */
function storeJobs(summaries) {
  const byArn = new Map()
  for (const s of summaries) for (const j of s?.jobs ?? []) byArn.set(j.jobArn, j)
  return [...byArn.values()]
}

/** Runs round r (`group`: a PostgreSQL group's instead of a journal's); then judges what happened. */
async function runRound(r, opts, rnd, group = false) {
  // A group's round has an S3 storm (the faults of round 1).
  const faults = roundFaults(group ? 1 : r, rnd, opts.maxKills)
  // No fault at start: the storm begins mid-run.
  const emu = await startEmulator({ profile: 'fast' })
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bbb-chaos-'))
  const t0 = performance.now()
  const storm = armStorm(emu, faults, opts.stormWindowMs ?? opts.killWindowMs / 2, t0)
  let keep = false
  try {
    const cfg = {
      answers: path.join(dir, 'answers.tsv'),
      endpoints: emu.endpoints,
      region: emu.region,
      credentials: emu.credentials,
      bucket: emu.bucket,
      prefix: PREFIX,
      count: opts.requests,
      maxBatchSize: opts.maxBatchSize,
      ...(group
        ? { store: { url: opts.pgUrl, group: `chaos-${opts.seed}-${r}-${process.pid}`, electionInterval: 0.2 } }
        : { journal: path.join(dir, 'journal.db') }),
    }
    const run = await (group ? groupLives : journalLives)(cfg, faults, opts, rnd)
    await storm.stop()
    const answers = judgeAnswers(readAnswers(run.answerFiles), opts.requests)
    const aws = awsClients(emu)
    const storms = await stormsServed(emu)
    const jobs = judgeJobs(await emulatorJobs(aws.bedrock), storeJobs(run.summaries))
    const twoJobs = answeredByTwoJobs(await answeringRecords(aws.s3, emu.bucket))
    const finished = run.summaries.every(Boolean)
    const row = {
      round: group ? `pg ${r + 1}` : r + 1,
      kills: run.kills,
      stormAtMs: storm.at() ?? '-',
      ...storms,
      lives: run.lives,
      requests: opts.requests,
      ...answers,
      ...jobs,
      dupJobs: jobs.dupTokens + twoJobs + jobs.untracked,
      answeredByTwoJobs: twoJobs,
      hung: run.hung + (finished ? 0 : 1),
      failedCalls: run.summaries.map((x) => x?.failedCalls),
      seconds: (performance.now() - t0) / 1000,
    }
    row.ok = !row.lost && !row.twice && !row.wrong && !row.dupJobs && !row.hung
    // A failed round's journal and answers files stay, to look into.
    keep = !row.ok
    if (keep) process.stderr.write(`chaos: round ${row.round} failed; its journal and answers are in ${dir}\n`)
    return row
  } finally {
    await storm.stop()
    emu.stop()
    if (!keep) rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------
// serve rounds: `serve` with a journal SIGKILLed while boto3, the AWS CLI and the OpenAI SDK wait on it

/**
 * The calls of a serve round, numbered 0..n-1 across the callers (each prompt says its number and
 * the round's nonce, so an answer can be told for its own): boto3 InvokeModel, Converse,
 * InvokeModelWithResponseStream and ConverseStream, AWS CLI invoke-model and converse, OpenAI chat
 * completions.
 */
function serveCalls(r, opts) {
  const nonce = `${opts.seed}-${r}-${process.pid}`
  const sizes = {
    boto3Invoke: opts.serveBoto3,
    boto3Converse: opts.serveBoto3,
    boto3InvokeStream: opts.serveBoto3Stream,
    boto3ConverseStream: opts.serveBoto3Stream,
    cliInvoke: opts.serveCli,
    cliConverse: opts.serveCli,
    openai: opts.serveOpenAI,
  }
  const calls = Object.fromEntries(Object.keys(sizes).map((kind) => [kind, []]))
  let i = 0
  for (const [kind, n] of Object.entries(sizes)) {
    for (let k = 0; k < n; k++, i++)
      calls[kind].push({ i, prompt: `Chaos question ${i}: what is ${i} times three? (serve ${kind} ${nonce})` })
  }
  return { calls, count: i, nonce }
}

/**
 * What the callers saw: `delivered` (calls answered with their own answer), `lost` (ended with an
 * error, or never answered by a caller that finished), `wrong` (another prompt's answer), `twice`
 * (a call with two results, or answered by two records of the jobs' output), `hung` (a call still
 * waiting at the round's time limit), `cut` (a stream broken by a kill after its response began:
 * no SDK retries that, so it is counted apart, not as lost), and each caller's retries.
 */
function judgeServeAnswers(results, count, nonce, records, hungCallers) {
  const byCall = new Map()
  for (const res of results) {
    if (!byCall.has(res.i)) byCall.set(res.i, [])
    byCall.get(res.i).push(res)
  }
  const out = { delivered: 0, lost: 0, twice: 0, wrong: 0, hung: 0, cut: 0, errors: [] }
  for (let i = 0; i < count; i++) {
    const got = byCall.get(i) ?? []
    if (got.length === 0) {
      if (hungCallers) out.hung++
      else out.lost++
      continue
    }
    if (got.length > 1 || (records.get(String(i))?.length ?? 0) > 1) out.twice++
    const res = got[0]
    if (res.error && res.cut) {
      out.cut++
      out.errors.push(`${res.kind} #${i} cut after its response began: ${JSON.stringify(res.error).slice(0, 300)}`)
    } else if (res.error) {
      out.lost++
      if (out.errors.length < 5) out.errors.push(`${res.kind} #${i}: ${JSON.stringify(res.error).slice(0, 300)}`)
    } else if (!res.text.includes(`Chaos question ${i}: `) || !res.text.includes(nonce)) out.wrong++
    else out.delivered++
  }
  return out
}

/** The calls serve holds now (queued, and in jobs): its `GET /_bridge/stats`; null if it does not answer. */
async function waitingIn(url) {
  try {
    const res = await fetch(`${url}/_bridge/stats`, { signal: AbortSignal.timeout(1000) })
    const stats = await res.json()
    return stats.queued + stats.inFlight
  } catch {
    return null
  }
}

/** The jobs a journal recorded (`jobs list --journal`, which reads without taking the journal's lock). */
function journalJobs(journal) {
  const r = spawnSync(process.execPath, [path.join(root, 'cli.js'), 'jobs', 'list', '--journal', journal, '--json'], {
    encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`jobs list --journal ${journal}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** Waits (up to `ms`) until every job of the emulator has ended; resolves with them. */
async function jobsEnded(bedrock, ms) {
  const ended = ['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']
  const until = performance.now() + ms
  for (;;) {
    const jobs = await emulatorJobs(bedrock)
    if (jobs.every((j) => ended.includes(j.status)) || performance.now() > until) return jobs
    await sleep(100)
  }
}

/**
 * Serve round r: the emulator, `serve` on a fixed port with a SQLite journal, and every caller
 * sending at once; `serve` is SIGKILLed at 1..maxKills random moments while calls wait, and started
 * again on the same port and journal each time, until every caller has finished (or the round's
 * time limit: its calls still waiting then hung). Then what the callers got and what the emulator
 * ran are judged as a journal round's are.
 */
async function runServeRound(r, opts, rnd) {
  const kills = 1 + Math.floor(rnd() * opts.maxKills)
  const killAt = Array.from({ length: kills }, () => 100 + rnd() * opts.serveKillWindowMs)
  const emu = await startEmulator({ profile: 'fast', minRecords: 10, timing: opts.serveTiming })
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bbb-chaos-serve-'))
  const t0 = performance.now()
  let keep = false
  const lives = []
  try {
    const configFile = writeServeConfig(dir, emu, PREFIX, { minBatchSize: 10, maxBatchSize: opts.serveBatch })
    const port = await freePort()
    const serveOpts = { configFile, port, journal: path.join(dir, 'journal.db') }
    const life = () => {
      const l = startServe(serveOpts)
      lives.push(l)
      return l
    }
    const url = await life().ready
    const { calls, count, nonce } = serveCalls(r, opts)
    const region = emu.region
    const callers = [
      runBoto3({
        url,
        region,
        invoke: calls.boto3Invoke,
        converse: calls.boto3Converse,
        invokeStream: calls.boto3InvokeStream,
        converseStream: calls.boto3ConverseStream,
        workers: opts.serveWorkers,
      }),
      runAwsCli({ url, region, invoke: calls.cliInvoke, converse: calls.cliConverse, dir }),
      runOpenAI({ url, calls: calls.openai, workers: opts.serveWorkers }),
    ]
    let finished = false
    const all = Promise.all(callers.map((c) => c.results)).then((rs) => {
      finished = true
      return rs.flat()
    })
    const limit = setTimeout(() => {
      for (const c of callers) c.stop()
    }, opts.serveLimitMs)
    // The killer: at each planned moment (from when the last life listened), once serve holds calls
    // (queued or in jobs), SIGKILL, and start it again.
    let killed = 0
    const waitingAtKills = []
    for (const ms of killAt) {
      await Promise.race([sleep(ms), all])
      let waiting = await waitingIn(url)
      while (!finished && !waiting) {
        await sleep(20)
        waiting = await waitingIn(url)
      }
      if (finished) break
      waitingAtKills.push(waiting)
      await lives.at(-1).kill('SIGKILL')
      killed++
      await life().ready
    }
    const results = await all
    clearTimeout(limit)
    const hungCallers = performance.now() - t0 >= opts.serveLimitMs
    // The last life stops as a user stops it (SIGTERM, no --drain: what runs is left to the journal).
    const last = await lives.at(-1).kill('SIGTERM')
    const aws = awsClients(emu)
    const emuJobs = await jobsEnded(aws.bedrock, 10_000)
    const journal = journalJobs(serveOpts.journal)
    const jobs = judgeJobs(emuJobs, journal)
    const records = await answeringRecords(aws.s3, emu.bucket)
    const twoJobs = answeredByTwoJobs(records)
    const answers = judgeServeAnswers(results, count, nonce, records, hungCallers)
    const retries = {}
    for (const res of results) retries[res.kind] = (retries[res.kind] ?? 0) + (res.retries ?? 0)
    const row = {
      round: `serve ${r + 1}`,
      kills: killed,
      stormAtMs: '-',
      s3503s: 0,
      create429s: 0,
      jobQuota: 20,
      lives: lives.length,
      requests: count,
      delivered: answers.delivered,
      lost: answers.lost,
      twice: answers.twice,
      wrong: answers.wrong,
      ...jobs,
      dupJobs: jobs.dupTokens + twoJobs + jobs.untracked,
      answeredByTwoJobs: twoJobs,
      hung: answers.hung,
      cut: answers.cut,
      retries,
      waitingAtKills,
      errors: answers.errors,
      seconds: (performance.now() - t0) / 1000,
    }
    row.ok = !row.lost && !row.twice && !row.wrong && !row.dupJobs && !row.hung
    if (last.code !== 0 && last.signal !== 'SIGTERM') row.errors.push(`the last serve exited with ${last.code}`)
    keep = !row.ok
    if (keep) {
      for (const [n, l] of lives.entries())
        writeFileSync(path.join(dir, `serve-${n + 1}.stderr`), (await l.exited).stderr)
      process.stderr.write(
        `chaos: ${row.round} failed (${row.errors.join('; ') || 'see the table'}); its journal and serve logs are in ${dir}\n`,
      )
    }
    return row
  } finally {
    for (const l of lives) await l.kill('SIGKILL')
    emu.stop()
    if (!keep) rmSync(dir, { recursive: true, force: true })
  }
}

const COLUMNS = [
  ['round', 'round'],
  ['kills', 'kills'],
  ['storm at ms', 'stormAtMs'],
  ['S3 503s', 's3503s'],
  ['create 429s', 'create429s'],
  ['job quota', 'jobQuota'],
  ['lives', 'lives'],
  ['requests', 'requests'],
  ['delivered', 'delivered'],
  ['lost', 'lost'],
  ['twice', 'twice'],
  ['wrong', 'wrong'],
  ['jobs', 'jobs'],
  ['batches', 'batches'],
  ['dup jobs', 'dupJobs'],
  ['hung', 'hung'],
  ['s', 'seconds'],
]

const cell = (v) => (typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : String(v))

/** A table row (Markdown) for a round's figures. */
export const tableRow = (row) => `| ${COLUMNS.map(([, k]) => cell(row[k])).join(' | ')} |`

/** The sums of the rounds' figures. */
function totalsOf(rows) {
  const t = { round: 'all' }
  for (const [, k] of COLUMNS.slice(1)) t[k] = rows.reduce((s, r) => s + (r[k] ?? 0), 0)
  t.jobQuota = '-'
  t.stormAtMs = '-'
  t.ok = rows.every((r) => r.ok)
  return t
}

/**
 * Runs the chaos suite: `{ rounds, requests, maxKills, maxBatchSize, seed, lifeLimitMs, log,
 * pgRounds, pgUrl, killWindowMs, stormWindowMs }` (`killWindowMs`: the window of the first kills,
 * in which a life is expected to be still running, before one has finished; `stormWindowMs`: the
 * window a round's storm begins in, half the kills' window by default).
 * Resolves `{ rows, totals, seed }`; `log` gets the table line by line as it goes.
 */
export async function runChaos(options = {}) {
  const opts = {
    rounds: 20,
    requests: 5000,
    maxKills: 3,
    maxBatchSize: 1000,
    seed: Date.now() % 1_000_000,
    lifeLimitMs: 120_000,
    pgRounds: 0,
    serveRounds: 0,
    serveBoto3: 40,
    serveBoto3Stream: 20,
    serveCli: 4,
    serveOpenAI: 80,
    serveWorkers: 16,
    serveBatch: 25,
    serveKillWindowMs: 3000,
    serveLimitMs: 180_000,
    serveTiming: { stageMs: 300, perRecordMs: 2 },
    pgUrl: process.env.BENCH_PG_URL || process.env.BEDROCK_BATCH_TEST_PG_URL,
    log: console.log,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  }
  if (opts.pgRounds && !opts.pgUrl) throw new Error('--pg-rounds needs BENCH_PG_URL (or BEDROCK_BATCH_TEST_PG_URL)')
  // The serve rounds' callers, found before anything starts (a missing one is an error naming what to do).
  if (opts.serveRounds) {
    boto3Python()
    awsCli()
  }
  const rnd = random(opts.seed)
  // Kills land within the time a life takes to finish (the median of those that did so far), so
  // that most hit a run in progress: sending, uploading, creating, polling or reading answers.
  const finished = []
  opts.killWindowMs = options.killWindowMs ?? 2000
  opts.onLifeMs = (ms) => {
    finished.push(ms)
    finished.sort((a, b) => a - b)
    opts.killWindowMs = Math.max(500, finished[finished.length >> 1])
  }
  opts.log(
    `chaos: ${opts.rounds} rounds × ${opts.requests} requests${opts.pgRounds ? ` (and ${opts.pgRounds} of a PostgreSQL group of two, its leader killed)` : ''}${opts.serveRounds ? ` (and ${opts.serveRounds} of serve with a journal, called by boto3 (streams too), the AWS CLI and the OpenAI SDK: ${2 * opts.serveBoto3 + 2 * opts.serveBoto3Stream + 2 * opts.serveCli + opts.serveOpenAI} calls each)` : ''}, up to ${opts.maxKills} SIGKILLs a round, maxBatchSize ${opts.maxBatchSize}, seed ${opts.seed}`,
  )
  opts.log(`| ${COLUMNS.map(([h]) => h).join(' | ')} |`)
  opts.log(`|${COLUMNS.map(() => '---').join('|')}|`)
  const rows = []
  for (let r = 0; r < opts.rounds; r++) {
    const row = await runRound(r, opts, rnd)
    rows.push(row)
    opts.log(tableRow(row))
  }
  for (let r = 0; r < opts.pgRounds; r++) {
    const row = await runRound(r, opts, rnd, true)
    rows.push(row)
    opts.log(tableRow(row))
  }
  for (let r = 0; r < opts.serveRounds; r++) {
    const row = await runServeRound(r, opts, rnd)
    rows.push(row)
    opts.log(tableRow(row))
    opts.serveLog?.(row)
  }
  const totals = totalsOf(rows)
  opts.log(tableRow(totals))
  opts.log(
    `chaos: ${totals.ok ? 'PASS' : 'FAIL'}: ${totals.lost} lost, ${totals.twice} answered twice, ${totals.wrong} wrong, ${totals.dupJobs} duplicate jobs, ${totals.hung} hung; ${totals.jobs} jobs created for ${totals.batches} batches the journals recorded`,
  )
  return { rows, totals, seed: opts.seed }
}

/** `--name value` from the command line, as a number. */
function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { totals } = await runChaos({
    rounds: arg('rounds', 20),
    requests: arg('requests', 5000),
    maxKills: arg('kills', 3),
    maxBatchSize: arg('batch', 1000),
    seed: arg('seed', undefined),
    lifeLimitMs: arg('life-limit', 120) * 1000,
    stormWindowMs: arg('storm-window', undefined),
    pgRounds: arg('pg-rounds', 0),
    serveRounds: arg('serve-rounds', 0),
    serveBoto3: arg('serve-boto3', undefined),
    serveBoto3Stream: arg('serve-boto3-stream', undefined),
    serveCli: arg('serve-cli', undefined),
    serveOpenAI: arg('serve-openai', undefined),
    serveLimitMs: arg('serve-limit', 180) * 1000,
    serveLog: (row) =>
      console.error(
        `chaos: ${row.round}: calls waiting in serve at each kill ${JSON.stringify(row.waitingAtKills)}; SDK retries ${JSON.stringify(row.retries)}; streams cut after they began ${row.cut}${row.errors.length ? `; errors: ${row.errors.join('; ')}` : ''}`,
      ),
  })
  process.exit(totals.ok ? 0 : 1)
}
