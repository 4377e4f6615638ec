// Jobs really run: status walk, output layout and line shapes, manifest, record counts,
// and the validation failures of the Validating stage — reference §1.3, §1.5, §2, §3.1.

import { StopModelInvocationJobCommand } from '@aws-sdk/client-bedrock'
import test from 'ava'

import {
  answerText,
  assertFamilyShape,
  assertStatusOrder,
  converseBody,
  createJob,
  getJob,
  isNonNegInt,
  jobIdOf,
  listKeys,
  MODELS,
  makeRecords,
  novaBody,
  performance,
  putJsonl,
  putText,
  readJobOutput,
  runJob,
  startEmu,
  toJsonl,
  unique,
  waitForJob,
} from './helpers.mjs'

test('a 150-record Claude job runs to Completed and every answer contains its own prompt', async (t) => {
  const ctx = await startEmu(t)
  const { emu, s3 } = ctx
  const records = makeRecords(150)
  const started = performance.now()
  const { jobArn, jobId, job, statuses, outputPrefix } = await runJob(ctx, records, { file: 'records.jsonl' })
  t.log(`150 records: ${(performance.now() - started).toFixed(0)} ms, statuses ${statuses.join(' -> ')}`)

  t.is(job.status, 'Completed', `message: ${job.message}`)
  assertStatusOrder(t, statuses, ['Submitted', 'Validating', 'Scheduled', 'InProgress', 'Completed'])
  t.is(jobId, jobArn.slice(-12))
  t.is(job.totalRecordCount, 150)
  t.is(job.processedRecordCount, 150)
  t.is(job.successRecordCount, 150)
  t.is(job.errorRecordCount, 0)
  t.true(job.endTime instanceof Date, 'endTime is a Date')
  t.true(job.endTime.getTime() >= job.submitTime.getTime(), 'endTime is not before submitTime')
  t.true(job.lastModifiedTime instanceof Date, 'lastModifiedTime is a Date')
  t.is(
    job.outputDataConfig.s3OutputDataConfig.s3Uri,
    `s3://${emu.bucket}/${outputPrefix}/`,
    'Get echoes the given output prefix',
  )

  // Layout: <outputUri>/<jobId>/records.jsonl.out and manifest.json.out, nothing else.
  const keys = await listKeys(s3, emu.bucket, `${outputPrefix}/${jobId}/`)
  t.deepEqual(keys, [`${outputPrefix}/${jobId}/manifest.json.out`, `${outputPrefix}/${jobId}/records.jsonl.out`])

  const out = await readJobOutput(s3, emu.bucket, outputPrefix, jobId)
  t.is(out.badLines.length, 0, 'every output line is JSON')
  t.is(out.records.length, 150, 'one line per record')
  const byId = new Map(out.records.map((r) => [r.recordId, r]))
  t.is(byId.size, 150, 'record ids are unique')

  const inputOrder = records.map((r) => r.recordId).join(',')
  const outputOrder = out.records.map((r) => r.recordId).join(',')
  t.not(outputOrder, inputOrder, 'output order differs from input order')

  let inputTokens = 0
  let outputTokens = 0
  for (const rec of records) {
    const line = byId.get(rec.recordId)
    if (!line) {
      t.fail(`record ${rec.recordId} has no output line`)
      continue
    }
    t.deepEqual(line.modelInput, rec.modelInput, `modelInput of ${rec.recordId} is echoed`)
    t.is(line.error, undefined, `${rec.recordId} has no error`)
    assertFamilyShape(t, 'claude', line.modelOutput)
    t.true(
      answerText('claude', line.modelOutput).includes(rec.prompt),
      `answer of ${rec.recordId} contains "${rec.prompt}"`,
    )
    inputTokens += line.modelOutput.usage.input_tokens
    outputTokens += line.modelOutput.usage.output_tokens
  }

  const m = out.manifest
  t.truthy(m, 'manifest.json.out exists')
  t.is(m.totalRecordCount, 150)
  t.is(m.processedRecordCount, 150)
  t.is(m.successRecordCount, 150)
  t.is(m.errorRecordCount, 0)
  t.true(isNonNegInt(m.inputTokenCount) && m.inputTokenCount > 0, 'inputTokenCount is a positive integer')
  t.true(isNonNegInt(m.outputTokenCount) && m.outputTokenCount > 0, 'outputTokenCount is a positive integer')
  t.is(m.inputTokenCount, inputTokens, 'manifest inputTokenCount is the job total')
  t.is(m.outputTokenCount, outputTokens, 'manifest outputTokenCount is the job total')
})

