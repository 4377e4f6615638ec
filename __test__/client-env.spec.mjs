// The migration is the import: with the batch settings and the emulator's endpoints in the
// environment (as `bedrock-batch-bridge emulator` prints them), `new BedrockRuntimeClient({ region })`
// runs batch jobs with no other option.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, claudeBody, listJobs, ROLE_ARN, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { BedrockRuntimeClient, InvokeModelCommand } = require('../index.js')

test('settings and endpoints from the environment are the whole configuration', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_BEDROCK: emu.endpoints.bedrock,
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: emu.endpoints.bedrockRuntime,
    AWS_ENDPOINT_URL_S3: emu.endpoints.s3,
    AWS_ACCESS_KEY_ID: emu.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: emu.credentials.secretAccessKey,
    BEDROCK_BATCH_S3_INPUT_URI: `s3://${emu.bucket}/env/in/`,
    BEDROCK_BATCH_S3_OUTPUT_URI: `s3://${emu.bucket}/env/out/`,
    BEDROCK_BATCH_ROLE_ARN: ROLE_ARN,
    BEDROCK_BATCH_MAX_BATCH_SIZE: '100',
    BEDROCK_BATCH_TIMEOUT: '0.1',
  })
  const client = new BedrockRuntimeClient({ region: emu.region })
  t.teardown(() => client.destroy())
  t.is(client.config.batch.maxBatchSize, 100)
  const outs = await Promise.all(
    Array.from({ length: 150 }, (_, i) =>
      client.send(new InvokeModelCommand({ modelId: CLAUDE, body: JSON.stringify(claudeBody(`env ${i}?`)) })),
    ),
  )
  for (const [i, o] of outs.entries())
    t.true(JSON.parse(o.body.transformToString()).content[0].text.includes(`env ${i}?`))
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 2, '150 requests with a cap of 100 from the environment: two jobs')
})
