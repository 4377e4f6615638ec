#!/usr/bin/env node
'use strict'
// Makes a fresh clone runnable: installs the dependencies when node_modules is missing and builds
// the addon when no bedrock-batch-bridge.*.node exists. Does nothing when both are there.
// `--dry-run` prints what it would run without running it. Used by `npm run demo` (predemo).

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

function steps(root) {
  const out = []
  if (!fs.existsSync(path.join(root, 'node_modules'))) out.push(['npm', 'ci', '--no-audit', '--no-fund'])
  const built = fs.readdirSync(root).some((f) => f.startsWith('bedrock-batch-bridge.') && f.endsWith('.node'))
  if (!built) out.push(['npm', 'run', 'build'])
  return out
}

function main() {
  const dryRun = process.argv.includes('--dry-run')
  const root = path.resolve(__dirname, '..')
  const todo = steps(root)
  if (todo.length === 0) {
    console.log('dependencies installed and addon built: nothing to do')
    return 0
  }
  for (const cmd of todo) {
    console.log(`${dryRun ? 'would run' : 'running'}: ${cmd.join(' ')}`)
    if (dryRun) continue
    const r = spawnSync(cmd[0], cmd.slice(1), { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' })
    if (r.status !== 0) {
      console.error(`${cmd.join(' ')} failed (exit ${r.status ?? r.signal})`)
      return 1
    }
  }
  return 0
}

process.exitCode = main()
