/**
 * Split generations: two configurations of one volume under one generation. The majority
 * rule (docs/CONSISTENCY.md) makes them impossible without `--force`, and chaos schedules
 * never force, so one found is a failure. A node's history keeps every (generation, id) it
 * held or adopted, so a split later superseded by a further change is still seen here.
 */
import type { Violation } from './history.js'

export interface HeldConfiguration {
  node: string
  generation: number
  genId?: string
  history?: Array<{ generation: number, genId: string }>
}

/** Every generation of `volume` that two ids claim, across what the nodes hold, as violations. */
export function splitGenerations (volume: string, held: readonly HeldConfiguration[]): Violation[] {
  const ids = new Map<number, Map<string, Set<string>>>()
  const note = (generation: number, genId: string, node: string): void => {
    const byId = ids.get(generation) ?? new Map<string, Set<string>>()
    ids.set(generation, byId)
    byId.set(genId, (byId.get(genId) ?? new Set()).add(node))
  }
  for (const h of held) {
    for (const e of h.history ?? []) note(e.generation, e.genId, h.node)
    if (h.genId !== undefined) note(h.generation, h.genId, h.node)
  }
  const out: Violation[] = []
  for (const [generation, byId] of [...ids].sort((a, b) => a[0] - b[0])) {
    if (byId.size < 2) continue
    const sides = [...byId].map(([id, nodes]) => `${id} on ${[...nodes].sort().join(',')}`).join('; ')
    out.push({ kind: 'SPLIT_GENERATION', message: `volume ${volume}: generation ${generation} has ${byId.size} configurations (${sides}): two majorities cannot both commit, so a change went through without one` })
  }
  return out
}
