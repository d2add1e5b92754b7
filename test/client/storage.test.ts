import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { indexedDbStorage, memoryStorage } from '@syncline/client';
import { storageConformance } from './storage-conformance.js';

storageConformance('memory', () => memoryStorage());
storageConformance('indexeddb (fake-indexeddb)', () => indexedDbStorage({ indexedDB: new IDBFactory() }));
