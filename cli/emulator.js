'use strict'
// `bedrock-batch-bridge emulator`: the local Bedrock batch emulator on 127.0.0.1 until interrupted.

const { CliCommand } = require('./command.js')
const { checkedOption, oneOf, wholeNumber } = require('./values.js')

/** The command (its options, their defaults and its help are defined here). */
function emulatorCommand() {
  return new CliCommand('emulator')
    .summary('run the local Bedrock batch emulator (control plane, runtime, OpenAI endpoint, S3)')
    .description('Runs the local Amazon Bedrock batch emulator on 127.0.0.1 until interrupted (Ctrl-C).')
    .addOption(
      checkedOption(
        '--port <N>',
        'first port to use (control plane, runtime and OpenAI on N, S3 on N+1) (default: free ports)',
        wholeNumber(),
      ),
    )
    .addOption(
      checkedOption(
        '--profile <fast|realistic>',
        'job timing; realistic: each stage 1-3 s',
        oneOf('fast', 'realistic'),
      ).default('realistic'),
    )
    .addOption(checkedOption('--min-records <N>', 'minimum records per job (default: 100)', wholeNumber()))
    .addOption(
      checkedOption('--max-concurrent-jobs <N>', 'submitted + running jobs per model (default: 20)', wholeNumber()),
    )
    .option('--region <R>', 'region the emulator claims to be (default: us-east-1)')
    .option('--data-dir <DIR>', 'keep S3 objects in DIR instead of a temporary folder')
    .option('--no-verify-signatures', 'accept any credentials on the control plane and runtime (S3 still checks)')
    .option('--json', 'print the endpoints as one JSON line')
    .action(emulator)
}

async function emulator({ json, ...opts }) {
  const { startEmulator } = require('../index.js')
  const emu = await startEmulator(opts)
  const env = {
    AWS_ENDPOINT_URL_BEDROCK: emu.endpoints.bedrock,
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: emu.endpoints.bedrockRuntime,
    AWS_ENDPOINT_URL_S3: emu.endpoints.s3,
    AWS_ENDPOINT_URL_SERVICE_QUOTAS: emu.endpoints.serviceQuotas,
    AWS_ACCESS_KEY_ID: emu.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: emu.credentials.secretAccessKey,
    AWS_REGION: emu.region,
    AWS_EC2_METADATA_DISABLED: 'true',
  }
  if (json) {
    console.log(
      JSON.stringify({
        region: emu.region,
        endpoints: emu.endpoints,
        bucket: emu.bucket,
        credentials: emu.credentials,
        env,
      }),
    )
  } else {
    console.log(`Bedrock batch emulator (${opts.profile} profile) on 127.0.0.1

  bedrock         ${emu.endpoints.bedrock}
  bedrockRuntime  ${emu.endpoints.bedrockRuntime}
  s3              ${emu.endpoints.s3}   (bucket: ${emu.bucket}, path-style)
  openai          ${emu.endpoints.openai}
  serviceQuotas   ${emu.endpoints.serviceQuotas}

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

module.exports = { emulatorCommand }
