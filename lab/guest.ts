/**
 * A real virtio-net guest for the VM tests (#16), with no kernel installed and no KVM:
 *
 *   - the kernel is Debian's current `linux-image-*-amd64` (the one `linux-image-amd64`
 *     depends on), fetched with `apt-get download` and unpacked with `dpkg-deb -x`;
 *   - the initramfs (a newc cpio, written here, gzipped) holds busybox-static, the virtio
 *     modules in load order (read from each module's `depends=`: the package has no
 *     modules.dep), the host's iperf3 with its libraries and ld-linux, and INIT below;
 *   - both are cached in `$VTEPD_GUEST_CACHE` or `$XDG_CACHE_HOME/vtepd-guest` (else
 *     ~/.cache/vtepd-guest), one directory per kernel package, version and build recipe.
 *
 * `startGuest` runs QEMU under TCG inside a lab host, so its TAP (`-netdev tap,ifname=…`)
 * appears there, with the serial console on QEMU's stdio: the guest says it is ready there,
 * and `run()` sends it one shell command at a time and reads the output and exit code back.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Lab } from './netns.js';
import { until } from './wait.js';

/** The modules the guest loads (with what they depend on, first). */
const MODULES = ['virtio_pci', 'virtio_net'];
/** Host binaries copied into the guest with their shared libraries. */
const BINARIES = ['/usr/bin/iperf3'];
/** What the guest prints on its console once eth0 is configured and iperf3 -s runs. */
export const READY = 'vtepd-guest: ready';

/**
 * The guest's /init. Parameters from the kernel command line: guest.ip=10.1.0.2/24,
 * guest.gw=, guest.mtu= (default: what virtio-net negotiated, i.e. host_mtu). Then a command
 * loop on the console: a line "ID COMMAND" runs COMMAND and answers "@@out ID", its output,
 * "@@rc ID CODE".
 */
const INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/sbin /usr/bin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 1 > /proc/sys/kernel/printk
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko || echo "vtepd-guest: insmod $m failed"; done
for p in $(cat /proc/cmdline); do
  case $p in
    guest.ip=*) IP=\${p#guest.ip=} ;;
    guest.gw=*) GW=\${p#guest.gw=} ;;
    guest.mtu=*) MTU=\${p#guest.mtu=} ;;
  esac
done
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -n "$MTU" ] && ip link set eth0 mtu "$MTU"
ip link set eth0 up
[ -n "$IP" ] && ip addr add "$IP" dev eth0
[ -n "$GW" ] && ip route add default via "$GW"
iperf3 -s -D
stty -echo 2>/dev/null
echo "${READY} ip=$IP mtu=$(cat /sys/class/net/eth0/mtu) kernel=$(uname -r) uptime=$(cut -d" " -f1 /proc/uptime)"
while :; do
  while read -r id cmd; do
    sh -c "$cmd" > /tmp/out 2>&1
    rc=$?
    echo "@@out $id"
    cat /tmp/out
    echo "@@rc $id $rc"
  done
  sleep 1
