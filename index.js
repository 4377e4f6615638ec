'use strict'
// The public JavaScript surface of bedrock-batch-bridge, over the generated napi loader (binding.js).

const native = require('./binding.js')

/**
 * Starts the local Bedrock batch emulator on 127.0.0.1.
 * @param {import('./index').EmulatorOptions} [options]
 * @returns {Promise<import('./index').RunningEmulator>}
 */
async function startEmulator(options) {
  let handle
  try {
    handle = await native.startEmulatorNative(options ?? null)
  } catch (err) {
    throw toError(err)
  }
  const endpoints = handle.endpoints
  return {
    region: handle.region,
    credentials: { accessKeyId: handle.accessKeyId, secretAccessKey: handle.secretAccessKey },
    endpoints: {
      bedrock: endpoints.bedrock,
      bedrockRuntime: endpoints.bedrockRuntime,
      s3: endpoints.s3,
      openai: endpoints.openai,
    },
    bucket: handle.bucket,
    stop: () => handle.stop(),
  }
}

/** Native errors carry `Name: message`; give them their AWS-style `name`. */
function toError(err) {
  const m = /^([A-Za-z]+(?:Exception|Error)): ([\s\S]*)$/.exec(err && err.message)
  if (!m) return err
  const e = new Error(m[2])
  e.name = m[1]
  return e
}

module.exports = { startEmulator }
