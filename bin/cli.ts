/** What every command group shares: the client of the node --data names, and output helpers. */
import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { readApiInfo } from '../api/api-info.js'
import { readApiToken } from '../api/api-token.js'
import { ReplicantClient } from '../api/client.js'
import type { CopyProgress } from '../api/types.js'

export interface GlobalOptions { data: string, apiUrl?: string, token?: string, apiCa?: string }

/** A command group's view of the CLI: the program (for global options) and a client. */
export interface Cli {
  readonly program: Command
  /** --data, the node data directory. */
  dataDir (): string
  /** A client of --api-url, or of the node running on --data. */
  client (): Promise<ReplicantClient>
}

export function cliOf (program: Command): Cli {
  const opts = (): GlobalOptions => program.opts<GlobalOptions>()
  return {
    program,
    dataDir: () => opts().data,
    client: async () => {
      const { data, apiUrl, apiCa } = opts()
      // --api-url never gets the data dir's token (it may name another node, or another server),
      // and REPLICANT_TOKEN is for --api-url only (a variable left set must not break --data).
      const info = apiUrl === undefined ? await readApiInfo(data) : undefined
      const token = opts().token ?? (info !== undefined ? await readApiToken(data) : process.env.REPLICANT_TOKEN)
      const caFile = apiCa ?? info?.tlsCert
      const ca = caFile !== undefined ? await readFile(caFile) : undefined
      return new ReplicantClient(apiUrl ?? info!.url, { ...(token !== undefined ? { token } : {}), ...(ca !== undefined ? { ca } : {}) })
    }
  }
}

export function print (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/** The help of every command's `--json`: stdout gets the result as one JSON value; bars and warnings stay on stderr. */
export const JSON_HELP = 'print the result as JSON (progress and warnings stay on stderr)'

/** A command's result: the JSON value with --json, else the sentence(s) `text` writes. */
export function report (json: boolean | undefined, value: unknown, text: () => void): void {
  if (json === true) print(value)
  else text()
}

export function out (line: string): void {
  process.stdout.write(line + '\n')
}

export function fmtBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

export function bar (done: number, total: number, width = 24): string {
  const f = total === 0 ? 1 : Math.min(1, done / total)
  const n = Math.round(f * width)
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${(f * 100).toFixed(1).padStart(5)}%`
}

/** A copy's progress as `volume wait` and `status` show it. */
export function copyLine (p: CopyProgress, sep: string): string {
  return `${bar(p.bytesDone, p.bytesTotal)} ${fmtBytes(p.bytesDone)}/${fmtBytes(p.bytesTotal)}${sep}files ${p.filesDone}/${p.filesTotal}` +
    `${p.rate !== null ? `${sep}${fmtBytes(p.rate)}/s` : ''}${p.etaSeconds !== null ? `${sep}eta ${p.etaSeconds}s` : ''}`
}

/** A repeatable option's values. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v]

/**
 * Runs `attempt(false)`; if it fails with a code `questions` has and a person is at a
 * terminal, asks that question `[y/N]` and on yes runs `attempt(true)` (forced). Without a
 * terminal the failure stands (scripts must say --force themselves).
 */
export async function forcedOnYes<V> (questions: Partial<Record<string, string>>, attempt: (force: boolean) => Promise<V>): Promise<V> {
  try {
    return await attempt(false)
  } catch (err) {
    const question = questions[(err as { code?: string }).code ?? '']
    if (question === undefined || process.stdin.isTTY !== true || process.stderr.isTTY !== true) throw err
    const { createInterface } = await import('node:readline/promises')
    const rl = createInterface({ input: process.stdin, output: process.stderr })
    const answer = await rl.question(`${(err as Error).message}\n${question} [y/N] `).finally(() => { rl.close() })
    if (!/^y(es)?$/i.test(answer.trim())) throw err
    return await attempt(true)
  }
}
