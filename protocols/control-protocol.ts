import type { Libp2p, PeerId } from '@libp2p/interface'
import { Framed, expect, request, answerError, noteBroken, type Message } from './framing.js'
import type { RequestGate } from './sources.js'
import { CONTROL_PROTOCOL, WIRE_VERSION, MAX_SMALL_FRAME_BYTES, MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS } from './constants.js'
import { ProtocolError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import { genIdOf, type VolumeRecord, type GenerationEntry } from '../core/records.js'

const log = logger('proto:control')

/** The part of a volume record every member shares (seq and dirty are per node). */
export type VolumeDescriptor = Pick<VolumeRecord, 'name' | 'id' | 'generation' | 'members' | 'writeMode' | 'chunkSize' | 'createdAt' | 'genId' | 'history' | 'readers'>

export interface MemberState {
  volume: string
  volumeId: string
  seq: number
  generation: number
  members: string[]
  state: string
  genId?: string
  history?: GenerationEntry[]
  /** Lowest seq from which the member's change log is complete. */
  logFloor?: number
  /** Live files and bytes of the volume there (only when asked: it costs an index scan). */
  size?: { files: number, bytes: number }
  /** Progress of a member in `copy`. */
  progress?: Record<string, number | null>
  /** Addresses of other members the answering node knows (peer exchange). */
  addrs?: Record<string, string[]>
}

/**
 * control: create a volume on a member (idempotent: the same id is fine, another id is
 * refused), and report a member's state of a volume. One request and one reply per stream.
 */
export interface EnsureResult {
  created: boolean
  /** The receiver's descriptor after the call: newer than the caller's if it knew a later generation. */
  volume?: VolumeDescriptor
}

export interface ControlHandlers {
  /** Addresses this node knows for the given peers (peer exchange, so members can find each other). */
  locate: (peer: string, peers: string[]) => Promise<Record<string, string[]>>
  /** `probe`: only whether this node would take the volume from `peer`; nothing is created or changed. */
  ensureVolume: (peer: string, desc: VolumeDescriptor, probe: boolean) => Promise<EnsureResult>
  /**
   * A member proposes `desc` as the next generation: promise it to the proposal `attempt` (or,
   * with release, drop that proposal's promise). A refusal that says what this node holds is
   * answered (not thrown), so the proposer can act on it.
   */
  prepareGeneration: (peer: string, desc: VolumeDescriptor, release: boolean, attempt: string | undefined) => Promise<PrepareReply>
  memberState: (peer: string, volume: string, volumeId: string, withSize: boolean) => Promise<MemberState>
  /** A member holding a promise in doubt asks its proposer what became of the proposal `attempt` of generation `generation`. */
  proposalOutcome: (peer: string, q: ProposalQuery) => Promise<ProposalOutcome>
  /** Whether `member` is a member of the volume with that name and id here (asked by a node it proposed the volume to). */
  vouch: (peer: string, volume: string, volumeId: string, member: string) => Promise<boolean>
}

/** A promise whose outcome the answering member does not know (promises.ts). */
export interface InDoubtPromise { generation: number, genId: string, proposer: string, config?: VolumeDescriptor }

/**
 * A member's answer to a promise request: promised, or not, with what it holds: `committed`,
 * its configuration of that generation (or a later one); `inDoubt`, its promise of that
 * generation to another change whose outcome it does not know.
 */
export type PrepareReply = { promised: true } | { promised: false, code: string, message: string, committed?: VolumeDescriptor, inDoubt?: InDoubtPromise }

/** Which proposal a member asks about: its volume, the generation and id promised, and the proposer's attempt id. */
export interface ProposalQuery { volume: string, volumeId: string, generation: number, genId: string, attempt: string }

/**
 * What the proposer says of its proposal: `running` (still gathering promises or committing),
 * `settled` (this node holds that generation or a later one: ask for it with ensure-volume), or
 * `abandoned` (not running, never committed here, and never will be: the promise may go).
 */
export type ProposalOutcome = 'running' | 'settled' | 'abandoned'
const OUTCOMES: readonly string[] = ['running', 'settled', 'abandoned']

export function descriptorOf (vol: VolumeRecord): VolumeDescriptor {
  return {
    name: vol.name, id: vol.id, generation: vol.generation, members: vol.members, writeMode: vol.writeMode, chunkSize: vol.chunkSize, createdAt: vol.createdAt,
    genId: genIdOf(vol), history: vol.history ?? [], ...(vol.readers !== undefined && vol.readers.length > 0 ? { readers: vol.readers } : {})
  }
}

export async function registerControlHandler (libp2p: Libp2p, handlers: ControlHandlers, gate?: RequestGate): Promise<void> {
  await libp2p.handle(CONTROL_PROTOCOL, async (stream, connection) => {
    const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
    const peer = connection.remotePeer.toString()
    try {
      await gate?.admit(peer, CONTROL_PROTOCOL)
      const msg = await framed.read()
      if (msg.t === 'ensure-volume') {
        const m = msg as Message & { volume: VolumeDescriptor, probe?: unknown }
        const res = await handlers.ensureVolume(peer, m.volume, m.probe === true)
        await framed.write({ v: WIRE_VERSION, t: 'ok', created: res.created, ...(res.volume !== undefined ? { volume: res.volume } : {}) })
      } else if (msg.t === 'prepare-generation') {
        const m = msg as Message & { volume: VolumeDescriptor, release?: unknown, attempt?: unknown }
        const attempt = typeof m.attempt === 'string' && m.attempt.length > 0 && m.attempt.length <= 64 ? m.attempt : undefined
        const res = await handlers.prepareGeneration(peer, m.volume, m.release === true, attempt)
        if (res.promised) await framed.write({ v: WIRE_VERSION, t: 'ok' })
        else await framed.write({ ...res, v: WIRE_VERSION, t: 'not-promised' })
      } else if (msg.t === 'proposal') {
        const m = msg as Message & Partial<Record<keyof ProposalQuery, unknown>>
        if (typeof m.volume !== 'string' || typeof m.volumeId !== 'string' || typeof m.generation !== 'number' || typeof m.genId !== 'string' || typeof m.attempt !== 'string' || m.attempt.length > 64) {
          throw new ProtocolError(Codes.BAD_MESSAGE, 'proposal needs volume, volumeId, generation, genId and attempt')
        }
        const outcome = await handlers.proposalOutcome(peer, { volume: m.volume, volumeId: m.volumeId, generation: m.generation, genId: m.genId, attempt: m.attempt })
        await framed.write({ v: WIRE_VERSION, t: 'outcome', outcome })
      } else if (msg.t === 'locate') {
        const m = msg as Message & { peers: unknown }
        if (!Array.isArray(m.peers) || m.peers.length > 64 || !m.peers.every(p => typeof p === 'string' && p.length <= 128)) {
          throw new ProtocolError(Codes.BAD_MESSAGE, 'locate needs a list of at most 64 peer ids')
        }
        await framed.write({ v: WIRE_VERSION, t: 'located', addrs: await handlers.locate(peer, m.peers as string[]) })
      } else if (msg.t === 'vouch') {
        const m = msg as Message & { volume: unknown, volumeId: unknown, member: unknown }
        if (typeof m.volume !== 'string' || typeof m.volumeId !== 'string' || typeof m.member !== 'string') throw new ProtocolError(Codes.BAD_MESSAGE, 'vouch needs volume, volumeId and member')
        await framed.write({ v: WIRE_VERSION, t: 'vouched', member: await handlers.vouch(peer, m.volume, m.volumeId, m.member) })
      } else if (msg.t === 'state') {
        const m = msg as Message & { volume: unknown, volumeId: unknown, size: unknown }
        if (typeof m.volume !== 'string' || typeof m.volumeId !== 'string') throw new ProtocolError(Codes.BAD_MESSAGE, 'state request needs volume and volumeId')
        await framed.write({ v: WIRE_VERSION, t: 'state', ...(await handlers.memberState(peer, m.volume, m.volumeId, m.size === true)) })
      } else {
        throw new ProtocolError(Codes.BAD_MESSAGE, `unknown control request '${msg.t}'`)
      }
      await framed.close()
    } catch (err) {
      log('control request from %s failed: %s', peer, (err as Error).message)
      noteBroken(gate, peer, err)
      await answerError(framed, err)
    }
  }, { maxInboundStreams: MAX_INBOUND_STREAMS, maxOutboundStreams: MAX_OUTBOUND_STREAMS })
}

async function call (libp2p: Libp2p, peer: PeerId, msg: Message, signal?: AbortSignal): Promise<Message> {
  return await request(libp2p, peer, CONTROL_PROTOCOL, msg, { maxFrame: MAX_SMALL_FRAME_BYTES, signal })
}

export async function requestEnsureVolume (libp2p: Libp2p, peer: PeerId, desc: VolumeDescriptor, signal?: AbortSignal, probe = false): Promise<EnsureResult> {
  const reply = expect<Message & { created: boolean, volume?: VolumeDescriptor }>(await call(libp2p, peer, { v: WIRE_VERSION, t: 'ensure-volume', volume: desc, ...(probe ? { probe: true } : {}) }, signal), 'ok')
  return { created: reply.created === true, ...(reply.volume !== undefined && typeof reply.volume === 'object' ? { volume: reply.volume } : {}) }
}

/** Asks `peer` whether `member` is a member of its volume `volume` with id `volumeId`. */
export async function requestVouch (libp2p: Libp2p, peer: PeerId, volume: string, volumeId: string, member: string, signal?: AbortSignal): Promise<boolean> {
  return expect<Message & { member: unknown }>(await call(libp2p, peer, { v: WIRE_VERSION, t: 'vouch', volume, volumeId, member }, signal), 'vouched').member === true
}

/**
 * Asks a member to promise `desc`'s generation to its generation id for the proposal `attempt`
 * (or to release that proposal's promise). The reply's descriptors are the peer's word: the
 * caller validates them before any use.
 */
export async function requestPrepareGeneration (libp2p: Libp2p, peer: PeerId, desc: VolumeDescriptor, release: boolean, signal?: AbortSignal, attempt?: string): Promise<PrepareReply> {
  const reply = await call(libp2p, peer, { v: WIRE_VERSION, t: 'prepare-generation', volume: desc, release, ...(attempt !== undefined ? { attempt } : {}) }, signal)
  if (reply.t === 'ok') return { promised: true }
  const m = expect<Message & { code?: unknown, message?: unknown, committed?: unknown, inDoubt?: unknown }>(reply, 'not-promised')
  const object = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x)
  const d = object(m.inDoubt) && typeof m.inDoubt.generation === 'number' && typeof m.inDoubt.genId === 'string' ? m.inDoubt : undefined
  return {
    promised: false,
    code: typeof m.code === 'string' ? m.code : Codes.GENERATION_CONFLICT,
    message: typeof m.message === 'string' ? m.message : 'not promised',
    ...(object(m.committed) ? { committed: m.committed as unknown as VolumeDescriptor } : {}),
    ...(d !== undefined ? { inDoubt: { generation: d.generation as number, genId: d.genId as string, proposer: String(d.proposer), ...(object(d.config) ? { config: d.config as unknown as VolumeDescriptor } : {}) } } : {})
  }
}

