// Control plane (restJson1) of the emulator: Create / Get / List / Stop, idempotency,
// request validation, quota, throttling and error shapes — reference §1.

import net from 'node:net'
import {
  BedrockClient,
  CreateModelInvocationJobCommand,
  GetModelInvocationJobCommand,
  ListModelInvocationJobsCommand,
  paginateListModelInvocationJobs,
  StopModelInvocationJobCommand,
} from '@aws-sdk/client-bedrock'
import test from 'ava'
import { errorType, signedRequest } from './emulator-wire.mjs'
import {
  ALL_STATUSES,
  createJob,
  getJob,
  JOB_ARN_RE,
  jobIdOf,
  joinUrl,
  MODELS,
  makeRecords,
  performance,
  putJsonl,
  ROLE_ARN,
  rejectsWith,
  rewriteJsonBody,
  sleep,
  startEmu,
  startEmulator,
  TERMINAL_STATUSES,
  unique,
  waitForJob,
} from './helpers.mjs'

/** Input/output URIs under a fresh prefix (the input does not need to exist for control-plane checks). */
function uris(emu, label) {
  const p = unique(label)
  return { inputUri: `s3://${emu.bucket}/${p}/input/records.jsonl`, outputUri: `s3://${emu.bucket}/${p}/output/` }
}

function baseInput(emu, over = {}) {
  const { inputUri, outputUri } = uris(emu, 'val')
  return {
    jobName: 'validJobName',
    roleArn: ROLE_ARN,
    modelId: MODELS.claude,
    inputDataConfig: { s3InputDataConfig: { s3Uri: inputUri } },
    outputDataConfig: { s3OutputDataConfig: { s3Uri: outputUri } },
    ...over,
  }
}

async function listAll(bedrock, input = {}) {
  const out = []
  for await (const page of paginateListModelInvocationJobs({ client: bedrock, pageSize: 100 }, input)) {
    out.push(...(page.invocationJobSummaries ?? []))
  }
  return out
}

/** Writes a valid 100-record Claude input whose first record carries `[[job:slow]]`. */
async function putSlowInput(s3, emu) {
  const prefix = unique('slow')
  const records = makeRecords(100, {
    promptOf: (i) => (i === 0 ? 'Take your time [[job:slow]]' : `What is ${i} + ${i}?`),
  })
  await putJsonl(s3, emu.bucket, `${prefix}/input/records.jsonl`, records)
  return {
    inputUri: `s3://${emu.bucket}/${prefix}/input/records.jsonl`,
    outputUri: `s3://${emu.bucket}/${prefix}/output/`,
  }
}

// ---------------------------------------------------------------------------
// Lifecycle of the emulator itself

test('startEmulator returns a region, credentials, loopback endpoints and an existing bucket', async (t) => {
  const { emu } = await startEmu(t)
  t.is(typeof emu.region, 'string')
  t.true(emu.region.length > 0)
  t.is(typeof emu.credentials.accessKeyId, 'string')
  t.is(typeof emu.credentials.secretAccessKey, 'string')
  t.true(emu.credentials.accessKeyId.length > 0 && emu.credentials.secretAccessKey.length > 0)
  for (const name of ['bedrock', 'bedrockRuntime', 's3', 'openai']) {
    const url = new URL(emu.endpoints[name])
    t.is(url.protocol, 'http:', `${name} is http`)
    t.is(url.hostname, '127.0.0.1', `${name} listens on 127.0.0.1`)
    t.true(Number(url.port) > 0, `${name} has a port`)
  }
  t.true(new URL(emu.endpoints.openai).pathname.replace(/\/$/, '').endsWith('/v1'), 'openai endpoint ends in /v1')
  t.regex(emu.bucket, /^[a-z0-9][-.a-z0-9]{1,61}[a-z0-9]$/, 'bucket name fits the S3Uri bucket pattern')
  t.is(typeof emu.stop, 'function')
})

