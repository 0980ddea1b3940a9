/**
 * The building blocks of the option model (model.ts): zod types whose error messages
 * read well after a key name ("interval" must be a duration: ...), and the metadata
 * each option carries so that the lifeboat.yaml reader, the CLI flags, the API's JSON
 * Schema and docs/configuration.md are all derived from one declaration.
 */
import * as z from 'zod';
import { parseTargetTime } from '../engine/target-time.js';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { DurationError, durationMs, parseDuration, type Duration } from '../util/duration.js';

/** Where an option may be given. */
export type Place = 'file' | 'flag' | 'env' | 'api';

export interface OptionMeta {
  /** One sentence for docs/configuration.md, the flag's help and the JSON Schema. */
  description: string;
  /** How the default reads in the docs when the schema's own default does not say it (e.g. "all stores"). */
  shown?: string;
  /** An example value, for the hint when a required key is missing. */
  example?: string;
  /** Besides lifeboat.yaml: the flag (`--keep-within`) or environment variable spelling the same option. */
  flag?: string;
  env?: string;
  api?: boolean;
  /** false: not a lifeboat.yaml key (only a flag or an API field). */
  file?: false;
}

/**
 * A schema built the first time it is asked for, and the same object every time after
 * (option metadata and JSON Schema are keyed by the object). The modules that declare the
 * option model load on every CLI start, and building their ~200 schemas at load was ~12% of
 * the CPU of a start that reads no lifeboat.yaml (docs/performance.md, "Where the test
 * suite's time goes").
 */
export function lazily<T>(build: () => T): () => T {
  let made: T | undefined;
  return () => {
    if (made === undefined) {
      made = build();
      lazilyMade++;
    }
    return made;
  };
}

let lazilyMade = 0;

/** How many lazily() schemas this process has built (test/e2e/startup.test.ts: none at load). */
export function lazilyBuilt(): number {
  return lazilyMade;
}

/** Attaches the documentation of an option to its schema (zod's global registry, so JSON Schema sees it). */
export function option<T extends z.ZodType>(schema: T, meta: OptionMeta): T {
  return schema.meta({ ...meta }) as T;
}

/** The metadata given to option(), if any. */
export function metaOf(schema: z.ZodType): OptionMeta | undefined {
  return z.globalRegistry.get(schema) as OptionMeta | undefined;
}

/** Where an option appears, for the docs: the file (unless file: false), plus what its metadata names. */
export function placesOf(meta: OptionMeta | undefined): Place[] {
  return [...(meta?.file === false ? [] : (['file'] as const)), ...(meta?.flag ? (['flag'] as const) : []), ...(meta?.env ? (['env'] as const) : []), ...(meta?.api ? (['api'] as const) : [])];
}

export const text = () => z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' });

/** One string or a list of them; always a list after parsing. As a flag, repeatable (cli/commands/options.ts flagOf). */
export const texts = () => {
  const one = text();
  const list = z.union([one.transform((s) => [s]), z.array(z.string({ error: 'must be a list of strings' }).min(1, { error: 'must be a list of non-empty strings' }), { error: 'must be a list of strings' })], {
    error: 'must be a list of strings',
  });
  TEXTS.set(list, one);
  return list;
};

/** The schemas made by texts(), each with the schema of one of its strings. */
const TEXTS = new WeakMap<object, z.ZodType<string>>();

/** The schema inside optional/default/nullable wrappers (an option's own type). */
export function innerOf(schema: z.ZodType): z.ZodType {
  let s = schema as z.ZodType;
  for (;;) {
    const def = (s as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } })._zod.def;
    if ((def.type === 'optional' || def.type === 'default' || def.type === 'nullable') && def.innerType) s = def.innerType;
    else return s;
  }
}

/** For a list of strings (texts(), given once per value as a flag): the schema of one value; otherwise undefined. */
export function textsElement(schema: z.ZodType): z.ZodType<string> | undefined {
  return TEXTS.get(innerOf(schema));
}

