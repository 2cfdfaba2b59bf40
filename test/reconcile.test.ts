import '../core/polyfill.js'
import test from 'ava'
import { decide, conflictPath, reconcileRecord } from '../replication/reconcile.js'
import { compare } from '../core/version-vector.js'
import type { FileRecord } from '../core/records.js'

function rec (path: string, vv: Record<string, number>, opts: Partial<FileRecord> = {}): FileRecord {
  const fill = opts.chunks ?? new Uint8Array(32).fill(Object.values(vv).reduce((a, b) => a + b, 0))
  return { v: 1, path, size: opts.deleted === true ? 0 : 10, mode: 0o644, mtime: 1000, chunkSize: 65536, chunks: opts.deleted === true ? new Uint8Array(0) : fill, vv, deleted: false, seq: 1, ...opts }
}

test('nothing local: take the incoming record', t => {
  const d = decide(undefined, rec('/a', { A: 1 }))
  t.is(d.kind, 'apply')
})

const table: Array<[string, Record<string, number>, Record<string, number>, string]> = [
  ['equal', { A: 1 }, { A: 1 }, 'skip'],
  ['incoming older', { A: 2 }, { A: 1 }, 'skip'],
  ['incoming newer', { A: 1 }, { A: 2 }, 'apply'],
  ['incoming newer on another replica', { A: 1 }, { A: 1, B: 1 }, 'apply'],
  ['concurrent', { A: 2 }, { A: 1, B: 1 }, 'conflict']
]
for (const [name, local, incoming, kind] of table) {
  test(`vector ${name} -> ${kind}`, t => {
    const got: string = decide(rec('/a', local), rec('/a', incoming)).kind
    t.is(got, kind)
  })
}

test('concurrent live versions: both kept, identical whichever side decides', t => {
  const l = rec('/dir/photo.jpg', { A: 2 }, { mtime: 2000, chunks: new Uint8Array(32).fill(1) })
  const r = rec('/dir/photo.jpg', { A: 1, B: 1 }, { mtime: 1000, chunks: new Uint8Array(32).fill(2) })
  const onA = decide(l, r)
  const onB = decide(r, l)
  t.is(onA.kind, 'conflict')
  t.deepEqual(onA, onB)
  if (onA.kind !== 'conflict') return
  t.is(onA.records.length, 2)
  const [copy, winner] = onA.records
  t.is(winner.path, '/dir/photo.jpg')
  t.is(winner.mtime, 2000, 'the later mtime wins the path')
  t.is(compare(winner.vv, l.vv), 'greater')
  t.is(compare(winner.vv, r.vv), 'greater')
  t.is(copy.path, conflictPath('/dir/photo.jpg', r))
  t.regex(copy.path, /^\/dir\/photo\.conflict-[0-9a-f]{8}\.jpg$/)
  t.deepEqual(copy.vv, r.vv, 'the copy carries the loser vector, so every member makes the same one')
  t.deepEqual(copy.chunks, r.chunks)
})

test('equal mtimes: tie broken by content, still symmetric', t => {
  const l = rec('/a', { A: 1 }, { chunks: new Uint8Array(32).fill(1) })
  const r = rec('/a', { B: 1 }, { chunks: new Uint8Array(32).fill(2) })
  const d = decide(l, r)
  t.is(d.kind, 'conflict')
  if (d.kind === 'conflict') {
    t.is(d.records.length, 2)
    t.deepEqual(d.records[1].chunks, r.chunks, 'the larger bytes win a tie of mtime and size')
  }
  t.deepEqual(d, decide(r, l))
})

test('update beats a concurrent delete, no copy needed', t => {
  const live = rec('/a', { A: 2 })
  const gone = rec('/a', { A: 1, B: 1 }, { deleted: true })
  for (const [x, y] of [[live, gone], [gone, live]]) {
    const d = decide(x, y)
    t.is(d.kind, 'conflict')
    if (d.kind !== 'conflict') continue
    t.is(d.records.length, 1)
    t.false(d.records[0].deleted)
    t.deepEqual(d.records[0].chunks, live.chunks)
    t.is(compare(d.records[0].vv, gone.vv), 'greater')
  }
})

