/**
 * Text from a repository or catalog (source names, snapshot tags, stored paths)
 * may hold control characters: an escape sequence in a file name would otherwise
 * recolour, retitle or rewrite the operator's terminal, and a newline forge a line
 * of output. Human output passes such text through forTerminal; --json prints the
 * exact value (JSON escapes control characters itself).
 */

/**
 * C0 controls (newline and tab too), DEL, C1 controls, and the bidirectional
 * overrides and isolates that make text display in another order than it is stored.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' };

/** The text with every unsafe character shown as an escape (\n, \t, \e, \xNN, \u{NNNN}). */
export function forTerminal(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.codePointAt(0) as number;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}
