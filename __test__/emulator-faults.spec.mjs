// Fault markers inside record bodies (issue 2, §3 "Fault injection"), checked against the
// output line shapes of reference §2.3 and the status meanings of §1.5.

import { StopModelInvocationJobCommand } from '@aws-sdk/client-bedrock'
import test from 'ava'

import {
  answerText,
  assertFamilyShape,
  assertStatusOrder,
  createJob,
  errorCodeOf,
  getJob,
  jobIdOf,
  MODELS,
  makeRecords,
  novaBody,
  putJsonl,
  readJobOutput,
  rejectsWith,
  runJob,
  sleep,
  startEmu,
  TERMINAL_STATUSES,
  unique,
  waitForJob,
} from './helpers.mjs'

/** 120 Claude records; `markers` maps a record index to text appended to its prompt. */
function recordsWithMarkers(markers, n = 120) {
  return makeRecords(n, {
    promptOf: (i) => (markers[i] ? `Question ${i} please ${markers[i]} thanks` : `What is ${i} + ${i}?`),
  })
}

/** Asserts that every record without a marker has exactly one successful line containing its prompt. */
function assertCleanRecordsSucceeded(t, records, out, markedIdx) {
  const byId = new Map()
  for (const r of out.records) {
    t.false(byId.has(r.recordId), `record ${r.recordId} appears once`)
    byId.set(r.recordId, r)
  }
  records.forEach((rec, i) => {
    if (markedIdx.includes(i)) return
    const line = byId.get(rec.recordId)
    if (!line) {
      t.fail(`unmarked record ${rec.recordId} was lost`)
      return
    }
    t.is(line.error, undefined, `unmarked record ${rec.recordId} has no error`)
    t.deepEqual(line.modelInput, rec.modelInput)
    assertFamilyShape(t, 'claude', line.modelOutput)
    t.true(answerText('claude', line.modelOutput).includes(rec.prompt), `answer of ${rec.recordId} contains its prompt`)
  })
  return byId
}

const ERROR_CODES = [400, 429, 500, 408]

for (const code of ERROR_CODES) {
  test(`a record marked [[error:${code}]] gets an output error with code ${code} and the others succeed`, async (t) => {
    const ctx = await startEmu(t)
    const records = recordsWithMarkers({ 7: `[[error:${code}]]` })
    const { job, jobId, outputPrefix } = await runJob(ctx, records)
    t.true(['Completed', 'PartiallyCompleted'].includes(job.status), `status ${job.status} (message: ${job.message})`)
    t.log(`status with one per-record error: ${job.status}`)
    const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
    t.is(out.badLines.length, 0)
    t.is(out.records.length, 120)
    const byId = assertCleanRecordsSucceeded(t, records, out, [7])
    const bad = byId.get(records[7].recordId)
    t.truthy(bad, 'the errored record still has an output line')
    t.is(errorCodeOf(bad), code, `errorCode ${JSON.stringify(bad?.error?.errorCode)} is ${code}`)
    t.true(
      typeof bad.error.errorCode === 'number' || /^\d+$/.test(bad.error.errorCode),
      'errorCode is a number or a numeric string',
    )
    t.is(typeof bad.error.errorMessage, 'string')
    t.true(bad.error.errorMessage.length > 0, 'errorMessage is not empty')
    t.is(bad.modelOutput, undefined, 'an error line has no modelOutput')
    t.deepEqual(bad.modelInput, records[7].modelInput, 'the error line echoes modelInput')
    t.is(job.errorRecordCount, 1)
    t.is(job.successRecordCount, 119)
    t.is(job.processedRecordCount, 120)
    t.is(out.manifest.errorRecordCount, 1)
    t.is(out.manifest.successRecordCount, 119)
  })
}

test('all per-record error markers in one job give their own codes and no clean record is lost', async (t) => {
  const ctx = await startEmu(t)
  const markers = { 3: '[[error:400]]', 40: '[[error:429]]', 77: '[[error:500]]', 118: '[[error:408]]' }
  const records = recordsWithMarkers(markers)
  const { job, jobId, outputPrefix } = await runJob(ctx, records)
  t.true(['Completed', 'PartiallyCompleted'].includes(job.status), `status ${job.status}`)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  const byId = assertCleanRecordsSucceeded(t, records, out, [3, 40, 77, 118])
  t.is(errorCodeOf(byId.get(records[3].recordId)), 400)
  t.is(errorCodeOf(byId.get(records[40].recordId)), 429)
  t.is(errorCodeOf(byId.get(records[77].recordId)), 500)
  t.is(errorCodeOf(byId.get(records[118].recordId)), 408)
  t.is(job.errorRecordCount, 4)
  t.is(job.successRecordCount, 116)
  t.is(out.manifest.totalRecordCount, 120)
  t.is(out.manifest.errorRecordCount, 4)
  t.is(out.manifest.successRecordCount, 116)
})

