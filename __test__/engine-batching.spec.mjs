// End-to-end tests of the batch engine's batching (issue 3, design §2 and §4): the JS client over
// the built addon, against the local emulator, with the real AWS SDKs as witnesses.

import { InvokeModelCommand as SdkInvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'

import {
  CLAUDE,
  claudeBody,
  claudeCommand,
  claudePrompt,
  claudeText,
  describe,
  failures,
  getJob,
  InvokeModelCommand,
  inputRecords,
  listJobs,
  listKeys,
  makeClient,
  NOVA,
  novaBody,
  novaText,
  recordJobEvents,
  runtimeRequests,
  settle,
  startEmu,
  waitFor,
} from './helpers.mjs'

/** AWS's pattern for job names (at most 63 characters, no '_'). */
const JOB_NAME_RE = /^[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9+\-.]){0,63}$/

test('500 concurrent questions with maxBatchSize 100 run as exactly 5 jobs of at most 100 records, and every answer contains its own question', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { maxBatchSize: 100 } })

  const events = recordJobEvents(client)
  const questions = Array.from({ length: 500 }, (_, i) => `What is ${i} + ${i}?`)
  const outcomes = await Promise.all(questions.map((q) => settle(client.send(claudeCommand(q)))))

  t.deepEqual(failures(outcomes), [], 'every request resolves')
  for (const [i, o] of outcomes.entries()) {
    if (!o.ok) continue
    const text = claudeText(o.value)
    if (!text.includes(questions[i]))
      t.fail(`answer ${i} does not contain its question ${JSON.stringify(questions[i])}: ${JSON.stringify(text)}`)
  }

  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 5, `jobs: ${jobs.map((j) => `${j.jobName}:${j.status}`).join(', ')}`)
  let total = 0
  for (const summary of jobs) {
    // The emulator's own count of the job's records.
    const job = await getJob(bedrock, summary.jobArn)
    t.is(job.modelId, CLAUDE)
    t.true(
      job.totalRecordCount > 0 && job.totalRecordCount <= 100,
      `job ${job.jobName} has ${job.totalRecordCount} records`,
    )
    total += job.totalRecordCount
  }
  t.is(total, 500, 'the 5 jobs hold the 500 requests and nothing else (no padding was needed)')
  const stats = client.stats()
  t.is(stats.padded, 0)
  t.is(stats.jobs.length, 5, 'stats() lists the 5 jobs')
  t.deepEqual(
    stats.jobs.map((j) => j.jobArn).sort(),
    jobs.map((j) => j.jobArn).sort(),
    "stats() name the emulator's jobs",
  )
  for (const j of stats.jobs) {
    t.is(j.status, 'Completed', `stats() status of ${j.jobName}`)
    t.is(j.totalRecordCount, 100, `stats() totalRecordCount of ${j.jobName}`)
    t.is(j.modelId, CLAUDE)
  }
  t.true(
    stats.tokens.input > 0 && stats.tokens.output > 0,
    `token totals from the manifests: ${JSON.stringify(stats.tokens)}`,
  )
  // client.on('job') saw each job reach Completed (events may trail the settlements a little).
  await t.notThrowsAsync(
    waitFor(
      'a Completed job event for each of the 5 jobs',
      () => new Set(events.filter((e) => e.status === 'Completed').map((e) => e.jobArn)).size === 5,
      {
        timeoutMs: 5000,
      },
    ),
  )
  await client.close()
})

