// The PostgreSQL store's own behaviours (those the journal shares are in store.spec.mjs), on a real
// server (BEDROCK_BATCH_TEST_PG_URL; .ci/test starts one with .ci/postgres.sh), against the
// emulator: a server that cannot be reached, refuses the password or never answers; what crosses a
// group besides InvokeModel, and groups kept apart; the store's options and environment variable;
// the CLI reading a group. Each test works on a group of its own. Without a server these tests
// fail, unless BEDROCK_BATCH_SKIP_PG=1, where each logs that it was skipped. Several processes on
// one group: group.spec.mjs.

import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import test from 'ava'

import {
  BatchInferenceClient,
  bridge,
  CLAUDE,
  claudeCommand,
  claudeText,
  jobsNamed,
  PG_URL,
  pgTest,
  ROLE_ARN,
  startEmu,
  unique,
  waitFor,
} from './helpers.mjs'

const { ConverseCommand, ConverseStreamCommand } = bridge
const PASSWORD = PG_URL ? decodeURIComponent(new URL(PG_URL).password) : ''

/** The test server's URL with another password. */
function withPassword(password) {
  const u = new URL(PG_URL)
  u.password = password
  return u.toString()
}

/** A port on 127.0.0.1 where nothing listens. */
async function closedPort() {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

function batchOptions(emu, prefix, batch = {}) {
  return {
    s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
    s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
    roleArn: ROLE_ARN,
    maxBatchSize: 100,
    minBatchSize: 1,
    batchTimeout: 0.1,
    pollInterval: 0.05,
    ...batch,
  }
}

/** A client for the emulator on the store's `group`; `endpoints` may be replaced (e.g. by dead ones). */
function storeClient(t, emu, group, { prefix, endpoints = emu.endpoints, batch = {}, store = {} } = {}) {
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints,
    store: { url: PG_URL, group, ...store },
    batch: batchOptions(emu, prefix, batch),
  })
  t.teardown(() => client.destroy())
  return client
}

pgTest(
  'a closed port or a wrong password: the client starts at once and every send rejects with StoreUnavailableException within connectTimeout',
  async (t) => {
    const { emu } = await startEmu(t, { minRecords: 1 })
    const port = await closedPort()
    const secret = 'wrong-secret-1234'
    const closedUrl = `postgres://bbb:${secret}@127.0.0.1:${port}/bbb?sslmode=disable`
    for (const [url, where, why] of [
      [closedUrl, `127.0.0.1:${port}`, /refused|could not be opened/i],
      [withPassword(secret), new URL(PG_URL).host, /password authentication failed/],
    ]) {
      const started = performance.now()
      const client = storeClient(t, emu, unique('pg-down'), {
        prefix: unique('pgdown'),
        store: { url, connectTimeout: 2 },
      })
      t.true(performance.now() - started < 1000, 'the constructor does not wait for the server')
      const sends = [
        client.send(claudeCommand('never sent')),
        client.send(claudeCommand('keyed, never sent'), { idempotencyKey: 'k' }),
      ]
      for (const send of sends) {
        const err = await t.throwsAsync(send, { name: 'StoreUnavailableException' })
        t.true(err.message.includes(where), err.message)
        t.regex(err.message, why)
        t.false(err.message.includes(secret), err.message)
        t.is(err.$fault, 'server')
      }
      t.true(
        performance.now() - started < 2000 + 3000,
        `within connectTimeout and a margin: ${performance.now() - started} ms`,
      )
      // Later sends too.
      await t.throwsAsync(client.send(claudeCommand('later')), { name: 'StoreUnavailableException' })
      await t.throwsAsync(client.jobs(), { name: 'StoreUnavailableException' })
      t.is(client.stats().failedCalls.store, 1, 'the store that could not be opened is one failed call')
    }
  },
)

pgTest(
  'a server that accepts and never answers: sends reject with StoreUnavailableException once connectTimeout is over',
  async (t) => {
    const { emu } = await startEmu(t, { minRecords: 1 })
    const sockets = new Set()
    const silent = createServer((s) => sockets.add(s))
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
    t.teardown(() => {
      for (const s of sockets) s.destroy()
      silent.close()
    })
    const { port } = silent.address()
    const started = performance.now()
    const client = storeClient(t, emu, unique('pg-silent'), {
      prefix: unique('pgsilent'),
      store: { url: `postgres://bbb:pw-9876@127.0.0.1:${port}/bbb?sslmode=disable`, connectTimeout: 1 },
    })
    const err = await t.throwsAsync(client.send(claudeCommand('never sent')), { name: 'StoreUnavailableException' })
    const elapsed = performance.now() - started
    t.true(elapsed >= 900 && elapsed < 1000 + 3000, `${elapsed} ms`)
    t.regex(err.message, /did not answer within 1 s/)
    t.true(err.message.includes(`127.0.0.1:${port}`), err.message)
  },
)

