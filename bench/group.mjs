// `node bench/group.mjs [N]`: a group of processes sharing one PostgreSQL store against one
// process with the SQLite store. Default N = 1,000,000: 4 processes × 250,000 requests (300-byte
// bodies, maxBatchSize 50,000) through one local PostgreSQL, next to one process sending
// 1,000,000 with the SQLite store. Prints, for each: aggregate requests/s from the first send to
// the last settle, jobs created, peak RSS per process; for the group, the bytes PostgreSQL wrote
// per request (its WAL) and what its tables held at the end.
// PostgreSQL: BENCH_PG_URL, or a throwaway server started with .ci/postgres.sh (needs its binaries).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

import { startEmulator } from './emulator.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const N = Number(process.argv[2]) || 1_000_000
const PROCESSES = 4
const pgScript = path.join(root, '.ci', 'postgres.sh')

function startPostgres() {
  if (process.env.BENCH_PG_URL) return { url: process.env.BENCH_PG_URL, stop() {} }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-pg-'))
  const url = execFileSync('bash', [pgScript, 'start', dir], { encoding: 'utf8' }).trim().split('\n').at(-1)
  return { url, stop: () => execFileSync('bash', [pgScript, 'stop', dir], { stdio: 'ignore' }) }
}

/** CPU seconds used so far by the processes `match` picks (by pid and command name), from /proc. */
function cpuSeconds(match) {
  let ticks = 0
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      if (!match(Number(pid), comm)) continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {
      // gone meanwhile
    }
  }
  return ticks / 100
}

/** One value from PostgreSQL, through psql. */
function sql(url, query) {
  const bin = execFileSync('bash', [pgScript, 'bindir'], { encoding: 'utf8' }).trim()
  return execFileSync(path.join(bin, 'psql'), [url, '-Atc', query], { encoding: 'utf8' }).trim()
}

function scenarioArgs(n, extra = []) {
  return ['--expose-gc', path.join(root, 'bench', 'scenario.mjs'), 'client', String(n), ...extra]
}

function env(emu, more = {}) {
  return { ...process.env, AWS_EC2_METADATA_DISABLED: 'true', BENCH_EMULATOR: JSON.stringify(emu), ...more }
}

/** Runs the group: PROCESSES children, started together once all are ready. */
async function group(emu, url, emulatorPid) {
  const prefix = `bench-group-${process.pid}`
  const per = N / PROCESSES
  const children = []
  for (let i = 0; i < PROCESSES; i++) {
    const child = spawn(process.execPath, scenarioArgs(per), {
      env: env(emu, { BENCH_STORE_URL: url, BENCH_GROUP: prefix, BENCH_PREFIX: prefix, BENCH_OFFSET: String(i * per) }),
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const lines = readline.createInterface({ input: child.stdout })
    const out = []
    const ready = new Promise((resolve) =>
      lines.on('line', (l) => {
        if (!l.startsWith('{')) return
        const o = JSON.parse(l)
        if (o.ready) resolve()
        else out.push(o)
      }),
    )
    const done = new Promise((resolve, reject) =>
      child.on('close', (code) =>
        code === 0 && out.length ? resolve(out[0]) : reject(new Error(`a group process failed (${code})`)),
      ),
    )
    children.push({ child, ready, done })
  }
  await Promise.all(children.map((c) => c.ready))
  // Wait for one of them to lead (the group's tables exist then), then measure from here.
  await new Promise((r) => setTimeout(r, 1500))
  const walBefore = sql(url, 'SELECT pg_current_wal_lsn()')
  const pgCpu0 = cpuSeconds((_, comm) => comm === 'postgres')
  const emuCpu0 = cpuSeconds((pid) => pid === emulatorPid)
  let pgCpu = 0
  const sampler = setInterval(() => {
    // Sessions end when their clients close: keep the highest total seen while they run.
    pgCpu = Math.max(pgCpu, cpuSeconds((_, comm) => comm === 'postgres') - pgCpu0)
  }, 200)
  for (const c of children) c.child.stdin.write('go\n')
  const results = await Promise.all(children.map((c) => c.done))
  clearInterval(sampler)
  const emuCpu = cpuSeconds((pid) => pid === emulatorPid) - emuCpu0
  const walBytes = Number(sql(url, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${walBefore}')`))
  const tables = Number(
    sql(
      url,
      "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname LIKE 'bedrock_batch_%' AND c.relkind = 'r'",
    ),
  )
  const jobs = Number(
    sql(url, `SELECT count(*) FROM bedrock_batch_batches WHERE group_name = '${prefix}' AND job_arn IS NOT NULL`),
  )
  const first = Math.min(...results.map((r) => r.startedAt))
  const last = Math.max(...results.map((r) => r.lastSettledAt))
  const clientCpu = results.reduce((sum, r) => sum + (r.cpuMicrosPerRequest * r.n) / 1e6, 0)
  return { results, walBytes, tables, jobs, seconds: (last - first) / 1000, pgCpu, emuCpu, clientCpu }
}

function sqliteOne(emu) {
  const r = spawnSync(process.execPath, scenarioArgs(N, ['--store']), {
    env: env(emu),
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  })
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'))
  if (r.status !== 0 || !line) throw new Error(`the SQLite run failed (${r.status}): ${r.stderr}`)
  return JSON.parse(line)
}

const fmt = (x, d = 0) => x.toLocaleString('en', { minimumFractionDigits: d, maximumFractionDigits: d })
const mb = (b) => `${fmt(b / 1048576)} MB`

const { child: emulator, info } = await startEmulator()
const pg = startPostgres()
try {
  console.log(
    `bench/group: node ${process.version}, ${os.cpus().length} CPUs, N = ${fmt(N)}, 300-byte bodies, maxBatchSize 50,000, emulator profile fast`,
  )
  const g = await group(info, pg.url, emulator.pid)
  const one = sqliteOne(info)
  console.log('| | requests/s | jobs | peak RSS per process | DB bytes written per request |')
  console.log('|---|---|---|---|---|')
  console.log(
    `| ${PROCESSES} processes × ${fmt(N / PROCESSES)}, PostgreSQL | ${fmt(N / g.seconds)} | ${g.jobs} | ${g.results.map((r) => `${mb(r.peakRss)}${r.leader ? ' (leader)' : ''}`).join(', ')} | ${fmt(g.walBytes / N)} (WAL; tables ${mb(g.tables)} at the end) |`,
  )
  console.log(
    `| 1 process × ${fmt(N)}, SQLite | ${fmt(one.requestsPerSecond)} | ${one.jobs} | ${mb(one.peakRss)} | (journal file) |`,
  )
  console.log(
    `\ngroup run: ${fmt(g.seconds, 1)} s on ${os.cpus().length} CPUs; CPU seconds used: the ${PROCESSES} clients ${fmt(g.clientCpu, 1)}, PostgreSQL ${fmt(g.pgCpu, 1)}, the emulator ${fmt(g.emuCpu, 1)} (${fmt((100 * (g.clientCpu + g.pgCpu + g.emuCpu)) / (g.seconds * os.cpus().length))}% of the machine)`,
  )
} finally {
  emulator.kill('SIGINT')
  pg.stop()
}
