/**
 * The API's request bodies whose fields are options of the model (src/config/model.ts):
 * each such field is the model's declaration itself, so its grammar, its description
 * in the OpenAPI document and what fastify accepts are those of the lifeboat.yaml key
 * and the CLI flag (durations: util/duration.ts's grammar, described as such by
 * config/schema.ts's optionJsonSchema). Handlers receive the text as written (route.ts
 * passes the input shape) and parse it with the model's parser.
 *
 * Not in dto.ts, which imports nothing but zod because the dashboard's build reads it.
 * The other request and response shapes stay there.
 */
import { z } from 'zod';
import { scheduleOptions, tokenExpires } from '../config/model.js';
import { RoleName } from './dto.js';

/** POST /repositories/:name/check: `read_data_subset` as in a `run: check` schedule (and `check --read-data-subset`). */
export const CheckBody = z.strictObject({ read_data_subset: scheduleOptions.shape.read_data_subset });

/** POST /tokens: `expires` as `token create --expires` (a duration of at least a minute, or never), parsed by daemon/auth.ts with its hint. */
export const TokenBody = z.strictObject({ name: z.string(), role: RoleName, expires: tokenExpires });
