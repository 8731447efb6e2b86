import { describe, expect, it } from 'vitest';
import { ApiError } from './api';
import { creationFailure } from './outcome';

const notFound = async () => {
  throw new ApiError(404, 'not_found', 'no such tenant');
};

describe('creationFailure', () => {
  it('a conflict changed nothing and sends the operator back to the identity', async () => {
    const f = await creationFailure(new ApiError(409, 'conflict', 'tenant "a" already exists'), 'a', notFound);
    expect(f.error).toBe('409 conflict: tenant "a" already exists');
    expect(f.leftBehind).toContain('Nothing was created or changed');
    expect(f.step).toBe(0);
  });
  it('claims nothing was left behind only after the API says the tenant does not exist', async () => {
    const f = await creationFailure(new ApiError(500, 'internal', 'internal error', {}, 'r1'), 'a', notFound);
    expect(f.error).toBe('500 internal: internal error [request r1]');
    expect(f.leftBehind).toContain('Verified: the API reports no tenant "a"');
    expect(f.step).toBeNull();
  });
  it('says so when the tenant exists after all', async () => {
    const f = await creationFailure(new ApiError(503, 'unavailable', 'try later'), 'a', async () => ({ id: 'a' }));
    expect(f.leftBehind).toContain('A tenant "a" exists now');
  });
  it('says so when it cannot check', async () => {
    const f = await creationFailure(new ApiError(500, 'internal', 'x'), 'a', async () => {
      throw new TypeError('Failed to fetch');
    });
    expect(f.leftBehind).toBe('Whether anything was left behind could not be verified: The server could not be reached: Failed to fetch');
  });
  it('field errors send the operator back to the step holding the field', async () => {
    const id = await creationFailure(new ApiError(400, 'invalid_request', 'bad', { id: 'x' }), 'a', notFound);
    expect(id.step).toBe(0);
    const lim = await creationFailure(new ApiError(400, 'invalid_request', 'bad', { limits: 'x' }), 'a', notFound);
    expect(lim.step).toBe(1);
    expect(lim.error).toBe('400 invalid_request: bad (limits: x)');
  });
});
