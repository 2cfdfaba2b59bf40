#!/usr/bin/env node
import '../core/polyfill.js'
import { createReadStream, createWriteStream } from 'node:fs'
import { stat, rename, rm, open } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { Command, Option } from 'commander'
import { DEFAULTS } from '../config/defaults.js'
import { readApiInfo, VERSION } from '../api/api-info.js'
import { ReplicantClient } from '../api/client.js'
import { isReplicantError } from '../core/errors.js'
import { createInterface } from 'node:readline'
import type { CopyOffer } from '../replication/membership.js'

const program = new Command()
program
  .name('replicant')
  .description('Peer-to-peer volume replication over libp2p')
  .version(VERSION)
  .option('--data <dir>', 'node data directory', DEFAULTS.dataDir)
  .option('--api-url <url>', 'URL of a running node\'s HTTP API (default: read from --data)')
  .showHelpAfterError()

async function client (): Promise<ReplicantClient> {
  const opts = program.opts<{ data: string, apiUrl?: string }>()
  if (opts.apiUrl !== undefined) return new ReplicantClient(opts.apiUrl)
  return new ReplicantClient((await readApiInfo(opts.data)).url)
}

function print (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

function fmtBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v]

/** `start --confirm-copy`: each full copy waits for a y/n line on stdin, one question at a time. */
function confirmOnStdin (): (offer: CopyOffer) => Promise<boolean> {
  const rl = createInterface({ input: process.stdin, terminal: false })
  const lines: string[] = []
  const waiters: Array<(line: string) => void> = []
  rl.on('line', (line) => { const w = waiters.shift(); if (w !== undefined) w(line); else lines.push(line) })
  rl.on('close', () => { for (const w of waiters.splice(0)) w('') })
  let queue: Promise<unknown> = Promise.resolve()
  return async (offer) => {
    const ask = queue.then(async () => {
      const size = offer.files !== null && offer.bytes !== null ? `${offer.files} files, ${fmtBytes(offer.bytes)}` : 'size unknown'
      process.stdout.write(`confirm-copy: full copy of volume ${offer.volume} (id ${offer.volumeId}, ${size}) from ${offer.peer} onto this node: ${offer.why}. Proceed? [y/N] \n`)
      const line = lines.shift() ?? await new Promise<string>(resolve => waiters.push(resolve))
      const yes = /^y(es)?$/i.test(line.trim())
      process.stdout.write(`confirm-copy: ${yes ? 'copying' : 'refused; the volume stays offline on this node'} ${offer.volume}\n`)
      return yes
    })
    queue = ask.catch(() => {})
    return await ask
  }
}

