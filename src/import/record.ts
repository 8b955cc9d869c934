/**
 * What an import keeps in the coordinator.
 *
 * - `import` (a system key): the import's record, JSON: which source (its cluster id), the
 *   revision R the keyspace was copied at, the source revision P through which every event is
 *   applied to every shard, and the phase (`copy`, `follow`, `done`). Progress is written at
 *   most once a second and at the end, so a restart replays a little and skips what a shard
 *   already holds (each shard's clock says how far it got).
 * - the partition-map key holds a marker while an import runs (as `restore` does): a proxy
 *   refuses to start on it (partition/map.ts), so nothing but the importer writes the members.
 *   The real map replaces it when the import stops; then the coordinator clock is P.
 */
import { RESTORING_MARKER, type PartitionMap } from '../partition/map.js';
import { sysKey } from '../shard/keyspace.js';

export const IMPORT_KEY = sysKey('import');

export type ImportPhase = 'copy' | 'follow' | 'done';

export interface ImportRecord {
  format: 1;
  /** The source's cluster id (decimal): a restart must read the same etcd. */
  source: string;
  /** Source endpoints, for the operator. */
  endpoints: string[];
  /** The source revision the keyspace was copied at (the meta compaction revision). */
  copyRevision: string;
  /** Every source event at or below it is applied to every shard. */
  applied: string;
  phase: ImportPhase;
  /** The partition map keys were placed by, and the namespace: a restart must route the same way. */
  map: PartitionMap;
  namespace: string;
  updatedAt: string;
}

export function encodeRecord(r: ImportRecord): Buffer {
  return Buffer.from(JSON.stringify(r));
}

export function decodeRecord(raw: Buffer): ImportRecord | null {
  try {
    const r = JSON.parse(raw.toString('utf8')) as Partial<ImportRecord>;
    if (r.format !== 1 || typeof r.source !== 'string' || typeof r.copyRevision !== 'string' || typeof r.applied !== 'string') return null;
    if (r.phase !== 'copy' && r.phase !== 'follow' && r.phase !== 'done') return null;
    if (typeof r.map !== 'object' || r.map === null || typeof r.namespace !== 'string') return null;
    return r as ImportRecord;
  } catch {
    return null;
  }
}

/** Field of the partition-map placeholder that names an import (besides `restoring`). */
export const IMPORTING_MARKER = 'importing';

/** The placeholder in the partition-map key while an import runs. */
export function importMarker(source: string): Buffer {
  return Buffer.from(JSON.stringify({ [RESTORING_MARKER]: true, [IMPORTING_MARKER]: true, source, startedAt: new Date().toISOString() }));
}

export function isImportMarker(raw: Buffer): boolean {
  try {
    const m = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    return m[IMPORTING_MARKER] === true;
  } catch {
    return false;
  }
}