export const whole = (min: number, max: number) => {
  const error = `must be a whole number from ${min} to ${max}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
};

export const yesNo = () => z.boolean({ error: 'must be true or false' });

export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `must be one of ${values.join(', ')}` });

export interface DurationRule {
  /** Smallest accepted length, as a duration in the grammar ("1min"); default: more than zero. */
  min?: string;
  /** Accept 0 (e.g. prune's grace). */
  zero?: boolean;
}

/**
 * A duration in the one grammar (util/duration.ts), parsed to its typed value. Numbers
 * are refused (YAML reads `interval: 2` as a number): a bare number has no unit. The
 * issue's params carry the grammar's hint for the caller's error.
 */
export function duration(rule: DurationRule = {}) {
  const min = rule.min === undefined ? undefined : parseDuration(rule.min);
  const input = z.union([z.string(), z.number()], { error: 'must be a duration such as 30s, 5min, 1h or 7d' });
  DURATION_INPUTS.add(input);
  return input.transform((raw, ctx): Duration => {
    try {
      const d = parseDuration(String(raw));
      const ms = durationMs(d);
      if (ms === 0 && !rule.zero) throw new DurationError(`must be more than zero`, 'e.g. 30s, 5min, 1h or 7d');
      if (min !== undefined && ms < durationMs(min) && !(ms === 0 && rule.zero)) throw new DurationError(`must be at least ${rule.min}`, `e.g. ${rule.min} or longer`);
      return d;
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message.startsWith('must') ? err.message : `must be a duration: ${err.message}`, params: { hint: err.hint }, input: raw });
      return z.NEVER;
    }
  });
}

/**
 * A recovery target moment, checked by the one parser of such moments
 * (engine/target-time.ts: RFC 3339 with a zone, not in the future) and kept as written;
 * a refusal carries that parser's hint.
 */
export function moment() {
  return z.string({ error: 'must be an RFC 3339 time such as 2026-11-21T14:30:00Z' }).superRefine((raw, ctx) => {
    try {
      parseTargetTime(raw);
    } catch (err) {
      if (!isLifeboatError(err)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message, params: { hint: err.hint }, input: raw });
    }
  });
}

/** The input schemas of durations, shown to JSON Schema as the grammar's strings. */
const DURATION_INPUTS = new WeakSet<object>();

/** Whether this is the input side of duration() (the docs say "duration", not "string or number"). */
export function isDurationInput(schema: z.ZodType): boolean {
  return DURATION_INPUTS.has(schema);
}

export type DurationSchema = ReturnType<typeof duration>;

/**
 * The first problem zod found, as one line and the hint an operator can act on. When
 * no branch of a union matched (`repeat: 30m`: neither `never` nor a duration), the
 * branch that explained itself with a hint (the duration's) speaks, not the union.
 */
export function firstIssue(error: z.ZodError): { message: string; hint?: string; path: PropertyKey[] } {
  const issue = error.issues[0] as z.core.$ZodIssue;
  const hinted = issue.code === 'invalid_union' ? issue.errors.flat().find((i) => typeof (i as { params?: { hint?: unknown } }).params?.hint === 'string') : undefined;
  const chosen = hinted ?? issue;
  const hint = (chosen as { params?: { hint?: unknown } }).params?.hint;
  return { message: chosen.message, path: issue.path, ...(typeof hint === 'string' ? { hint } : {}) };
}

/**
 * The JSON Schema of an option or an object of options, for the API's bodies and
 * OpenAPI document. Durations appear as strings (a JSON body carries the text), with
 * no pattern: a body validator would refuse `30m` with a generic message, while the
 * handler's parse (parseOptionValue) refuses it with the grammar's hint.
 */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  // draft-7 and no $schema: the result is embedded in bodies that fastify's ajv (draft-07) validates.
  const { $schema: _, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-7',
    io: 'input',
    unrepresentable: 'any',
    override: optionJsonSchema,
  }) as Record<string, unknown>;
  return rest;
}

/**
 * z.toJSONSchema's `override` for schemas holding options of the model (jsonSchemaOf,
 * and the API's request bodies in src/api/route.ts): OptionMeta's own fields are for
 * the docs and flags, not JSON Schema keywords; a duration is a string of the grammar.
 */
export function optionJsonSchema(ctx: { zodSchema: unknown; jsonSchema: object }): void {
  const js = ctx.jsonSchema as Record<string, unknown>;
  for (const k of ['flag', 'env', 'api', 'file', 'shown', 'example']) delete js[k];
  if (!DURATION_INPUTS.has(ctx.zodSchema as object)) return;
  for (const k of Object.keys(js)) delete js[k];
  Object.assign(js, { type: 'string', description: DURATION_TEXT });
}

const DURATION_TEXT = 'a duration: ms s min h d w mo y, combinable (1h30min, 1mo2d); mo and y are calendar months and years';

/**
 * A value given on the command line or in an API body, parsed by its option's schema;
 * a refusal is a USAGE error naming `what` (`--keep-within`, `expires`) with the hint.
 * Numbers arrive as text there, so a numeric text is also tried as a number.
 */
export function parseOptionValue<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  let r = schema.safeParse(value);
  if (!r.success && typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) {
    const asNumber = schema.safeParse(Number(value));
    if (asNumber.success) r = asNumber;
  }
  if (r.success) return r.data;
  const issue = firstIssue(r.error);
  throw new LifeboatError('USAGE', `${what} ${issue.message.startsWith('must') ? '' : 'is refused: '}${issue.message}`, { hint: issue.hint ?? `see ${DOCS_FILE}` });
}

const DOCS_FILE = 'docs/configuration.md';
