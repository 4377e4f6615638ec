'use strict'
// The dashboard page, whatever its source: `GET /_bridge/` (the page, its first view rendered here
// as HTML tables), `GET /_bridge/dashboard.json` (what the page polls), `GET /_bridge/assets/*` (its
// script, views and style, read from this folder) and, for a source that has them, one page per job
// (`GET /_bridge/jobs/<id>`). The source is serve's door (a Recorder, recorder.js) or a store read
// from beside its processes (store-source.js, for the `dashboard` command). Nothing is fetched from
// anywhere else: the Content-Security-Policy allows this origin only.

const { readFileSync } = require('node:fs')
const { join } = require('node:path')
const { renderPage } = require('./view.js')

const ASSETS = {
  'dashboard.js': 'text/javascript; charset=utf-8',
  'view.js': 'text/javascript; charset=utf-8',
  'store-view.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
}

/** Headers of every dashboard answer: no caching, no framing, no other origin. */
const HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}

function answer(contentType, body, status = 200) {
  return { status, headers: { ...HEADERS, 'content-type': contentType }, body: Buffer.from(body) }
}

class Dashboard {
  /**
   * `source`: `snapshot()` (what the page renders and polls; a value or a promise), `history()`
   * (the timeline's seed), `close()`, and for pages per job `jobPage(id)` (HTML, or undefined for
   * no such job; a value or a promise).
   * `scripts`: the source's view files the page loads after view.js; `pollMs`: how often it polls.
   */
  constructor(source, { scripts = [], pollMs } = {}) {
    this._source = source
    this._page = { scripts, pollMs }
    this._assets = new Map()
  }

  /** Whether `pathname` is the dashboard's. */
  handles(pathname) {
    return (
      pathname === '/_bridge' ||
      pathname === '/_bridge/' ||
      pathname === '/_bridge/dashboard.json' ||
      pathname.startsWith('/_bridge/assets/') ||
      (typeof this._source.jobPage === 'function' && pathname.startsWith('/_bridge/jobs/'))
    )
  }

  /** The answer to `GET pathname` (handles(pathname) is true), or a 404/405. */
  async handle(method, pathname) {
    if (method !== 'GET' && method !== 'HEAD') {
      const refused = answer('text/plain; charset=utf-8', 'Method not allowed\n', 405)
      refused.headers.allow = 'GET, HEAD'
      return refused
    }
    if (pathname === '/_bridge')
      return { status: 308, headers: { ...HEADERS, location: '/_bridge/' }, body: Buffer.alloc(0) }
    if (pathname === '/_bridge/') {
      const snap = await this._source.snapshot()
      return answer('text/html; charset=utf-8', renderPage(snap, this._source.history(), this._page))
    }
    if (pathname === '/_bridge/dashboard.json')
      return answer('application/json', JSON.stringify(await this._source.snapshot()))
    if (pathname.startsWith('/_bridge/jobs/')) {
      const id = pathname.slice('/_bridge/jobs/'.length)
      const html = /^[A-Za-z0-9-]+$/.test(id) ? await this._source.jobPage(id) : undefined
      if (html === undefined) return answer('text/plain; charset=utf-8', 'No such job in the store\n', 404)
      return answer('text/html; charset=utf-8', html)
    }
    const name = pathname.slice('/_bridge/assets/'.length)
    const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined
    if (!type) return answer('text/plain; charset=utf-8', 'Not found\n', 404)
    let body = this._assets.get(name)
    if (!body) {
      body = readFileSync(join(__dirname, name))
      this._assets.set(name, body)
    }
    return answer(type, body)
  }

  close() {
    this._source.close()
  }
}

module.exports = { Dashboard }
