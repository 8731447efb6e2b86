import { useCallback, useEffect, useMemo, useState } from 'react';
import {
  ColumnDef,
  SortingState,
  flexRender,
  getCoreRowModel,
  getFilteredRowModel,
  getPaginationRowModel,
  getSortedRowModel,
  useReactTable,
} from '@tanstack/react-table';
import { Api, ApiError, Overview, SchemaStatus, Status, Tenant, describe } from '../api';
import { Card, Dialog, ErrorBox, PageTitle, StatusBadge, TableScroll } from '../components';
import { bytes, dateTime, retention } from '../format';

// Unknown values are undefined (not null) so that sorting puts them last.
interface Row extends Tenant {
  size_bytes?: number;
  objects?: number;
  last_activity?: string;
  retained: boolean;
}

type Pending = { kind: 'details' | 'delete'; tenant: Row } | null;

export function Dashboard({ api, onUnauthorized }: { api: Api; onUnauthorized: () => void }) {
  const [rows, setRows] = useState<Row[] | null>(null);
  const [overview, setOverview] = useState<Overview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState('');
  const [sorting, setSorting] = useState<SortingState>([{ id: 'id', desc: false }]);
  const [search, setSearch] = useState('');
  const [status, setStatus] = useState('');
  const [pending, setPending] = useState<Pending>(null);
  const [busy, setBusy] = useState('');

  const load = useCallback(async () => {
    try {
      const [ts, ov] = await Promise.all([api.tenants(), api.overview()]);
      const byID = new Map(ov.tenants.map((t) => [t.id, t]));
      const now = Date.now();
      setRows(
        ts.map((t) => {
          const o = byID.get(t.id);
          return {
            ...t,
            size_bytes: o?.schema_exists ? o.size_bytes : undefined,
            objects: o?.schema_exists ? o.objects : undefined,
            last_activity: o?.last_activity ?? undefined,
            retained: t.status === 'deleted' && !!t.retain_until && Date.parse(t.retain_until) > now,
          };
        }),
      );
      setOverview(ov);
      setError(null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) onUnauthorized();
      setError(describe(e));
    }
  }, [api, onUnauthorized]);

  useEffect(() => {
    void load();
  }, [load]);

  const act = async (t: Row, op: 'suspend' | 'activate' | 'restore') => {
    setBusy(t.id);
    setError(null);
    try {
      const res = await api.lifecycle(t.id, op);
      await load();
      setNotice(`Tenant ${t.id} is now ${res.status}.`);
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy('');
    }
  };

  const columns = useMemo<ColumnDef<Row>[]>(
    () => [
      { accessorKey: 'id', header: 'Tenant ID', cell: (c) => <code>{c.getValue<string>()}</code> },
      { accessorKey: 'name', header: 'Name', cell: (c) => c.getValue<string>() || <span className="muted">(none)</span> },
      {
        accessorKey: 'status',
        header: 'Status',
        cell: (c) => <StatusBadge status={c.getValue<Status>()} retained={c.row.original.retained} />,
        filterFn: 'equalsString',
      },
      { accessorKey: 'created_at', header: 'Created', cell: (c) => dateTime(c.getValue<string>()) },
      { accessorKey: 'schema_version', header: 'Schema version', cell: (c) => c.getValue<number>() },
      { accessorKey: 'size_bytes', header: 'Schema size', cell: (c) => bytes(c.getValue<number | undefined>()), sortUndefined: 'last' },
      { accessorKey: 'last_activity', header: 'Last activity', cell: (c) => dateTime(c.getValue<string | undefined>()), sortUndefined: 'last' },
      {
        id: 'actions',
        header: 'Actions',
        enableSorting: false,
        cell: (c) => {
          const t = c.row.original;
          const dis = busy === t.id;
          return (
            <div className="row-actions">
              <button type="button" className="small secondary" onClick={() => setPending({ kind: 'details', tenant: t })} aria-label={`Details of ${t.id}`}>
                Details
              </button>
              {t.status === 'active' && (
                <button type="button" className="small" disabled={dis} onClick={() => act(t, 'suspend')} aria-label={`Suspend ${t.id}`}>
                  Suspend
                </button>
              )}
              {(t.status === 'suspended' || t.status === 'archived') && (
                <button type="button" className="small" disabled={dis} onClick={() => act(t, 'activate')} aria-label={`Activate ${t.id}`}>
                  Activate
                </button>
              )}
              {t.status === 'deleted' ? (
                <button type="button" className="small" disabled={dis || !t.retained} onClick={() => act(t, 'restore')} aria-label={`Restore ${t.id}`}>
                  Restore
                </button>
              ) : (
                t.status !== 'provisioning' && (
                  <button type="button" className="small danger" disabled={dis} onClick={() => setPending({ kind: 'delete', tenant: t })} aria-label={`Delete ${t.id}`}>
                    Delete
                  </button>
                )
              )}
            </div>
          );
        },
      },
    ],
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [busy],
  );

  const columnFilters = useMemo(() => (status ? [{ id: 'status', value: status }] : []), [status]);
  const table = useReactTable({
    data: rows ?? [],
    columns,
    state: { sorting, globalFilter: search, columnFilters },
    onSortingChange: setSorting,
    globalFilterFn: (row, _col, v: string) => {
      const q = v.toLowerCase();
      return row.original.id.includes(q) || row.original.name.toLowerCase().includes(q);
    },
    getCoreRowModel: getCoreRowModel(),
    getSortedRowModel: getSortedRowModel(),
    getFilteredRowModel: getFilteredRowModel(),
    getPaginationRowModel: getPaginationRowModel(),
    initialState: { pagination: { pageSize: 10 } },
    autoResetPageIndex: true,
  });

  const counts = overview?.counts;
  return (
    <>
      <PageTitle>Tenants</PageTitle>
      <ErrorBox error={error} />
      <p className="notice" role="status" aria-live="polite">
        {notice}
      </p>
      <section aria-labelledby="summary-h">
        <h2 id="summary-h" className="visually-hidden">
          Summary
        </h2>
        <div className="cards">
          <Card glyph="●" label="Active" value={counts ? counts.active : '…'} hint="routable now" />
          <Card glyph="❚❚" label="Suspended" value={counts ? counts.suspended : '…'} hint="data kept, unroutable" />
          <Card glyph="◌" label="Provisioning" value={counts ? counts.provisioning : '…'} hint="creation in progress" />
          <Card glyph="✕" label="Deleted, in retention" value={overview ? overview.deleted_in_retention : '…'} hint="restorable until their deadline" />
        </div>
      </section>

      {rows !== null && rows.length === 0 ? (
        <section className="empty" aria-labelledby="empty-h">
          <h2 id="empty-h">No tenants yet</h2>
          <p>Each tenant gets its own PostgreSQL schema and role. Create the first one to start.</p>
          <a className="button" href="#/new">
            Create the first tenant
          </a>
        </section>
      ) : (
        <section aria-labelledby="list-h">
          <h2 id="list-h">All tenants</h2>
          <div className="filters">
            <div className="field">
              <label htmlFor="search">Search ID or name</label>
              <input id="search" type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
            </div>
            <div className="field">
              <label htmlFor="status-filter">Status</label>
              <select id="status-filter" value={status} onChange={(e) => setStatus(e.target.value)}>
                <option value="">Any status</option>
                {['active', 'suspended', 'provisioning', 'archived', 'deleted'].map((s) => (
                  <option key={s} value={s}>
                    {s}
                  </option>
                ))}
              </select>
            </div>
            <button type="button" className="secondary" onClick={() => void load()}>
              Refresh
            </button>
            <a className="button" href="#/new">
              New tenant
            </a>
          </div>
          <TableScroll label="Tenant table">
            <table aria-labelledby="list-h" aria-describedby="list-caption">
              <caption id="list-caption">
                {rows === null ? 'Loading tenants…' : `${table.getFilteredRowModel().rows.length} of ${rows.length} tenants. Column headers sort the table.`}
              </caption>
              <thead>
                {table.getHeaderGroups().map((hg) => (
                  <tr key={hg.id}>
                    {hg.headers.map((h) => {
                      const s = h.column.getIsSorted();
                      return (
                        <th key={h.id} scope="col" aria-sort={s === 'asc' ? 'ascending' : s === 'desc' ? 'descending' : undefined}>
                          {h.column.getCanSort() ? (
                            <button type="button" className="sort" onClick={h.column.getToggleSortingHandler()}>
                              {flexRender(h.column.columnDef.header, h.getContext())}
                              <span aria-hidden="true" className="sort-glyph">
                                {s === 'asc' ? '▲' : s === 'desc' ? '▼' : '↕'}
                              </span>
                            </button>
                          ) : (
                            flexRender(h.column.columnDef.header, h.getContext())
                          )}
                        </th>
                      );
                    })}
                  </tr>
                ))}
              </thead>
              <tbody>
                {table.getRowModel().rows.map((r) => (
                  <tr key={r.id} data-tenant={r.original.id}>
                    {r.getVisibleCells().map((c) => (
                      <td key={c.id}>{flexRender(c.column.columnDef.cell, c.getContext())}</td>
                    ))}
                  </tr>
                ))}
                {rows !== null && table.getRowModel().rows.length === 0 && (
                  <tr>
                    <td colSpan={columns.length}>No tenant matches these filters.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </TableScroll>
          <nav className="pager" aria-label="Pages">
            <button type="button" className="secondary small" onClick={() => table.previousPage()} disabled={!table.getCanPreviousPage()}>
              Previous page
            </button>
            <span>
              Page {table.getState().pagination.pageIndex + 1} of {Math.max(1, table.getPageCount())}
            </span>
            <button type="button" className="secondary small" onClick={() => table.nextPage()} disabled={!table.getCanNextPage()}>
              Next page
            </button>
            <label htmlFor="page-size">Rows per page</label>
            <select id="page-size" value={table.getState().pagination.pageSize} onChange={(e) => table.setPageSize(Number(e.target.value))}>
              {[10, 25, 50, 100].map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </nav>
        </section>
      )}

      <Dialog id="details" title={`Tenant ${pending?.tenant.id ?? ''}`} open={pending?.kind === 'details'} onClose={() => setPending(null)}>
        {pending?.kind === 'details' && <Details api={api} tenant={pending.tenant} onClose={() => setPending(null)} />}
      </Dialog>
      <Dialog id="delete" title={`Delete tenant ${pending?.tenant.id ?? ''}?`} open={pending?.kind === 'delete'} onClose={() => setPending(null)}>
        {pending?.kind === 'delete' && (
          <DeleteForm
            api={api}
            tenant={pending.tenant}
            onDone={async (msg) => {
              setPending(null);
              await load();
              setNotice(msg);
            }}
            onCancel={() => setPending(null)}
          />
        )}
      </Dialog>
    </>
  );
}

function Details({ api, tenant, onClose }: { api: Api; tenant: Row; onClose: () => void }) {
  const [st, setSt] = useState<SchemaStatus | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.schemaStatus(tenant.id).then(setSt, (e) => setError(describe(e)));
  }, [api, tenant.id]);
  const lim = tenant.limits ?? {};
  return (
    <>
      <dl className="kv">
        <dt>Name</dt>
        <dd>{tenant.name || '(none)'}</dd>
        <dt>Status</dt>
        <dd>
          <StatusBadge status={tenant.status} retained={tenant.retained} />
        </dd>
        <dt>Key</dt>
        <dd>
          <code>{tenant.key}</code>
        </dd>
        <dt>Schema / role</dt>
        <dd>
          <code>{tenant.schema}</code> / <code>{tenant.role}</code>
        </dd>
        <dt>Cluster</dt>
        <dd>{tenant.cluster}</dd>
        <dt>Limits</dt>
        <dd>
          max connections {lim.max_conns || 'default'}, statement timeout {lim.statement_timeout ? `${lim.statement_timeout / 1e6} ms` : 'default'}
        </dd>
        <dt>Created / updated</dt>
        <dd>
          {dateTime(tenant.created_at)} / {dateTime(tenant.updated_at)}
        </dd>
        {tenant.retain_until && (
          <>
            <dt>Restorable until</dt>
            <dd>{dateTime(tenant.retain_until)}</dd>
          </>
        )}
        <dt>Schema status</dt>
        <dd>
          {st
            ? `${st.exists ? 'exists' : 'missing'}; version ${st.schema_version} of ${st.latest_version}; ${bytes(st.size_bytes)} in ${st.objects} objects`
            : error
              ? '—'
              : 'measuring…'}
        </dd>
      </dl>
      <ErrorBox error={error} title="Schema status unavailable" />
      <div className="dialog-actions">
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </>
  );
}

function DeleteForm({ api, tenant, onDone, onCancel }: { api: Api; tenant: Row; onDone: (msg: string) => void; onCancel: () => void }) {
  const [days, setDays] = useState('30');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const n = Number(days);
  const valid = /^\d+$/.test(days) && n >= 1 && n <= 3650;
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const t = await api.remove(tenant.id, retention(n));
      onDone(`Tenant ${tenant.id} is deleted; it can be restored until ${dateTime(t.retain_until)}.`);
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        if (valid) void submit();
      }}
      noValidate
    >
      <div className="warning" role="note">
        <strong>
          <span aria-hidden="true">⚠ </span>Warning:
        </strong>{' '}
        {tenant.id} becomes unroutable at once: its users get 403 and the gateway loses its role membership. Its data is kept for the retention period, during
        which the tenant can be restored; after it, <code>PurgeExpired</code> drops the schema and role for good.
      </div>
      <div className="field">
        <label htmlFor="retention-days">Retention (days)</label>
        <input
          id="retention-days"
          inputMode="numeric"
          value={days}
          onChange={(e) => setDays(e.target.value)}
          aria-invalid={!valid}
          aria-describedby="retention-help"
        />
        <div id="retention-help" className={valid ? 'help' : 'help field-error'}>
          {valid ? 'From 1 to 3650 days.' : 'Enter a whole number of days from 1 to 3650.'}
        </div>
      </div>
      <ErrorBox error={error} title="Delete failed" />
      <div className="dialog-actions">
        <button type="button" className="secondary" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="danger" disabled={!valid || busy}>
          {busy ? 'Deleting…' : `Delete ${tenant.id}`}
        </button>
      </div>
    </form>
  );
}
