/** Every protocol id, limit and timeout of the wire protocols, in one place. */
export const PROTOCOL_PREFIX = '/replicant'
export const WIRE_VERSION = 1

/** 1.1.0: records with long chunk lists travel split (record-parts.ts); 1.0.0: whole records only, still served. */
export const INDEX_PROTOCOL = `${PROTOCOL_PREFIX}/index/1.1.0`
export const INDEX_PROTOCOL_V1_0 = `${PROTOCOL_PREFIX}/index/1.0.0`
/** 1.1.0: chunk bytes travel raw after a small CBOR header (binary frames); 1.0.0: CBOR-wrapped, still served. */
export const CHUNK_PROTOCOL = `${PROTOCOL_PREFIX}/chunk/1.1.0`
export const CHUNK_PROTOCOL_V1_0 = `${PROTOCOL_PREFIX}/chunk/1.0.0`
export const NOTIFY_PROTOCOL = `${PROTOCOL_PREFIX}/notify/1.0.0`
export const CONTROL_PROTOCOL = `${PROTOCOL_PREFIX}/control/1.0.0`
/**
 * 1.1.0: a small header frame (type, volume, id, transaction) is read and its sender
 * authorized before the record frame of a prepare is read; 1.0.0 (record in the first frame,
 * up to MAX_FRAME_BYTES read from anyone) is no longer served.
 */
export const WRITE_PROTOCOL = `${PROTOCOL_PREFIX}/write/1.1.0`

/** How long a coordinator waits for every member to prepare an all-mode write. */
export const PREPARE_TIMEOUT_MS = 30_000
/** A prepared write left undecided this long is resolved by asking its coordinator (or aborted). */
export const PREPARED_EXPIRY_MS = 60_000

/** Largest frame any protocol accepts; a larger length prefix aborts the stream. */
export const MAX_FRAME_BYTES = 5 * 1024 * 1024
/** Largest first frame of a volume protocol whose body may be large (write): read before the caller is authorized. */
export const HEADER_FRAME_BYTES = 4 * 1024
/**
 * Most CBOR items one message may hold (an index page of 512 records with 16-writer version
 * vectors is ~30,000): each decodes to a JS value many times its byte, so the frame cap alone
 * does not bound the memory a message takes.
 */
export const MAX_MESSAGE_ITEMS = 256 * 1024
/** Largest control/notify/request frame (no bulk data). */
export const MAX_SMALL_FRAME_BYTES = 64 * 1024

/**
 * A chunk list longer than this travels after its message in parts of CHUNK_LIST_PART_BYTES
 * (8,192 chunks: a 512 MiB file at 64 KiB chunks). No record's list may exceed
 * MAX_CHUNK_LIST_BYTES (2 Mi chunks: 128 GiB at 64 KiB chunks); a larger file is refused at write.
 */
export const INLINE_CHUNK_LIST_BYTES = 256 * 1024
export const CHUNK_LIST_PART_BYTES = 1024 * 1024
export const MAX_CHUNK_LIST_BYTES = 64 * 1024 * 1024

/** Index: records per page, and the soft byte budget of one page. */
export const INDEX_PAGE_RECORDS = 512
export const INDEX_PAGE_BYTES = 1024 * 1024

/** Chunk: hashes per want-list (one request = one credit), and bytes per response frame. */
export const CHUNK_WANT_MAX = 64
export const CHUNK_FRAME_BYTES = 1024 * 1024
/** Want-list requests in flight per pull: with CHUNK_WANT_MAX this bounds buffered chunk bytes. */
export const CHUNK_REQUESTS_IN_FLIGHT = 4
/** Bad chunks (wrong hash or length) a peer may send before it is dropped. */
export const MAX_BAD_CHUNKS = 3

/** A peer that says nothing for this long on a request is given up on. */
export const REQUEST_TIMEOUT_MS = 30_000
export const MAX_INBOUND_STREAMS = 64
export const MAX_OUTBOUND_STREAMS = 64
