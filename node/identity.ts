import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey, PeerId } from '@libp2p/interface'

export const IDENTITY_FILE = 'identity.key'

export interface Identity { privateKey: PrivateKey, peerId: PeerId, created: boolean }

/** Loads the node's Ed25519 key from DIR, creating DIR and the key (mode 0600) on first use. */
export async function loadOrCreateIdentity (dir: string): Promise<Identity> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const file = join(dir, IDENTITY_FILE)
  try {
    const privateKey = privateKeyFromProtobuf(await readFile(file))
    return { privateKey, peerId: peerIdFromPrivateKey(privateKey), created: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const privateKey = await generateKeyPair('Ed25519')
  // 'wx' refuses to overwrite a key another process wrote meanwhile.
  await writeFile(file, privateKeyToProtobuf(privateKey), { mode: 0o600, flag: 'wx' })
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey), created: true }
}
