/**
 * Vitest reporter: after the run, the number of skipped tests and why, so skips are never silent.
 * The reason is the test's skip note (`ctx.skip(true, 'why')`, as test/helpers/zoo.ts gives);
 * a test skipped without a note is counted under its file and outermost suite, whose name may say why
 * (describe.skipIf(...)(`... (${reason})`)).
 */
import { relative } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

interface Node { type?: string; name?: string; parent?: Node }

function outermostSuite(t: Node): string | undefined {
  let name: string | undefined;
  for (let p = t.parent; p && p.type === 'suite'; p = p.parent) name = p.name;
  return name;
}

export default class SkipReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const reasons = new Map<string, number>();
    let skipped = 0;
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const r = t.result();
        if (r.state !== 'skipped') continue;
        skipped++;
        const suite = outermostSuite(t);
        const where = relative(process.cwd(), m.moduleId) + (suite ? ` > ${suite}` : '');
        const note = r.note ?? `no reason given (${where}${t.options.mode === 'todo' ? ', todo' : ''})`;
        reasons.set(note, (reasons.get(note) ?? 0) + 1);
      }
    }
    const lines = [`skipped: ${skipped} test${skipped === 1 ? '' : 's'}`];
    for (const [note, n] of [...reasons].sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(4)}  ${note}`);
    process.stdout.write(`\n${lines.join('\n')}\n`);
  }
}
