// The CLI: `bedrock-batch-bridge emulator` serves real SDK clients configured only by the
// environment block it prints, and stops cleanly on SIGINT; every command line is checked as a
// user meets it, in a process of its own (wrong values, unknown options, stray arguments, --help).

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
  t.is(info.env.AWS_ENDPOINT_URL_SERVICE_QUOTAS, info.endpoints.serviceQuotas)
  t.regex(info.endpoints.openai, /^http:\/\/127\.0\.0\.1:\d+\/v1$/)

  // A separate process with no endpoint in code: the SDKs read AWS_ENDPOINT_URL_*.
  const script = `
    import { S3Client, PutObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
    import { BedrockClient, ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'
    import { BedrockRuntimeClient, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
    import { ServiceQuotasClient, ListServiceQuotasCommand } from '@aws-sdk/client-service-quotas'
    const s3 = new S3Client({})
    await s3.send(new PutObjectCommand({ Bucket: ${JSON.stringify(info.bucket)}, Key: 'cli/x.jsonl', Body: '{}' }))
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: ${JSON.stringify(info.bucket)}, Prefix: 'cli/' }))
    const jobs = await new BedrockClient({}).send(new ListModelInvocationJobsCommand({}))
    const rt = await new BedrockRuntimeClient({}).send(new InvokeModelCommand({
      modelId: 'anthropic.claude-3-haiku-20240307-v1:0', contentType: 'application/json',
      body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 50, messages: [{ role: 'user', content: 'ping from env' }] }) }))
    const quotas = await new ServiceQuotasClient({}).send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock' }))
    console.log(JSON.stringify({ keys: listed.Contents.map((c) => c.Key), jobs: jobs.invocationJobSummaries.length,
      text: JSON.parse(rt.body.transformToString()).content[0].text, quotas: quotas.Quotas.map((q) => q.QuotaName) }))
  `
  const r = await runNode(script, info.env)
  t.is(r.code, 0, r.err)
  const result = JSON.parse(r.out.trim().split('\n').pop())
  t.deepEqual(result.keys, ['cli/x.jsonl'])
  t.is(result.jobs, 0)
  t.true(result.text.includes('ping from env'))
  t.true(result.quotas.includes('Records per batch inference job for Claude 3 Haiku'))

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

