'use strict'
// Bodies: the SDK's output body shape (a Uint8Array with `transformToString`), and the input
// body types InvokeModel takes.

/** A Uint8Array with `transformToString(encoding?)`, as the AWS SDK returns bodies. */
class Uint8ArrayBlobAdapter extends Uint8Array {
  static fromString(source, encoding = 'utf-8') {
    const buf = encoding === 'base64' ? Buffer.from(source, 'base64') : Buffer.from(source, 'utf-8')
    return Uint8ArrayBlobAdapter.mutate(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength))
  }
  static mutate(source) {
    Object.setPrototypeOf(source, Uint8ArrayBlobAdapter.prototype)
    return source
  }
  transformToString(encoding = 'utf-8') {
    const buf = Buffer.from(this.buffer, this.byteOffset, this.byteLength)
    return encoding === 'base64' ? buf.toString('base64') : buf.toString('utf-8')
  }
}

/** The bytes of an input body (string, Buffer, Uint8Array, ArrayBuffer, typed array), or null. */
function bodyBytes(body) {
  if (typeof body === 'string') return body
  if (body instanceof Uint8Array) return body
  if (body instanceof ArrayBuffer) return new Uint8Array(body)
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
  return null
}

module.exports = { Uint8ArrayBlobAdapter, bodyBytes }
