#!/usr/bin/env node
'use strict'
// bedrock-batch-bridge command line. Subcommands: emulator, demo, jobs.

const { parseArgs } = require('./cli/args.js')

const USAGE = `usage: bedrock-batch-bridge <command> [options]

commands:
  emulator   run the local Bedrock batch emulator (control plane, runtime, OpenAI endpoint, S3)
  demo       send 500 questions through batch mode against the emulator, with live progress
  jobs       list, show (and wait for), stop batch inference jobs, and write a job's results as JSONL

run "bedrock-batch-bridge <command> --help" for a command's options`

const EMULATOR_USAGE = `usage: bedrock-batch-bridge emulator [options]

Runs the local Amazon Bedrock batch emulator on 127.0.0.1 until interrupted (Ctrl-C).

options:
  --port N                  first port to use (control plane, runtime and OpenAI on N, S3 on N+1); default: free ports
  --profile fast|realistic  job timing; default realistic (each stage 1-3 s)
  --min-records N           minimum records per job; default 100
  --max-concurrent-jobs N   submitted + running jobs per model; default 20
  --region R                region the emulator claims to be; default us-east-1
  --data-dir DIR            keep S3 objects in DIR instead of a temporary folder
  --no-verify-signatures    accept any credentials on the control plane and runtime (S3 still checks)
  --json                    print the endpoints as one JSON line
  --help                    this text`

const EMULATOR_OPTIONS = {
  '--port': { key: 'port', type: 'int' },
  '--profile': { key: 'profile', type: 'choice', of: ['fast', 'realistic'] },
  '--min-records': { key: 'minRecords', type: 'int' },
  '--max-concurrent-jobs': { key: 'maxConcurrentJobs', type: 'int' },
  '--region': { key: 'region', type: 'string' },
  '--data-dir': { key: 'dataDir', type: 'string' },
  '--json': { key: 'json', type: 'flag' },
  '--no-verify-signatures': { key: 'noVerifySignatures', type: 'flag' },
}

function parseEmulatorArgs(argv) {
  const { help, json = false, noVerifySignatures, ...opts } = parseArgs(argv, EMULATOR_OPTIONS, { profile: 'realistic' })
  if (noVerifySignatures) opts.verifySignatures = false
  return help ? { help } : { opts, json }
}

async function emulator(argv) {
  const parsed = parseEmulatorArgs(argv)
  if (parsed.help) {
    console.log(EMULATOR_USAGE)
    return
  }
  const { startEmulator } = require('./index.js')
  const emu = await startEmulator(parsed.opts)
  const env = {
    AWS_ENDPOINT_URL_BEDROCK: emu.endpoints.bedrock,
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: emu.endpoints.bedrockRuntime,
    AWS_ENDPOINT_URL_S3: emu.endpoints.s3,
    AWS_ACCESS_KEY_ID: emu.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: emu.credentials.secretAccessKey,
    AWS_REGION: emu.region,
    AWS_EC2_METADATA_DISABLED: 'true',
  }
  if (parsed.json) {
    console.log(JSON.stringify({ region: emu.region, endpoints: emu.endpoints, bucket: emu.bucket, credentials: emu.credentials, env }))
  } else {
    console.log(`Bedrock batch emulator (${parsed.opts.profile} profile) on 127.0.0.1

  bedrock         ${emu.endpoints.bedrock}
  bedrockRuntime  ${emu.endpoints.bedrockRuntime}
  s3              ${emu.endpoints.s3}   (bucket: ${emu.bucket}, path-style)
  openai          ${emu.endpoints.openai}

Paste into a shell to point the AWS SDKs at it:
`)
    for (const [k, v] of Object.entries(env)) console.log(`export ${k}=${v}`)
    console.log('\nCtrl-C stops it.')
  }
  // The native servers do not hold the event loop; this timer does, until a signal arrives.
  const keepAlive = setInterval(() => {}, 1 << 30)
  const shutdown = async () => {
    clearInterval(keepAlive)
    await emu.stop()
    process.exit(0)
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

async function main(argv) {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case 'emulator':
      return emulator(rest)
    case 'demo': {
      const code = await require('./demo/demo.js').demo(rest)
      process.exitCode = code
      return
    }
    case 'jobs':
      return require('./cli/jobs.js').jobs(rest)
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE)
      return
    default:
      throw new Error(`unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`)
  }
}

if (require.main === module) {
  // Output piped into a command that exits early (`| head`): stop quietly.
  process.stdout.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0)
    throw err
  })
  main(process.argv.slice(2)).catch((err) => {
    console.error(`bedrock-batch-bridge: ${err.message}`)
    process.exit(2)
  })
}

module.exports = { parseEmulatorArgs }
