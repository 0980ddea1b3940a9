/** The lifeboat.yaml keys of a files source, declared once (see src/config/model.ts), and what they set. */
import * as z from 'zod';
import type { SourceConfig } from '../../config/config.js';
import { lazily, option, texts } from '../../config/schema.js';

export const filesOptions = lazily(() => z.object({
  paths: option(texts(), { description: 'what to back up', example: '[/srv/app/uploads]' }),
  exclude: option(texts().optional(), { description: 'glob patterns left out', flag: '--exclude', shown: 'none' }),
}));

export function filesFields(o: z.output<ReturnType<typeof filesOptions>>): Partial<SourceConfig> {
  return { paths: o.paths, exclude: o.exclude ?? [] };
}
