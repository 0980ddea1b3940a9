/**
 * Keeps docs/ops honest: every YAML file parses, the Grafana dashboard is JSON, every
 * lifeboat_* metric the alerts, the dashboard and the README name is one the daemon
 * exports, every alert rule has what Alertmanager routing and the README rely on and
 * passes `promtool check rules`, the sample lifeboat.yaml files pass the real config
 * parser, and the systemd units and Kubernetes manifests run and probe what the
 * daemon offers.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/config.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { ROOT } from '../helpers.js';
import { shippedRules } from '../prometheus.js';

const OPS = path.join(ROOT, 'docs', 'ops');

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

const rel = (file: string) => path.relative(ROOT, file);
const read = (...parts: string[]) => readFileSync(path.join(OPS, ...parts), 'utf8');
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every document of a YAML file as plain data; fails the test on any parse error or warning. */
function yamlDocuments(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  if (!Array.isArray(docs)) throw new Error(`${rel(file)}: not a YAML stream`);
  for (const d of docs) {
    expect(d.errors.map((e) => e.message), `${rel(file)} parses`).toEqual([]);
    expect(d.warnings.map((e) => e.message), `${rel(file)} has no YAML warnings`).toEqual([]);
  }
  return docs.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined);
}

/** Lifeboat's own names, and the Summit names it exports with the same values (docs/daemon.md). */
const METRIC = /\b(?:lifeboat_[a-z_]+|dr_[a-z_]+|backup_(?:success|failure)_total|(?:postgres_base|file)_backup_duration_seconds)\b/g;
const metricNames = (text: string) => [...text.matchAll(METRIC)].map((m) => m[0]);

interface AlertRule {
  alert?: unknown;
  record?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: unknown;
  annotations?: unknown;
}

function alertRules(): AlertRule[] {
  const [doc] = yamlDocuments(path.join(OPS, 'prometheus-alerts.yml'));
  if (!isRecord(doc) || !Array.isArray(doc.groups)) throw new Error('prometheus-alerts.yml: no `groups:` list');
  return doc.groups.flatMap((g: unknown) => {
    if (!isRecord(g) || typeof g.name !== 'string' || !Array.isArray(g.rules)) throw new Error('prometheus-alerts.yml: each group needs `name` and `rules`');
    return g.rules as AlertRule[];
  });
}

/** Every PromQL text of the dashboard: panel targets (rows nest panels) and template variable queries. */
function dashboardQueries(dashboard: Record<string, unknown>): string[] {
  const out: string[] = [];
  const panels = (list: unknown): void => {
    if (!Array.isArray(list)) return;
    for (const p of list) {
      if (!isRecord(p)) continue;
      if (Array.isArray(p.targets)) for (const t of p.targets) if (isRecord(t) && typeof t.expr === 'string') out.push(t.expr);
      panels(p.panels);
    }
  };
  panels(dashboard.panels);
  const templating = isRecord(dashboard.templating) && Array.isArray(dashboard.templating.list) ? dashboard.templating.list : [];
  for (const v of templating) {
    if (!isRecord(v) || v.type !== 'query') continue;
    if (typeof v.definition === 'string') out.push(v.definition);
    if (typeof v.query === 'string') out.push(v.query);
    else if (isRecord(v.query) && typeof v.query.query === 'string') out.push(v.query.query);
  }
  return out;
}