test('two emulators run side by side on different ports and stop frees the endpoint', async (t) => {
  const a = await startEmulator()
  const b = await startEmulator()
  try {
    t.not(a.endpoints.bedrock, b.endpoints.bedrock)
    t.not(a.endpoints.s3, b.endpoints.s3)
  } finally {
    await b.stop()
  }
  // b is stopped: its control plane refuses connections, a still answers.
  await t.throwsAsync(fetch(joinUrl(b.endpoints.bedrock, '/model-invocation-jobs')))
  const bedrockA = new BedrockClient({
    region: a.region,
    endpoint: a.endpoints.bedrock,
    credentials: a.credentials,
    maxAttempts: 1,
  })
  const res = await bedrockA.send(new ListModelInvocationJobsCommand({}))
  t.deepEqual(res.invocationJobSummaries ?? [], [])
  await a.stop()
})

test('the port option sets the port of the first endpoint', async (t) => {
  const freePort = () =>
    new Promise((resolve, reject) => {
      const srv = net.createServer()
      srv.once('error', reject)
      srv.listen(0, '127.0.0.1', () => {
        const p = srv.address().port
        srv.close(() => resolve(p))
      })
    })
  // The emulator also takes port + 1, which another test's emulator may hold: try a few ports.
  let port
  let started
  for (let attempt = 0; attempt < 5 && !started; attempt++) {
    port = await freePort()
    try {
      started = await startEmu(t, { port })
    } catch (err) {
      if (!/cannot listen/.test(err.message)) throw err
    }
  }
  const { emu, bedrock } = started
  const ports = Object.values(emu.endpoints).map((u) => Number(new URL(u).port))
  t.true(ports.includes(port), `one endpoint uses port ${port}: ${JSON.stringify(emu.endpoints)}`)
  const res = await bedrock.send(new ListModelInvocationJobsCommand({}))
  t.is(res.$metadata.httpStatusCode, 200, 'the emulator serves on the chosen ports')
})

// ---------------------------------------------------------------------------
// Create / Get

test('create returns a job ARN in the AWS format and get by id or by ARN describes the job', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { inputUri, outputUri } = uris(emu, 'create')
  const res = await bedrock.send(
    new CreateModelInvocationJobCommand({
      jobName: 'my-Job.v1+test',
      roleArn: ROLE_ARN,
      clientRequestToken: 'token-create-get-1',
      modelId: MODELS.claude,
      inputDataConfig: { s3InputDataConfig: { s3Uri: inputUri, s3InputFormat: 'JSONL' } },
      outputDataConfig: { s3OutputDataConfig: { s3Uri: outputUri } },
      timeoutDurationInHours: 48,
      modelInvocationType: 'InvokeModel',
    }),
  )
  t.is(res.$metadata.httpStatusCode, 200)
  const m = JOB_ARN_RE.exec(res.jobArn)
  t.truthy(
    m,
    `ARN ${res.jobArn} matches arn:aws:bedrock:{region}:{12 digits}:model-invocation-job/{12 lowercase alnum}`,
  )
  t.is(m[2], emu.region, 'ARN carries the emulator region')

  const byId = await getJob(bedrock, jobIdOf(res.jobArn))
  const byArn = await getJob(bedrock, res.jobArn)
  for (const job of [byId, byArn]) {
    t.is(job.jobArn, res.jobArn)
    t.is(job.jobName, 'my-Job.v1+test')
    t.is(job.modelId, MODELS.claude)
    t.is(job.roleArn, ROLE_ARN)
    t.is(job.clientRequestToken, 'token-create-get-1')
    t.true(ALL_STATUSES.includes(job.status), `status ${job.status}`)
    t.true(job.submitTime instanceof Date && !Number.isNaN(job.submitTime.getTime()), 'submitTime is a Date')
    t.is(job.inputDataConfig?.s3InputDataConfig?.s3Uri, inputUri)
    t.is(
      job.outputDataConfig?.s3OutputDataConfig?.s3Uri,
      outputUri,
      'output URI echoes the given prefix, not the job folder',
    )
    t.is(job.timeoutDurationInHours, 48)
    t.is(job.modelInvocationType, 'InvokeModel')
  }
  t.true(Math.abs(byId.submitTime.getTime() - Date.now()) < 60_000, 'submitTime is now')
})

