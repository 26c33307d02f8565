import { readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100; // Linux USER_HZ

/**
 * CPU seconds of this process and of its reaped children (user+sys), from
 * /proc/self/stat. Node reaps every child it spawned, so ffmpeg's CPU lands in the
 * children figure once it has exited.
 */
export function cpuSeconds(): { self: number; children: number } {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command name start at field 3 (state); utime is field 14.
  const at = (field: number) => Number(fields[field - 3]) / CLOCK_TICKS_PER_SECOND;
  return { self: at(14) + at(15), children: at(16) + at(17) };
}
