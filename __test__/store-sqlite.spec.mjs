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