test('get of an unknown job id or ARN gives ResourceNotFoundException 404', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  await rejectsWith(t, () => getJob(bedrock, 'abcdefghijkl'), 'ResourceNotFoundException', 404)
  await rejectsWith(
    t,
    () => getJob(bedrock, `arn:aws:bedrock:${emu.region}:123456789012:model-invocation-job/zzzzzzzzzzzz`),
    'ResourceNotFoundException',
    404,
  )
})

test('the same clientRequestToken returns the same job ARN and creates no second job', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const input = baseInput(emu, { jobName: 'idempotentJob', clientRequestToken: 'same-token-0001' })
  const first = await bedrock.send(new CreateModelInvocationJobCommand(input))
  const second = await bedrock.send(new CreateModelInvocationJobCommand(input))
  t.is(second.jobArn, first.jobArn)
  const other = await bedrock.send(
    new CreateModelInvocationJobCommand({ ...input, clientRequestToken: 'other-token-0002' }),
  )
  t.not(other.jobArn, first.jobArn, 'a different token makes a new job')
  const all = await listAll(bedrock)
  t.is(all.length, 2, 'List shows exactly two jobs')
  t.is(all.filter((s) => s.jobArn === first.jobArn).length, 1)
})

test('jobs created without a token each get their own ARN', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const a = await bedrock.send(new CreateModelInvocationJobCommand(baseInput(emu, { jobName: 'noTokenA' })))
  const b = await bedrock.send(new CreateModelInvocationJobCommand(baseInput(emu, { jobName: 'noTokenB' })))
  t.not(a.jobArn, b.jobArn)
  t.regex(a.jobArn, JOB_ARN_RE)
  t.regex(b.jobArn, JOB_ARN_RE)
})

// ---------------------------------------------------------------------------
// Request validation (ValidationException 400, checked on the server)

const invalidCreates = [
  ['a job name with an underscore', { jobName: 'bad_name' }],
  ['a job name starting with a dash', { jobName: '-startsWithDash' }],
  ['a job name with a space', { jobName: 'has space' }],
  ['a job name longer than 63 characters', { jobName: 'a'.repeat(64) }],
  ['a role ARN that is not an IAM role ARN', { roleArn: 'not-an-arn' }],
  ['a role ARN of a user, not a role', { roleArn: 'arn:aws:iam::123456789012:user/alice' }],
  [
    'an input URI that is not s3://',
    { inputDataConfig: { s3InputDataConfig: { s3Uri: 'https://example.com/records.jsonl' } } },
  ],
  [
    'an input URI with "=" in a key segment',
    { inputDataConfig: { s3InputDataConfig: { s3Uri: 's3://my-bucket/date=2026/records.jsonl' } } },
  ],
  [
    'an output URI with ":" in a key segment',
    { outputDataConfig: { s3OutputDataConfig: { s3Uri: 's3://my-bucket/out/2026-01-01T00:00:00/' } } },
  ],
  [
    'an output URI with an upper-case bucket name',
    { outputDataConfig: { s3OutputDataConfig: { s3Uri: 's3://My_Bucket/out/' } } },
  ],
  ['timeoutDurationInHours of 23', { timeoutDurationInHours: 23 }],
  ['timeoutDurationInHours of 169', { timeoutDurationInHours: 169 }],
  ['an unknown modelInvocationType', { modelInvocationType: 'Chat' }],
  [
    'an unknown s3InputFormat',
    { inputDataConfig: { s3InputDataConfig: { s3Uri: 's3://my-bucket/in/records.jsonl', s3InputFormat: 'CSV' } } },
  ],
]

