import { FormEvent, useEffect, useRef, useState } from 'react';
import { Api, SchemaStatus, Tenant } from '../api';
import { creationFailure } from '../outcome';
import { ErrorBox, PageTitle } from '../components';
import { bytes, validateCount, validateName, validateSettings, validateTenantID } from '../format';

const steps = ['Identity', 'Limits and settings', 'Review'] as const;

interface Form {
  id: string;
  name: string;
  maxConns: string;
  timeoutMS: string;
  settings: string;
}

type Phase =
  | { kind: 'edit' }
  | { kind: 'running'; stage: number; started: number }
  | { kind: 'done'; tenant: Tenant; status: SchemaStatus | null; ms: number }
  | { kind: 'failed'; error: string; leftBehind: string; step: number | null };

// The stages the console walks through while creating; each is a real call
// or the wait for one (bulkhead creates the tenant in one transaction).
const stages = ['Creating the catalog row, role, schema, grants and migrations in one transaction', 'Verifying the new schema (schema status)'];

export function Wizard({ api }: { api: Api }) {
  const [step, setStep] = useState(0);
  const [f, setF] = useState<Form>({ id: '', name: '', maxConns: '', timeoutMS: '', settings: '' });
  const [touched, setTouched] = useState(false);
  const [phase, setPhase] = useState<Phase>({ kind: 'edit' });
  const [, setTick] = useState(0);
  const stepHeading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    if (phase.kind !== 'running') return;
    const t = setInterval(() => setTick((n) => n + 1), 100);
    return () => clearInterval(t);
  }, [phase.kind]);

  const errs: Record<string, string | null> = {
    id: validateTenantID(f.id),
    name: validateName(f.name),
    maxConns: validateCount(f.maxConns, 'Max connections'),
    timeoutMS: validateCount(f.timeoutMS, 'Statement timeout'),
    settings: validateSettings(f.settings),
  };
  const stepFields = [['id', 'name'], ['maxConns', 'timeoutMS', 'settings'], []][step];
  const stepValid = stepFields.every((k) => !errs[k]);

  const go = (n: number) => {
    setStep(n);
    setTouched(false);
    setTimeout(() => stepHeading.current?.focus(), 0);
  };
  const next = (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    if (stepValid) go(step + 1);
  };

  const body = () => {
    const b: Record<string, unknown> = { id: f.id };
    if (f.name) b.name = f.name;
    if (f.maxConns || f.timeoutMS) b.limits = { max_conns: Number(f.maxConns || 0), statement_timeout_ms: Number(f.timeoutMS || 0) };
    if (f.settings.trim()) b.settings = JSON.parse(f.settings);
    return b;
  };

  const create = async () => {
    const started = performance.now();
    setPhase({ kind: 'running', stage: 0, started });
    try {
      const t = await api.create(body());
      setPhase({ kind: 'running', stage: 1, started });
      let st: SchemaStatus | null = null;
      try {
        st = await api.schemaStatus(t.id);
      } catch {
        st = null;
      }
      setPhase({ kind: 'done', tenant: t, status: st, ms: performance.now() - started });
    } catch (e) {
      setPhase({ kind: 'failed', ...(await creationFailure(e, f.id, api.tenant)) });
    }
  };

  const input = (k: keyof Form, label: string, help: string, opts: { textarea?: boolean; numeric?: boolean; required?: boolean } = {}) => {
    const err = touched ? errs[k] : null;
    const common = {
      id: `f-${k}`,
      value: f[k],
      onChange: (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value }),
      'aria-invalid': !!err,
      'aria-describedby': `f-${k}-help${err ? ` f-${k}-err` : ''}`,
      'aria-required': opts.required,
    };
    return (
      <div className="field">
        <label htmlFor={`f-${k}`}>
          {label}
          {opts.required && <span aria-hidden="true"> *</span>}
          {!opts.required && <span className="muted"> (optional)</span>}
        </label>
        {opts.textarea ? <textarea rows={4} spellCheck={false} {...common} /> : <input inputMode={opts.numeric ? 'numeric' : undefined} autoComplete="off" {...common} />}
        <div id={`f-${k}-help`} className="help">
          {help}
        </div>
        {err && (
          <div id={`f-${k}-err`} className="field-error">
            <span aria-hidden="true">✕ </span>
            {err}
          </div>
        )}
      </div>
    );
  };

  return (
    <>
      <PageTitle>New tenant</PageTitle>
      <ol className="steps" aria-label="Steps">
        {steps.map((s, i) => (
          <li key={s} aria-current={phase.kind === 'edit' && i === step ? 'step' : undefined} className={i < step ? 'done' : i === step ? 'current' : ''}>
            <span aria-hidden="true">{i < step ? '✓' : i + 1}</span> {s}
            {i < step && <span className="visually-hidden"> (completed)</span>}
          </li>
        ))}
      </ol>

      {phase.kind === 'edit' && (
        <form onSubmit={next} noValidate className="wizard">
          <h2 ref={stepHeading} tabIndex={-1}>
            Step {step + 1} of 3: {steps[step]}
          </h2>
          {touched && !stepValid && (
            <div role="alert" className="error-box">
              Please correct the fields marked below.
            </div>
          )}
          {step === 0 && (
            <>
              {input('id', 'Tenant ID', 'What your business calls the tenant, e.g. a brand slug. 1–63 characters: a-z, 0-9, ".", "_", "-". It never becomes a schema name.', { required: true })}
              {input('name', 'Display name', 'Shown in this console, e.g. "Acme Brands".')}
            </>
          )}
          {step === 1 && (
            <>
              {input('maxConns', 'Max concurrent connections', 'Cap on the tenant’s concurrent checkouts; empty or 0 uses the server default.', { numeric: true })}
              {input('timeoutMS', 'Statement timeout (ms)', 'Applied to every connection handed to the tenant; empty or 0 uses the server default.', { numeric: true })}
              {input('settings', 'Settings (JSON object)', 'Free-form settings stored in the catalog, e.g. {"plan": "gold"}.', { textarea: true })}
            </>
          )}
          {step === 2 && (
            <dl className="kv review">
              <dt>Tenant ID</dt>
              <dd>
                <code>{f.id}</code>
              </dd>
              <dt>Display name</dt>
              <dd>{f.name || '(none)'}</dd>
              <dt>Max concurrent connections</dt>
              <dd>{f.maxConns || 'server default'}</dd>
              <dt>Statement timeout</dt>
              <dd>{f.timeoutMS ? `${f.timeoutMS} ms` : 'server default'}</dd>
              <dt>Settings</dt>
              <dd>
                <code>{f.settings.trim() || '{}'}</code>
              </dd>
            </dl>
          )}
          <div className="wizard-actions">
            {step > 0 && (
              <button type="button" className="secondary" onClick={() => go(step - 1)}>
                Back
              </button>
            )}
            {step < 2 ? (
              <button type="submit">Next: {steps[step + 1]}</button>
            ) : (
              <button type="button" onClick={() => void create()}>
                Create tenant
              </button>
            )}
          </div>
        </form>
      )}

      {phase.kind === 'running' && (
        <section aria-labelledby="progress-h" className="progress">
          <h2 id="progress-h">Creating {f.id}…</h2>
          <ol aria-live="polite">
            {stages.map((s, i) => (
              <li key={s} className={i < phase.stage ? 'done' : i === phase.stage ? 'current' : ''}>
                <span aria-hidden="true">{i < phase.stage ? '✓' : i === phase.stage ? '…' : '·'}</span> {s}
                <span className="visually-hidden">{i < phase.stage ? ' (done)' : i === phase.stage ? ' (in progress)' : ' (waiting)'}</span>
              </li>
            ))}
          </ol>
          <progress max={stages.length} value={phase.stage} aria-label="Creation progress" />
          <p className="muted">{((performance.now() - phase.started) / 1000).toFixed(1)} s elapsed</p>
        </section>
      )}

      {phase.kind === 'done' && (
        <section aria-labelledby="done-h" className="success" role="status">
          <h2 id="done-h">
            <span aria-hidden="true">✓ </span>Tenant {phase.tenant.id} is {phase.tenant.status}
          </h2>
          <p>
            Created in {(phase.ms / 1000).toFixed(2)} s: schema <code>{phase.tenant.schema}</code>, role <code>{phase.tenant.role}</code>
            {phase.status && `, schema version ${phase.status.schema_version} of ${phase.status.latest_version}, ${bytes(phase.status.size_bytes)} in ${phase.status.objects} objects`}.
          </p>
          <h3>Next steps</h3>
          <ul>
            <li>
              Mint a token for its first admin with the server’s secret:{' '}
              <code>go run ./examples/licensing -secret "$LICENSING_SECRET" -mint -mint-tenant {phase.tenant.id} -mint-sub alice -mint-roles admin</code> (the throwaway
              demo uses a random secret unless it was started with <code>-secret</code>).
            </li>
            <li>
              Call the licensing API with it, e.g. <code>curl -H "Authorization: Bearer $TOKEN" $API/api/v1/brands</code>.
            </li>
            <li>
              Watch it on the <a href="#/performance">performance view</a> once it serves requests.
            </li>
          </ul>
          <div className="wizard-actions">
            <a className="button" href="#/tenants">
              Go to the tenant list
            </a>
            <button
              type="button"
              className="secondary"
              onClick={() => {
                setF({ id: '', name: '', maxConns: '', timeoutMS: '', settings: '' });
                setStep(0);
                setPhase({ kind: 'edit' });
              }}
            >
              Create another tenant
            </button>
          </div>
        </section>
      )}

      {phase.kind === 'failed' && (
        <section aria-labelledby="fail-h" className="failure">
          <h2 id="fail-h">
            <span aria-hidden="true">✕ </span>Tenant {f.id} was not created
          </h2>
          <ErrorBox error={phase.error} title="The API answered" />
          <p className="left-behind">{phase.leftBehind}</p>
          <div className="wizard-actions">
            <button
              type="button"
              onClick={() => {
                setPhase({ kind: 'edit' });
                go(phase.step ?? 2);
              }}
            >
              {phase.step === null ? 'Back to review' : `Fix ${steps[phase.step].toLowerCase()}`}
            </button>
          </div>
        </section>
      )}
    </>
  );
}
