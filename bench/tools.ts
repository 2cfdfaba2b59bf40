/**
 * The outside tools a suite compares with (rsync, syncthing): found on PATH, else installed from
 * their Debian package when the bench runs as root with apt-get; else the suite says plainly
 * that the baseline is missing and goes on without it.
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import type { SuiteContext } from './lib.js'

/** Exit code of `cmd args` (output discarded); -1 if it could not be started. */
async function exitCode (cmd: string, args: string[]): Promise<number> {
  return await new Promise(resolve => {
    const child = spawn(cmd, args, { stdio: 'ignore' })
    child.once('error', () => { resolve(-1) })
    child.once('close', code => { resolve(code ?? -1) })
  })
}

const known = new Map<string, boolean>()

/** True when `cmd` can be run, installing Debian package `pkg` first if it is missing and we may. */
export async function ensureTool (ctx: SuiteContext, cmd: string, pkg: string): Promise<boolean> {
  const cached = known.get(cmd)
  if (cached !== undefined) return cached
  const onPath = async (): Promise<boolean> => await exitCode('sh', ['-c', `command -v ${cmd}`]) === 0
  let ok = await onPath()
  if (!ok && process.getuid?.() === 0 && await exitCode('sh', ['-c', 'command -v apt-get']) === 0) {
    ctx.log(`${cmd} is not installed: apt-get install -y ${pkg}...`)
    await exitCode('apt-get', ['install', '-y', '--no-install-recommends', pkg])
    ok = await onPath()
  }
  if (!ok) ctx.log(`MISSING: ${cmd} (Debian package ${pkg}) is not installed and could not be installed here; its baseline is left out of this run`)
  known.set(cmd, ok)
  return ok
}

/** A loopback TCP port that was free a moment ago (for tools that need a port named up front). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}
