// The package's public API. The polyfill comes first: libp2p needs Promise.withResolvers.
import './polyfill.js'

export { ReplicantNode, readApiInfo, type NodeOptions, type ApiInfo } from './replicant-node.js'
export { ReplicantClient } from './client.js'
export { VolumeService, type CreateVolumeOptions, type PutOptions, type FileView } from './volume-service.js'
export { ReplicantError, InvalidInputError, NotFoundError, ConflictError, ProtocolError, NotMemberError, Codes } from './errors.js'
export * as versionVector from './version-vector.js'
export type { VolumeRecord, FileRecord, WriteMode } from '../store/records.js'
export { Topology, TopologyError, type TopologyOptions, type TopologyNode, type NodeSpec, type NodeKind, type VolumeSpec, type WaitOptions, type ExitInfo, type TopologyEvent } from './topology.js'
export { History, conflictBase, type Op, type TreeEntry, type CheckResult, type Violation } from './history.js'
export { parseTopologyConfig, loadTopologyConfig, startTopologyFromConfig, type TopologyConfig } from './topology-config.js'