test('an input prefix with several .jsonl files writes one .out file per input file', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const p = unique('multi')
  const a = makeRecords(60, { idPrefix: 'AAA', promptOf: (i) => `File A question ${i}` })
  const b = makeRecords(60, { idPrefix: 'BBB', promptOf: (i) => `File B question ${i}` })
  await putJsonl(s3, emu.bucket, `${p}/input/a.jsonl`, a)
  await putJsonl(s3, emu.bucket, `${p}/input/b.jsonl`, b)
  await putText(s3, emu.bucket, `${p}/input/README.txt`, 'not a jsonl file, must be ignored\n')
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/`,
    outputUri: `s3://${emu.bucket}/${p}/output`,
  })
  const { job } = await waitForJob(bedrock, arn)
  t.is(job.status, 'Completed', `120 records across two files meet the minimum of 100 (message: ${job.message})`)
  t.is(job.totalRecordCount, 120)
  t.is(job.successRecordCount, 120)

  const jobId = jobIdOf(arn)
  const out = await readJobOutput(s3, emu.bucket, `${p}/output`, jobId)
  t.deepEqual(Object.keys(out.outFiles).sort(), [
    `${p}/output/${jobId}/a.jsonl.out`,
    `${p}/output/${jobId}/b.jsonl.out`,
  ])
  const aIds = out.outFiles[`${p}/output/${jobId}/a.jsonl.out`].map((l) => JSON.parse(l).recordId).sort()
  const bIds = out.outFiles[`${p}/output/${jobId}/b.jsonl.out`].map((l) => JSON.parse(l).recordId).sort()
  t.deepEqual(aIds, a.map((r) => r.recordId).sort(), 'a.jsonl.out holds exactly the records of a.jsonl')
  t.deepEqual(bIds, b.map((r) => r.recordId).sort(), 'b.jsonl.out holds exactly the records of b.jsonl')
  t.is(out.manifest.totalRecordCount, 120)
  t.is(out.manifest.successRecordCount, 120)
  for (const rec of [...a, ...b]) {
    const line = out.records.find((r) => r.recordId === rec.recordId)
    t.true(answerText('claude', line.modelOutput).includes(rec.prompt), `answer of ${rec.recordId} contains its prompt`)
  }
})

test('an output URI without a trailing slash writes into the same <prefix>/<jobId>/ layout', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const p = unique('noslash')
  await putJsonl(s3, emu.bucket, `${p}/in/data.jsonl`, makeRecords(100))
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/in/data.jsonl`,
    outputUri: `s3://${emu.bucket}/${p}/out`,
  })
  const { job } = await waitForJob(bedrock, arn)
  t.is(job.status, 'Completed', `message: ${job.message}`)
  const keys = await listKeys(s3, emu.bucket, `${p}/`)
  const jobId = jobIdOf(arn)
  t.true(keys.includes(`${p}/out/${jobId}/data.jsonl.out`), `keys: ${keys.join(', ')}`)
  t.true(keys.includes(`${p}/out/${jobId}/manifest.json.out`), `keys: ${keys.join(', ')}`)
  t.false(
    keys.some((k) => k.includes('//')),
    'no empty key segment',
  )
})

