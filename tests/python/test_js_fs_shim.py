"""The JavaScript guest's workspace `fs` (guest-runtimes/javascript/src/fs.js) under Node (the
one `make setup` installs), against an in-memory stand-in for the host's workspace call that
speaks the bridge's protocol (src/workspace/bridge.rs) with a byte quota. Node's names and
error shapes must hold, so code written for Node's `fs` works; the real host call is exercised
through the MCP tool (test_sessions.py, tests/escapes/workspace.rs)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / ".tools" / "node22" / "node_modules" / ".bin" / "node"

SCRIPT = r"""
const assert = require('assert');
const { makeFs } = require(process.argv[process.argv.length - 1]);
const files = new Map(), dirs = new Set(['/workspace']);
const QUOTA = 4096;
const ok = (extra) => [JSON.stringify({ ok: true, ...extra }), new Uint8Array(0)];
const fail = (code, message) => [JSON.stringify({ ok: false, code, message }), new Uint8Array(0)];
const parentOf = (p) => p.slice(0, p.lastIndexOf('/')) || '/';
const used = () => [...files.values()].reduce((n, b) => n + b.length, 0);
function call(requestJson, data) {
  const r = JSON.parse(requestJson);
  const p = r.path.replace(/\/+$/, '');
  const entry = (q) => dirs.has(q)
    ? { name: q.split('/').pop(), path: q, kind: 'directory', size: 0, modified_ms: 0 }
    : { name: q.split('/').pop(), path: q, kind: 'file', size: files.get(q).length, modified_ms: 5 };
  switch (r.op) {
    case 'read':
      if (dirs.has(p)) return fail('EISDIR', 'is a directory');
      return files.has(p) ? [JSON.stringify({ ok: true }), files.get(p)] : fail('ENOENT', 'no such file or directory');
    case 'write': {
      if (!dirs.has(parentOf(p))) return fail('ENOENT', 'no such file or directory');
      if (r.mode === 'create_new' && files.has(p)) return fail('EEXIST', 'file exists');
      const old = files.get(p) ?? new Uint8Array(0);
      const next = r.mode === 'append' ? new Uint8Array([...old, ...data]) : data.slice();
      if (used() - old.length + next.length > QUOTA) return fail('ENOSPC', 'no space left in the workspace');
      files.set(p, next);
      return ok();
    }
    case 'stat':
      return dirs.has(p) || files.has(p) ? ok({ entry: entry(p) }) : fail('ENOENT', 'no such file or directory');
    case 'list': {
      if (!dirs.has(p)) return fail('ENOENT', 'no such file or directory');
      const names = new Set();
      for (const q of [...files.keys(), ...dirs]) if (q.startsWith(p + '/')) names.add(q.slice(p.length + 1).split('/')[0]);
      return ok({ entries: [...names].sort().map((n) => entry(p + '/' + n)) });
    }
    case 'mkdir': {
      const parts = p.split('/').slice(2);
      let at = '/workspace';
      for (const [i, part] of parts.entries()) {
        at += '/' + part;
        if (files.has(at)) return fail('ENOTDIR', 'not a directory');
        if (dirs.has(at)) { if (i === parts.length - 1 && !r.parents) return fail('EEXIST', 'file exists'); continue; }
        if (!r.parents && i < parts.length - 1) return fail('ENOENT', 'no such file or directory');
        dirs.add(at);
      }
      return ok();
    }
    case 'remove': {
      if (files.delete(p)) return ok();
      if (!dirs.has(p)) return fail('ENOENT', 'no such file or directory');
      const inside = [...files.keys(), ...dirs].filter((q) => q.startsWith(p + '/'));
      if (inside.length && !r.recursive) return fail('ENOTEMPTY', 'directory not empty');
      for (const q of inside) { files.delete(q); dirs.delete(q); }
      dirs.delete(p);
      return ok();
    }
    case 'rename':
      if (!files.has(p)) return fail('ENOENT', 'no such file or directory');
      files.set(r.to, files.get(p)); files.delete(p);
      return ok();
  }
  return fail('EINVAL', 'unknown operation');
}

