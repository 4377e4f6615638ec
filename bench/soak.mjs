// `npm run bench:soak`: the memory soak. One client (no store) sends N requests (default 1,000,000),
// waits for every answer, then sends N more, in one process, against the bench's emulator (a process
// of its own); RSS is sampled every 250 ms and printed as a series. Checks, each PASS or FAIL:
// - no leak: after the second run settles (and a full GC), RSS is within 10% of its level after the
//   first run settled (and a GC);
// - peak: the peak RSS against the bench's target, 1.25 × the peak of the JavaScript floor at N
//   (bench/scenario.mjs `floor`, in a fresh process) — printed, never a failure.
// Usage: node bench/soak.mjs [N] [--runs K]; it runs itself again with --expose-gc when it was not given.
// Exits 1 when the leak check fails.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { scenario, startEmulator } from './emulator.mjs'
import { benchBatch, MODEL, uniqueBody } from './requests.mjs'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const n = Number(process.argv[2]) || 1_000_000
// --runs K: more runs than two, to see whether memory keeps growing or levels off.
const runs = process.argv.includes('--runs') ? Number(process.argv[process.argv.indexOf('--runs') + 1]) : 2
const SAMPLE_MS = 250
const LEAK_TOLERANCE = 1.1
const PEAK_TARGET = 1.25

const fmt = (x, d = 0) => x.toLocaleString('en', { minimumFractionDigits: d, maximumFractionDigits: d })
const mb = (b) => `${fmt(b / 1048576)} MB`

/** Which allocator the process runs on: glibc's malloc unless one is preloaded, with its settings. */
function allocator() {
  const env = ['MALLOC_ARENA_MAX', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_CONF']
    .filter((k) => process.env[k])
    .map((k) => `${k}=${process.env[k]}`)
  const lib = process.env.LD_PRELOAD ? path.basename(process.env.LD_PRELOAD) : 'glibc malloc'
  return [lib, ...env].join(', ')
}

/** Runs this script again under --expose-gc (the checks compare memory after full collections). */
function reexecWithGc() {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  })
  process.exit(r.status ?? 1)
}

/** Samples RSS and the JS heap every SAMPLE_MS, each sample tagged with the phase it fell in. */
function sampler() {
  const t0 = performance.now()
  const samples = []
  let phase = 'start'
  const take = () => {
    const m = process.memoryUsage()
    samples.push({
      t: (performance.now() - t0) / 1000,
      phase,
      rss: m.rss,
      heap: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
    })
  }
  take()
  const timer = setInterval(take, SAMPLE_MS)
  return {
    samples,
    phase(p) {
      phase = p
      take()
    },
    stop() {
      clearInterval(timer)
      take()
    },
  }
}

/** The process's peak RSS so far (Linux's VmHWM: it sees peaks between samples), else null. */
function highWaterMark() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

/** Full collections, with pauses for the engine's threads to hand back what they freed; returns RSS. */
async function settledRss() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc()
    await sleep(500)
  }
  return process.memoryUsage.rss()
}

/** The client, with bench/scenario.mjs's settings (maxBatchSize 50,000, pollInterval 0.1 s). */
function makeClient(emu) {
  const { BatchInferenceClient } = require(path.join(root, 'index.js'))
  const prefix = `soak-${n}-${process.pid}`
  return new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: benchBatch(emu, prefix),
  })
}

/** Run `label`: N requests (questions `offset`..), every answer awaited; resolves its seconds. */
async function run(client, offset, label, s) {
  s.phase(label)
  const { InvokeModelCommand } = require(path.join(root, 'index.js'))
  const t0 = performance.now()
  const promises = new Array(n)
  for (let i = 0; i < n; i++) {
    const command = new InvokeModelCommand({
      modelId: MODEL,
      contentType: 'application/json',
      body: uniqueBody(offset + i),
    })
    promises[i] = client.send(command).then((r) => r.body.byteLength)
  }
  // The send loop holds the thread (no sample in it): one sample as it ends, with all pending.
  s.phase(`${label}, all sent`)
  client.flush()
  await Promise.all(promises)
  return (performance.now() - t0) / 1000
}

/** The series, one row per second or so (and every change of phase), as a Markdown table. */
function printSeries(samples) {
  const every = Math.max(1, Math.round(1000 / SAMPLE_MS))
  console.log('\n| t (s) | phase | RSS | JS heap used | JS heap total | external |')
  console.log('|---|---|---|---|---|---|')
  samples.forEach((x, i) => {
    const changed = i === 0 || samples[i - 1].phase !== x.phase || i === samples.length - 1
    if (changed || i % every === 0)
      console.log(
        `| ${fmt(x.t, 2)} | ${x.phase} | ${mb(x.rss)} | ${mb(x.heap)} | ${mb(x.heapTotal)} | ${mb(x.external)} |`,
      )
  })
}

/** The longest time between two samples, in seconds: how long the thread gave timers no turn. */
function longestGap(samples) {
  let gap = 0
  for (let i = 1; i < samples.length; i++) gap = Math.max(gap, samples[i].t - samples[i - 1].t)
  return gap
}

/** Prints the checks (PASS or FAIL each); returns whether the leak check passed. */
function printChecks(after, peak, sampledPeak, floorPeak) {
  const leak = after.at(-1) / after[0]
  const peakRatio = peak / floorPeak
  console.log(
    `RSS after each run settled: ${after.map(mb).join(', ')}; peak ${mb(peak)} (VmHWM; the samples' highest ${mb(sampledPeak)})`,
  )
  const leakOk = leak <= LEAK_TOLERANCE
  console.log(
    `no leak: after run ${after.length} / after run 1 = ${fmt(leak, 3)} (at most ${LEAK_TOLERANCE}): ${leakOk ? 'PASS' : 'FAIL'}`,
  )
  console.log(
    `peak: ${mb(peak)} / JS floor's peak ${mb(floorPeak)} = ${fmt(peakRatio, 2)}× (target at most ${PEAK_TARGET}×): ${peakRatio <= PEAK_TARGET ? 'PASS' : 'FAIL'}`,
  )
  return leakOk
}

async function main() {
  if (typeof globalThis.gc !== 'function') reexecWithGc()
  const { child, info } = await startEmulator()
  try {
    console.log(
      `soak: node ${process.version}, ${n.toLocaleString('en')} requests ${runs} times in one process, no store; ${allocator()}`,
    )
    const floor = scenario(info, ['floor', n])
    const client = makeClient(info)
    const s = sampler()
    const rssStart = await settledRss()
    const seconds = []
    const after = []
    for (let r = 1; r <= runs; r++) {
      seconds.push(await run(client, (r - 1) * n, `run ${r}`, s))
      s.phase(`settle ${r}`)
      after.push(await settledRss())
    }
    s.stop()
    const jobs = client.stats().jobs.length
    await client.close()
    printSeries(s.samples)
    const sampledPeak = Math.max(...s.samples.map((x) => x.rss))
    const peak = Math.max(sampledPeak, highWaterMark() ?? 0)
    console.log(
      `\nruns: ${seconds.map((x) => `${fmt(x, 1)} s (${fmt(n / x)} requests/s)`).join(', ')}; ${jobs} jobs; RSS ${mb(rssStart)} at start`,
    )
    console.log(
      `longest gap between samples (the JavaScript thread busy, no timer ran): ${fmt(longestGap(s.samples), 1)} s`,
    )
    process.exitCode = printChecks(after, peak, sampledPeak, floor.peakRss) ? 0 : 1
  } finally {
    child.kill('SIGINT')
  }
}

await main()
