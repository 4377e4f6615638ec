'use strict'
// OpenAI Embeddings onto InvokeModel for the embedding models the engine batches: Titan text
// embeddings (one record per input string, `inputText`, `dimensions` for v2) and Cohere embed (one
// record for the list, `texts`). Answers as OpenAI's `list` of `embedding` objects, floats or the
// base64 of little-endian float32s. Pure functions: no I/O.

const { invalid } = require('./errors.js')

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

/** The family of an embedding model id (the id may carry a region prefix or be an ARN). */
function family(modelId) {
  const m = modelId.split('/').pop().toLowerCase()
  if (/(^|\.)amazon\.titan-embed-/.test(m)) return 'titan'
  if (/(^|\.)cohere\.embed-/.test(m)) return 'cohere'
  return null
}

/**
 * An Embeddings request for `modelId` as `{ inputs, records, base64 }`: the InvokeModel bodies to
 * send (bytes), and how each input's vector is read back (`read(answers) → [[floats], tokens]`).
 */
function embeddingsRequest(body, modelId) {
  if (!isObject(body)) throw invalid(null, 'The request body must be a JSON object.')
  const input = typeof body.input === 'string' ? [body.input] : body.input
  if (!Array.isArray(input) || input.length === 0 || input.some((s) => typeof s !== 'string' || s === ''))
    throw invalid(
      'input',
      'input must be a non-empty string or a non-empty array of them (token arrays are not supported).',
    )
  const format = body.encoding_format ?? 'float'
  if (format !== 'float' && format !== 'base64')
    throw invalid('encoding_format', 'encoding_format must be "float" or "base64".')
  const kind = family(modelId)
  if (!kind)
    throw invalid(
      'model',
      `${modelId} is not an embedding model this server batches (amazon.titan-embed-* and cohere.embed-* are).`,
    )
  const dims = body.dimensions
  if (dims !== undefined && dims !== null && (!Number.isInteger(dims) || dims < 1))
    throw invalid('dimensions', 'dimensions must be a whole number.')
  let records
  if (kind === 'titan') {
    if (dims != null && !/titan-embed-text-v2/.test(modelId))
      throw invalid('dimensions', 'dimensions is supported by amazon.titan-embed-text-v2 only.')
    records = input.map((text) => {
      const r = { inputText: text }
      if (dims != null) r.dimensions = dims
      return Buffer.from(JSON.stringify(r))
    })
  } else {
    if (dims != null) throw invalid('dimensions', 'dimensions is not supported by Cohere embed models.')
    records = [Buffer.from(JSON.stringify({ texts: input, input_type: 'search_document' }))]
  }
  return { kind, count: input.length, records, base64: format === 'base64' }
}

/** The vectors and input tokens of the answers (bytes) to `records`, in input order. */
function readEmbeddings(kind, answers) {
  const vectors = []
  let tokens = 0
  for (const bytes of answers) {
    const a = JSON.parse(bytes.toString('utf8'))
    if (kind === 'titan') {
      vectors.push(a.embedding)
      if (Number.isInteger(a.inputTextTokenCount)) tokens += a.inputTextTokenCount
    } else {
      const e = Array.isArray(a.embeddings) ? a.embeddings : a.embeddings?.float
      vectors.push(...(e ?? []))
      const billed = a.meta?.billed_units?.input_tokens
      if (Number.isInteger(billed)) tokens += billed
    }
  }
  return { vectors, tokens }
}

/** A vector as the base64 of its little-endian float32s, as OpenAI sends it. */
function base64Vector(vector) {
  const buf = Buffer.alloc(vector.length * 4)
  for (let i = 0; i < vector.length; i++) buf.writeFloatLE(vector[i], i * 4)
  return buf.toString('base64')
}

/** OpenAI's Embeddings answer. */
function embeddingsAnswer({ vectors, tokens }, { model, base64 }) {
  return {
    object: 'list',
    data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: base64 ? base64Vector(v) : v })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  }
}

module.exports = { embeddingsRequest, readEmbeddings, embeddingsAnswer, base64Vector, family }
