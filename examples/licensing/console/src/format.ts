// Formatting and validation shared by the views; pure functions, unit-tested.

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function dateTime(s: string | null | undefined): string {
  if (!s) return '—';
  const d = new Date(s);
  if (isNaN(d.getTime())) return s;
  // ISO-like, in UTC, so screenshots and logs agree.
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export function ms(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return '—';
  const v = seconds * 1000;
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ms`;
}

/** The rule of tenancy.ParseID: 1 to 63 bytes of a-z, 0-9, '.', '_', '-', starting with a letter or digit. */
export function validateTenantID(id: string): string | null {
  if (id.length === 0) return 'A tenant ID is required.';
  if (new TextEncoder().encode(id).length > 63) return 'At most 63 characters.';
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(id)) return 'Use lowercase letters, digits, ".", "_" and "-", starting with a letter or digit.';
  return null;
}

export function validateName(name: string): string | null {
  if (new TextEncoder().encode(name).length > 200) return 'At most 200 bytes.';
  return null;
}

/** A non-negative integer in a text field; empty means "not set". */
export function validateCount(v: string, what: string): string | null {
  if (v.trim() === '') return null;
  if (!/^\d+$/.test(v.trim())) return `${what} must be a whole number of 0 or more.`;
  if (Number(v) > 1_000_000) return `${what} is too large.`;
  return null;
}

export function validateSettings(v: string): string | null {
  if (v.trim() === '') return null;
  try {
    const o = JSON.parse(v);
    if (o === null || typeof o !== 'object' || Array.isArray(o)) return 'Settings must be a JSON object, e.g. {"plan": "gold"}.';
  } catch (e) {
    return `Settings are not valid JSON: ${(e as Error).message}`;
  }
  return null;
}

/** retentionDays turns a day count into the API's Go duration. */
export function retention(days: number): string {
  return `${Math.round(days * 24)}h`;
}
