// index.d.ts is checked by compiling the examples with tsc, on its own (it must need neither the
// optional peer dependency nor @types/node), and by a file that misuses the API (which must fail
// to compile, so this test can fail).

import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')

function compile(args) {
  return spawnSync(process.execPath, [tsc, ...args], { cwd: root, encoding: 'utf8' })
}

test('the examples type-check against index.d.ts', (t) => {
  const r = compile(['-p', 'examples/tsconfig.json'])
  t.is(r.status, 0, r.stdout + r.stderr)
})

test('every example is in the type-checked set', (t) => {
  const examples = readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.ts'))
  t.true(examples.length >= 5, examples.join(', '))
  const r = compile(['-p', 'examples/tsconfig.json', '--listFilesOnly'])
  t.is(r.status, 0, r.stdout + r.stderr)
  const listed = r.stdout.split('\n').map((f) => path.resolve(root, f.trim()))
  for (const f of examples) t.true(listed.includes(path.join(root, 'examples', f)), `${f} is compiled`)
})

test('index.d.ts type-checks on its own, without the optional peer dependency or @types/node', (t) => {
  // A folder with no node_modules above it: nothing but index.d.ts and the standard library.
  const dir = mkdtempSync(path.join(tmpdir(), 'bbb-dts-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  copyFileSync(path.join(root, 'index.d.ts'), path.join(dir, 'index.d.ts'))
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2022', 'DOM'],
        types: [],
        skipLibCheck: false,
      },
      files: ['index.d.ts'],
    }),
  )
  const r = compile(['-p', path.join(dir, 'tsconfig.json')])
  t.is(r.status, 0, r.stdout + r.stderr)
})

test('a misuse of the API does not type-check', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bbb-types-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'bad.ts')
  writeFileSync(
    file,
    `import { BatchInferenceClient } from ${JSON.stringify(path.join(root, 'index'))}\n` +
      `new BatchInferenceClient({ batch: { belowMinimum: 'sometimes' } })\n`,
  )
  const r = compile(['--noEmit', '--strict', '--skipLibCheck', file])
  t.not(r.status, 0)
  t.regex(r.stdout, /belowMinimum|sometimes/)
})

test("job statuses are Bedrock's ten, stats().store is typed, and the store's former names still compile", (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bbb-types-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const index = JSON.stringify(path.join(root, 'index'))
  const good = path.join(dir, 'good.ts')
  writeFileSync(
    good,
    `import type { JobStatus, JournalJob, JournalResult, Stats, StoredJob, StoredResult } from ${index}\n` +
      `const statuses: JobStatus[] = ['Submitted', 'Validating', 'Scheduled', 'InProgress', 'Stopping', 'Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']\n` +
      `declare const stats: Stats\n` +
      `const kind: 'sqlite' | 'postgres' | undefined = stats.store?.kind\n` +
      `const where: string | undefined = stats.store?.location\n` +
      `const path: string | undefined = stats.journal?.path\n` +
      `const status: JobStatus | undefined = stats.jobs[0]?.status\n` +
      `declare const stored: StoredJob\n` +
      `const job: JournalJob = stored\n` +
      `declare const result: StoredResult\n` +
      `const old: JournalResult = result\n` +
      `console.log(statuses, kind, where, path, status, job.status, old.recordId)\n`,
  )
  const ok = compile(['--noEmit', '--strict', '--skipLibCheck', good])
  t.is(ok.status, 0, ok.stdout + ok.stderr)
  const bad = path.join(dir, 'bad.ts')
  writeFileSync(bad, `import type { JobStatus } from ${index}\nconst s: JobStatus = 'Running'\nconsole.log(s)\n`)
  const r = compile(['--noEmit', '--strict', '--skipLibCheck', bad])
  t.not(r.status, 0)
  t.regex(r.stdout, /Running/)
})

test('index.d.ts declares exactly the exception classes of the binding, and both entries export each', async (t) => {
  const { createRequire } = await import('node:module')
  const { readFileSync } = await import('node:fs')
  const require = createRequire(import.meta.url)
  const names = require('../binding.js')
    .exceptionNames()
    .map((n) => n.name)
    .sort()
  t.true(names.includes('ValidationException') && names.includes('BatchJobFailedException'), names.join(', '))
  const dts = readFileSync(path.join(root, 'index.d.ts'), 'utf8')
  const declared = [...dts.matchAll(/^export declare class (\w+) extends BedrockBatchBridgeException/gm)]
    .map((m) => m[1])
    .sort()
  t.deepEqual(declared, names, 'index.d.ts declares one class per exception name, no more')
  const cjs = require('../index.js')
  const esm = await import('../index.mjs')
  for (const n of names) {
    t.is(typeof cjs[n], 'function', `index.js exports ${n}`)
    t.is(esm[n], cjs[n], `index.mjs exports the same ${n}`)
  }
  const check = spawnSync(process.execPath, [path.join(root, 'scripts', 'esm-entry.js'), '--check'], {
    encoding: 'utf8',
  })
  t.is(check.status, 0, `index.mjs is what scripts/esm-entry.js writes: ${check.stderr}`)
})

test('with the SDK installed, the exported SDK exception classes are the ones thrown', async (t) => {
  const { createRequire } = await import('node:module')
  const require = createRequire(import.meta.url)
  const bridge = require('../index.js')
  const sdk = require('@aws-sdk/client-bedrock-runtime')
  t.is(bridge.ValidationException, sdk.ValidationException, 'our ValidationException is the SDK class')
  t.is(bridge.ThrottlingException, sdk.ThrottlingException)
  t.not(bridge.BatchJobFailedException, undefined)
  const client = new bridge.BatchInferenceClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    mode: 'direct',
  })
  t.teardown(() => client.destroy())
  const err = await client
    .send(new bridge.InvokeModelCommand({ modelId: 'model with spaces', body: '{}' }))
    .catch((e) => e)
  t.true(err instanceof bridge.ValidationException, `${err.name}: ${err.message}`)
  t.true(err instanceof sdk.ValidationException)
  t.is(err.$metadata.httpStatusCode, 400)
})
