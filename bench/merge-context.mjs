// Merge contexts (issue 19's figure): one merge record written by 1,000 replicas in turn, each
// version made after seeing the one before (so each supersedes it), then what the record's state
// takes. Its `seen` vector holds one entry per writer, and stays so after 990 of them are retired:
// merge contexts are not collected (server README, "Bounded growth": they need causal stability).
//
//   node bench/merge-context.mjs [--writers 1000]
//
// Run after `tsc -b`.
import { parseArgs } from 'node:util';
import { applyChange, contextFor, encodeRecordState, formatTimestamp } from '../packages/core/dist/internal.js';

const { values } = parseArgs({ options: { writers: { type: 'string' } } });
const WRITERS = Number(values.writers ?? 1_000);
let state;
for (let i = 0; i < WRITERS; i++) {
  const replica = `writer-${String(i).padStart(4, '0')}`;
  const change = {
    space: 'team',
    collection: 'events',
    id: 'standup',
    replica,
    seq: 1,
    hlc: formatTimestamp({ wall: 1_700_000_000_000 + i, counter: 0, replica }),
    op: 'version',
    value: { title: `standup, moved by ${replica}` },
    context: contextFor(state?.merge),
  };
  state = applyChange(state, change);
}
const bytes = encodeRecordState(state).length;
console.log(
  `merge context (${new Date().toISOString()}): one record written by ${WRITERS} replicas in turn: ${state.merge.siblings.length} sibling, ` +
    `${state.merge.seen.size} entries in its context, ${bytes} bytes stored (${(bytes / WRITERS).toFixed(1)} per writer); ` +
    `retiring 990 of the writers changes none of it (merge contexts are not collected yet)`,
);
