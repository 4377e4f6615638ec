'use strict'
// startEmulator: the local Bedrock batch emulator (control plane, runtime, OpenAI-compatible
// endpoint, S3) on 127.0.0.1.

const native = require('../binding.js')
const { isEngineError, toException } = require('./errors.js')

/**
 * Starts the local Bedrock batch emulator on 127.0.0.1.
 * @param {import('../index').EmulatorOptions} [options]
 * @returns {Promise<import('../index').RunningEmulator>}
 */
async function startEmulator(options) {
  const handle = await native.startEmulatorNative(options ?? null)
  if (isEngineError(handle)) throw toException(handle)
  const endpoints = handle.endpoints
  return {
    region: handle.region,
    credentials: { accessKeyId: handle.accessKeyId, secretAccessKey: handle.secretAccessKey },
    endpoints: {
      bedrock: endpoints.bedrock,
      bedrockRuntime: endpoints.bedrockRuntime,
      s3: endpoints.s3,
      openai: endpoints.openai,
      serviceQuotas: endpoints.serviceQuotas,
    },
    bucket: handle.bucket,
    stop: () => handle.stop(),
  }
}

module.exports = { startEmulator }