function unitLines(file: string, key: string): string[] {
  return read('systemd', file)
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe('docs/ops', () => {
  const registry = new Map<string, string>();

  beforeAll(async () => {
    const metrics = new Metrics(() => ({ sources: [], repositories: [], running: 0 }));
    for (const m of await metrics.registry.getMetricsAsJSON()) registry.set(m.name, String(m.type));
  });

  /** The exported metric a name in a query refers to: itself, or the histogram of a _bucket/_sum/_count series. */
  function exported(name: string): string | undefined {
    if (registry.has(name)) return name;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    return base !== name && registry.get(base) === 'histogram' ? base : undefined;
  }

  function expectExported(names: string[], where: string): void {
    const unknown = [...new Set(names)].filter((n) => exported(n) === undefined);
    expect(unknown, `${where} names metrics the daemon does not export (known: ${[...registry.keys()].filter((n) => !n.startsWith('lifeboat_process') && !n.startsWith('lifeboat_nodejs')).join(', ')})`).toEqual([]);
  }

  it('holds the files the README describes', () => {
    const found = walk(OPS).map((f) => path.relative(OPS, f)).sort();
    for (const f of [
      'README.md',
      'prometheus-alerts.yml',
      'grafana-dashboard.json',
      'systemd/lifeboat.service',
      'systemd/lifeboat-backup@.service',
      'systemd/lifeboat-backup@.timer',
      'kubernetes/deployment.yaml',
      'kubernetes/cronjob.yaml',
    ]) {
      expect(found, `docs/ops/${f}`).toContain(f);
    }
  });

  it('parses every YAML file without errors', () => {
    const files = walk(OPS).filter((f) => /\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const f of files) expect(yamlDocuments(f).length, `${rel(f)} has documents`).toBeGreaterThan(0);
  });

  it('alert rules are complete and unique', () => {
    const rules = alertRules();
    expect(rules.length).toBeGreaterThan(0);
    const names = new Set<string>();
    for (const r of rules) {
      const id = typeof r.alert === 'string' ? r.alert : JSON.stringify(r).slice(0, 80);
      expect(typeof r.alert === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(r.alert), `${id}: alert name`).toBe(true);
      expect(r.record, `${id}: an alerting rule, not a recording rule`).toBeUndefined();
      expect(typeof r.expr === 'string' && r.expr.trim() !== '', `${id}: expr`).toBe(true);
      if (r.for !== undefined) expect(String(r.for), `${id}: for`).toMatch(/^(\d+(ms|s|m|h|d|w|y))+$/);
      expect(isRecord(r.labels) && ['critical', 'warning', 'info'].includes(String(r.labels.severity)), `${id}: labels.severity is critical, warning or info`).toBe(true);
      expect(isRecord(r.annotations) && typeof r.annotations.summary === 'string' && r.annotations.summary !== '', `${id}: annotations.summary`).toBe(true);
      expect(isRecord(r.annotations) && typeof r.annotations.description === 'string' && /lifeboat runbook/.test(r.annotations.description), `${id}: annotations.description with a runbook hint`).toBe(true);
      expect(names.has(id), `${id} is defined once`).toBe(false);
      names.add(id);
    }
  });

  it('promtool accepts the alert rules', () => {
    const r = spawnSync('promtool', ['check', 'rules', path.join(OPS, 'prometheus-alerts.yml')], { encoding: 'utf8' });
    expect(r.error, 'promtool comes with the Debian package prometheus, which scripts/pretest.sh installs').toBeUndefined();
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('the group alerts fire on the series they are about, and stay quiet otherwise (promtool test rules)', () => {
    // The shipped expressions verbatim (shippedRules keeps them; annotations dropped so
    // the expected alerts need not restate every description), over synthetic series.
    const names = { LifeboatGroupPointStale: '5m', LifeboatGroupHoldNearLimit: '0m', LifeboatGroupNoPoint: '30m' };
    const rules = JSON.parse(shippedRules(names)) as { groups: Array<{ rules: Array<Record<string, unknown>> }> };
    for (const r of rules.groups.flatMap((g) => g.rules)) delete r.annotations;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-promtool-'));
    writeFileSync(path.join(dir, 'rules.yml'), JSON.stringify(rules));
    const at = (group: string) => `{instance="d:8470",job="lifeboat",group="${group}"}`;
    const labels = (group: string, severity: string) => ({ instance: 'd:8470', job: 'lifeboat', group, severity });
    const test = {
      rule_files: ['rules.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            // engram: captured every 15 min, its newest point ages 60 s a minute from 100 s: over 2 intervals (1800 s) from minute 29.
            { series: `lifeboat_group_rpo_seconds${at('engram')}`, values: '100+60x60' },
            { series: `lifeboat_group_schedule_interval_seconds${at('engram')}`, values: '900x60' },
            { series: `lifeboat_group_hold_seconds${at('engram')}`, values: '0.05x60' },
            { series: `lifeboat_group_max_hold_seconds${at('engram')}`, values: '0.2x60' },
            { series: `lifeboat_group_last_point_timestamp_seconds${at('engram')}`, values: '1000x60' },
            // busy: fresh points, held 190 of 200 ms.
            { series: `lifeboat_group_rpo_seconds${at('busy')}`, values: '30x60' },
            { series: `lifeboat_group_schedule_interval_seconds${at('busy')}`, values: '900x60' },
            { series: `lifeboat_group_hold_seconds${at('busy')}`, values: '0.19x60' },
            { series: `lifeboat_group_max_hold_seconds${at('busy')}`, values: '0.2x60' },
            { series: `lifeboat_group_last_point_timestamp_seconds${at('busy')}`, values: '1000x60' },
          ],
          alert_rule_test: [
            { eval_time: '20m', alertname: 'LifeboatGroupPointStale', exp_alerts: [] },
            { eval_time: '40m', alertname: 'LifeboatGroupPointStale', exp_alerts: [{ exp_labels: labels('engram', 'critical') }] },
            { eval_time: '40m', alertname: 'LifeboatGroupHoldNearLimit', exp_alerts: [{ exp_labels: labels('busy', 'info') }] },
            // Both have points: no NoPoint alert (its offset 1d arm has no data here either).
            { eval_time: '40m', alertname: 'LifeboatGroupNoPoint', exp_alerts: [] },
          ],
        },
      ],
    };
    writeFileSync(path.join(dir, 'test.yml'), JSON.stringify(test));
    const r = spawnSync('promtool', ['test', 'rules', path.join(dir, 'test.yml')], { encoding: 'utf8', cwd: dir });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('alert expressions use only metrics the daemon exports', () => {
    const rules = alertRules();
    const used = rules.flatMap((r) => metricNames(String(r.expr)));
    expect(used.length).toBeGreaterThan(0);
    expectExported(used, 'prometheus-alerts.yml');
  });

  it('the Grafana dashboard is JSON over exported metrics and the DS_PROMETHEUS data source', () => {
    const dashboard = JSON.parse(read('grafana-dashboard.json')) as unknown;
    if (!isRecord(dashboard)) throw new Error('grafana-dashboard.json: not an object');
    expect(typeof dashboard.schemaVersion).toBe('number');
    expect(typeof dashboard.title).toBe('string');
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThan(5);
    expectExported(queries.flatMap(metricNames), 'grafana-dashboard.json');
    const vars = (isRecord(dashboard.templating) && Array.isArray(dashboard.templating.list) ? dashboard.templating.list : []).filter(isRecord);
    expect(vars.find((v) => v.name === 'DS_PROMETHEUS')?.type, 'a DS_PROMETHEUS data source variable').toBe('datasource');
    expect(vars.find((v) => v.name === 'source')?.definition).toBe('label_values(lifeboat_rpo_target_seconds, source)');
    // Every data source reference goes through the variable, so import needs no editing.
    const uids = [...read('grafana-dashboard.json').matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1]).filter((u) => u !== 'lifeboat-overview' && u !== '-- Grafana --');
    expect(new Set(uids)).toEqual(new Set(['${DS_PROMETHEUS}']));
  });

  it('the README names only exported metrics and describes every alert', () => {
    const readme = read('README.md');
    expectExported(metricNames(readme), 'docs/ops/README.md');
    for (const r of alertRules()) expect(readme, `README describes ${String(r.alert)}`).toContain(String(r.alert));
  });

  it('the systemd units run the daemon and a named backup', () => {
    const [exec, ...more] = unitLines('lifeboat.service', 'ExecStart');
    expect(more).toEqual([]);
    expect(exec).toMatch(/\blifeboat serve --config \S+\.yaml$/);
    expect(unitLines('lifeboat.service', 'User')).toEqual(['lifeboat']);
    expect(unitLines('lifeboat.service', 'StateDirectory')).toEqual(['lifeboat']);
    const [backup] = unitLines('lifeboat-backup@.service', 'ExecStart');
    expect(backup).toMatch(/\blifeboat --config \S+ -r \S+ backup --name %i /);
    expect(unitLines('lifeboat-backup@.service', 'Type')).toEqual(['oneshot']);
    expect(unitLines('lifeboat-backup@.timer', 'OnCalendar')).toHaveLength(1);
    expect(unitLines('lifeboat-backup@.timer', 'Persistent')).toEqual(['true']);
  });

  it('the Kubernetes manifests carry a valid lifeboat.yaml and probe what the daemon serves', () => {
    const byKind = new Map<string, Record<string, unknown>[]>();
    for (const file of ['deployment.yaml', 'cronjob.yaml']) {
      for (const doc of yamlDocuments(path.join(OPS, 'kubernetes', file))) {
        if (!isRecord(doc) || typeof doc.kind !== 'string') throw new Error(`${file}: a document without kind`);
        byKind.set(doc.kind, [...(byKind.get(doc.kind) ?? []), doc]);
        if (doc.kind === 'ConfigMap' && isRecord(doc.data) && typeof doc.data['lifeboat.yaml'] === 'string') {
          // Throws a LifeboatError naming the key and line at fault.
          parseConfig(doc.data['lifeboat.yaml'], `docs/ops/kubernetes/${file} (ConfigMap)`);
        }
      }
    }
    expect(byKind.get('CronJob')?.length).toBe(2);
    const [deployment] = byKind.get('Deployment') ?? [];
    const text = JSON.stringify(deployment);
    expect(text).toContain('"path":"/health/live"');
    expect(text).toContain('"path":"/health/ready"');
    expect(text).toContain('"containerPort":8470');
    const config = (byKind.get('ConfigMap') ?? []).map((c) => (isRecord(c.data) ? String(c.data['lifeboat.yaml']) : '')).find((y) => y.includes('server:'));
    expect(config).toBeDefined();
    const server = parseConfig(config as string, 'deployment.yaml').server;
    expect(`${server.host}:${server.port}`).toBe('0.0.0.0:8470');
  });
});
