import '../core/polyfill.js'
import test from 'ava'
import { normalizePath, normalizePrefix, validateVolumeName, MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from '../core/paths.js'
import { InvalidInputError, type ErrorCode } from '../core/errors.js'
import { httpStatusOf } from '../api/error-status.js'

function rejects (t: import('ava').ExecutionContext, fn: () => unknown, code: ErrorCode): void {
  const err = t.throws(fn, { instanceOf: InvalidInputError })
  t.is(err?.code, code)
  t.is(err === undefined ? undefined : httpStatusOf(err), 400)
}

// A path of exactly `bytes` bytes (leading slash included) made of 200-byte segments.
function pathOfBytes (bytes: number): string {
  let p = ''
  while (p.length + 201 <= bytes) p += '/' + 'x'.repeat(200)
  const rest = bytes - p.length - 1
  return rest > 0 ? p + '/' + 'y'.repeat(rest) : p
}

const acceptedPaths: Array<[unknown, string]> = [
  ['a', '/a'],
  ['/a', '/a'],
  ['a/b/c', '/a/b/c'],
  ['/a/b/c', '/a/b/c'],
  ['a.txt', '/a.txt'],
  ['.hidden', '/.hidden'],
  ['..dots', '/..dots'],
  ['dots..', '/dots..'],
  ['...', '/...'],
  ['a/.b/c', '/a/.b/c'],
  ['with space/and-dash_underscore', '/with space/and-dash_underscore'],
  ['ünïcödé/日本語/файл.txt', '/ünïcödé/日本語/файл.txt'],
  ['emoji/😀.png', '/emoji/😀.png'],
  ['percent%2F/literal', '/percent%2F/literal'],
  ['colon:semi;', '/colon:semi;'],
  ['x'.repeat(MAX_SEGMENT_BYTES), '/' + 'x'.repeat(MAX_SEGMENT_BYTES)],
  ['日'.repeat(85), '/' + '日'.repeat(85)], // 255 bytes of UTF-8
  [pathOfBytes(MAX_PATH_BYTES), pathOfBytes(MAX_PATH_BYTES)]
]

for (const [input, expected] of acceptedPaths) {
  test(`normalizePath accepts ${JSON.stringify(input).slice(0, 60)}`, t => {
    t.is(normalizePath(input), expected)
    t.is(normalizePath(expected), expected, 'normal form is a fixed point')
  })
}

const rejectedPaths: Array<[string, unknown]> = [
  ['empty string', ''],
  ['root only', '/'],
  ['non-string number', 42],
  ['undefined', undefined],
  ['null', null],
  ['object', { path: '/a' }],
  ['..', '..'],
  ['/..', '/..'],
  ['../etc/passwd', '../etc/passwd'],
  ['a/../b', 'a/../b'],
  ['a/..', 'a/..'],
  ['.', '.'],
  ['./a', './a'],
  ['a/./b', 'a/./b'],
  ['a/.', 'a/.'],
  ['double slash inside', 'a//b'],
  ['double leading slash', '//a'],
  ['trailing slash', 'a/'],
  ['trailing slash after dir', '/a/b/'],
  ['NUL', 'a\u0000b'],
  ['NUL at end', 'a\u0000'],
  ['newline', 'a\nb'],
  ['tab', 'a\tb'],
  ['carriage return', 'a\rb'],
  ['escape', 'a\u001bb'],
  ['unit separator', 'a\u001fb'],
  ['DEL', 'a\u007fb'],
  ['backslash', 'a\\b'],
  ['backslash traversal', '..\\..\\x'],
  ['segment over 255 bytes', 'x'.repeat(MAX_SEGMENT_BYTES + 1)],
  ['multibyte segment over 255 bytes', '日'.repeat(86)],
  ['path over 4096 bytes', pathOfBytes(MAX_PATH_BYTES + 1)],
  ['lone high surrogate', 'a\ud800b'],
  ['lone low surrogate', 'a\udc00'],
  ['very long path', 'a/'.repeat(100000) + 'b']
]

for (const [name, input] of rejectedPaths) {
  test(`normalizePath rejects ${name}`, t => { rejects(t, () => normalizePath(input), 'BAD_PATH') })
}

test('paths differing only in lone surrogates do not alias', t => {
  // If such paths were accepted they would encode to the same UTF-8 key (U+FFFD).
  t.throws(() => normalizePath('/\ud800'))
  t.throws(() => normalizePath('/\ud801'))
})

const acceptedPrefixes: Array<[unknown, string]> = [
  [undefined, '/'],
  [null, '/'],
  ['', '/'],
  ['/', '/'],
  ['a', '/a'],
  ['/a', '/a'],
  ['a/', '/a/'],
  ['/a/b/', '/a/b/'],
  ['日本/', '/日本/']
]

for (const [input, expected] of acceptedPrefixes) {
  test(`normalizePrefix accepts ${JSON.stringify(input)}`, t => { t.is(normalizePrefix(input), expected) })
}

const rejectedPrefixes: Array<[string, unknown]> = [
  ['number', 5],
  ['object', {}],
  ['..', '..'],
  ['../', '../'],
  ['a/../', 'a/../'],
  ['./', './'],
  ['double trailing slash', 'a//'],
  ['double leading slash', '//'],
  ['empty segment', 'a//b/'],
  ['NUL', 'a\u0000/'],
  ['control char', '\u0001'],
  ['backslash', 'a\\'],
  ['over 4096 bytes', pathOfBytes(MAX_PATH_BYTES + 1)]
]

for (const [name, input] of rejectedPrefixes) {
  test(`normalizePrefix rejects ${name}`, t => { rejects(t, () => normalizePrefix(input), 'BAD_PATH') })
}

const acceptedNames = ['a', '0', 'vol', 'my-vol', 'my_vol', 'my.vol', 'v1.2-3_4', 'a'.repeat(63), '9lives', 'a-', 'a.']

for (const name of acceptedNames) {
  test(`validateVolumeName accepts ${JSON.stringify(name)}`, t => { t.is(validateVolumeName(name), name) })
}

const rejectedNames: Array<[string, unknown]> = [
  ['empty', ''],
  ['64 chars', 'a'.repeat(64)],
  ['uppercase', 'Vol'],
  ['leading dash', '-vol'],
  ['leading dot', '.vol'],
  ['leading underscore', '_vol'],
  ['dot', '.'],
  ['dot dot', '..'],
  ['slash', 'a/b'],
  ['backslash', 'a\\b'],
  ['space', 'a b'],
  ['NUL', 'a\u0000'],
  ['newline', 'a\n'],
  ['trailing newline only', 'vol\n'],
  ['unicode', 'völ'],
  ['percent', 'a%20b'],
  ['colon', 'a:b'],
  ['number', 5],
  ['undefined', undefined],
  ['null', null],
  ['array', ['a']]
]

for (const [name, input] of rejectedNames) {
  test(`validateVolumeName rejects ${name}`, t => { rejects(t, () => validateVolumeName(input), 'BAD_VOLUME_NAME') })
}
