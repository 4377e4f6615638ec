// OpenAI-compatible mode against a real third-party server: a LiteLLM proxy (from PyPI) with
// mock_response models, a non-default master key, and its cost map loaded locally so it stays off
// the network. `.ci/test` installs it and sets LITELLM_BIN.

import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import test from 'ava'

const require = createRequire(import.meta.url)
const { BatchInferenceClient, InvokeModelCommand } = require('../index.js')

const MASTER_KEY = 'sk-bbb-litellm-test-key'
const MOCK = 'This is a LiteLLM mock answer.'
let proxy

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const p = srv.address().port
      srv.close(() => resolve(p))
    })
  })
}

test.before(async () => {
  const bin = process.env.LITELLM_BIN
  if (!bin || !existsSync(bin))
    throw new Error('LITELLM_BIN must point at the litellm executable (bash .ci/test installs it)')
  const dir = mkdtempSync(path.join(tmpdir(), 'bbb-litellm-'))
  const config = path.join(dir, 'config.yaml')
  writeFileSync(
    config,
    `model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: sk-not-used
      mock_response: "${MOCK}"
litellm_settings:
  telemetry: false
general_settings:
  master_key: ${MASTER_KEY}
`,
  )
  const port = await freePort()
  const child = spawn(bin, ['--config', config, '--host', '127.0.0.1', '--port', String(port)], {
    env: { ...process.env, LITELLM_LOCAL_MODEL_COST_MAP: 'True', LITELLM_TELEMETRY: 'False', DISABLE_ADMIN_UI: 'True' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)))
  proxy = { child, dir, base: `http://127.0.0.1:${port}/v1` }
  const deadline = Date.now() + 90_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`litellm exited: ${stderr}`)
    const ok = await fetch(`http://127.0.0.1:${port}/health/liveliness`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (Date.now() > deadline) throw new Error(`litellm did not start: ${stderr}`)
    await new Promise((r) => setTimeout(r, 250))
  }
})

test.after.always(() => {
  if (proxy) {
    proxy.child.kill('SIGKILL')
    rmSync(proxy.dir, { recursive: true, force: true })
  }
})

function client(t, model) {
  const c = new BatchInferenceClient({ mode: 'openai', openai: { model, apiBase: proxy.base, apiKey: MASTER_KEY } })
  t.teardown(() => c.destroy())
  return c
}

const claudeBody = (text, extra = {}) =>
  JSON.stringify({
    anthropic_version: 'bedrock-2023-05-31',
    max_tokens: 64,
    messages: [{ role: 'user', content: text }],
    ...extra,
  })

test.serial('a LiteLLM proxy answers through openai mode in the Bedrock Claude shape', async (t) => {
  const c = client(t, 'openai/mock-gpt')
  const out = await c.send(
    new InvokeModelCommand({
      modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
      contentType: 'application/json',
      body: claudeBody('Hello proxy', { system: 'Be brief.', temperature: 0.2 }),
    }),
  )
  const r = JSON.parse(out.body.transformToString())
  t.deepEqual(Object.keys(r), ['id', 'type', 'role', 'model', 'content', 'stop_reason', 'stop_sequence', 'usage'])
  t.deepEqual(r.content, [{ type: 'text', text: MOCK }])
  t.is(r.stop_reason, 'end_turn')
  t.is(r.model, 'mock-gpt')
  t.true(r.usage.output_tokens > 0)
  t.is(out.$metadata.httpStatusCode, 200)
})

test.serial('a LiteLLM proxy error keeps its status under an AWS name', async (t) => {
  const c = client(t, 'openai/no-such-model')
  const err = await t.throwsAsync(() => c.send(new InvokeModelCommand({ modelId: 'm', body: claudeBody('x') })))
  t.is(err.name, 'ValidationException')
  t.is(err.$metadata.httpStatusCode, 400)
  t.regex(err.message, /Invalid model name/)
})

test.serial('a hosted_vllm model string reaches the proxy at the given api base, top_k included', async (t) => {
  const c = client(t, 'hosted_vllm/mock-gpt')
  const out = await c.send(
    new InvokeModelCommand({ modelId: 'm', body: claudeBody('with top_k', { top_k: 5, stop_sequences: ['END'] }) }),
  )
  t.is(JSON.parse(out.body.transformToString()).content[0].text, MOCK)
})

test.serial('an anthropic/ model string speaks the Messages API (the Claude body nearly as is)', async (t) => {
  const c = client(t, 'anthropic/mock-gpt')
  const out = await c.send(
    new InvokeModelCommand({ modelId: 'm', body: claudeBody('Hello messages API', { top_k: 3 }) }),
  )
  const r = JSON.parse(out.body.transformToString())
  t.deepEqual(Object.keys(r), ['id', 'type', 'role', 'model', 'content', 'stop_reason', 'stop_sequence', 'usage'])
  t.deepEqual(r.content, [{ text: MOCK, type: 'text' }])
  t.is(r.stop_reason, 'end_turn')
  t.regex(out.$metadata.requestId, /^msg_/)
})
