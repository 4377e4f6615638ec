// SigV4 on the control plane and the runtime, as AWS checks it: the emulator's credentials pass,
// an unknown access key gets UnrecognizedClientException, a wrong secret or a clock more than five
// minutes off gets InvalidSignatureException (all 403); `verifySignatures: false` (or the CLI's
// --no-verify-signatures) turns the check off. The OpenAI-compatible endpoint is not an AWS API.

import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { BedrockClient, CreateModelInvocationJobCommand, ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'
import { BedrockRuntimeClient, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'
import { errorType, signedRequest } from './emulator-wire.mjs'
import { claudeBody, joinUrl, MODELS, rejectsWith, startEmu } from './helpers.mjs'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')

function clients(emu, { credentials = emu.credentials, region = emu.region, ...extra } = {}) {
  const common = { region, credentials, maxAttempts: 1, ...extra }
  return {
    bedrock: new BedrockClient({ ...common, endpoint: emu.endpoints.bedrock }),
    runtime: new BedrockRuntimeClient({ ...common, endpoint: emu.endpoints.bedrockRuntime }),
  }
}

const list = (bedrock) => bedrock.send(new ListModelInvocationJobsCommand({}))
const invoke = (runtime) =>
  runtime.send(
    new InvokeModelCommand({
      modelId: MODELS.claude,
      contentType: 'application/json',
      body: JSON.stringify(claudeBody('Hi')),
    }),
  )

test('an unknown access key gets UnrecognizedClientException 403 on the control plane and the runtime', async (t) => {
  const { emu } = await startEmu(t)
  const { bedrock, runtime } = clients(emu, {
    credentials: { accessKeyId: 'AKIDNOTTHEEMULATORS1', secretAccessKey: emu.credentials.secretAccessKey },
  })
  for (const call of [() => list(bedrock), () => invoke(runtime)]) {
    const err = await rejectsWith(t, call, 'UnrecognizedClientException', 403)
    t.is(err.message, 'The security token included in the request is invalid.')
  }
})

test('a wrong secret gets InvalidSignatureException 403 with AWS message', async (t) => {
  const { emu } = await startEmu(t)
  const { bedrock, runtime } = clients(emu, {
    credentials: { accessKeyId: emu.credentials.accessKeyId, secretAccessKey: 'not-the-secret' },
  })
  for (const call of [() => list(bedrock), () => invoke(runtime)]) {
    const err = await rejectsWith(t, call, 'InvalidSignatureException', 403)
    t.true(
      err.message.startsWith('The request signature we calculated does not match the signature you provided.'),
      err.message,
    )
  }
})

test('a clock more than five minutes off gets InvalidSignatureException 403; four minutes is fine', async (t) => {
  const { emu } = await startEmu(t)
  const late = clients(emu, { systemClockOffset: -6 * 60_000 })
  const err = await rejectsWith(t, () => list(late.bedrock), 'InvalidSignatureException', 403)
  t.regex(err.message, /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$/)
  const early = clients(emu, { systemClockOffset: 6 * 60_000 })
  const err2 = await rejectsWith(t, () => invoke(early.runtime), 'InvalidSignatureException', 403)
  t.regex(err2.message, /^Signature not yet current: /)
  const close = clients(emu, { systemClockOffset: -4 * 60_000 })
  t.is((await list(close.bedrock)).$metadata.httpStatusCode, 200)
})

test('a signature scoped to another region or service is refused', async (t) => {
  const { emu } = await startEmu(t)
  const other = await signedRequest(emu, { path: '/model-invocation-jobs', region: 'eu-west-1' })
  t.is(other.status, 403)
  t.is(errorType(other), 'InvalidSignatureException')
  t.regex(other.json.message, /scoped to a valid region/)
})

test('a tampered body fails the signature check', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  bedrock.middlewareStack.add(
    (next) => async (args) => {
      args.request.body = args.request.body.replace('tampered-a', 'tampered-b')
      return next(args)
    },
    { step: 'deserialize', priority: 'low', name: 'tamperAfterSigning' },
  )
  const input = {
    jobName: 'tampered-a',
    roleArn: 'arn:aws:iam::123456789012:role/R',
    modelId: MODELS.claude,
    inputDataConfig: { s3InputDataConfig: { s3Uri: `s3://${emu.bucket}/in/` } },
    outputDataConfig: { s3OutputDataConfig: { s3Uri: `s3://${emu.bucket}/out/` } },
  }
  await rejectsWith(t, () => bedrock.send(new CreateModelInvocationJobCommand(input)), 'InvalidSignatureException', 403)
})

test('an unsigned request gets 403 MissingAuthenticationTokenException', async (t) => {
  const { emu } = await startEmu(t)
  for (const [url, init] of [
    [joinUrl(emu.endpoints.bedrock, '/model-invocation-jobs'), {}],
    [
      joinUrl(emu.endpoints.bedrockRuntime, `/model/${MODELS.claude}/invoke`),
      { method: 'POST', body: JSON.stringify(claudeBody('Hi')) },
    ],
  ]) {
    const res = await fetch(url, init)
    t.is(res.status, 403)
    t.is(res.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException')
    t.is((await res.json()).message, 'Missing Authentication Token')
  }
})

test('temporary credentials of the emulator key (any session token) are accepted', async (t) => {
  const { emu } = await startEmu(t)
  const { bedrock, runtime } = clients(emu, { credentials: { ...emu.credentials, sessionToken: 'session-token-1' } })
  t.is((await list(bedrock)).$metadata.httpStatusCode, 200)
  t.is((await invoke(runtime)).$metadata.httpStatusCode, 200)
})

test('the OpenAI-compatible endpoint is not an AWS API and needs no signature', async (t) => {
  const { emu } = await startEmu(t)
  const res = await fetch(joinUrl(emu.endpoints.openai, '/models'))
  t.is(res.status, 200)
})

test('verifySignatures: false accepts any credentials', async (t) => {
  const { emu } = await startEmu(t, { verifySignatures: false })
  const { bedrock, runtime } = clients(emu, { credentials: { accessKeyId: 'AKIDANYONE', secretAccessKey: 'anything' } })
  t.is((await list(bedrock)).$metadata.httpStatusCode, 200)
  t.is((await invoke(runtime)).$metadata.httpStatusCode, 200)
  const unsigned = await fetch(joinUrl(emu.endpoints.bedrock, '/model-invocation-jobs'))
  t.is(unsigned.status, 200)
})

test('the CLI flag --no-verify-signatures turns the check off', async (t) => {
  const child = spawn(
    process.execPath,
    [path.join(root, 'cli.js'), 'emulator', '--profile', 'fast', '--json', '--no-verify-signatures'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  t.teardown(() => child.kill('SIGTERM'))
  const info = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const nl = out.indexOf('\n')
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)))
    })
    child.once('exit', (code) => reject(new Error(`the emulator exited with ${code}`)))
  })
  const { bedrock } = clients(info, { credentials: { accessKeyId: 'AKIDANYONE', secretAccessKey: 'anything' } })
  t.is((await list(bedrock)).$metadata.httpStatusCode, 200)
})
