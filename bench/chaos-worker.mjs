// One life of a chaos round's client (bench/chaos.mjs starts it, kills it with SIGKILL at a random
// moment and starts it again on the same journal until it finishes). It sends `count` requests with
// idempotency keys `k-<i>` through batch mode with the SQLite journal, and appends one line per
// settled request to the answers file, as soon as it settles:
//   k-<i> <TAB> <answer: "ok:<sha1 of the answer text>" or "err:<error name>"> <TAB> <requestId>
// with appendFileSync, so a line written is a line kept whatever kills the process next. Every
// life sends every key again: a key answered in an earlier life must resolve from the journal
// (its answer the same, no new job). Once all settled it closes the client and prints one JSON line:
// { done, answered, failedCalls, jobs } (`jobs`: the journal's jobs, read after close()).
// Configuration is one JSON argument: { journal, answers, endpoints, region, credentials, bucket,
// prefix, count, maxBatchSize, from?, store? }: with `store` ({ url, group, ... }) the client is a
// member of a PostgreSQL group instead of a journal's, sends keys `from`..`from + count - 1`, and
// prints `{"leader":true|false}` whenever it takes or loses the lead (so the suite can kill the leader).
import { createHash } from 'node:crypto'
import { appendFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { BatchInferenceClient, InvokeModelCommand } = require('../index.js')

const MODEL = 'anthropic.claude-3-haiku-20240307-v1:0'
const cfg = JSON.parse(process.argv[2])

/**
 * The fault marker request i carries, if any: a per-record error that is final (400), one that is
 * retried then final (429), a record with no output line, and one whose output line is not JSON.
 * bench/chaos.mjs finds request i's records in the jobs' output by the number in its prompt.
 */
function marker(i) {
  if (i % 97 === 5) return '[[error:400]]'
  if (i % 101 === 7) return '[[error:429]]'
  if (i % 103 === 11) return '[[missing]]'
  if (i % 107 === 13) return '[[malformed]]'
  return ''
}

/** The prompt of request i (its number, so that an answer can be told apart from another's). */
const prompt = (i) => `Chaos question ${i}: what is ${i} times three? ${marker(i)}`

const sha1 = (s) => createHash('sha1').update(s).digest('hex').slice(0, 16)

/** What one settled request is recorded as: its answer's digest (a wrong answer says so) or its error's name. */
function outcome(i, out) {
  const text = JSON.parse(out.body.transformToString()).content[0].text
  return text.includes(`Chaos question ${i}:`) ? `ok:${sha1(text)}` : `wrong:${sha1(text)}`
}

function record(key, answer, requestId) {
  appendFileSync(cfg.answers, `${key}\t${answer}\t${requestId ?? ''}\n`)
}

/** Prints `{"leader":bool}` each time this member of a group takes or loses the lead. */
function reportLead(client) {
  let leading = false
  const timer = setInterval(() => {
    let now = leading
    try {
      now = Boolean(client.stats().leader)
    } catch {}
    if (now !== leading) process.stdout.write(`${JSON.stringify({ leader: now })}\n`)
    leading = now
  }, 50)
  timer.unref()
}

async function main() {
  const client = new BatchInferenceClient({
    region: cfg.region,
    credentials: cfg.credentials,
    endpoints: cfg.endpoints,
    ...(cfg.store ? { store: cfg.store } : { journal: { path: cfg.journal } }),
    batch: {
      s3InputUri: `s3://${cfg.bucket}/${cfg.prefix}/in/`,
      s3OutputUri: `s3://${cfg.bucket}/${cfg.prefix}/out/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatch',
      maxBatchSize: cfg.maxBatchSize,
      minBatchSize: 100,
      batchTimeout: 0.2,
      pollInterval: 0.05,
    },
  })
  if (cfg.store) reportLead(client)
  const sends = []
  const from = cfg.from ?? 0
  for (let i = from; i < from + cfg.count; i++) {
    const key = `k-${i}`
    const body = JSON.stringify({
      anthropic_version: 'bedrock-2023-05-31',
      max_tokens: 64,
      messages: [{ role: 'user', content: prompt(i) }],
    })
    const command = new InvokeModelCommand({ modelId: MODEL, contentType: 'application/json', body })
    sends.push(
      client.send(command, { idempotencyKey: key }).then(
        (out) => record(key, outcome(i, out), out.$metadata.requestId),
        (err) => record(key, `err:${err.name}`, err.jobArn ? `${err.jobArn}#${err.recordId ?? ''}` : ''),
      ),
    )
  }
  client.flush()
  await Promise.all(sends)
  const { failedCalls } = client.stats()
  await client.close()
  const jobs = (await client.jobs()).map((j) => ({ jobArn: j.jobArn, jobName: j.jobName, status: j.status }))
  process.stdout.write(`${JSON.stringify({ done: true, answered: sends.length, failedCalls, jobs })}\n`)
}

await main()