test("a command's own modelId wins over the client default, and each model gets its own jobs", async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const { client, inputPrefix } = makeClient(t, emu, { modelId: CLAUDE })

  const claudeQs = Array.from({ length: 30 }, (_, i) => `Claude question ${i}: what is ${i} * 3?`)
  const novaQs = Array.from({ length: 20 }, (_, i) => `Nova question ${i}: what is ${i} * 7?`)
  // Claude commands carry no modelId (the client default applies); Nova commands name their own.
  const claudeP = claudeQs.map((q) => settle(client.send(claudeCommand(q, { modelId: null }))))
  const novaP = novaQs.map((q) =>
    settle(
      client.send(
        new InvokeModelCommand({ modelId: NOVA, contentType: 'application/json', body: JSON.stringify(novaBody(q)) }),
      ),
    ),
  )
  await client.flush()
  const [claudeOut, novaOut] = [await Promise.all(claudeP), await Promise.all(novaP)]

  t.deepEqual(failures(claudeOut), [], 'every Claude request resolves')
  t.deepEqual(failures(novaOut), [], 'every Nova request resolves')
  for (const [i, o] of claudeOut.entries())
    if (o.ok) t.true(claudeText(o.value).includes(claudeQs[i]), `Claude answer ${i}`)
  for (const [i, o] of novaOut.entries()) {
    if (!o.ok) continue
    // A Nova-shaped answer proves the request ran on the Nova model, not the client default.
    let text
    t.notThrows(
      () => {
        text = novaText(o.value)
      },
      `Nova answer ${i} has the Nova shape: ${o.value.body.transformToString().slice(0, 200)}`,
    )
    if (text !== undefined) t.true(text.includes(novaQs[i]), `Nova answer ${i}`)
  }

  const jobs = await listJobs(bedrock)
  t.deepEqual(jobs.map((j) => j.modelId).sort(), [NOVA, CLAUDE].sort(), 'one job per model')
  // Each job's input holds only its own model's requests.
  const records = await inputRecords(s3, emu.bucket, inputPrefix)
  const byKey = new Map()
  for (const r of records) {
    if (!byKey.has(r.key)) byKey.set(r.key, [])
    byKey.get(r.key).push(r)
  }
  t.is(byKey.size, 2, `two input files: ${[...byKey.keys()].join(', ')}`)
  const claudeSeen = records.filter((r) => claudeQs.includes(claudePrompt(r.modelInput)))
  const novaSeen = records.filter((r) => novaQs.includes(r.modelInput?.messages?.[0]?.content?.[0]?.text))
  t.is(claudeSeen.length, 30)
  t.is(novaSeen.length, 20)
  t.is(new Set(claudeSeen.map((r) => r.key)).size, 1, 'the Claude requests share one input file')
  t.is(new Set(novaSeen.map((r) => r.key)).size, 1, 'the Nova requests share one input file')
  t.not(claudeSeen[0]?.key, novaSeen[0]?.key, 'the models do not share a file')
  await client.close()
})

test('30 requests and a flush below the minimum make one job padded to 100 records, with 70 fillers counted and 30 answers', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  // batchTimeout 60 s: only the flush can send them.
  const { client, inputPrefix } = makeClient(t, emu, { batch: { batchTimeout: 60, minBatchSize: 100 } })

  const questions = Array.from({ length: 30 }, (_, i) => `Padded question ${i}: what is ${i} + 1?`)
  const pending = questions.map((q) => settle(client.send(claudeCommand(q))))
  t.is(client.stats().queued, 30, 'the 30 requests wait in the queue')
  t.deepEqual(client.stats().jobs, [], 'no job before the flush')
  await client.flush()
  const outcomes = await Promise.all(pending)

  t.deepEqual(failures(outcomes), [], 'all 30 resolve')
  for (const [i, o] of outcomes.entries()) if (o.ok) t.true(claudeText(o.value).includes(questions[i]), `answer ${i}`)
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1)
  if (jobs.length === 1) {
    const job = await getJob(bedrock, jobs[0].jobArn)
    t.is(job.totalRecordCount, 100, 'the job was padded to the minimum')
  }
  t.is(client.stats().padded, 70)
  const records = await inputRecords(s3, emu.bucket, inputPrefix)
  t.is(records.length, 100, 'the uploaded input has 100 lines')
  t.is(records.filter((r) => questions.includes(claudePrompt(r.modelInput))).length, 30, 'of which 30 are the requests')
  t.is(new Set(records.map((r) => r.recordId)).size, 100, 'record ids are unique')
  t.true(
    records.every((r) => /^[A-Za-z0-9]+$/.test(r.recordId)),
    'record ids are alphanumeric',
  )
  await client.close()
})

