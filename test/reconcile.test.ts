import '../core/polyfill.js'
import test from 'ava'
import { decide, conflictPath, resolvedVector } from '../replication/reconcile.js'
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

test('equal mtimes: tie broken by vector, still symmetric', t => {
  const l = rec('/a', { A: 1 }, { chunks: new Uint8Array(32).fill(1) })
  const r = rec('/a', { B: 1 }, { chunks: new Uint8Array(32).fill(2) })
  const d = decide(l, r)
  t.is(d.kind, 'conflict')
  if (d.kind === 'conflict') t.is(d.records.length, 2)
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
    t.like(d.records[0].vv, { A: 1, B: 1 })
    t.deepEqual(d.records[0].vv, resolvedVector({ A: 1 }, { B: 1 }))
  }
})

// Found by chaos seed link-1/5: member 1 held A, member 3 held W (A's successor by an earlier
// conflict, under merge(A, B)); both met the same concurrent delete D and kept their live
// version under merge(x, D), the same vector, so the two contents never converged.
test('two members resolving different pairs never end with two contents under one vector', t => {
  const a = rec('/g', { J: 1, N: 1 }, { mtime: 3000, chunks: new Uint8Array(32).fill(1) })
  const b = rec('/g', { L: 1, N: 1 }, { mtime: 2000, chunks: new Uint8Array(32).fill(2) })
  const ab = decide(a, b)
  if (ab.kind !== 'conflict') return t.fail()
  const w = { ...ab.records[ab.records.length - 1], seq: 2 }
  const d = rec('/g', { L: 2, N: 1 }, { deleted: true })
  const onMember1 = decide(a, d)
  const onMember3 = decide(w, d)
  if (onMember1.kind !== 'conflict' || onMember3.kind !== 'conflict') return t.fail()
  const [x, y] = [{ ...onMember1.records[0], seq: 3 }, { ...onMember3.records[0], seq: 3 }]
  t.false(x.deleted)
  t.false(y.deleted)
  t.notDeepEqual(x.vv, y.vv, 'different pairs, different vectors')
  // When the two meet, they are concurrent, and both sides settle on the same result.
  t.is(compare(x.vv, y.vv), 'concurrent')
  t.deepEqual(decide(x, y), decide(y, x))
  // The same pair resolved on two members gives the identical record.
  t.deepEqual(decide(a, d), decide(d, a))
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
