import { FormEvent, useEffect, useMemo, useState } from 'react';
import { Api, describe, savedToken, saveToken } from './api';
import { ErrorBox } from './components';
import { Dashboard } from './views/Dashboard';
import { Wizard } from './views/Wizard';
import { Security } from './views/Security';
import { Performance } from './views/Performance';

// Hash routes keep the server side to static files: /admin/#/tenants ...
const routes = [
  { hash: '#/tenants', label: 'Tenants' },
  { hash: '#/new', label: 'New tenant' },
  { hash: '#/security', label: 'Security' },
  { hash: '#/performance', label: 'Performance' },
] as const;

function useHash(): string {
  const [h, setH] = useState(window.location.hash || '#/tenants');
  useEffect(() => {
    const on = () => setH(window.location.hash || '#/tenants');
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return h;
}

export function App() {
  const [token, setToken] = useState(savedToken());
  const api = useMemo(() => new Api(token), [token]);
  const hash = useHash();
  const signOut = () => {
    saveToken('');
    setToken('');
  };
  if (!token) return <SignIn onSignedIn={(t) => setToken(t)} />;
  const route = routes.find((r) => hash.startsWith(r.hash))?.hash ?? '#/tenants';
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <div className="brand">
          bulkhead <span className="muted">admin console</span>
        </div>
        <nav aria-label="Console">
          <ul>
            {routes.map((r) => (
              <li key={r.hash}>
                <a href={r.hash} aria-current={route === r.hash ? 'page' : undefined}>
                  {r.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button type="button" className="secondary" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main">
        {route === '#/tenants' && <Dashboard key="tenants" api={api} onUnauthorized={signOut} />}
        {route === '#/new' && <Wizard key="new" api={api} />}
        {route === '#/security' && <Security key="security" api={api} />}
        {route === '#/performance' && <Performance key="performance" api={api} />}
      </main>
    </>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (t: string) => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = value.trim().replace(/^Bearer\s+/i, '');
    if (!t) {
      setError('Paste an operator token first.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // The token is checked by the management API itself: a tenant token
      // gets the API's 403, an expired one its 401.
      await new Api(t).call('GET', '/api/v1/tenants?limit=1');
      saveToken(t);
      onSignedIn(t);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" className="signin">
      <h1>Sign in to the bulkhead admin console</h1>
      <p>
        Paste an operator token. The reference server prints one at start-up as <code>OPERATOR_TOKEN</code>; on your own deployment mint one with{' '}
        <code>go run ./examples/licensing -mint -mint-roles operator</code>. The token stays in this browser tab only (session storage).
      </p>
      <form onSubmit={submit} noValidate>
        <label htmlFor="token">Operator token</label>
        <textarea id="token" name="token" rows={4} value={value} onChange={(e) => setValue(e.target.value)} spellCheck={false} autoComplete="off" aria-describedby="token-help" />
        <div id="token-help" className="help">
          A JWT signed with the platform key, carrying the role <code>operator</code>.
        </div>
        <ErrorBox error={error} title="Sign-in failed" />
        <button type="submit" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
