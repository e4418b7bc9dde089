#!/usr/bin/env node
// The one client bench/wire.py reads both servers with (ssbsync and ssb-server): ssb-client 4.9
// from the reference peer's node_modules, over TCP with the secret handshake and box-stream.
//
//   usage: NODE_PATH=<refpeer node_modules> node wire_client.js MODE HOST PORT SERVER_ID ARGS...
//     whoami  HOST PORT SERVER_ID SECRET_FILE CALLS WARMUP
//         Connects with the keys in SECRET_FILE (the server's own: whoami is master-only on
//         both servers), makes WARMUP untimed then CALLS timed `whoami` calls, one after the
//         other (each sent when the previous answer arrived). Prints one JSON line:
//           {"calls", "connect_ms", "median_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"}
//     history HOST PORT SERVER_ID FEED EXPECTED REPEATS
//         Connects as a stranger (a fresh random key: anonymous permissions, as any peer that
//         replicates the feed), reads createHistoryStream({id: FEED, seq: 1, keys: false})
//         once untimed to check it (count, and the sha256 of JSON.stringify(value) + "\n" for
//         each message, which is the dataset file's digest), then REPEATS more timed reads on
//         the same connection. Prints one JSON line:
//           {"messages", "sha256", "first_seconds", "seconds": [...],
//            "client_cpu_seconds": [...] (this process, user + system, per timed read),
//            "connect_ms"}
//
// The manifest is given rather than asked for, so that both servers see the same calls and
// nothing but the measured calls runs on the connection from this side.
'use strict'
const crypto = require('crypto')
const net = require('net')
const ssbClient = require('ssb-client')
const ssbKeys = require('ssb-keys')
const caps = require('ssb-caps')
const pull = require('pull-stream')

const MANIFEST = { whoami: 'async', createHistoryStream: 'source' }
const TIMEOUT_MS = 600000 // the whole run

// ssb-client writes each box-stream box (header, then body) as its own socket write with
// Nagle's algorithm on, so a small request waits for the server's delayed ACK (~40 ms on
// Linux) before its body leaves. That measures the client, not the server: unless
// WIRE_CLIENT_NAGLE=1, every socket this client opens gets TCP_NODELAY (multiserver's net
// plugin calls net.connect(opts) at connect time, so adding the option there is enough).
if (process.env.WIRE_CLIENT_NAGLE !== '1') {
  const connectTcp = net.connect
  net.connect = net.createConnection = function (opts, ...rest) {
    if (opts && typeof opts === 'object') opts = { ...opts, noDelay: true }
    return connectTcp.call(this, opts, ...rest)
  }
}

function connect (keys, host, port, serverId) {
  const key = serverId.replace(/^@/, '').replace(/\.ed25519$/, '')
  const remote = `net:${host}:${port}~shs:${key}`
  // `path` is only read when no keys are given; keys are always given here.
  const config = { caps, path: '/nonexistent', timers: { handshake: 30000 } }
  return ssbClient(keys, { ...config, remote, manifest: MANIFEST })
}

function call (method, ...args) {
  return new Promise((resolve, reject) => {
    method(...args, (err, value) => (err ? reject(err) : resolve(value)))
  })
}

function now () {
  return process.hrtime.bigint()
}

function ms (from, to) {
  return Number(to - from) / 1e6
}

function quantile (sorted, q) {
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  const rank = Math.max(1, Math.ceil(q * sorted.length))
  return sorted[rank - 1]
}

async function whoami (host, port, serverId, secretFile, callsArg, warmupArg) {
  const keys = ssbKeys.loadSync(secretFile)
  const calls = Number(callsArg)
  const warmup = Number(warmupArg)
  const started = now()
  const sbot = await connect(keys, host, port, serverId)
  const connectMs = ms(started, now())
  try {
    for (let i = 0; i < warmup; i++) await call(sbot.whoami)
    const samples = new Float64Array(calls)
    for (let i = 0; i < calls; i++) {
      const t0 = now()
      const answer = await call(sbot.whoami)
      samples[i] = ms(t0, now())
      if (!answer || answer.id !== serverId) {
        throw new Error(`whoami answered ${JSON.stringify(answer)}, expected ${serverId}`)
      }
    }
    const sorted = Array.from(samples).sort((a, b) => a - b)
    const sum = sorted.reduce((a, b) => a + b, 0)
    return {
      calls,
      connect_ms: connectMs,
      median_ms: quantile(sorted, 0.5),
      p99_ms: quantile(sorted, 0.99),
      mean_ms: sum / calls,
      min_ms: sorted[0],
      max_ms: sorted[sorted.length - 1]
    }
  } finally {
    await call(sbot.close).catch(() => {})
  }
}

// One full read; `digest` (a crypto Hash or null) sees every message when given.
function readHistory (sbot, feed, digest) {
  return new Promise((resolve, reject) => {
    let count = 0
    const t0 = now()
    const cpu0 = process.cpuUsage()
    pull(
      sbot.createHistoryStream({ id: feed, seq: 1, keys: false }),
      pull.drain(
        (value) => {
          count++
          if (digest) digest.update(JSON.stringify(value) + '\n')
        },
        (err) => {
          if (err) reject(err)
          else {
            const cpu = process.cpuUsage(cpu0)
            resolve({ count, seconds: ms(t0, now()) / 1000, cpu: (cpu.user + cpu.system) / 1e6 })
          }
        }
      )
    )
  })
}

async function history (host, port, serverId, feed, expectedArg, repeatsArg) {
  const expected = Number(expectedArg)
  const repeats = Number(repeatsArg)
  const stranger = ssbKeys.generate()
  const started = now()
  const sbot = await connect(stranger, host, port, serverId)
  const connectMs = ms(started, now())
  try {
    const digest = crypto.createHash('sha256')
    const first = await readHistory(sbot, feed, digest)
    if (first.count !== expected) {
      throw new Error(`createHistoryStream gave ${first.count} messages, expected ${expected}`)
    }
    const seconds = []
    const clientCpu = []
    for (let i = 0; i < repeats; i++) {
      const run = await readHistory(sbot, feed, null)
      if (run.count !== expected) {
        throw new Error(`read ${i + 1} gave ${run.count} messages, expected ${expected}`)
      }
      seconds.push(run.seconds)
      clientCpu.push(run.cpu)
    }
    return {
      messages: first.count,
      sha256: digest.digest('hex'),
      first_seconds: first.seconds,
      seconds,
      client_cpu_seconds: clientCpu,
      connect_ms: connectMs
    }
  } finally {
    await call(sbot.close).catch(() => {})
  }
}

async function main () {
  const [mode, ...args] = process.argv.slice(2)
  const modes = { whoami, history }
  if (!modes[mode] || args.length !== 6) {
    throw new Error('usage: wire_client.js whoami|history HOST PORT SERVER_ID ... (see the top)')
  }
  const timer = setTimeout(() => {
    console.error('wire_client.js: timed out')
    process.exit(3)
  }, TIMEOUT_MS)
  const result = await modes[mode](...args)
  clearTimeout(timer)
  console.log(JSON.stringify(result))
}

main().catch((err) => {
  console.error('wire_client.js:', err && err.stack ? err.stack : err)
  process.exit(1)
})
