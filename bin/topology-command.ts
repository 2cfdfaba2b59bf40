/**
 * `replicant topology up FILE` and `replicant topology down`.
 *
 * Contract: `up` validates FILE (config/topology.schema.json), starts its nodes as child
 * processes with data dirs and logs under DIR/nodes (DIR is --dir, default ./.topology),
 * creates its volumes, writes DIR/topology.json (the state file: the `up` process's pid and,
 * for every node, name, pid, peer id, API URL, data dir, log file and multiaddrs), prints how
 * to reach each node and stays in the foreground. On SIGINT or SIGTERM it stops every node
 * cleanly, removes the state file and exits (0 if every node stopped cleanly). Data dirs are
 * kept: `up` on the same DIR brings the same nodes back with their data (`--fresh` wipes them).
 * `down` reads the state file, sends SIGTERM to the `up` process and waits for it; if `up` is
 * gone (it was killed), it stops the node processes itself. Only one topology runs per DIR.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Command } from 'commander'
import { TopologyError } from '../testing/topology-error.js'
import { Codes } from '../core/errors.js'
import { renameDurably } from '../core/durable.js'
import type { Topology } from '../testing/topology.js'

export const STATE_FILE = 'topology.json'
export const DEFAULT_TOPOLOGY_DIR = '.topology'

export interface TopologyState {
  version: 1
  name: string
  file: string
  pid: number
  startedAt: string
  nodes: Array<{ name: string, kind: string, pid: number | null, peerId: string, apiUrl: string, dataDir: string, logFile: string, multiaddrs: string[] }>
  volumes: Array<{ name: string, members: string[], writeMode: string }>
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

async function readState (dir: string): Promise<TopologyState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as TopologyState
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new TopologyError(Codes.BAD_STATE, `cannot read ${join(dir, STATE_FILE)}: ${(err as Error).message}`)
  }
}

/** Whether `pid` still runs the node of `dataDir` (guards against a reused pid). */
async function isNodeProcess (pid: number, dataDir: string): Promise<boolean> {
  if (!alive(pid)) return false
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined)
  if (cmdline !== undefined) return cmdline.split('\0').includes(dataDir)
  const info = await readFile(join(dataDir, 'api.json'), 'utf8').then(s => JSON.parse(s) as { pid: number }).catch(() => undefined)
  return info?.pid === pid
}

async function waitGone (pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (alive(pid)) {
    if (Date.now() > deadline) return false
    await sleep(100)
  }
  return true
}

function table (rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join('  ')).join('\n') + '\n'
}

async function stateOf (topo: Topology, file: string, name: string): Promise<TopologyState> {
  const volumes: TopologyState['volumes'] = []
  const first = topo.nodes.find(n => n.running)
  if (first !== undefined) {
    for (const v of (await first.client.listVolumes()).volumes as Array<{ name: string, members: string[], writeMode: string }>) {
      const order = topo.names()
      const names = v.members.map(p => topo.nameOf(p) ?? p).sort((x, y) => (order.indexOf(x) >>> 0) - (order.indexOf(y) >>> 0))
      volumes.push({ name: v.name, members: names, writeMode: v.writeMode })
    }
  }
  return {
    version: 1,
    name,
    file,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    nodes: topo.nodes.map(n => ({ name: n.name, kind: n.kind, pid: n.pid ?? null, peerId: n.peerId, apiUrl: n.apiUrl, dataDir: n.dataDir, logFile: n.logFile, multiaddrs: n.multiaddrs })),
    volumes
  }
}

