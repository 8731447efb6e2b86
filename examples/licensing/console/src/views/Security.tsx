import { useCallback, useEffect, useMemo, useState } from 'react';
import { Api, AuditEvent, IsotestResult, SecurityStatus, describe } from '../api';
import { ErrorBox, PageTitle, Verdict, TableScroll } from '../components';
import { dateTime } from '../format';

function checkKind(state: string): 'ok' | 'warn' | 'bad' {
  if (state === 'applied' || state === 'in-place') return 'ok';
  if (state === 'not-applied') return 'bad';
  return 'warn';
}

function verdictKind(v: string): 'ok' | 'warn' | 'bad' | 'info' {
  switch (v) {
    case 'pass':
      return 'ok';
    case 'residual':
      return 'warn';
    case 'fail':
    case 'error':
      return 'bad';
    default:
      return 'info';
  }
}

interface ClassRow {
  cls: string;
  counts: Record<string, number>;
  worst: string;
}

const verdictOrder = ['fail', 'error', 'residual', 'pass', 'skipped'];

function byClass(results: IsotestResult[]): ClassRow[] {
  const m = new Map<string, ClassRow>();
  for (const r of results) {
    const row = m.get(r.class) ?? { cls: r.class, counts: {}, worst: 'skipped' };
    row.counts[r.verdict] = (row.counts[r.verdict] ?? 0) + 1;
    if (verdictOrder.indexOf(r.verdict) < verdictOrder.indexOf(row.worst)) row.worst = r.verdict;
    m.set(r.class, row);
  }
  return [...m.values()].sort((a, b) => a.cls.localeCompare(b.cls));
}

