/**
 * `npm run chaos -- --seed S --schedules N`: randomized reliability runs (node/chaos.ts).
 * Exit code 0 when every schedule passed, 1 otherwise; failing schedules print their replay
 * command, e.g. `npm run chaos -- --seed S --only 7 --verbose`.
 */
import '../core/polyfill.js'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { mkdir, access, constants } from 'node:fs/promises'
import { runChaos, formatSummary } from '../testing/chaos.js'

const USAGE = `usage: npm run chaos -- [--seed S] [--schedules N] [--from I | --only I] [--nodes MIN-MAX] [--steps MIN-MAX] [--kills MIN-MAX]
                        [--modes active,all] [--max-rss MIB] [--converge-timeout SECONDS] [--verbose] [--bail] [--json] [--dir DIR]
  --seed S              seed of the whole run (default: random, printed); schedule I of seed S is
                        always planned the same way
  --schedules N         how many schedules (default 10), indexes from --from (default 0)
  --only I              just schedule I (replay of a failure: same as --from I --schedules 1)
  --modes LIST          write modes the schedules may use (default active,all)
  --max-rss MIB         a node past this RSS fails its schedule (default 512)
  --nodes MIN-MAX       nodes per schedule (default 3-5)
  --steps MIN-MAX       steps per schedule (default 8-14; more are added until the kill points are planned)
  --kills MIN-MAX       kill points per schedule: SIGKILLs, power losses, crash points (default 8-12)
  --parallel N          schedules run at once (default 1); each on its own topology and ports
  --converge-timeout S  a schedule that is not steady this long after healing fails (default 120)
  --verbose             print each schedule's plan and every step as it runs
  --bail                stop at the first failing schedule
  --json                print the summary as JSON at the end
  --dir DIR             where schedule dirs go (default: the OS temp dir); failed ones are kept`

function range (s: string | undefined, def: [number, number]): [number, number] {
  if (s === undefined) return def
  const m = /^(\d+)(?:-(\d+))?$/.exec(s)
  if (m === null) throw new Error(`expected MIN-MAX, got ${s}`)
  return [Number(m[1]), Number(m[2] ?? m[1])]
}

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    schedules: { type: 'string' },
    from: { type: 'string' },
    only: { type: 'string' },
    modes: { type: 'string' },
    'max-rss': { type: 'string' },
    nodes: { type: 'string' },
    steps: { type: 'string' },
    kills: { type: 'string' },
    parallel: { type: 'string' },
    'converge-timeout': { type: 'string' },
    verbose: { type: 'boolean' },
    bail: { type: 'boolean' },
    json: { type: 'boolean' },
    dir: { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (values.help === true) {
  process.stdout.write(USAGE + '\n')
  process.exit(0)
}
const seed = values.seed ?? randomBytes(4).toString('hex')
const [minNodes, maxNodes] = range(values.nodes, [3, 5])
const [minSteps, maxSteps] = range(values.steps, [8, 14])
const [minKills, maxKills] = range(values.kills, [8, 12])
const parallel = Number(values.parallel ?? 1)
const schedules = values.only !== undefined ? 1 : Number(values.schedules ?? 10)
const from = Number(values.only ?? values.from ?? 0)
const modes = (values.modes ?? 'active,all').split(',').map(m => m.trim())
const maxRss = Number(values['max-rss'] ?? 512)
if (modes.some(m => m !== 'active' && m !== 'all') || !(maxRss > 0) || !Number.isInteger(schedules) || schedules < 1 || !Number.isInteger(from) || from < 0 || minNodes < 2 || maxNodes < minNodes || minSteps < 2 || maxSteps < minSteps || maxKills < minKills || !Number.isInteger(parallel) || parallel < 1) {
  process.stderr.write(USAGE + '\n')
  process.exit(2)
}
if (values.dir !== undefined) {
  // Made if missing (a run's dirs go under it); one line, not a stack, when it cannot be used.
  try {
    await mkdir(values.dir, { recursive: true })
    await access(values.dir, constants.W_OK)
  } catch (err) {
    process.stderr.write(`chaos: --dir ${values.dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`)
    process.exit(2)
  }
}
// Interrupted: exiting runs the topology's exit hook, which kills every node still running.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { process.stdout.write(`${sig}: stopping\n`); process.exit(130) })
process.stdout.write(`chaos: seed ${seed}, schedules ${from}..${from + schedules - 1}, nodes ${minNodes}-${maxNodes}, steps ${minSteps}-${maxSteps}, kill points ${minKills}-${maxKills}, parallel ${parallel}, modes ${modes.join(',')}, RSS bound ${maxRss} MiB (node ${process.version})\n`)
const summary = await runChaos({
  seed,
  schedules,
  from,
  minNodes,
  maxNodes,
  minSteps,
  maxSteps,
  minKills,
  maxKills,
  parallel,
  modes: modes as Array<'active' | 'all'>,
  maxRssBytes: maxRss * 2 ** 20,
  verbose: values.verbose === true,
  bail: values.bail === true,
  baseDir: values.dir,
  convergeTimeoutMs: Number(values['converge-timeout'] ?? 120) * 1000,
  log: line => { process.stdout.write(line + '\n') }
})
process.stdout.write(formatSummary(summary) + '\n')
if (values.json === true) {
  const { results, ...rest } = summary
  process.stdout.write(JSON.stringify({ ...rest, results: results.map(r => ({ ...r, violations: r.violations.length })) }) + '\n')
}
process.exit(summary.failed === 0 ? 0 : 1)