/** Runs the CLI (or another script) to its end: `{ code, out, err }`. */
async function runCli(args, { script = cli } = {}) {
  const child = spawn(process.execPath, [script, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  // 'close', not 'exit': the output is all read only then.
  const [code] = await once(child, 'close')
  return { code, out, err }
}

const integration = path.join(root, 'scripts', 'integration.js')

test('a wrong option value is exit code 2 with a message that names the option', async (t) => {
  const cases = [
    [['emulator', '--port', 'x'], 'bedrock-batch-bridge: --port needs a whole number, got "x"'],
    [['emulator', '--min-records', '-1'], 'bedrock-batch-bridge: --min-records needs a whole number, got "-1"'],
    [['emulator', '--profile', 'x'], 'bedrock-batch-bridge: --profile must be fast or realistic, got "x"'],
    [['demo', '--count', '0'], 'bedrock-batch-bridge: --count needs a whole number of at least 1, got "0"'],
    [['demo', '--count', '1.5'], 'bedrock-batch-bridge: --count needs a whole number of at least 1, got "1.5"'],
    [['jobs', 'list', '--max', '0'], 'bedrock-batch-bridge: --max needs a whole number of at least 1, got "0"'],
    [
      ['jobs', 'show', 'some-job', '--poll-interval', 'soon'],
      'bedrock-batch-bridge: --poll-interval needs a number of seconds above 0, got "soon"',
    ],
    [
      ['jobs', 'show', 'some-job', '--poll-interval', '0'],
      'bedrock-batch-bridge: --poll-interval needs a number of seconds above 0, got "0"',
    ],
  ]
  const runs = await Promise.all(cases.map(([args]) => runCli(args)))
  for (const [i, [args, message]] of cases.entries()) {
    t.is(runs[i].code, 2, args.join(' '))
    t.is(runs[i].err, `${message}\n`, args.join(' '))
    t.is(runs[i].out, '', args.join(' '))
  }
  // An option without its value.
  const noValue = await runCli(['emulator', '--region'])
  t.is(noValue.code, 2)
  t.regex(noValue.err, /^bedrock-batch-bridge: .*'--region <R>' argument missing/)
  // The integration script: the same checks, its own name.
  for (const [args, message] of [
    [['--count', '0'], 'integration: --count needs a whole number of at least 1, got "0"'],
    [['--poll-interval', '-1'], 'integration: --poll-interval needs a number of seconds above 0, got "-1"'],
  ]) {
    const r = await runCli(args, { script: integration })
    t.is(r.code, 2, args.join(' '))
    t.is(r.err, `${message}\n`, args.join(' '))
  }
})

test('an unknown option, a stray argument or an unknown command is exit code 2 with a message that names it', async (t) => {
  const cases = [
    [['emulator', '--colour'], /^bedrock-batch-bridge: unknown option '--colour'/],
    [['emulator', 'stray'], /^bedrock-batch-bridge: too many arguments for 'emulator'/],
    [['demo', '--colour'], /^bedrock-batch-bridge: unknown option '--colour'/],
    [['demo', '10'], /^bedrock-batch-bridge: too many arguments for 'demo'/],
    [['jobs', 'list', 'stray'], /^bedrock-batch-bridge: too many arguments for 'list'/],
    [['jobs', 'show', 'one-job', 'another'], /^bedrock-batch-bridge: too many arguments for 'show'/],
    // An option of another subcommand.
    [['jobs', 'stop', 'some-job', '--wait'], /^bedrock-batch-bridge: unknown option '--wait'/],
    [['jobs', 'results'], /^bedrock-batch-bridge: jobs results needs a job ARN or id\n/],
    [['jobs', 'frobnicate'], /^bedrock-batch-bridge: unknown jobs command "frobnicate"\n/],
    [['frobnicate'], /^bedrock-batch-bridge: unknown command "frobnicate"\n/],
  ]
  const runs = await Promise.all(cases.map(([args]) => runCli(args)))
  for (const [i, [args, re]] of cases.entries()) {
    t.is(runs[i].code, 2, args.join(' '))
    t.regex(runs[i].err, re, args.join(' '))
    t.is(runs[i].out, '', args.join(' '))
  }
  const stray = await runCli(['stray'], { script: integration })
  t.is(stray.code, 2)
  t.regex(stray.err, /^integration: too many arguments/)
  const unknown = await runCli(['--colour'], { script: integration })
  t.is(unknown.code, 2)
  t.regex(unknown.err, /^integration: unknown option '--colour'/)
})

test('--help of each command lists its options with their meaning and defaults, and exits 0', async (t) => {
  // Each command line, and what its help must show (options, and defaults where there is one).
  const helps = [
    [[], ['emulator', 'demo', 'jobs', 'serve', 'dashboard']],
    [
      ['emulator'],
      [
        '--port <N>',
        '--profile <fast|realistic>',
        '(default: "realistic")',
        '--min-records <N>',
        '--max-concurrent-jobs <N>',
        '--region <R>',
        '--data-dir <DIR>',
        '--json',
      ],
    ],
    [
      ['demo'],
      ['--count <N>', '(default: 500)', '--profile <realistic|fast>', '--json', 'Exit code: 0 when every question'],
    ],
    [
      ['jobs'],
      [
        'jobs list',
        'jobs show <jobArn|jobId>',
        'jobs watch',
        'jobs stop <jobArn|jobId>',
        'jobs results <jobArn|jobId>',
        '--region <R>',
        '--endpoint-url <URL>',
        '--s3-endpoint-url <URL>',
        '--json',
      ],
    ],
    [
      ['jobs', 'list'],
      [
        '--status <S>',
        '--name-contains <X>',
        '--max <N>',
        '--region <R>',
        '--endpoint-url <URL>',
        '--s3-endpoint-url <URL>',
        '--json',
      ],
    ],
    [
      ['jobs', 'show'],
      ['jobArn|jobId', '--wait', '--poll-interval <S>', '(default: 2)', '--region <R>', '--json'],
    ],
    [
      ['jobs', 'watch'],
      [
        '--interval <S>',
        '(default: 2)',
        '--until-done',
        '--follow',
        '--max <N>',
        '(default: 20)',
        '--journal <FILE>',
        '--store <URL>',
      ],
    ],
    [
      ['dashboard'],
      [
        '--journal <FILE>',
        '--store <URL>',
        '--group <NAME>',
        '--host <HOST>',
        '--port <N>',
        '--interval <S>',
        '(default: 5)',
        '--auth <ACCESS_KEY_ID:SECRET_ACCESS_KEY>',
        '--api-key <KEY>',
      ],
    ],
    [
      ['jobs', 'stop'],
      ['jobArn|jobId', '--region <R>', '--json'],
    ],
    [
      ['jobs', 'results'],
      ['jobArn|jobId', '--out <FILE>', '--region <R>', '--json'],
    ],
  ]
  const asked = helps.flatMap(([args, shown]) =>
    ['--help', '-h'].map((help) => ({ argv: [...args, help], args, shown })),
  )
  const runs = await Promise.all(asked.map(({ argv }) => runCli(argv)))
  for (const [i, { argv, args, shown }] of asked.entries()) {
    const r = runs[i]
    const what = argv.join(' ')
    t.is(r.code, 0, `${what}: ${r.err}`)
    t.is(r.err, '', what)
    t.true(r.out.startsWith(`Usage: bedrock-batch-bridge ${args.join(' ')}`.trimEnd()), r.out)
    // Help text is wrapped to the terminal's width: compare with the line breaks taken out.
    const text = r.out.replace(/\s+/g, ' ')
    for (const s of shown) t.true(text.includes(s), `${what} shows ${s}`)
    // Every option comes with its meaning: text after the option's term.
    const optionLines = r.out.split('\n').filter((l) => /^ {2}-/.test(l))
    t.true(optionLines.length > 0, what)
    for (const line of optionLines) t.regex(line, /^ {2}-\S.*? {2,}\S/, `${what}: ${line}`)
  }
  // `help <command>` shows the same text; the program alone shows its own help.
  t.is((await runCli(['help', 'emulator'])).out, (await runCli(['emulator', '--help'])).out)
  t.is((await runCli([])).out, (await runCli(['--help'])).out)
  const integrationHelp = await runCli(['--help'], { script: integration })
  t.is(integrationHelp.code, 0)
  t.regex(integrationHelp.out, /^Usage: npm run integration -- \[options\]/)
  for (const flag of [
    '--mode <batch|direct|openai>',
    '--model <ID>',
    '--openai-model <M>',
    '--api-base <URL>',
    '--count <N>',
    '(default: 10)',
    '--poll-interval <S>',
    '--dotenv <PATH>',
  ]) {
    t.true(integrationHelp.out.replace(/\s+/g, ' ').includes(flag), flag)
  }
})