test("belowMinimum 'direct' sends a small batch on-demand: no job is created and the requests count as sentDirect", async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60, minBatchSize: 100, belowMinimum: 'direct' } })

  const questions = Array.from({ length: 10 }, (_, i) => `Direct question ${i}: what is ${i} - 1?`)
  const pending = questions.map((q) => settle(client.send(claudeCommand(q))))
  await client.flush()
  const outcomes = await Promise.all(pending)

  t.deepEqual(failures(outcomes), [], 'all 10 resolve')
  for (const [i, o] of outcomes.entries()) if (o.ok) t.true(claudeText(o.value).includes(questions[i]), `answer ${i}`)
  t.deepEqual(await listJobs(bedrock), [], 'no batch job was created')
  const stats = client.stats()
  t.is(stats.sentDirect, 10)
  t.is(stats.padded, 0)
  t.deepEqual(stats.jobs, [])
  const calls = (await runtimeRequests(emu)).filter((r) => r.operation === 'invoke' && r.modelId === CLAUDE)
  t.is(calls.length, 10, 'the emulator runtime saw 10 InvokeModel calls')
  await client.close()
})

test("the output body is a Uint8Array whose transformToString('base64') and transformToString() agree with its bytes", async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu)

  const q = 'Body question: what is 2 + 40?'
  const pending = settle(client.send(claudeCommand(q)))
  await client.flush()
  const o = await pending
  if (!o.ok) return t.fail(describe(o))
  const out = o.value
  t.true(out.body instanceof Uint8Array)
  const bytes = Buffer.from(out.body.buffer, out.body.byteOffset, out.body.byteLength)
  t.is(out.body.transformToString('base64'), bytes.toString('base64'))
  t.is(Buffer.from(out.body.transformToString('base64'), 'base64').toString('utf-8'), out.body.transformToString())
  t.is(out.body.transformToString(), bytes.toString('utf-8'))
  t.is(out.body.transformToString('utf-8'), bytes.toString('utf-8'))
  t.true(JSON.parse(out.body.transformToString()).content[0].text.includes(q))
  t.is(out.contentType, 'application/json')
  t.is(out.$metadata?.httpStatusCode, 200)
  await client.close()
})

test("a batch result is byte-identical to what the emulator's runtime returns for the same body through the real BedrockRuntimeClient", async (t) => {
  const { emu, runtime } = await startEmu(t)
  const { client } = makeClient(t, emu)

  const bodies = [
    JSON.stringify(claudeBody('Identical question A: what is 3 + 4?')),
    JSON.stringify(claudeBody('Identical question B: name a prime.', { temperature: 0.2, system: 'Be brief.' })),
    JSON.stringify(claudeBody('Identical question C: ünïcödé ✓ and "quotes"')),
  ]
  // The last one goes through the client as a real SDK command (design §2: send() reads command.input).
  const pending = bodies.map((body, i) =>
    settle(
      client.send(
        i === 2
          ? new SdkInvokeModelCommand({
              modelId: CLAUDE,
              contentType: 'application/json',
              accept: 'application/json',
              body,
            })
          : new InvokeModelCommand({
              modelId: CLAUDE,
              contentType: 'application/json',
              accept: 'application/json',
              body,
            }),
      ),
    ),
  )
  await client.flush()
  const batchOut = await Promise.all(pending)
  t.is(client.stats().sentDirect, 0, 'they went through a batch job')
  t.true(client.stats().jobs.length >= 1, 'a job was created')

  for (const [i, body] of bodies.entries()) {
    const o = batchOut[i]
    if (!o.ok) {
      t.fail(`batch request ${i}: ${describe(o)}`)
      continue
    }
    const direct = await runtime.send(
      new SdkInvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', accept: 'application/json', body }),
    )
    const a = Buffer.from(o.value.body)
    const b = Buffer.from(direct.body)
    t.true(
      a.equals(b),
      `body ${i} is byte-identical\n batch:   ${a.toString('utf-8')}\n runtime: ${b.toString('utf-8')}`,
    )
    t.deepEqual(JSON.parse(a.toString('utf-8')), JSON.parse(b.toString('utf-8')), `body ${i} is the same JSON`)
    t.is(o.value.contentType, direct.contentType, `contentType ${i}`)
  }
  await client.close()
})

