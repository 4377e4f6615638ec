// One benchmark scenario in a process of its own (so its memory and CPU are its own), printing one
// JSON line. Run by bench/run.mjs; usage: node --expose-gc bench/scenario.mjs <floor|client> <N> [--store] [--ingest]
// [--converse|--converse-stream] with the emulator's settings (JSON) in BENCH_EMULATOR. With
// --converse each request is a ConverseCommand asking the same question (Converse-type jobs);
// with --converse-stream a ConverseStreamCommand whose events are read to the end.
// For bench/group.mjs: BENCH_STORE_URL and BENCH_GROUP make the client one of a group sharing a
// PostgreSQL store (BENCH_OFFSET numbers its questions apart from the others'); it prints
// `{"ready":true}` and sends once a line comes on its stdin, and does not flush (the group's
// batches are cut full; a remainder goes after batchTimeout, 60 s).
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { benchBatch, MODEL, uniqueBody as questionBody } from './requests.mjs'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const [kind, nArg] = process.argv.slice(2)
const n = Number(nArg)
const useStore = process.argv.includes('--store')
const ingest = process.argv.includes('--ingest')
const storeUrl = process.env.BENCH_STORE_URL
const offset = Number(process.env.BENCH_OFFSET || 0)
const operation = process.argv.includes('--converse-stream')
  ? 'ConverseStream'
  : process.argv.includes('--converse')
    ? 'Converse'
    : 'InvokeModel'

// A 300-byte Claude body whose prompt is unique, built in the send loop as a real caller builds it;
// with --same-body, one body built once and sent every time (a caller that reuses its body).
const uniqueBody = (i) => questionBody(i + offset)
const sameBody = process.argv.includes('--same-body')
const reused = uniqueBody(0)
const body = sameBody ? () => reused : uniqueBody

/** The same question as a Converse input (its wire JSON is about as long as the Claude body). */
function converseInput(i) {
  const prompt = `Question ${i}: `
  return {
    modelId: MODEL,
    messages: [{ role: 'user', content: [{ text: prompt + 'x'.repeat(300 - 90 - prompt.length) }] }],
    inferenceConfig: { maxTokens: 16 },
  }
}

function cpuMicros(since) {
  const c = process.cpuUsage(since)
  return c.user + c.system
}

/** Samples RSS every 10 ms; `stop()` returns the peak. */
function rssSampler() {
  let peak = process.memoryUsage.rss()
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss())
  }, 10)
  return {
    mark() {
      peak = Math.max(peak, process.memoryUsage.rss())
    },
    stop() {
      clearInterval(timer)
      return Math.max(peak, process.memoryUsage.rss())
    },
  }
}

/** What the floor does per send: a Promise whose resolver waits in a Map (the body is not kept). */
function floorSend(pending, id, _body) {
  return new Promise((resolve) => pending.set(id, resolve))
}

/** The floor: a Promise whose resolver waits in a Map, then is resolved. No addon, no I/O. */
async function floor() {
  globalThis.gc?.()
  const rss0 = process.memoryUsage.rss()
  const rss = rssSampler()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const pending = new Map()
  const promises = new Array(n)
  let lastSettle = 0
  // The caller's loop is the same as with the client: a body built per request, a `.then` per
  // promise; "sending" is only the Promise and its resolver in the Map.
  const answer = { byteLength: 300 }
  for (let i = 0; i < n; i++) {
    const b = body(i)
    promises[i] = floorSend(pending, i, b).then((r) => {
      lastSettle = performance.now()
      return r.byteLength
    })
  }
  const tSent = performance.now()
  const rssPending = process.memoryUsage.rss()
  rss.mark()
  // Settled from a later turn, as answers come.
  await new Promise((r) => setImmediate(r))
  for (const [id, resolve] of pending) {
    pending.delete(id)
    resolve(answer)
  }
  await Promise.all(promises)
  return { t0, tSent, lastSettle, cpu: cpuMicros(cpu0), rss0, rssPending, peak: rss.stop(), jobs: 0 }
}

