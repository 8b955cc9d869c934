import pino, { type Logger } from 'pino';

/**
 * The process logger: JSON lines on stderr (stdout carries only the CLI's `ready` line).
 * Synchronous writes so that nothing is lost when the process exits right after logging.
 */
export function createLogger(level: string): Logger {
  return pino({ level, name: 'etcd-metaproxy' }, pino.destination({ dest: 2, sync: true }));
}
