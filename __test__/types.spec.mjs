// index.d.ts is checked by compiling the examples with tsc, and by a file that misuses the API
// (which must fail to compile, so this test can fail).
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')

function compile(args) {
  return spawnSync(process.execPath, [tsc, ...args], { cwd: root, encoding: 'utf8' })
}

test('the examples type-check against index.d.ts', (t) => {
  const r = compile(['-p', 'examples/tsconfig.json'])
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