for (const [what, over] of invalidCreates) {
  test(`create with ${what} is rejected with ValidationException 400`, async (t) => {
    const { emu, bedrock } = await startEmu(t)
    await rejectsWith(
      t,
      () => bedrock.send(new CreateModelInvocationJobCommand(baseInput(emu, over))),
      'ValidationException',
      400,
    )
    const all = await listAll(bedrock)
    t.is(all.length, 0, 'no job was created')
  })
}

for (const missing of ['jobName', 'roleArn', 'modelId', 'inputDataConfig', 'outputDataConfig']) {
  test(`create without the required member ${missing} is rejected by the server with ValidationException 400`, async (t) => {
    const { emu, bedrock } = await startEmu(t)
    rewriteJsonBody(bedrock, (body) => {
      delete body[missing]
    })
    await rejectsWith(
      t,
      () => bedrock.send(new CreateModelInvocationJobCommand(baseInput(emu))),
      'ValidationException',
      400,
    )
  })
}

test('create without the s3Uri inside inputDataConfig is rejected with ValidationException 400', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  rewriteJsonBody(bedrock, (body) => {
    body.inputDataConfig = { s3InputDataConfig: {} }
  })
  await rejectsWith(
    t,
    () => bedrock.send(new CreateModelInvocationJobCommand(baseInput(emu))),
    'ValidationException',
    400,
  )
})

test('timeoutDurationInHours of exactly 24 and 168 is accepted', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  for (const hours of [24, 168]) {
    const res = await bedrock.send(
      new CreateModelInvocationJobCommand(
        baseInput(emu, { jobName: `timeout${hours}`, timeoutDurationInHours: hours }),
      ),
    )
    t.regex(res.jobArn, JOB_ARN_RE)
    const job = await getJob(bedrock, res.jobArn)
    t.is(job.timeoutDurationInHours, hours)
  }
})

test('job names using +, - and . after the first character and URIs using allowed punctuation are accepted', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const p = unique('punct')
  const res = await bedrock.send(
    new CreateModelInvocationJobCommand(
      baseInput(emu, {
        jobName: 'a1-b.c+d--e',
        inputDataConfig: { s3InputDataConfig: { s3Uri: `s3://${emu.bucket}/${p}/in_put!*'()/` } },
        outputDataConfig: { s3OutputDataConfig: { s3Uri: `s3://${emu.bucket}/${p}/out.put` } },
      }),
    ),
  )
  t.regex(res.jobArn, JOB_ARN_RE)
})

// ---------------------------------------------------------------------------
// List

