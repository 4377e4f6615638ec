// The region the AWS way: the option, AWS_REGION, AWS_DEFAULT_REGION, the profile's `region` in the
// shared config and credentials files (AWS_PROFILE, else default), else us-west-2. Every test
// points AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE at files of its own (never ~/.aws).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import test from 'ava'

const require = createRequire(import.meta.url)
const { BatchInferenceClient } = require('../index.js')

const VARS = ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE']

/** Sets the environment for one test (serial), with config and credentials files of its own. */
function withAwsFiles(t, { config = '', credentials = '', env = {} } = {}) {
  const saved = Object.fromEntries(VARS.map((k) => [k, process.env[k]]))
  const dir = mkdtempSync(path.join(tmpdir(), 'bbb-region-'))
  t.teardown(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
    rmSync(dir, { recursive: true, force: true })
  })
  for (const k of VARS) delete process.env[k]
  process.env.AWS_CONFIG_FILE = path.join(dir, 'config')
  process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'credentials')
  writeFileSync(process.env.AWS_CONFIG_FILE, config)
  writeFileSync(process.env.AWS_SHARED_CREDENTIALS_FILE, credentials)
  Object.assign(process.env, env)
}

const regionOf = (options) => new BatchInferenceClient(options).config.region

test.serial('the option wins, then AWS_REGION, then AWS_DEFAULT_REGION, then the profile, then us-west-2', (t) => {
  withAwsFiles(t, { config: '[default]\nregion = eu-west-1\n' })
  t.is(regionOf(), 'eu-west-1', 'the default profile')
  process.env.AWS_DEFAULT_REGION = 'ca-central-1'
  t.is(regionOf(), 'ca-central-1', 'AWS_DEFAULT_REGION over the profile')
  process.env.AWS_REGION = 'sa-east-1'
  t.is(regionOf(), 'sa-east-1', 'AWS_REGION over AWS_DEFAULT_REGION')
  t.is(regionOf({ region: 'ap-northeast-1' }), 'ap-northeast-1', 'the option over everything')
})

test.serial('with nothing set and no region in the files, the region is us-west-2', (t) => {
  withAwsFiles(t, { config: '[default]\noutput = json\n', credentials: '[default]\naws_access_key_id = x\n' })
  t.is(regionOf(), 'us-west-2')
  // Files that do not exist are no error either.
  rmSync(process.env.AWS_CONFIG_FILE)
  rmSync(process.env.AWS_SHARED_CREDENTIALS_FILE)
  t.is(regionOf(), 'us-west-2')
})

test.serial('AWS_PROFILE picks its [profile name] section of the config file', (t) => {
  withAwsFiles(t, {
    config: [
      '# a comment',
      '[default]',
      'region = eu-west-1',
      '',
      '[work]', // not a profile in the config file: it needs the "profile " prefix
      'region = us-gov-west-1',
      '',
      '[profile work]',
      's3 =',
      '  region = me-south-1', // a nested setting, not the profile's region
      '  addressing_style = path',
      'region = eu-central-1 ; the region',
      'output = json',
    ].join('\n'),
    env: { AWS_PROFILE: 'work' },
  })
  t.is(regionOf(), 'eu-central-1')
  process.env.AWS_PROFILE = 'missing'
  t.is(regionOf(), 'us-west-2', 'a profile that does not exist has no region')
})

test.serial('a region in the credentials file wins over the config file', (t) => {
  withAwsFiles(t, {
    config: '[profile dev]\nregion = eu-west-3\n[profile default]\nregion = eu-north-1\n',
    credentials: '[dev]\naws_access_key_id = x\nregion = ap-southeast-2\n',
    env: { AWS_PROFILE: 'dev' },
  })
  t.is(regionOf(), 'ap-southeast-2')
  delete process.env.AWS_PROFILE
  t.is(regionOf(), 'eu-north-1', '[profile default] is the default profile too')
})

test.serial("setup() without a region takes the profile's", async (t) => {
  withAwsFiles(t, { config: '[profile seed]\nregion = eu-south-1\n', env: { AWS_PROFILE: 'seed' } })
  const client = new BatchInferenceClient()
  t.teardown(() => client.destroy())
  await client.setup({
    modelId: 'm',
    s3InputUri: 's3://my-bucket/in/',
    s3OutputUri: 's3://my-bucket/out/',
    roleArn: 'arn:aws:iam::123456789012:role/R',
  })
  t.is(client.config.region, 'eu-south-1')
})