test('concurrent identical content merges vectors without a copy', t => {
  const chunks = new Uint8Array(32).fill(7)
  const d = decide(rec('/a', { A: 1 }, { chunks }), rec('/a', { B: 1 }, { chunks }))
  t.is(d.kind, 'conflict')
  if (d.kind === 'conflict') {
    t.is(d.records.length, 1)
    t.deepEqual(d.records[0].vv, { A: 1, B: 1 }, 'the join of both: no entry is invented')
  }
})

// Found by chaos seed link-1/5: member 1 held A, member 3 held W (A's successor by an earlier
// conflict, under merge(A, B)); both met the same concurrent delete D and kept their live
// version under merge(x, D), the same vector. Two contents under one vector are resolved like
// a conflict (by content), so the two members still converge.
test('two members resolving different pairs to one vector with different contents converge', t => {
  const a = rec('/g', { J: 1, N: 1 }, { mtime: 2000, chunks: new Uint8Array(32).fill(1) })
  const b = rec('/g', { L: 1, N: 1 }, { mtime: 3000, chunks: new Uint8Array(32).fill(2) })
  const ab = decide(a, b)
  if (ab.kind !== 'conflict') return t.fail()
  const w = { ...ab.records[ab.records.length - 1], seq: 2 }
  t.deepEqual(w.chunks, b.chunks)
  const d = rec('/g', { L: 2, N: 1 }, { deleted: true })
  const onMember1 = decide(a, d)
  const onMember3 = decide(w, d)
  if (onMember1.kind !== 'conflict' || onMember3.kind !== 'conflict') return t.fail()
  const [x, y] = [{ ...onMember1.records[0], seq: 3 }, { ...onMember3.records[0], seq: 3 }]
  t.false(x.deleted)
  t.false(y.deleted)
  t.deepEqual(x.vv, y.vv, 'one vector, two contents')
  const onX = decide(x, y)
  const onY = decide(y, x)
  if (onX.kind !== 'conflict') return t.fail()
  t.deepEqual(onX.records.map(r => r.path), [conflictPath('/g', a), '/g'], 'member 1 takes W and keeps A as a copy')
  t.deepEqual(onX.records[1].chunks, b.chunks)
  t.deepEqual(onX.records[1].vv, x.vv)
  if (onY.kind !== 'conflict') return t.fail()
  t.deepEqual(onY.records, [onX.records[0]], 'member 3 keeps W and makes the same copy of A')
  // The same pair resolved on two members gives the identical record.
  t.deepEqual(decide(a, d), decide(d, a))
})

/** Applies `incoming` to a member's records the way a pull does. */
async function meet (member: Map<string, FileRecord>, incoming: FileRecord): Promise<number> {
  const out = await reconcileRecord(async p => await Promise.resolve(member.get(p)), incoming)
  for (const { record } of out) member.set(record.path, { ...record, seq: 0 })
  return out.length
}

function permutations<T> (xs: T[]): T[][] {
  if (xs.length <= 1) return [xs]
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map(p => [x, ...p]))
}

// The churn of issue 13: resolutions that named their pair made R(R(X,Y),Z) and R(X,R(Y,Z))
// two new concurrent vectors (and a second copy of Y's bytes), so members that resolved in
// different orders kept resolving. By content and join, every order gives one result.
test('three concurrent writes resolved in any order give the same records, and meeting again changes nothing', async t => {
  const x = rec('/f.txt', { A: 1 }, { mtime: 1000, chunks: new Uint8Array(32).fill(1) })
  const y = rec('/f.txt', { B: 1 }, { mtime: 2000, chunks: new Uint8Array(32).fill(2) })
  const z = rec('/f.txt', { C: 1 }, { mtime: 3000, chunks: new Uint8Array(32).fill(3) })
  const gone = rec('/f.txt', { D: 1 }, { deleted: true, mtime: 4000 })
  const results: Array<Map<string, FileRecord>> = []
  for (const order of permutations([x, y, z, gone])) {
    const member = new Map<string, FileRecord>()
    for (const r of order) await meet(member, r)
    results.push(member)
  }
  const first = results[0]
  t.deepEqual([...first.keys()].sort(), [conflictPath('/f.txt', x), conflictPath('/f.txt', y), '/f.txt'].sort())
  t.deepEqual(first.get('/f.txt')?.chunks, z.chunks)
  t.deepEqual(first.get('/f.txt')?.vv, { A: 1, B: 1, C: 1, D: 1 })
  // Members that resolved in different orders hold the same paths and contents; their copies
  // may carry different vectors of the same bytes, which merge when they meet.
  for (const m of results) {
    t.deepEqual([...m.keys()].sort(), [...first.keys()].sort())
    t.deepEqual(m.get('/f.txt'), first.get('/f.txt'))
  }
  // Two members that resolved in different orders meet both ways: they end identical, and
  // a third exchange changes nothing.
  for (const other of results.slice(1)) {
    const a = new Map([...first].map(([k, v]) => [k, { ...v }]))
    const b = new Map([...other].map(([k, v]) => [k, { ...v }]))
    for (let round = 0; round < 2; round++) {
      for (const r of [...b.values()]) await meet(a, r)
      for (const r of [...a.values()]) await meet(b, r)
    }
    const sorted = (m: Map<string, FileRecord>): FileRecord[] => [...m.values()].sort((p, q) => p.path < q.path ? -1 : 1)
    t.deepEqual(sorted(a), sorted(b))
    let changes = 0
    for (const r of [...b.values()]) changes += await meet(a, r)
    for (const r of [...a.values()]) changes += await meet(b, r)
    t.is(changes, 0)
  }
})

