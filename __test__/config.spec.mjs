// Option errors throw at construction, naming the option; the logger sees job events only.

import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import test from 'ava'
import { claudeCommand, makeClient, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { BatchInferenceClient } = require('../index.js')

const good = {
  s3InputUri: 's3://my-bucket/in/',
  s3OutputUri: 's3://my-bucket/out/',
  roleArn: 'arn:aws:iam::123456789012:role/R',
}

test("setup() takes the seed's options: the batch ones under batch, journalPath as journal.path, the others as they are", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bbb-setup-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const journalPath = path.join(dir, 'journal.db')
  const client = new BatchInferenceClient()
  t.teardown(() => client.destroy())
  const seed = { minBatchSize: 100, maxBatchSize: 1000, batchTimeout: 5, pollInterval: 2, jobTimeoutHours: 48 }
  await client.setup({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    modelId: 'a-model',
    ...good,
    ...seed,
    jobNamePrefix: 'seed',
    journalPath,
  })
  const c = client.config
  t.is(c.region, 'eu-west-1')
  t.is(c.modelId, 'a-model')
  t.is(c.mode, 'batch')
  t.like(c.batch, { ...good, ...seed, jobNamePrefix: 'seed' })
  t.is(c.journal.path, journalPath)
  await t.throwsAsync(() => client.setup({}), { message: /before the first send/ })
})

test('batch options are checked at construction and the error names the option', (t) => {
  const cases = [
    [{ ...good, s3InputUri: undefined }, /s3InputUri/],
    [{ ...good, s3OutputUri: 'https://not-s3/' }, /s3OutputUri.*must start with s3:\/\//],
    [{ ...good, s3InputUri: 's3://ab/in/' }, /s3InputUri.*bucket name "ab" has 2 characters/],
    [{ ...good, roleArn: 'not-an-arn' }, /roleArn/],
    [{ ...good, maxBatchSize: 50_001 }, /maxBatchSize/],
    [{ ...good, batchTimeout: -1 }, /batchTimeout/],
    [{ ...good, jobTimeoutHours: 200 }, /jobTimeoutHours/],
    [{ ...good, jobNamePrefix: 'bad_prefix' }, /jobNamePrefix/],
    [{ ...good, belowMinimum: 'sometimes' }, /belowMinimum/],
  ]
  for (const [batch, re] of cases) {
    const e = t.throws(
      () =>
        new BatchInferenceClient({
          region: 'us-east-1',
          credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
          batch,
        }),
      undefined,
      String(re),
    )
    t.is(e.name, 'ValidationException', String(re))
    t.regex(e.message, re)
  }
  t.throws(() => new BatchInferenceClient({ mode: 'sideways' }), { message: /mode must be/ })
})

test('a client with no options is valid until it is used', (t) => {
  t.notThrows(() => new BatchInferenceClient())
})

test('the logger receives job events without bodies or credentials', async (t) => {
  const { emu } = await startEmu(t)
  const lines = []
  const logger = { info: (m) => lines.push(m), debug() {}, warn() {}, error() {} }
  const { client } = makeClient(t, emu, { logger, batch: { batchTimeout: 0.05 } })
  await Promise.all(Array.from({ length: 5 }, (_, i) => client.send(claudeCommand(`secret prompt ${i}`))))
  t.true(
    lines.some((l) => /job .* Completed/.test(l)),
    lines.join('\n'),
  )
  t.false(lines.some((l) => l.includes('secret prompt') || l.includes(emu.credentials.secretAccessKey)))
})

test('an option of the wrong type is a ValidationException naming it, never a conversion error', (t) => {
  const creds = { region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }
  const cases = [
    [{ batch: { ...good, pollInterval: 'soon' } }, /batch\.pollInterval must be a number of seconds >= 0, got "soon"/],
    [{ batch: { ...good, maxBatchSize: '100' } }, /batch\.maxBatchSize must be a whole number/],
    [{ batch: { ...good, cleanup: 'yes' } }, /batch\.cleanup must be true or false/],
    [{ batch: { ...good, maxBatchsize: 10 } }, /unknown option batch\.maxBatchsize/],
    [{ batch: good, direct: { maxConcurrency: 'many' } }, /direct\.maxConcurrency/],
    [{ batch: good, journal: { path: './j.db', retentionDays: 'week' } }, /journal\.retentionDays/],
    [{ mode: 'openai', openai: { model: 'hosted_vllm/x', timeout: '10s' } }, /openai\.timeout/],
    [{ batch: good, region: 42 }, /region must be a string/],
  ]
  for (const [options, re] of cases) {
    const e = t.throws(() => new BatchInferenceClient({ ...creds, ...options }), undefined, String(re))
    t.is(e.name, 'ValidationException', String(re))
    t.regex(e.message, re)
    t.is(e.$metadata.httpStatusCode, 400)
  }
})

test('client.config shows the resolved settings with their defaults, from one place', (t) => {
  const c = new BatchInferenceClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    batch: good,
  })
  t.teardown(() => c.destroy())
  t.is(c.config.region, 'eu-west-1')
  t.is(c.config.mode, 'batch')
  t.like(c.config.batch, {
    ...good,
    maxBatchSize: 1000,
    batchTimeout: 60,
    pollInterval: 5,
    belowMinimum: 'pad',
    maxAttempts: 2,
  })
  t.deepEqual(c.config.direct, { maxConcurrency: 32 })
  t.false('credentials' in c.config, 'no secrets in the view')
})
