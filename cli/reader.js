'use strict'
// The store a command reads from beside the processes that own it: `--journal FILE` (a SQLite
// journal, read while its owner keeps it locked) or `--store URL [--group NAME]` (a PostgreSQL
// group, or BEDROCK_BATCH_STORE_URL), through the addon's NativeStoreReader, which takes no lock.

const { namedFailure, UsageError } = require('./command.js')

/**
 * The reader for `o.journal` or `o.store` / BEDROCK_BATCH_STORE_URL (`o.group`), or null when none
 * is given: `{ reader, kind ('sqlite' or 'postgres'), flags }`, `flags` being the options that name
 * the store again on a command line (the URL as "$BEDROCK_BATCH_STORE_URL": never a password).
 */
function openReader(o) {
  const url = o.store || (o.journal ? undefined : process.env.BEDROCK_BATCH_STORE_URL)
  if (o.journal && o.store) throw new UsageError('--journal and --store name two stores: give one')
  if (!url && !o.journal) return null
  const { NativeStoreReader } = require('../binding.js')
  const { fromNative } = require('../lib/errors.js')
  const options = o.journal
    ? { journal: { path: o.journal } }
    : { store: { url, ...(o.group ? { group: o.group } : {}) } }
  let reader
  try {
    reader = new NativeStoreReader(options)
  } catch (thrown) {
    throw namedFailure(fromNative(thrown))
  }
  const flags = o.journal
    ? ['--journal', shellWord(o.journal)]
    : ['--store', '"$BEDROCK_BATCH_STORE_URL"', ...(o.group ? ['--group', shellWord(o.group)] : [])]
  return { reader, kind: o.journal ? 'sqlite' : 'postgres', flags }
}

/** A word as a POSIX shell reads it back (quoted unless it is plain). */
function shellWord(text) {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(text) ? text : `'${String(text).replace(/'/g, `'\\''`)}'`
}

module.exports = { openReader, shellWord }
