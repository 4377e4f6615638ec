'use strict'
// The public JavaScript surface of bedrock-batch-bridge, over the generated napi loader
// (binding.js). Each concern has its module under lib/.

const { Uint8ArrayBlobAdapter } = require('./lib/body.js')
const { BatchInferenceClient } = require('./lib/client.js')
const {
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} = require('./lib/commands.js')
const { startEmulator } = require('./lib/emulator.js')
const { BedrockBatchBridgeException, exceptionClasses } = require('./lib/errors.js')
const { batchFetch } = require('./lib/fetch.js')
const { batchPlugin } = require('./lib/plugin.js')

module.exports = {
  BatchInferenceClient,
  BedrockRuntimeClient: BatchInferenceClient,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  ConverseCommand,
  ConverseStreamCommand,
  Uint8ArrayBlobAdapter,
  BedrockBatchBridgeException,
  ...exceptionClasses,
  batchPlugin,
  batchFetch,
  startEmulator,
}
