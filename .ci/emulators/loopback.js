'use strict'
// Preload for the local emulators: `node -r .ci/emulators/loopback.js <emulator cli> ...`.
//
// kinesalite has no host option and binds every interface. This preload:
//  - forces every net.Server#listen (and so http/https servers) onto 127.0.0.1;
//  - when KINSUMER_EMULATOR_PORT_FILE is set, listens on a free port chosen by the kernel (the
//    port given on the command line is ignored) and, once listening, writes that port to the file
//    (write then rename, so a reader never sees a partial file). No race between "find a free
//    port" and "bind it";
//  - when KINSUMER_EMULATOR_PORT_DIR is set instead (an emulator with several listeners, e.g.
//    kinesis-mock's plain and TLS ports), does the same per listener: the port it asked for only
//    names the file, `<dir>/<requested port>`, which receives the port the kernel chose;
//  - when KINSUMER_EMULATOR_PARENT_PID is set, exits as soon as that process is gone (checked every
//    500 ms), so an emulator never outlives the test run that started it.
// Used by scripts/emulators.sh, crates/kinsumer/tests/common/mod.rs and
// crates/kinsumer/tests/fanout_emulator/kinesis_mock.rs.

const fs = require('fs')
const net = require('net')
const path = require('path')

const HOST = '127.0.0.1'
const portFile = process.env.KINSUMER_EMULATOR_PORT_FILE || ''
const portDir = process.env.KINSUMER_EMULATOR_PORT_DIR || ''
const parentPid = Number(process.env.KINSUMER_EMULATOR_PARENT_PID || '')

function log(message) {
  process.stderr.write(`[loopback.js pid ${process.pid}] ${message}\n`)
}

// --- every listen() on 127.0.0.1 ---------------------------------------------------------------

const originalListen = net.Server.prototype.listen

function isPipeOrHandle(first) {
  if (typeof first === 'string' && !/^\d+$/.test(first)) return true // a unix socket path
  if (first !== null && typeof first === 'object') {
    return first.path !== undefined || first.fd !== undefined || first._handle !== undefined ||
      first.handle !== undefined
  }
  return false
}

net.Server.prototype.listen = function (...args) {
  const callback = typeof args[args.length - 1] === 'function' ? args.pop() : undefined
  if (isPipeOrHandle(args[0])) {
    return originalListen.apply(this, callback ? [...args, callback] : args)
  }

  let options
  if (args[0] !== null && typeof args[0] === 'object') {
    options = { ...args[0] }
  } else {
    // listen([port[, host[, backlog]]]) or listen(port, backlog)
    options = { port: args[0] }
    const backlog = args.slice(1).find((a) => typeof a === 'number')
    if (backlog !== undefined) options.backlog = backlog
  }
  options.host = HOST
  delete options.ipv6Only
  let target = ''
  if (portFile) {
    target = portFile
  } else if (portDir) {
    target = path.join(portDir, String(Number(options.port) || 0))
  }
  if (target) {
    options.port = 0
    this.once('listening', () => {
      const { port } = this.address()
      const tmp = `${target}.${process.pid}.tmp`
      fs.writeFileSync(tmp, `${port}\n`)
      fs.renameSync(tmp, target)
    })
  }
  this.once('listening', () => {
    const { address, port } = this.address()
    log(`listening on ${address}:${port}`)
  })
  return originalListen.call(this, options, callback)
}

// --- die with the watched parent -------------------------------------------------------------

function parentIsGone(pid) {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return err.code === 'ESRCH' // EPERM: it exists, we may just not signal it
  }
  // A dead process that nobody has reaped yet still answers kill(pid, 0).
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch (err) {
    return false // no /proc (not Linux): rely on kill(pid, 0) alone
  }
}

// Taken before the emulator loads: kinesis-mock (cats-effect) replaces process.exit with a graceful
// shutdown that takes seconds.
const exitNow = process.exit.bind(process)

if (Number.isInteger(parentPid) && parentPid > 0) {
  const startedByParent = process.ppid === parentPid
  const check = () => {
    // When the watched process is our own parent, being re-parented means it has died.
    if ((startedByParent && process.ppid !== parentPid) || parentIsGone(parentPid)) {
      log(`watched process ${parentPid} is gone; exiting`)
      exitNow(0)
    }
  }
  check()
  setInterval(check, 500).unref()
}