test('list filters by nameContains and statusEquals and shows counts and invocation type', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  // One job that completes (100 valid records), one that fails (no input at all).
  const okPrefix = unique('listok')
  await putJsonl(s3, emu.bucket, `${okPrefix}/input/records.jsonl`, makeRecords(100))
  const okArn = await createJob(bedrock, {
    jobName: 'alpha-completes',
    inputUri: `s3://${emu.bucket}/${okPrefix}/input/records.jsonl`,
    outputUri: `s3://${emu.bucket}/${okPrefix}/output/`,
    modelInvocationType: 'InvokeModel',
  })
  const badPrefix = unique('listbad')
  const badArn = await createJob(bedrock, {
    jobName: 'alpha-fails',
    inputUri: `s3://${emu.bucket}/${badPrefix}/input/`,
    outputUri: `s3://${emu.bucket}/${badPrefix}/output/`,
  })
  const otherPrefix = unique('listother')
  await putJsonl(s3, emu.bucket, `${otherPrefix}/input/records.jsonl`, makeRecords(100))
  const betaArn = await createJob(bedrock, {
    jobName: 'beta-completes',
    inputUri: `s3://${emu.bucket}/${otherPrefix}/input/records.jsonl`,
    outputUri: `s3://${emu.bucket}/${otherPrefix}/output/`,
  })
  const ok = (await waitForJob(bedrock, okArn)).job
  const bad = (await waitForJob(bedrock, badArn)).job
  await waitForJob(bedrock, betaArn)
  t.is(ok.status, 'Completed')
  t.is(bad.status, 'Failed')

  const alpha = await listAll(bedrock, { nameContains: 'alpha' })
  t.deepEqual(alpha.map((s) => s.jobArn).sort(), [okArn, badArn].sort())

  const failed = await listAll(bedrock, { statusEquals: 'Failed' })
  t.deepEqual(
    failed.map((s) => s.jobArn),
    [badArn],
  )
  const completed = await listAll(bedrock, { statusEquals: 'Completed' })
  t.deepEqual(completed.map((s) => s.jobArn).sort(), [okArn, betaArn].sort())
  const both = await listAll(bedrock, { statusEquals: 'Completed', nameContains: 'alpha' })
  t.deepEqual(
    both.map((s) => s.jobArn),
    [okArn],
  )

  const summary = completed.find((s) => s.jobArn === okArn)
  t.is(summary.jobName, 'alpha-completes')
  t.is(summary.modelId, MODELS.claude)
  t.is(summary.roleArn, ROLE_ARN)
  t.is(summary.status, 'Completed')
  t.true(summary.submitTime instanceof Date)
  t.true(summary.endTime instanceof Date, 'a completed job has an endTime')
  t.true(summary.lastModifiedTime instanceof Date, 'lastModifiedTime is a Date')
  t.is(summary.inputDataConfig?.s3InputDataConfig?.s3Uri, `s3://${emu.bucket}/${okPrefix}/input/records.jsonl`)
  t.is(summary.outputDataConfig?.s3OutputDataConfig?.s3Uri, `s3://${emu.bucket}/${okPrefix}/output/`)
  t.is(summary.modelInvocationType, 'InvokeModel')
  t.is(summary.totalRecordCount, 100)
  t.is(summary.processedRecordCount, 100)
  t.is(summary.successRecordCount, 100)
  t.is(summary.errorRecordCount, 0)
  const failedSummary = failed[0]
  t.is(typeof failedSummary.message, 'string')
  t.true(failedSummary.message.length > 0, 'a failed job in List carries its message')
})

test('list sorts by submit time in both orders and filters with submitTimeAfter and submitTimeBefore', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const arns = []
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(30) // distinct submit times
    arns.push(await createJob(bedrock, { ...uris(emu, `sort${i}`), jobName: `sorted-${i}` }))
  }
  const times = []
  for (const arn of arns) times.push((await getJob(bedrock, arn)).submitTime.getTime())
  t.true(
    times[0] < times[1] && times[1] < times[2],
    `submit times increase with millisecond precision: ${times.map((x) => new Date(x).toISOString())}`,
  )

  const asc = await listAll(bedrock, { sortBy: 'CreationTime', sortOrder: 'Ascending' })
  t.deepEqual(
    asc.map((s) => s.jobArn),
    arns,
  )
  const desc = await listAll(bedrock, { sortBy: 'CreationTime', sortOrder: 'Descending' })
  t.deepEqual(
    desc.map((s) => s.jobArn),
    [...arns].reverse(),
  )

  const mid01 = new Date((times[0] + times[1]) / 2)
  const mid12 = new Date((times[1] + times[2]) / 2)
  const after = await listAll(bedrock, { submitTimeAfter: mid01, sortOrder: 'Ascending' })
  t.deepEqual(
    after.map((s) => s.jobArn),
    [arns[1], arns[2]],
  )
  const before = await listAll(bedrock, { submitTimeBefore: mid12, sortOrder: 'Ascending' })
  t.deepEqual(
    before.map((s) => s.jobArn),
    [arns[0], arns[1]],
  )
  const between = await listAll(bedrock, { submitTimeAfter: mid01, submitTimeBefore: mid12 })
  t.deepEqual(
    between.map((s) => s.jobArn),
    [arns[1]],
  )
  const none = await listAll(bedrock, { submitTimeAfter: new Date(Date.now() + 3_600_000) })
  t.deepEqual(none, [])
})

