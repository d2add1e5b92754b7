/**
 * Log compaction over every space of a storage (the server's timer,
 * `server.compact()` and `syncline-server compact` share it).
 */
import type { SpaceId } from '@syncline/core/internal';
import { FOLLOWER_PREFIX } from '../links/link-session.js';
import type { ServerStorage } from './types.js';

/**
 * Compacts every space to its last `keepLast` entries, but never past what a
 * region that follows this one has stored (the `read` positions its link
 * reported): a follower resumes from the log, which must still hold it.
 * Resolves to the entries removed, per space (spaces where none went are absent).
 */
export async function compactSpaces(storage: ServerStorage, keepLast: number): Promise<Map<SpaceId, number>> {
  const followers = (await storage.linkPeers()).filter((key) => key.startsWith(FOLLOWER_PREFIX));
  const read = await Promise.all(followers.map((key) => storage.linkPositions(key)));
  const removed = new Map<SpaceId, number>();
  for (const space of await storage.spaces()) {
    let keep = keepLast;
    if (read.length > 0) {
      const floor = Math.min(...read.map((positions) => positions.get(space) ?? 0));
      keep = Math.max(keepLast, (await storage.head(space)) - floor);
    }
    const n = await storage.compact(space, keep);
    if (n > 0) removed.set(space, n);
  }
  return removed;
}
