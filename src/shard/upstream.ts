// Moved to upstream/upstream.ts; kept for the write path's files (writer.ts, epoch.ts,
// clock/allocator.ts, ownership/) until they import it from there.
export type { Upstream } from '../upstream/upstream.js';
