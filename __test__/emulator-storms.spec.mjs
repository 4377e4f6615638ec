// Fault storms armed while the emulator runs (issue 23: `emu.faults(arm)`, `POST /_emulator/faults`),
// seen by the real AWS SDK clients (retries off unless said): after calls that succeed, exactly N
// calls fail with the start options' wire shapes (S3 503 SlowDown, control plane 429
// ThrottlingException), then calls succeed again; `emu.faults()` counts what was served.

import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import test from 'ava'

import { createJob, getJob, rejectsWith, startEmu, unique } from './helpers.mjs'

const put = (ctx, key) =>
  ctx.s3.send(new PutObjectCommand({ Bucket: ctx.emu.bucket, Key: key, Body: `body of ${key}` }))

test('an S3 storm armed mid-run fails exactly the next N requests with 503 SlowDown, then S3 answers', async (t) => {
  const ctx = await startEmu(t, {}, { s3MaxAttempts: 1 })
  const prefix = unique('storm')
  for (let i = 0; i < 3; i++) await put(ctx, `${prefix}/calm-${i}`)
  t.deepEqual((await ctx.emu.faults()).s3, { failNext: 0, served: 0 })

  const armed = await ctx.emu.faults({ s3: { failNext: 4 } })
  t.is(armed.s3.failNext, 4, 'the answer shows what is armed')
  const outcomes = []
  for (let i = 0; i < 7; i++) {
    try {
      await put(ctx, `${prefix}/storm-${i}`)
      outcomes.push('ok')
    } catch (err) {
      t.is(err.name, 'SlowDown')
      t.is(err.$metadata.httpStatusCode, 503)
      outcomes.push('503')
    }
  }
  t.deepEqual(outcomes, ['503', '503', '503', '503', 'ok', 'ok', 'ok'])
  // A read is an S3 request like any other, and the storm is over.
  const got = await ctx.s3.send(new GetObjectCommand({ Bucket: ctx.emu.bucket, Key: `${prefix}/storm-4` }))
  t.is(await got.Body.transformToString(), `body of ${prefix}/storm-4`)
  t.deepEqual((await ctx.emu.faults()).s3, { failNext: 0, served: 4 })
})

test("the SDK's own retries ride out a storm shorter than its attempts", async (t) => {
  const ctx = await startEmu(t, {}, { s3MaxAttempts: 3 })
  await ctx.emu.faults({ s3: { failNext: 2 } })
  const res = await put(ctx, `${unique('retry')}/x`)
  t.is(res.$metadata.attempts, 3, 'two 503s, then the third attempt')
  t.is((await ctx.emu.faults()).s3.served, 2)
})

test('a control-plane storm armed mid-run throttles exactly the next N creates and gets, then they pass', async (t) => {
  const ctx = await startEmu(t)
  const prefix = unique('cp')
  const job = () =>
    createJob(ctx.bedrock, {
      inputUri: `s3://${ctx.emu.bucket}/${prefix}/in/`,
      outputUri: `s3://${ctx.emu.bucket}/${prefix}/out/`,
    })
  const arn = await job()
  await getJob(ctx.bedrock, arn)

  const armed = await ctx.emu.faults({ throttle: { createNext: 3, getNext: 2 } })
  t.like(armed.throttle, { createNext: 3, getNext: 2, createServed: 0, getServed: 0 })
  for (let i = 0; i < 3; i++) await rejectsWith(t, job, 'ThrottlingException', 429)
  t.regex(await job(), /^arn:aws:bedrock:us-east-1:123456789012:model-invocation-job\/[a-z0-9]{12}$/)
  for (let i = 0; i < 2; i++) await rejectsWith(t, () => getJob(ctx.bedrock, arn), 'ThrottlingException', 429)
  t.is((await getJob(ctx.bedrock, arn)).jobArn, arn)
  t.deepEqual((await ctx.emu.faults()).throttle, { createNext: 0, getNext: 0, createServed: 3, getServed: 2 })
})

test('a job quota lowered mid-run refuses creates with ServiceQuotaExceededException until it is raised', async (t) => {
  const ctx = await startEmu(t)
  const prefix = unique('quota')
  const job = () =>
    createJob(ctx.bedrock, {
      inputUri: `s3://${ctx.emu.bucket}/${prefix}/in/`,
      outputUri: `s3://${ctx.emu.bucket}/${prefix}/out/`,
    })
  t.is((await ctx.emu.faults({ maxConcurrentJobs: 0 })).maxConcurrentJobs, 0)
  await rejectsWith(t, job, 'ServiceQuotaExceededException', 400)
  await ctx.emu.faults({ maxConcurrentJobs: 20 })
  t.truthy(await job())
})

test('an arming that names no known fault is refused and arms nothing', async (t) => {
  const ctx = await startEmu(t)
  const err = await t.throwsAsync(() => ctx.emu.faults({ s3: { failFirst: 3 } }), { instanceOf: TypeError })
  t.regex(err.message, /failNext/)
  t.is((await ctx.emu.faults()).s3.failNext, 0)
})