test('a marker elsewhere in the record body (the system prompt) is honoured too', async (t) => {
  const ctx = await startEmu(t)
  const records = makeRecords(100)
  records[12].modelInput.system = 'You are a test double. [[error:500]]'
  const { job, jobId, outputPrefix } = await runJob(ctx, records)
  t.true(['Completed', 'PartiallyCompleted'].includes(job.status))
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  const line = out.records.find((r) => r.recordId === records[12].recordId)
  t.is(errorCodeOf(line), 500)
  assertCleanRecordsSucceeded(t, records, out, [12])
})

test('per-record error markers work for another model family (Nova)', async (t) => {
  const ctx = await startEmu(t)
  const records = makeRecords(100, {
    bodyOf: novaBody,
    promptOf: (i) => (i === 5 ? 'Nova [[error:429]] please' : `Nova question ${i}`),
  })
  const { job, jobId, outputPrefix } = await runJob(ctx, records, { modelId: MODELS.nova })
  t.true(['Completed', 'PartiallyCompleted'].includes(job.status), `status ${job.status}`)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.is(out.records.length, 100)
  for (const [i, rec] of records.entries()) {
    const line = out.records.find((r) => r.recordId === rec.recordId)
    if (i === 5) {
      t.is(errorCodeOf(line), 429)
      continue
    }
    assertFamilyShape(t, 'nova', line.modelOutput)
    t.true(answerText('nova', line.modelOutput).includes(rec.prompt))
  }
})

test('records marked [[missing]] have no output line and the job ends PartiallyCompleted', async (t) => {
  const ctx = await startEmu(t)
  const records = recordsWithMarkers({ 10: '[[missing]]', 90: '[[missing]]' })
  const { job, jobId, outputPrefix, statuses } = await runJob(ctx, records)
  t.is(job.status, 'PartiallyCompleted', `statuses: ${statuses.join(' -> ')}`)
  assertStatusOrder(t, statuses, ['Submitted', 'Validating', 'Scheduled', 'InProgress', 'PartiallyCompleted'])
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.is(out.badLines.length, 0)
  t.is(out.records.length, 118, 'two lines are missing')
  const ids = new Set(out.records.map((r) => r.recordId))
  t.false(ids.has(records[10].recordId))
  t.false(ids.has(records[90].recordId))
  assertCleanRecordsSucceeded(t, records, out, [10, 90])
  t.is(job.totalRecordCount, 120)
  t.is(job.successRecordCount, 118)
  t.true(
    job.processedRecordCount >= 118 && job.processedRecordCount < 120,
    `processedRecordCount ${job.processedRecordCount}`,
  )
  t.is(out.manifest.totalRecordCount, 120)
  t.is(out.manifest.successRecordCount, 118)
})

test('a record marked [[job:failed]] makes the whole job end Failed with a message', async (t) => {
  const ctx = await startEmu(t)
  const records = recordsWithMarkers({ 33: '[[job:failed]]' })
  const { job, statuses } = await runJob(ctx, records)
  t.is(job.status, 'Failed', `statuses: ${statuses.join(' -> ')}`)
  t.is(typeof job.message, 'string')
  t.true(job.message.length > 0)
  t.true(job.endTime instanceof Date)
  t.log(job.message)
})

test('a record marked [[job:expired]] makes the job end Expired', async (t) => {
  const ctx = await startEmu(t)
  const records = recordsWithMarkers({ 0: '[[job:expired]]' })
  const { job, statuses } = await runJob(ctx, records)
  t.is(job.status, 'Expired', `statuses: ${statuses.join(' -> ')}`)
  t.false(statuses.includes('InProgress'), 'an expired job was Scheduled but never started')
  t.true(
    job.endTime instanceof Date || job.jobExpirationTime instanceof Date,
    'an expired job has an endTime or jobExpirationTime',
  )
})

