/**
 * Drivers register by URL scheme; opening a repository location picks the driver.
 * A location without a scheme is a local path (the embedded default).
 */
import { LifeboatError } from '../errors.js';
import type { Store } from './store.js';

export type StoreFactory = (rest: string, location: string) => Promise<Store>;

const drivers = new Map<string, StoreFactory>();

export function registerStore(scheme: string, factory: StoreFactory): void {
  if (drivers.has(scheme)) throw new Error(`store scheme "${scheme}" registered twice`);
  drivers.set(scheme, factory);
}

export function registeredSchemes(): string[] {
  return [...drivers.keys()].sort();
}

/** Splits "s3:https://h/b" into ["s3", "https://h/b"]; a bare path is "local". */
export function parseLocation(location: string): { scheme: string; rest: string } {
  const m = /^([a-z][a-z0-9+-]*):(.*)$/i.exec(location);
  // One-letter "schemes" would be Windows drive letters; treat them as paths.
  if (!m || (m[1] as string).length < 2) return { scheme: 'local', rest: location };
  return { scheme: (m[1] as string).toLowerCase(), rest: m[2] as string };
}

export async function openStore(location: string): Promise<Store> {
  if (!location) {
    throw new LifeboatError('USAGE', 'no repository given', {
      hint: 'pass --repo DIR or set LIFEBOAT_REPOSITORY',
    });
  }
  const { scheme, rest } = parseLocation(location);
  const factory = drivers.get(scheme);
  if (!factory) {
    throw new LifeboatError('USAGE', `unknown repository scheme "${scheme}:" in ${location}`, {
      hint: `known schemes: ${registeredSchemes().join(', ')}`,
    });
  }
  return factory(rest, location);
}
