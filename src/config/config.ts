/**
 * lifeboat.yaml: named repositories (one store, or several destinations with a write
 * quorum), bandwidth limits and append-only mode. A bad file fails with the key and
 * line at fault. The daemon's sections (sources, schedules, ...) extend this schema.
 *
 *   repositories:
 *     main:
 *       stores:                      # one or more; the first is read first
 *         - /srv/lifeboat
 *         - s3:https://minio.example:9000/backups/main
 *         - azure:backups/main
 *       write_quorum: 2              # durable once 2 destinations stored it (default: all)
 *       limit_upload: 20480          # KiB/s (optional)
 *       limit_download: 0            # 0 or absent: unlimited
 *       append_only: false
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Node, type YAMLMap } from 'yaml';
import { LifeboatError, errno } from '../errors.js';

export interface RepositoryConfig {
  name: string;
  stores: string[];
  writeQuorum: number;
  limitUploadKiB?: number;
  limitDownloadKiB?: number;
  appendOnly: boolean;
}

export interface LifeboatConfig {
  file: string;
  repositories: Map<string, RepositoryConfig>;
}

const REPO_KEYS = new Set(['stores', 'write_quorum', 'limit_upload', 'limit_download', 'append_only']);
const TOP_KEYS = new Set(['repositories']);

export function loadConfig(file: string): LifeboatConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LifeboatError('USAGE', `cannot read the configuration ${file}: ${errno(err) ?? String(err)}`, {
      hint: 'check --config / LIFEBOAT_CONFIG',
    });
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): LifeboatConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const at = (node: Node | null | undefined): string => {
    const offset = node?.range?.[0];
    return offset === undefined ? file : `${file}:${lines.linePos(offset).line}`;
  };
  const fail = (node: Node | null | undefined, message: string, hint: string): never => {
    throw new LifeboatError('USAGE', `${at(node)}: ${message}`, { hint });
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0] as { message: string; linePos?: Array<{ line: number }> };
    throw new LifeboatError('USAGE', `${file}:${e.linePos?.[0]?.line ?? '?'}: not valid YAML: ${e.message.split('\n')[0]}`, {
      hint: 'fix the YAML syntax (indentation, a missing colon)',
    });
  }
  const root = doc.contents;
  const repositories = new Map<string, RepositoryConfig>();
  if (root === null || root === undefined) return { file, repositories };
  if (!isMap(root)) return fail(root, 'the file must be a mapping of sections', 'start with `repositories:`');
  for (const pair of root.items) {
    const key = String((pair.key as { value?: unknown }).value);
    if (!TOP_KEYS.has(key)) fail(pair.key as Node, `unknown section "${key}"`, `known sections: ${[...TOP_KEYS].join(', ')}`);
  }
  const repos = root.get('repositories', true) as Node | undefined;
  if (repos === undefined) return { file, repositories };
  if (!isMap(repos)) return fail(repos, '"repositories" must map names to repositories', 'see docs/storage.md');
  for (const pair of (repos as YAMLMap).items) {
    const name = String((pair.key as { value?: unknown }).value);
    const value = pair.value as Node | null;
    if (!isMap(value)) fail(value ?? (pair.key as Node), `repository "${name}" must be a mapping`, 'give it at least `stores:`');
    const map = value as YAMLMap;
    for (const p of map.items) {
      const k = String((p.key as { value?: unknown }).value);
      if (!REPO_KEYS.has(k)) fail(p.key as Node, `unknown key "${k}" in repository "${name}"`, `known keys: ${[...REPO_KEYS].join(', ')}`);
    }
    const storesNode = map.get('stores', true) as Node | undefined;
    if (!isSeq(storesNode) || storesNode.items.length === 0) {
      fail(storesNode ?? value, `repository "${name}" needs "stores": a list of one or more locations`, 'e.g. stores: [/srv/lifeboat, s3:https://host/bucket/prefix]');
    }
    const stores = (storesNode as { items: Node[] }).items.map((item) => {
      if (!isScalar(item) || typeof item.value !== 'string' || item.value === '') fail(item, 'a store location must be a non-empty string', 'quote it if it contains ": "');
      return (item as { value: string }).value;
    });
    const integer = (k: string, min: number, max: number): number | undefined => {
      const node = map.get(k, true) as Node | undefined;
      if (node === undefined) return undefined;
      const v = isScalar(node) ? node.value : undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(node, `"${k}" must be a whole number from ${min} to ${max}`, 'see docs/storage.md');
      return v as number;
    };
    const writeQuorum = integer('write_quorum', 1, stores.length) ?? stores.length;
    const up = integer('limit_upload', 0, 1e9);
    const down = integer('limit_download', 0, 1e9);
    const aoNode = map.get('append_only', true) as Node | undefined;
    if (aoNode !== undefined && !(isScalar(aoNode) && typeof aoNode.value === 'boolean')) fail(aoNode, '"append_only" must be true or false', 'see docs/storage.md');
    repositories.set(name, {
      name,
      stores,
      writeQuorum,
      ...(up ? { limitUploadKiB: up } : {}),
      ...(down ? { limitDownloadKiB: down } : {}),
      appendOnly: aoNode !== undefined && (aoNode as { value: boolean }).value,
    });
  }
  return { file, repositories };
}