function bar (done: number, total: number, width = 24): string {
  const f = total === 0 ? 1 : Math.min(1, done / total)
  const n = Math.round(f * width)
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${(f * 100).toFixed(1).padStart(5)}%`
}

program.command('init')
  .description('create a node identity and an empty store in --data')
  .action(async () => {
    const { data } = program.opts<{ data: string }>()
    // Node modules (libp2p, level) load only for init and start: client commands start fast.
    const { loadOrCreateIdentity } = await import('../node/identity.js')
    const { Store } = await import('../store/store.js')
    const id = await loadOrCreateIdentity(data)
    const store = await Store.open(data)
    await store.close()
    process.stdout.write(`${id.created ? 'initialised' : 'already initialised'} ${data}\npeer id: ${id.peerId.toString()}\n`)
  })

program.command('start')
  .description('start a node (initialising --data if needed) and its local HTTP API')
  .option('--listen <multiaddr>', 'libp2p listen address (repeatable)', collect)
  .option('--join <multiaddr>', 'peer to dial at start, ending in /p2p/<peer id> (repeatable); remembered and redialled', collect)
  .addOption(new Option('--api <host:port>', 'local HTTP API address').default(`${DEFAULTS.apiHost}:${DEFAULTS.apiPort}`))
  .option('--http <host:port>', 'alias of --api')
  .option('--confirm-copy', 'ask (on stdin) before any full copy onto this node, showing the volume id and size')
  .option('--no-copy', 'refuse every full copy onto this node; such volumes stay offline here')
  .option('--discard-local [volumes...]', 'a local replica whose volume id differs from its members\' is deleted and fully recopied (all volumes, or those named); the only option that deletes data')
  .option('--grace <seconds>', 'a member unreachable this long starts a new generation on the others', (v) => Number(v))
  .option('--prepare-timeout <seconds>', 'all mode: how long a write waits for every member to prepare (default 30)', (v) => Number(v))
  .option('--prepared-expiry <seconds>', 'all mode: an undecided prepared write is resolved with its coordinator after this long (default 60)', (v) => Number(v))
  .option('--testing', 'a node for tests and chaos runs: enables the fault routes (/v1/faults/*) and REPLICANT_FAULTS')
  .action(async (opts: { listen?: string[], join?: string[], api: string, http?: string, confirmCopy?: boolean, copy: boolean, discardLocal?: boolean | string[], grace?: number, prepareTimeout?: number, preparedExpiry?: number, testing?: boolean }) => {
    const { data } = program.opts<{ data: string }>()
    if (opts.grace !== undefined && !(opts.grace > 0)) throw new Error('--grace takes a number of seconds above 0')
    const approveCopy = opts.copy === false
      ? async () => false
      : opts.confirmCopy === true ? confirmOnStdin() : undefined
    const { ReplicantNode } = await import('../node/replicant-node.js')
    const node = await ReplicantNode.start({
      dataDir: data,
      listen: opts.listen,
      api: opts.http ?? opts.api,
      join: opts.join,
      ...(approveCopy !== undefined ? { approveCopy } : {}),
      ...(opts.discardLocal !== undefined ? { discardLocal: opts.discardLocal } : {}),
      ...(opts.grace !== undefined ? { graceMs: opts.grace * 1000 } : {}),
      ...(opts.prepareTimeout !== undefined && opts.prepareTimeout > 0 ? { prepareTimeoutMs: opts.prepareTimeout * 1000 } : {}),
      ...(opts.preparedExpiry !== undefined && opts.preparedExpiry > 0 ? { preparedExpiryMs: opts.preparedExpiry * 1000 } : {}),
      ...(opts.testing === true ? { testing: true } : {}),
      report: (line) => { process.stdout.write(line + '\n') }
    })
    process.stdout.write(`replicant ${VERSION} node started\npeer id: ${node.peerId}\n`)
    for (const ma of node.multiaddrs()) process.stdout.write(`listening: ${ma}\n`)
    process.stdout.write(`api: ${node.apiUrl}\n`)
    if (node.store.foundDirty.length > 0) {
      process.stdout.write(`warning: volumes not shut down cleanly: ${node.store.foundDirty.join(', ')}\n`)
    }
    let stopping = false
    const shutdown = (signal: string): void => {
      if (stopping) return
      stopping = true
      process.stdout.write(`${signal}: stopping\n`)
      node.stop().then(() => process.exit(0), (err) => { process.stderr.write(`stop failed: ${String(err)}\n`); process.exit(1) })
    }
    process.on('SIGINT', () => shutdown('SIGINT'))
    process.on('SIGTERM', () => shutdown('SIGTERM'))
  })

const volume = program.command('volume').description('create and inspect volumes')
volume.command('create <name>')
  .description('create a volume; this node and the --replicas peers are its members')
  .option('--replicas <peerids>', 'comma-separated peer ids of the other members (`self` allowed)')
  .addOption(new Option('--write-mode <mode>', 'write mode').choices(['all', 'active']).default('active'))
  .option('--chunk-size <bytes>', 'chunk size, a power of two from 4096 to 1048576', (v) => Number(v))
  .action(async (name: string, opts: { writeMode: string, chunkSize?: number, replicas?: string }) => {
    const vol = await (await client()).createVolume({
      name,
      writeMode: opts.writeMode,
      ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
      ...(opts.replicas !== undefined ? { replicas: opts.replicas.split(',').map(s => s.trim()).filter(s => s !== '') } : {})
    })
    process.stdout.write(`created volume ${vol.name} (id ${vol.id}, generation ${vol.generation}, write mode ${vol.writeMode})\n`)
    for (const a of vol.announce ?? []) {
      process.stdout.write(`  member ${a.peerId}: ${a.status === 'pending' ? 'not reachable now; will be created when it is next seen' : a.status}${a.error !== undefined ? ` (${a.error})` : ''}\n`)
    }
  })
volume.command('add-replica <name> <peerid>')
  .description('add a member online; it serves reads at once (a wannabe) while a background copy fills it')
  .action(async (name: string, peer: string) => {
    const v = await (await client()).addReplica(name, peer)
    process.stdout.write(`volume ${v.name}: added ${peer}; generation ${v.generation}, ${v.members.length} members\n`)
    for (const a of v.announce ?? []) {
      process.stdout.write(`  member ${a.peerId}: ${a.status === 'pending' ? 'not reachable now; will learn it when next seen' : a.status}${a.error !== undefined ? ` (${a.error})` : ''}\n`)
    }
  })

volume.command('remove-replica <name> <peerid>')
  .description('remove a member online; the others go on at a new generation, the removed node stops serving the volume')
  .action(async (name: string, peer: string) => {
    const v = await (await client()).removeReplica(name, peer)
    process.stdout.write(`volume ${v.name}: removed ${peer}; generation ${v.generation}, ${v.members.length} members\n`)
    for (const a of v.announce ?? []) {
      process.stdout.write(`  ${a.peerId}: ${a.status === 'pending' ? 'not reachable now; will learn it when next seen' : a.status}${a.error !== undefined ? ` (${a.error})` : ''}\n`)
    }
  })

volume.command('set <name>')
  .description('change a volume setting on every member (a new generation)')
  .addOption(new Option('--write-mode <mode>', 'all: acknowledged once every member stored it; active: once this member did').choices(['all', 'active']))
  .action(async (name: string, opts: { writeMode?: string }) => {
    if (opts.writeMode === undefined) throw new Error('nothing to set: give --write-mode all|active')
    const v = await (await client()).setWriteMode(name, opts.writeMode)
    process.stdout.write(`volume ${v.name}: write mode ${v.writeMode}, generation ${v.generation}\n`)
  })

volume.command('compact-log <name>')
  .description('purge tombstones every other member has applied (or up to --upto SEQ); members further behind then get a full copy')
  .option('--upto <seq>', 'purge up to this sequence number, even if a member has not applied it', (v) => Number(v))
  .action(async (name: string, opts: { upto?: number }) => {
    const r = await (await client()).compactLog(name, opts.upto)
    process.stdout.write(`volume ${name}: purged ${r.purged} tombstone(s); change log complete from seq ${r.floor} (safe point ${r.safeUpto})\n`)
  })

volume.command('move <name>')
  .description('move a replica online: add --to (serves at once), wait until it is steady, remove --from; run again to resume')
  .requiredOption('--from <peerid>', 'the member to move away from')
  .requiredOption('--to <peerid>', 'the node to move to')
  .option('--abandon', 'give up an interrupted move: remove --to, the volume stays as it was on --from')
  .action(async (name: string, opts: { from: string, to: string, abandon?: boolean }) => {
    const tty = process.stderr.isTTY === true
    let lastLine = ''
    const r = await (await client()).move(name, { from: opts.from, to: opts.to, abandon: opts.abandon === true }, (p) => {
      const pr = p.progress
      const line = p.phase === 'copying' && pr !== null && pr !== undefined && typeof pr.bytesTotal === 'number'
        ? `move ${name}: copying to ${opts.to.slice(-8)} ${bar(pr.bytesDone, pr.bytesTotal)} files ${pr.filesDone}/${pr.filesTotal}`
        : `move ${name}: ${p.phase}${p.state !== undefined ? ` (${opts.to.slice(-8)} is ${p.state})` : ''}`
      if (line === lastLine) return
      if (tty) process.stderr.write(`\r${line.padEnd(lastLine.length)}`)
      else process.stderr.write(line + '\n')
      lastLine = line
    })
    if (tty) process.stderr.write('\n')
    process.stdout.write(`volume ${name}: move ${r.phase}; members ${r.members.join(', ')}, generation ${r.generation}\n`)
  })

volume.command('wait <name>')
  .description('wait until this node holds the volume in the given state, showing progress')
  .option('--steady', 'wait for the steady state (the default)')
  .option('--timeout <seconds>', 'give up after this long (exit 2)', (v) => Number(v))
  .action(async (name: string, opts: { steady?: boolean, timeout?: number }) => {
    const c = await client()
    const started = Date.now()
    const tty = process.stderr.isTTY === true
    let lastLine = ''
    while (true) {
      const v = await c.volumeInfo(name)
      if (v.state === 'steady') {
        if (tty) process.stderr.write('\n')
        process.stdout.write(`volume ${name} is steady (${v.files} files, ${fmtBytes(v.bytes)})\n`)
        return
      }
      const p = v.progress
      const line = p === null || p === undefined
        ? `${name}: ${v.state}, waiting for the index`
        : `${name}: ${v.state} ${bar(p.bytesDone, p.bytesTotal)} ${fmtBytes(p.bytesDone)}/${fmtBytes(p.bytesTotal)} files ${p.filesDone}/${p.filesTotal}` +
          `${p.rate !== null ? ` ${fmtBytes(p.rate)}/s` : ''}${p.etaSeconds !== null ? ` eta ${p.etaSeconds}s` : ''}`
      if (tty) process.stderr.write(`\r${line.padEnd(lastLine.length)}`)
      else if (line !== lastLine) process.stderr.write(line + '\n')
      lastLine = line
      if (opts.timeout !== undefined && Date.now() - started > opts.timeout * 1000) {
        if (tty) process.stderr.write('\n')
        process.stderr.write(`replicant: volume ${name} not steady after ${opts.timeout}s [TIMEOUT]\n`)
        process.exit(2)
      }
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  })

volume.command('list')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const { volumes } = await (await client()).listVolumes()
    if (opts.json === true) return print(volumes)
    for (const v of volumes) process.stdout.write(`${v.name}\t${v.id}\tgen ${v.generation}\t${v.writeMode}\t${v.members.length} member(s)\n`)
  })
volume.command('info <name>')
  .option('--json', 'print JSON')
  .action(async (name: string, opts: { json?: boolean }) => {
    const v = await (await client()).volumeInfo(name)
    if (opts.json === true) return print(v)
    process.stdout.write([
      `name:        ${v.name}`, `id:          ${v.id}`, `generation:  ${v.generation}`, `write mode:  ${v.writeMode}`,
      `chunk size:  ${fmtBytes(v.chunkSize)}`, `members:     ${v.members.join(', ')}`, `sequence:    ${v.seq}`,
      `files:       ${v.files}`, `bytes:       ${v.bytes} (${fmtBytes(v.bytes)})`, `state:       ${v.state}`,
      ...(v.progress !== null && v.progress !== undefined ? [`progress:    ${fmtBytes(v.progress.bytesDone)} of ${fmtBytes(v.progress.bytesTotal)}, files ${v.progress.filesDone} of ${v.progress.filesTotal}`] : [])
    ].join('\n') + '\n')
  })

program.command('put <volume> <localfile> <path>')
  .description('store LOCALFILE (or - for stdin) at PATH in VOLUME')
  .option('--mode <octal>', 'file mode (default: the local file\'s)')
  .action(async (vol: string, local: string, path: string, opts: { mode?: string }) => {
    const c = await client()
    let rec
    if (local === '-') {
      rec = await c.put(vol, path, process.stdin, { mode: opts.mode !== undefined ? parseInt(opts.mode, 8) : undefined })
    } else {
      const st = await stat(local)
      if (!st.isFile()) throw new Error(`${local} is not a regular file`)
      rec = await c.put(vol, path, createReadStream(local), {
        size: st.size, mode: opts.mode !== undefined ? parseInt(opts.mode, 8) : st.mode & 0o7777, mtime: st.mtimeMs
      })
    }
    process.stdout.write(`stored ${vol}:${rec.path} (${rec.size} bytes, ${rec.chunks} chunks, seq ${rec.seq})\n`)
  })

program.command('get <volume> <path>')
  .description('write the file at PATH in VOLUME to stdout or -o FILE')
  .option('-o, --output <file>', 'write to FILE (atomically, via a temporary file)')
  .option('--range <range>', 'HTTP byte range, e.g. bytes=0-1023')
  .option('--snapshot <name>', 'read the file as the snapshot NAME shows it')
  .action(async (vol: string, path: string, opts: { output?: string, range?: string, snapshot?: string }) => {
    const c = await client()
    if (opts.output === undefined) {
      await c.get(vol, path, process.stdout, { range: opts.range, snapshot: opts.snapshot })
      return
    }
    const tmp = `${opts.output}.replicant-part`
    // Ask the node first and create the file only for a good answer: an error (from the node
    // or from opening the file) then leaves nothing behind and is reported, not thrown unhandled.
    const res = await c.open(vol, path, { range: opts.range, snapshot: opts.snapshot })
    try {
      await pipeline(res, createWriteStream(tmp))
      await rename(tmp, opts.output)
    } catch (err) {
      res.destroy()
      await rm(tmp, { force: true })
      throw err
    }
  })

program.command('ls <volume> [prefix]')
  .description('list files of VOLUME (under PREFIX)')
  .option('--json', 'print JSON')
  .option('--snapshot <name>', 'list the files the snapshot NAME shows')
  .action(async (vol: string, prefix: string | undefined, opts: { json?: boolean, snapshot?: string }) => {
    const { files } = await (await client()).list(vol, prefix, { snapshot: opts.snapshot })
    if (opts.json === true) return print(files)
    for (const f of files) {
      process.stdout.write(`${f.mode.toString(8).padStart(4, '0')}\t${String(f.size).padStart(12)}\t${new Date(f.mtime).toISOString()}\t${f.path}\n`)
    }
  })

program.command('rm <volume> <path>')
  .description('delete the file at PATH (a tombstone that replicates)')
  .action(async (vol: string, path: string) => {
    const r = await (await client()).remove(vol, path)
    process.stdout.write(`removed ${vol}:${r.path} (seq ${r.seq})\n`)
  })

const snapshot = program.command('snapshot').description('frozen, read-only views of a volume')
snapshot.command('create <volume> [name]')
  .description('take a snapshot (constant time: nothing is copied; later writes keep the versions it shows)')
  .action(async (vol: string, name: string | undefined) => {
    const s = await (await client()).createSnapshot(vol, name)
    process.stdout.write(`snapshot ${s.name} of ${vol} at seq ${s.seq}\n`)
  })
snapshot.command('list <volume>')
  .option('--json', 'print JSON')
  .action(async (vol: string, opts: { json?: boolean }) => {
    const { snapshots } = await (await client()).listSnapshots(vol)
    if (opts.json === true) return print(snapshots)
    for (const s of snapshots) process.stdout.write(`${s.name}\tseq ${s.seq}\t${new Date(s.createdAt).toISOString()}\n`)
  })
snapshot.command('delete <volume> <name>')
  .action(async (vol: string, name: string) => {
    const r = await (await client()).deleteSnapshot(vol, name)
    process.stdout.write(`deleted snapshot ${name} of ${vol} (${r.versionsReleased} kept version(s) released)\n`)
  })

program.command('dump <volume>')
  .description('write a portable, checksummed archive of a snapshot (full, or incremental with --since)')
  .requiredOption('--snapshot <name>', 'the snapshot to dump')
  .option('--since <snapshot>', 'incremental: only what changed since this earlier snapshot')
  .requiredOption('-o, --output <file>', 'the dump file (written atomically)')
  .action(async (vol: string, opts: { snapshot: string, since?: string, output: string }) => {
    const tmp = `${opts.output}.replicant-part`
    try {
      await (await client()).dump(vol, opts.snapshot, createWriteStream(tmp), opts.since)
      // Durable before it takes the final name: a crash never leaves a torn file under it.
      const fh = await open(tmp, 'r+')
      try { await fh.sync() } finally { await fh.close() }
      await rename(tmp, opts.output)
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
    const { size } = await stat(opts.output)
    process.stdout.write(`dumped ${vol} snapshot ${opts.snapshot}${opts.since !== undefined ? ` since ${opts.since}` : ''} to ${opts.output} (${fmtBytes(size)})\n`)
  })

program.command('restore <file>')
  .description('restore a dump: a full one creates the volume (same id), an incremental one applies on its base')
  .action(async (file: string) => {
    const st = await stat(file)
    const r = await (await client()).restore(createReadStream(file), st.size)
    process.stdout.write(`restored ${r.volume} (id ${r.volumeId}) ${r.incremental ? 'incremental ' : ''}snapshot ${r.snapshot} at seq ${r.seq}: ${r.files} files, ${r.deletes} deletes, ${r.chunks} chunks\n`)
  })

program.command('gc')
  .description('delete chunks nothing references (live files, snapshots, prepared writes, writes in progress), then repack mostly dead pack files to give their space back')
  .option('--young <seconds>', 'leave chunks written in the last SECONDS (default 600) for a later run', (v) => Number(v))
  .option('--no-repack', 'only delete chunks: leave pack files as they are (their space is given back by a later gc)')
  .action(async (opts: { young?: number, repack: boolean }) => {
    const r = await (await client()).gc(opts.young, { repack: opts.repack })
    process.stdout.write(`gc: scanned ${r.scanned} chunks, deleted ${r.deleted}, kept ${r.kept} (${r.ms} ms); packs ${fmtBytes(r.disk.packBytes)}, index ${fmtBytes(r.disk.indexBytes)}\n`)
    // A line of its own: scripts that parse the line above keep working.
    const p = r.repack
    if (p !== undefined) process.stdout.write(`repack: rewrote ${p.packsRewritten} packs, removed ${p.packsRemoved}, copied ${fmtBytes(p.bytesCopied)}, freed ${fmtBytes(p.bytesFreed)}\n`)
  })

program.command('peers')
  .description('connected and known peers')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const { peers } = await (await client()).peers()
    if (opts.json === true) return print(peers)
    for (const p of peers) {
      process.stdout.write(`${p.peerId}\t${p.connected ? 'connected' : 'not connected'}\t${p.addrs.join(' ')}\n`)
    }
  })

program.command('status')
  .description('node, volumes and members')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const s = await (await client()).status()
    if (opts.json === true) return print(s)
    const lines = [`peer id: ${s.peerId}`, `api:     ${s.api}`, ...s.multiaddrs.map((m: string) => `listen:  ${m}`),
      ...(s.disk !== undefined ? [`disk:    chunk packs ${fmtBytes(s.disk.packBytes)}, index ${fmtBytes(s.disk.indexBytes)}`] : []), 'volumes:']
    for (const v of s.volumes) {
      lines.push(`  ${v.name}  id ${v.id}  gen ${v.generation}  ${v.writeMode}  ${v.state}  seq ${v.seq}  ${v.files} files  ${fmtBytes(v.bytes)}`)
      if (v.progress !== null && v.progress !== undefined) {
        const p = v.progress
        lines.push(`    copy: ${bar(p.bytesDone, p.bytesTotal)} ${fmtBytes(p.bytesDone)}/${fmtBytes(p.bytesTotal)}, files ${p.filesDone}/${p.filesTotal}${p.rate !== null ? `, ${fmtBytes(p.rate)}/s` : ''}${p.etaSeconds !== null ? `, eta ${p.etaSeconds}s` : ''}`)
      }
      if (v.lacking.files > 0 || v.lacking.bytes > 0) lines.push(`    still to fetch: ${v.lacking.files} files, ${fmtBytes(v.lacking.bytes)}`)
      if (v.lacking.refused !== null) lines.push(`    refused: ${v.lacking.refused}`)
      if (v.repairing === true) lines.push(`    repairing: an update could not be applied; fetching what is missing${v.repair !== null && v.repair !== undefined ? ` (${v.repair.filesTotal - v.repair.filesDone} file(s) lacking${v.repair.lastError !== null ? `, last error: ${v.repair.lastError}` : ''})` : ''}`)
      if (v.damagedChunks > 0) lines.push(`    damaged: ${v.damagedChunks} chunk(s) found missing or corrupt by the last merge`)
      for (const d of v.decisions ?? []) lines.push(`    last reconnect with ${d.peer}: ${d.decision} (${d.why})`)
      for (const m of v.memberStates) {
        const where = `${m.self ? 'this node' : m.connected ? 'connected' : 'not connected'}  ${m.state ?? '?'}`
        const progress = m.self ? `seq ${m.seq}` : `seq ${m.seq ?? '?'}  applied ${m.watermark}${m.syncing ? '  syncing' : ''}${m.lastError !== null ? `  error: ${m.lastError}` : ''}`
        lines.push(`    ${m.peerId}  ${where}  ${progress}`)
      }
    }
    process.stdout.write(lines.join('\n') + '\n')
  })

;(await import('./topology-command.js')).registerTopologyCommands(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  if (isReplicantError(err)) {
    process.stderr.write(`replicant: ${err.message} [${err.code}]\n`)
  } else {
    process.stderr.write(`replicant: ${(err as Error)?.message ?? String(err)}\n`)
  }
  process.exit(1)
})
