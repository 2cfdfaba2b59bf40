import '../core/polyfill.js'
import test from 'ava'
import { compare, increment, merge, normalize, isValid, toKey, type Ordering, type VersionVector } from '../core/version-vector.js'

const compareCases: Array<[string, VersionVector, VersionVector, Ordering]> = [
  ['both empty', {}, {}, 'equal'],
  ['same single entry', { a: 1 }, { a: 1 }, 'equal'],
  ['same entries, different key order', { a: 1, b: 2 }, { b: 2, a: 1 }, 'equal'],
  ['zero entry equals missing key', { a: 1, b: 0 }, { a: 1 }, 'equal'],
  ['only zeros equals empty', { a: 0, b: 0 }, {}, 'equal'],
  ['one counter ahead', { a: 2 }, { a: 1 }, 'greater'],
  ['one counter behind', { a: 1 }, { a: 2 }, 'lesser'],
  ['extra key makes greater', { a: 1, b: 1 }, { a: 1 }, 'greater'],
  ['missing key makes lesser', { a: 1 }, { a: 1, b: 1 }, 'lesser'],
  ['non-empty vs empty', { a: 1 }, {}, 'greater'],
  ['empty vs non-empty', {}, { a: 1 }, 'lesser'],
  ['ahead on one, equal on other', { a: 3, b: 2 }, { a: 1, b: 2 }, 'greater'],
  ['disjoint keys', { a: 1 }, { b: 1 }, 'concurrent'],
  ['crossed counters', { a: 2, b: 1 }, { a: 1, b: 2 }, 'concurrent'],
  ['ahead on a, missing b', { a: 2 }, { a: 1, b: 1 }, 'concurrent'],
  ['zero vs positive on a crossed pair', { a: 0, b: 5 }, { a: 1, b: 4 }, 'concurrent'],
  ['divergence found late in key order', { a: 5, b: 5, c: 1, z: 0 }, { a: 5, b: 5, c: 0, z: 1 }, 'concurrent']
]

for (const [name, a, b, expected] of compareCases) {
  test(`compare: ${name}`, t => {
    t.is(compare(a, b), expected)
    // The relation is antisymmetric: swapping the arguments mirrors the answer.
    const mirrored: Record<Ordering, Ordering> = { equal: 'equal', concurrent: 'concurrent', greater: 'lesser', lesser: 'greater' }
    t.is(compare(b, a), mirrored[expected])
  })
}

test('increment adds a key, bumps an existing one, and does not mutate its input', t => {
  const v0: VersionVector = {}
  const v1 = increment(v0, 'a')
  t.deepEqual(v1, { a: 1 })
  t.deepEqual(v0, {})
  const v2 = increment(v1, 'a')
  t.deepEqual(v2, { a: 2 })
  t.deepEqual(v1, { a: 1 })
  const v3 = increment(v2, 'b')
  t.deepEqual(v3, { a: 2, b: 1 })
  t.is(compare(v3, v2), 'greater')
  t.is(compare(v2, v3), 'lesser')
})

test('increment normalises: zero entries dropped, keys sorted', t => {
  const v = increment({ z: 1, m: 0, b: 2 }, 'c')
  t.deepEqual(Object.keys(v), ['b', 'c', 'z'])
  t.deepEqual(v, { b: 2, c: 1, z: 1 })
})

const mergeCases: Array<[string, VersionVector, VersionVector, VersionVector]> = [
  ['empty + empty', {}, {}, {}],
  ['empty + x', {}, { a: 1 }, { a: 1 }],
  ['max per key', { a: 3, b: 1 }, { a: 1, b: 4 }, { a: 3, b: 4 }],
  ['union of keys', { a: 1 }, { b: 2 }, { a: 1, b: 2 }],
  ['zeros dropped', { a: 0, b: 1 }, { c: 0 }, { b: 1 }]
]

for (const [name, a, b, expected] of mergeCases) {
  test(`merge: ${name}`, t => {
    const m = merge(a, b)
    t.deepEqual(m, expected)
    t.deepEqual(merge(b, a), expected, 'merge is commutative')
    // The merge dominates (or equals) both inputs.
    t.true(['greater', 'equal'].includes(compare(m, a)))
    t.true(['greater', 'equal'].includes(compare(m, b)))
    t.deepEqual(Object.keys(m), Object.keys(m).slice().sort(), 'keys sorted')
  })
}

test('merge of concurrent vectors is greater than each', t => {
  const a = { x: 2, y: 1 }
  const b = { x: 1, y: 2 }
  t.is(compare(a, b), 'concurrent')
  const m = merge(a, b)
  t.is(compare(m, a), 'greater')
  t.is(compare(m, b), 'greater')
  t.is(compare(increment(m, 'x'), m), 'greater')
})

test('merge does not mutate its inputs', t => {
  const a = { x: 1 }
  const b = { x: 2, y: 1 }
  merge(a, b)
  t.deepEqual(a, { x: 1 })
  t.deepEqual(b, { x: 2, y: 1 })
})

test('normalize drops zeros, sorts keys and is idempotent', t => {
  const n = normalize({ c: 3, a: 0, b: 1 })
  t.deepEqual(n, { b: 1, c: 3 })
  t.deepEqual(Object.keys(n), ['b', 'c'])
  t.deepEqual(normalize(n), n)
  t.deepEqual(normalize({}), {})
  t.deepEqual(normalize({ a: 0 }), {})
  // Equal vectors serialise identically after normalisation.
  t.is(JSON.stringify(normalize({ b: 2, a: 1, z: 0 })), JSON.stringify(normalize({ a: 1, b: 2 })))
})

test('toKey is stable under key order', t => {
  t.is(toKey({ b: 2, a: 1 }), toKey({ a: 1, b: 2 }))
  t.is(toKey({ a: 1, b: 2 }), 'a:1,b:2')
  t.not(toKey({ a: 1 }), toKey({ a: 2 }))
})

const validCases: Array<[string, unknown]> = [
  ['empty object', {}],
  ['one entry', { a: 1 }],
  ['zero counter', { a: 0 }],
  ['max safe integer', { a: Number.MAX_SAFE_INTEGER }],
  ['key of 128 chars', { ['k'.repeat(128)]: 1 }],
  ['peer-id-like keys', { '12D3KooWAbc': 3, '12D3KooWXyz': 4 }]
]
const invalidCases: Array<[string, unknown]> = [
  ['null', null],
  ['undefined', undefined],
  ['number', 1],
  ['string', 'a:1'],
  ['array', [1, 2]],
  ['negative counter', { a: -1 }],
  ['fractional counter', { a: 1.5 }],
  ['NaN counter', { a: NaN }],
  ['infinite counter', { a: Infinity }],
  ['unsafe integer counter', { a: Number.MAX_SAFE_INTEGER + 1 }],
  ['string counter', { a: '1' }],
  ['null counter', { a: null }],
  ['empty key', { '': 1 }],
  ['key over 128 chars', { ['k'.repeat(129)]: 1 }]
]

for (const [name, v] of validCases) {
  test(`isValid accepts ${name}`, t => { t.true(isValid(v)) })
}
for (const [name, v] of invalidCases) {
  test(`isValid rejects ${name}`, t => { t.false(isValid(v)) })
}
