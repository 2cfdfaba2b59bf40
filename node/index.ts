// The package's public API. The polyfill comes first: libp2p needs Promise.withResolvers.
import '../core/polyfill.js'

export { ReplicantNode, readApiInfo, type NodeOptions, type ApiInfo } from './replicant-node.js'
export { ReplicantClient, type ClientOptions } from '../api/client.js'
export { readApiToken } from '../api/api-token.js'
export { VolumeService, type CreateVolumeOptions, type PutOptions, type FileView, type VolumeCollaborators } from '../replication/volume-service.js'
export { ReplicantError, InvalidInputError, NotFoundError, ConflictError, ProtocolError, NotMemberError, Codes } from '../core/errors.js'
export * as versionVector from '../core/version-vector.js'
export type { VolumeRecord, FileRecord, WriteMode } from '../core/records.js'
