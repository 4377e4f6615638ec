// A headless chromium for the dashboard tests: Debian's chromium, driven by puppeteer-core (which
// downloads nothing). `.ci/run` installs chromium with apt-get when it is missing; a machine without
// it FAILS these tests (set CHROMIUM_BIN to use another binary).

import { existsSync } from 'node:fs'
import puppeteer from 'puppeteer-core'

/** The chromium binary: CHROMIUM_BIN when set, else Debian's; none is a failure, never a skip. */
export function chromiumPath() {
  const candidates = process.env.CHROMIUM_BIN
    ? [process.env.CHROMIUM_BIN]
    : ['/usr/bin/chromium', '/usr/bin/chromium-browser']
  const found = candidates.find((p) => existsSync(p))
  if (!found)
    throw new Error(
      `no chromium for the dashboard tests (looked at ${candidates.join(', ')}): install Debian's with "apt-get install -y chromium" (as root, or with sudo; .ci/run does it), or set CHROMIUM_BIN to a Chromium or Chrome binary`,
    )
  return found
}

/** A headless chromium, closed in teardown. */
export async function launch(t) {
  const browser = await puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    // --no-sandbox: CI runs as root, where chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run'],
    timeout: 60_000,
  })
  t.teardown(() => browser.close())
  return browser
}
