#!/usr/bin/env node
// Gives a running ssb-server messages and wants, over its noauth unix socket as its owner.
//   usage: NODE_PATH=<refpeer node_modules> node feed.js DATA_DIR SPEC_JSON
//   SPEC: {"file": JSON-lines of message values to `add` (optional), "want": [feed ids]}
// Prints {"added": n, "wanted": m}. Bounded: exits non-zero after 60 s.
'use strict'
const fs = require('fs')
const path = require('path')
const ssbClient = require('ssb-client')
const ssbKeys = require('ssb-keys')
const caps = require('ssb-caps')

const [dir, specText] = process.argv.slice(2)
const spec = JSON.parse(specText)
setTimeout(() => { console.error('feed.js: timed out'); process.exit(3) }, 60000).unref()

const call = (fn, ...args) => new Promise((resolve, reject) =>
  fn(...args, (err, value) => (err ? reject(err) : resolve(value))))

async function main () {
  const keys = ssbKeys.loadSync(path.join(dir, 'secret'))
  const remote = `unix:${path.join(dir, 'socket')}~noauth:${keys.public.replace('.ed25519', '')}`
  const sbot = await call(ssbClient, keys, { remote, caps })
  let added = 0
  if (spec.file) {
    const lines = fs.readFileSync(spec.file, 'utf8').split('\n').filter(Boolean)
    for (const line of lines) { await call(sbot.add, JSON.parse(line)); added++ }
  }
  for (const feed of spec.want || []) await call(sbot.replicate.request, feed)
  console.log(JSON.stringify({ added, wanted: (spec.want || []).length }))
  sbot.close(true)
}
main().catch((err) => { console.error(err && err.stack || err); process.exit(2) })
