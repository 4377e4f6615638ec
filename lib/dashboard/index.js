'use strict'
// The dashboard of `serve`: `GET /_bridge/` (the page, its first view rendered here as HTML
// tables), `GET /_bridge/dashboard.json` (what the page polls) and `GET /_bridge/assets/*` (its
// script, views and style, read from this folder). Nothing is fetched from anywhere else: the
// Content-Security-Policy allows this origin only.

const { readFileSync } = require('node:fs')
const { join } = require('node:path')
const { Recorder } = require('./recorder.js')
const { renderPage } = require('./view.js')

const ASSETS = {
  'dashboard.js': 'text/javascript; charset=utf-8',
  'view.js': 'text/javascript; charset=utf-8',
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
  /** `door`: serve's door; the recorder starts listening to its jobs now. */
  constructor(door) {
    this._recorder = new Recorder(door)
    this._assets = new Map()
  }

  /** Whether `pathname` is the dashboard's. */
  handles(pathname) {
    return (
      pathname === '/_bridge' ||
      pathname === '/_bridge/' ||
      pathname === '/_bridge/dashboard.json' ||
      pathname.startsWith('/_bridge/assets/')
    )
  }

  /** The answer to `GET pathname` (handles(pathname) is true), or a 404/405. */
  handle(method, pathname) {
    if (method !== 'GET' && method !== 'HEAD') {
      const refused = answer('text/plain; charset=utf-8', 'Method not allowed\n', 405)
      refused.headers.allow = 'GET, HEAD'
      return refused
    }
    if (pathname === '/_bridge')
      return { status: 308, headers: { ...HEADERS, location: '/_bridge/' }, body: Buffer.alloc(0) }
    if (pathname === '/_bridge/') {
      const snap = this._recorder.snapshot()
      return answer('text/html; charset=utf-8', renderPage(snap, this._recorder.history()))
    }
    if (pathname === '/_bridge/dashboard.json')
      return answer('application/json', JSON.stringify(this._recorder.snapshot()))
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
    this._recorder.close()
  }
}

module.exports = { Dashboard }