/** Asks a proposer what became of its proposal (ProposalOutcome). */
export async function requestProposalOutcome (libp2p: Libp2p, peer: PeerId, q: ProposalQuery, signal?: AbortSignal): Promise<ProposalOutcome> {
  const reply = expect<Message & { outcome?: unknown }>(await call(libp2p, peer, { v: WIRE_VERSION, t: 'proposal', ...q }, signal), 'outcome')
  if (typeof reply.outcome !== 'string' || !OUTCOMES.includes(reply.outcome)) throw new ProtocolError(Codes.BAD_MESSAGE, 'malformed proposal outcome')
  return reply.outcome as ProposalOutcome
}

export async function requestMemberState (libp2p: Libp2p, peer: PeerId, volume: string, volumeId: string, signal?: AbortSignal, withSize = false): Promise<MemberState> {
  const reply = expect<Message & MemberState>(await call(libp2p, peer, { v: WIRE_VERSION, t: 'state', volume, volumeId, size: withSize }, signal), 'state')
  if (typeof reply.seq !== 'number' || typeof reply.generation !== 'number' || !Array.isArray(reply.members) || typeof reply.state !== 'string') {
    throw new ProtocolError(Codes.BAD_MESSAGE, 'malformed state reply')
  }
  const addrs = reply.addrs !== null && typeof reply.addrs === 'object' ? reply.addrs : undefined
  const progress = reply.progress !== null && typeof reply.progress === 'object' ? reply.progress : undefined
  const history = Array.isArray(reply.history)
    ? reply.history.filter(e => e !== null && typeof e === 'object' && typeof e.genId === 'string' && typeof e.generation === 'number')
    : undefined
  const size = reply.size !== null && typeof reply.size === 'object' && typeof reply.size.files === 'number' && typeof reply.size.bytes === 'number' ? reply.size : undefined
  return {
    volume: reply.volume, volumeId: reply.volumeId, seq: reply.seq, generation: reply.generation, members: reply.members, state: reply.state,
    ...(addrs !== undefined ? { addrs } : {}), ...(progress !== undefined ? { progress } : {}),
    ...(typeof reply.genId === 'string' ? { genId: reply.genId } : {}),
    ...(history !== undefined ? { history } : {}),
    ...(typeof reply.logFloor === 'number' ? { logFloor: reply.logFloor } : {}),
    ...(size !== undefined ? { size } : {})
  }
}

export async function requestLocate (libp2p: Libp2p, peer: PeerId, peers: string[], signal?: AbortSignal): Promise<Record<string, string[]>> {
  const reply = expect<Message & { addrs: unknown }>(await call(libp2p, peer, { v: WIRE_VERSION, t: 'locate', peers }, signal), 'located')
  const out: Record<string, string[]> = {}
  if (reply.addrs !== null && typeof reply.addrs === 'object') {
    for (const [p, a] of Object.entries(reply.addrs as Record<string, unknown>)) {
      if (peers.includes(p) && Array.isArray(a)) out[p] = a.filter((x): x is string => typeof x === 'string' && x.length <= 1024).slice(0, 16)
    }
  }
  return out
}
