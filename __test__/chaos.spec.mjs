// The chaos suite's short version (issue 23; the full one is `npm run bench:chaos`, bench/chaos.mjs):
// 4 rounds of 1,000 requests with the SQLite journal in a child process, killed with SIGKILL at
// random moments and restarted until it finishes, one round each with no storm, an S3 503 storm, a
// control-plane storm (throttled creates, a quota of 2 running jobs) and both; per-record errors,
// missing and malformed output lines in every round. Nothing may be lost, answered twice or wrong,
// no job created twice, no life hung; and the faults must really have happened: processes killed,
// the 503s and 429s served by the emulator. Then one round of a PostgreSQL group of two members
// whose leader is killed at random moments (with an S3 storm).
import test from 'ava'

import { runChaos } from '../bench/chaos.mjs'
import { PG_URL, pgTest } from './helpers.mjs'

/** The figures every round must show: nothing lost, twice, wrong, paid twice or hung. */
function assertClean(t, totals) {
  t.is(totals.lost, 0, 'keys never answered')
  t.is(totals.twice, 0, 'keys with two different answers')
  t.is(totals.wrong, 0, "answers that are not the request's own")
  t.is(totals.dupJobs, 0, 'jobs created twice, jobs the store never recorded, requests answered by two jobs')
  t.is(totals.hung, 0, 'lives over their time limit')
}

test.serial('chaos: SIGKILLs and fault storms lose nothing, answer nothing twice, create no job twice', async (t) => {
  t.timeout(120_000)
  const { rows, totals, seed } = await runChaos({
    rounds: 4,
    requests: 1000,
    maxKills: 2,
    maxBatchSize: 250,
    lifeLimitMs: 60_000,
    // A life of 1,000 requests takes about half a second: kill within it.
    killWindowMs: 600,
    log: (line) => t.log(line),
  })
  t.log(`seed ${seed} (node bench/chaos.mjs --rounds 4 --requests 1000 --kills 2 --batch 250 --seed ${seed})`)
  assertClean(t, totals)
  for (const r of rows) {
    t.true(r.delivered >= r.requests, `round ${r.round}: every request's answer was delivered`)
    t.true(r.jobs > 0 && r.batches > 0, `round ${r.round}: jobs ran`)
  }
  // The faults happened: without them the figures above would prove nothing.
  t.true(totals.kills > 0, 'processes were killed')
  t.true(totals.s3503s > 0, 'the emulator served S3 503s')
  t.true(totals.create429s > 0, 'the emulator throttled creates')
})

pgTest.serial('chaos: a PostgreSQL group whose leader is SIGKILLed loses nothing and pays nothing twice', async (t) => {
  t.timeout(120_000)
  const { rows, totals, seed } = await runChaos({
    rounds: 0,
    pgRounds: 1,
    pgUrl: PG_URL,
    requests: 1000,
    maxKills: 2,
    maxBatchSize: 250,
    lifeLimitMs: 60_000,
    // A life of 1,000 requests takes about half a second: kill within it.
    killWindowMs: 600,
    log: (line) => t.log(line),
  })
  t.log(`seed ${seed}`)
  assertClean(t, totals)
  t.true(rows[0].delivered >= rows[0].requests, "every request's answer was delivered")
  t.true(totals.kills > 0, 'a leader was killed')
  t.true(totals.s3503s > 0, 'the emulator served S3 503s')
})