test('a record marked [[job:slow]] keeps the job InProgress until it is stopped', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const records = recordsWithMarkers({ 50: '[[job:slow]]' })
  const p = unique('slow')
  await putJsonl(s3, emu.bucket, `${p}/input/records.jsonl`, records)
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/records.jsonl`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const { statuses } = await waitForJob(bedrock, arn, { until: (j) => j.status === 'InProgress' })
  assertStatusOrder(t, statuses)

  // It stays InProgress: a dozen polls over ~600 ms all say so (a fast-profile job of 120
  // records would otherwise be long done).
  for (let i = 0; i < 12; i++) {
    await sleep(50)
    const j = await getJob(bedrock, arn)
    t.is(j.status, 'InProgress', `poll ${i}`)
  }

  await bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: jobIdOf(arn) }))
  const seen = []
  const { job } = await waitForJob(bedrock, arn, {
    intervalMs: 5,
    until: (j) => {
      seen.push(j.status)
      return TERMINAL_STATUSES.includes(j.status)
    },
  })
  t.is(job.status, 'Stopped')
  t.true(
    seen.every((s) => ['InProgress', 'Stopping', 'Stopped'].includes(s)),
    `after stop: ${seen.join(', ')}`,
  )
  t.log(`after stop: ${[...new Set(seen)].join(' -> ')}`)
  await rejectsWith(
    t,
    () => bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: arn })),
    'ConflictException',
    400,
  )

  // Whatever a stopped job wrote must be well-formed and belong to this job's records.
  const out = await readJobOutput(s3, emu.bucket, `${p}/output`, jobIdOf(arn))
  const known = new Set(records.map((r) => r.recordId))
  t.true(out.records.every((r) => known.has(r.recordId)))
  t.is(out.badLines.length, 0)
})

test('a record marked [[malformed]] gets an output line that is not JSON while all other lines are', async (t) => {
  const ctx = await startEmu(t)
  const records = recordsWithMarkers({ 64: '[[malformed]]' })
  const { job, jobId, outputPrefix } = await runJob(ctx, records)
  t.true(['Completed', 'PartiallyCompleted'].includes(job.status), `status ${job.status}`)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.is(out.lines.length, 120, 'still one line per record')
  t.is(out.badLines.length, 1, 'exactly one line is not valid JSON')
  t.is(out.records.length, 119)
  t.false(
    out.records.some((r) => r.recordId === records[64].recordId),
    'the malformed line is the marked record',
  )
  assertCleanRecordsSucceeded(t, records, out, [64])
})

test('a job with every per-record fault at once loses only the [[missing]] records', async (t) => {
  const ctx = await startEmu(t)
  const markers = {
    1: '[[error:400]]',
    2: '[[error:429]]',
    3: '[[error:500]]',
    4: '[[error:408]]',
    5: '[[missing]]',
    6: '[[malformed]]',
  }
  const records = recordsWithMarkers(markers, 150)
  const { job, jobId, outputPrefix } = await runJob(ctx, records)
  t.is(job.status, 'PartiallyCompleted', 'a missing record makes the job PartiallyCompleted')
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.is(out.lines.length, 149, 'one line per record except the missing one')
  t.is(out.badLines.length, 1)
  const byId = assertCleanRecordsSucceeded(t, records, out, [1, 2, 3, 4, 5, 6])
  t.is(errorCodeOf(byId.get(records[1].recordId)), 400)
  t.is(errorCodeOf(byId.get(records[2].recordId)), 429)
  t.is(errorCodeOf(byId.get(records[3].recordId)), 500)
  t.is(errorCodeOf(byId.get(records[4].recordId)), 408)
  t.false(byId.has(records[5].recordId))
  t.is(job.totalRecordCount, 150)
  // The 144 unmarked records succeed; whether the malformed line counts as a success or an
  // error is not specified, the four error markers are errors, the missing record is neither.
  t.true(job.successRecordCount >= 144 && job.successRecordCount <= 145, `successRecordCount ${job.successRecordCount}`)
  t.true(job.errorRecordCount >= 4 && job.errorRecordCount <= 5, `errorRecordCount ${job.errorRecordCount}`)
  t.is(job.successRecordCount + job.errorRecordCount, 149, 'every record but the missing one is counted once')
})

test('text that merely looks like a marker does not trigger a fault', async (t) => {
  const ctx = await startEmu(t)
  const records = makeRecords(100, {
    promptOf: (i) => (i === 9 ? 'What does [error:500] or [[error]] mean?' : `What is ${i} + ${i}?`),
  })
  const { job, jobId, outputPrefix } = await runJob(ctx, records)
  t.is(job.status, 'Completed')
  t.is(job.errorRecordCount, 0)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  assertCleanRecordsSucceeded(t, records, out, [])
})
