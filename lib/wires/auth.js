'use strict'
// The API keys of the OpenAI and Anthropic wires on `serve`: which keys there are (`--api-key`,
// BEDROCK_BATCH_SERVE_API_KEYS, `apiKeys` in the config file), and whether a request carries one
// of them (`Authorization: Bearer KEY` or `x-api-key: KEY`), compared in constant time.

const { createHash, timingSafeEqual } = require('node:crypto')

/** The keys as a list of non-empty strings; a TypeError naming `apiKeys` otherwise. */
function apiKeyList(value) {
  const list = value === undefined || value === null ? [] : Array.isArray(value) ? value : [value]
  for (const k of list) {
    if (typeof k !== 'string' || k.trim() === '')
      throw new TypeError('apiKeys must be non-empty strings (--api-key KEY, or BEDROCK_BATCH_SERVE_API_KEYS)')
  }
  return list.map((k) => k.trim())
}

const digest = (text) => createHash('sha256').update(text, 'utf8').digest()

/** The key a request presents (`Authorization: Bearer KEY`, else `x-api-key`), or undefined. */
function presentedKey(header) {
  const auth = header('authorization')
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim())
    if (m) return m[1].trim()
  }
  const key = header('x-api-key')
  return typeof key === 'string' && key.trim() !== '' ? key.trim() : undefined
}

/**
 * A checker over `keys`: `check(header)` is `{ ok: true, credential }` (credential: a digest of the
 * key, never the key, for keying retries) or `{ ok: false, message }`. With no keys, every request
 * passes (serve then listens on loopback only).
 */
function keyChecker(keys) {
  const digests = keys.map(digest)
  return (header) => {
    const presented = presentedKey(header)
    if (digests.length === 0) return { ok: true, credential: presented ? digest(presented).toString('hex') : '' }
    if (presented === undefined)
      return { ok: false, message: 'No API key given: send it as "Authorization: Bearer KEY" or "x-api-key: KEY".' }
    const d = digest(presented)
    // Every key is compared, so the time taken does not tell which one matched.
    let ok = false
    for (const k of digests) ok = timingSafeEqual(k, d) || ok
    if (!ok) return { ok: false, message: 'Incorrect API key provided.' }
    return { ok: true, credential: d.toString('hex') }
  }
}

module.exports = { apiKeyList, keyChecker, presentedKey }
