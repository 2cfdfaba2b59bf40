/** One node's newest configuration of a volume, as its volume info shows it. */
export interface HeldConfig {
  node: string
  members: string[]
  generation: number
  genId?: string
  history: Array<{ generation: number, genId: string }>
}

export interface EndNode { name: string, peerId: string }

/** What the end phase does next to make every node a member again (chaos-schedule.ts). */
export type MembersStep =
  | { kind: 'done' }
  | { kind: 'wait' }
  | { kind: 'add', via: string, node: string }
  | { kind: 'remove', via: string, node: string }

/**
 * The next change an operator would make so that one configuration lists every node. Pure:
 * given each node's newest configuration. `split`: generations held with two configurations;
 * `forked`: configurations whose line left the newest's below it (a member that did not know
 * it was removed went on changing its own configuration: long4-c/24). Their holders never
 * adopt the newest from a proposer their configuration does not list, so such a configuration
 * is grown through its own holder until it lists the newest's holders and adopts from them.
 */
export function nextMembersStep (held: HeldConfig[], nodes: EndNode[]): MembersStep & { split: number[], forked: number[] } {
  const notes = { split: [] as number[], forked: [] as number[] }
  if (held.length === 0) return { kind: 'wait', ...notes }
  const top = Math.max(...held.map(h => h.generation))
  const newest = held.filter(h => h.generation === top)
  // Two configurations of one generation: different ids where both are known, or different members.
  const same = (x: HeldConfig, y: HeldConfig): boolean => x.members.join() === y.members.join() && (x.genId === undefined || y.genId === undefined || x.genId === y.genId)
  const split = newest.some(h => !same(h, newest[0]))
  if (split) notes.split.push(top)
  const lacking = (h: HeldConfig): EndNode[] => nodes.filter(n => !h.members.includes(n.peerId))
  // A member of a configuration that holds that configuration itself can change it (a removed
  // node holds the configuration that removed it, but may not change it).
  const holdersOf = (h: HeldConfig): EndNode[] => nodes.filter(n => h.members.includes(n.peerId) && held.some(o => o.node === n.name && same(o, h)))
  const below = (h: HeldConfig): boolean => h.generation < top && h.genId !== undefined &&
    !newest.some(t => t.history.some(x => x.generation === h.generation && x.genId === h.genId))
  const forked = held.filter(h => below(h) && lacking(h).length > 0 && holdersOf(h).length > 0).sort((x, y) => y.generation - x.generation)
  if (forked.length > 0) notes.forked.push(forked[0].generation)
  const best = newest.find(h => lacking(h).length > 0 && holdersOf(h).length > 0) ?? forked[0]
  if (best !== undefined) return { kind: 'add', via: holdersOf(best)[0].name, node: lacking(best)[0].name, ...notes }
  if (!split) return { kind: newest.every(h => lacking(h).length === 0) ? 'done' : 'wait', ...notes }
  // Every side that a member holds lists everyone: a change is still needed to supersede both;
  // remove one node through a member of one side (the next round adds it back). Through a
  // holder that every side lists (each side then takes its proposal), removing a node that
  // some side does not list if there is one.
  const listedBy = (n: EndNode): number => newest.filter(h => h.members.includes(n.peerId)).length
  const holders = newest.flatMap(h => holdersOf(h).map(n => ({ n, side: h })))
  if (holders.length === 0) return { kind: 'wait', ...notes }
  const { n: via, side } = holders.sort((x, y) => listedBy(y.n) - listedBy(x.n))[0]
  const other = nodes.filter(n => n.name !== via.name && side.members.includes(n.peerId)).sort((x, y) => listedBy(x) - listedBy(y))[0]
  return other !== undefined ? { kind: 'remove', via: via.name, node: other.name, ...notes } : { kind: 'wait', ...notes }
}
