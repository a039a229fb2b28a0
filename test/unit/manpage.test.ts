/**
 * man/vtepd.8 is written by hand; the CLI's commander program is the truth. Every verb has
 * a section (`.SS vtepd fdb show ...`), every option appears in its verb's section by one
 * of its spellings, and every spelling somewhere in the page. A verb or flag added to
 * src/cli/cli.ts without a word in the man page fails here, naming it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { program } from '../../src/cli/cli.js';
import { commandTree } from '../../src/cli/completion.js';

const ROOT = join(import.meta.dirname, '..', '..');
/** The page as a reader sees its words: roff's \- as -, font changes dropped. */
const page = readFileSync(join(ROOT, 'man', 'vtepd.8'), 'utf8')
  .replace(/\\-/g, '-')
  .replace(/\\f[BIRP]/g, '');
const sections = page.split(/^\.SS /m).slice(1);
const mentions = (text: string, flag: string) => new RegExp(`(^|[\\s[(|,])${flag}(?=$|[\\s\\],)|.:;'])`, 'm').test(text);
const HELP = ['-h', '--help'];
/** The section whose heading is `vtepd PATH` (then a space or the end of the line). */
const sectionOf = (path: string[]) => sections.find((s) => new RegExp(`^vtepd ${path.join(' ')}(\\s|$)`).test(s));

describe('man/vtepd.8', () => {
  const verbs = commandTree(program);

  it('has a section for every verb of the CLI', () => {
    const missing = verbs.filter((v) => v.path.length > 0 && sectionOf(v.path) === undefined);
    expect(missing.map((v) => v.path.join(' '))).toEqual([]);
  });

  it("names every option in its verb's section, and every spelling of it in the page", () => {
    const missing: string[] = [];
    const find = (path: string[]): Option[] => {
      let cmd = program;
      for (const p of path) cmd = cmd.commands.find((c) => c.name() === p)!;
      return cmd.createHelp().visibleOptions(cmd);
    };
    for (const v of verbs) {
      const section = v.path.length === 0 ? page : sectionOf(v.path);
      if (section === undefined) continue;
      for (const o of find(v.path)) {
        const spellings = [o.short, o.long].filter((s): s is string => s !== undefined && !HELP.includes(s));
        if (spellings.length > 0 && !spellings.some((s) => mentions(section, s))) missing.push(`vtepd ${v.path.join(' ')} ${o.flags}`);
        for (const s of spellings) if (!mentions(page, s)) missing.push(`${s} (of vtepd ${v.path.join(' ')})`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("gives in each verb's synopsis only flags that verb has (a renamed flag leaves no stale spelling)", () => {
    const stale: string[] = [];
    for (const v of verbs) {
      if (v.path.length === 0) continue;
      const heading = sectionOf(v.path)?.split('\n')[0];
      if (heading === undefined) continue;
      let cmd = program;
      for (const p of v.path) cmd = cmd.commands.find((c) => c.name() === p)!;
      const known = new Set(cmd.options.flatMap((o) => [o.short, o.long]).filter((s) => s !== undefined));
      for (const m of heading.matchAll(/(?<=^|[\s[|])(--?[a-zA-Z][a-zA-Z-]*)/g)) if (!known.has(m[1])) stale.push(`vtepd ${v.path.join(' ')}: ${m[1]}`);
    }
    expect(stale).toEqual([]);
  });
});
