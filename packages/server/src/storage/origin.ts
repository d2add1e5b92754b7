/** What both storages check of an append request's origin positions. */
import type { AppendRequest } from './types.js';

/**
 * The request's origin positions, checked: absent for this region's own
 * changes (each is then at its own position), else one per change, ascending.
 * @throws RangeError when a request of another origin has none, or they do not fit its changes.
 */
export function originPositions(request: AppendRequest): readonly number[] | undefined {
  const positions = request.originPositions;
  if (!request.origin) {
    if (positions !== undefined) throw new RangeError('origin positions belong to changes of another origin');
    return undefined;
  }
  if (positions?.length !== request.changes.length) {
    throw new RangeError(`changes of origin "${request.origin}" need one origin position each`);
  }
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i] as number;
    if (!Number.isSafeInteger(p) || p < 1 || (i > 0 && p <= (positions[i - 1] as number))) throw new RangeError(`origin positions must be ascending positive integers (at ${i}: ${p})`);
  }
  return positions;
}