test('a conflict copy already made under a later vector is not overwritten by an older one', async t => {
  const x = rec('/f', { A: 1 }, { mtime: 1000, chunks: new Uint8Array(32).fill(1) })
  const z = rec('/f', { C: 1 }, { mtime: 3000, chunks: new Uint8Array(32).fill(3) })
  const copy = conflictPath('/f', x)
  const member = new Map<string, FileRecord>([
    ['/f', { ...z, vv: { A: 1, C: 1 } }],
    [copy, { ...x, path: copy, vv: { A: 1, B: 1 } }]
  ])
  // x meets z again (from a member that never saw the later copy): the path is already resolved.
  t.is(await meet(member, x), 0)
  // A concurrent version of the path that x loses to again: the copy stays at its later vector.
  member.set('/f', { ...z, vv: { C: 1 } })
  await meet(member, x)
  t.deepEqual(member.get(copy)?.vv, { A: 1, B: 1 })
})

test('conflict path keeps the extension and the directory', t => {
  const r = rec('/x/y/noext', { A: 1 })
  t.regex(conflictPath('/x/y/noext', r), /^\/x\/y\/noext\.conflict-[0-9a-f]{8}$/)
  t.regex(conflictPath('/.hidden', r), /^\/\.hidden\.conflict-[0-9a-f]{8}$/)
})

test('same content or two deletes: the kept metadata does not depend on which member decides', t => {
  const chunks = new Uint8Array(32).fill(9)
  const l = rec('/m', { A: 1 }, { chunks, mode: 0o644, mtime: 1000 })
  const r = rec('/m', { B: 1 }, { chunks, mode: 0o755, mtime: 2000 })
  t.deepEqual(decide(l, r), decide(r, l))
  const dl = rec('/m', { A: 2 }, { deleted: true, mtime: 3000 })
  const dr = rec('/m', { B: 2 }, { deleted: true, mtime: 4000 })
  t.deepEqual(decide(dl, dr), decide(dr, dl))
})

// An empty file and an empty folder hold the same bytes (none): the kind is content too, or a
// PUT of an empty file concurrent with a MKCOL of the same path (WebDAV) is lost with no copy.
test('an empty file concurrent with a folder marker at the same path: the loser is kept as a copy, whichever side decides', t => {
  const empty = new Uint8Array(0)
  const file = rec('/x', { A: 1 }, { size: 0, chunks: empty, mode: 0o644, mtime: 1000 })
  for (const folderMtime of [999, 1001]) {
    const folder = rec('/x', { B: 1 }, { size: 0, chunks: empty, mode: 0o040755, mtime: folderMtime })
    const here = decide(file, folder)
    const there = decide(folder, file)
    for (const d of [here, there]) {
      t.is(d.kind, 'conflict')
      if (d.kind !== 'conflict') continue
      t.is(d.records.length, 2, `mtime ${folderMtime}: the winner and a copy of the loser`)
      const modes = d.records.map(r => r.mode).sort((x, y) => x - y)
      t.deepEqual(modes, [0o644, 0o040755], 'both kinds survive')
      t.truthy(d.copyPath)
    }
    if (here.kind === 'conflict' && there.kind === 'conflict') t.is(here.copyPath, there.copyPath, 'both sides name the same copy')
  }
})