test('record counts on Get progress while the job runs and end equal to the manifest', async (t) => {
  const ctx = await startEmu(t)
  const records = makeRecords(400)
  const { bedrock, s3, emu } = ctx
  const p = unique('progress')
  await putJsonl(s3, emu.bucket, `${p}/input/records.jsonl`, records)
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/records.jsonl`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const samples = []
  const { job } = await waitForJob(bedrock, arn, {
    intervalMs: 5,
    until: (j) => {
      samples.push({ status: j.status, processed: j.processedRecordCount, total: j.totalRecordCount })
      return ['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired'].includes(j.status)
    },
  })
  t.is(job.status, 'Completed')
  let last = 0
  for (const s of samples) {
    if (s.processed === undefined) continue
    t.true(s.processed >= last, 'processedRecordCount never goes down')
    t.true(s.total === undefined || s.processed <= s.total, 'processed never exceeds total')
    last = s.processed
  }
  t.is(job.processedRecordCount, 400)
  const out = await readJobOutput(s3, emu.bucket, `${p}/output`, jobIdOf(arn))
  t.is(out.manifest.totalRecordCount, job.totalRecordCount)
  t.is(out.manifest.processedRecordCount, job.processedRecordCount)
  t.is(out.manifest.successRecordCount, job.successRecordCount)
  t.is(out.manifest.errorRecordCount, job.errorRecordCount)
})

test('the fast profile runs a 1,000-record job to Completed', async (t) => {
  const ctx = await startEmu(t, { profile: 'fast' })
  const records = makeRecords(1000)
  const started = performance.now()
  const { job, jobId, outputPrefix } = await runJob(ctx, records, { timeoutMs: 15_000 })
  const elapsed = performance.now() - started
  t.log(`1,000 records: upload + create + run = ${elapsed.toFixed(0)} ms`)
  t.is(job.status, 'Completed', `message: ${job.message}`)
  t.is(job.successRecordCount, 1000)
  t.true(elapsed < 10_000, `finished in ${elapsed} ms`)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.is(out.records.length, 1000)
  t.is(new Set(out.records.map((r) => r.recordId)).size, 1000)
})

test('the realistic profile walks Submitted, Validating, Scheduled and InProgress in order, each long enough to see', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t, { profile: 'realistic' })
  const p = unique('realistic')
  await putJsonl(s3, emu.bucket, `${p}/input/records.jsonl`, makeRecords(100))
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/records.jsonl`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const started = performance.now()
  const { statuses } = await waitForJob(bedrock, arn, {
    until: (j) => j.status === 'InProgress',
    intervalMs: 50,
    timeoutMs: 15_000,
  })
  t.log(`realistic: InProgress after ${(performance.now() - started).toFixed(0)} ms: ${statuses.join(' -> ')}`)
  t.deepEqual(statuses, ['Submitted', 'Validating', 'Scheduled', 'InProgress'])
  // Stop it rather than wait for the end: keep the suite fast.
  await bedrock.send(new StopModelInvocationJobCommand({ jobIdentifier: arn }))
  const { job } = await waitForJob(bedrock, arn, { intervalMs: 50, timeoutMs: 10_000 })
  t.is(job.status, 'Stopped')
})

test('a Converse-type job answers each record with a Converse response body', async (t) => {
  const ctx = await startEmu(t)
  const records = makeRecords(100, { bodyOf: converseBody, promptOf: (i) => `Converse question number ${i}` })
  const { job, jobId, outputPrefix } = await runJob(ctx, records, {
    modelId: MODELS.nova,
    modelInvocationType: 'Converse',
  })
  t.is(job.status, 'Completed', `message: ${job.message}`)
  t.is(job.modelInvocationType, 'Converse')
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.is(out.records.length, 100)
  for (const rec of records) {
    const line = out.records.find((r) => r.recordId === rec.recordId)
    assertFamilyShape(t, 'converse', line.modelOutput)
    t.true(
      answerText('converse', line.modelOutput).includes(rec.prompt),
      `answer of ${rec.recordId} contains its prompt`,
    )
  }
})

test('a job without modelInvocationType reports InvokeModel or nothing, never Converse', async (t) => {
  const ctx = await startEmu(t)
  const { job } = await runJob(ctx, makeRecords(100, { bodyOf: novaBody }), { modelId: MODELS.nova })
  t.is(job.status, 'Completed', `message: ${job.message}`)
  t.true(
    job.modelInvocationType === undefined || job.modelInvocationType === 'InvokeModel',
    `got ${job.modelInvocationType}`,
  )
})

