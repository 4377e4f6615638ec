// The tests that must run alone (`npx ava --config ava.solo.config.mjs`; .ci/test runs them after
// the two suites): they load the whole machine for a minute or more (four processes, a PostgreSQL
// server and the emulator), which would starve the timing-sensitive tests ava runs beside them.
export default {
  files: ['__test__/*.solo.mjs'],
  workerThreads: false,
  timeout: '6m',
  concurrency: 1,
  environmentVariables: {
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test-dummy-access-key',
    AWS_SECRET_ACCESS_KEY: 'test-dummy-secret-key',
  },
}