test('list paginates with maxResults and nextToken and the SDK paginator visits every job once', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const arns = []
  for (let i = 0; i < 5; i++) arns.push(await createJob(bedrock, { ...uris(emu, `page${i}`), jobName: `paged-${i}` }))

  const first = await bedrock.send(new ListModelInvocationJobsCommand({ maxResults: 2 }))
  t.is(first.invocationJobSummaries.length, 2)
  t.is(typeof first.nextToken, 'string')
  t.true(first.nextToken.length > 0)

  const seen = [...first.invocationJobSummaries.map((s) => s.jobArn)]
  let token = first.nextToken
  let pages = 1
  while (token) {
    const page = await bedrock.send(new ListModelInvocationJobsCommand({ maxResults: 2, nextToken: token }))
    t.true(page.invocationJobSummaries.length <= 2, 'a page never exceeds maxResults')
    seen.push(...page.invocationJobSummaries.map((s) => s.jobArn))
    token = page.nextToken
    pages += 1
    if (pages > 10) break
  }
  t.is(pages, 3, '5 jobs in pages of 2 make 3 pages')
  t.deepEqual([...seen].sort(), [...arns].sort())

  const viaPaginator = []
  let paginatorPages = 0
  for await (const page of paginateListModelInvocationJobs({ client: bedrock, pageSize: 2 }, {})) {
    paginatorPages += 1
    viaPaginator.push(...page.invocationJobSummaries.map((s) => s.jobArn))
  }
  t.is(paginatorPages, 3)
  t.deepEqual([...viaPaginator].sort(), [...arns].sort())
  t.is(new Set(viaPaginator).size, 5, 'no job appears twice')
})

test('list with an out-of-range maxResults is rejected with ValidationException 400', async (t) => {
  const { bedrock } = await startEmu(t)
  await rejectsWith(
    t,
    () => bedrock.send(new ListModelInvocationJobsCommand({ maxResults: 0 })),
    'ValidationException',
    400,
  )
  await rejectsWith(
    t,
    () => bedrock.send(new ListModelInvocationJobsCommand({ maxResults: 1001 })),
    'ValidationException',
    400,
  )
})

// ---------------------------------------------------------------------------
// Stop

test('stopping a running job walks Stopping to Stopped and a second stop is a ConflictException 400', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const arn = await createJob(bedrock, await putSlowInput(s3, emu))
  await waitForJob(bedrock, arn, { until: (j) => j.status === 'InProgress' })
  const stop = await bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: arn }))
  t.is(stop.$metadata.httpStatusCode, 200)
  t.deepEqual(
    Object.keys(stop).filter((k) => k !== '$metadata'),
    [],
    'stop returns an empty body',
  )
  const right = await getJob(bedrock, arn)
  t.true(
    ['Stopping', 'Stopped'].includes(right.status),
    `right after stop the job is Stopping or Stopped, got ${right.status}`,
  )
  const { job } = await waitForJob(bedrock, arn)
  t.is(job.status, 'Stopped')
  t.true(job.endTime instanceof Date, 'a stopped job has an endTime')
  await rejectsWith(
    t,
    () => bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: arn })),
    'ConflictException',
    400,
  )
})