pgTest(
  'Converse answers and stream events cross a group: the member gets them from the leader; another group is apart',
  async (t) => {
    const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
    const group = unique('pg-share')
    const prefix = unique('pgshare')
    const first = storeClient(t, emu, group, { prefix, batch: { batchTimeout: 1.5, jobNamePrefix: `${prefix}-g` } })
    const second = storeClient(t, emu, group, { prefix, batch: { batchTimeout: 1.5, jobNamePrefix: `${prefix}-g` } })
    await waitFor('one of the two to lead', () => first.stats().leader || second.stats().leader)
    t.true(first.stats().leader !== second.stats().leader, 'exactly one leads')
    // Converse answers (sent as Claude records, turned back by the leader) and a stream's events
    // (made by the member from the whole answer) cross the group as well as InvokeModel answers
    // (store.spec.mjs).
    const converse = (text) => ({
      modelId: CLAUDE,
      messages: [{ role: 'user', content: [{ text }] }],
      inferenceConfig: { maxTokens: 64 },
    })
    const [c, st] = await Promise.all([
      first.send(new ConverseCommand(converse('conversed by the first'))),
      second.send(new ConverseStreamCommand(converse('streamed to the second'))),
    ])
    t.true(c.output.message.content[0].text.includes('conversed by the first'), JSON.stringify(c.output))
    t.is(c.stopReason, 'end_turn')
    let streamed = ''
    const kinds = []
    for await (const e of st.stream) {
      kinds.push(Object.keys(e)[0])
      streamed += e.contentBlockDelta?.delta?.text ?? ''
    }
    t.true(streamed.includes('streamed to the second'), streamed)
    t.is(kinds[0], 'messageStart')
    t.is(kinds.at(-1), 'metadata')
    t.is(c.$metadata.requestId.split('#')[0], st.$metadata.requestId.split('#')[0], 'one job answered both')
    t.is((await jobsNamed(bedrock, `${prefix}-g`)).length, 1)
    const other = storeClient(t, emu, unique('pg-share-other'), { prefix, batch: { jobNamePrefix: `${prefix}-o` } })
    t.true(claudeText(await other.send(claudeCommand('another group'))).includes('another group'))
    t.is((await jobsNamed(bedrock, `${prefix}-o`)).length, 1, 'its own job')
  },
)

test('store options are checked at construction and never echo the password', (t) => {
  const batch = { s3InputUri: 's3://bucket/in/', s3OutputUri: 's3://bucket/out/', roleArn: ROLE_ARN }
  const url = 'postgres://bbb:hunter2-secret@127.0.0.1:9/bbb'
  const both = t.throws(
    () => new BatchInferenceClient({ region: 'us-east-1', batch, store: { url }, journal: { path: 'x.db' } }),
    {
      name: 'ValidationException',
    },
  )
  t.regex(both.message, /store and journal/)
  t.throws(() => new BatchInferenceClient({ region: 'us-east-1', mode: 'direct', store: { url } }), {
    name: 'ValidationException',
    message: /batch mode/,
  })
  for (const [store, want] of [
    [{ url: 'postgres://bbb:hunter2-secret@127.0.0.1:99999/bbb' }, /store\.url.*port/],
    [{ url: 'postgres://bbb:hunter2-secret@127.0.0.1/bbb?sslmode=sometimes' }, /sslmode/],
    [{ url: 'mysql://bbb:hunter2-secret@127.0.0.1/bbb' }, /store\.url/],
    [{ url, connectTimeout: 0 }, /store\.connectTimeout/],
    [{ url, group: '' }, /store\.group/],
    [{ url, retentionDays: -1 }, /store\.retentionDays/],
    [{ url, electionInterval: 0 }, /store\.electionInterval/],
    [{ url, electionInterval: 61 }, /store\.electionInterval/],
    [{ url, outageTimeout: -1 }, /store\.outageTimeout/],
  ]) {
    const err = t.throws(() => new BatchInferenceClient({ region: 'us-east-1', batch, store }), {
      name: 'ValidationException',
    })
    t.regex(err.message, want)
    t.false(err.message.includes('hunter2'), err.message)
  }
  const client = new BatchInferenceClient({
    region: 'us-east-1',
    batch,
    store: { url, group: 'g', connectTimeout: 5, outageTimeout: 30 },
  })
  t.teardown(() => client.destroy())
  t.deepEqual(client.config.store, {
    url: 'postgres://bbb@127.0.0.1:9/bbb?sslmode=prefer',
    group: 'g',
    connectTimeout: 5,
    retentionDays: 7,
    electionInterval: 1,
    outageTimeout: 30,
  })
})

