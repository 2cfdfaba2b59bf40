/**
 * Findings of a fuzz run and the corpus they are kept in: every finding's input is saved
 * (seed and fast-check path, and the bytes) under test/fuzz-corpus/NAME/, and
 * test/fuzz-regressions.test.ts replays every saved input against a real node.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { gzipSync, gunzipSync } from 'node:zlib'
import type { FuzzCase } from './fuzz-mutate.js'

/** 'seed': a hand-picked input kept as a regression test, not a finding. */
export type FindingKind = 'seed' | 'crash' | 'unhandled-rejection' | 'hung' | 'handler-threw' | 'not-serving' | 'rss' | 'store' | 'http-5xx'

export interface Finding {
  kind: FindingKind
  message: string
  /** The case in flight (for a run-wide finding, one of the batch in flight). */
  input?: SavedInput
}

/** A saved input: enough to replay it alone (bytes) or with its batch (seed + path). */
export interface SavedInput {
  name: string
  seed: number
  /** fast-check path of the batch: fc.check(prop, { seed, path }) regenerates it. */
  path: string
  /** Position of the case in its batch. */
  index: number
  mode?: string
  /** A protocol case, or an HTTP request (fuzz-http.ts). */
  case?: { protocol: string, identity: string, bytes: string, gzip?: boolean, frames: number, cuts: number[], delays: number[], end: string, mutation: string }
  http?: { raw: string, note: string, cuts: number[], delays: number[], reset: boolean }
  kind?: FindingKind
  message?: string
}

/** Inputs over this many bytes are kept gzipped (they are mostly padding). */
const GZIP_OVER = 16 * 1024

export function saveable (c: FuzzCase): NonNullable<SavedInput['case']> {
  const gzip = c.bytes.byteLength > GZIP_OVER
  return { protocol: c.protocol, identity: c.identity, bytes: (gzip ? gzipSync(c.bytes) : Buffer.from(c.bytes)).toString('base64'), ...(gzip ? { gzip } : {}), frames: c.frames, cuts: c.cuts, delays: c.delays, end: c.end, mutation: c.mutation }
}

export function caseOf (s: NonNullable<SavedInput['case']>): FuzzCase {
  const raw = Buffer.from(s.bytes, 'base64')
  return { ...s, identity: s.identity as FuzzCase['identity'], end: s.end as FuzzCase['end'], bytes: new Uint8Array(s.gzip === true ? gunzipSync(raw) : raw) }
}

/** Writes a finding's input to DIR/NAME/<kind>-<hash>.json (the same input is kept once). */
export async function saveFinding (dir: string, f: Finding): Promise<string | undefined> {
  if (f.input === undefined) return undefined
  const input: SavedInput = { ...f.input, kind: f.kind, message: f.message }
  const body = JSON.stringify(input, null, 1)
  const id = createHash('sha256').update(JSON.stringify(input.case ?? input.http)).digest('hex').slice(0, 12)
  const out = join(dir, input.name, `${f.kind}-${id}.json`)
  await mkdir(join(dir, input.name), { recursive: true })
  await writeFile(out, body + '\n')
  return out
}

/** Every saved input under `dir` (test/fuzz-corpus), by protocol name. */
export async function loadCorpus (dir: string): Promise<Array<{ file: string, input: SavedInput }>> {
  const out: Array<{ file: string, input: SavedInput }> = []
  const names = await readdir(dir).catch(() => [] as string[])
  for (const name of names.sort()) {
    const files = await readdir(join(dir, name)).catch(() => [] as string[])
    for (const f of files.filter(x => x.endsWith('.json')).sort()) {
      out.push({ file: join(name, f), input: JSON.parse(await readFile(join(dir, name, f), 'utf8')) as SavedInput })
    }
  }
  return out
}
