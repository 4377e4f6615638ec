// Conformance to AWS's service models: conformance/conformance.py reads botocore's own `bedrock` and
// `bedrock-runtime` models (the pinned botocore that `.ci/test` installs from PyPI into
// .cache/botocore and names in BOTOCORE_PYTHON), generates valid requests, one invalid request per
// constraint and fault-marker requests, sends them signed through botocore to an emulator on
// 127.0.0.1 and checks every response against the model (for the streaming operations, every
// event-stream frame: headers, CRCs and each event's shape). One ava test per operation reads its line.

import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

import { startEmulator } from './helpers.mjs'

/** The botocore release the conformance test is pinned to (.ci/test installs this one). */
const BOTOCORE_VERSION = '1.44.8'
const here = path.dirname(fileURLToPath(import.meta.url))
const RUNTIME = ['InvokeModel', 'Converse', 'InvokeModelWithResponseStream', 'ConverseStream']
const STREAMING = ['InvokeModelWithResponseStream', 'ConverseStream']
const OPERATIONS = [
  'CreateModelInvocationJob',
  'GetModelInvocationJob',
  'ListModelInvocationJobs',
  'StopModelInvocationJob',
  ...RUNTIME,
  'CountTokens',
]

/** The Python with the pinned botocore: BOTOCORE_PYTHON, else the virtual environment .ci/test makes. */
function python() {
  const given = process.env.BOTOCORE_PYTHON
  const fallback = path.join(here, '..', '.cache', 'botocore', 'bin', 'python')
  const bin = given || fallback
  if (!existsSync(bin)) {
    throw new Error(
      `no Python with botocore ${BOTOCORE_VERSION} at ${bin}: run bash .ci/test (it installs it) or set BOTOCORE_PYTHON`,
    )
  }
  return bin
}

function run(bin, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      err = (err + d).slice(-20_000)
    })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, out, err }))
  })
}

let emu
let result

/** Runs the conformance script once for every test of this file. */
function conformance() {
  result ??= (async () => {
    const bin = python()
    const env = { ...process.env, AWS_EC2_METADATA_DISABLED: 'true', PYTHONDONTWRITEBYTECODE: '1' }
    const version = await run(bin, ['-c', 'import botocore; print(botocore.__version__)'], env)
    if (version.code !== 0) throw new Error(`${bin} cannot import botocore: ${version.err}`)
    // Many jobs are created: the quota must not get in the way.
    emu = await startEmulator({ maxConcurrentJobs: 1_000_000 })
    const args = {
      bedrock: emu.endpoints.bedrock,
      bedrockRuntime: emu.endpoints.bedrockRuntime,
      s3: emu.endpoints.s3,
      region: emu.region,
      bucket: emu.bucket,
      accessKeyId: emu.credentials.accessKeyId,
      secretAccessKey: emu.credentials.secretAccessKey,
    }
    const r = await run(bin, [path.join(here, 'conformance', 'conformance.py'), JSON.stringify(args)], env)
    const line = r.out.split('\n').find((l) => l.startsWith('RESULT '))
    if (!line) throw new Error(`the conformance script printed no result (exit ${r.code}):\n${r.out}\n${r.err}`)
    return {
      ...JSON.parse(line.slice('RESULT '.length)),
      version: version.out.trim(),
      lines: r.out.split('\n'),
      code: r.code,
      stderr: r.err,
    }
  })()
  return result
}

test.after.always(async () => {
  if (emu) await emu.stop()
})

test(`the models come from botocore ${BOTOCORE_VERSION}, installed from PyPI`, async (t) => {
  const r = await conformance()
  t.is(r.version, BOTOCORE_VERSION)
  t.is(r.botocore, BOTOCORE_VERSION)
})

for (const op of OPERATIONS) {
  test(`${op} answers every generated request as the model says`, async (t) => {
    const r = await conformance()
    const line = r.lines.find((l) => l.startsWith(`${op}: `))
    t.truthy(line, `a line for ${op}`)
    t.log(line)
    const counts = r.operations[op]
    t.truthy(counts, `counts for ${op}`)
    t.true(counts.valid >= 2, 'valid requests were sent')
    t.true(counts.succeeded >= 1, 'some valid requests succeeded')
    t.true(counts.invalid >= 1, 'invalid requests were sent')
    if (RUNTIME.includes(op)) t.true(counts.faults > 0, 'fault markers were sent')
    // A streaming answer is read frame by frame: its events (and the exceptions ending fault streams).
    if (STREAMING.includes(op)) t.true(counts.events > counts.succeeded, 'stream frames were checked')
    const mine = r.mismatches.filter((m) => m.startsWith(`${op} `))
    t.deepEqual(mine, [], mine.join('\n'))
    t.is(counts.mismatches, 0)
  })
}

test('the conformance script exits 0 only when nothing mismatched', async (t) => {
  const r = await conformance()
  t.is(r.code, r.mismatches.length === 0 ? 0 : 1, r.stderr)
})
