import test from 'ava'
import { splitGenerations } from '../testing/chaos-splits.js'

test('one id per generation across nodes: no split', t => {
  t.deepEqual(splitGenerations('v', [
    { node: 'n1', generation: 3, genId: 'c', history: [{ generation: 1, genId: 'a' }, { generation: 2, genId: 'b' }] },
    { node: 'n2', generation: 2, genId: 'b', history: [{ generation: 1, genId: 'a' }] },
    { node: 'n3', generation: 1, genId: 'a' }
  ]), [])
})

test('two ids of the newest generation on two nodes: a SPLIT_GENERATION naming both sides', t => {
  const v = splitGenerations('v', [
    { node: 'n1', generation: 3, genId: 'x', history: [{ generation: 2, genId: 'b' }] },
    { node: 'n2', generation: 3, genId: 'y', history: [{ generation: 2, genId: 'b' }] }
  ])
  t.is(v.length, 1)
  t.is(v[0].kind, 'SPLIT_GENERATION')
  t.regex(v[0].message, /generation 3 has 2 configurations \(x on n1; y on n2\)/)
})

test('a split later superseded is still seen in the history', t => {
  const v = splitGenerations('v', [
    { node: 'n1', generation: 4, genId: 'z', history: [{ generation: 3, genId: 'x' }, { generation: 3, genId: 'y' }] },
    { node: 'n2', generation: 4, genId: 'z', history: [{ generation: 3, genId: 'y' }] }
  ])
  t.deepEqual(v.map(x => x.message.match(/generation (\d+)/)?.[1]), ['3'])
})
