/** The lifeboat.yaml keys of a files source, declared once (see src/config/model.ts). */
import { z } from 'zod';
import { option, texts } from '../../config/schema.js';

export const filesOptions = z.object({
  paths: option(texts(), { description: 'what to back up', example: '[/srv/app/uploads]' }),
  exclude: option(texts().optional(), { description: 'glob patterns left out', flag: '--exclude', shown: 'none' }),
});
