// The test tooling's entry point (`replicant/testing`): scripted topologies of nodes, chaos
// schedules and the history checker. The runtime package (`replicant`) does not load it.
import '../core/polyfill.js'

export { Topology, TopologyError, type TopologyOptions, type TopologyNode, type NodeSpec, type NodeKind, type VolumeSpec, type WaitOptions, type ExitInfo, type TopologyEvent } from './topology.js'
export { History, conflictBase, type Op, type TreeEntry, type CheckResult, type Violation } from './history.js'
export { parseTopologyConfig, loadTopologyConfig, startTopologyFromConfig, type TopologyConfig } from './topology-config.js'
