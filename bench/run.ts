#!/usr/bin/env node
/**
 * Benchmark entry: `node dist/bench/run.js [suite ...] [--quick] [--reps N] [--tmp DIR] [--json FILE]`.
 * With no suite named, every suite in SUITES runs, in order. A new suite is one file in bench/
 * exporting a `Suite` (see lib.ts), added to SUITES below.
 */
import '../core/polyfill.js'
import { cpus, totalmem, loadavg, tmpdir, platform, release } from 'node:os'
import { writeFile } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import { makeContext, runCleanups, fmtBytes, type Flags, type ResultTable, type Scale, type Suite } from './lib.js'
import { localIo } from './local-io.js'
import { chunking } from './chunking.js'
import { chunkBackends } from './chunk-backends.js'
import { replication } from './replication.js'
import { wannabe } from './wannabe.js'
import { minicopy } from './minicopy.js'
import { writeModes } from './write-modes.js'
import { dumps } from './dumps.js'
import { ingest } from './ingest.js'
import { webdav } from './webdav.js'
import { swarm } from './swarm.js'
import { wire } from './wire.js'

/** Every suite, in the order a full run takes them. */
const SUITES: Suite[] = [
  localIo,
  chunking,
  chunkBackends,
  replication,
  wannabe,
  minicopy,
  writeModes,
  dumps,
  ingest,
  webdav,
  wire,
  swarm
]

/**
 * Run only when named: `npm run bench -- swarm` (100 in-process nodes take minutes) and
 * `npm run bench -- wire` (three peers per repetition, Syncthing installed if missing).
 */
const OPT_IN = new Set(['swarm', 'wire'])

/** Flags that take no value (so a suite name after them is not read as their value). */
const BOOLEAN_FLAGS = new Set(['quick', 'full', 'list', 'help', 'profile'])

function usage (): string {
  return [
    'usage: node dist/bench/run.js [suite ...] [options]',
    '',
    'suites (default: all but swarm and wire, in this order):',
    ...SUITES.map(s => `  ${s.name.padEnd(16)} ${s.description}`),
    '',
    'options:',
    '  --quick          small sizes: a look in seconds, not figures to quote',
    '  --full           the sizes of the benchmark brief (1 GiB files, 10,000 small files): the',
    '                   figures docs/CHUNKING.md quotes; takes much longer than the default',
    '                   (default: standard sizes, every suite together well under 10 minutes)',
    '  --reps N         repetitions per measurement, median printed (default 3)',
    '  --tmp DIR        where temp dirs go (default: the OS temp dir); must be on the disk to measure',
    '  --json FILE      also write every result table as JSON',
    '  --list           list suites and exit',
    '',
    'suite options:',
    '  local-io:        --chunk-size BYTES[,BYTES...] (volume chunk size; default: the node\'s),',
    '                   --chunk-backend pack|level[,...] (store created with it; default: the node\'s);',
    '                   with lists, every combination runs in every repetition, compared in one table,',
    '                   --workload large|small (one of the two workloads; default both),',
    '                   --profile (no timing table: profile the node process with --cpu-prof during',
    '                   PUT and GET, print the top self-time functions)',
    '  chunk-backends:  --backends LIST from level,level-tuned,files-sync-end,files-sync-each,packs,',
    '                   store-packs (default: level,files-sync-end,packs,store-packs; all with --full)',
    '  wannabe:         --reads N (reads during the copy; 0: the copy alone), --profile (both',
    '                   nodes under --cpu-prof, window add-replica -> steady)',
    '  ingest:          --workload small|large (one of the two; default both), --profile (every',
    '                   node under --cpu-prof: top self-time functions per phase; use --reps 1)',
    '  wire:            --workload large|small (one of the two; default both); installs syncthing and',
    '                   rsync (Debian packages) when missing and root, else says which baseline is left out',
    '  swarm:           --nodes LIST (default 10,50,100; --quick 10), --mib N (volume, default 64),',
    '                   --files N (default 64), --readers N (default 80% of the nodes)',
    '  dumps:           --profile (one repetition, A and C under --cpu-prof: where the dump and the',
    '                   restore spend their time)'
  ].join('\n')
}

