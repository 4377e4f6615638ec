// Throughput and memory of batch mode against the emulator's fast profile.
// Usage: node --expose-gc bench/throughput.mjs [--journal] [N ...]   (default: 10000 100000 1000000)
// --journal: the client records everything in a journal (a temporary SQLite file).
// Prints, per N: requests/s from first send to last settle, peak RSS, RSS bytes per pending request;
// then the ingest rate of one 50,000-record job's output (records/s, MB/s).

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

import { benchBatch } from './requests.mjs'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { BatchInferenceClient, InvokeModelCommand } = require(path.join(root, 'index.js'))
const { S3Client, ListObjectsV2Command } = require('@aws-sdk/client-s3')

process.env.AWS_EC2_METADATA_DISABLED = 'true'
const MODEL = 'anthropic.claude-3-haiku-20240307-v1:0'
const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0)
const Ns = sizes.length ? sizes : [10_000, 100_000, 1_000_000]
const journalDir = process.argv.includes('--journal') ? mkdtempSync(path.join(os.tmpdir(), 'bench-journal-')) : null

// The emulator runs in its own process, so its memory and CPU are not counted here.
async function startEmulatorProcess() {
  const child = spawn(
    process.execPath,
    [path.join(root, 'cli.js'), 'emulator', '--profile', 'fast', '--json', '--max-concurrent-jobs', '20'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const rl = readline.createInterface({ input: child.stdout })
  for await (const line of rl) {
    if (line.startsWith('{')) return { child, info: JSON.parse(line) }
  }
  throw new Error('emulator did not start')
}

// A 300-byte Claude body whose prompt is unique.
function body(i) {
  const base = { anthropic_version: 'bedrock-2023-05-31', max_tokens: 16, messages: [{ role: 'user', content: '' }] }
  const prompt = `Question ${i}: `
  base.messages[0].content = prompt + 'x'.repeat(300 - JSON.stringify(base).length - prompt.length)
  return JSON.stringify(base)
}

function mb(bytes) {
  return (bytes / 1048576).toFixed(1)
}

function makeClient(emu, prefix) {
  return new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    ...(journalDir ? { journal: { path: path.join(journalDir, `${prefix}.db`) } } : {}),
    batch: benchBatch(emu, prefix),
  })
}

// Sends n requests; returns timings, memory and the client's stats.
async function sendAll(emu, n, prefix) {
  const client = makeClient(emu, prefix)
  const completedAt = new Map()
  client.on('job', (j) => {
    if (j.status === 'Completed') completedAt.set(j.jobArn, performance.now())
  })
  globalThis.gc?.()
  const rss0 = process.memoryUsage().rss
  let peak = rss0
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 20)
  const bodies = Array.from({ length: Math.min(n, 1000) }, (_, i) => body(i))
  const t0 = performance.now()
  const promises = new Array(n)
  let lastSettle = t0
  for (let i = 0; i < n; i++) {
    promises[i] = client
      .send(
        new InvokeModelCommand({ modelId: MODEL, contentType: 'application/json', body: bodies[i % bodies.length] }),
      )
      .then((r) => {
        lastSettle = performance.now()
        return r.body.byteLength
      })
  }
  const tSent = performance.now()
  const rssPending = process.memoryUsage().rss
  peak = Math.max(peak, rssPending)
  client.flush()
  await Promise.all(promises)
  clearInterval(sampler)
  peak = Math.max(peak, process.memoryUsage().rss)
  const stats = client.stats()
  await client.close()
  return { t0, tSent, lastSettle, rss0, rssPending, peak, stats, completedAt }
}

async function throughput(emu, n) {
  const r = await sendAll(emu, n, `bench-${n}-${Date.now()}`)
  const secs = (r.lastSettle - r.t0) / 1000
  console.log(
    `N=${n}: ${Math.round(n / secs).toLocaleString('en')} requests/s (first send to last settle ${secs.toFixed(2)} s; ` +
      `sends took ${((r.tSent - r.t0) / 1000).toFixed(2)} s), ${r.stats.jobs.length} jobs, ` +
      `peak RSS ${mb(r.peak)} MB (baseline ${mb(r.rss0)} MB), RSS per pending request ${Math.round((r.rssPending - r.rss0) / n)} B ` +
      `(after all sends), peak per request ${Math.round((r.peak - r.rss0) / n)} B`,
  )
}

// One job of 50,000 records: time from its Completed event to the last caller settled.
async function ingest(emu) {
  const n = 50_000
  const prefix = `ingest-${Date.now()}`
  const r = await sendAll(emu, n, prefix)
  const job = r.stats.jobs[0]
  const s3 = new S3Client({
    region: emu.region,
    endpoint: emu.endpoints.s3,
    forcePathStyle: true,
    credentials: emu.credentials,
  })
  const listed = await s3.send(
    new ListObjectsV2Command({ Bucket: emu.bucket, Prefix: `${prefix}/out/${job.jobArn.split('/').pop()}/` }),
  )
  const bytes = listed.Contents.filter((o) => !o.Key.endsWith('manifest.json.out')).reduce((a, o) => a + o.Size, 0)
  const secs = (r.lastSettle - r.completedAt.get(job.jobArn)) / 1000
  console.log(
    `ingest of one ${n.toLocaleString('en')}-record job: ${secs.toFixed(3)} s from its Completed event to the last settle: ` +
      `${Math.round(n / secs).toLocaleString('en')} records/s, ${(bytes / 1048576 / secs).toFixed(1)} MB/s of output (${mb(bytes)} MB)`,
  )
}

const { child, info } = await startEmulatorProcess()
try {
  console.log(
    `bench: node ${process.version}${journalDir ? ', with a journal' : ''}, ${Ns.join(', ')} requests of 300-byte bodies, maxBatchSize 50,000, maxConcurrentJobs 20, pollInterval 0.1 s`,
  )
  for (const n of Ns) await throughput(info, n)
  await ingest(info)
} finally {
  child.kill('SIGINT')
  if (journalDir) rmSync(journalDir, { recursive: true, force: true })
}
