// `npm run integration` (scripts/integration.js) against the emulator in all three modes, with its
// settings read from a .env file as a user with an AWS account would keep them.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

import { ROLE_ARN, startEmu, unique } from './helpers.mjs'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const script = path.join(root, 'scripts', 'integration.js')
const { parseDotenv } = require('../scripts/integration.js')

/** A temporary home (so no real AWS config is read) holding a .env for the emulator. */
function envFileFor(t, emu, extra = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'bbb-integration-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const prefix = unique('it')
  const settings = {
    AWS_REGION: emu.region,
    AWS_ACCESS_KEY_ID: emu.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: emu.credentials.secretAccessKey,
    AWS_ENDPOINT_URL_BEDROCK: emu.endpoints.bedrock,
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: emu.endpoints.bedrockRuntime,
    AWS_ENDPOINT_URL_S3: emu.endpoints.s3,
    BEDROCK_BATCH_S3_INPUT_URI: `s3://${emu.bucket}/${prefix}/in/`,
    BEDROCK_BATCH_S3_OUTPUT_URI: `s3://${emu.bucket}/${prefix}/out/`,
    BEDROCK_BATCH_ROLE_ARN: ROLE_ARN,
    ...extra,
  }
  const text =
    '# written by integration.spec.mjs\n' +
    Object.entries(settings)
      .map(([k, v]) => `${k}="${v}"`)
      .join('\n') +
    '\n'
  writeFileSync(path.join(dir, '.env'), text)
  return dir
}

/** Runs the script in `cwd` with nothing from this process's environment but PATH. */
async function runScript(cwd, args, env = {}) {
  const child = spawn(process.execPath, [script, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: cwd, AWS_EC2_METADATA_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
  const [code] = await once(child, 'exit')
  clearTimeout(timer)
  return { code, out, err }
}

test('batch mode: settings from .env, one padded job, every answer its own', async (t) => {
  const { emu } = await startEmu(t)
  const dir = envFileFor(t, emu)
  const r = await runScript(dir, ['--mode', 'batch', '--count', '30', '--poll-interval', '0.1'])
  t.is(r.code, 0, r.out + r.err)
  t.regex(r.out, /read 9 setting\(s\) from .*\.env/)
  t.regex(r.out, /answers +30 of 30 right/)
  t.regex(r.out, /job +arn:aws:bedrock:us-east-1:\d{12}:model-invocation-job\/[a-z0-9]{12} Completed, 100 records/)
  t.regex(r.out, /padded +70 filler records/)
  t.regex(r.out, /time +total [\d.]+ m?s; per request min/)
  t.regex(r.out, /\nPASS\n$/)
  t.false(r.out.includes(emu.credentials.secretAccessKey), 'never prints credentials')
})

test('direct mode: on-demand InvokeModel through AWS_ENDPOINT_URL_BEDROCK_RUNTIME', async (t) => {
  const { emu } = await startEmu(t)
  const dir = envFileFor(t, emu, { BEDROCK_BATCH_MODE: 'direct' })
  const r = await runScript(dir, ['--count', '40'])
  t.is(r.code, 0, r.out + r.err)
  t.regex(r.out, /mode +direct/)
  t.regex(r.out, /answers +40 of 40 right/)
  t.notRegex(r.out, /job +arn/)
  t.regex(r.out, /\nPASS\n$/)
  const seen = await fetch(`${emu.endpoints.bedrock}/_emulator/runtime-requests`).then((x) => x.json())
  t.true(seen.length >= 40, `${seen.length} runtime calls reached the emulator`)
})

test("openai mode: --openai-model and --api-base point at the emulator's OpenAI endpoint", async (t) => {
  const { emu } = await startEmu(t)
  const dir = envFileFor(t, emu)
  const r = await runScript(dir, [
    '--mode',
    'openai',
    '--openai-model',
    'hosted_vllm/emulator-chat',
    '--api-base',
    emu.endpoints.openai,
    '--count',
    '20',
  ])
  t.is(r.code, 0, r.out + r.err)
  t.regex(r.out, /model +hosted_vllm\/emulator-chat at http:\/\/127\.0\.0\.1:\d+\/v1/)
  t.regex(r.out, /answers +20 of 20 right/)
  t.regex(r.out, /request +first id chatcmpl-/)
  t.regex(r.out, /\nPASS\n$/)
})

test('failed requests make the exit code 1 and are listed; a configuration gap is exit code 2', async (t) => {
  const { emu } = await startEmu(t)
  const dir = envFileFor(t, emu)
  // A port nobody listens on; the environment wins over the .env file.
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const closedPort = server.address().port
  server.close()
  const r = await runScript(dir, ['--mode', 'direct', '--count', '3'], {
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: `http://127.0.0.1:${closedPort}`,
  })
  t.is(r.code, 1, r.out + r.err)
  t.regex(r.out, /answers +0 of 3 right, 3 FAILED/)
  t.regex(r.out, /FAILED +#0 \(C[0-9A-F]{6}-00000\): /)
  t.regex(r.out, /\nFAIL\n$/)

  const empty = mkdtempSync(path.join(tmpdir(), 'bbb-integration-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  const missing = await runScript(empty, ['--mode', 'batch'])
  t.is(missing.code, 2)
  t.regex(
    missing.err,
    /batch mode needs BEDROCK_BATCH_S3_INPUT_URI, BEDROCK_BATCH_S3_OUTPUT_URI, BEDROCK_BATCH_ROLE_ARN/,
  )
  const bad = await runScript(empty, ['--mode', 'sideways'])
  t.is(bad.code, 2)
  t.regex(bad.err, /--mode must be batch, direct or openai/)
})

test('the .env parser: comments, export, quotes, escapes and trailing comments', (t) => {
  const parsed = parseDotenv(
    [
      '# a comment',
      '',
      'PLAIN=value',
      'export EXPORTED=yes',
      'SPACED = padded value  ',
      'TRAILING=abc # not part of it',
      "SINGLE='kept # as is \\n'",
      'DOUBLE="line1\\nline2 \\"q\\" # in quotes"',
      'EMPTY=',
      'URI=s3://bucket/a-b/c?x=1',
    ].join('\n'),
  )
  t.deepEqual(parsed, {
    PLAIN: 'value',
    EXPORTED: 'yes',
    SPACED: 'padded value',
    TRAILING: 'abc',
    SINGLE: 'kept # as is \\n',
    DOUBLE: 'line1\nline2 "q" # in quotes',
    EMPTY: '',
    URI: 's3://bucket/a-b/c?x=1',
  })
  t.throws(() => parseDotenv('not a setting'), { message: /not a KEY=value line/ })
  t.throws(() => parseDotenv('A="open'), { message: /unterminated quote in A/ })
})