done
`;

export interface GuestImage {
  kernel: string;
  initrd: string;
  /** The kernel package, e.g. linux-image-6.1.0-57-amd64 6.1.192-3. */
  package: string;
}

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
}

function cacheRoot(): string {
  return process.env.VTEPD_GUEST_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vtepd-guest');
}

/** Debian's current kernel package: the one linux-image-amd64 depends on, at the version it names. */
function kernelPackage(): { name: string; version: string } {
  const meta = sh('apt-cache', ['show', '--no-all-versions', 'linux-image-amd64']);
  const m = /^Depends:.*?\b(linux-image-\S+-amd64)(?: \(= (\S+)\))?/m.exec(meta);
  if (!m) throw new Error('guest: apt-cache show linux-image-amd64 names no linux-image-*-amd64 package');
  return { name: m[1]!, version: m[2] ?? /^Version: (\S+)/m.exec(meta)?.[1] ?? 'unknown' };
}

/** What goes into a guest besides the kernel: a recipe whose hash keys the cache. */
function recipe(): string {
  const files = ['/bin/busybox', ...BINARIES].map((f) => `${f}:${statSync(f).size}:${statSync(f).mtimeMs}`);
  return JSON.stringify({ INIT, MODULES, files, format: 2 });
}

/**
 * The guest's kernel and initramfs, built once into the cache (about 15 s: download and
 * unpack the kernel package, pack the initramfs) and reused while the kernel package and
 * the recipe stay the same. `progress` gets a line per step of a build.
 */
export function buildGuest(progress: (line: string) => void = (l) => console.log(l)): GuestImage {
  const pkg = kernelPackage();
  const hash = createHash('sha256').update(recipe()).digest('hex').slice(0, 12);
  const dir = join(cacheRoot(), `${pkg.name}_${pkg.version}_${hash}`);
  const image = { kernel: join(dir, 'vmlinux'), initrd: join(dir, 'initrd.gz'), package: `${pkg.name} ${pkg.version}` };
  if (existsSync(image.initrd)) return image;
  const t0 = Date.now();
  const say = (s: string) => progress(`guest: ${s} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  mkdirSync(cacheRoot(), { recursive: true });
  const work = mkdtempSync(join(cacheRoot(), 'build-'));
  try {
    say(`apt-get download ${pkg.name} ${pkg.version}`);
    sh('apt-get', ['download', `${pkg.name}=${pkg.version}`], work);
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'))!;
    say(`dpkg-deb -x ${deb}`);
    const root = join(work, 'root');
    sh('dpkg-deb', ['-x', join(work, deb), root]);
    const kdir = join(root, 'boot');
    const vmlinuz = readdirSync(kdir).find((f) => f.startsWith('vmlinuz-'))!;
    const release = vmlinuz.slice('vmlinuz-'.length);
    say(`initramfs for ${release}: busybox, ${MODULES.join(', ')} (and their dependencies), ${BINARIES.join(', ')}`);
    const out = join(work, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'vmlinux'), pvhKernel(readFileSync(join(kdir, vmlinuz))));
    writeFileSync(join(out, 'initrd.gz'), gzipSync(initramfs(join(root, 'lib', 'modules', release)), { level: 6 }));
    try {
      renameSync(out, dir);
    } catch (e) {
      if (!existsSync(image.initrd)) throw e; // another run built it meanwhile
    }
    say(`built into ${dir}`);
    return image;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The kernel as an ELF (vmlinux, unpacked from the bzImage's xz payload): QEMU boots it
 * through its PVH entry (Debian's kernels have CONFIG_PVH), with no firmware detour and no
 * decompression under TCG, a few seconds sooner than the bzImage.
 */
function pvhKernel(bzImage: Buffer): Buffer {
  const at = bzImage.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (at < 0) throw new Error('guest: no xz payload in the kernel image (not CONFIG_KERNEL_XZ?)');
  const elf = execFileSync('xz', ['-dc', '--single-stream'], { input: bzImage.subarray(at), maxBuffer: 512 * 1024 * 1024 });
  if (elf.subarray(0, 4).toString('latin1') !== '\x7fELF') throw new Error('guest: the kernel payload is not an ELF vmlinux');
  return elf;
}

// ---- the initramfs ----------------------------------------------------------------------

interface Entry {
  name: string;
  mode: number;
  data?: Buffer;
  rdev?: [number, number];
}

/** The modules to load, dependencies first, from each module's own `depends=` (modinfo). */
export function moduleOrder(modDir: string, wanted: string[]): { name: string; path: string }[] {
  const paths = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ko')) paths.set(e.name.slice(0, -3).replaceAll('-', '_'), join(d, e.name));
    }
  };
  walk(join(modDir, 'kernel'));
  const order: { name: string; path: string }[] = [];
  const visit = (name: string) => {
    if (order.some((m) => m.name === name)) return;
    const path = paths.get(name);
    if (!path) throw new Error(`guest: module ${name} is not in ${modDir} (built in? then leave it out of MODULES)`);
    const text = readFileSync(path).toString('latin1');
    const deps = /\0depends=([^\0]*)\0/.exec(text)?.[1] ?? '';
    for (const d of deps.split(',').filter(Boolean)) visit(d.replaceAll('-', '_'));
    order.push({ name, path });
  };
  for (const w of wanted) visit(w);
  return order;
}

/** A binary and its shared libraries (ldd), each at the path the loader looks for it. */
function withLibraries(bin: string): Entry[] {
  const out: Entry[] = [{ name: bin.slice(1), mode: 0o100755, data: readFileSync(bin) }];
  for (const line of sh('ldd', [bin]).split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) out.push({ name: m[1]!.slice(1), mode: 0o100755, data: readFileSync(realpathSync(m[1]!)) });
  }
  return out;
}

function initramfs(modDir: string): Buffer {
  const dirs = ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'etc', 'lib', 'lib64', 'lib/modules', 'lib/x86_64-linux-gnu', 'usr', 'usr/bin', 'usr/sbin'];
  const mods = moduleOrder(modDir, MODULES);
  const entries: Entry[] = [
    ...dirs.map((name) => ({ name, mode: 0o40755 })),
    { name: 'dev/console', mode: 0o20600, rdev: [5, 1] },
    { name: 'init', mode: 0o100755, data: Buffer.from(INIT) },
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync('/bin/busybox') },
    { name: 'etc/modules', mode: 0o100644, data: Buffer.from(`${mods.map((m) => m.name).join('\n')}\n`) },
    ...mods.map((m) => ({ name: `lib/modules/${m.name}.ko`, mode: 0o100644, data: readFileSync(m.path) })),
    ...BINARIES.flatMap(withLibraries),
  ];
  const seen = new Set<string>();
  return cpio(entries.filter((e) => !seen.has(e.name) && seen.add(e.name)));
}

