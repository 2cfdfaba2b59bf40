import test from 'ava'
import { createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { ReplicantClient } from '../api/client.js'

/**
 * A server that plays the keep-alive race: it answers the first request on a connection and
 * keeps the socket open, then resets that socket when a second request arrives on it (as a
 * server does whose idle timeout fires just as the client reuses the socket).
 */
async function racingServer (): Promise<{ url: string, resets: () => number, close: () => Promise<void> }> {
  let resets = 0
  const sockets = new Set<Socket>()
  const server = createServer(socket => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    let requests = 0
    socket.on('data', chunk => {
      if (!chunk.toString('latin1').includes('\r\n\r\n')) return
      requests++
      if (requests === 1) {
        const body = '{"ok":true}'
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n${body}`)
      } else {
        resets++
        socket.resetAndDestroy()
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const addr = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${addr.port}`,
    resets: () => resets,
    close: async () => { for (const s of sockets) s.destroy(); server.close(); await once(server, 'close') }
  }
}

test('a GET whose reused keep-alive socket is reset before any answer is sent again on a new socket', async t => {
  const server = await racingServer()
  t.teardown(server.close)
  const client = new ReplicantClient(server.url)
  t.deepEqual(await client.status() as unknown, { ok: true })
  // The second GET goes out on the kept-alive socket, which the server resets.
  t.deepEqual(await client.status() as unknown, { ok: true })
  t.is(server.resets(), 1)
})

test('a POST on a reset reused socket is not sent twice: the caller sees the reset', async t => {
  const server = await racingServer()
  t.teardown(server.close)
  const client = new ReplicantClient(server.url)
  t.deepEqual(await client.status() as unknown, { ok: true })
  const err = await t.throwsAsync(client.gc())
  t.is((err as NodeJS.ErrnoException).code, 'ECONNRESET')
  t.is(server.resets(), 1)
})
