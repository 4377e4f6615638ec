// One parser for the options of the CLI commands, the demo and the integration script.
'use strict'

/** "a", "a or b", "a, b or c". */
function oneOf(values) {
  return values.length < 2 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`
}

/**
 * Parses `argv` by `spec`, an object from option name (`--port`) to `{ key, type, ... }`:
 * - `string`: the next argument;
 * - `flag`: `true`;
 * - `int`: a whole number of at least `min` (default 0);
 * - `seconds`: a number of seconds above 0;
 * - `choice`: one of `of`.
 * `--help` / `-h` set `help`. With `positional: true`, arguments that are not options are
 * collected in `positional`; otherwise they are errors, as unknown options always are.
 * Returns `defaults` with the options given. Throws an Error that names the option at fault.
 */
function parseArgs(argv, spec, defaults = {}, { positional = false } = {}) {
  const out = { ...defaults }
  if (positional) out.positional = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--help' || a === '-h') {
      out.help = true
      continue
    }
    const s = spec[a]
    if (!s) {
      if (positional && !a.startsWith('-')) {
        out.positional.push(a)
        continue
      }
      throw new Error(`unknown option ${a}`)
    }
    if (s.type === 'flag') {
      out[s.key] = true
      continue
    }
    const v = argv[++i]
    if (v === undefined) throw new Error(`${a} needs a value`)
    out[s.key] = value(a, s, v)
  }
  return out
}

function value(name, s, v) {
  switch (s.type) {
    case 'string':
      return v
    case 'int': {
      const min = s.min ?? 0
      const n = Number(v)
      if (!Number.isInteger(n) || n < min) throw new Error(`${name} needs a whole number${min > 0 ? ` of at least ${min}` : ''}, got ${JSON.stringify(v)}`)
      return n
    }
    case 'seconds': {
      const n = Number(v)
      if (!(Number.isFinite(n) && n > 0)) throw new Error(`${name} needs a number of seconds above 0, got ${JSON.stringify(v)}`)
      return n
    }
    case 'choice':
      if (!s.of.includes(v)) throw new Error(`${name} must be ${oneOf(s.of)}, got ${JSON.stringify(v)}`)
      return v
    default:
      throw new Error(`option ${name}: unknown type ${s.type}`)
  }
}

module.exports = { parseArgs }
