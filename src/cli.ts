/**
 * vtepd command line: run, check, demo.
 */
import { Command } from 'commander';
import { formatConfigError, loadConfig, type Config } from './config.js';

function load(path: string): Config {
  const r = loadConfig(path);
  if (!r.ok) {
    for (const e of r.errors) process.stderr.write(`${path}: ${formatConfigError(e)}\n`);
    process.stderr.write(`${path}: ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}\n`);
    process.exit(1);
  }
  return r.config;
}

const program = new Command();
program.name('vtepd').description('Userspace VXLAN virtual switch: per-tenant layer-2 overlays over TAP ports');

program
  .command('run')
  .description('run the switch in the foreground until SIGINT/SIGTERM; TAPs are removed on exit')
  .requiredOption('-c, --config <file>', 'YAML config file')
  .action(async (opts: { config: string }) => {
    const config = load(opts.config);
    const { Daemon } = await import('./daemon.js');
    let d: Awaited<ReturnType<typeof Daemon.start>>;
    try {
      d = await Daemon.start(config);
    } catch (e) {
      process.stderr.write(`vtepd: ${(e as Error).message}\n`);
      process.exit(1);
    }
    const shutdown = (sig: string) => {
      d.close();
      process.stdout.write(`vtepd: stopped (${sig})\n`);
      process.exit(0);
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    const u = config.underlay;
    process.stdout.write(
      `vtepd: running, ${config.tenants.length} tenant(s), ${d.ports.length} port(s), underlay ${u.local} udp/${u.port}\n`,
    );
  });

program
  .command('check')
  .description('validate a config file; print every error with its path; exit 0 if valid, 1 if not')
  .requiredOption('-c, --config <file>', 'YAML config file')
  .action((opts: { config: string }) => {
    const config = load(opts.config);
    const ports = config.tenants.reduce((n, t) => n + t.ports.length, 0);
    process.stdout.write(`${opts.config}: ok (${config.tenants.length} tenant(s), ${ports} port(s))\n`);
  });

program
  .command('demo')
  .description('build two hosts and two tenants in network namespaces, ping and iperf3 through the overlay, print the results, clean up')
  .option('-s, --seconds <n>', 'iperf3 duration in seconds', '3')
  .option('--kernel', 'also measure the kernel VXLAN on the same veth for comparison', false)
  .action(async (opts: { seconds: string; kernel: boolean }) => {
    const { demo } = await import('./demo.js');
    const ok = await demo({ seconds: Number(opts.seconds), kernel: opts.kernel });
    process.exit(ok ? 0 : 1);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`vtepd: ${(e as Error).message}\n`);
  process.exit(1);
});
