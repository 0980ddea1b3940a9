/**
 * `lifeboat job`: the hidden entry the daemon starts for every job (docs/daemon.md,
 * "The job protocol"). It reads the job spec on stdin, opens the event channel, and
 * runs the spec's command with the same commander program a person's `lifeboat` runs,
 * in this process: what the API starts is what the runbook says, and the command's
 * result, progress and error reach the daemon as typed events instead of text.
 */
import type { Command } from 'commander';
import { LifeboatError } from '../errors.js';
import { JOB_EVENT_FD, MAX_SPEC_BYTES, JobProtocolError, parseJobSpec, type JobSpec } from '../daemon/job-protocol.js';
import { PROGRAM_VERSION } from '../repo/repository.js';
import { emitJobEvent, openJobChannel } from './output/job-events.js';

/**
 * Whether argv (after node and the script) asks for the job entry: `job`, or `job -- ARGV…`
 * where ARGV repeats the spec's command so that `ps` shows it.
 */
export function isJobEntry(argv: readonly string[]): boolean {
  return argv[0] === 'job' && (argv.length === 1 || argv[1] === '--');
}

async function readSpec(): Promise<JobSpec> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_SPEC_BYTES) throw new JobProtocolError(`the job spec is longer than ${MAX_SPEC_BYTES} bytes`);
    chunks.push(chunk);
  }
  return parseJobSpec(Buffer.concat(chunks).toString('utf8'));
}

/** Runs the job the daemon describes on stdin; errors are thrown for the caller's reportError. */
export async function runJob(program: () => Command, argv: readonly string[]): Promise<void> {
  openJobChannel(JOB_EVENT_FD);
  let spec: JobSpec;
  try {
    spec = await readSpec();
    const shown = argv.slice(2);
    // What `ps` shows must be what runs.
    if (argv.length > 1 && JSON.stringify(shown) !== JSON.stringify(spec.argv)) throw new JobProtocolError('the command after `job --` differs from the spec\'s');
  } catch (err) {
    if (!(err instanceof JobProtocolError)) throw err;
    throw new LifeboatError('JOB_PROTOCOL', err.message, { hint: 'the daemon and this lifeboat are different versions? restart the daemon after an upgrade' });
  }
  // Which process ran the job, in its log: whom to look at (or kill) while it runs.
  emitJobEvent({ type: 'log', level: 'info', message: `lifeboat ${PROGRAM_VERSION} job ${spec.id || '(read)'}, pid ${process.pid}` });
  await program().parseAsync(['--json', '--config', spec.config, '--repo', spec.repository, ...spec.argv], { from: 'user' });
}
