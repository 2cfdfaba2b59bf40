/** `replicant volume ...`: create, inspect, change and move volumes and their members. */
import { Option } from 'commander'
import { type Cli, print, out, fmtBytes, forcedOnYes, report, JSON_HELP } from '../cli.js'
import { Progress, type ProgressView } from '../progress.js'
import type { AnnounceResult, AnnouncedVolume, MemberAnswer, MoveProgress, VolumeInfo, WriteMode } from '../../api/types.js'
import { notTakenEffect } from '../../replication/membership-host.js'
import { ReplicantError, Codes } from '../../core/errors.js'

function announced (announce: AnnounceResult[], pending: string, prefix = 'member '): void {
  for (const a of announce) {
    out(`  ${prefix}${a.peerId}: ${a.status === 'pending' ? pending : a.status}${a.error !== undefined ? ` (${a.error})` : ''}`)
  }
}

/** A change that every reachable other member refused did not take effect: exit non-zero, saying who and why. */
function tookEffect (v: AnnouncedVolume): void {
  if (v.warning !== undefined) process.stderr.write(`replicant: warning: volume ${v.name}: change ${v.warning}\n`)
  for (const c of v.completed ?? []) process.stderr.write(`replicant: volume ${v.name}: generation ${c.generation} was ${c.how === 'completed' ? `in doubt (proposed by ${c.from}): completed first` : `already made (held by ${c.from}): adopted first`}, members ${c.members.join(', ')}; this change made after it\n`)
  const why = notTakenEffect(v.announce ?? [])
  if (why !== undefined) throw new ReplicantError(Codes.CHANGE_REFUSED, `the change of volume ${v.name} did not take effect on any other reachable member: ${why}`)
}

/** The questions a terminal is asked before a change is forced (--force answers them all). */
function forceQuestions (peer?: string): Partial<Record<string, string>> {
  return {
    [Codes.NO_QUORUM]: 'make the change without a majority of the members (a split generation is then possible)?',
    [Codes.GENERATION_IN_DOUBT]: 'make the change over the changes in doubt (a split generation is possible if one of them was committed)?',
    ...(peer !== undefined ? { [Codes.UNKNOWN_PEER]: `add never-seen peer ${peer}?` } : {})
  }
}

/**
 * Runs a change; one that was not made (no majority, or a member refused) first prints each
 * member's answer to its promise request, then fails (non-zero) with the error naming them.
 */
async function change<V> (peer: string | undefined, attempt: (force: boolean) => Promise<V>): Promise<V> {
  try {
    return await forcedOnYes(forceQuestions(peer), attempt)
  } catch (err) {
    const answers = (err as { details?: { answers?: unknown } }).details?.answers
    if (Array.isArray(answers)) {
      for (const a of answers as MemberAnswer[]) out(`  member ${a.peerId}${a.self === true ? ' (this node)' : ''}: ${a.answer}${a.error !== undefined ? ` (${a.error})` : ''}`)
    }
    throw err
  }
}

/** A move's progress line: while `to` copies, its copy with rate and ETA (node/volume-move.ts measures them). */
function moveView (name: string, to: string, p: MoveProgress | undefined): ProgressView | string {
  if (p === undefined) return `move ${name}: starting`
  const pr = p.progress
  if (p.phase === 'copying' && pr !== null && pr !== undefined && typeof pr.bytesTotal === 'number') {
    return {
      label: `move ${name}: copying to ${to.slice(-8)}`,
      bytesDone: pr.bytesDone ?? 0,
      bytesTotal: pr.bytesTotal,
      filesDone: pr.filesDone ?? 0,
      ...(typeof pr.filesTotal === 'number' ? { filesTotal: pr.filesTotal } : {}),
      rate: pr.rate ?? null,
      etaSeconds: pr.etaSeconds ?? null
    }
  }
  return `move ${name}: ${p.phase}${p.state !== undefined ? ` (${to.slice(-8)} is ${p.state})` : ''}`
}

