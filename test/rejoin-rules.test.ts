import '../core/polyfill.js'
import test from 'ava'
import { decideRejoin, type VolumeHistory } from '../replication/rejoin-rules.js'

const vol = 'a'.repeat(32)
const h = (generation: number, genId: string, history: Array<[number, string]> = [], volumeId = vol): VolumeHistory =>
  ({ volumeId, generation, genId, history: history.map(([g, id]) => ({ generation: g, genId: id })) })

// One test per row of the table in docs/CONSISTENCY.md.
const rows: Array<{ row: string, local: VolumeHistory, remote: VolumeHistory, watermark: number, head: number, floor: number, expect: string, since: number }> = [
  { row: '1 different volume id: unrelated, refused', local: h(3, 'g3'), remote: h(3, 'g3', [], 'b'.repeat(32)), watermark: 5, head: 9, floor: 0, expect: 'refused', since: 0 },
  { row: '2 same generation, watermark at head: nothing', local: h(3, 'g3'), remote: h(3, 'g3'), watermark: 9, head: 9, floor: 0, expect: 'nothing', since: 9 },
  { row: '3 same generation, behind: minicopy', local: h(3, 'g3'), remote: h(3, 'g3'), watermark: 5, head: 9, floor: 0, expect: 'minicopy', since: 5 },
  { row: '4 peer moved on, our generation in its history: minicopy', local: h(3, 'g3', [[2, 'g2']]), remote: h(5, 'g5', [[3, 'g3'], [4, 'g4']]), watermark: 5, head: 20, floor: 0, expect: 'minicopy', since: 5 },
  { row: '5 we moved on, its generation in our history: minicopy', local: h(5, 'g5', [[3, 'g3'], [4, 'g4']]), remote: h(3, 'g3'), watermark: 5, head: 7, floor: 0, expect: 'minicopy', since: 5 },
  { row: '6 histories share nothing (truncated or diverged): full copy', local: h(9, 'x9', [[8, 'x8']]), remote: h(9, 'y9', [[8, 'y8']]), watermark: 5, head: 20, floor: 0, expect: 'copy', since: 0 },
  { row: '6b both moved on from a common generation: minicopy', local: h(4, 'x4', [[3, 'g3']]), remote: h(4, 'y4', [[3, 'g3']]), watermark: 5, head: 20, floor: 0, expect: 'minicopy', since: 5 },
  { row: '7 watermark below the retained change log: full copy', local: h(3, 'g3'), remote: h(3, 'g3'), watermark: 5, head: 20, floor: 12, expect: 'copy', since: 0 },
  { row: '8 no watermark at all, peer has changes: full copy', local: h(3, 'g3'), remote: h(3, 'g3'), watermark: 0, head: 20, floor: 0, expect: 'copy', since: 0 },
  { row: '9 no watermark, peer has nothing: nothing', local: h(1, 'g1'), remote: h(1, 'g1'), watermark: 0, head: 0, floor: 0, expect: 'nothing', since: 0 },
  { row: '10 known history and watermark at head: minicopy of nothing (generation differs)', local: h(3, 'g3'), remote: h(4, 'g4', [[3, 'g3']]), watermark: 9, head: 9, floor: 0, expect: 'minicopy', since: 9 }
]

for (const r of rows) {
  test(`rejoin rule ${r.row}`, t => {
    const d = decideRejoin(r.local, r.remote, r.watermark, { head: r.head, floor: r.floor })
    t.is(d.decision, r.expect as never)
    t.is(d.since, r.since)
    t.true(d.why.length > 10, 'every decision says why')
  })
}