async function up (file: string, opts: { dir: string, fresh?: boolean, json?: boolean }): Promise<void> {
  const dir = resolve(opts.dir)
  // Loaded here, not at the top: every other command starts without libp2p.
  const { loadTopologyConfig, startTopologyFromConfig } = await import('../testing/topology-config.js')
  const config = await loadTopologyConfig(file)
  const previous = await readState(dir)
  if (previous !== undefined) {
    const running = alive(previous.pid) || (await Promise.all(previous.nodes.map(async n => n.pid !== null && await isNodeProcess(n.pid, n.dataDir)))).some(Boolean)
    if (running) {
      throw new TopologyError(Codes.TOPOLOGY_RUNNING, `topology '${previous.name}' is already up in ${dir} (pid ${previous.pid}); stop it with: replicant topology down --dir ${opts.dir}`)
    }
    await rm(join(dir, STATE_FILE), { force: true })
  }
  const nodesDir = join(dir, 'nodes')
  if (opts.fresh === true) await rm(nodesDir, { recursive: true, force: true })
  await mkdir(nodesDir, { recursive: true })

  // Signals during start are honoured once the nodes are up (or have failed to start).
  let signalled: string | undefined
  let onSignal: ((sig: string) => void) | undefined
  const handler = (sig: string): void => { if (signalled === undefined) { signalled = sig; onSignal?.(sig) } }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)

  const name = config.name ?? file
  const topo = await startTopologyFromConfig(config, { dir: nodesDir, keepDir: true })
  let state: TopologyState
  try {
    state = await stateOf(topo, resolve(file), name)
    const tmp = join(dir, `${STATE_FILE}.tmp`)
    await writeFile(tmp, JSON.stringify(state, null, 2) + '\n')
    await renameDurably(tmp, join(dir, STATE_FILE))
  } catch (err) {
    await topo.close()
    throw err
  }

  if (opts.json === true) {
    process.stdout.write(JSON.stringify(state) + '\n')
  } else {
    const rel = (p: string): string => { const r = relative(process.cwd(), p); return r.startsWith('..') ? p : r }
    process.stdout.write(`topology ${name} up: ${state.nodes.length} nodes, ${state.volumes.length} volumes (state: ${rel(join(dir, STATE_FILE))})\n`)
    process.stdout.write(table([['name', 'peer id', 'api', 'data dir', 'multiaddr'],
      ...state.nodes.map(n => [n.name, n.peerId, n.apiUrl, rel(n.dataDir), n.multiaddrs[0] ?? ''])]))
    for (const v of state.volumes) process.stdout.write(`volume ${v.name} (${v.writeMode}): ${v.members.join(', ')}\n`)
    const a = state.nodes[0]
    process.stdout.write(`reach a node: replicant --data ${rel(a.dataDir)} status   (or --api-url ${a.apiUrl} with REPLICANT_TOKEN=$(replicant --data ${rel(a.dataDir)} api-token))\n`)
    process.stdout.write(`stop: Ctrl-C here, or replicant topology down${opts.dir !== DEFAULT_TOPOLOGY_DIR ? ` --dir ${opts.dir}` : ''}\n`)
  }

  const sig = signalled ?? await new Promise<string>(resolve => { onSignal = resolve })
  process.stdout.write(`${sig}: stopping ${state.nodes.length} nodes\n`)
  const exits = await topo.close()
  await rm(join(dir, STATE_FILE), { force: true })
  let clean = true
  for (const [n, e] of exits) {
    if (e.code !== 0) clean = false
    process.stdout.write(`  ${n}: ${e.code === 0 ? 'stopped' : `exit code ${String(e.code)} signal ${String(e.signal)}${e.timedOut === true ? ' (did not stop in time, killed)' : ''}`}\n`)
  }
  process.stdout.write(`topology ${name} down\n`)
  process.exit(clean ? 0 : 1)
}

async function down (opts: { dir: string, timeout: number }): Promise<void> {
  const dir = resolve(opts.dir)
  const state = await readState(dir)
  if (state === undefined) throw new TopologyError(Codes.NO_TOPOLOGY, `no topology is up in ${dir} (no ${STATE_FILE})`)
  const timeoutMs = opts.timeout * 1000
  if (alive(state.pid) && state.pid !== process.pid) {
    process.kill(state.pid, 'SIGTERM')
    if (!await waitGone(state.pid, timeoutMs)) {
      throw new TopologyError(Codes.TIMEOUT, `topology up (pid ${state.pid}) did not stop within ${opts.timeout} s`)
    }
  }
  // If `up` was killed, its nodes may still run: stop them here.
  let stopped = 0
  for (const n of state.nodes) {
    if (n.pid === null || n.pid === state.pid || !await isNodeProcess(n.pid, n.dataDir)) continue
    process.kill(n.pid, 'SIGTERM')
    if (!await waitGone(n.pid, timeoutMs)) process.kill(n.pid, 'SIGKILL')
    stopped++
  }
  await rm(join(dir, STATE_FILE), { force: true })
  process.stdout.write(`topology ${state.name} down${stopped > 0 ? ` (stopped ${stopped} orphaned nodes)` : ''}\n`)
}

/** Adds `topology up` and `topology down` to the replicant program. */
export function registerTopologyCommands (program: Command): void {
  const topology = program.command('topology').description('run a topology of local nodes from a config file (config/*.json)')
  topology.command('up <file>')
    .description('start the nodes and volumes of FILE, print how to reach each node, stay in the foreground until SIGINT/SIGTERM')
    .option('--dir <dir>', 'state file, data dirs and logs', DEFAULT_TOPOLOGY_DIR)
    .option('--fresh', 'remove the data dirs of an earlier run first')
    .option('--json', 'print the state (nodes, volumes) as one JSON line instead of a table')
    .action(async (file: string, opts: { dir: string, fresh?: boolean, json?: boolean }) => { await up(file, opts) })
  topology.command('down')
    .description('stop the topology started by `topology up` in --dir')
    .option('--dir <dir>', 'the directory `up` used', DEFAULT_TOPOLOGY_DIR)
    .option('--timeout <seconds>', 'how long to wait for a clean stop', (v) => Number(v), 60)
    .action(async (opts: { dir: string, timeout: number }) => { await down(opts) })
}
