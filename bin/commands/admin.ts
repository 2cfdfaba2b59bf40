/** `replicant gc`: give back the space of chunks nothing references. */
import { type Cli, out, fmtBytes } from '../cli.js'

export function registerAdminCommands (cli: Cli): void {
  cli.program.command('gc')
    .description('delete chunks nothing references (live files, snapshots, prepared writes, writes in progress), then repack mostly dead pack files to give their space back')
    .option('--young <seconds>', 'leave chunks written in the last SECONDS (default 600) for a later run', (v) => Number(v))
    .option('--no-repack', 'only delete chunks: leave pack files as they are (their space is given back by a later gc)')
    .action(async (opts: { young?: number, repack: boolean }) => {
      const r = await (await cli.client()).gc(opts.young, { repack: opts.repack })
      out(`gc: scanned ${r.scanned} chunks, deleted ${r.deleted}, kept ${r.kept} (${r.ms} ms); packs ${fmtBytes(r.disk.packBytes)}, index ${fmtBytes(r.disk.indexBytes)}`)
      // A line of its own: scripts that parse the line above keep working.
      const p = r.repack
      if (p !== undefined) out(`repack: rewrote ${p.packsRewritten} packs, removed ${p.packsRemoved}, copied ${fmtBytes(p.bytesCopied)}, freed ${fmtBytes(p.bytesFreed)}`)
    })
}