const fs = makeFs(call);
(async () => {
  fs.mkdirSync('data/raw', { recursive: true });
  fs.writeFileSync('data/raw/sales.csv', 'region,amount\nnorth,3\nsouth,4\nnorth,5\n');
  const rows = fs.readFileSync('/workspace/data/raw/sales.csv', 'utf8').trim().split('\n').slice(1);
  assert.strictEqual(rows.filter((r) => r.startsWith('north')).map((r) => +r.split(',')[1]).reduce((a, b) => a + b), 8);
  const bytes = fs.readFileSync('data/raw/sales.csv');
  assert.ok(bytes instanceof Uint8Array && bytes.length === 38);
  fs.appendFileSync('log.txt', 'one\n');
  fs.appendFileSync('log.txt', 'two\n');
  assert.strictEqual(fs.readFileSync('log.txt', { encoding: 'utf8' }), 'one\ntwo\n');
  // Node's text encodings agree with Node's own Buffer, both ways.
  const sample = Uint8Array.from({ length: 257 }, (_, i) => (i * 37 + 11) & 0xff);
  for (const enc of ['utf8', 'base64', 'base64url', 'hex', 'latin1', 'binary', 'ascii']) {
    fs.writeFileSync('enc.bin', sample);
    assert.strictEqual(fs.readFileSync('enc.bin', enc), Buffer.from(sample).toString(enc), enc);
    const text = Buffer.from(sample).toString(enc);
    fs.writeFileSync('enc.txt', text, enc);
    assert.deepStrictEqual([...fs.readFileSync('enc.txt')], [...Buffer.from(text, enc)], enc);
  }
  fs.writeFileSync('lenient.bin', 'aGVs bG8=!!', 'base64');
  assert.strictEqual(fs.readFileSync('lenient.bin', 'utf8'), Buffer.from('aGVs bG8=!!', 'base64').toString());
  fs.writeFileSync('half.bin', 'abzz12', 'hex');
  assert.deepStrictEqual([...fs.readFileSync('half.bin')], [...Buffer.from('abzz12', 'hex')]);
  assert.throws(() => fs.readFileSync('enc.bin', 'utf16le'), (e) => e.code === 'ERR_UNKNOWN_ENCODING');
  for (const f of ['enc.bin', 'enc.txt', 'lenient.bin', 'half.bin']) fs.unlinkSync(f);
  fs.writeFileSync('img.bin', new Uint8Array([137, 80, 78, 71]));
  assert.deepStrictEqual([...fs.readFileSync('img.bin')], [137, 80, 78, 71]);
  assert.deepStrictEqual(fs.readdirSync('/workspace'), ['data', 'img.bin', 'log.txt']);
  const typed = fs.readdirSync('data', { withFileTypes: true });
  assert.ok(typed[0].isDirectory() && typed[0].name === 'raw');
  const st = fs.statSync('log.txt');
  assert.ok(st.isFile() && !st.isDirectory() && st.size === 8);
  assert.ok(fs.existsSync('data') && !fs.existsSync('nope'));
  assert.strictEqual(fs.statSync('nope', { throwIfNoEntry: false }), undefined);
  fs.renameSync('log.txt', 'data/log.txt');
  fs.unlinkSync('data/log.txt');
  assert.throws(() => fs.readFileSync('missing.txt'), (e) => e.code === 'ENOENT' && e.errno === -2 && e.syscall === 'open' && e.path === 'missing.txt' && /^ENOENT: /.test(e.message));
  assert.throws(() => fs.writeFileSync('img.bin', 'x', { flag: 'wx' }), (e) => e.code === 'EEXIST');
  assert.throws(() => fs.rmdirSync('data'), (e) => e.code === 'ENOTEMPTY');
  assert.throws(() => fs.rmSync('data'), (e) => e.code === 'EISDIR');
  const before = fs.readFileSync('img.bin');
  assert.throws(() => fs.writeFileSync('img.bin', 'x'.repeat(5000)), (e) => e.code === 'ENOSPC' && e.errno === -28);
  assert.deepStrictEqual(fs.readFileSync('img.bin'), before);
  await fs.promises.writeFile('p.txt', 'promised');
  assert.strictEqual(await fs.promises.readFile('p.txt', 'utf8'), 'promised');
  await assert.rejects(fs.promises.readFile('none'), (e) => e.code === 'ENOENT');
  fs.rmSync('data', { recursive: true });
  fs.rmSync('data', { recursive: true, force: true });
  assert.ok(!fs.existsSync('data'));
  console.log('ok');
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_node_style_fs_works_through_the_workspace_shim():
    done = subprocess.run(
        [str(NODE), "-e", SCRIPT, "--", str(ROOT / "guest-runtimes" / "javascript" / "src" / "fs.js")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr + done.stdout
