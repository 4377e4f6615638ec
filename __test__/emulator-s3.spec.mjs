// The embedded S3 server and its options: s3.failFirst (503 SlowDown) and s3.latencyMs.

import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import test from 'ava'

import { getText, makeRecords, performance, readJobOutput, runJob, startEmu, unique } from './helpers.mjs'

test('the bucket named by startEmulator already exists and is listed', async (t) => {
  const { emu, s3 } = await startEmu(t)
  const head = await s3.send(new HeadBucketCommand({ Bucket: emu.bucket }))
  t.is(head.$metadata.httpStatusCode, 200)
  const list = await s3.send(new ListBucketsCommand({}))
  t.true((list.Buckets ?? []).some((b) => b.Name === emu.bucket))
})

test('objects round-trip through PutObject, GetObject, HeadObject, ListObjectsV2 and DeleteObject', async (t) => {
  const { emu, s3 } = await startEmu(t)
  const p = unique('rt')
  const text = 'héllo wörld\n{"a":1}\n'
  await s3.send(new PutObjectCommand({ Bucket: emu.bucket, Key: `${p}/a.jsonl`, Body: text }))
  await s3.send(new PutObjectCommand({ Bucket: emu.bucket, Key: `${p}/sub/b.jsonl`, Body: 'b' }))
  t.is(await getText(s3, emu.bucket, `${p}/a.jsonl`), text)
  const head = await s3.send(new HeadObjectCommand({ Bucket: emu.bucket, Key: `${p}/a.jsonl` }))
  t.is(head.ContentLength, Buffer.byteLength(text))
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: emu.bucket, Prefix: `${p}/` }))
  t.deepEqual((listed.Contents ?? []).map((o) => o.Key).sort(), [`${p}/a.jsonl`, `${p}/sub/b.jsonl`])
  const delimited = await s3.send(new ListObjectsV2Command({ Bucket: emu.bucket, Prefix: `${p}/`, Delimiter: '/' }))
  t.deepEqual(
    (delimited.CommonPrefixes ?? []).map((c) => c.Prefix),
    [`${p}/sub/`],
  )
  await s3.send(new DeleteObjectCommand({ Bucket: emu.bucket, Key: `${p}/a.jsonl` }))
  const err = await t.throwsAsync(s3.send(new GetObjectCommand({ Bucket: emu.bucket, Key: `${p}/a.jsonl` })))
  t.is(err?.name, 'NoSuchKey')
  t.is(err?.$metadata?.httpStatusCode, 404)
})

test('S3 checks SigV4: a wrong secret key is refused with 403 SignatureDoesNotMatch', async (t) => {
  const { emu } = await startEmu(t)
  const bad = new S3Client({
    region: emu.region,
    endpoint: emu.endpoints.s3,
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: {
      accessKeyId: emu.credentials.accessKeyId,
      secretAccessKey: `${emu.credentials.secretAccessKey}-wrong`,
    },
  })
  const err = await t.throwsAsync(bad.send(new PutObjectCommand({ Bucket: emu.bucket, Key: 'nope.txt', Body: 'x' })))
  t.is(err?.$metadata?.httpStatusCode, 403)
  t.is(err?.name, 'SignatureDoesNotMatch')
})

test('S3 refuses an unknown access key with 403 InvalidAccessKeyId as AWS S3 does', async (t) => {
  const { emu } = await startEmu(t)
  const bad = new S3Client({
    region: emu.region,
    endpoint: emu.endpoints.s3,
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: { accessKeyId: 'AKIAUNKNOWNUNKNOWN00', secretAccessKey: 'whatever' },
  })
  const err = await t.throwsAsync(bad.send(new ListObjectsV2Command({ Bucket: emu.bucket })))
  t.is(err?.$metadata?.httpStatusCode, 403)
  t.is(
    err?.name,
    'InvalidAccessKeyId',
    `AWS S3 answers InvalidAccessKeyId for a key it does not know (message: ${err?.message})`,
  )
})

