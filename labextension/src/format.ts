/** Numbers and times as the panel shows them. */

export function humanBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) {
    return '-';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function number(value: number | null | undefined, digits = 1, suffix = ''): string {
  return value === null || value === undefined ? '-' : `${value.toFixed(digits)}${suffix}`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) {
    return '-';
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A build's verification in words: how many stored samples the bento answered as the kernel did. */
export function verificationText(
  verification: { state: string; replayed: number; opted_out: string[] } | null | undefined
): string {
  if (!verification) {
    return 'not verified at build';
  }
  const opted = verification.opted_out.length ? ` (not checked: ${verification.opted_out.join(', ')})` : '';
  if (verification.state === 'passed') {
    return `${verification.replayed} sample${verification.replayed === 1 ? '' : 's'} answered as the kernel did${opted}`;
  }
  return `${verification.state}${opted}`;
}
