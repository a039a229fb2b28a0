/**
 * `vtepd capture -w FILE` runs as root: an attacker who can write into the capture's folder
 * must not make it follow a symbolic link or truncate a file it did not mean to write.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openCaptureFile } from '../../src/cli/capture-file.js';

function write(stream: ReturnType<typeof openCaptureFile>, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on('error', reject);
    stream.end(data, () => resolve());
  });
}

describe('the capture file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vtepd-capfile-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is created with mode 0600', async () => {
    const path = join(dir, 'new.pcap');
    await write(openCaptureFile(path, false), 'pcap');
    expect(readFileSync(path, 'utf8')).toBe('pcap');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('never follows a symbolic link, with or without --force, and leaves its target as it was', () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious', { mode: 0o644 });
    const link = join(dir, 'link.pcap');
    symlinkSync(victim, link);
    expect(() => openCaptureFile(link, false)).toThrow(/exists/);
    expect(() => openCaptureFile(link, true)).toThrow(/symbolic link/);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(statSync(victim).mode & 0o777).toBe(0o644);
  });

  it('does not truncate an existing file without --force; with it, overwrites and makes it 0600', async () => {
    const path = join(dir, 'old.pcap');
    writeFileSync(path, 'old capture', { mode: 0o644 });
    expect(() => openCaptureFile(path, false)).toThrow(/exists; --force overwrites it/);
    expect(readFileSync(path, 'utf8')).toBe('old capture');
    await write(openCaptureFile(path, true), 'new');
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('writes only into a regular file', () => {
    expect(() => openCaptureFile(dir, true)).toThrow(/cannot open|not a regular file/);
  });
});
