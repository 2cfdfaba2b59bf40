/**
 * A short seeded fuzz of every protocol handler and of the HTTP API against a real node (the
 * long runs are `npm run fuzz`, docs/FUZZING.md). Abandoned streams become resets here: each
 * would hold the run for the handlers' 30 s read timeout.
 */
import '../core/polyfill.js'
import test from 'ava'
import { startFuzzTarget } from '../testing/fuzz-target.js'
import { protocolFuzzer } from '../testing/fuzz-protocol.js'
import { httpFuzzer } from '../testing/fuzz-http.js'
import { runFuzz, formatSummary, type RunOptions } from '../testing/fuzz-run.js'
import { FUZZ_PROTOCOLS } from '../testing/fuzz-messages.js'

const SEED = 1414
const opts = (frames: number): RunOptions => ({ frames, seed: SEED, wireEvery: 3, checkEvery: 1000, maxAbandoned: 0, hungMs: 20_000, maxRssMiB: 1536 })

for (const name of FUZZ_PROTOCOLS) {
  test(`fuzz ${name}: 2,000 seeded frames, stranger and member, over the wire and in memory: no finding, the member still reads, the store verifies`, async t => {
    const target = await startFuzzTarget()
    t.teardown(async () => { await target.close() })
    const s = await runFuzz(target, protocolFuzzer(name, target), opts(2000))
    t.log(formatSummary(s))
    t.deepEqual(s.findings.map(f => `${f.kind}: ${f.message}`), [])
    t.true(s.frames >= 2000 && s.wire.frames > 0 && s.memory.frames > 0)
    t.is(s.senderErrors, 0, `every case was sent (last failure: ${s.lastSenderError ?? ''})`)
    t.true(s.checks >= 2)
    t.truthy(s.verified)
  })
}

test('fuzz http: 500 seeded requests: no 500, no hung connection, the member still reads, the store verifies', async t => {
  const target = await startFuzzTarget({ api: true })
  t.teardown(async () => { await target.close() })
  const s = await runFuzz(target, httpFuzzer(target), { ...opts(500), wireEvery: 1, checkEvery: 200 })
  t.log(formatSummary(s))
  t.deepEqual(s.findings.map(f => `${f.kind}: ${f.message}`), [])
  t.is(s.senderErrors, 0, `every request was sent (last failure: ${s.lastSenderError ?? ''})`)
  t.truthy(s.verified)
})