test('stopping a completed job is a ConflictException 400 and leaves it Completed', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const p = unique('stopdone')
  await putJsonl(s3, emu.bucket, `${p}/input/records.jsonl`, makeRecords(100))
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/records.jsonl`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const { job } = await waitForJob(bedrock, arn)
  t.is(job.status, 'Completed')
  await rejectsWith(
    t,
    () => bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: jobIdOf(arn) })),
    'ConflictException',
    400,
  )
  t.is((await getJob(bedrock, arn)).status, 'Completed')
})

test('stopping an unknown job is a ResourceNotFoundException 404', async (t) => {
  const { bedrock } = await startEmu(t)
  await rejectsWith(
    t,
    () => bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: 'qqqqqqqqqqqq' })),
    'ResourceNotFoundException',
    404,
  )
})

test('a job can be stopped by its ARN', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const arn = await createJob(bedrock, await putSlowInput(s3, emu))
  await waitForJob(bedrock, arn, { until: (j) => j.status === 'InProgress' })
  await bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: arn }))
  const { job } = await waitForJob(bedrock, jobIdOf(arn))
  t.is(job.status, 'Stopped')
})

// ---------------------------------------------------------------------------
// Quota, throttling, latency

test('more than maxConcurrentJobs submitted or running jobs for one model gives ServiceQuotaExceededException 400', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t, { maxConcurrentJobs: 2 })
  const slow1 = await createJob(bedrock, await putSlowInput(s3, emu))
  const slow2 = await createJob(bedrock, await putSlowInput(s3, emu))
  await rejectsWith(t, () => createJob(bedrock, uris(emu, 'quota3')), 'ServiceQuotaExceededException', 400)

  // The quota is per model: another model still has room.
  const otherModel = await createJob(bedrock, { ...uris(emu, 'quotaOther'), modelId: MODELS.nova })
  t.regex(otherModel, JOB_ARN_RE)

  // A stopped job frees its slot.
  await bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: slow1 }))
  await waitForJob(bedrock, slow1)
  const again = await createJob(bedrock, uris(emu, 'quota4'))
  t.regex(again, JOB_ARN_RE)
  t.true(TERMINAL_STATUSES.includes((await getJob(bedrock, slow1)).status))
  t.false(TERMINAL_STATUSES.includes((await getJob(bedrock, slow2)).status), 'the other slow job is still running')
})

test('the default quota allows 20 concurrent jobs per model and refuses the 21st', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const slow = await putSlowInput(s3, emu)
  for (let i = 0; i < 20; i++) {
    await createJob(bedrock, { ...slow, outputUri: `s3://${emu.bucket}/${unique('q20')}/output/` })
  }
  await rejectsWith(t, () => createJob(bedrock, slow), 'ServiceQuotaExceededException', 400)
})

test('throttle.create makes the first N creates fail with ThrottlingException 429', async (t) => {
  const { emu, bedrock } = await startEmu(t, { throttle: { create: 2 } })
  const input = baseInput(emu, { jobName: 'throttledCreate' })
  await rejectsWith(t, () => bedrock.send(new CreateModelInvocationJobCommand(input)), 'ThrottlingException', 429)
  await rejectsWith(t, () => bedrock.send(new CreateModelInvocationJobCommand(input)), 'ThrottlingException', 429)
  const ok = await bedrock.send(new CreateModelInvocationJobCommand(input))
  t.regex(ok.jobArn, JOB_ARN_RE)
  const all = await listAll(bedrock)
  t.is(all.length, 1, 'throttled creates made no job')
})

test('throttle.get makes the first N gets fail with ThrottlingException 429', async (t) => {
  const { emu, bedrock } = await startEmu(t, { throttle: { get: 1 } })
  const arn = await createJob(bedrock, uris(emu, 'throttleGet'))
  await rejectsWith(t, () => getJob(bedrock, arn), 'ThrottlingException', 429)
  const job = await getJob(bedrock, arn)
  t.is(job.jobArn, arn)
})

test('the SDK retry strategy recovers from a throttled create on its own', async (t) => {
  const { emu, bedrock } = await startEmu(t, { throttle: { create: 1 } }, { maxAttempts: 3 })
  const res = await bedrock.send(new CreateModelInvocationJobCommand(baseInput(emu, { jobName: 'retriedCreate' })))
  t.regex(res.jobArn, JOB_ARN_RE)
  t.is(res.$metadata.attempts, 2, 'one throttled attempt, then success')
})

