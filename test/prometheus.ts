/**
 * A real Prometheus (Debian package `prometheus`, installed by scripts/pretest.sh) for
 * tests: it scrapes one target as job "lifeboat" every second and evaluates the rules
 * it is given every second, so an alert's `for` is the only wait that matters.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { ROOT } from './helpers.js';
import { freePort } from './pg-cluster.js';
import { waitUntil } from './pg-streamer.js';

export interface Alert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

/**
 * Shipped alert rules from docs/ops/prometheus-alerts.yml, expressions verbatim, with
 * `for` replaced so a test need not wait minutes (the only change).
 */
export function shippedRules(names: Record<string, string>): string {
  const doc = parseDocument(readOps()).toJS() as { groups: Array<{ rules: Array<Record<string, unknown>> }> };
  const rules = doc.groups.flatMap((g) => g.rules).filter((r) => typeof r.alert === 'string' && r.alert in names);
  if (rules.length !== Object.keys(names).length) throw new Error(`docs/ops/prometheus-alerts.yml lacks some of ${Object.keys(names).join(', ')}`);
  return JSON.stringify({ groups: [{ name: 'lifeboat-test', rules: rules.map((r) => ({ ...r, for: names[r.alert as string] })) }] });
}

function readOps(): string {
  return readFileSync(path.join(ROOT, 'docs', 'ops', 'prometheus-alerts.yml'), 'utf8');
}

export class TestPrometheus {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    private readonly log: () => string,
  ) {}

  static async start(dir: string, target: string, rules: string): Promise<TestPrometheus> {
    const port = await freePort();
    writeFileSync(path.join(dir, 'rules.yml'), rules);
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      JSON.stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: [path.join(dir, 'rules.yml')],
        scrape_configs: [{ job_name: 'lifeboat', static_configs: [{ targets: [target] }] }],
      }),
    );
    let log = '';
    const child = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const p = new TestPrometheus(child, `http://127.0.0.1:${port}`, () => log);
    await waitUntil(`Prometheus to be ready (${log})`, async () => (await fetch(`${p.url}/-/ready`).catch(() => undefined))?.ok, 60_000, 200);
    return p;
  }

  async alerts(): Promise<Alert[]> {
    const r = (await (await fetch(`${this.url}/api/v1/alerts`)).json()) as { data: { alerts: Alert[] } };
    return r.data.alerts;
  }

  /** The alert with that name and source, if pending or firing. */
  async alert(name: string, source: string): Promise<Alert | undefined> {
    return (await this.alerts()).find((a) => a.labels.alertname === name && a.labels.source === source);
  }

  /** The value of an instant query's first series now; undefined when it has none. */
  async query(expr: string): Promise<number | undefined> {
    const r = (await (await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as { data: { result: Array<{ value: [number, string] }> } };
    const v = r.data.result[0]?.value[1];
    return v === undefined ? undefined : Number(v);
  }

  /** Whether Prometheus scrapes the target successfully now. */
  async up(): Promise<boolean> {
    const r = (await (await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent('up{job="lifeboat"}')}`)).json()) as { data: { result: Array<{ value: [number, string] }> } };
    return r.data.result[0]?.value[1] === '1';
  }

  get output(): string {
    return this.log();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const closed = new Promise((r) => this.child.once('close', r));
    this.child.kill('SIGTERM');
    await closed;
  }
}
