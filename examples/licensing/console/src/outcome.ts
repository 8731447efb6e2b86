import { ApiError, describe } from './api';

export interface Failure {
  /** error is the API's answer, as it stated it. */
  error: string;
  /** leftBehind says, after checking, whether the failed creation left anything. */
  leftBehind: string;
  /** step is the wizard step to go back to (0 identity, 1 limits), or null for the review. */
  step: number | null;
}

/**
 * creationFailure explains a failed tenant creation. A 409 means the ID was
 * taken and nothing changed; otherwise it asks the API (lookup) whether the
 * tenant exists before claiming that nothing was left behind.
 */
export async function creationFailure(e: unknown, id: string, lookup: (id: string) => Promise<unknown>): Promise<Failure> {
  if (e instanceof ApiError && e.status === 409) {
    return { error: describe(e), leftBehind: 'Nothing was created or changed: the existing tenant is untouched.', step: 0 };
  }
  let left = 'Nothing was left behind: bulkhead creates the catalog row, role, schema and migrations in one transaction, which was rolled back.';
  try {
    await lookup(id);
    left = `A tenant "${id}" exists now: open it from the tenant list to check its state.`;
  } catch (e2) {
    if (e2 instanceof ApiError && e2.status === 404) left += ` Verified: the API reports no tenant "${id}".`;
    else left = 'Whether anything was left behind could not be verified: ' + describe(e2);
  }
  let step: number | null = null;
  if (e instanceof ApiError && e.status === 400) step = 'id' in e.fields || 'name' in e.fields ? 0 : 1;
  return { error: describe(e), leftBehind: left, step };
}
