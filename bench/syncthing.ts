/**
 * Two Syncthing instances on loopback sharing one folder, for the wire suite's baseline: each
 * with a fresh home (key, certificate, database), a config written here (no discovery, relays,
 * NAT or usage reporting; normal process priority; no file watcher), its REST API on a loopback
 * port with a random API key. A's folder is the source tree (send-only); B's an empty directory
 * (receive-only). Debian's syncthing 1.19 is what was measured.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { registerCleanup } from './lib.js'
import { freePort } from './tools.js'

export const FOLDER = 'bench'

export interface SyncthingPeer {
  home: string
  dir: string
  deviceId: string
  listenPort: number
  guiPort: number
  apiKey: string
  child?: ChildProcess
}

export interface FolderStatus { state: string, globalFiles: number, localFiles: number, needFiles: number, needBytes: number }

async function output (cmd: string, args: string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { out += b.toString() })
    child.once('error', reject)
    child.once('close', code => { if (code === 0) resolve(out); else reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${out.slice(-2000)}`)) })
  })
}

/** A fresh home under `home` for a peer whose folder is `dir` (made, with Syncthing's marker). */
export async function makePeer (home: string, dir: string): Promise<SyncthingPeer> {
  const out = await output('syncthing', ['generate', `--home=${home}`, '--no-default-folder', '--skip-port-probing'])
  const m = /Device ID: ([A-Z0-9-]+)/.exec(out)
  if (m === null) throw new Error(`syncthing generate printed no device id: ${out.slice(-500)}`)
  await mkdir(join(dir, '.stfolder'), { recursive: true })
  return { home, dir, deviceId: m[1], listenPort: await freePort(), guiPort: await freePort(), apiKey: randomBytes(16).toString('hex') }
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;')

/** Writes `self`'s config.xml: the folder shared with `other`, `type` sendonly or receiveonly. */
export async function writeConfig (self: SyncthingPeer, other: SyncthingPeer, type: 'sendonly' | 'receiveonly'): Promise<void> {
  const device = (p: SyncthingPeer): string =>
    `    <device id="${p.deviceId}" name="${p === self ? 'self' : 'other'}" compression="metadata" introducer="false">\n` +
    `        <address>tcp://127.0.0.1:${p.listenPort}</address>\n    </device>`
  const xml = `<configuration version="36">
    <folder id="${FOLDER}" label="${FOLDER}" path="${esc(self.dir)}" type="${type}" rescanIntervalS="3600" fsWatcherEnabled="false" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="${self.deviceId}"></device>
        <device id="${other.deviceId}"></device>
    </folder>
${device(self)}
${device(other)}
    <gui enabled="true" tls="false">
        <address>127.0.0.1:${self.guiPort}</address>
        <apikey>${self.apiKey}</apikey>
    </gui>
    <options>
        <listenAddress>tcp://127.0.0.1:${self.listenPort}</listenAddress>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <relaysEnabled>false</relaysEnabled>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <crashReportingEnabled>false</crashReportingEnabled>
        <startBrowser>false</startBrowser>
        <setLowPriority>false</setLowPriority>
    </options>
</configuration>
`
  await writeFile(join(self.home, 'config.xml'), xml)
}

/** Starts the peer's syncthing and waits until its REST API answers. */
export async function startPeer (p: SyncthingPeer, timeoutMs = 60_000): Promise<void> {
  const child = spawn('syncthing', ['serve', `--home=${p.home}`, '--no-browser', '--no-restart', '--no-upgrade', '--no-default-folder'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STNOUPGRADE: '1' } })
  let err = ''
  child.stderr.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-4000) })
  const unregister = registerCleanup(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  child.once('exit', () => { unregister() })
  p.child = child
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`syncthing exited ${child.exitCode} during start: ${err}`)
    try { await api(p, '/rest/system/ping'); return } catch { await sleep(50) }
  }
  throw new Error(`syncthing did not answer within ${timeoutMs} ms: ${err}`)
}

async function api<T> (p: SyncthingPeer, path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${p.guiPort}${path}`, { headers: { 'X-API-Key': p.apiKey } })
  if (!res.ok) throw new Error(`syncthing ${path}: HTTP ${res.status}`)
  return await res.json() as T
}

export async function folderStatus (p: SyncthingPeer): Promise<FolderStatus> {
  return await api<FolderStatus>(p, `/rest/db/status?folder=${FOLDER}`)
}

/** Waits until the peer's folder is idle holding `files` files of the global `files`, needing nothing. */
export async function waitHolds (p: SyncthingPeer, files: number, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      const s = await folderStatus(p)
      last = JSON.stringify(s)
      if (s.state === 'idle' && s.globalFiles === files && s.localFiles === files && s.needFiles === 0 && s.needBytes === 0) return
    } catch (err) { last = (err as Error).message }
    await sleep(50)
  }
  throw new Error(`syncthing peer did not reach ${files} files: ${last}`)
}

/** SIGTERM (Syncthing shuts down cleanly on it), SIGKILL after 30 s. */
export async function stopPeer (p: SyncthingPeer): Promise<void> {
  const child = p.child
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  await exited
  clearTimeout(timer)
}