test('s3.failFirst makes the first S3 request fail with 503 SlowDown and the next one succeed', async (t) => {
  const { emu, s3 } = await startEmu(t, { s3: { failFirst: 1 } }, { s3MaxAttempts: 1 })
  const p = unique('slowdown')
  const err = await t.throwsAsync(
    s3.send(new PutObjectCommand({ Bucket: emu.bucket, Key: `${p}/a.txt`, Body: 'first' })),
  )
  t.is(err?.name, 'SlowDown')
  t.is(err?.$metadata?.httpStatusCode, 503)
  t.is(err?.$fault, 'server')
  const ok = await s3.send(new PutObjectCommand({ Bucket: emu.bucket, Key: `${p}/a.txt`, Body: 'second' }))
  t.is(ok.$metadata.httpStatusCode, 200)
  t.is(await getText(s3, emu.bucket, `${p}/a.txt`), 'second')
})

test('s3.failFirst of 3 fails exactly three requests in a row', async (t) => {
  const { emu, s3 } = await startEmu(t, { s3: { failFirst: 3 } }, { s3MaxAttempts: 1 })
  const p = unique('slowdown3')
  const results = []
  for (let i = 0; i < 5; i++) {
    try {
      await s3.send(new PutObjectCommand({ Bucket: emu.bucket, Key: `${p}/k${i}.txt`, Body: `v${i}` }))
      results.push('ok')
    } catch (err) {
      results.push(`${err.name}:${err.$metadata?.httpStatusCode}`)
    }
  }
  t.deepEqual(results, ['SlowDown:503', 'SlowDown:503', 'SlowDown:503', 'ok', 'ok'])
})

test('the SDK retry strategy rides over s3.failFirst on its own', async (t) => {
  const { emu, s3 } = await startEmu(t, { s3: { failFirst: 1 } }, { s3MaxAttempts: 3 })
  const p = unique('retry')
  const ok = await s3.send(new PutObjectCommand({ Bucket: emu.bucket, Key: `${p}/a.txt`, Body: 'retried' }))
  t.is(ok.$metadata.attempts, 2, 'one SlowDown, then success')
  t.is(await getText(s3, emu.bucket, `${p}/a.txt`), 'retried')
})

test('s3.latencyMs adds at least that much time to each S3 request', async (t) => {
  const { emu, s3 } = await startEmu(t, { s3: { latencyMs: 200 } })
  const p = unique('latency')
  let started = performance.now()
  await s3.send(new PutObjectCommand({ Bucket: emu.bucket, Key: `${p}/a.txt`, Body: 'x' }))
  const put = performance.now() - started
  started = performance.now()
  await getText(s3, emu.bucket, `${p}/a.txt`)
  const get = performance.now() - started
  t.log(`put ${put.toFixed(0)} ms, get ${get.toFixed(0)} ms`)
  t.true(put >= 195, `PutObject took ${put} ms`)
  t.true(get >= 195, `GetObject took ${get} ms`)
})

test('a job still completes when S3 is slow', async (t) => {
  const ctx = await startEmu(t, { s3: { latencyMs: 50 } })
  const records = makeRecords(100)
  const { job, jobId, outputPrefix } = await runJob(ctx, records)
  t.is(job.status, 'Completed', `message: ${job.message}`)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.is(out.records.length, 100)
})

test('a job reads input and writes output through the same S3 the SDK sees after failFirst is spent', async (t) => {
  const ctx = await startEmu(t, { s3: { failFirst: 2 } }, { s3MaxAttempts: 5 })
  const records = makeRecords(100)
  const { job, jobId, outputPrefix } = await runJob(ctx, records)
  t.is(job.status, 'Completed', `message: ${job.message}`)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  t.deepEqual(out.records.map((r) => r.recordId).sort(), records.map((r) => r.recordId).sort())
})
