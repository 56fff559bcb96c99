/** Report formats by name, as `mother recover --format` and the library offer them. */
import type { RecoverResult } from '../types.js';
import { formatDot } from './dot.js';
import { formatJson } from './json.js';
import { formatMermaid } from './mermaid.js';
import { formatNewick } from './newick.js';
import { formatText, type TextOptions } from './text.js';

export const REPORT_FORMATS = ['json', 'text', 'dot', 'mermaid', 'newick'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export interface ReportOptions {
  /** text only: ASCII branches, ANSI colour. */
  ascii?: boolean;
  color?: boolean;
  /** text, dot, mermaid: confidence below which an edge is flagged (default 0.5). */
  lowConfidence?: number;
}

export function formatReport(result: RecoverResult, format: ReportFormat, options: ReportOptions = {}): string {
  switch (format) {
    case 'json':
      return formatJson(result);
    case 'text': {
      const t: TextOptions = { ascii: options.ascii, color: options.color, lowConfidence: options.lowConfidence };
      return formatText(result, t);
    }
    case 'dot':
      return formatDot(result, { lowConfidence: options.lowConfidence });
    case 'mermaid':
      return formatMermaid(result, { lowConfidence: options.lowConfidence });
    case 'newick':
      return formatNewick(result);
  }
}

export { formatDot, formatJson, formatMermaid, formatNewick, formatText };