export function Security({ api }: { api: Api }) {
  const [sec, setSec] = useState<SecurityStatus | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.security().then(setSec, (e) => setError(describe(e)));
  }, [api]);
  const rep = sec?.isotest.report;
  const classes = useMemo(() => byClass(rep?.results ?? []), [rep]);
  const residuals = (rep?.results ?? []).filter((r) => r.verdict === 'residual' && r.residual_risk);
  const failures = (rep?.results ?? []).filter((r) => r.verdict === 'fail' || r.verdict === 'error');

  return (
    <>
      <PageTitle>Security</PageTitle>
      <ErrorBox error={error} />
      {!sec && !error && <p>Loading…</p>}
      {sec && (
        <>
          <section aria-labelledby="mode-h" className="panel">
            <h2 id="mode-h">Isolation mode: {sec.mode}</h2>
            <p>{sec.mode_summary}</p>
            <ul>
              {sec.mode_risks.map((r) => (
                <li key={r}>{r}</li>
              ))}
            </ul>
          </section>

          <section aria-labelledby="hard-h" className="panel">
            <h2 id="hard-h">Database hardening</h2>
            {sec.hardening.available ? (
              <>
                <p className="muted">Source: {sec.hardening.source}.</p>
                <TableScroll label="Hardening checks">
                  <table>
                    <caption>
                      {sec.hardening.checks.filter((c) => c.state === 'not-applied').length === 0
                        ? `All ${sec.hardening.checks.length} hardening checks are in place.`
                        : `${sec.hardening.checks.filter((c) => c.state === 'not-applied').length} of ${sec.hardening.checks.length} hardening checks could not be applied with the admin role's privileges.`}
                    </caption>
                    <thead>
                      <tr>
                        <th scope="col">Check</th>
                        <th scope="col">State</th>
                        <th scope="col">Detail</th>
                      </tr>
                    </thead>
                    <tbody>
                      {sec.hardening.checks.map((c) => (
                        <tr key={c.name}>
                          <td>{c.name}</td>
                          <td>
                            <Verdict kind={checkKind(c.state)}>{c.state}</Verdict>
                          </td>
                          <td className="detail">{c.detail ?? ''}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </TableScroll>
              </>
            ) : (
              <p className="empty-inline">
                <Verdict kind="info">no hardening report</Verdict> {sec.hardening.note}
              </p>
            )}
          </section>

          <section aria-labelledby="iso-h" className="panel">
            <h2 id="iso-h">Latest isotest report</h2>
            {!sec.isotest.available || !rep ? (
              <div className="empty-inline" data-testid="no-isotest">
                <p>
                  <Verdict kind="info">No isotest report yet</Verdict>
                </p>
                <p>{sec.isotest.reason}</p>
              </div>
            ) : (
              <>
                <p>
                  {rep.tool ?? 'isotest'} in mode <strong>{rep.mode ?? '?'}</strong>, finished {dateTime(rep.finished_at)}
                  {rep.postgresql ? ` against PostgreSQL ${rep.postgresql}` : ''}; file <code>{sec.isotest.path}</code>.
                </p>
                <p>
                  {failures.length === 0 ? (
                    <Verdict kind="ok">No attack got through beyond what the mode allows</Verdict>
                  ) : (
                    <Verdict kind="bad">
                      {failures.length} attack{failures.length > 1 ? 's' : ''} leaked or could not run
                    </Verdict>
                  )}
                </p>
                <TableScroll label="isotest results per attack class">
                  <table>
                    <caption>Results per attack class (pass = blocked; residual = a known limit PostgreSQL cannot close; fail = leaked).</caption>
                    <thead>
                      <tr>
                        <th scope="col">Attack class</th>
                        <th scope="col">Verdict</th>
                        <th scope="col">Pass</th>
                        <th scope="col">Residual</th>
                        <th scope="col">Fail</th>
                        <th scope="col">Other</th>
                      </tr>
                    </thead>
                    <tbody>
                      {classes.map((c) => (
                        <tr key={c.cls}>
                          <th scope="row">{c.cls}</th>
                          <td>
                            <Verdict kind={verdictKind(c.worst)}>{c.worst === 'pass' ? 'pass' : c.worst}</Verdict>
                          </td>
                          <td>{c.counts.pass ?? 0}</td>
                          <td>{c.counts.residual ?? 0}</td>
                          <td>{(c.counts.fail ?? 0) + (c.counts.error ?? 0)}</td>
                          <td>{c.counts.skipped ?? 0}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </TableScroll>
                {failures.length > 0 && (
                  <>
                    <h3>What got through</h3>
                    <ul>
                      {failures.map((r) => (
                        <li key={r.id}>
                          <strong>{r.title ?? r.id}</strong> ({r.class}): observed {r.observed ?? '?'}, expected at worst {r.expected ?? '?'}. {r.evidence}
                        </li>
                      ))}
                    </ul>
                  </>
                )}
                <h3>Residual risks found by the run</h3>
                {residuals.length === 0 ? (
                  <p>None reported.</p>
                ) : (
                  <details open={residuals.length <= 5}>
                    <summary>
                      {residuals.length} accepted residual risk{residuals.length > 1 ? 's' : ''}: what PostgreSQL cannot close in this mode, in plain words
                    </summary>
                    <ul>
                      {residuals.map((r) => (
                        <li key={r.id}>
                          <strong>{r.title ?? r.id}:</strong> {r.residual_risk}
                        </li>
                      ))}
                    </ul>
                  </details>
                )}
              </>
            )}
            <h3>Residual risks of every deployment</h3>
            <ul>
              {sec.residual_risks.map((r) => (
                <li key={r}>{r}</li>
              ))}
            </ul>
          </section>
        </>
      )}
      <AuditTrail api={api} />
    </>
  );
}

function AuditTrail({ api }: { api: Api }) {
  const [tenant, setTenant] = useState('');
  const [action, setAction] = useState('');
  const [actor, setActor] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [applied, setApplied] = useState({ tenant: '', action: '' });

  const fetchPage = useCallback(
    async (q: { tenant: string; action: string }, before?: number) => {
      setError(null);
      try {
        const res = await api.audit({ tenant: q.tenant || undefined, action: q.action || undefined, before_id: before, limit: 200 });
        setEvents((prev) => (before && prev ? [...prev, ...res.items] : res.items));
        setMore(res.items.length === 200);
      } catch (e) {
        setError(describe(e));
      }
    },
    [api],
  );
  useEffect(() => {
    void fetchPage({ tenant: '', action: '' });
  }, [fetchPage]);

  // Tenant and action filter on the server; actor and time filter the
  // loaded events here (the API has no such filters).
  const shown = (events ?? []).filter((e) => {
    if (actor && !e.actor.toLowerCase().includes(actor.toLowerCase())) return false;
    const t = Date.parse(e.at);
    if (from && t < Date.parse(from + 'Z')) return false;
    if (to && t > Date.parse(to + 'Z')) return false;
    return true;
  });

  return (
    <section aria-labelledby="audit-h" className="panel">
      <h2 id="audit-h">Audit trail</h2>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          const q = { tenant: tenant.trim(), action: action.trim() };
          setApplied(q);
          void fetchPage(q);
        }}
      >
        <div className="field">
          <label htmlFor="a-tenant">Tenant</label>
          <input id="a-tenant" value={tenant} onChange={(e) => setTenant(e.target.value)} placeholder="all tenants" />
        </div>
        <div className="field">
          <label htmlFor="a-action">Action</label>
          <input id="a-action" value={action} onChange={(e) => setAction(e.target.value)} placeholder="e.g. tenant.suspend" />
        </div>
        <div className="field">
          <label htmlFor="a-actor">Actor contains</label>
          <input id="a-actor" value={actor} onChange={(e) => setActor(e.target.value)} placeholder="e.g. operator:ops" />
        </div>
        <div className="field">
          <label htmlFor="a-from">From (UTC)</label>
          <input id="a-from" type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="a-to">To (UTC)</label>
          <input id="a-to" type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} />
        </div>
        <button type="submit">Apply tenant and action</button>
      </form>
      <ErrorBox error={error} />
      <TableScroll label="Audit events">
        <table>
          <caption>
            {events === null
              ? 'Loading events…'
              : `${shown.length} of ${events.length} loaded events${applied.tenant ? ` of tenant ${applied.tenant}` : ''}${applied.action ? ` with action ${applied.action}` : ''}, newest first. Actor and time filters apply to the loaded events as you type.`}
          </caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Tenant</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
            </tr>
          </thead>
          <tbody>
            {shown.slice(0, 100).map((e) => (
              <tr key={e.id}>
                <td>{dateTime(e.at)}</td>
                <td>
                  <code>{e.actor}</code>
                </td>
                <td>{e.tenant ?? '—'}</td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td className="detail">{e.target ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableScroll>
      {shown.length > 100 && <p className="muted">Showing the newest 100 of {shown.length} matching events; narrow the filters to see others.</p>}
      {more && events && (
        <button type="button" className="secondary" onClick={() => void fetchPage(applied, events[events.length - 1].id)}>
          Load older events
        </button>
      )}
    </section>
  );
}
