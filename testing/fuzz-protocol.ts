/** The fuzzer of one wire protocol: cases from fuzz-mutate.ts, sent by fuzz-send.ts. */
import { fuzzCase, type FuzzCase, type Identity } from './fuzz-mutate.js'
import { send } from './fuzz-send.js'
import { saveable } from './fuzz-findings.js'
import type { FuzzProtocol } from './fuzz-messages.js'
import type { FuzzTarget } from './fuzz-target.js'
import type { Fuzzer } from './fuzz-run.js'

export function protocolFuzzer (name: FuzzProtocol, target: FuzzTarget, identities?: Identity[]): Fuzzer<FuzzCase> {
  return {
    name,
    arb: fuzzCase(name, target.ctx, identities),
    units: c => c.frames,
    saved: c => ({ case: saveable(c) }),
    run: async (c, mode, opts) => {
      const sent = await send(mode, target, opts.abandonOk || c.end !== 'abandon' ? c : { ...c, end: 'reset' }, opts.hungMs)
      if (sent.hung !== undefined) return { problem: { kind: 'hung', message: sent.hung } }
      if (sent.threw !== undefined) return { problem: { kind: 'handler-threw', message: sent.threw } }
      return sent.abandoned !== undefined ? { abandoned: sent.abandoned } : {}
    }
  }
}
