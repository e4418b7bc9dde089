#!/usr/bin/env node
// Feeds a JSON-lines file of message values to a running ssb-server with `add`, as a fast local
// client would, then waits until every index has caught up. Used by bench/ingest.py.
//
//   usage: NODE_PATH=<refpeer node_modules> node ssb_server_add.js DATA_DIR FILE [WINDOW] [TIMEOUT_S]
//
// Connects over the server's noauth unix socket (DATA_DIR/socket) with the server's own key, so
// the calls are master calls and no encryption cost is added. Sends the lines in file order with
// up to WINDOW `add` calls in flight. Prints one JSON line:
//   {"messages", "feeds", "add_seconds", "indexed_seconds"}
// where both times run from the first `add` sent: to the last `add` answered, and to the moment
// `status().sync.sync` is true and `getVectorClock` shows every feed at its last sequence.
'use strict'
const fs = require('fs')
const path = require('path')
const ssbClient = require('ssb-client')
const ssbKeys = require('ssb-keys')
const caps = require('ssb-caps')

const POLL_MS = 100

function connect (dir) {
  const keys = ssbKeys.loadSync(path.join(dir, 'secret'))
  const key = keys.public.replace('.ed25519', '')
  const remote = `unix:${path.join(dir, 'socket')}~noauth:${key}`
  return ssbClient(keys, { remote, caps, timers: { handshake: 30000 } })
}

// Lines of a UTF-8 file, split on "\n" only (readline would also split on U+2028/U+2029).
async function * lines (file) {
  let rest = ''
  for await (const chunk of fs.createReadStream(file, { encoding: 'utf8' })) {
    const parts = (rest + chunk).split('\n')
    rest = parts.pop()
    for (const line of parts) if (line) yield line
  }
  if (rest) yield rest
}

function call (method, ...args) {
  return new Promise((resolve, reject) => {
    method(...args, (err, value) => (err ? reject(err) : resolve(value)))
  })
}

// Sends every line with `add`, at most `window` in flight; returns the count and each feed's
// last sequence.
async function addAll (sbot, file, window) {
  const heads = new Map()
  let count = 0
  let inFlight = 0
  let failure = null
  let wake = null
  const settled = (err) => {
    inFlight--
    if (err && !failure) failure = err
    if (wake) { const w = wake; wake = null; w() }
  }
  const room = async (limit) => {
    while (inFlight > limit && !failure) await new Promise((resolve) => { wake = resolve })
    if (failure) throw failure
  }
  for await (const line of lines(file)) {
    const value = JSON.parse(line)
    heads.set(value.author, value.sequence)
    await room(window - 1)
    inFlight++
    count++
    sbot.add(value, settled)
  }
  await room(0)
  return { count, heads }
}

function caughtUp (status, clock, heads) {
  if (!status.sync || !status.sync.sync) return false
  for (const [author, sequence] of heads) if (clock[author] !== sequence) return false
  return true
}

async function waitIndexed (sbot, heads, deadline) {
  for (;;) {
    const [status, clock] = [await call(sbot.status), await call(sbot.getVectorClock)]
    if (caughtUp(status, clock, heads)) return
    if (Date.now() > deadline) {
      throw new Error(`indexes not caught up before the timeout: ${JSON.stringify(status.sync)}`)
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}

async function main () {
  const [dir, file, windowArg = '50', timeoutArg = '1800'] = process.argv.slice(2)
  if (!dir || !file) throw new Error('usage: ssb_server_add.js DATA_DIR FILE [WINDOW] [TIMEOUT_S]')
  const deadline = Date.now() + Number(timeoutArg) * 1000
  const timer = setTimeout(() => { console.error('ssb_server_add.js: timed out'); process.exit(3) },
    Number(timeoutArg) * 1000)
  const sbot = await connect(dir)
  try {
    const start = process.hrtime.bigint()
    const seconds = () => Number(process.hrtime.bigint() - start) / 1e9
    const { count, heads } = await addAll(sbot, file, Number(windowArg))
    const addSeconds = seconds()
    await waitIndexed(sbot, heads, deadline)
    const indexedSeconds = seconds()
    console.log(JSON.stringify({
      messages: count, feeds: heads.size, add_seconds: addSeconds, indexed_seconds: indexedSeconds
    }))
  } finally {
    clearTimeout(timer)
    await call(sbot.close).catch(() => {})
  }
}

main().catch((err) => {
  console.error('ssb_server_add.js:', err && err.stack ? err.stack : err)
  process.exit(1)
})
