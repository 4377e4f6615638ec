// Credentials given as an async function: called when the engine signs, again once they expire,
// and a failure rejects the requests with CredentialsProviderError. (Moved from the journal spec,
// where they were kept; they need no store.)

import test from 'ava'

import { BatchInferenceClient, claudeCommand, claudeText, ROLE_ARN, startEmu } from './helpers.mjs'

test('credentials as an async function: called for the first request and again once they expire', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  let calls = 0
  const client = new BatchInferenceClient({
    region: emu.region,
    endpoints: emu.endpoints,
    // Short-lived credentials: each call's expire within the SDK's refresh margin, so every
    // signed request needs the function again.
    credentials: async () => {
      calls++
      return { ...emu.credentials, sessionToken: `session-${calls}`, expiration: new Date(Date.now() + 1000) }
    },
    batch: {
      s3InputUri: `s3://${emu.bucket}/creds/in/`,
      s3OutputUri: `s3://${emu.bucket}/creds/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.05,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => client.destroy())
  t.true(claudeText(await client.send(claudeCommand('signed with a function'))).includes('signed with a function'))
  t.true(calls >= 2, `called ${calls} times`)

  // Long-lived ones are fetched once and reused.
  let longCalls = 0
  const steady = new BatchInferenceClient({
    region: emu.region,
    endpoints: emu.endpoints,
    credentials: async () => {
      longCalls++
      return { ...emu.credentials, expiration: Date.now() + 3600_000 }
    },
    batch: {
      s3InputUri: `s3://${emu.bucket}/creds2/in/`,
      s3OutputUri: `s3://${emu.bucket}/creds2/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.05,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => steady.destroy())
  await steady.send(claudeCommand('steady'))
  t.is(longCalls, 1)
})

test('a credentials function that fails rejects the requests with CredentialsProviderError and its message', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const failing = new BatchInferenceClient({
    region: emu.region,
    endpoints: emu.endpoints,
    credentials: async () => {
      throw new Error('vault is sealed')
    },
    batch: {
      s3InputUri: `s3://${emu.bucket}/credsfail/in/`,
      s3OutputUri: `s3://${emu.bucket}/credsfail/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.05,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => failing.destroy())
  const err = await t.throwsAsync(failing.send(claudeCommand('never sent')), { name: 'CredentialsProviderError' })
  t.regex(err.message, /vault is sealed/)
  t.throws(() => new BatchInferenceClient({ region: 'us-east-1', mode: 'direct', credentials: { accessKeyId: 1 } }), {
    name: 'ValidationException',
    message: /credentials/,
  })
})
