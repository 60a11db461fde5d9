/**
 * The next run of a plain cron expression, in local time, with Date alone.
 *
 * Why not node-cron for every schedule: it reads the time through
 * Intl.DateTimeFormat, and the first use of Intl maps about 8 MiB of ICU
 * data into the process, which in an agent that is otherwise idle is an
 * eighth of its memory. The expressions hosts actually use (the default
 * "30 3 * * *", steps, ranges, lists, names) are read here; anything else
 * (node-cron's @nicknames, L, W, #, or a day of month and a day of week both
 * restricted, where cron implementations disagree) is left to node-cron,
 * so every expression node-cron accepted keeps its meaning.
 */
export interface CronSchedule {
  /** The first matching instant strictly after `after`; undefined for an expression no date matches (30 February). */
  next(after: Date): Date | undefined;
}

interface Field {
  min: number;
  max: number;
  names?: readonly string[];
}

const SECOND: Field = { min: 0, max: 59 };
const MINUTE: Field = { min: 0, max: 59 };
const HOUR: Field = { min: 0, max: 23 };
const DAY_OF_MONTH: Field = { min: 1, max: 31 };
const MONTH: Field = { min: 1, max: 12, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"] };
// 7 is Sunday too, as in every cron.
const DAY_OF_WEEK: Field = { min: 0, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };
const FULL_DAY_NAMES = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/** Days searched for a match: a 29 February falls within eight years. */
const SEARCH_DAYS = 366 * 8 + 2;

function value(token: string, field: Field): number | undefined {
  const lower = token.toLowerCase();
  const named = field.names?.indexOf(lower) ?? -1;
  if (named >= 0) return named + field.min;
  const fullDay = field === DAY_OF_WEEK ? FULL_DAY_NAMES.indexOf(lower) : -1;
  if (fullDay >= 0) return fullDay;
  if (!/^\d{1,2}$/.test(token)) return undefined;
  const number = Number(token);
  return number >= field.min && number <= field.max ? number : undefined;
}

/** The values one field allows, or undefined when this reader does not take it. */
function parseField(text: string, field: Field): Set<number> | undefined {
  const allowed = new Set<number>();
  for (const item of text.split(",")) {
    const match = /^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:\/(\d{1,2}))?$/i.exec(item);
    if (!match) return undefined;
    const [, range = "", stepText] = match;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) return undefined;
    let first = field.min;
    let last = field.max;
    if (range !== "*") {
      const [from = "", to] = range.split("-");
      const start = value(from, field);
      const end = to === undefined ? (stepText === undefined ? start : undefined) : value(to, field);
      // "5/10" (a start with a step and no end) means different things to different crons: not read here.
      if (start === undefined || end === undefined || end < start) return undefined;
      first = start;
      last = end;
    }
    for (let number = first; number <= last; number += step) allowed.add(field === DAY_OF_WEEK ? number % 7 : number);
  }
  return allowed;
}

function firstAtLeast(allowed: ReadonlySet<number>, from: number, max: number): number | undefined {
  for (let number = from; number <= max; number++) if (allowed.has(number)) return number;
  return undefined;
}

/** Reads a five-field (minute first) or six-field (second first) expression; undefined for anything else. */
export function parseCronSchedule(expression: string): CronSchedule | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) return undefined;
  const [secondText, minuteText, hourText, dayText, monthText, weekdayText] = (fields.length === 5 ? ["0", ...fields] : fields) as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (dayText !== "*" && weekdayText !== "*") return undefined;
  const seconds = parseField(secondText, SECOND);
  const minutes = parseField(minuteText, MINUTE);
  const hours = parseField(hourText, HOUR);
  const days = parseField(dayText, DAY_OF_MONTH);
  const months = parseField(monthText, MONTH);
  const weekdays = parseField(weekdayText, DAY_OF_WEEK);
  if (!seconds || !minutes || !hours || !days || !months || !weekdays) return undefined;

  const dayMatches = (date: Date): boolean => months.has(date.getMonth() + 1) && days.has(date.getDate()) && weekdays.has(date.getDay());

  /** The first matching time of day at or after h:m:s on that day, or undefined. */
  const timeOnDay = (hour: number, minute: number, second: number): [number, number, number] | undefined => {
    for (let h = firstAtLeast(hours, hour, 23); h !== undefined; h = firstAtLeast(hours, h + 1, 23)) {
      const fromMinute = h === hour ? minute : 0;
      for (let m = firstAtLeast(minutes, fromMinute, 59); m !== undefined; m = firstAtLeast(minutes, m + 1, 59)) {
        const s = firstAtLeast(seconds, h === hour && m === minute ? second : 0, 59);
        if (s !== undefined) return [h, m, s];
      }
    }
    return undefined;
  };

  return {
    next(after: Date): Date | undefined {
      const start = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
      for (let offset = 0; offset <= SEARCH_DAYS; offset++) {
        const day = new Date(start.getFullYear(), start.getMonth(), start.getDate() + offset);
        if (!dayMatches(day)) continue;
        let time = offset === 0 ? timeOnDay(start.getHours(), start.getMinutes(), start.getSeconds()) : timeOnDay(0, 0, 0);
        while (time) {
          const at = new Date(day.getFullYear(), day.getMonth(), day.getDate(), ...time);
          if (at.getTime() > after.getTime()) return at;
          // A local time that a daylight-saving change repeated or skipped can land at or before `after`: the next one then.
          time = timeOnDay(time[0], time[1], time[2] + 1);
        }
      }
      return undefined;
    },
  };
}
