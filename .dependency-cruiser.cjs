// The layer rules of docs/ARCHITECTURE.md, checked by `npm test` (npm run lint:deps).
// Layers, lowest first; each may import only the ones below it:
//   core < store < protocols < replication < api < node < testing, bin
// protocols sit beside store (neither imports the other); config/ holds plain defaults.
const layers = {
  core: [],
  config: [],
  store: ['core'],
  protocols: ['core'],
  replication: ['core', 'config', 'store', 'protocols'],
  api: ['core', 'config', 'store', 'protocols', 'replication'],
  node: ['core', 'config', 'store', 'protocols', 'replication', 'api'],
  testing: ['core', 'config', 'store', 'protocols', 'replication', 'api', 'node'],
  bin: ['core', 'config', 'store', 'protocols', 'replication', 'api', 'node', 'testing']
}
const all = Object.keys(layers).concat(['test', 'bench'])

const layerRules = Object.entries(layers).map(([layer, allowed]) => ({
  name: `layer-${layer}`,
  comment: `${layer}/ may import only ${allowed.length === 0 ? 'nothing of the project' : allowed.join(', ')}`,
  severity: 'error',
  from: { path: `^${layer}/` },
  to: { path: `^(${all.filter(l => l !== layer && !allowed.includes(l)).join('|')})/` }
}))

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-circular',
      comment: 'no import cycles, within a layer or across layers',
      severity: 'error',
      from: {},
      to: { circular: true }
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.d.ts'], exportsFields: ['exports'], conditionNames: ['types', 'import', 'node', 'default'], mainFields: ['types', 'module', 'main'] }
  }
}
