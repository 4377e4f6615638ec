// The emulator the benchmarks run against: the fast profile, in a process of its own (so that
// neither its memory nor its CPU counts as the client's), with 20 concurrent jobs per model; and
// `scenario()`, which runs one bench/scenario.mjs scenario in a process of its own.
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Starts it; resolves with `{ child, info }` (`info`: its endpoints, region, credentials, bucket). */
export async function startEmulator() {
  const child = spawn(
    process.execPath,
    [path.join(root, 'cli.js'), 'emulator', '--profile', 'fast', '--json', '--max-concurrent-jobs', '20'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const rl = readline.createInterface({ input: child.stdout })
  for await (const line of rl) if (line.startsWith('{')) return { child, info: JSON.parse(line) }
  throw new Error('the emulator did not start')
}

/**
 * Runs one bench/scenario.mjs scenario (`args`: kind, N, flags) in a fresh process against the
 * emulator `emu` (its `info`); returns the JSON line it prints.
 */
export function scenario(emu, args) {
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', path.join(root, 'bench', 'scenario.mjs'), ...args.map(String)],
    {
      env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true', BENCH_EMULATOR: JSON.stringify(emu) },
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    },
  )
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'))
  if (r.status !== 0 || !line) throw new Error(`scenario ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return JSON.parse(line)
}
