// The workspace for JavaScript and TypeScript code: a synchronous `fs` with Node's names for the
// common calls, plus `fs.promises`, on `/workspace` (relative paths resolve there), through the
// host's one workspace call (src/workspace/bridge.rs): `call(requestJson, bytes)` answers
// `[answerJson, bytes]`. Errors are Node's: an Error with `code` ('ENOENT', 'ENOSPC', ...),
// `errno`, `syscall` and `path`.
//
// The guest's prelude calls `makeFs(natives.workspace)` and offers the result as the global `fs`
// and through `require('fs')` / `require('fs/promises')`.
'use strict';

function makeFs(call) {
  const MOUNT = '/workspace';
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const ERRNO = {
    ENOENT: -2, EIO: -5, EBADF: -9, EACCES: -13, EBUSY: -16, EEXIST: -17, ENOTDIR: -20,
    EISDIR: -21, EINVAL: -22, EFBIG: -27, ENOSPC: -28, ENAMETOOLONG: -36, ENOTEMPTY: -39,
    EPERM: -1, EDQUOT: -122,
  };

  function resolve(path) {
    if (path instanceof URL) path = path.pathname;
    if (typeof path !== 'string') {
      throw new TypeError('The "path" argument must be of type string or an instance of URL');
    }
    return path.startsWith('/') ? path : MOUNT + '/' + path;
  }

  function fail(code, message, syscall, path) {
    const error = new Error(`${code}: ${message}, ${syscall} '${path}'`);
    error.code = code;
    error.errno = ERRNO[code] ?? ERRNO.EIO;
    error.syscall = syscall;
    error.path = path;
    return error;
  }

  function ask(request, syscall, shownPath, data) {
    const [answerJson, bytes] = call(JSON.stringify(request), data ?? new Uint8Array(0));
    const answer = JSON.parse(answerJson);
    if (!answer.ok) throw fail(answer.code, answer.message, syscall, shownPath);
    // The host hands back an ArrayBuffer; a read is a Uint8Array, as Node's Buffer is one.
    return [answer, bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)];
  }

  // Node's text encodings for file contents (`'binary'` is `'latin1'`).
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  function encodingName(encoding) {
    const e = String(encoding).toLowerCase();
    if (e === 'utf8' || e === 'utf-8') return 'utf8';
    if (e === 'binary') return 'latin1';
    if (['base64', 'base64url', 'hex', 'latin1', 'ascii'].includes(e)) return e;
    const error = new TypeError(`Unknown encoding: ${encoding}`);
    error.code = 'ERR_UNKNOWN_ENCODING';
    throw error;
  }

  function toText(bytes, encoding) {
    switch (encodingName(encoding)) {
      case 'utf8': return decoder.decode(bytes);
      case 'hex': return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
      case 'latin1': return Array.from(bytes, (b) => String.fromCharCode(b)).join('');
      case 'ascii': return Array.from(bytes, (b) => String.fromCharCode(b & 0x7f)).join('');
      default: {
        let out = '';
        for (let i = 0; i < bytes.length; i += 3) {
          const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
          const left = bytes.length - i;
          out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
          out += left > 1 ? B64[(n >> 6) & 63] : '=';
          out += left > 2 ? B64[n & 63] : '=';
        }
        return encodingName(encoding) === 'base64url'
          ? out.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
          : out;
      }
    }
  }

  function fromText(text, encoding) {
    switch (encodingName(encoding)) {
      case 'utf8': return encoder.encode(text);
      case 'hex': {
        // As Node: pairs of hex digits, up to the first that is not one.
        const out = [];
        for (let i = 0; i + 1 < text.length; i += 2) {
          const byte = parseInt(text.slice(i, i + 2), 16);
          if (!/^[0-9a-fA-F]{2}$/.test(text.slice(i, i + 2))) break;
          out.push(byte);
        }
        return Uint8Array.from(out);
      }
      case 'latin1': return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
      case 'ascii': return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
      default: {
        // As Node: both alphabets, other characters skipped, up to the padding.
        const out = [];
        let bits = 0, value = 0;
        for (const c of text) {
          if (c === '=') break;
          const d = c === '-' ? 62 : c === '_' ? 63 : B64.indexOf(c);
          if (d < 0) continue;
          value = (value << 6) | d;
          bits += 6;
          if (bits >= 8) {
            bits -= 8;
            out.push((value >> bits) & 0xff);
          }
        }
        return Uint8Array.from(out);
      }
    }
  }

  function toBytes(data, encoding) {
    if (typeof data === 'string') return encoding ? fromText(data, encoding) : encoder.encode(data);
    if (data instanceof Uint8Array) return data;
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    throw new TypeError('The "data" argument must be a string, a typed array or an ArrayBuffer');
  }

  function encodingOf(options) {
    return typeof options === 'string' ? options : options?.encoding ?? null;
  }

  function stats(entry) {
    const isDir = entry.kind === 'directory';
    return {
      size: entry.size,
      mtimeMs: entry.modified_ms,
      mtime: new Date(entry.modified_ms),
      isFile: () => !isDir,
      isDirectory: () => isDir,
      isSymbolicLink: () => false,
    };
  }

  const fs = {
    readFileSync(path, options) {
      const [, bytes] = ask({ op: 'read', path: resolve(path) }, 'open', path);
      const encoding = encodingOf(options);
      return encoding ? toText(bytes, encoding) : bytes;
    },
    writeFileSync(path, data, options) {
      const mode = options?.flag === 'wx' ? 'create_new' : options?.flag === 'a' ? 'append' : 'replace';
      ask({ op: 'write', path: resolve(path), mode }, 'open', path, toBytes(data, encodingOf(options)));
    },
    appendFileSync(path, data, options) {
      ask({ op: 'write', path: resolve(path), mode: 'append' }, 'open', path, toBytes(data, encodingOf(options)));
    },
    existsSync(path) {
      try {
        ask({ op: 'stat', path: resolve(path) }, 'stat', path);
        return true;
      } catch {
        return false;
      }
    },
    statSync(path, options) {
      try {
        return stats(ask({ op: 'stat', path: resolve(path) }, 'stat', path)[0].entry);
      } catch (e) {
        if (options?.throwIfNoEntry === false && e.code === 'ENOENT') return undefined;
        throw e;
      }
    },
    readdirSync(path, options) {
      const [answer] = ask({ op: 'list', path: resolve(path) }, 'scandir', path);
      if (options?.withFileTypes) {
        return answer.entries.map((e) => ({
          name: e.name,
          parentPath: path,
          isFile: () => e.kind === 'file',
          isDirectory: () => e.kind === 'directory',
          isSymbolicLink: () => false,
        }));
      }
      return answer.entries.map((e) => e.name);
    },
    mkdirSync(path, options) {
      const parents = Boolean(options?.recursive);
      ask({ op: 'mkdir', path: resolve(path), parents }, 'mkdir', path);
      return parents ? resolve(path) : undefined;
    },
    rmSync(path, options) {
      try {
        const [answer] = ask({ op: 'stat', path: resolve(path) }, 'rm', path);
        if (answer.entry.kind === 'directory' && !options?.recursive) {
          throw fail('EISDIR', 'is a directory (use { recursive: true })', 'rm', path);
        }
        ask({ op: 'remove', path: resolve(path), recursive: true }, 'rm', path);
      } catch (e) {
        if (!(options?.force && e.code === 'ENOENT')) throw e;
      }
    },
    unlinkSync(path) {
      const [answer] = ask({ op: 'stat', path: resolve(path) }, 'unlink', path);
      if (answer.entry.kind === 'directory') throw fail('EISDIR', 'is a directory', 'unlink', path);
      ask({ op: 'remove', path: resolve(path), recursive: false }, 'unlink', path);
    },
    rmdirSync(path, options) {
      const [answer] = ask({ op: 'stat', path: resolve(path) }, 'rmdir', path);
      if (answer.entry.kind !== 'directory') throw fail('ENOTDIR', 'not a directory', 'rmdir', path);
      ask({ op: 'remove', path: resolve(path), recursive: Boolean(options?.recursive) }, 'rmdir', path);
    },
    renameSync(from, to) {
      ask({ op: 'rename', path: resolve(from), to: resolve(to) }, 'rename', from);
    },
  };
  // The promise forms settle at once: the host call is synchronous.
  const promises = {};
  for (const [sync, name] of [
    ['readFileSync', 'readFile'], ['writeFileSync', 'writeFile'], ['appendFileSync', 'appendFile'],
    ['statSync', 'stat'], ['readdirSync', 'readdir'], ['mkdirSync', 'mkdir'], ['rmSync', 'rm'],
    ['unlinkSync', 'unlink'], ['rmdirSync', 'rmdir'], ['renameSync', 'rename'],
  ]) {
    promises[name] = (...args) => {
      try {
        return Promise.resolve(fs[sync](...args));
      } catch (e) {
        return Promise.reject(e);
      }
    };
  }
  fs.promises = promises;
  // Node's callback forms: the callback runs as a microtask, with (error) or (null, value).
  for (const name of Object.keys(promises)) {
    fs[name] = (...args) => {
      const callback = args.pop();
      if (typeof callback !== 'function') {
        throw new TypeError('The "cb" argument must be of type function');
      }
      promises[name](...args).then((value) => callback(null, value), (error) => callback(error));
    };
  }
  return fs;
}

if (typeof module !== 'undefined') module.exports = { makeFs };
