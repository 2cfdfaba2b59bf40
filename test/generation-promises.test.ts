import '../core/polyfill.js'
import test from 'ava'
import { GenerationPromises, PromiseRefused, holderOf, PROMISES_KEY, type GenerationPromise } from '../replication/promises.js'
import { nextGeneration } from '../replication/generations.js'
import { sleep } from './helpers.js'
import type { VolumeRecord } from '../core/records.js'

const LIFE_MS = 60

/** A store that keeps the meta record as the real one does (a copy per write). */
function memoryStore (): { getMeta: <T>(key: string) => Promise<T | undefined>, putMeta: (key: string, value: unknown) => Promise<void>, kept: Map<string, unknown> } {
  const kept = new Map<string, unknown>()
  return {
    kept,
    getMeta: async <T>(key: string) => await Promise.resolve(structuredClone(kept.get(key)) as T | undefined),
    putMeta: async (key: string, value: unknown) => { kept.set(key, structuredClone(value)); await Promise.resolve() }
  }
}

const base: VolumeRecord = { v: 1, name: 'vol', id: '0123456789abcdef0123456789abcdef', generation: 4, genId: 'g4', members: ['a', 'b', 'c'], writeMode: 'active', chunkSize: 65536, createdAt: 1, seq: 0, dirty: false, history: [] }

async function refusal (p: Promise<void>): Promise<PromiseRefused> {
  try { await p } catch (err) { if (err instanceof PromiseRefused) return err; throw err }
  throw new Error('promised')
}

test('a promise past its life is in doubt, not dropped: it still refuses another id for that generation, across a restart, and says what it promised', async t => {
  const store = memoryStore()
  const promises = new GenerationPromises(store, LIFE_MS)
  const c = nextGeneration(base)
  const d = nextGeneration(base)
  await promises.take(base, c, holderOf('a', 'x1'), 'a')
  t.is(promises.get('vol')?.state, 'live')
  t.is((await refusal(promises.take(base, d, holderOf('b', 'y1'), 'b'))).kind, 'live')
  await sleep(LIFE_MS + 20)
  t.is(promises.get('vol')?.state, 'in-doubt')
  t.deepEqual(promises.inDoubt(), ['vol'])
  const restarted = new GenerationPromises(store, LIFE_MS)
  await restarted.load()
  const r = await refusal(restarted.take(base, d, holderOf('b', 'y1'), 'b'))
  t.is(r.kind, 'in-doubt')
  t.is(r.promise?.genId, c.genId)
  t.deepEqual(r.promise?.config?.members, c.members, 'the configuration promised is kept, to be completed from')
  // An in-doubt promise gives way to a committed configuration (adopting it is no conflict), a live one does not.
  t.is(restarted.conflicting('vol', c.generation, d.genId!), undefined)
})

test('a release names its proposal: the first proposer giving up does not drop the promise a completer of the same change holds', async t => {
  const store = memoryStore()
  const promises = new GenerationPromises(store, LIFE_MS)
  const c = nextGeneration(base)
  await promises.take(base, c, holderOf('a', 'first'), 'a')
  await sleep(LIFE_MS + 20)
  // b completes the change in doubt: same id, its own attempt.
  await promises.take(base, c, holderOf('b', 'completion'), 'b')
  t.is(promises.get('vol')?.state, 'live', 'a completion makes it live again')
  await promises.release('vol', c.genId!, holderOf('a', 'first'))
  t.is(promises.get('vol')?.genId, c.genId, 'still held by the completion')
  await promises.release('vol', c.genId!, holderOf('a', 'other-attempt'))
  t.is(promises.get('vol')?.genId, c.genId, 'a release by a proposal that does not hold it changes nothing')
  await promises.release('vol', c.genId!, holderOf('b', 'completion'))
  t.is(promises.get('vol'), undefined, 'dropped with its last holder')
  t.deepEqual(store.kept.get(PROMISES_KEY), {})
})

test('a proposer past the generation promised here is refused until this node adopts it; adopting settles the promise', async t => {
  const promises = new GenerationPromises(memoryStore(), LIFE_MS)
  const c = nextGeneration(base)
  await promises.take(base, c, holderOf('a', 'x'), 'a')
  await sleep(LIFE_MS + 20)
  const beyond = nextGeneration(c)
  t.is((await refusal(promises.take(base, beyond, holderOf('a', 'y'), 'a'))).kind, 'live')
  t.is(promises.get('vol')?.genId, c.genId, 'the promise of g+1 is kept')
  const committed = (await refusal(promises.take(c, nextGeneration(base), holderOf('b', 'z'), 'b')))
  t.is(committed.kind, 'committed')
  t.is(committed.held?.genId, c.genId, 'a node that holds the generation answers with it')
  await promises.settle('vol', c.generation)
  t.is(promises.get('vol'), undefined)
})

test('promises kept by an older version (no configuration, no holders) load as in doubt with their proposer as holder', async t => {
  const store = memoryStore()
  const old: GenerationPromise = { generation: 5, genId: 'old', proposer: 'a', expires: Date.now() - 1 }
  await store.putMeta(PROMISES_KEY, { vol: old })
  const promises = new GenerationPromises(store, LIFE_MS)
  await promises.load()
  t.is(promises.get('vol')?.state, 'in-doubt')
  t.deepEqual(promises.get('vol')?.holders, [holderOf('a', undefined)], 'released by a proposer that names no attempt')
  t.is(promises.get('vol')?.config, undefined)
})
