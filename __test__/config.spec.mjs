// Option errors throw at construction, naming the option; the logger sees job events only.

import { createRequire } from 'node:module'
import test from 'ava'
import { claudeCommand, makeClient, startEmu } from './engine-helpers.mjs'

const require = createRequire(import.meta.url)
const { BatchInferenceClient } = require('../index.js')

const good = { s3InputUri: 's3://my-bucket/in/', s3OutputUri: 's3://my-bucket/out/', roleArn: 'arn:aws:iam::123456789012:role/R' }

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
      () => new BatchInferenceClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, batch }),
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
