/**
 * Progress bar on stderr: `statistics [#####.....]  6.37M/12.7M  50%  2.12M/s  ETA 3s`: counts
 * and rate in k/M/G above 10,000, rate and ETA once the stage has run half a second.
 * Only on a TTY and without --quiet (the caller decides); redraws at most every `intervalMs`
 * and always on a stage change or completion, so a flood of events costs nothing.
 */
import type { ProgressEvent } from '../types.js';
import type { OutStream } from './context.js';

export interface ProgressBarOptions {
  intervalMs?: number;
  width?: number;
  now?: () => number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A count for a person: as is below 10,000, else three significant digits and k, M, G, T
 * (the statistics stage counts tensor elements: 2.10M/12.7M, not 2097140/12735872).
 */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const a = Math.abs(n);
  if (a < 10_000) return String(Math.round(n));
  const units = ['k', 'M', 'G', 'T', 'P'];
  let x = n / 1000, u = 0;
  while (Math.abs(x) >= 999.5 && u < units.length - 1) { x /= 1000; u++; }
  const digits = Math.abs(x) >= 99.95 ? 0 : Math.abs(x) >= 9.995 ? 1 : 2;
  return `${x.toFixed(digits)}${units[u]}`;
}

function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '';
  if (perSecond >= 10_000) return `${formatCount(perSecond)}/s`;
  return perSecond >= 100 ? `${Math.round(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
}

export class ProgressBar {
  private readonly stream: OutStream;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly width: number;
  private stage: string | undefined;
  private stageStart = 0;
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(stream: OutStream, options: ProgressBarOptions = {}) {
    this.stream = stream;
    this.intervalMs = options.intervalMs ?? 100;
    this.now = options.now ?? (() => performance.now());
    this.width = options.width ?? 24;
  }

  /** Feed one recover() progress event. */
  update(ev: ProgressEvent): void {
    const t = this.now();
    const newStage = ev.stage !== this.stage;
    if (newStage) {
      this.stage = ev.stage;
      this.stageStart = t;
    }
    if (ev.stage === 'done') {
      this.clear();
      return;
    }
    const complete = ev.total > 0 && ev.done >= ev.total;
    if (!newStage && !complete && t - this.lastDraw < this.intervalMs) return;
    this.lastDraw = t;
    this.draw(ev, t);
  }

  /** The line as drawn (exposed for tests). */
  render(ev: ProgressEvent, t: number): string {
    const total = Math.max(0, ev.total);
    const done = Math.min(Math.max(0, ev.done), total || Math.max(0, ev.done));
    const frac = total > 0 ? done / total : 0;
    const filled = Math.round(frac * this.width);
    const bar = '#'.repeat(filled) + '.'.repeat(this.width - filled);
    const elapsed = (t - this.stageStart) / 1000;
    const rate = elapsed > 0 ? done / elapsed : NaN;
    const parts = [`${ev.stage.padEnd(10)} [${bar}]`, `${formatCount(done)}/${formatCount(total)}`, `${Math.floor(frac * 100)}%`];
    if (elapsed >= 0.5 && done > 0) {
      parts.push(formatRate(rate));
      if (done < total) parts.push(`ETA ${formatDuration((total - done) / rate)}`);
    }
    // Messages may carry file names: no control characters on the terminal.
    if (ev.message) parts.push(ev.message.replace(/[\x00-\x1f\x7f-\x9f]/g, '?'));
    let line = parts.join('  ');
    const cols = this.stream.columns;
    if (cols && line.length > cols - 1) line = line.slice(0, cols - 1);
    return line;
  }

  private draw(ev: ProgressEvent, t: number): void {
    // \r + erase-line: redraw in place without leaving a trail of lines.
    this.stream.write(`\r\x1b[2K${this.render(ev, t)}`);
    this.drawn = true;
  }

  /** Erases the bar (before printing results or errors). */
  clear(): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }
}
