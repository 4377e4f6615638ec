// `bedrock-batch-bridge demo` (npm run demo): the Python SDK README's concurrency example through
// batch mode against the emulator, run as a user runs it, in a child process.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

async function run(args, { timeoutMs = 90_000 } = {}) {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = await once(child, 'close')
  clearTimeout(timer)
  return { code, out, err }
}

test('demo --json: every answer is its own, with jobs, records, padding, tokens and saving counted', async (t) => {
  // The realistic profile, as `npm run demo` runs it: 120 questions make one full job of 100 and
  // one of 20 padded up to the 100-record minimum.
  const r = await run(['cli.js', 'demo', '--count', '120', '--json'])
  t.is(r.code, 0, r.err)
  const s = JSON.parse(r.out.trim())
  t.is(s.profile, 'realistic')
  t.true(s.ok)
  t.is(s.questions, 120)
  t.is(s.answersRight, 120)
  t.is(s.answersWrong, 0)
  t.is(s.jobs, 2)
  t.deepEqual(s.jobStatuses, { Completed: 2 })
  t.is(s.jobArns.length, 2)
  for (const arn of s.jobArns) t.regex(arn, /^arn:aws:bedrock:us-east-1:\d{12}:model-invocation-job\/[a-z0-9]{12}$/)
  t.is(s.paddedRecords, 80)
  t.is(s.records, 200)
  t.true(s.tokens.input > 0 && s.tokens.output > 0, JSON.stringify(s.tokens))
  t.true(s.onDemandCostUsd > 0)
  t.true(
    Math.abs(s.estimatedSavingUsd - s.onDemandCostUsd / 2) < 1e-5,
    `${s.estimatedSavingUsd} vs ${s.onDemandCostUsd}`,
  )
  t.true(s.seconds > 0 && s.seconds < 60, `${s.seconds} s`)
})

test('demo without a terminal prints plain progress lines and the summary', async (t) => {
  const r = await run(['cli.js', 'demo', '--count', '150', '--profile', 'fast'])
  t.is(r.code, 0, r.err)
  // Not a TTY: no carriage returns or escape codes, one line per event.
  t.false(r.out.includes('\r') || r.out.includes('\u001b'), 'no terminal control characters')
  t.regex(r.out, /job batch-inference-\S+-1 +Submitted/)
  t.regex(r.out, /job batch-inference-\S+-2 +Completed +100\/100 records/)
  t.regex(r.out, /150\/150 answered/)
  t.regex(r.out, /Q: What is 4 \+ 4\?\nA: .*What is 4 \+ 4\?/)
  t.regex(r.out, /answers +150 of 150 right/)
  t.regex(r.out, /jobs +2 \(2 Completed\)/)
  t.regex(r.out, /records +200 \(150 questions \+ 50 padded records\)/)
  t.regex(r.out, /tokens +[\d,]+ input, [\d,]+ output/)
  t.regex(r.out, /saving +\$0\.\d+ estimated vs on-demand/)
})

test('demo --help describes the options; a bad option fails with exit code 2', async (t) => {
  const help = await run(['cli.js', 'demo', '--help'])
  t.is(help.code, 0)
  for (const flag of ['--count', '--profile', '--json']) t.true(help.out.includes(flag), flag)
  const bad = await run(['cli.js', 'demo', '--count', 'many'])
  t.is(bad.code, 2)
  t.regex(bad.err, /--count needs a whole number/)
})

test('predemo installs and builds only what a fresh clone lacks', async (t) => {
  // Here (dependencies installed, addon built): nothing to do.
  const here = await run(['scripts/ensure-ready.js', '--dry-run'])
  t.is(here.code, 0, here.err)
  t.regex(here.out, /nothing to do/)
  t.notRegex(here.out, /would run/)

  // A fresh clone: both steps, in order.
  const fresh = mkdtempSync(path.join(tmpdir(), 'bbb-fresh-'))
  t.teardown(() => rmSync(fresh, { recursive: true, force: true }))
  mkdirSync(path.join(fresh, 'scripts'))
  copyFileSync(path.join(root, 'scripts', 'ensure-ready.js'), path.join(fresh, 'scripts', 'ensure-ready.js'))
  const clean = await run([path.join(fresh, 'scripts', 'ensure-ready.js'), '--dry-run'])
  t.is(clean.code, 0, clean.err)
  t.deepEqual(clean.out.trim().split('\n'), ['would run: npm ci --no-audit --no-fund', 'would run: npm run build'])

  // Dependencies there but no addon: only the build.
  mkdirSync(path.join(fresh, 'node_modules'))
  const unbuilt = await run([path.join(fresh, 'scripts', 'ensure-ready.js'), '--dry-run'])
  t.deepEqual(unbuilt.out.trim().split('\n'), ['would run: npm run build'])
  writeFileSync(path.join(fresh, 'bedrock-batch-bridge.linux-x64-gnu.node'), '')
  const ready = await run([path.join(fresh, 'scripts', 'ensure-ready.js'), '--dry-run'])
  t.regex(ready.out, /nothing to do/)
})
