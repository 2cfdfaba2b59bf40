/**
 * Declarative topologies (config/*.json): nodes, volumes, members, write modes. The JSON
 * Schema is config/topology.schema.json (for editors); this validator enforces the same rules
 * and names the offending field, e.g. `volumes[0].members[2]: no node named 'd'`.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { isValidChunkSize } from '../core/chunker.js'
import { validateVolumeName } from '../core/paths.js'
import { WRITE_MODES, type WriteMode } from '../core/records.js'
import { Topology, TopologyError, type NodeKind, type TopologyOptions } from './topology.js'
import { Codes } from '../core/errors.js'

export interface TopologyConfig {
  name?: string
  description?: string
  connect?: 'star' | 'mesh' | 'none'
  nodes: Array<{ name: string, kind?: NodeKind, port?: number, apiPort?: number, swarmKeyFile?: string }>
  volumes: Array<{ name: string, members: string[], writeMode?: WriteMode, chunkSize?: number, createdOn?: string }>
}

export const NODE_NAME = /^[a-z][a-z0-9-]{0,31}$/
export const MAX_NODES = 32
export const NODE_KINDS: readonly NodeKind[] = ['process', 'in-process']
export const CONNECT_MODES = ['star', 'mesh', 'none'] as const

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** Validates a parsed config; throws TopologyError BAD_TOPOLOGY_CONFIG listing every problem. */
export function parseTopologyConfig (value: unknown, source = 'topology'): TopologyConfig {
  const errors: string[] = []
  const fail = (where: string, msg: string): void => { errors.push(`${where}: ${msg}`) }
  const only = (obj: Record<string, unknown>, where: string, allowed: string[]): void => {
    for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(where === '' ? k : `${where}.${k}`, 'unknown field')
  }
  const port = (v: unknown, where: string): void => {
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535)) fail(where, 'must be an integer from 0 to 65535')
  }
  if (!isObject(value)) throw new TopologyError(Codes.BAD_TOPOLOGY_CONFIG, `${source}: must be a JSON object`)
  only(value, '', ['$schema', 'name', 'description', 'connect', 'nodes', 'volumes'])
  for (const k of ['$schema', 'name', 'description']) {
    if (value[k] !== undefined && typeof value[k] !== 'string') fail(k, 'must be a string')
  }
  if (value.connect !== undefined && !(CONNECT_MODES as readonly unknown[]).includes(value.connect)) fail('connect', `must be one of ${CONNECT_MODES.join(', ')}`)
  const names = new Set<string>()
  if (!Array.isArray(value.nodes) || value.nodes.length === 0) {
    fail('nodes', 'must be a non-empty list')
  } else {
    if (value.nodes.length > MAX_NODES) fail('nodes', `at most ${MAX_NODES} nodes`)
    for (const [i, n] of value.nodes.entries()) {
      const where = `nodes[${i}]`
      if (!isObject(n)) { fail(where, 'must be an object'); continue }
      only(n, where, ['name', 'kind', 'port', 'apiPort', 'swarmKeyFile'])
      if (typeof n.name !== 'string' || !NODE_NAME.test(n.name)) fail(`${where}.name`, `must match ${NODE_NAME.source}`)
      else if (names.has(n.name)) fail(`${where}.name`, `'${n.name}' is used twice`)
      else names.add(n.name)
      if (n.kind !== undefined && !(NODE_KINDS as readonly unknown[]).includes(n.kind)) fail(`${where}.kind`, `must be one of ${NODE_KINDS.join(', ')}`)
      port(n.port, `${where}.port`)
      port(n.apiPort, `${where}.apiPort`)
      if (n.swarmKeyFile !== undefined && (typeof n.swarmKeyFile !== 'string' || n.swarmKeyFile === '')) fail(`${where}.swarmKeyFile`, 'must be a file path')
    }
  }
  const volumes = value.volumes ?? []
  if (!Array.isArray(volumes)) {
    fail('volumes', 'must be a list')
  } else {
    const vnames = new Set<string>()
    for (const [i, v] of volumes.entries()) {
      const where = `volumes[${i}]`
      if (!isObject(v)) { fail(where, 'must be an object'); continue }
      only(v, where, ['name', 'members', 'writeMode', 'chunkSize', 'createdOn'])
      try {
        validateVolumeName(v.name)
        if (vnames.has(v.name as string)) fail(`${where}.name`, `'${String(v.name)}' is used twice`)
        vnames.add(v.name as string)
      } catch (err) { fail(`${where}.name`, (err as Error).message) }
      if (!Array.isArray(v.members) || v.members.length === 0) {
        fail(`${where}.members`, 'must be a non-empty list of node names')
      } else {
        const seen = new Set<unknown>()
        for (const [j, m] of v.members.entries()) {
          if (typeof m !== 'string' || !names.has(m)) fail(`${where}.members[${j}]`, `no node named '${String(m)}'`)
          if (seen.has(m)) fail(`${where}.members[${j}]`, `'${String(m)}' is listed twice`)
          seen.add(m)
        }
        if (v.createdOn !== undefined && !v.members.includes(v.createdOn)) fail(`${where}.createdOn`, 'must be one of the members')
      }
      if (v.writeMode !== undefined && !(WRITE_MODES as readonly unknown[]).includes(v.writeMode)) fail(`${where}.writeMode`, `must be one of ${WRITE_MODES.join(', ')}`)
      if (v.chunkSize !== undefined && !isValidChunkSize(v.chunkSize)) fail(`${where}.chunkSize`, 'must be a power of two from 4096 to 1048576')
    }
  }
  if (errors.length > 0) {
    throw new TopologyError(Codes.BAD_TOPOLOGY_CONFIG, `${source} is not a valid topology:\n  ${errors.join('\n  ')}`, { errors })
  }
  return { ...(value as unknown as TopologyConfig), volumes: volumes as TopologyConfig['volumes'] }
}

export async function loadTopologyConfig (file: string): Promise<TopologyConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new TopologyError(Codes.BAD_TOPOLOGY_CONFIG, `cannot read ${file}: ${(err as Error).message}`)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new TopologyError(Codes.BAD_TOPOLOGY_CONFIG, `${file} is not JSON: ${(err as Error).message}`)
  }
  const config = parseTopologyConfig(value, file)
  // A key file named in a config is found next to the config, wherever it is started from.
  for (const n of config.nodes) if (n.swarmKeyFile !== undefined) n.swarmKeyFile = resolve(dirname(file), n.swarmKeyFile)
  return config
}

/**
 * Starts the nodes of a config and creates its volumes (a volume the creating node already
 * holds, from an earlier run on the same dir, is left as it is).
 */
export async function startTopologyFromConfig (config: TopologyConfig, opts: Omit<TopologyOptions, 'nodes'> = {}): Promise<Topology> {
  const topo = await Topology.start({ ...opts, connect: opts.connect ?? config.connect, nodes: config.nodes.map(n => ({ ...n })) })
  try {
    for (const v of config.volumes) {
      const on = v.createdOn ?? v.members[0]
      if ((await topo.client(on).listVolumes()).volumes.some(x => x.name === v.name)) continue
      await topo.createVolume(v.name, { members: v.members, on, writeMode: v.writeMode, chunkSize: v.chunkSize }, { timeoutMs: opts.startTimeoutMs ?? 60_000 })
    }
  } catch (err) {
    await topo.close().catch(() => {})
    throw err
  }
  return topo
}
