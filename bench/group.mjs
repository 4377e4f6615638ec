// `node bench/group.mjs [N]`: a group of processes sharing one PostgreSQL store against one
// process with the SQLite store. Default N = 1,000,000: 4 processes × 250,000 requests (300-byte
// bodies, maxBatchSize 50,000) through one local PostgreSQL, next to one process sending
// 1,000,000 with the SQLite store. Prints, for each: aggregate requests/s from the first send to
// the last settle, jobs created, peak RSS per process; for the group, the bytes PostgreSQL wrote
// per request (its WAL) and what its tables held at the end.
// PostgreSQL: BENCH_PG_URL, or a throwaway server started with .ci/postgres.sh (needs its binaries).
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { startEmulator } from './emulator.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
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

/** One value from PostgreSQL, through psql, without blocking the event loop. */
function sqlAsync(url, query) {
  const bin = execFileSync('bash', [pgScript, 'bindir'], { encoding: 'utf8' }).trim()
  return new Promise((resolve, reject) =>
    execFile(path.join(bin, 'psql'), [url, '-Atc', query], { encoding: 'utf8' }, (e, out) =>
      e ? reject(e) : resolve(out.trim()),
    ),
  )
}

/** Live and dead row versions in the package's tables, as the server counts them. */
async function rowVersions(url) {
  const rows = (
    await sqlAsync(
      url,
      "SELECT relname || ' ' || n_live_tup || ' ' || n_dead_tup FROM pg_stat_user_tables WHERE relname LIKE 'bedrock_batch_%'",
    )
  )
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' '))
  const live = rows.reduce((a, r) => a + Number(r[1]), 0)
  const dead = rows.reduce((a, r) => a + Number(r[2]), 0)
  const where = rows
    .filter((r) => Number(r[2]) > 0)
    .map((r) => `${r[0].replace('bedrock_batch_', '')} ${r[2]}`)
    .join(', ')
  return { live, dead, where }
}

/** Per table at the end: its size (with TOAST, without indexes), with its indexes, and the bytes of its live rows. */
function tableSizes(url) {
  const names = sql(
    url,
    "SELECT relname FROM pg_class WHERE relname LIKE 'bedrock_batch_%' AND relkind = 'r' ORDER BY 1",
  )
    .split('\n')
    .filter(Boolean)
  return names.map((name) => {
    const [table, total, live] = sql(
      url,
      `SELECT pg_table_size('${name}') || ' ' || pg_total_relation_size('${name}') || ' ' || coalesce((SELECT sum(pg_column_size(t.*)) FROM ${name} t), 0)`,
    )
      .split(' ')
      .map(Number)
    return { name, table, total, live }
  })
}

/** Starts one process of the group (its share: requests `offset` to `offset + per`). */
function startMember(emu, url, prefix, offset, per) {
  const child = spawn(process.execPath, scenarioArgs(per), {
    env: env(emu, { BENCH_STORE_URL: url, BENCH_GROUP: prefix, BENCH_PREFIX: prefix, BENCH_OFFSET: String(offset) }),
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
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, result: out[0] })))
  return { child, ready, done, offset }
}

/**
 * Runs the group: PROCESSES children, started together once all are ready. With `kills`, the
 * leading process is killed with SIGKILL each time another 1/(kills+1) of the answers are in the
 * store, and started again on the same share (the same requests: those answered come from the
 * store, the others are sent again); every process must end with all of its answers.
 */
