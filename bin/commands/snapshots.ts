/** `replicant snapshot ...`, `dump` and `restore`: frozen views of a volume and portable archives of them. */
import { createReadStream, createWriteStream } from 'node:fs'
import { stat, rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { renameDurably } from '../../core/durable.js'
import { type Cli, print, out, fmtBytes, report, JSON_HELP } from '../cli.js'
import { Progress, counted, progressShown } from '../progress.js'

export function registerSnapshotCommands (cli: Cli): void {
  const { program } = cli
  const snapshot = program.command('snapshot').description('frozen, read-only views of a volume')
  snapshot.command('create <volume> [name]')
    .description('take a snapshot (constant time: nothing is copied; later writes keep the versions it shows)')
    .option('--json', JSON_HELP)
    .action(async (vol: string, name: string | undefined, opts: { json?: boolean }) => {
      const s = await (await cli.client()).createSnapshot(vol, name)
      report(opts.json, s, () => { out(`snapshot ${s.name} of ${vol} at seq ${s.seq}`) })
    })
  snapshot.command('list <volume>')
    .option('--json', 'print JSON')
    .action(async (vol: string, opts: { json?: boolean }) => {
      const { snapshots } = await (await cli.client()).listSnapshots(vol)
      if (opts.json === true) return print(snapshots)
      for (const s of snapshots) out(`${s.name}\tseq ${s.seq}\t${new Date(s.createdAt).toISOString()}`)
    })
  snapshot.command('delete <volume> <name>')
    .option('--json', JSON_HELP)
    .action(async (vol: string, name: string, opts: { json?: boolean }) => {
      const r = await (await cli.client()).deleteSnapshot(vol, name)
      report(opts.json, { volume: vol, snapshot: name, ...r }, () => { out(`deleted snapshot ${name} of ${vol} (${r.versionsReleased} kept version(s) released)`) })
    })

  program.command('dump <volume>')
    .description('write a portable, checksummed archive of a snapshot (full, or incremental with --since)')
    .requiredOption('--snapshot <name>', 'the snapshot to dump')
    .option('--since <snapshot>', 'incremental: only what changed since this earlier snapshot')
    .requiredOption('-o, --output <file>', 'the dump file (written atomically)')
    .option('--json', JSON_HELP)
    .action(async (vol: string, opts: { snapshot: string, since?: string, output: string, json?: boolean }) => {
      const tmp = `${opts.output}.replicant-part`
      const c = await cli.client()
      // A full dump holds about the snapshot's file bytes (each chunk once, plus records): the
      // bar's total is that estimate (`~`). An incremental one has no total known beforehand.
      const estimate = opts.since === undefined && progressShown()
        ? (await c.list(vol, undefined, { snapshot: opts.snapshot })).files.reduce((n, f) => n + f.size, 0)
        : undefined
      const file = createWriteStream(tmp)
      const progress = new Progress(() => ({ label: `dump ${vol}`, bytesDone: file.bytesWritten, ...(estimate !== undefined ? { bytesTotal: estimate, estimated: true } : {}) }))
      try {
        await c.dump(vol, opts.snapshot, file, opts.since)
        progress.stop()
        // Synced before it takes the final name, and the name synced after: a crash never
        // leaves a torn file under it, nor loses the rename.
        await renameDurably(tmp, opts.output)
      } catch (err) {
        progress.stop(false)
        await rm(tmp, { force: true })
        throw err
      }
      const { size } = await stat(opts.output)
      const result = { volume: vol, snapshot: opts.snapshot, since: opts.since ?? null, output: opts.output, bytes: size }
      if (opts.json === true) return print(result)
      out(`dumped ${vol} snapshot ${opts.snapshot}${opts.since !== undefined ? ` since ${opts.since}` : ''} to ${opts.output} (${fmtBytes(size)})`)
    })

  program.command('restore <file>')
    .description('restore a dump: a full one creates the volume (same id), an incremental one applies on its base')
    .option('--json', JSON_HELP)
    .action(async (file: string, opts: { json?: boolean }) => {
      const st = await stat(file)
      // The bar counts the upload; the node verifies the whole dump before it applies any of it.
      let sent = 0
      const progress = new Progress(() => ({ label: `restore ${file}`, bytesDone: sent, bytesTotal: st.size, ...(sent >= st.size ? { note: 'verifying and applying on the node' } : {}) }))
      const body = Readable.from(counted(createReadStream(file), (n) => { sent += n; progress.update() }))
      const r = await (await cli.client()).restore(body, st.size).finally(() => { progress.stop() })
      if (opts.json === true) return print(r)
      out(`restored ${r.volume} (id ${r.volumeId}) ${r.incremental ? 'incremental ' : ''}snapshot ${r.snapshot} at seq ${r.seq}: ${r.files} files, ${r.deletes} deletes, ${r.chunks} chunks`)
    })
}
