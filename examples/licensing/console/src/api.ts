// Every call of the console goes through the server's management API with
// the operator's bearer token; errors are reported as the API states them.

export type Status = 'provisioning' | 'active' | 'suspended' | 'archived' | 'deleted';

export interface Tenant {
  id: string;
  key: string;
  name: string;
  status: Status;
  schema: string;
  role: string;
  cluster: string;
  limits: { max_conns?: number; statement_timeout?: number };
  schema_version: number;
  created_at: string;
  updated_at: string;
  deleted_at?: string;
  retain_until?: string;
  settings?: Record<string, unknown>;
}

export interface OverviewTenant {
  id: string;
  schema_exists: boolean;
  size_bytes: number;
  objects: number;
  last_activity: string | null;
}

export interface Overview {
  counts: Record<Status, number>;
  deleted_in_retention: number;
  tenants: OverviewTenant[];
  measured_at: string;
}

export interface SchemaStatus {
  tenant: string;
  status: Status;
  schema: string;
  schema_version: number;
  latest_version: number;
  size_bytes: number;
  objects: number;
  exists: boolean;
  retain_until?: string;
}

export interface Check {
  name: string;
  state: string;
  detail?: string;
}

export interface IsotestResult {
  id: string;
  class: string;
  severity?: string;
  title?: string;
  verdict: string;
  expected?: string;
  observed?: string;
  evidence?: string;
  residual_risk?: string;
}

export interface IsotestReport {
  tool?: string;
  mode?: string;
  started_at?: string;
  finished_at?: string;
  postgresql?: string;
  mode_risks?: string[];
  summary?: Record<string, number>;
  results?: IsotestResult[];
}

export interface SecurityStatus {
  mode: string;
  mode_summary: string;
  mode_risks: string[];
  residual_risks: string[];
  hardening: { available: boolean; source?: string; note?: string; checks: Check[] };
  isotest: { available: boolean; path?: string; reason?: string; modified_at?: string; report?: IsotestReport };
}

export interface Hist {
  count: number;
  sum_seconds: number;
  p50_seconds: number;
  p95_seconds: number;
  p99_seconds: number;
}

export interface TenantMetrics {
  tenant: string;
  requests: number;
  client_errors: number;
  server_errors: number;
  latency: Hist;
  checkout_wait: Hist;
  checkout_held: Hist;
  checkouts: Record<string, number>;
  schema_size_bytes: number | null;
  schema_objects: number | null;
}

export interface MetricsSummary {
  generated_at: string;
  pool: { acquired_conns?: number; total_conns?: number; empty_acquire_total?: number };
  tenants: TenantMetrics[];
}

export interface AuditEvent {
  id: number;
  at: string;
  actor: string;
  tenant?: string;
  action: string;
  target?: string;
  detail?: unknown;
}

/** ApiError is an error response of the API: its status, code, message and field errors. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly apiMessage: string,
    readonly fields: Record<string, string> = {},
    readonly requestId = '',
  ) {
    super(`${status} ${code}: ${apiMessage}`);
  }
}

/** describe renders an error for display: the API's own words, field by field. */
export function describe(e: unknown): string {
  if (e instanceof ApiError) {
    const f = Object.entries(e.fields).map(([k, v]) => `${k}: ${v}`);
    return e.message + (f.length ? ` (${f.join('; ')})` : '') + (e.requestId ? ` [request ${e.requestId}]` : '');
  }
  if (e instanceof Error) return `The server could not be reached: ${e.message}`;
  return String(e);
}

const TOKEN_KEY = 'bulkhead.operatorToken';

export function savedToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function saveToken(t: string) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class Api {
  constructor(private token: string) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let data: unknown = undefined;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = undefined;
      }
    }
    if (!res.ok) {
      const d = (data ?? {}) as { error?: string; message?: string; fields?: Record<string, string> };
      throw new ApiError(res.status, d.error ?? 'http_error', d.message ?? (text || res.statusText), d.fields ?? {}, res.headers.get('X-Request-Id') ?? '');
    }
    return data as T;
  }

  /** tenants fetches every tenant, following the API's id-ordered pages. */
  async tenants(): Promise<Tenant[]> {
    const out: Tenant[] = [];
    let after = '';
    for (;;) {
      const q = new URLSearchParams({ limit: '1000' });
      if (after) q.set('after', after);
      const page = await this.call<{ items: Tenant[]; next: string }>('GET', `/api/v1/tenants?${q}`);
      out.push(...page.items);
      if (!page.next) return out;
      after = page.next;
    }
  }

  overview = () => this.call<Overview>('GET', '/api/v1/platform/overview');
  tenant = (id: string) => this.call<Tenant>('GET', `/api/v1/tenants/${encodeURIComponent(id)}`);
  schemaStatus = (id: string) => this.call<SchemaStatus>('GET', `/api/v1/tenants/${encodeURIComponent(id)}/schema/status`);
  lifecycle = (id: string, op: 'activate' | 'suspend' | 'restore' | 'archive') =>
    this.call<Tenant>('POST', `/api/v1/tenants/${encodeURIComponent(id)}/${op}`);
  remove = (id: string, retention: string) =>
    this.call<Tenant>('DELETE', `/api/v1/tenants/${encodeURIComponent(id)}/schema?retention=${encodeURIComponent(retention)}`);
  create = (body: unknown) => this.call<Tenant>('POST', '/api/v1/tenants', body);
  security = () => this.call<SecurityStatus>('GET', '/api/v1/platform/security');
  metrics = () => this.call<MetricsSummary>('GET', '/api/v1/platform/metrics');
  audit = (q: { tenant?: string; action?: string; before_id?: number; limit?: number }) => {
    const p = new URLSearchParams();
    if (q.tenant) p.set('tenant', q.tenant);
    if (q.action) p.set('action', q.action);
    if (q.before_id) p.set('before_id', String(q.before_id));
    p.set('limit', String(q.limit ?? 200));
    return this.call<{ items: AuditEvent[] }>('GET', `/api/v1/platform/audit?${p}`);
  };
}
