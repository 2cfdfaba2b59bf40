/** The seeded PRNG lives in core (link faults draw their losses from it too); re-exported here. */
export { Rng } from '../core/rng.js'
