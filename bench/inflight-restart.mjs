// stats().inFlight of `serve` across a SIGKILL and a restart on its journal (docs/benchmarks.md, serve
// rounds): N InvokeModel calls with an amz-sdk-invocation-id each wait in a slow job; within a life a
// retry (same id) joins its call in lib/calls.js (inFlight stays N); after the restart the engine's
// ledger counts the N records restored from the journal (no caller) and, once the calls are sent
// again, the N callers waiting for them: 2N, then 0 when all are answered.
// Usage: node bench/inflight-restart.mjs [N=40]
import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { freePort, startServe, writeServeConfig } from './chaos-serve.mjs'

const bridge = createRequire(import.meta.url)('../index.js')
const N = Number(process.argv[2] ?? 40)
const CLAUDE = 'anthropic.claude-3-haiku-20240307-v1:0'
const emu = await bridge.startEmulator({ slowJobSeconds: 4, minRecords: 1 })
const dir = mkdtempSync(path.join(os.tmpdir(), 'inflight-'))
const configFile = writeServeConfig(dir, emu, 'inflight', { minBatchSize: 1, maxBatchSize: 1000 })
const opts = { configFile, port: await freePort(), journal: path.join(dir, 'j.db') }
const calls = Array.from({ length: N }, (_, i) => ({
  id: randomUUID(),
  prompt: `call ${i} [[job:slow]] ${randomUUID()}`,
}))
const send = (url, c) =>
  fetch(`${url}/model/${encodeURIComponent(CLAUDE)}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'amz-sdk-invocation-id': c.id },
    body: JSON.stringify({
      anthropic_version: 'bedrock-2023-05-31',
      max_tokens: 64,
      messages: [{ role: 'user', content: c.prompt }],
    }),
  }).then(
    async (r) => (r.status === 200 ? 200 : `${r.status} ${await r.text()}`),
    (e) => e.cause?.code ?? e.message,
  )
const stats = async (url) => {
  const s = await (await fetch(`${url}/_bridge/stats`)).json()
  return `queued ${s.queued}, inFlight ${s.inFlight}, jobs ${s.jobs.length}`
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
let life = startServe(opts)
const url = await life.ready
const first = calls.map((c) => send(url, c))
await sleep(1200)
console.log(`life 1, ${N} calls waiting:                       ${await stats(url)}`)
const retries = calls.map((c) => send(url, c)) // the same calls again (an SDK's retry after a read timeout): joined in JS (lib/calls.js)
await sleep(200)
console.log(`life 1, each call retried once (same id):       ${await stats(url)}`)
await life.kill('SIGKILL')
console.log('life 1 killed: first attempts', [...new Set(await Promise.all(first))], 'retries', [
  ...new Set(await Promise.all(retries)),
])
life = startServe(opts)
await life.ready
await sleep(300)
console.log(`life 2, restored from the journal, no caller:   ${await stats(url)}`)
const again = calls.map((c) => send(url, c))
await sleep(300)
console.log(`life 2, the ${N} calls sent again (same ids):    ${await stats(url)}`)
const more = calls.map((c) => send(url, c))
await sleep(300)
console.log(`life 2, and once more (same ids):              ${await stats(url)}`)
console.log('answers:', [...new Set(await Promise.all(again))], [...new Set(await Promise.all(more))])
await sleep(200)
console.log(`life 2, all answered:                          ${await stats(url)}`)
await life.kill('SIGTERM')
emu.stop()
