/** Numbers and times as the panel shows them. */

import type { IVerification } from './types';

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

/** A build's verification in words: how many stored samples the bento answered as the kernel did, and
 * loudly which APIs had nothing to replay (those are not verified). */
export function verificationText(verification: IVerification | null | undefined): string {
  if (!verification) {
    return 'NOT verified at build';
  }
  const opted = verification.opted_out.length ? ` (not checked: ${verification.opted_out.join(', ')})` : '';
  const unsampled = verification.unsampled?.length
    ? `NOT verified, no answered request to replay: ${verification.unsampled.join(', ')}`
    : '';
  const answered = `${verification.replayed} sample${verification.replayed === 1 ? '' : 's'} answered as the kernel did`;
  if (verification.state === 'passed') {
    return `${answered}${opted}`;
  }
  if (verification.state === 'partial') {
    return `${answered}; ${unsampled}${opted}`;
  }
  if (verification.state === 'unverified') {
    return `${unsampled || 'NOT verified: nothing to replay'}${opted}`;
  }
  return `${verification.state}${opted}`;
}
