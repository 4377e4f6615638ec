#!/usr/bin/env node
'use strict'
// bedrock-batch-bridge command line. Commands: emulator, demo, jobs, serve, dashboard (each defined in its module).

const { CliCommand, run } = require('./cli/command.js')
const { emulatorCommand } = require('./cli/emulator.js')
const { jobsCommand } = require('./cli/jobs.js')
const { serveCommand } = require('./cli/serve.js')
const { demoCommand } = require('./cli/demo.js')
const { dashboardCommand } = require('./cli/dashboard.js')

/** The program: its commands, in the order its help lists them. */
function program() {
  return new CliCommand('bedrock-batch-bridge')
    .description('Amazon Bedrock InvokeModel calls as Bedrock batch inference jobs, with a local emulator.')
    .addCommand(emulatorCommand())
    .addCommand(demoCommand())
    .addCommand(jobsCommand())
    .addCommand(serveCommand())
    .addCommand(dashboardCommand())
    .addHelpText('after', '\nrun "bedrock-batch-bridge <command> --help" for a command\'s options')
    .asGroup()
}

if (require.main === module) {
  // Output piped into a command that exits early (`| head`): stop quietly.
  process.stdout.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0)
    throw err
  })
  run(program(), process.argv.slice(2)).then((code) => {
    if (code) process.exit(code)
  })
}

module.exports = { program }