async function group(emu, url, emulatorPid, kills, N) {
  const prefix = `bench-group-${process.pid}`
  const per = N / PROCESSES
  const slots = []
  for (let i = 0; i < PROCESSES; i++) slots.push(startMember(emu, url, prefix, i * per, per))
  await Promise.all(slots.map((c) => c.ready))
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
  // Dead row versions against all row versions of the package's tables, every second.
  const deadSamples = []
  let sampling = true
  const rowsSampler = (async () => {
    while (sampling) {
      const v = await rowVersions(url).catch(() => null)
      if (v && v.live + v.dead > 0) deadSamples.push({ share: v.dead / (v.live + v.dead), ...v })
      await new Promise((r) => setTimeout(r, 1000))
    }
  })()
  for (const c of slots) c.child.stdin.write('go\n')
  const killed = []
  const killer = (async () => {
    for (let k = 1; k <= kills; k++) {
      const at = (N * k) / (kills + 1)
      for (;;) {
        const answers = Number(
          await sqlAsync(url, `SELECT count(*) FROM bedrock_batch_answers WHERE group_name = '${prefix}'`),
        )
        if (answers >= at) break
        await new Promise((r) => setTimeout(r, 500))
      }
      const pid = Number(await sqlAsync(url, `SELECT pid FROM bedrock_batch_leads WHERE group_name = '${prefix}'`))
      const i = slots.findIndex((c) => c.child.pid === pid)
      if (i < 0) continue
      slots[i].child.kill('SIGKILL')
      killed.push({ pid, at: Math.round(at) })
      const again = startMember(emu, url, prefix, slots[i].offset, per)
      slots[i] = again
      await again.ready
      again.child.stdin.write('go\n')
    }
  })()
  // Every slot's process (the last one started in it) must finish with all of its answers.
  let ended
  for (;;) {
    const current = [...slots]
    ended = await Promise.all(current.map((c) => c.done))
    if (current.every((c, i) => c === slots[i])) break
  }
  await killer
  sampling = false
  await rowsSampler
  clearInterval(sampler)
  const failed = ended.filter((e) => e.code !== 0 || !e.result)
  if (failed.length) throw new Error(`${failed.length} group process(es) failed: ${JSON.stringify(failed)}`)
  const results = ended.map((e) => e.result)
  const emuCpu = cpuSeconds((pid) => pid === emulatorPid) - emuCpu0
  const walBytes = Number(sql(url, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${walBefore}')`))
  const tables = tableSizes(url)
  const jobs = Number(
    sql(url, `SELECT count(*) FROM bedrock_batch_batches WHERE group_name = '${prefix}' AND job_arn IS NOT NULL`),
  )
  // Every key answered, and none by two batches (a request in two jobs). A leader killed after
  // it stored a job's answers, before it marked the job done, has them stored again by the next.
  const [keys, twoJobs] = sql(
    url,
    `SELECT count(*) || ' ' || count(*) FILTER (WHERE batches > 1) FROM (SELECT key, count(DISTINCT batch) AS batches FROM bedrock_batch_answers WHERE group_name = '${prefix}' GROUP BY key) k`,
  )
    .split(' ')
    .map(Number)
  const first = Math.min(...results.map((r) => r.startedAt))
  const last = Math.max(...results.map((r) => r.lastSettledAt))
  const clientCpu = results.reduce((sum, r) => sum + (r.cpuMicrosPerRequest * r.n) / 1e6, 0)
  const seconds = (last - first) / 1000
  return { results, walBytes, tables, jobs, keys, twoJobs, seconds, pgCpu, emuCpu, clientCpu, deadSamples, killed }
}

function sqliteOne(emu, N) {
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

/**
 * The group of PROCESSES processes sending `n` requests in all, the leader killed `kills` times,
 * on an emulator and a throwaway PostgreSQL of its own: what `group()` measured (it throws when a
 * process did not end with all of its answers). What __test__/group-scale.solo.mjs runs.
 */
export async function runGroup(n, kills, { sqlite = false } = {}) {
  const { child: emulator, info } = await startEmulator()
  const pg = startPostgres()
  try {
    const g = await group(info, pg.url, emulator.pid, kills, n)
    // One process sending n with the SQLite store, on the same emulator, to compare.
    return { ...g, one: sqlite ? sqliteOne(info, n) : null }
  } finally {
    emulator.kill('SIGINT')
    pg.stop()
  }
}

async function main() {
  const N = Number(process.argv[2]) || 1_000_000
  const KILLS = Number(process.argv.find((a) => a.startsWith('--kill-leader='))?.split('=')[1] ?? 0)
  console.log(
    `bench/group: node ${process.version}, ${os.cpus().length} CPUs, N = ${fmt(N)}, 300-byte bodies, maxBatchSize 50,000, emulator profile fast`,
  )
  const g = await runGroup(N, KILLS, { sqlite: true })
  const one = g.one
  const sum = (k) => g.tables.reduce((a, t) => a + t[k], 0)
  const worst = g.deadSamples.reduce((w, d) => (d.share > w.share ? d : w), { share: 0, where: '' })
  console.log('| | requests/s | jobs | peak RSS per process | DB bytes written per request |')
  console.log('|---|---|---|---|---|')
  console.log(
    `| ${PROCESSES} processes × ${fmt(N / PROCESSES)}, PostgreSQL | ${fmt(N / g.seconds)} | ${g.jobs} | ${g.results.map((r) => `${mb(r.peakRss)}${r.leader ? ' (leader)' : ''}`).join(', ')} | ${fmt(g.walBytes / N)} (WAL) |`,
  )
  console.log(
    `| 1 process × ${fmt(N)}, SQLite | ${fmt(one.requestsPerSecond)} | ${one.jobs} | ${mb(one.peakRss)} | (journal file) |`,
  )
  console.log(
    `\ngroup run: ${fmt(g.seconds, 1)} s on ${os.cpus().length} CPUs (${fmt((100 * N) / g.seconds / one.requestsPerSecond)}% of one SQLite process); CPU seconds used: the ${PROCESSES} clients ${fmt(g.clientCpu, 1)} (the processes that finished), PostgreSQL ${fmt(g.pgCpu, 1)}, the emulator ${fmt(g.emuCpu, 1)}`,
  )
  console.log(
    `leader killed: ${g.killed.length ? g.killed.map((k) => `pid ${k.pid} at ${fmt(k.at)} answers`).join(', ') : 'never'}; every process ended with all of its answers`,
  )
  console.log(`answers in the store for ${fmt(g.keys)} keys; keys answered by two jobs: ${fmt(g.twoJobs)}`)
  console.log(
    `dead row versions: at most ${fmt(100 * worst.share, 1)}% of the package's tables over ${g.deadSamples.length} samples (1 per second; then: ${worst.where || 'none'} dead of ${fmt(worst.live ?? 0)} live)`,
  )
  console.log(
    `tables at the end: ${mb(sum('table'))} (${mb(sum('total'))} with indexes) for ${mb(sum('live'))} of live rows: ${fmt(sum('table') / Math.max(1, sum('live')), 2)}× (${fmt(sum('total') / Math.max(1, sum('live')), 2)}× with indexes)`,
  )
  for (const t of g.tables.filter((t) => t.total > 16384)) {
    console.log(`  ${t.name}: ${mb(t.table)} (${mb(t.total)} with indexes), live rows ${mb(t.live)}`)
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await main()
