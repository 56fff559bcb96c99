/** Report formats by name, as `mother recover --format` and the library offer them. */
import type { RecoverResult } from '../types.js';
import { formatDot } from './dot.js';
import { formatHtml, type HtmlOptions } from './html.js';
import { formatJson } from './json.js';
import { formatMermaid } from './mermaid.js';
import { formatNewick } from './newick.js';
import { formatText, type TextOptions } from './text.js';

export const REPORT_FORMATS = ['json', 'text', 'dot', 'mermaid', 'newick', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export interface ReportOptions {
  /** text only: ASCII branches, ANSI colour. */
  ascii?: boolean;
  color?: boolean;
  /**
   * text, dot, mermaid, html: calls below this confidence are marked (default 0.5; `--min-confidence`).
   * A number in [0, 1], else an InputError (E_INPUT_OPTION).
   */
  minConfidence?: number;
  /** Older name of `minConfidence`. */
  lowConfidence?: number;
  /** html only: model facts, family distances, notes (see HtmlOptions). */
  html?: Omit<HtmlOptions, 'minConfidence' | 'lowConfidence'>;
}

export function formatReport(result: RecoverResult, format: ReportFormat, options: ReportOptions = {}): string {
  const threshold = { minConfidence: options.minConfidence, lowConfidence: options.lowConfidence };
  switch (format) {
    case 'json':
      return formatJson(result);
    case 'text': {
      const t: TextOptions = { ascii: options.ascii, color: options.color, ...threshold };
      return formatText(result, t);
    }
    case 'dot':
      return formatDot(result, threshold);
    case 'mermaid':
      return formatMermaid(result, threshold);
    case 'newick':
      return formatNewick(result);
    case 'html':
      return formatHtml(result, { ...options.html, ...threshold });
  }
}

export { formatDot, formatHtml, formatJson, formatMermaid, formatNewick, formatText };
export type { HtmlOptions, ModelFacts, FamilyDistances } from './html.js';
export { collectHtmlExtras, type HtmlExtrasOptions } from './html-facts.js';
export { confidenceThreshold, LOW_CONFIDENCE } from './forest.js';