// ---------------------------------------------------------------------------
// Validation failures: the job ends Failed with a message

async function expectFailed(t, job, statuses) {
  t.is(job.status, 'Failed', `statuses: ${statuses.join(' -> ')}`)
  t.is(typeof job.message, 'string', 'a failed job has a message')
  t.true(job.message.length > 0 && job.message.length <= 2048, 'message is 1..2048 characters')
  t.false(statuses.includes('InProgress'), 'validation failures never reach InProgress')
  t.true(job.endTime instanceof Date, 'a failed job has an endTime')
}

test('a line that is not JSON makes the job fail validation with a message', async (t) => {
  const ctx = await startEmu(t)
  const lines = makeRecords(120).map((r) => JSON.stringify({ recordId: r.recordId, modelInput: r.modelInput }))
  lines.splice(57, 0, 'this line is {not json')
  const p = unique('notjson')
  await putText(ctx.s3, ctx.emu.bucket, `${p}/input/records.jsonl`, `${lines.join('\n')}\n`)
  const arn = await createJob(ctx.bedrock, {
    inputUri: `s3://${ctx.emu.bucket}/${p}/input/records.jsonl`,
    outputUri: `s3://${ctx.emu.bucket}/${p}/output/`,
  })
  const { job, statuses } = await waitForJob(ctx.bedrock, arn)
  await expectFailed(t, job, statuses)
  t.log(job.message)
})

test('a JSON line that is not an object makes the job fail validation', async (t) => {
  const ctx = await startEmu(t)
  const lines = makeRecords(120).map((r) => JSON.stringify({ recordId: r.recordId, modelInput: r.modelInput }))
  lines.splice(3, 0, '[1, 2, 3]')
  const p = unique('notobj')
  await putText(ctx.s3, ctx.emu.bucket, `${p}/input/records.jsonl`, `${lines.join('\n')}\n`)
  const arn = await createJob(ctx.bedrock, {
    inputUri: `s3://${ctx.emu.bucket}/${p}/input/records.jsonl`,
    outputUri: `s3://${ctx.emu.bucket}/${p}/output/`,
  })
  const { job, statuses } = await waitForJob(ctx.bedrock, arn)
  await expectFailed(t, job, statuses)
})

test('99 records fail the default minimum of 100 and exactly 100 records complete', async (t) => {
  const ctx = await startEmu(t)
  const few = await runJob(ctx, makeRecords(99))
  await expectFailed(t, few.job, few.statuses)
  t.log(few.job.message)
  const enough = await runJob(ctx, makeRecords(100))
  t.is(enough.job.status, 'Completed', `message: ${enough.job.message}`)
})

test('a lower numeric minRecords lets a small job complete and still fails one below it', async (t) => {
  const ctx = await startEmu(t, { minRecords: 5 })
  const ok = await runJob(ctx, makeRecords(5))
  t.is(ok.job.status, 'Completed', `message: ${ok.job.message}`)
  t.is(ok.job.totalRecordCount, 5)
  const few = await runJob(ctx, makeRecords(4))
  await expectFailed(t, few.job, few.statuses)
})

test('a per-model minRecords map applies to the named model and the default 100 to others', async (t) => {
  const ctx = await startEmu(t, { minRecords: { [MODELS.claude]: 10 } })
  const claudeOk = await runJob(ctx, makeRecords(10))
  t.is(claudeOk.job.status, 'Completed', `message: ${claudeOk.job.message}`)
  const claudeFew = await runJob(ctx, makeRecords(9))
  await expectFailed(t, claudeFew.job, claudeFew.statuses)
  const novaFew = await runJob(ctx, makeRecords(10, { bodyOf: novaBody }), { modelId: MODELS.nova })
  await expectFailed(t, novaFew.job, novaFew.statuses)
})

