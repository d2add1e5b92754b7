/**
 * @syncline/core/internal: everything the @syncline packages share (record
 * states, the frame layer, limits arithmetic, stamps). Not API: it changes
 * without notice between versions; apps and adapters use @syncline/core.
 */
export * from './errors.js';
export * from './ids.js';
export * from './json.js';
export * from './hlc.js';
export * as vv from './version-vector.js';
export { SeqSet, type VersionVector, type Ordering, type SeqRange } from './version-vector.js';
export * from './change.js';
export { type LwwField, type LwwState, lwwDeletedAt, lwwEntries, lwwField } from './lww.js';
export { type MergeState, type Version, type Resolver, latestWins, contextFor, compareVersions } from './merge.js';
export { type CrdtField, ROOT as CRDT_ROOT, crdtDoc, crdtRoot, crdtValue, checkCrdtUpdate } from './crdt.js';
export * from './record-state.js';
export { afterHorizon, collectibleAt, latestStamp, restampState } from './stamps.js';
export * from './protocol/index.js';
