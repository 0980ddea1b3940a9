/**
 * docs/configuration.md's key reference, rendered from the option model so the two
 * cannot drift: `npx tsx scripts/config-docs.ts` rewrites the part between the
 * markers, and test/unit/config-docs.test.ts fails when the file disagrees.
 */
import type { z } from 'zod';
import { sourceKinds } from '../sources/registry.js';
import { checkQueryOptions, groupCheckOptions, groupOptions, notificationOptions, repositoryOptions, restoreRequestOptions, retentionOptions, scheduleOptions, serverOptions, sourceCommonOptions, targetOptions, tokenExpires } from './model.js';
import { isDurationInput, metaOf, placesOf } from './schema.js';
import { graphOptions } from '../sources/graph/options.js';

export const BEGIN = '<!-- BEGIN generated from src/config/model.ts by `npx tsx scripts/config-docs.ts`; edit the model, not this -->';
export const END = '<!-- END generated -->';

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  element?: z.ZodType;
  entries?: Record<string, string>;
  values?: unknown[];
}
const defOf = (s: z.ZodType) => (s as unknown as { def: Def }).def;

/** How a value of this schema is written, in a few words. */
export function typeName(schema: z.ZodType): string {
  const def = defOf(schema);
  switch (def.type) {
    case 'optional':
    case 'default':
      return typeName(def.innerType as z.ZodType);
    case 'pipe':
      return isDurationInput(def.in as z.ZodType) ? 'duration' : typeName(def.in as z.ZodType);
    case 'string':
      return 'string';
    case 'number':
    case 'int':
      return 'whole number';
    case 'boolean':
      return 'true or false';
    case 'enum':
      return Object.values(def.entries ?? {}).map((v) => `\`${v}\``).join(' \\| ');
    case 'literal':
      return (def.values ?? []).map((v) => `\`${String(v)}\``).join(' \\| ');
    case 'array':
      return `list of ${typeName(def.element as z.ZodType)}s`;
    case 'record':
      return 'mapping';
    case 'object':
      return 'mapping';
    case 'union': {
      const names = [...new Set((def.options ?? []).map(typeName))];
      // One string or a list of them reads as the list.
      if (names.length === 2 && names[0] === 'string' && names[1] === 'list of strings') return 'string or list of strings';
      return names.join(' or ');
    }
    default:
      return def.type;
  }
}

function required(schema: z.ZodType): boolean {
  return !schema.safeParse(undefined).success;
}

function table(shape: Record<string, z.ZodType>, prefix = ''): string {
  const rows = Object.entries(shape).map(([key, schema]) => {
    const meta = metaOf(schema);
    const where = placesOf(meta)
      .map((p) => (p === 'file' ? 'file' : p === 'flag' ? `\`${meta?.flag}\`` : p === 'env' ? `\`${meta?.env}\`` : 'API'))
      .join(', ');
    const dflt = required(schema) ? '**required**' : meta?.shown === undefined ? '—' : / /.test(meta.shown) ? meta.shown : `\`${meta.shown}\``;
    return `| \`${prefix}${key}\` | ${typeName(schema)} | ${dflt} | ${where} | ${(meta?.description ?? '').replace(/\|/g, '\\|')} |`;
  });
  return ['| key | type | default | also | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}

const shapeOf = (o: z.ZodObject) => o.shape as Record<string, z.ZodType>;

/** The generated reference, without the markers. */
export function configReference(): string {
  const parts = [
    '## Keys',
    '',
    'Every key of every section. "also" names where the same option is given elsewhere, with the same',
    'type and the same parser: a flag, an environment variable, an API body.',
    '',
    '### repositories.NAME',
    '',
    table(shapeOf(repositoryOptions())),
    '',
    '### sources.NAME (every kind)',
    '',
    table(shapeOf(sourceCommonOptions())),
    '',
    '`retention`:',
    '',
    table(shapeOf(retentionOptions()), 'retention.'),
    '',
    '`targets`:',
    '',
    table(shapeOf(targetOptions()), 'targets.'),
    '',
    ...sourceKinds().flatMap((kind) => [`### sources.NAME with \`kind: ${kind.name}\``, '', table(shapeOf(kind.options)), '']),
    `### sources.NAME.graph (\`kind: ${sourceKinds().filter((k) => 'graph' in k.options.shape).map((k) => k.name).join('`, `')}\`; docs/graph.md)`,
    '',
    table(shapeOf(graphOptions()), 'graph.'),
    '',
    '### schedules.NAME',
    '',
    table(shapeOf(scheduleOptions())),
    '',
    '### groups.NAME (docs/groups.md)',
    '',
    table(shapeOf(groupOptions())),
    '',
    '`checks` (each entry):',
    '',
    table(shapeOf(groupCheckOptions()), 'checks[].'),
    '',
    '`every` and `in` (one of `redis`, `sql`, `files`, fitting the member\'s kind):',
    '',
    table(shapeOf(checkQueryOptions()), 'checks[].every.'),
    '',
    '### notifications.NAME',
    '',
    table(shapeOf(notificationOptions())),
    '',
    '### server',
    '',
    table(shapeOf(serverOptions())),
    '',
    '### API tokens (`token create`, `POST /api/v1/tokens`; not in lifeboat.yaml)',
    '',
    table({ expires: tokenExpires() }),
    '',
    '### Restores (the restore commands, `POST /api/v1/restores` and `/recoveries`; not in lifeboat.yaml)',
    '',
    table(shapeOf(restoreRequestOptions())),
  ];
  return parts.join('\n');
}

/** `doc` with the part between the markers replaced by the current reference. */
export function withReference(doc: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error(`the markers are missing: ${BEGIN} ... ${END}`);
  return `${doc.slice(0, start + BEGIN.length)}\n\n${configReference()}\n\n${doc.slice(end)}`;
}
