// Fuzzing of serve's request parsers (issue 23): runs each target (runtime, openai, anthropic,
// multipart; __test__/wire-fuzz.mjs) for a chosen time with fast-check's generators, in process
// over a dry-run door, and prints a table of targets, seconds, executions and failures. Every
// failing input (shrunk) is written to __test__/fixtures/fuzz-wires/<target>/crash-<hash>.json,
// which wire-fuzz.spec.mjs replays in CI.
//
//   node bench/fuzz-wires.mjs [--seconds 30] [--seed N] [--targets runtime,openai,...]

import fc from 'fast-check'
import { Harness, property, saveFailure, TARGETS } from '../__test__/wire-fuzz.mjs'

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt
}

const seconds = Number(arg('seconds', 30))
const seed0 = Number(arg('seed', Date.now() % 2 ** 31))
const targets = arg('targets', TARGETS.join(',')).split(',')
for (const t of targets) if (!TARGETS.includes(t)) throw new Error(`unknown target ${t} (${TARGETS.join(', ')})`)

// A rejection or exception nobody handled is a finding too (serve would log it, or die of it).
const stray = []
process.on('unhandledRejection', (err) => stray.push(err))
process.on('uncaughtException', (err) => stray.push(err))

const rows = []
for (const target of targets) {
  const harness = await Harness.start()
  const until = Date.now() + seconds * 1000
  let executions = 0
  const failures = []
  let seed = seed0
  const started = Date.now()
  while (Date.now() < until) {
    // Rounds of 200 inputs, each with its own seed, until the time is up; a failure is shrunk and kept.
    let counted = 0
    const result = await fc.check(
      property(harness, target, () => {}).beforeEach(() => {
        counted++
      }),
      { seed, numRuns: 200, endOnFailure: false, interruptAfterTimeLimit: Math.max(1, until - Date.now()) },
    )
    executions += counted
    if (result.failed && result.counterexample) {
      const [input] = result.counterexample
      const problem = result.errorInstance?.message ?? String(result.error)
      const file = saveFailure(target, input, problem)
      failures.push({ problem, file, seed })
      console.error(`${target}: ${problem}\n  seed ${seed}, kept as ${file}`)
    }
    seed = (seed + 1) % 2 ** 31
  }
  for (const err of stray.splice(0)) failures.push({ problem: `unhandled: ${err?.stack ?? err}` })
  await harness.close()
  rows.push({ target, seconds: ((Date.now() - started) / 1000).toFixed(1), executions, failures: failures.length })
}

console.log(`\nseed ${seed0}, ${seconds} s per target (Node ${process.version})\n`)
console.log('| target | seconds | executions | failures |')
console.log('|---|---|---|---|')
for (const r of rows)
  console.log(`| ${r.target} | ${r.seconds} | ${r.executions.toLocaleString('en-US')} | ${r.failures} |`)
process.exit(rows.some((r) => r.failures > 0) ? 1 : 0)
