/** GET /metrics: Prometheus text format (node/metrics.ts). Needs the token unless the node was started with --metrics-public. */
import type { Router } from '../router.js'
import type { MetricsSource } from '../node-api.js'

export function metricsRoutes (router: Router, node: MetricsSource, open: boolean): void {
  router.add('GET', /^\/metrics$/, async (_req, res) => {
    const { contentType, body } = await node.metrics()
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
    res.end(body)
  }, { public: open }) // the Host check still applies
}