test('BEDROCK_BATCH_STORE_URL configures the store of a batch client; a client with a journal is told to choose', (t) => {
  const batch = { s3InputUri: 's3://bucket/in/', s3OutputUri: 's3://bucket/out/', roleArn: ROLE_ARN }
  process.env.BEDROCK_BATCH_STORE_URL = 'postgres://bbb:env-secret-77@127.0.0.1:9/bbb?sslmode=disable'
  try {
    const client = new BatchInferenceClient({ region: 'us-east-1', batch })
    t.teardown(() => client.destroy())
    t.like(client.config.store, {
      url: 'postgres://bbb@127.0.0.1:9/bbb?sslmode=disable',
      group: 'default',
      connectTimeout: 30,
    })
    const err = t.throws(() => new BatchInferenceClient({ region: 'us-east-1', batch, journal: { path: 'x.db' } }), {
      name: 'ValidationException',
    })
    t.regex(err.message, /BEDROCK_BATCH_STORE_URL/)
    t.regex(err.message, /journal/)
    const direct = new BatchInferenceClient({ region: 'us-east-1', mode: 'direct' })
    t.teardown(() => direct.destroy())
    t.is(direct.config.store, undefined, 'other modes ignore the variable')
  } finally {
    delete process.env.BEDROCK_BATCH_STORE_URL
  }
})

/** Runs the CLI; resolves with { code, out, err }. */
function cli(args, env = {}) {
  const script = fileURLToPath(new URL('../cli.js', import.meta.url))
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err })))
}

pgTest(
  'jobs list|show|results --store read a group of the store, while its client holds it; a bad password fails naming host and port only',
  async (t) => {
    const { emu } = await startEmu(t, { minRecords: 1 })
    const group = unique('pg-cli')
    const client = storeClient(t, emu, group, { prefix: unique('pgcli') })
    const outs = await Promise.all([
      client.send(claudeCommand('cli question one')),
      client.send(claudeCommand('cli question two'), { idempotencyKey: 'cli-key' }),
      client.send(claudeCommand('cli question three [[error:400]]')).catch((e) => e),
    ])
    t.is(outs[2].name, 'ValidationException')
    const [job] = await client.jobs()
    // The client still holds the group (its lock): the CLI reads without it.
    const list = await cli(['jobs', 'list', '--json', '--store', PG_URL, '--group', group])
    t.is(list.code, 0, list.err)
    const listed = JSON.parse(list.out)
    t.is(listed.length, 1)
    t.like(listed[0], {
      jobArn: job.jobArn,
      modelId: CLAUDE,
      status: 'Completed',
      totalRecordCount: 3,
      successRecordCount: 2,
      errorRecordCount: 1,
    })
    t.false(list.out.includes(PASSWORD) || list.err.includes(PASSWORD))

    // BEDROCK_BATCH_STORE_URL instead of --store; the job by its id.
    const id = job.jobArn.split('/').at(-1)
    const show = await cli(['jobs', 'show', id, '--group', group], { BEDROCK_BATCH_STORE_URL: PG_URL })
    t.is(show.code, 0, show.err)
    t.true(show.out.includes(job.jobArn) && show.out.includes('Completed'), show.out)
    t.false(show.out.includes(PASSWORD))

    const results = await cli(['jobs', 'results', job.jobArn, '--store', PG_URL, '--group', group])
    t.is(results.code, 0, results.err)
    const lines = results.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    t.is(lines.length, 3)
    t.deepEqual(
      lines.map((l) => l.recordId),
      [...lines.map((l) => l.recordId)].sort(),
      'in record order',
    )
    const keyed = lines.find((l) => l.idempotencyKey === 'cli-key')
    t.true(keyed.modelOutput.content[0].text.includes('cli question two'))
    const failed = lines.filter((l) => l.error)
    t.is(failed.length, 1)
    t.is(failed[0].error.name, 'ValidationException')
    t.regex(results.err, /3 answers in the store: 2 succeeded, 1 failed/)

    // Another group has none of it; a wrong password fails, naming host and port, never the password.
    const other = await cli(['jobs', 'list', '--json', '--store', PG_URL, '--group', unique('pg-cli-empty')])
    t.deepEqual(JSON.parse(other.out), [])
    const wrong = withPassword('not-the-password-42')
    const refused = await cli(['jobs', 'list', '--store', wrong, '--group', group])
    t.is(refused.code, 2)
    const u = new URL(PG_URL)
    t.regex(refused.err, /StoreUnavailableException/)
    t.true(refused.err.includes(`${u.hostname}:${u.port}`), refused.err)
    t.false(refused.err.includes('not-the-password-42'))
    const missing = await cli(['jobs', 'show', 'aaaaaaaaaaaa', '--store', PG_URL, '--group', group])
    t.is(missing.code, 2)
    t.regex(missing.err, /ResourceNotFoundException: no job aaaaaaaaaaaa/)
  },
)
