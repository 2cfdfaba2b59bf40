/**
 * The fields of the HTTP API's JSON answers that the test tooling reads. The client returns
 * them untyped; reading them through these shapes keeps that in one place.
 */
import type { ReplicantClient } from '../api/client.js'
import type { FileView } from '../replication/volume-service.js'

export interface StatusView { peerId: string, multiaddrs: string[] }

export interface PeerView { peerId: string, connected: boolean }

export interface MemberStateView { peerId: string, self: boolean, connected: boolean, seq: number | null, watermark: number | null }

export interface VolumeInfoView {
  state: string
  members: string[]
  lacking?: { files: number, bytes: number }
  memberStates: MemberStateView[]
}

export async function statusOf (client: ReplicantClient): Promise<StatusView> {
  return await client.status()
}

export async function peersOf (client: ReplicantClient): Promise<PeerView[]> {
  return (await client.peers() as { peers: PeerView[] }).peers
}

export async function volumeNamesOf (client: ReplicantClient): Promise<string[]> {
  return (await client.listVolumes() as { volumes: Array<{ name: string }> }).volumes.map(v => v.name)
}

export async function volumeInfoOf (client: ReplicantClient, volume: string): Promise<VolumeInfoView> {
  return await client.volumeInfo(volume)
}

export async function filesOf (client: ReplicantClient, volume: string, prefix?: string): Promise<FileView[]> {
  return (await client.list(volume, prefix)).files
}
