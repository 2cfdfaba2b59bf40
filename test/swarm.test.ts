import '../core/polyfill.js'
import test from 'ava'
import { runSwarm } from '../testing/swarm.js'

test('a swarm of 10 nodes: every reader gets every byte, and no holder serves most of it (readers fetch from each other)', async t => {
  t.timeout(240_000)
  const r = await runSwarm({ nodes: 10, members: 3, readers: 5, files: 16, fileBytes: 256 * 1024, timeoutMs: 200_000, log: line => { t.log(line) } })
  t.is(r.readersDone, r.readers)
  const total = Object.values(r.served).reduce((a, b) => a + b, 0)
  // Five readers and the single reader read 4 MiB each: at least that much was served.
  t.true(total >= (r.readers + 1) * r.volumeBytes, `served ${total} B`)
  const shares = Object.entries(r.served).map(([n, b]) => `${n} ${(100 * b / total).toFixed(0)}%`)
  t.log(`served: ${shares.join(', ')}`)
  // Before holder-choice.ts a reader asked the first steady member for every chunk it read:
  // it served 100% of the reads (a reader's index pulls take chunks from the member pulled, so
  // the members share those either way), and no reader served anything.
  t.true(r.served[r.busiest] / total < 0.7, `busiest holder ${r.busiest} served ${(100 * r.served[r.busiest] / total).toFixed(0)}%`)
  // Readers served each other, not only the three members (fails without holder-choice.ts).
  t.true(Object.keys(r.served).filter(n => !['n1', 'n2', 'n3'].includes(n)).length >= 2, `holders that served: ${Object.keys(r.served).join(', ')}`)
  t.true(r.firstByteMs.n > 0)
})
