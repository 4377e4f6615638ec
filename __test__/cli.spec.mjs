// The CLI: `bedrock-batch-bridge emulator` serves real SDK clients configured only by the
// environment block it prints, and stops cleanly on SIGINT.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const cli = path.join(root, 'cli.js')

function startCli(args) {
  const child = spawn(process.execPath, [cli, 'emulator', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines = readline.createInterface({ input: child.stdout })
  return { child, lines }
}

async function firstJsonLine(lines) {
  for await (const line of lines) {
    if (line.startsWith('{')) return JSON.parse(line)
  }
  throw new Error('the CLI printed no JSON line')
}

function runNode(script, env) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  return once(child, 'exit').then(([code]) => ({ code, out, err }))
}

test('the emulator command serves SDK clients configured only by the environment it prints', async (t) => {
  const { child, lines } = startCli(['--profile', 'fast', '--json'])
  t.teardown(() => child.kill('SIGKILL'))
  const info = await firstJsonLine(lines)
  t.is(info.env.AWS_ENDPOINT_URL_BEDROCK, info.endpoints.bedrock)
  t.regex(info.endpoints.openai, /^http:\/\/127\.0\.0\.1:\d+\/v1$/)

  // A separate process with no endpoint in code: the SDKs read AWS_ENDPOINT_URL_*.
  const script = `
    import { S3Client, PutObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
    import { BedrockClient, ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'
    import { BedrockRuntimeClient, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
    const s3 = new S3Client({})
    await s3.send(new PutObjectCommand({ Bucket: ${JSON.stringify(info.bucket)}, Key: 'cli/x.jsonl', Body: '{}' }))
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: ${JSON.stringify(info.bucket)}, Prefix: 'cli/' }))
    const jobs = await new BedrockClient({}).send(new ListModelInvocationJobsCommand({}))
    const rt = await new BedrockRuntimeClient({}).send(new InvokeModelCommand({
      modelId: 'anthropic.claude-3-haiku-20240307-v1:0', contentType: 'application/json',
      body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 50, messages: [{ role: 'user', content: 'ping from env' }] }) }))
    console.log(JSON.stringify({ keys: listed.Contents.map((c) => c.Key), jobs: jobs.invocationJobSummaries.length,
      text: JSON.parse(rt.body.transformToString()).content[0].text }))
  `
  const r = await runNode(script, info.env)
  t.is(r.code, 0, r.err)
  const result = JSON.parse(r.out.trim().split('\n').pop())
  t.deepEqual(result.keys, ['cli/x.jsonl'])
  t.is(result.jobs, 0)
  t.true(result.text.includes('ping from env'))

  child.kill('SIGINT')
  const [code] = await once(child, 'exit')
  t.is(code, 0)
})

test('the emulator command refuses an unknown profile with a clear message', async (t) => {
  const { child } = startCli(['--profile', 'slowest'])
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const [code] = await once(child, 'exit')
  t.is(code, 2)
  t.regex(err, /--profile must be fast or realistic/)
})

test('the emulator command listens on the port it is given, S3 on the next one', async (t) => {
  // A port pair may be taken by another test's emulator: try a few.
  let port
  let info
  for (let attempt = 0; attempt < 5 && !info; attempt++) {
    port = 20000 + Math.floor(Math.random() * 20000)
    const { child, lines } = startCli(['--profile', 'fast', '--json', '--port', String(port)])
    t.teardown(() => child.kill('SIGKILL'))
    info = await firstJsonLine(lines).catch(() => undefined)
  }
  t.is(info.endpoints.bedrock, `http://127.0.0.1:${port}`)
  t.is(info.endpoints.s3, `http://127.0.0.1:${port + 1}`)
  const models = await fetch(`${info.endpoints.openai}/models`).then((r) => r.json())
  t.is(models.object, 'list')
})

test('the shared option parser: values, flags, positional arguments, and errors that name the option', async (t) => {
  const { parseArgs } = (await import('../cli/args.js')).default
  const spec = {
    '--n': { key: 'n', type: 'int', min: 1 },
    '--every': { key: 'every', type: 'seconds' },
    '--mode': { key: 'mode', type: 'choice', of: ['a', 'b', 'c'] },
    '--name': { key: 'name', type: 'string' },
    '--json': { key: 'json', type: 'flag' },
  }
  t.deepEqual(parseArgs(['show', '--n', '3', 'x', '--every', '0.5', '--json', '--name', '-dash'], spec, { n: 1 }, { positional: true }), {
    n: 3,
    every: 0.5,
    json: true,
    name: '-dash',
    positional: ['show', 'x'],
  })
  t.deepEqual(parseArgs(['-h'], spec, { n: 1 }), { n: 1, help: true })
  const err = (argv, opts) => t.throws(() => parseArgs(argv, spec, {}, opts)).message
  t.is(err(['--n', '0']), '--n needs a whole number of at least 1, got "0"')
  t.is(err(['--n', '1.5']), '--n needs a whole number of at least 1, got "1.5"')
  t.is(err(['--every', '0']), '--every needs a number of seconds above 0, got "0"')
  t.is(err(['--every', 'soon']), '--every needs a number of seconds above 0, got "soon"')
  t.is(err(['--mode', 'd']), '--mode must be a, b or c, got "d"')
  t.is(err(['--name']), '--name needs a value')
  t.is(err(['--other']), 'unknown option --other')
  t.is(err(['stray']), 'unknown option stray')
  t.is(err(['--other'], { positional: true }), 'unknown option --other')
})
