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
    faults: (arm) => faults(endpoints.bedrock, arm),
    stop: () => handle.stop(),
  }
}

/**
 * `POST /_emulator/faults` with `arm` (when given), else `GET /_emulator/faults`: what is armed now
 * and what was served since start.
 * @param {string} bedrock the control plane's base URL
 * @param {import('../index').EmulatorFaultsArm} [arm]
 * @returns {Promise<import('../index').EmulatorFaults>}
 */
async function faults(bedrock, arm) {
  const res = await fetch(
    `${bedrock}/_emulator/faults`,
    arm === undefined
      ? {}
      : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(arm) },
  )
  const body = await res.json()
  if (!res.ok) throw new TypeError(`emulator faults: ${body.message}`)
  return body
}

module.exports = { startEmulator }
