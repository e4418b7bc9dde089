// Connects the JS ssb-client (from the reference peer's node_modules; run with NODE_PATH set to
// that folder) to a peer and runs the calls given in a JSON spec, then prints one JSON object.
//
//   node client.js '{"secret": PATH | null, "host": "127.0.0.1", "port": N, "key": "@…",
//                    "caps": "base64", "manifest": PATH | null, "timeout": ms,
//                    "calls": [{"name": "whoami", "type": "async", "args": []}, …]}'
//
// secret null: a fresh key pair (ssb-keys generate), i.e. a stranger. manifest null: ssb-client
// asks the remote for its manifest (its default); a path: that manifest is used as given.
// Output: {"id": our id, "connect": {"ok": remote id} | {"error": text},
//          "results": [{"ok": value} | {"error": text}, …]}  (sources are collected to arrays)
'use strict'
const fs = require('fs')
const ssbKeys = require('ssb-keys')
const ssbClient = require('ssb-client')
const pull = require('pull-stream')

const spec = JSON.parse(process.argv[2])
const keys = spec.secret ? ssbKeys.loadSync(spec.secret) : ssbKeys.generate()
const report = { id: keys.id, connect: null, results: [] }

function finish (code) {
  process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(code))
}

// Every run is bounded, whatever the remote does.
setTimeout(() => {
  report.timedOut = true
  finish(3)
}, spec.timeout || 30000)

function errorText (err) {
  return String((err && err.message) || err)
}

function call (sbot, item, cb) {
  let fn = sbot
  for (const part of item.name.split('.')) fn = fn && fn[part]
  if (typeof fn !== 'function') return cb(new Error(`${item.name} is not in the manifest`))
  const args = item.args || []
  if (item.type === 'source') return pull(fn(...args), pull.collect(cb))
  fn(...args, cb)
}

const options = {
  host: spec.host,
  port: spec.port,
  key: spec.key,
  caps: { shs: spec.caps },
  manifest: spec.manifest ? JSON.parse(fs.readFileSync(spec.manifest, 'utf8')) : undefined
}

ssbClient(keys, options, (err, sbot) => {
  if (err) {
    report.connect = { error: errorText(err) }
    return finish(0)
  }
  report.connect = { ok: sbot.id }
  const calls = spec.calls || []
  const next = (i) => {
    if (i >= calls.length) return sbot.close(true, () => finish(0))
    call(sbot, calls[i], (err, value) => {
      report.results.push(err ? { error: errorText(err) } : { ok: value === undefined ? null : value })
      next(i + 1)
    })
  }
  next(0)
})
