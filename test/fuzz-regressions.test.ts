/**
 * Every input a fuzz run saved (test/fuzz-corpus/NAME/*.json, testing/fuzz-findings.ts) is
 * replayed alone against a fresh real node: the handler must end its side, not throw, and the
 * member must still read through the node, whose store must verify afterwards.
 */
import '../core/polyfill.js'
import test from 'ava'
import { join } from 'node:path'
import { DIST } from './helpers.js'
import { startFuzzTarget } from '../testing/fuzz-target.js'
import { send, type SendMode } from '../testing/fuzz-send.js'
import { loadCorpus, caseOf } from '../testing/fuzz-findings.js'
import { httpCaseOf, sendRaw } from '../testing/fuzz-http.js'

const CORPUS = join(DIST, '..', 'test', 'fuzz-corpus')
const corpus = await loadCorpus(CORPUS)

test('the fuzz corpus loads', t => {
  t.true(Array.isArray(corpus))
  t.log(`${corpus.length} saved inputs`)
})

for (const { file, input } of corpus) {
  test(`fuzz regression ${file} (${input.kind ?? '?'}: ${(input.case?.mutation ?? input.http?.note ?? '').slice(0, 80)})`, async t => {
    const target = await startFuzzTarget({ api: input.http !== undefined })
    t.teardown(async () => { await target.close() })
    if (input.case !== undefined) {
      const c = caseOf(input.case)
      // An abandoned stream is replayed as abandoned: the node must end it on its own.
      for (const mode of ['memory', 'wire'] as SendMode[]) {
        const sent = await send(mode, target, c, 45_000)
        t.is(sent.hung, undefined, `${mode}: the handler ends its side`)
        t.is(sent.threw, undefined, `${mode}: the handler does not throw`)
        if (sent.abandoned !== undefined) await sent.abandoned
      }
    } else if (input.http !== undefined) {
      const port = Number(new URL(target.node.apiUrl!).port)
      const r = await sendRaw(port, httpCaseOf(input.http), 45_000)
      t.false(r.hung, 'the API answers or closes')
      t.not(r.status, 500, r.body)
    }
    await target.checkServes()
    const verified = await target.stopAndVerify()
    t.true(verified.files >= 7)
  })
}
