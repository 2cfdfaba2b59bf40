/**
 * Summarises a V8 .cpuprofile (written by `node --cpu-prof`): self time per function and per
 * code area (package or node internal), to say where a node process spends its time.
 */
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

export interface ProfileSummary {
  /** Sampled time the process was busy (everything but V8's "(idle)"). */
  totalMs: number
  idleMs: number
  functions: Array<{ name: string, where: string, ms: number, pct: number }>
  areas: Array<{ area: string, ms: number, pct: number }>
}

/** The code area of a script URL: an npm package, node:internal, the project's own code, or a V8 pseudo-frame. */
function areaOf (url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (url.startsWith('node:')) {
    const m = /^node:internal\/([^/]+)/.exec(url)
    return m !== null ? `node:internal/${m[1]}` : url
  }
  const d = /\/dist\/([^/]+)\/([^/]+)$/.exec(url)
  if (d !== null) return `replicant ${d[1]}/${d[2].replace(/\.js$/, '')}`
  return url
}

/** Now on the clock V8 profiles use (CLOCK_MONOTONIC, microseconds): the same across processes on Linux. */
export const monotonicMicros = (): number => Number(process.hrtime.bigint() / 1000n)

/**
 * Self time per function and area. With `window` (monotonic microseconds, see monotonicMicros),
 * only samples taken inside it count, so start-up and idle time around a phase drop out.
 */
export function summarise (profile: CpuProfile, top = 15, window?: { from: number, to: number }): ProfileSummary {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const self = new Map<number, number>()
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the following delta to sample i.
    t += profile.timeDeltas[i]
    if (window !== undefined && (t < window.from || t > window.to)) continue
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt)
  }
  const fns = new Map<string, { name: string, where: string, ms: number }>()
  const areas = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, ms] of self) {
    const n = byId.get(id)
    if (n === undefined) continue
    const { functionName, url, lineNumber } = n.callFrame
    if (functionName === '(idle)') { idle += ms; continue }
    const name = functionName === '' ? '(anonymous)' : functionName
    const short = url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/')
    const where = url === '' ? '' : `${short}:${lineNumber + 1}`
    const key = `${name}@${where}`
    const e = fns.get(key) ?? { name, where, ms: 0 }
    e.ms += ms
    fns.set(key, e)
    const area = areaOf(url, name)
    areas.set(area, (areas.get(area) ?? 0) + ms)
    total += ms
  }
  return {
    totalMs: total,
    idleMs: idle,
    functions: [...fns.values()].sort((a, b) => b.ms - a.ms).slice(0, top).map(f => ({ ...f, pct: 100 * f.ms / total })),
    areas: [...areas.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([area, ms]) => ({ area, ms, pct: 100 * ms / total }))
  }
}

/** Reads the single .cpuprofile that a node process wrote into `dir`. */
export async function readProfile (dir: string): Promise<CpuProfile> {
  const files = (await readdir(dir)).filter(f => f.endsWith('.cpuprofile'))
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${dir}, found ${files.length}`)
  return JSON.parse(await readFile(join(dir, files[0]), 'utf8')) as CpuProfile
}
