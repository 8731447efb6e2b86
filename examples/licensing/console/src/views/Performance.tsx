import { useCallback, useEffect, useState } from 'react';
import { Api, MetricsSummary, TenantMetrics, describe } from '../api';
import { ErrorBox, PageTitle, TableScroll } from '../components';
import { bytes, dateTime, ms } from '../format';

function tenantLabel(t: string): string {
  if (t === '_none') return '(unauthenticated)';
  if (t === '_platform') return '(management API)';
  return t;
}

/**
 * LatencyChart is a horizontal bar chart of p50 and p95 request latency per
 * tenant: comparing tenants at a glance is what a table makes hard. The same
 * numbers are in the table below it, which is the accessible alternative.
 */
function LatencyChart({ rows }: { rows: TenantMetrics[] }) {
  const data = rows.filter((r) => r.latency.count > 0);
  if (data.length === 0) return <p>No requests recorded yet.</p>;
  const max = Math.max(...data.map((r) => r.latency.p95_seconds), 0.001);
  const barH = 22;
  const gap = 14;
  const left = 170;
  const width = 720;
  const plotW = width - left - 90;
  const height = data.length * (barH * 2 + gap) + 40;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height}`} width="100%" role="img" aria-labelledby="lat-title lat-desc">
        <title id="lat-title">Request latency per tenant</title>
        <defs>
          <pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
            <rect width="6" height="6" className="hatch-bg" />
            <line x1="0" y1="0" x2="0" y2="6" className="hatch-line" />
          </pattern>
        </defs>
        <desc id="lat-desc">
          {data.map((r) => `${tenantLabel(r.tenant)}: p50 ${ms(r.latency.p50_seconds)}, p95 ${ms(r.latency.p95_seconds)}`).join('; ')}
        </desc>
        {ticks.map((t, i) => (
          <g key={i}>
            <line x1={left + (t / max) * plotW} x2={left + (t / max) * plotW} y1={10} y2={height - 24} className="grid" />
            <text x={left + (t / max) * plotW} y={height - 8} className="axis" textAnchor="middle">
              {ms(t)}
            </text>
          </g>
        ))}
        {data.map((r, i) => {
          const y = 14 + i * (barH * 2 + gap);
          const w50 = (r.latency.p50_seconds / max) * plotW;
          const w95 = (r.latency.p95_seconds / max) * plotW;
          return (
            <g key={r.tenant}>
              <text x={left - 10} y={y + barH} className="label" textAnchor="end">
                {tenantLabel(r.tenant)}
              </text>
              <rect x={left} y={y} width={Math.max(w50, 1)} height={barH - 2} className="bar-p50" />
              <text x={left + Math.max(w50, 1) + 6} y={y + barH - 7} className="value">
                p50 {ms(r.latency.p50_seconds)}
              </text>
              <rect x={left} y={y + barH} width={Math.max(w95, 1)} height={barH - 2} className="bar-p95" />
              <text x={left + Math.max(w95, 1) + 6} y={y + 2 * barH - 7} className="value">
                p95 {ms(r.latency.p95_seconds)}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption>
        Each tenant has two bars: the upper (solid) is the median, the lower (hatched) the 95th percentile, estimated from the server’s latency histogram
        since it started. Both are labelled with their value.
      </figcaption>
    </figure>
  );
}

export function Performance({ api }: { api: Api }) {
  const [m, setM] = useState<MetricsSummary | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(() => {
    api.metrics().then(
      (r) => {
        setM(r);
        setError(null);
      },
      (e) => setError(describe(e)),
    );
  }, [api]);
  useEffect(load, [load]);
  const tenants = m?.tenants ?? [];
  return (
    <>
      <PageTitle>Performance</PageTitle>
      <ErrorBox error={error} />
      {m && (
        <>
          <p>
            From the server’s Prometheus metrics (<code>/metrics</code>), gathered {dateTime(m.generated_at)}; counts are since the server started.{' '}
            <button type="button" className="secondary small" onClick={load}>
              Refresh
            </button>
          </p>
          <section aria-labelledby="pool-h" className="cards">
            <h2 id="pool-h" className="visually-hidden">
              Gateway pool
            </h2>
            <div className="card">
              <div className="card-label">Pool connections in use</div>
              <div className="card-value">
                {m.pool.acquired_conns ?? 0} / {m.pool.total_conns ?? 0}
              </div>
              <div className="card-hint">checked out / open</div>
            </div>
            <div className="card">
              <div className="card-label">Acquires that waited</div>
              <div className="card-value">{m.pool.empty_acquire_total ?? 0}</div>
              <div className="card-hint">pool was empty at checkout</div>
            </div>
          </section>
          <section aria-labelledby="lat-h" className="panel">
            <h2 id="lat-h">Request latency per tenant</h2>
            <LatencyChart rows={tenants} />
          </section>
          <section aria-labelledby="tbl-h" className="panel">
            <h2 id="tbl-h">Per-tenant numbers</h2>
            <TableScroll label="Per-tenant numbers (scrollable)">
              <table>
                <caption>Requests, latency, connection checkouts and waits, and schema size per tenant. Schema sizes are refreshed every 30 s for active tenants.</caption>
                <thead>
                  <tr>
                    <th scope="col">Tenant</th>
                    <th scope="col">Requests</th>
                    <th scope="col">4xx / 5xx</th>
                    <th scope="col">Latency p50</th>
                    <th scope="col">Latency p95</th>
                    <th scope="col">Checkouts (reused / switched / failed)</th>
                    <th scope="col">Checkout wait p95</th>
                    <th scope="col">Held p95</th>
                    <th scope="col">Schema size</th>
                  </tr>
                </thead>
                <tbody>
                  {tenants.map((t) => (
                    <tr key={t.tenant}>
                      <th scope="row">{tenantLabel(t.tenant)}</th>
                      <td>{t.requests}</td>
                      <td>
                        {t.client_errors} / {t.server_errors}
                      </td>
                      <td>{t.latency.count ? ms(t.latency.p50_seconds) : '—'}</td>
                      <td>{t.latency.count ? ms(t.latency.p95_seconds) : '—'}</td>
                      <td>
                        {t.checkouts.ok ?? 0} / {t.checkouts.switched ?? 0} / {t.checkouts.error ?? 0}
                      </td>
                      <td>{t.checkout_wait.count ? ms(t.checkout_wait.p95_seconds) : '—'}</td>
                      <td>{t.checkout_held.count ? ms(t.checkout_held.p95_seconds) : '—'}</td>
                      <td>
                        {bytes(t.schema_size_bytes)}
                        {t.schema_objects !== null && <span className="muted"> ({t.schema_objects} objects)</span>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableScroll>
          </section>
        </>
      )}
    </>
  );
}
