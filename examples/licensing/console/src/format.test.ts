import { describe, expect, it } from 'vitest';
import { bytes, dateTime, ms, retention, validateCount, validateSettings, validateTenantID } from './format';

describe('validateTenantID follows tenancy.ParseID', () => {
  it('accepts IDs the server accepts', () => {
    for (const id of ['acme', 'acme-brands', 'a.b_c-1', '0day', 'x'.repeat(63)]) expect(validateTenantID(id)).toBeNull();
  });
  it('refuses IDs the server refuses', () => {
    for (const id of ['', 'Acme', '-acme', '.a', 'a b', 'x'.repeat(64), 'é']) expect(validateTenantID(id)).not.toBeNull();
  });
});

describe('field validation', () => {
  it('counts', () => {
    expect(validateCount('', 'n')).toBeNull();
    expect(validateCount('12', 'n')).toBeNull();
    expect(validateCount('-1', 'n')).not.toBeNull();
    expect(validateCount('1.5', 'n')).not.toBeNull();
  });
  it('settings must be a JSON object', () => {
    expect(validateSettings('')).toBeNull();
    expect(validateSettings('{"plan":"gold"}')).toBeNull();
    expect(validateSettings('[1]')).not.toBeNull();
    expect(validateSettings('{')).not.toBeNull();
  });
});

describe('formatting', () => {
  it('bytes', () => {
    expect(bytes(null)).toBe('—');
    expect(bytes(512)).toBe('512 B');
    expect(bytes(8192)).toBe('8.0 kB');
    expect(bytes(50 * 1024 * 1024)).toBe('50 MB');
  });
  it('dates are UTC', () => {
    expect(dateTime('2026-01-02T03:04:05Z')).toBe('2026-01-02 03:04 UTC');
    expect(dateTime(null)).toBe('—');
  });
  it('milliseconds', () => {
    expect(ms(0.00123)).toBe('1.23 ms');
    expect(ms(0.25)).toBe('250 ms');
  });
  it('retention as a Go duration', () => {
    expect(retention(30)).toBe('720h');
  });
});