test('the minimum is counted across all files of the job', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const p = unique('mincount')
  await putJsonl(s3, emu.bucket, `${p}/input/one.jsonl`, makeRecords(50, { idPrefix: 'ONE' }))
  await putJsonl(s3, emu.bucket, `${p}/input/two.jsonl`, makeRecords(49, { idPrefix: 'TWO' }))
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const { job, statuses } = await waitForJob(bedrock, arn)
  await expectFailed(t, job, statuses)
})

function bigJsonl(n, idPrefix) {
  // Small lines to keep the upload light: ~110 bytes each.
  const parts = new Array(n)
  for (let i = 0; i < n; i++) {
    parts[i] =
      `{"recordId":"${idPrefix}${String(i).padStart(8, '0')}","modelInput":{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":"q${i}"}]}}`
  }
  return `${parts.join('\n')}\n`
}

test('a file with more than 50,000 records fails validation', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const p = unique('over50k')
  await putText(s3, emu.bucket, `${p}/input/big.jsonl`, bigJsonl(50_001, 'BIG'))
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/big.jsonl`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const { job, statuses } = await waitForJob(bedrock, arn, { timeoutMs: 20_000 })
  await expectFailed(t, job, statuses)
  t.log(job.message)
})

test('a job with more than 50,000 records across files fails validation', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const p = unique('over50kjob')
  await putText(s3, emu.bucket, `${p}/input/part1.jsonl`, bigJsonl(25_001, 'PAA'))
  await putText(s3, emu.bucket, `${p}/input/part2.jsonl`, bigJsonl(25_000, 'PBB'))
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const { job, statuses } = await waitForJob(bedrock, arn, { timeoutMs: 20_000 })
  await expectFailed(t, job, statuses)
})

test('an input URI with no .jsonl object under it makes the job fail', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const p = unique('missing')
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const { job, statuses } = await waitForJob(bedrock, arn)
  await expectFailed(t, job, statuses)
  t.log(job.message)
})

test('an input object URI that does not exist makes the job fail', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const p = unique('missingobj')
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/nothing.jsonl`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const { job, statuses } = await waitForJob(bedrock, arn)
  await expectFailed(t, job, statuses)
})

test('an input prefix holding only non-.jsonl files makes the job fail', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const p = unique('nojsonl')
  await putText(s3, emu.bucket, `${p}/input/records.json`, toJsonl(makeRecords(120)))
  await putText(s3, emu.bucket, `${p}/input/records.txt`, toJsonl(makeRecords(120)))
  const arn = await createJob(bedrock, {
    inputUri: `s3://${emu.bucket}/${p}/input/`,
    outputUri: `s3://${emu.bucket}/${p}/output/`,
  })
  const { job, statuses } = await waitForJob(bedrock, arn)
  await expectFailed(t, job, statuses)
})

test('an input bucket that does not exist makes the job fail', async (t) => {
  const { bedrock, emu } = await startEmu(t)
  const arn = await createJob(bedrock, {
    inputUri: 's3://no-such-bucket-here/input/records.jsonl',
    outputUri: `s3://${emu.bucket}/out/`,
  })
  const { job, statuses } = await waitForJob(bedrock, arn)
  await expectFailed(t, job, statuses)
})

test('a failed validation writes no record output', async (t) => {
  const ctx = await startEmu(t)
  const { job, jobId, outputPrefix } = await runJob(ctx, makeRecords(10))
  t.is(job.status, 'Failed')
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.is(out.records.length, 0, 'no .out records for a job that never ran')
  t.is(out.badLines.length, 0)
})

test('the counts of a completed job add up: success plus error equals processed', async (t) => {
  const ctx = await startEmu(t)
  const { jobArn } = await runJob(ctx, makeRecords(100))
  const job = await getJob(ctx.bedrock, jobArn)
  t.is(job.status, 'Completed')
  for (const k of ['totalRecordCount', 'processedRecordCount', 'successRecordCount', 'errorRecordCount']) {
    t.true(isNonNegInt(job[k]), `${k} is a non-negative integer`)
  }
  t.is(job.successRecordCount + job.errorRecordCount, job.processedRecordCount)
})