test('createLatencyMs makes create take at least that long', async (t) => {
  const { emu, bedrock } = await startEmu(t, { createLatencyMs: 300 })
  const started = performance.now()
  const arn = await createJob(bedrock, uris(emu, 'latency'))
  const elapsed = performance.now() - started
  t.log(`create took ${elapsed.toFixed(0)} ms`)
  t.regex(arn, JOB_ARN_RE)
  t.true(elapsed >= 295, `create took ${elapsed} ms`)
})

// ---------------------------------------------------------------------------
// Robustness against bad requests

test('garbage JSON on create gets a 400 with x-amzn-errortype and a JSON message and the emulator keeps serving', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const post = (body) =>
    signedRequest(emu, {
      method: 'POST',
      path: '/model-invocation-job',
      headers: { 'content-type': 'application/json' },
      body,
    })
  for (const body of ['{not json', '', '[1,2,3]', '{"jobName": 42, "roleArn": {}}', 'null', '\u0000\u0001\u0002']) {
    const res = await post(body)
    t.is(res.status, 400, `status for body ${JSON.stringify(body)}`)
    const errType = res.headers['x-amzn-errortype']
    t.truthy(errType, `x-amzn-errortype present for body ${JSON.stringify(body)}`)
    t.regex(errorType(res), /^[A-Za-z]+Exception$/, 'the sanitised error type names an exception')
    t.is(typeof (res.json?.message ?? res.json?.Message), 'string', 'JSON body has a message')
  }
  // A huge body and an unknown route must not take the server down either.
  const big = await post(`{"jobName":"${'x'.repeat(2_000_000)}"}`)
  t.true(big.status >= 400 && big.status < 500, `a 2 MB bad create gets a 4xx, got ${big.status}`)
  const unknown = await signedRequest(emu, { path: '/no-such-route' })
  t.true(unknown.status >= 400 && unknown.status < 500, `unknown route gets a 4xx, got ${unknown.status}`)

  const arn = await createJob(bedrock, uris(emu, 'afterGarbage'))
  t.regex(arn, JOB_ARN_RE)
  t.is((await getJob(bedrock, arn)).jobArn, arn)
})

test('errors carry the x-amzn-errortype header and a JSON message on the wire', async (t) => {
  const { emu } = await startEmu(t)
  const res = await signedRequest(emu, { path: '/model-invocation-job/abcdefghijkl' })
  t.is(res.status, 404)
  // Clients keep what follows '#' and cut at ':' (SMITHY); the sanitised name must be the exception.
  t.is(errorType(res), 'ResourceNotFoundException')
  t.is(typeof (res.json.message ?? res.json.Message), 'string')
})

test('timestamps travel as ISO-8601 strings with milliseconds and the job ARN is percent-encoded in the path', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const arn = await createJob(bedrock, uris(emu, 'wire'))
  const res = await signedRequest(emu, { path: `/model-invocation-job/${encodeURIComponent(arn)}` })
  t.is(res.status, 200)
  t.regex(res.headers['content-type'] ?? '', /application\/json/)
  t.truthy(res.headers['x-amzn-requestid'], 'x-amzn-requestid header')
  t.is(res.json.jobArn, arn)
  // AWS prints UTC with exactly three fractional digits.
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
  t.regex(res.json.submitTime, iso, 'submitTime is an ISO-8601 string with milliseconds')
  for (const k of ['lastModifiedTime', 'endTime', 'jobExpirationTime']) {
    if (res.json[k] !== undefined) t.regex(res.json[k], iso, `${k} is an ISO-8601 string with milliseconds`)
  }
  const list = (await signedRequest(emu, { path: '/model-invocation-jobs' })).json
  t.true(Array.isArray(list.invocationJobSummaries))
  t.regex(list.invocationJobSummaries[0].submitTime, iso)
})

test('get with a malformed job identifier is a ValidationException 400', async (t) => {
  const { bedrock } = await startEmu(t)
  await rejectsWith(
    t,
    () => bedrock.send(new GetModelInvocationJobCommand({ jobIdentifier: 'NOT-A-VALID-ID!' })),
    'ValidationException',
    400,
  )
})
