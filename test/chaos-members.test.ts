import '../core/polyfill.js'
import test from 'ava'
import { nextMembersStep, type HeldConfig } from '../testing/chaos-members.js'

const nodes = [{ name: 'n1', peerId: 'P1' }, { name: 'n2', peerId: 'P2' }, { name: 'n3', peerId: 'P3' }]
const g1 = { generation: 1, genId: 'root-1' }

test('a configuration that forked off below the newest is grown through its holder (long4-c/24)', t => {
  // n2, removed at generation 2 while it was down, went on changing its own configuration up to
  // generation 5, which lists everyone; n1 and n3 hold generation 3 of the real line: {n3}.
  const held: HeldConfig[] = [
    { node: 'n1', members: ['P3'], generation: 3, genId: 'real-3', history: [g1, { generation: 2, genId: 'real-2' }] },
    { node: 'n2', members: ['P1', 'P2', 'P3'], generation: 5, genId: 'fork-5', history: [g1, { generation: 2, genId: 'fork-2' }, { generation: 3, genId: 'fork-3' }, { generation: 4, genId: 'fork-4' }] },
    { node: 'n3', members: ['P3'], generation: 3, genId: 'real-3', history: [g1, { generation: 2, genId: 'real-2' }] }
  ]
  const step = nextMembersStep(held, nodes)
  t.like(step, { kind: 'add', via: 'n3', node: 'n1' })
  t.deepEqual(step.forked, [3])
})

test('a node that only lags behind the newest configuration is not a fork: done once the newest lists all', t => {
  const held: HeldConfig[] = [
    { node: 'n1', members: ['P1', 'P3'], generation: 2, genId: 'g2', history: [g1] },
    { node: 'n2', members: ['P1', 'P2', 'P3'], generation: 3, genId: 'g3', history: [g1, { generation: 2, genId: 'g2' }] },
    { node: 'n3', members: ['P1', 'P2', 'P3'], generation: 3, genId: 'g3', history: [g1, { generation: 2, genId: 'g2' }] }
  ]
  t.like(nextMembersStep(held, nodes), { kind: 'done', forked: [] })
})

test('the newest configuration lacking a node: added through a holder of it', t => {
  const held: HeldConfig[] = [
    { node: 'n1', members: ['P1', 'P3'], generation: 2, genId: 'g2', history: [g1] },
    { node: 'n2', members: ['P1', 'P2', 'P3'], generation: 1, genId: 'root-1', history: [] },
    { node: 'n3', members: ['P1', 'P3'], generation: 2, genId: 'g2', history: [g1] }
  ]
  t.like(nextMembersStep(held, nodes), { kind: 'add', via: 'n1', node: 'n2' })
})

test('two configurations of the newest generation that both list everyone: one node removed to supersede both', t => {
  const all = ['P1', 'P2', 'P3']
  const held: HeldConfig[] = [
    { node: 'n1', members: all, generation: 3, genId: 'a3', history: [g1] },
    { node: 'n2', members: all, generation: 3, genId: 'b3', history: [g1] },
    { node: 'n3', members: all, generation: 3, genId: 'a3', history: [g1] }
  ]
  const step = nextMembersStep(held, nodes)
  t.is(step.kind, 'remove')
  t.deepEqual(step.split, [3])
})
