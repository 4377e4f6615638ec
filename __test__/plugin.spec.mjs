// batchPlugin on a real BedrockRuntimeClient: InvokeModel is batched, other commands pass
// untouched, region and credentials come from the host client.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, claudeBody, listJobs, ROLE_ARN, startEmu, unique } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { batchPlugin } = require('../index.js')
const sdk = require('@aws-sdk/client-bedrock-runtime')

test('the plugin batches InvokeModel of a real BedrockRuntimeClient and lets other commands through to the runtime', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const runtime = new sdk.BedrockRuntimeClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoint: emu.endpoints.bedrockRuntime,
  })
  const prefix = unique('plugin')
  // No region or credentials here: they come from the host client.
  const plugin = batchPlugin({
    client: runtime,
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      batchTimeout: 0.1,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => plugin.destroy())
  runtime.middlewareStack.use(plugin)

  const outs = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      runtime.send(
        new sdk.InvokeModelCommand({
          modelId: CLAUDE,
          contentType: 'application/json',
          body: JSON.stringify(claudeBody(`plugin ${i}`)),
        }),
      ),
    ),
  )
  for (const [i, o] of outs.entries())
    t.true(JSON.parse(o.body.transformToString()).content[0].text.includes(`plugin ${i}`))
  t.regex(outs[0].$metadata.requestId, /model-invocation-job\/[a-z0-9]{12}#R\d{10}$/)
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1, 'the ten calls went as one batch job')
  t.is(plugin.stats().jobs.length, 1)

  // CountTokens is not the plugin's: the SDK sends it to the runtime as it is (the emulator answers
  // it, with a request id of its own, and no job is made of it).
  const count = await runtime.send(
    new sdk.CountTokensCommand({
      modelId: CLAUDE,
      input: { converse: { messages: [{ role: 'user', content: [{ text: 'untouched' }] }] } },
    }),
  )
  t.true(count.inputTokens > 0, 'answered by the emulator, untouched')
  t.false(/model-invocation-job/.test(count.$metadata.requestId ?? ''), 'not a batch record')
  t.is(plugin.stats().jobs.length, 1, 'no job was made of it')
  t.is((await listJobs(bedrock)).length, 1, 'no job for it')
  t.is(plugin.stats().sentDirect, 0)
  await plugin.close()
})
