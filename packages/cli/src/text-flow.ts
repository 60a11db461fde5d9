import cliTruncate from "cli-truncate";
import stringWidth from "string-width";

export { stringWidth };

/** Cuts a line to the terminal's width, with "…" where it was cut. */
export function fit(line: string, width: number): string {
  return stringWidth(line) <= width ? line : cliTruncate(line, Math.max(1, width));
}

export interface FlowItem {
  text: string;
  /** Put before the item when it follows another on the same line. */
  separator: string;
}

export interface FlowOptions {
  width: number;
  indent: string;
  maxLines: number;
  /** What stands for the items that did not fit, given how many. */
  overflow: (left: number) => string;
}

/**
 * Lays items out over at most `maxLines` lines of `width` columns, breaking
 * only between items, and ends with `overflow(n)` when n items did not fit.
 * A line that breaks keeps its separator's mark (",", "·") so the reader sees
 * the list goes on.
 */
export function flow(items: readonly FlowItem[], options: FlowOptions): string[] {
  const { width, indent, maxLines } = options;
  if (maxLines <= 0 || items.length === 0) return [];
  const lines: string[] = [];
  let line = indent;
  let index = 0;
  while (index < items.length) {
    const item = items[index] as FlowItem;
    const fresh = line === indent;
    const piece = fresh ? item.text : item.separator + item.text;
    const lastLine = lines.length === maxLines - 1;
    const left = items.length - index - 1;
    const reserve = lastLine && left > 0 ? stringWidth(options.overflow(left)) : 0;
    if (stringWidth(line + piece) + reserve <= width) {
      line += piece;
      index += 1;
    } else if (fresh) {
      // One item wider than a whole line: cut it rather than loop.
      line += fit(piece, Math.max(1, width - stringWidth(indent) - reserve));
      index += 1;
    } else if (!lastLine) {
      const mark = item.separator.trimEnd();
      lines.push(stringWidth(line + mark) <= width ? line + mark : line);
      line = indent;
    } else {
      break;
    }
  }
  if (index < items.length) line += options.overflow(items.length - index);
  lines.push(line);
  return lines.map((text) => fit(text, width));
}

/** Words of a sentence as flow items, for reasons and hints that wrap. */
export function words(text: string): FlowItem[] {
  return text
    .split(" ")
    .filter(Boolean)
    .map((word) => ({ text: word, separator: " " }));
}
