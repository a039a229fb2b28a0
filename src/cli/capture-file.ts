/**
 * Opening the file `vtepd capture -w FILE` writes to, so that it cannot be turned against
 * the operator (vtepd runs as root): it never follows a symbolic link in the last component
 * (O_NOFOLLOW), never truncates an existing file unless asked (`--force`; otherwise O_EXCL),
 * writes only into a regular file, and leaves it readable by its owner only (0600): a
 * capture holds tenants' frames.
 */
import { closeSync, constants, createWriteStream, fchmodSync, fstatSync, openSync, type WriteStream } from 'node:fs';

export function openCaptureFile(path: string, force: boolean): WriteStream {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (force ? constants.O_TRUNC : constants.O_EXCL);
  let fd: number;
  try {
    fd = openSync(path, flags, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new Error(`capture: ${path} exists; --force overwrites it`);
    if (code === 'ELOOP') throw new Error(`capture: ${path} is a symbolic link; vtepd does not follow it`);
    throw new Error(`capture: cannot open ${path}: ${(e as Error).message}`);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`capture: ${path} is not a regular file`);
    fchmodSync(fd, 0o600);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return createWriteStream('', { fd });
}
