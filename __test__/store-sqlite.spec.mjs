// The SQLite journal's own behaviours (those the other store shares are in store.spec.mjs): a
// file that is not a journal, and the journal's options.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'

import { BatchInferenceClient, claudeCommand, ROLE_ARN, startEmu, unique } from './helpers.mjs'

function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bbb-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A client for the emulator with the journal at `path`. */
function journalClient(t, emu, path, prefix) {
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    journal: { path },
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 1,
      batchTimeout: 0.1,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => client.destroy())
  return client
}

test('a corrupted or unreadable journal gives JournalCorruptedException naming the file, and is left as it was', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const path = join(tempDir(t), 'state', 'journal.db')
  const prefix = unique('corrupt')
  const first = journalClient(t, emu, path, prefix)
  await first.send(claudeCommand('before the damage'))
  await first.close()
  first.destroy()
  // Overwrite the header and some pages with garbage.
  const bytes = readFileSync(path)
  const damaged = Buffer.from(bytes)
  damaged.fill(0x5a, 0, Math.min(damaged.length, 4096))
  writeFileSync(path, damaged)
  const err = t.throws(() => journalClient(t, emu, path, prefix), { name: 'JournalCorruptedException' })
  t.true(err.message.includes(path), err.message)
  t.deepEqual(readFileSync(path), damaged, 'never silently replaced')

  // A directory where the file should be.
  t.throws(() => journalClient(t, emu, tempDir(t), prefix), { name: 'JournalCorruptedException' })
})

test('journal options are checked at construction', (t) => {
  const batch = { s3InputUri: 's3://b/in/', s3OutputUri: 's3://b/out/', roleArn: ROLE_ARN }
  t.throws(() => new BatchInferenceClient({ region: 'us-east-1', batch, journal: { path: '' } }), {
    name: 'ValidationException',
    message: /journal\.path/,
  })
  t.throws(
    () => new BatchInferenceClient({ region: 'us-east-1', batch, journal: { path: 'x.db', retentionDays: -1 } }),
    {
      name: 'ValidationException',
      message: /retentionDays/,
    },
  )
  t.throws(() => new BatchInferenceClient({ region: 'us-east-1', mode: 'direct', journal: { path: 'x.db' } }), {
    name: 'ValidationException',
    message: /batch mode/,
  })
})

test('another process reads the journal (jobs, answers) while its client keeps it, and takes nothing from it', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const path = join(tempDir(t), 'journal.db')
  const prefix = unique('reader')
  const owner = journalClient(t, emu, path, prefix)
  const answer = await owner.send(claudeCommand('read me from beside'))
  t.truthy(answer.body)
  // A separate process, as `dashboard --journal` and `jobs list --journal` are.
  const script = `
    const { NativeStoreReader } = require(${JSON.stringify(join(process.cwd(), 'binding.js'))})
    const r = new NativeStoreReader({ journal: { path: process.argv[1] } })
    ;(async () => {
      const { jobs, error } = await r.jobs()
      if (error) throw new Error(error.name + ': ' + error.message)
      const page = await r.results(jobs[0].jobArn, null, 10)
      const members = await r.members()
      const spend = await r.committedSpend()
      console.log(JSON.stringify({ location: r.location, jobs, results: page.results.length, members: members.members, usd: spend.usd }))
    })().catch((e) => { console.error(e.message); process.exit(1) })`
  const { execFileSync } = await import('node:child_process')
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script, path], { encoding: 'utf8' }))
  t.is(out.location, path)
  t.is(out.jobs.length, 1)
  t.is(out.jobs[0].status, 'Completed')
  t.is(out.jobs[0].successRecordCount, 1)
  t.is(out.results, 1)
  t.deepEqual(out.members, [], 'a journal has no group')
  t.is(out.usd, 0)
  // The owner kept its lock: a second client is refused, and the owner goes on.
  t.throws(() => journalClient(t, emu, path, prefix), { name: 'JournalLockedException' })
  t.truthy((await owner.send(claudeCommand('after the read'))).body)
  const { NativeStoreReader } = await import('../binding.js').then((m) => m.default ?? m)
  const missing = t.throws(() => new NativeStoreReader({ journal: { path: join(tempDir(t), 'none.db') } }), {
    any: true,
  })
  t.is(missing.name, 'ResourceNotFoundException')
  t.regex(missing.message, /There is no journal at/)
})

test("a door keeps documents in the client's journal across a restart; without a store there are none", async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1 })
  const path = join(tempDir(t), 'journal.db')
  const prefix = unique('docs')
  const first = journalClient(t, emu, path, prefix)
  const docs = await first._door.storeObjects()
  t.truthy(docs)
  await docs.put('openai.file', 'file-b', Buffer.from('bytes of b'))
  await docs.put('openai.file', 'file-a', Buffer.from('bytes of a'))
  await docs.put('openai.file', 'file-b', Buffer.from('b again'))
  t.deepEqual(await docs.get('openai.file', 'file-a'), Buffer.from('bytes of a'))
  t.is(await docs.get('openai.file', 'nope'), null)
  first.destroy()
  await new Promise((resolve) => setImmediate(resolve))
  let second
  // destroy() returns before the engine has let the journal go: try until it has (bounded).
  for (let i = 0; ; i++) {
    try {
      second = journalClient(t, emu, path, prefix)
      break
    } catch (e) {
      if (e.name !== 'JournalLockedException' || i > 200) throw e
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }
  const again = await second._door.storeObjects()
  const listed = await again.list('openai.file')
  t.deepEqual(
    listed.map((d) => [d.id, d.body.toString()]),
    [
      ['file-b', 'b again'],
      ['file-a', 'bytes of a'],
    ],
  )
  t.true(await again.delete('openai.file', 'file-b'))
  t.false(await again.delete('openai.file', 'file-b'))
  await second.close()
  await t.throwsAsync(() => again.put('openai.file', 'late', Buffer.from('x')), { name: 'ClientClosedException' })

  const plain = new BatchInferenceClient({
    mode: 'direct',
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
  })
  t.teardown(() => plain.destroy())
  t.is(await plain._door.storeObjects(), null)
})