async function client() {
  const emu = JSON.parse(process.env.BENCH_EMULATOR)
  // BENCH_PACKAGE: another copy of the package to measure (e.g. an older build), else this one.
  const pkg = require(path.join(process.env.BENCH_PACKAGE || root, 'index.js'))
  const { BatchInferenceClient, InvokeModelCommand } = pkg
  const send = {
    InvokeModel: (i) =>
      c.send(new InvokeModelCommand({ modelId: MODEL, contentType: 'application/json', body: body(i) })).then((r) => {
        lastSettle = performance.now()
        return r.body.byteLength
      }),
    Converse: (i) =>
      c.send(new pkg.ConverseCommand(converseInput(i))).then((r) => {
        lastSettle = performance.now()
        return r.output.message.content[0].text.length
      }),
    ConverseStream: (i) =>
      c.send(new pkg.ConverseStreamCommand(converseInput(i))).then(async (r) => {
        let n = 0
        for await (const e of r.stream) n += e.contentBlockDelta?.delta?.text?.length ?? 0
        lastSettle = performance.now()
        return n
      }),
  }[operation]
  const prefix = process.env.BENCH_PREFIX || `bench-${kind}-${n}-${useStore ? 'store' : 'plain'}-${process.pid}`
  const dir = useStore ? mkdtempSync(path.join(os.tmpdir(), 'bench-store-')) : null
  const c = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    ...(dir ? { journal: { path: path.join(dir, 'journal.db') } } : {}),
    ...(storeUrl ? { store: { url: storeUrl, group: process.env.BENCH_GROUP } } : {}),
    // A group's processes do not flush (one member's flush would cut the whole group's queue):
    // what is left below maxBatchSize goes by the timer instead.
    batch: benchBatch(emu, prefix, storeUrl ? 60 : 3600),
  })
  const completedAt = new Map()
  c.on('job', (j) => {
    if (j.status === 'Completed') completedAt.set(j.jobArn, performance.now())
  })
  if (storeUrl) {
    console.log(JSON.stringify({ ready: true }))
    const lines = createInterface({ input: process.stdin })
    await new Promise((resolve) => lines.once('line', resolve))
    lines.close()
  }
  globalThis.gc?.()
  const rss0 = process.memoryUsage.rss()
  const rss = rssSampler()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const promises = new Array(n)
  let lastSettle = 0
  for (let i = 0; i < n; i++) promises[i] = send(i)
  const tSent = performance.now()
  const rssPending = process.memoryUsage.rss()
  rss.mark()
  if (!storeUrl) c.flush()
  await Promise.all(promises)
  const cpu = cpuMicros(cpu0)
  const peak = rss.stop()
  const stats = c.stats()
  await c.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
  const out = { t0, tSent, lastSettle, cpu, rss0, rssPending, peak, jobs: stats.jobs.length, leader: stats.leader }
  if (ingest) {
    const job = stats.jobs[0]
    out.ingestSeconds = (lastSettle - completedAt.get(job.jobArn)) / 1000
  }
  return out
}

const r = kind === 'floor' ? await floor() : await client()
const secs = (r.lastSettle - r.t0) / 1000
console.log(
  JSON.stringify({
    kind,
    operation,
    store: useStore,
    n,
    requestsPerSecond: n / secs,
    sendMicros: ((r.tSent - r.t0) * 1000) / n,
    cpuMicrosPerRequest: r.cpu / n,
    rssPerPending: (r.rssPending - r.rss0) / n,
    peakRss: r.peak,
    jobs: r.jobs,
    ingestSeconds: r.ingestSeconds,
    leader: r.leader,
    // Wall-clock times (ms since the epoch), to put several processes on one time line.
    startedAt: performance.timeOrigin + r.t0,
    lastSettledAt: performance.timeOrigin + r.lastSettle,
  }),
)