test('a missing contentType means application/json, and any other contentType rejects at once with ValidationException', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60 } })

  const q = 'No content type: what is 8 + 8?'
  const ok = settle(client.send(new InvokeModelCommand({ modelId: CLAUDE, body: JSON.stringify(claudeBody(q)) })))
  const bad = await settle(
    client.send(
      new InvokeModelCommand({
        modelId: CLAUDE,
        contentType: 'text/plain',
        body: JSON.stringify(claudeBody('Plain text')),
      }),
    ),
  )
  t.false(bad.ok)
  t.is(bad.error?.name, 'ValidationException', describe(bad))
  t.is(client.stats().queued, 1, 'only the request without contentType waits')
  await client.flush()
  const o = await ok
  t.true(o.ok, describe(o))
  if (o.ok) t.true(claudeText(o.value).includes(q))
  await client.close()
})

test('beyond maxQueuedRequests a send rejects with ThrottlingException naming the limit, and the queued ones still resolve', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60, maxQueuedRequests: 5 } })

  const pending = Array.from({ length: 5 }, (_, i) =>
    settle(client.send(claudeCommand(`Queued ${i}: what is ${i} + 5?`))),
  )
  const over = await settle(client.send(claudeCommand('One too many')))
  t.false(over.ok)
  t.is(over.error?.name, 'ThrottlingException', describe(over))
  t.regex(over.error?.message ?? '', /maxQueuedRequests/)
  await client.flush()
  const outcomes = await Promise.all(pending)
  t.deepEqual(failures(outcomes), [])
  await client.close()
})

test('jobs are named <jobNamePrefix>… within AWS naming rules, and each input file is written under <s3InputUri>/<jobName>/', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const { client, inputPrefix } = makeClient(t, emu, { batch: { jobNamePrefix: 'my-app' } })

  const questions = Array.from({ length: 150 }, (_, i) => `Named question ${i}`)
  const outcomes = await Promise.all(questions.map((q) => settle(client.send(claudeCommand(q)))))
  t.deepEqual(failures(outcomes), [])
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 2)
  for (const j of jobs) {
    t.true(j.jobName.startsWith('my-app'), j.jobName)
    t.true(j.jobName.length <= 63, `${j.jobName} is at most 63 characters`)
    t.regex(j.jobName, JOB_NAME_RE)
  }
  const keys = (await listKeys(s3, emu.bucket, inputPrefix)).filter((k) => k.endsWith('.jsonl'))
  t.is(keys.length, 2, keys.join(', '))
  for (const key of keys) {
    const folder = key.slice(inputPrefix.length).split('/')[0]
    t.true(
      jobs.some((j) => j.jobName === folder),
      `${key} is under a job's name`,
    )
  }
  await client.close()
})

test("a jobNamePrefix with '.' and '+', which AWS job names allow and the client accepts, still runs its jobs", async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { jobNamePrefix: 'my-app.v2+x' } })

  const questions = Array.from({ length: 20 }, (_, i) => `Dotted question ${i}`)
  const outcomes = await Promise.all(questions.map((q) => settle(client.send(claudeCommand(q)))))
  t.deepEqual(failures(outcomes), [])
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1)
  for (const j of jobs) {
    t.true(j.jobName.startsWith('my-app.v2+x'), j.jobName)
    t.regex(j.jobName, JOB_NAME_RE)
  }
  await client.close()
})

test('cleanup: true deletes the input and output objects of a job once its results are delivered', async (t) => {
  const { emu, s3 } = await startEmu(t)
  const { client, inputPrefix, outputPrefix } = makeClient(t, emu, { batch: { cleanup: true } })

  const q = 'Clean question: what is 10 + 10?'
  const o = await settle(client.send(claudeCommand(q)))
  t.true(o.ok, describe(o))
  if (o.ok) t.true(claudeText(o.value).includes(q))
  await client.close()
  t.deepEqual(await listKeys(s3, emu.bucket, inputPrefix), [], 'no input object is left')
  t.deepEqual(await listKeys(s3, emu.bucket, outputPrefix), [], 'no output object is left')
})