/** A newc ("070701") cpio archive, as the kernel unpacks an initramfs. */
export function cpio(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const add = (e: Entry, ino: number) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const fields = [ino, e.mode, 0, 0, e.mode & 0o40000 ? 2 : 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = Buffer.from(`070701${fields.map(hex).join('')}`);
    parts.push(header, name, pad(header.length + name.length), data, pad(data.length));
  };
  entries.forEach((e, i) => add(e, i + 1));
  add({ name: 'TRAILER!!!', mode: 0 }, 0);
  return Buffer.concat(parts);
}

// ---- running it ---------------------------------------------------------------------------

export interface GuestOptions {
  /** The TAP QEMU creates in the lab host (vnet0). */
  tap: string;
  mac: string;
  /** eth0's address with prefix, e.g. 10.1.0.2/24. */
  ip: string;
  /** virtio-net's host_mtu: the MTU the guest's eth0 takes. */
  mtu?: number;
  gw?: string;
  memoryMb?: number;
  /** How long to wait for the ready line (TCG boots in about 3 s on an idle machine). */
  bootTimeoutMs?: number;
}

export interface Guest {
  child: ChildProcess;
  /** The serial console so far (\r removed). */
  console(): string;
  /** The ready line: address, MTU and kernel release the guest reports. */
  ready: string;
  /** Seconds from QEMU's start to the ready line. */
  bootSeconds: number;
  /** Run one shell command line in the guest; its output and exit code. */
  run(command: string, timeoutMs?: number): Promise<{ code: number; output: string }>;
  stop(): Promise<void>;
}

/** The QEMU command line of a guest (TCG, virtio-net on a TAP with vhost off, serial on stdio). */
export function qemuArgs(image: GuestImage, o: GuestOptions): string[] {
  const append = ['console=ttyS0', 'quiet', 'panic=-1', `guest.ip=${o.ip}`, ...(o.gw ? [`guest.gw=${o.gw}`] : [])];
  return [
    ...['-accel', 'tcg', '-cpu', 'max', '-smp', '1', '-m', String(o.memoryMb ?? 256)],
    ...['-nographic', '-serial', 'stdio', '-monitor', 'none', '-no-reboot'],
    ...['-kernel', image.kernel, '-initrd', image.initrd, '-append', append.join(' ')],
    // vhost=off: without /dev/vhost-net, vhost=on crashes QEMU. romfile=: no iPXE ROM needed for -kernel.
    ...['-netdev', `tap,id=n0,ifname=${o.tap},script=no,downscript=no,vhost=off`],
    ...['-device', `virtio-net-pci,netdev=n0,mac=${o.mac}${o.mtu ? `,host_mtu=${o.mtu}` : ''},romfile=`],
  ];
}

/**
 * Boot a guest inside `host` (its TAP `opts.tap` appears there) and wait for its ready
 * line. Stopped by PID with stop() or the lab's cleanup.
 */
export async function startGuest(lab: Lab, host: string, opts: GuestOptions, image: GuestImage = buildGuest()): Promise<Guest> {
  const t0 = Date.now();
  const child = lab.spawn(host, 'qemu-system-x86_64', qemuArgs(image, opts), { stdio: ['pipe', 'pipe', 'pipe'] });
  let text = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    text += d.toString().replaceAll('\r', '');
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const ready = await until(
    `the guest on ${opts.tap} to print "${READY}"`,
    async () => {
      if (child.exitCode !== null) throw new Error(`qemu exited with ${child.exitCode}: ${err.slice(-2000)} console: ${text.slice(-2000)}`);
      // SeaBIOS's terminal escapes may precede it on its line.
      const line = text.split('\n').find((l) => l.includes(READY));
      return line?.slice(line.indexOf(READY));
    },
    (l) => l !== undefined,
    opts.bootTimeoutMs ?? 60_000,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; console: ${text.slice(-3000)}`);
  });
  const bootSeconds = (Date.now() - t0) / 1000;
  let next = 0;
  const run = async (command: string, timeoutMs = 60_000) => {
    if (command.includes('\n')) throw new Error('guest.run: one line only');
    const id = ++next;
    child.stdin!.write(`${id} ${command}\n`);
    const done = new RegExp(`^@@rc ${id} (\\d+)$`, 'm');
    const m = await until(`the guest to finish "${command}"`, async () => done.exec(text), Boolean, timeoutMs, 50);
    const begin = text.indexOf(`@@out ${id}\n`);
    return { code: Number(m![1]), output: text.slice(begin + `@@out ${id}\n`.length, m!.index) };
  };
  return { child, console: () => text, ready: ready!, bootSeconds, run, stop: async () => void (await lab.stop(child)) };
}

/** The cache directory's name for a package and recipe (for the docs and the log). */
export function guestCacheDir(): string {
  return cacheRoot();
}
