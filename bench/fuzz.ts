/**
 * `npm run fuzz -- --protocol NAME --frames N [--seed S] [--http-requests N]`: structure-aware
 * fuzzing of one protocol handler (index, chunk, notify, control, write) or of the HTTP API
 * (http) on a real node (testing/fuzz-*.ts, docs/FUZZING.md). Exit code 0 without findings.
 */
import '../core/polyfill.js'
import { parseArgs } from 'node:util'
import { randomInt } from 'node:crypto'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFuzzTarget } from '../testing/fuzz-target.js'
import { protocolFuzzer } from '../testing/fuzz-protocol.js'
import { httpFuzzer } from '../testing/fuzz-http.js'
import { runFuzz, formatSummary } from '../testing/fuzz-run.js'
import { FUZZ_PROTOCOLS, type FuzzProtocol } from '../testing/fuzz-messages.js'
import type { Identity } from '../testing/fuzz-mutate.js'

const USAGE = `usage: npm run fuzz -- --protocol NAME [--frames N] [--seed S] [--http-requests N] [--mode mixed|wire|memory]
                       [--as stranger|member|both] [--batch N] [--concurrency N] [--check-every N] [--max-rss MIB] [--token T] [--seconds N] [--corpus DIR] [--bail] [--json]
  --protocol NAME     index, chunk, notify, control, write, or http
  --frames N          frames to send (default 100000); for http, requests (also --http-requests)
  --seed S            fast-check seed (default: random, printed); a seed always draws the same cases
  --mode M            mixed (default: every 10th batch over the wire, the rest in memory), wire or memory
                      (http: always over a socket)
  --as WHO            the sending identity: a stranger, a member of the volume, or both (default)
  --batch N           cases drawn per fast-check run (default 16)
  --concurrency N     cases in flight at once (default 32)
  --check-every N     frames between checks that the member still reads a file (default 20000)
  --max-rss MIB       the process's RSS past this is a finding (default 1024)
  --token T           HTTP API token sent as Authorization: Bearer (http only; default REPLICANT_TOKEN)
  --corpus DIR        where found inputs are saved (default test/fuzz-corpus)
  --seconds N         stop sending after N seconds, whatever count was reached
  --bail              stop at the first finding`

const { values } = parseArgs({
  options: {
    protocol: { type: 'string' }, frames: { type: 'string' }, seed: { type: 'string' }, 'http-requests': { type: 'string' },
    mode: { type: 'string' }, as: { type: 'string' }, batch: { type: 'string' }, 'check-every': { type: 'string' }, concurrency: { type: 'string' }, seconds: { type: 'string' },
    'max-rss': { type: 'string' }, token: { type: 'string' }, corpus: { type: 'string' }, bail: { type: 'boolean' }, json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }
})
const name = values.protocol
if (values.help === true || name === undefined || (name !== 'http' && !FUZZ_PROTOCOLS.includes(name as FuzzProtocol))) {
  process.stdout.write(USAGE + '\n')
  process.exit(values.help === true ? 0 : 2)
}
const num = (s: string | undefined, def: number): number => {
  if (s === undefined) return def
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`expected a whole number, got ${s}`)
  return n
}
const seed = num(values.seed, randomInt(2 ** 31))
const frames = num(name === 'http' ? values['http-requests'] ?? values.frames : values.frames, 100_000)
const mode = values.mode ?? 'mixed'
const as = values.as ?? 'both'
const identities: Identity[] = as === 'both' ? ['stranger', 'member'] : [as as Identity]
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const corpus = values.corpus ?? join(root, 'test', 'fuzz-corpus')
const token = values.token ?? process.env.REPLICANT_TOKEN

process.stdout.write(`fuzz ${name}: ${frames} ${name === 'http' ? 'requests' : 'frames'}, seed ${seed}, mode ${mode}, as ${as}\n`)
const target = await startFuzzTarget({ api: name === 'http' })
try {
  const run = {
    frames, seed, wireEvery: mode === 'wire' || name === 'http' ? 1 : mode === 'memory' ? 0 : 10, concurrency: num(values.concurrency, 32), batch: num(values.batch, 16),
    checkEvery: num(values['check-every'], 20_000), maxRssMiB: num(values['max-rss'], 1024), corpusDir: corpus, bail: values.bail === true, ...(values.seconds !== undefined ? { maxSeconds: num(values.seconds, 0) } : {}),
    log: (line: string) => { process.stdout.write(line + '\n') }
  }
  const summary = name === 'http'
    ? await runFuzz(target, httpFuzzer(target, { ...(token !== undefined ? { token } : {}) }), run)
    : await runFuzz(target, protocolFuzzer(name as FuzzProtocol, target, identities), run)
  process.stdout.write(formatSummary(summary) + '\n')
  if (values.json === true) process.stdout.write(JSON.stringify(summary, null, 1) + '\n')
  process.exitCode = summary.findings.length === 0 ? 0 : 1
} finally {
  await target.close()
}
