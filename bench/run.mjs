// `npm run bench`: the JavaScript floor, the client without a store and with the SQLite store, side
// by side, for each N; then the ingest of one 50,000-record job with and without the store.
// Usage: node bench/run.mjs [N ...]   (default: 100000 1000000). Each scenario runs in a fresh
// process; the emulator runs in a process of its own, so neither's memory or CPU is counted.
// `node bench/run.mjs --converse [N ...]` (default 100000) compares InvokeModel, Converse and
// ConverseStream requests instead.
import { scenario, startEmulator } from './emulator.mjs'

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0)
const converse = process.argv.includes('--converse')
const Ns = sizes.length ? sizes : converse ? [100_000] : [100_000, 1_000_000]

const fmt = (x, d = 0) => x.toLocaleString('en', { minimumFractionDigits: d, maximumFractionDigits: d })
const mb = (b) => `${fmt(b / 1048576)} MB`

const { child, info } = await startEmulator()
try {
  console.log(
    `bench: node ${process.version}, ${process.platform}/${process.arch}, 300-byte bodies built in the send loop (unique per request, as callers send them; one row reuses one body), maxBatchSize 50,000, pollInterval 0.1 s`,
  )
  if (converse) {
    for (const n of Ns) {
      console.log(`\nN = ${fmt(n)}, no store`)
      console.log('| | requests/s | send() µs | CPU µs/request | RSS B/pending | peak RSS | jobs |')
      console.log('|---|---|---|---|---|---|---|')
      for (const [label, flag] of [
        ['InvokeModel', null],
        ['Converse', '--converse'],
        ['ConverseStream', '--converse-stream'],
      ]) {
        const r = scenario(info, ['client', n, ...(flag ? [flag] : [])])
        console.log(
          `| ${label} | ${fmt(r.requestsPerSecond)} | ${fmt(r.sendMicros, 2)} | ${fmt(r.cpuMicrosPerRequest, 2)} | ${fmt(r.rssPerPending)} | ${mb(r.peakRss)} | ${r.jobs} |`,
        )
      }
    }
    child.kill('SIGINT')
    process.exit(0)
  }
  for (const n of Ns) {
    const rows = [
      ['JS floor', scenario(info, ['floor', n])],
      ['no store', scenario(info, ['client', n])],
      ['no store, one body reused', scenario(info, ['client', n, '--same-body'])],
      ['SQLite store', scenario(info, ['client', n, '--store'])],
    ]
    const floor = rows[0][1]
    const plain = rows[1][1]
    console.log(`\nN = ${fmt(n)}`)
    console.log(
      '| | requests/s | send() µs | ×floor | CPU µs/request | RSS B/pending | ×floor | peak RSS | ×floor | jobs |',
    )
    console.log('|---|---|---|---|---|---|---|---|---|---|')
    for (const [label, r] of rows) {
      console.log(
        `| ${label} | ${fmt(r.requestsPerSecond)} | ${fmt(r.sendMicros, 2)} | ${fmt(r.sendMicros / floor.sendMicros, 2)} | ${fmt(r.cpuMicrosPerRequest, 2)} | ` +
          `${fmt(r.rssPerPending)} | ${fmt(r.rssPerPending / floor.rssPerPending, 2)} | ${mb(r.peakRss)} | ${fmt(r.peakRss / floor.peakRss, 2)} | ${r.jobs} |`,
      )
    }
    const store = rows[3][1]
    console.log(
      `SQLite store: throughput ${fmt((100 * store.requestsPerSecond) / plain.requestsPerSecond)}% of no store, peak RSS ${fmt(store.peakRss / plain.peakRss, 2)}× no store`,
    )
  }
  const plain = scenario(info, ['client', 50_000, '--ingest'])
  const store = scenario(info, ['client', 50_000, '--store', '--ingest'])
  console.log(
    `\ningest of one 50,000-record job (its Completed event to the last settle): no store ${fmt(plain.ingestSeconds, 3)} s, SQLite store ${fmt(store.ingestSeconds, 3)} s`,
  )
} finally {
  child.kill('SIGINT')
}
