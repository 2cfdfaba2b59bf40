#!/usr/bin/env node
/**
 * `npm run swarm -- --nodes N [--readers N] [--mib N] [--files N] [--timeout S] [--json FILE]`: one swarm
 * (testing/swarm.ts) of N in-process nodes, its figures printed as it goes and as one table;
 * every node is stopped and the temp dir removed at the end and on failure (--timeout S, default
 * 420: the reads stop then and the figures say how many readers finished).
 */
import '../core/polyfill.js'
import { writeFile } from 'node:fs/promises'
import { runSwarm } from '../testing/swarm.js'
import { SWARM_COLUMNS, swarmRow } from './swarm.js'

function arg (name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

async function main (): Promise<void> {
  const nodes = Number(arg('nodes') ?? 100)
  const mib = Number(arg('mib') ?? 8)
  const files = Number(arg('files') ?? 64)
  const readers = arg('readers')
  const say = (line: string): void => { process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`) }
  say(`swarm of ${nodes} nodes, ${mib} MiB in ${files} files`)
  // Ends its reads by then and reports what it has (a stall is a result): under a 10-minute bench limit with start and teardown.
  const timeoutMs = Number(arg('timeout') ?? 420) * 1000
  const r = await runSwarm({ nodes, files, fileBytes: Math.round(mib * 1024 * 1024 / files), log: say, timeoutMs, ...(readers !== undefined ? { readers: Number(readers) } : {}) })
  const row = swarmRow(r)
  for (let i = 0; i < SWARM_COLUMNS.length; i++) say(`${SWARM_COLUMNS[i].padEnd(28)} ${row[i]}`)
  say(`served by holder (KiB): ${Object.entries(r.served).sort((a, b) => b[1] - a[1]).map(([n, b]) => `${n} ${(b / 1024).toFixed(0)}`).join(', ')}`)
  const json = arg('json')
  if (json !== undefined) await writeFile(json, JSON.stringify(r, null, 2) + '\n')
}

main().then(() => { process.exit(0) }, (err: unknown) => {
  process.stderr.write(`swarm failed: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(1)
})
