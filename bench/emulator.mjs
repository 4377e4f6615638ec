// The emulator the benchmarks run against: the fast profile, in a process of its own (so that
// neither its memory nor its CPU counts as the client's), with 20 concurrent jobs per model.
import { spawn } from 'node:child_process'
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
