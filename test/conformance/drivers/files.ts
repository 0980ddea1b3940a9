/**
 * The files kind for the conformance suite: a scratch tree with every kind of entry a
 * restore must bring back (test/helpers.ts makeFixture: nested and empty directories,
 * a file of several chunks, symlinks, a hard link, odd modes and owners, old times).
 * Its fingerprint is what a user would compare: each entry's type, bytes, mode, owner
 * and modification time. Files have no continuous log.
 */
import { promises as fs, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { initRepo, makeFixture, runCli, snapshotOf, tmpdir } from '../../helpers.js';
import { nextMoment, type KindDriver, type Subject } from '../driver.js';

export const filesDriver: KindDriver = {
  kind: 'files',
  hasLog: false,
  async setup(): Promise<Subject> {
    const dir = tmpdir('lb-conform-files-');
    const tree = path.join(dir, 'tree');
    const repo = path.join(dir, 'repo');
    const pw = path.join(dir, 'password');
    await fs.mkdir(tree);
    await makeFixture(tree);
    writeFileSync(pw, 'conformance-files\n', { mode: 0o600 });
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(config, ['repositories:', '  main:', `    stores: [${repo}]`, `    password_file: ${pw}`, 'sources:', '  docs:', '    kind: files', `    paths: [${tree}]`, ''].join('\n'));
    // The repository's password comes from lifeboat.yaml, as for the daemon's jobs.
    const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { LIFEBOAT_PASSWORD: undefined, ...env });
    await initRepo(repo, 'conformance-files');
    return {
      config,
      source: 'docs',
      cli,
      target: (label) => path.join(dir, `restored-${label}`),
      async change(step) {
        // Something added, something rewritten (through a hard link's other name too),
        // something removed, a mode changed.
        await fs.writeFile(path.join(tree, `added-${step}.txt`), `added in step ${step}\n`);
        await fs.appendFile(path.join(tree, 'hello.txt'), `changed in step ${step}\n`);
        await fs.rm(path.join(tree, step === 1 ? 'empty.txt' : `added-${step - 1}.txt`));
        await fs.chmod(path.join(tree, 'docs'), step % 2 === 1 ? 0o700 : 0o755);
      },
      fingerprint: () => snapshotOf(tree),
      // A files restore recreates each backed-up path under the target.
      restored: (target) => snapshotOf(path.join(target, tree)),
      moment: nextMoment,
      restoresSnapshotIds: true,
      async close() {
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  },
};