function parseArgs (argv: string[]): { names: string[], flags: Flags } {
  const names: string[] = []
  const raw = new Map<string, string | true>()
  const suiteNames = new Set(SUITES.map(s => s.name))
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) { names.push(a); continue }
    const eq = a.indexOf('=')
    if (eq > 0) { raw.set(a.slice(2, eq), a.slice(eq + 1)); continue }
    const name = a.slice(2)
    const next = argv[i + 1]
    if (!BOOLEAN_FLAGS.has(name) && next !== undefined && !next.startsWith('--') && !suiteNames.has(next)) {
      raw.set(name, next)
      i++
    } else {
      raw.set(name, true)
    }
  }
  const reps = raw.has('reps') ? Number(raw.get('reps')) : 3
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps must be a positive integer')
  const tmp = raw.get('tmp')
  if (raw.has('quick') && raw.has('full')) throw new Error('--quick and --full exclude each other')
  const scale: Scale = raw.has('quick') ? 'quick' : raw.has('full') ? 'full' : 'standard'
  return { names, flags: { scale, reps, tmpRoot: typeof tmp === 'string' ? tmp : tmpdir(), raw } }
}

/** 1-minute load average: other work on this shared machine shows up here. */
const loadNow = (): string => loadavg()[0].toFixed(2)

function gitCommit (): string {
  // Set when running from an exported snapshot of a commit (a tree without .git).
  if (process.env.BENCH_COMMIT !== undefined) return `${process.env.BENCH_COMMIT} (snapshot)`
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
    return head + (dirty ? ' (modified)' : '')
  } catch {
    return 'unknown'
  }
}

async function main (): Promise<void> {
  const { names, flags } = parseArgs(process.argv.slice(2))
  if (flags.raw.has('help') || flags.raw.has('list')) { process.stdout.write(usage() + '\n'); return }
  const unknown = names.filter(n => !SUITES.some(s => s.name === n))
  if (unknown.length > 0) throw new Error(`unknown suite(s): ${unknown.join(', ')}\n\n${usage()}`)
  const selected = names.length === 0 ? SUITES.filter(s => !OPT_IN.has(s.name)) : SUITES.filter(s => names.includes(s.name))

  const cpu = cpus()
  process.stdout.write([
    '# Replicant benchmarks',
    '',
    `date:     ${new Date().toISOString()}`,
    `node:     ${process.version} (${platform()} ${release()})`,
    `cpus:     ${cpu.length} x ${cpu[0]?.model ?? 'unknown'}`,
    `memory:   ${fmtBytes(totalmem())}, load average ${loadavg().map(l => l.toFixed(2)).join(' ')}`,
    `commit:   ${gitCommit()}`,
    `command:  node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trimEnd(),
    `suites:   ${selected.map(s => s.name).join(', ')}; ${flags.scale} sizes; median of ${flags.reps} run(s); temp under ${flags.tmpRoot}`,
    ''
  ].join('\n') + '\n')

  const results: ResultTable[] = []
  const started = Date.now()
  for (const suite of selected) {
    const t0 = Date.now()
    const load0 = loadNow()
    process.stdout.write(`\n## ${suite.name}: ${suite.description}\n`)
    try {
      await suite.run(makeContext(suite.name, flags, results))
    } finally {
      await runCleanups()
    }
    process.stdout.write(`\n(${suite.name} took ${((Date.now() - t0) / 1000).toFixed(0)} s; load average at start ${load0}, at end ${loadNow()})\n`)
  }
  process.stdout.write(`\nall done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  const json = flags.raw.get('json')
  if (typeof json === 'string') {
    await writeFile(json, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpu.length, argv: process.argv.slice(2), results }, null, 2) + '\n')
  }
}

let interrupted = false
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130)
    interrupted = true
    process.stderr.write(`\n${sig}: cleaning up (temp dirs, node processes)...\n`)
    void runCleanups().finally(() => process.exit(130))
  })
}

// Output piped into `head` and closed early: clean up instead of dying on EPIPE with temp dirs left.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err
  if (interrupted) return
  interrupted = true
  void runCleanups().finally(() => process.exit(0))
})

main().catch(async (err: unknown) => {
  process.stderr.write(`benchmark failed: ${(err as Error)?.stack ?? String(err)}\n`)
  await runCleanups()
  process.exit(1)
})
