'use strict'
// Writes index.mjs, the ESM entry: every name index.js exports (the exception classes among them
// come from the binding's list), as named exports. Run by `npm run build`; `--check` exits 1
// when index.mjs is not what it would write.

const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const names = Object.keys(require(path.join(root, 'index.js')))
const text = `// The ESM entry: the same objects as the CommonJS entry (index.js), as named exports.
// Written by scripts/esm-entry.js from index.js's exports (npm run build); do not edit.
import bridge from './index.js'

export const {
${names.map((n) => `  ${n},`).join('\n')}
} = bridge

export default bridge
`
const file = path.join(root, 'index.mjs')
if (process.argv.includes('--check')) {
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
  if (current !== text) {
    console.error('index.mjs is out of date: run `node scripts/esm-entry.js`')
    process.exit(1)
  }
} else {
  fs.writeFileSync(file, text)
}
