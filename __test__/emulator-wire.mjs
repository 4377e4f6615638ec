// Raw requests to the emulator's AWS APIs, still signed by the real AWS SDK for JavaScript: a
// Bedrock client whose request is replaced (method, path, query, headers, body) before the SDK
// signs it, and whose raw HTTP answer is returned before the SDK parses it. Tests use it to send
// what an SDK would never send (unknown members, garbage) and to read the wire as it is.

import { BedrockClient, ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'

class RawAnswer extends Error {
  constructor(response) {
    super('raw answer')
    this.response = response
  }
}

async function text(stream) {
  if (!stream) return ''
  const chunks = []
  for await (const c of stream) chunks.push(Buffer.from(c))
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * Sends `{ method, path, query, headers, body }` to `endpoint` (the control plane by default),
 * signed with `credentials` (the emulator's by default) for `region`. Returns
 * `{ status, headers, text, json }` of the raw answer (`json` is undefined when the body is not JSON).
 */
export async function signedRequest(
  emu,
  { method = 'GET', path, query = {}, headers = {}, body, endpoint, credentials, region } = {},
) {
  const client = new BedrockClient({
    region: region ?? emu.region,
    endpoint: endpoint ?? emu.endpoints.bedrock,
    credentials: credentials ?? emu.credentials,
    maxAttempts: 1,
  })
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request
      req.method = method
      req.path = path
      req.query = query
      for (const h of Object.keys(req.headers)) if (/^content-(length|type)$/i.test(h)) delete req.headers[h]
      Object.assign(req.headers, headers)
      req.body = body
      if (body !== undefined) req.headers['content-length'] = String(Buffer.byteLength(body))
      return next(args)
    },
    { step: 'build', priority: 'high', name: 'emulatorRawRequest' },
  )
  client.middlewareStack.add(
    (next) => async (args) => {
      const { response } = await next(args)
      throw new RawAnswer(response)
    },
    { step: 'deserialize', priority: 'low', name: 'emulatorRawAnswer' },
  )
  try {
    await client.send(new ListModelInvocationJobsCommand({}))
  } catch (err) {
    if (!(err instanceof RawAnswer)) throw err
    const body = await text(err.response.body)
    let json
    try {
      json = JSON.parse(body)
    } catch {}
    return { status: err.response.statusCode, headers: err.response.headers, text: body, json }
  } finally {
    client.destroy()
  }
  throw new Error('the raw answer was not captured')
}

/** The sanitised error type of a raw answer (what follows `#`, cut at `:`), as SDKs read it. */
export function errorType(answer) {
  return (answer.headers['x-amzn-errortype'] ?? '').split(':')[0].split('#').pop()
}
