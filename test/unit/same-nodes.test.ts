/**
 * sameNodes lets an unchanged directory reuse its parent's tree id without encoding
 * and hashing: it may say "same" only when encodeTree would give the same bytes.
 */
import { lstatSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sameNodes, unchangedFile } from '../../src/engine/backup/archiver.js';
import { decodeTree, encodeTree, type TreeNode } from '../../src/repo/snapshot/tree.js';
import { nodeFromStat } from '../../src/sources/files/metadata.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-same-'));
writeFileSync(path.join(dir, 'a'), 'a');
writeFileSync(path.join(dir, 'b'), 'b');
const file = (name: string): TreeNode => ({ ...nodeFromStat(name, lstatSync(path.join(dir, name), { bigint: true })), content: ['11'.repeat(32)] });
/** The entries as a later backup sees them: read back from the stored tree's bytes. */
const stored = (nodes: TreeNode[]): TreeNode[] => decodeTree(encodeTree({ nodes: nodes.map((n) => ({ ...n })) }), 't').nodes;

describe('sameNodes', () => {
  it('says same for entries read back from the stored tree, and then the bytes are equal', () => {
    const now = [file('a'), file('b')];
    const prev = stored(now);
    expect(sameNodes(now, prev)).toBe(true);
    expect(encodeTree({ nodes: now }).equals(encodeTree({ nodes: prev }))).toBe(true);
  });

  it('says different for any change the encoding would show', () => {
    const prev = stored([file('a'), file('b')]);
    const variants: Array<(n: TreeNode[]) => void> = [
      (n) => void (n[0]!.mtime = `${BigInt(n[0]!.mtime) + 1n}`),
      (n) => void (n[1]!.size = (n[1]!.size ?? 0) + 1),
      (n) => void (n[0]!.content = ['22'.repeat(32)]),
      (n) => void (n[0]!.content = [...n[0]!.content!, '33'.repeat(32)]),
      (n) => void (n[0]!.mode ^= 0o100),
      (n) => void n.pop(),
      (n) => void n.reverse(),
      (n) => void (n[0]!.atime = '1'),
      (n) => void ((n[0] as unknown as Record<string, unknown>).target = undefined), // a key the stored tree has not, even undefined
      (n) => void (n[0]!.object = { key: 'a', etag: 'e', lastModified: '' }),
      (n) => {
        // The same values with the keys in another order encode differently.
        const { name, ...rest } = n[0]!;
        n[0] = { ...rest, name } as TreeNode;
      },
    ];
    for (const change of variants) {
      const now = [file('a'), file('b')];
      change(now);
      expect(sameNodes(now, prev), change.toString()).toBe(false);
    }
  });

  it('says different for an object value even when it encodes the same (no deep comparison)', () => {
    const obj = { key: 'a', etag: 'e', lastModified: '' };
    const prev = stored([{ ...file('a'), object: obj }]);
    expect(sameNodes([{ ...file('a'), object: { ...obj } }], prev)).toBe(false);
  });
});

describe('unchangedFile', () => {
  const lstat = (name: string): TreeNode => nodeFromStat(name, lstatSync(path.join(dir, name), { bigint: true }));
  /** What the backup stored before this change: the node with the parent's content ids. */
  const expected = (node: TreeNode, prev: TreeNode) => encodeTree({ nodes: [{ ...node, content: prev.content ?? [] }] });

  it("is the parent's node itself when only the content ids were left to take", () => {
    const [prev] = stored([file('a')]);
    expect(unchangedFile(lstat('a'), prev!)).toBe(prev);
  });

  it('is the lstat node with the content ids, encoding as before, when anything but the content differs', () => {
    const [prev] = stored([file('a')]);
    const variants: Array<(n: TreeNode) => void> = [
      (n) => void (n.mode ^= 0o100),
      (n) => void (n.uid += 1),
      (n) => void (n.nlink += 1),
      (n) => void (n.atime = '1'),
      (n) => void (n.name = 'b'),
    ];
    for (const change of variants) {
      const now = lstat('a');
      change(now);
      const got = unchangedFile(now, prev!);
      expect(got, change.toString()).not.toBe(prev);
      expect(encodeTree({ nodes: [got] }).equals(expected(now, prev!)), change.toString()).toBe(true);
    }
  });

  it('is the lstat node when the stored one has another key last instead of content', () => {
    const { content: _, ...rest } = file('a');
    const [prev] = stored([{ ...rest, target: 'x' } as TreeNode]);
    const got = unchangedFile(lstat('a'), prev!);
    expect(got).not.toBe(prev);
    expect(encodeTree({ nodes: [got] }).equals(expected(lstat('a'), prev!))).toBe(true);
  });

  it('is the lstat node when the stored one has its content elsewhere than last', () => {
    const { content, ...rest } = file('a');
    const [prev] = stored([{ content, ...rest } as TreeNode]);
    const got = unchangedFile(lstat('a'), prev!);
    expect(got).not.toBe(prev);
    expect(encodeTree({ nodes: [got] }).equals(expected(lstat('a'), prev!))).toBe(true);
  });
});
