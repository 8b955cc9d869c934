/**
 * Certificate files that are re-read when they change, as etcd re-reads its certificates.
 *
 * grpc-js's FileWatcherCertificateProvider reads the files every interval and hands every read
 * on, even an unchanged one or a half-written one. This provider passes on only a read that
 * differs from the last one and that makes a valid TLS context (a key that matches its
 * certificate, parseable PEM); anything else keeps the certificates in use, with a warning.
 */
import tls from 'node:tls';
import fs from 'node:fs';
import { experimental } from '@grpc/grpc-js';
import type { Logger } from 'pino';

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;
type CaUpdate = experimental.CaCertificateUpdate;
type IdentityUpdate = experimental.IdentityCertificateUpdate;

/** How often the files are read again (a read of unchanged files costs three small reads). */
export const CERT_RELOAD_INTERVAL_MS = 1000;

export interface CertFiles {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
}

/** Reads and checks the files once (at start: a bad file is a configuration error). */
export function readCertFiles(files: CertFiles): { cert?: Buffer; key?: Buffer; ca?: Buffer } {
  const cert = files.certFile ? fs.readFileSync(files.certFile) : undefined;
  const key = files.keyFile ? fs.readFileSync(files.keyFile) : undefined;
  const ca = files.caFile ? fs.readFileSync(files.caFile) : undefined;
  tls.createSecureContext({ cert, key, ca });
  return { cert, key, ca };
}

export class CheckedCertificateProvider implements experimental.CertificateProvider {
  private readonly inner: experimental.FileWatcherCertificateProvider;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private ca: CaUpdate | null = null;
  private identity: IdentityUpdate | null = null;
  private readonly onCa = (u: CaUpdate | null): void => this.takeCa(u);
  private readonly onIdentity = (u: IdentityUpdate | null): void => this.takeIdentity(u);

  constructor(
    private readonly files: CertFiles,
    private readonly what: string,
    private readonly log?: Logger,
  ) {
    // The first state is read synchronously: a wrong file fails the start, not a handshake.
    let first: ReturnType<typeof readCertFiles>;
    try {
      first = readCertFiles(files);
    } catch (err) {
      const names = [files.certFile, files.keyFile, files.caFile].filter((f) => f).join(', ');
      throw new Error(`${what}: cannot use ${names}: ${(err as Error).message}`);
    }
    if (first.ca) this.ca = { caCertificate: first.ca };
    if (first.cert && first.key) this.identity = { certificate: first.cert, privateKey: first.key };
    this.inner = new experimental.FileWatcherCertificateProvider({
      certificateFile: files.certFile,
      privateKeyFile: files.keyFile,
      caCertificateFile: files.caFile,
      refreshIntervalMs: CERT_RELOAD_INTERVAL_MS,
    });
  }

  private takeCa(u: CaUpdate | null): void {
    if (!u || (this.ca && this.ca.caCertificate.equals(u.caCertificate))) return;
    try {
      tls.createSecureContext({ ca: u.caCertificate });
    } catch (err) {
      this.log?.warn({ err, file: this.files.caFile }, `${this.what}: CA file changed but does not parse; keeping the previous one`);
      return;
    }
    this.ca = u;
    this.log?.info({ file: this.files.caFile }, `${this.what}: CA file reloaded`);
    for (const l of this.caListeners) l(u);
  }

  private takeIdentity(u: IdentityUpdate | null): void {
    if (!u) return;
    if (this.identity && this.identity.certificate.equals(u.certificate) && this.identity.privateKey.equals(u.privateKey)) return;
    try {
      tls.createSecureContext({ cert: u.certificate, key: u.privateKey });
    } catch (err) {
      // Typically a certificate replaced before its key (or half written): the next read settles it.
      this.log?.warn({ err: (err as Error).message, file: this.files.certFile }, `${this.what}: certificate or key changed but they do not make a valid pair yet; keeping the previous ones`);
      return;
    }
    this.identity = u;
    this.log?.info({ file: this.files.certFile }, `${this.what}: certificate reloaded`);
    for (const l of this.identityListeners) l(u);
  }

  addCaCertificateListener(listener: CaListener): void {
    if (this.caListeners.size === 0) this.inner.addCaCertificateListener(this.onCa);
    this.caListeners.add(listener);
    if (this.ca) process.nextTick(listener, this.ca);
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
    if (this.caListeners.size === 0) this.inner.removeCaCertificateListener(this.onCa);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    if (this.identityListeners.size === 0) this.inner.addIdentityCertificateListener(this.onIdentity);
    this.identityListeners.add(listener);
    if (this.identity) process.nextTick(listener, this.identity);
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
    if (this.identityListeners.size === 0) this.inner.removeIdentityCertificateListener(this.onIdentity);
  }
}
