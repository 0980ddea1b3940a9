/**
 * Reads lifeboat.yaml's nodes through the option model (model.ts): a key the model
 * does not declare is refused with the keys it does, each value is parsed by its
 * option's schema and a problem names the file, the line and the key, with a hint.
 */
import { isMap, type LineCounter, type Node, type YAMLMap } from 'yaml';
import type { z } from 'zod';
import { LifeboatError } from '../errors.js';
import { firstIssue, metaOf } from './schema.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const DOCS = 'see docs/configuration.md';

/** A key's problem as one line: `"interval" must be ...` or `"on": "fire" is not an event`. */
const keyMessage = (key: string, message: string) => (message.startsWith('must') ? `"${key}" ${message}` : `"${key}": ${message}`);

/** A schema with its optional wrapper taken off, to find nested objects. */
function unwrap(schema: z.ZodType): z.ZodType {
  const def = (schema as { def?: { type?: string; innerType?: z.ZodType } }).def;
  return def?.type === 'optional' && def.innerType ? unwrap(def.innerType) : schema;
}

/** What a read object holds: its values as the model parsed them, and each key's node (`retention.keep_within` for nested ones). */
interface Read<S extends z.ZodObject> {
  values: z.output<S>;
  nodes: Map<string, Node>;
}

/** Reads YAML nodes through the option model, failing with the file and line of the node at fault. */
export class Reader {
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  at(node: Node | null | undefined): string {
    const offset = node?.range?.[0];
    return offset === undefined ? this.file : `${this.file}:${this.lines.linePos(offset).line}`;
  }

  fail(node: Node | null | undefined, message: string, hint = DOCS): never {
    throw new LifeboatError('CONFIG_INVALID', `${this.at(node)}: ${message}`, { hint });
  }

  map(node: Node | null | undefined, what: string, hint = DOCS): YAMLMap {
    if (!isMap(node)) this.fail(node, `${what} must be a mapping`, hint);
    return node as YAMLMap;
  }

  /**
   * Reads a mapping through `schema`: a key the schema does not declare is refused,
   * each value is checked at its own line, a missing required key is reported at
   * `owner` as `<label> needs "key"` with the model's example.
   */
  object<S extends z.ZodObject>(node: Node | null | undefined, schema: S, where: string, owner: { node: Node | null | undefined; label: string; name: string }): Read<S> {
    const map = this.map(node, owner.label.replace(/^\w+ /, ''));
    const shape = schema.shape as Record<string, z.ZodType>;
    const known = Object.keys(shape);
    const values: Record<string, unknown> = {};
    const nodes = new Map<string, Node>();
    for (const pair of map.items) {
      const keyNode = pair.key as Node;
      const key = String((keyNode as { value?: unknown }).value);
      const field = shape[key];
      if (field === undefined) this.fail(keyNode, `unknown key "${key}" ${where}`, `known keys: ${known.join(', ')}`);
      const value = (pair.value as Node | null) ?? keyNode;
      nodes.set(key, value);
      const inner = unwrap(field);
      if ((inner as { def?: { type?: string } }).def?.type === 'object') {
        const at = where === 'in "server"' ? `in "server.${key}"` : `in the ${key} of "${owner.name}"`;
        const nested = this.object(value, inner as z.ZodObject, at, { node: value, label: `"${key}"`, name: owner.name });
        values[key] = nested.values;
        for (const [k, n] of nested.nodes) nodes.set(`${key}.${k}`, n);
        continue;
      }
      const raw = pair.value === null ? null : (pair.value as { toJSON(): unknown }).toJSON();
      const parsed = field.safeParse(raw);
      if (!parsed.success) {
        const issue = firstIssue(parsed.error);
        this.fail(value, keyMessage(key, issue.message), issue.hint ?? DOCS);
      }
      values[key] = parsed.data;
    }
    for (const key of known) {
      const field = shape[key] as z.ZodType;
      if (key in values || field.safeParse(undefined).success) continue;
      const example = metaOf(field)?.example;
      this.fail(owner.node ?? map, `${owner.label} needs "${key}"`, example ? `e.g. ${key}: ${example}` : DOCS);
    }
    return { values: values as z.output<S>, nodes };
  }

  name(key: Node, what: string): string {
    const name = String((key as { value?: unknown }).value);
    if (!NAME.test(name)) this.fail(key, `"${name}" is not a valid ${what} name`, 'use letters, digits, ".", "_" and "-", starting with a letter or digit');
    return name;
  }
}