/** What `volume wait` is still waiting for: this node's copy as a bar, or what it waits on. */
function waitView (name: string, v: VolumeInfo | undefined): ProgressView | string {
  if (v === undefined) return `${name}: asking the node`
  const p = v.progress
  if (v.state !== 'steady') {
    if (p === null || p === undefined) return `${name}: ${v.state}, waiting for the index`
    return { label: `${name}: ${v.state}`, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, filesDone: p.filesDone, filesTotal: p.filesTotal, rate: p.rate, etaSeconds: p.etaSeconds }
  }
  const others = v.memberStates.filter(m => !m.self)
  if (!others.some(m => m.connected)) return `${name}: steady here, waiting to reach a member`
  const behind = others.filter(m => m.connected && m.caughtUp !== true)
  if (behind.length > 0) return `${name}: catching up with ${behind.map(m => `${m.peerId.slice(-8)} (applied ${m.watermark ?? 0} of ${m.seq ?? '?'})`).join(', ')}`
  return `${name}: steady, still fetching ${v.lacking.files} file(s)`
}

export function registerVolumeCommands (cli: Cli): void {
  const volume = cli.program.command('volume').description('create and inspect volumes')
  volume.command('create <name>')
    .description('create a volume; this node and the --replicas peers are its members')
    .option('--replicas <peerids>', 'comma-separated peer ids of the other members (`self` allowed)')
    .addOption(new Option('--write-mode <mode>', 'write mode').choices(['all', 'active']).default('active'))
    .option('--chunk-size <bytes>', 'chunk size, a power of two from 4096 to 1048576', (v) => Number(v))
    .option('--json', JSON_HELP)
    .action(async (name: string, opts: { writeMode: WriteMode, chunkSize?: number, replicas?: string, json?: boolean }) => {
      const vol = await (await cli.client()).createVolume({
        name,
        writeMode: opts.writeMode,
        ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
        ...(opts.replicas !== undefined ? { replicas: opts.replicas.split(',').map(s => s.trim()).filter(s => s !== '') } : {})
      })
      report(opts.json, vol, () => {
        out(`created volume ${vol.name} (id ${vol.id}, generation ${vol.generation}, write mode ${vol.writeMode})`)
        announced(vol.announce ?? [], 'not reachable now; will be created when it is next seen')
      })
    })
  volume.command('add-replica <name> <peerid>')
    .description('add a member online; it serves reads at once (a wannabe) while a background copy fills it')
    .option('--force', 'add the peer even if this node has never seen it, or without a majority of the members (on a terminal you are asked instead)')
    .option('--json', JSON_HELP)
    .action(async (name: string, peer: string, opts: { force?: boolean, json?: boolean }) => {
      const c = await cli.client()
      const v = await change(peer, async force => await c.addReplica(name, peer, { force: force || opts.force === true }))
      report(opts.json, v, () => {
        out(`volume ${v.name}: added ${peer}; generation ${v.generation}, ${v.members.length} members`)
        announced(v.announce ?? [], 'not reachable now; will learn it when next seen')
      })
      tookEffect(v)
    })

  volume.command('remove-replica <name> <peerid>')
    .description('remove a member online; the others go on at a new generation, the removed node stops serving the volume')
    .option('--force', 'remove it without a majority of the members (on a terminal you are asked instead)')
    .option('--json', JSON_HELP)
    .action(async (name: string, peer: string, opts: { force?: boolean, json?: boolean }) => {
      const c = await cli.client()
      const v = await change(undefined, async force => await c.removeReplica(name, peer, { force: force || opts.force === true }))
      report(opts.json, v, () => {
        out(`volume ${v.name}: removed ${peer}; generation ${v.generation}, ${v.members.length} members`)
        announced(v.announce ?? [], 'not reachable now; will learn it when next seen', '')
      })
      tookEffect(v)
    })

  volume.command('grant <name> <peerid>')
    .description('let a peer that is not a member read the volume (index and chunks: a lazy replica); its writes are refused')
    .option('--read', 'read access (the only level, and the default)')
    .option('--json', JSON_HELP)
    .action(async (name: string, peer: string, opts: { json?: boolean }) => {
      const v = await (await cli.client()).grantReader(name, peer, 'read')
      report(opts.json, v, () => {
        out(`volume ${v.name}: ${peer} may read; generation ${v.generation}, ${v.readers?.length ?? 0} reader(s)`)
        announced(v.announce ?? [], 'not reachable now; will learn it when next seen', '')
      })
    })

  volume.command('revoke <name> <peerid>')
    .description("take a reader's access away; its open streams for the volume are closed at once")
    .option('--json', JSON_HELP)
    .action(async (name: string, peer: string, opts: { json?: boolean }) => {
      const v = await (await cli.client()).revokeReader(name, peer)
      report(opts.json, v, () => {
        out(`volume ${v.name}: ${peer} may no longer read; generation ${v.generation}, ${v.readers?.length ?? 0} reader(s)`)
        announced(v.announce ?? [], 'not reachable now; will learn it when next seen', '')
      })
    })

  volume.command('set <name>')
    .description('change a volume setting on every member (a new generation)')
    .addOption(new Option('--write-mode <mode>', 'all: acknowledged once every member stored it; active: once this member did').choices(['all', 'active']))
    .option('--force', 'change it without a majority of the members (on a terminal you are asked instead)')
    .option('--json', JSON_HELP)
    .action(async (name: string, opts: { writeMode?: string, force?: boolean, json?: boolean }) => {
      const writeMode = opts.writeMode
      if (writeMode === undefined) throw new Error('nothing to set: give --write-mode all|active')
      const c = await cli.client()
      const v = await change(undefined, async force => await c.setWriteMode(name, writeMode, { force: force || opts.force === true }))
      report(opts.json, v, () => {
        out(`volume ${v.name}: write mode ${v.writeMode}, generation ${v.generation}`)
        announced(v.announce ?? [], 'not reachable now; will learn it when next seen')
      })
      tookEffect(v)
    })

  volume.command('compact-log <name>')
    .description('purge tombstones every other member has applied (or up to --upto SEQ); members further behind then get a full copy')
    .option('--upto <seq>', 'purge up to this sequence number, even if a member has not applied it', (v) => Number(v))
    .option('--json', JSON_HELP)
    .action(async (name: string, opts: { upto?: number, json?: boolean }) => {
      const r = await (await cli.client()).compactLog(name, opts.upto)
      if (opts.json === true) return print({ volume: name, ...r })
      out(`volume ${name}: purged ${r.purged} tombstone(s); change log complete from seq ${r.floor} (safe point ${r.safeUpto})`)
      if (r.neverSeen.length > 0) out(`  not waited for (never seen; a full copy if they ever come): ${r.neverSeen.join(', ')}`)
    })

  volume.command('move <name>')
    .description('move a replica online: add --to (serves at once), wait until it is steady, remove --from; run again to resume')
    .requiredOption('--from <peerid>', 'the member to move away from')
    .requiredOption('--to <peerid>', 'the node to move to')
    .option('--abandon', 'give up an interrupted move: remove --to, the volume stays as it was on --from')
    .option('--force', 'move to a peer this node has never seen, or change members without a majority (on a terminal you are asked instead)')
    .option('--json', 'print the result as JSON (progress stays on stderr)')
    .action(async (name: string, opts: { from: string, to: string, abandon?: boolean, force?: boolean, json?: boolean }) => {
      let last: MoveProgress | undefined
      const progress = new Progress(() => moveView(name, opts.to, last))
      const c = await cli.client()
      const r = await change(opts.to, async force => await c.move(name, { from: opts.from, to: opts.to, abandon: opts.abandon === true, force: force || opts.force === true }, (p) => {
        last = p
      })).finally(() => { progress.stop() })
      if (opts.json === true) return print(r)
      out(`volume ${name}: move ${r.phase}; members ${r.members.join(', ')}, generation ${r.generation}`)
      if (r.announce !== undefined) {
        if (r.announce.added.length > 0) { out(`  adding ${opts.to}:`); announced(r.announce.added, 'not reachable now; will learn it when next seen', '    member ') }
        out(`  removing ${opts.from}:`)
        announced(r.announce.removed, 'not reachable now; will learn it when next seen', '    member ')
      }
    })

  volume.command('wait <name>')
    .description('wait until this node holds the volume in the given state, showing progress')
    .option('--steady', 'wait for the steady state (the default)')
    .option('--timeout <seconds>', 'give up after this long (exit 2)', (v) => Number(v))
    .option('--json', 'print the volume as JSON once it is steady (progress stays on stderr)')
    .action(async (name: string, opts: { steady?: boolean, timeout?: number, json?: boolean }) => {
      const c = await cli.client()
      const started = Date.now()
      let last: VolumeInfo | undefined
      const progress = new Progress(() => waitView(name, last))
      try {
        while (true) {
          const v = last = await c.volumeInfo(name)
          // Steady alone is not enough: a member restarted after missing writes is steady
          // before it has pulled them. caughtUp says it holds what its connected members have.
          if (v.state === 'steady' && v.caughtUp) break
          if (opts.timeout !== undefined && Date.now() - started > opts.timeout * 1000) {
            progress.stop()
            process.stderr.write(`replicant: volume ${name} not steady after ${opts.timeout}s [TIMEOUT]\n`)
            process.exit(2)
          }
          await new Promise(resolve => setTimeout(resolve, 500))
        }
      } finally {
        progress.stop()
      }
      if (opts.json === true) return print(last)
      out(`volume ${name} is steady (${last.files} files, ${fmtBytes(last.bytes)})`)
    })

  volume.command('accept <name>')
    .description('let a peer create this volume on this node once (a node started with --accept-volumes known or none refused it); the proposer then retries')
    .requiredOption('--from <peerid>', 'the peer that proposes the volume')
    .option('--json', JSON_HELP)
    .action(async (name: string, opts: { from: string, json?: boolean }) => {
      const r = await (await cli.client()).acceptVolume(name, opts.from)
      if (opts.json === true) return print(r)
      out(`volume ${r.volume}: accepted once from ${r.from}; retry the change (add-replica) on that peer`)
    })

  volume.command('drop <name>')
    .description('delete this node\'s replica of a volume it is no longer a member of (state removed); `gc` then gives the space back')
    .option('--json', JSON_HELP)
    .action(async (name: string, opts: { json?: boolean }) => {
      const r = await (await cli.client()).dropVolume(name)
      if (opts.json === true) return print(r)
      out(`volume ${r.name} (id ${r.id}) dropped from this node: ${r.files} files, ${fmtBytes(r.bytes)}, ${r.snapshots} snapshot(s), ${r.prepared} prepared write(s); run gc to reclaim the space (gc keeps chunks written in the last 10 minutes: gc --young 0 frees them now, when nothing else is being written)`)
    })

  volume.command('list')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { volumes } = await (await cli.client()).listVolumes()
      if (opts.json === true) return print(volumes)
      for (const v of volumes) out(`${v.name}\t${v.id}\tgen ${v.generation}\t${v.writeMode}\t${v.members.length} member(s)`)
    })
  volume.command('info <name>')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const v = await (await cli.client()).volumeInfo(name)
      if (opts.json === true) return print(v)
      out([
        `name:        ${v.name}`, `id:          ${v.id}`, `generation:  ${v.generation}`, `write mode:  ${v.writeMode}`,
        `chunk size:  ${fmtBytes(v.chunkSize)}`, `members:     ${v.members.join(', ')}`,
        `readers:     ${v.readers.length > 0 ? v.readers.join(', ') : '(none)'}`, `access:      ${v.access}`, `sequence:    ${v.seq}`,
        `files:       ${v.files}`, `bytes:       ${v.bytes} (${fmtBytes(v.bytes)})`, `state:       ${v.state}`,
        ...(v.progress !== null && v.progress !== undefined ? [`progress:    ${fmtBytes(v.progress.bytesDone)} of ${fmtBytes(v.progress.bytesTotal)}, files ${v.progress.filesDone} of ${v.progress.filesTotal}`] : [])
      ].join('\n'))
    })
}
