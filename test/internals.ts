/**
 * What tests reach that apps do not: a replica's storage and its sync port
 * (packages/client/src/sync/port.ts). Not exported by @syncline/client.
 */
import type { Replica, Schema } from '@syncline/client';
import { internalsOf } from '../packages/client/src/replica.js';

export const storageOf = (replica: Replica<Schema>) => internalsOf(replica).storage;
export const portOf = (replica: Replica<Schema>) => internalsOf(replica).port;
