/** `replicant gc`: give back the space of chunks nothing references. */
import { type Cli, out, print, fmtBytes, JSON_HELP } from '../cli.js'

export function registerAdminCommands (cli: Cli): void {
  cli.program.command('gc')
    .description('delete chunks nothing references (live files, snapshots, prepared writes, writes in progress), then repack mostly dead pack files to give their space back')
    .option('--young <seconds>', 'leave chunks written in the last SECONDS (default 600) for a later run', (v) => Number(v))
    .option('--no-repack', 'only delete chunks: leave pack files as they are (their space is given back by a later gc)')
    .option('--json', JSON_HELP)
    .action(async (opts: { young?: number, repack: boolean, json?: boolean }) => {
      const r = await (await cli.client()).gc(opts.young, { repack: opts.repack })
      if (opts.json === true) return print(r)
      out(`gc: scanned ${r.scanned} chunks, deleted ${r.deleted}, kept ${r.kept} (${r.ms} ms); packs ${fmtBytes(r.disk.packBytes)}, index ${fmtBytes(r.disk.indexBytes)}`)
      // A line of its own: scripts that parse the line above keep working.
      const p = r.repack
      if (p !== undefined) out(opts.repack ? repackLine(p) : 'repack: skipped (--no-repack)')
    })
}

/**
 * What the repack did, said as it is: packs that were empty free nothing, rewritten ones free
 * their size less the live bytes copied out of them (the net figure).
 */
export function repackLine (p: { packsRewritten: number, packsRemoved: number, bytesCopied: number, bytesFreed: number }): string {
  if (p.packsRemoved === 0) {
    return p.bytesCopied > 0
      ? `repack: copied ${fmtBytes(p.bytesCopied)} of live chunks, removed no pack yet (a pack that could not be read whole is kept)`
      : 'repack: nothing to give back (no sealed pack is empty or mostly dead)'
  }
  const empty = p.packsRemoved - p.packsRewritten
  const parts: string[] = []
  if (p.packsRewritten > 0) parts.push(`rewrote ${p.packsRewritten} mostly dead pack(s), copying ${fmtBytes(p.bytesCopied)} of live chunks out`)
  if (empty > 0) parts.push(`removed ${empty} pack(s) with no live chunk`)
  const freed = p.bytesFreed > 0 ? `freed ${fmtBytes(p.bytesFreed)} of disk` : 'freed no disk space (the removed packs held no bytes)'
  return `repack: ${parts.join(', ')}; ${freed}`
}
