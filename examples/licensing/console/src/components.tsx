import { ReactNode, useEffect, useRef } from 'react';
import type { Status } from './api';

// Status is always shown as a glyph and a word, never by colour alone.
const statusGlyph: Record<string, string> = {
  active: '●',
  suspended: '❚❚',
  provisioning: '◌',
  archived: '▣',
  deleted: '✕',
};

export function StatusBadge({ status, retained }: { status: Status; retained?: boolean }) {
  const label = status === 'deleted' && retained ? 'deleted (restorable)' : status;
  return (
    <span className={`badge badge-${status}`}>
      <span aria-hidden="true" className="glyph">
        {statusGlyph[status] ?? '?'}
      </span>{' '}
      {label}
    </span>
  );
}

/** Verdict badges for hardening checks and isotest results: glyph + word. */
export function Verdict({ kind, children }: { kind: 'ok' | 'warn' | 'bad' | 'info'; children: ReactNode }) {
  const glyph = { ok: '✓', warn: '!', bad: '✕', info: 'i' }[kind];
  return (
    <span className={`verdict verdict-${kind}`}>
      <span aria-hidden="true" className="glyph">
        {glyph}
      </span>{' '}
      {children}
    </span>
  );
}

/** ErrorBox shows an API error as the API states it. */
export function ErrorBox({ error, title = 'The request failed' }: { error: string | null; title?: string }) {
  if (!error) return null;
  return (
    <div className="error-box" role="alert">
      <strong>{title}.</strong> <span className="api-error">{error}</span>
    </div>
  );
}

/**
 * Dialog is a modal on the native <dialog> element: focus moves into it and is
 * kept there, Escape closes it, focus returns to the opener.
 */
export function Dialog({ title, open, onClose, children, id }: { title: string; open: boolean; onClose: () => void; children: ReactNode; id: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={`${id}-title`} onClose={onClose} className="dialog">
      {open && (
        <>
          <h2 id={`${id}-title`}>{title}</h2>
          {children}
        </>
      )}
    </dialog>
  );
}

export function Card({ label, value, hint, glyph }: { label: string; value: ReactNode; hint?: string; glyph: string }) {
  return (
    <div className="card">
      <div className="card-label">
        <span aria-hidden="true" className="glyph">
          {glyph}
        </span>{' '}
        {label}
      </div>
      <div className="card-value">{value}</div>
      {hint && <div className="card-hint">{hint}</div>}
    </div>
  );
}

/** PageTitle is the view's h1; it takes focus when the view opens so screen readers announce it. */
export function PageTitle({ children }: { children: ReactNode }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

/**
 * TableScroll wraps a wide table: the region scrolls sideways on narrow
 * screens, so it is focusable and named for keyboard users (arrow keys scroll it).
 */
export function TableScroll({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="table-wrap" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}
