/** A service's live numbers, as the sidebar card and the cell's panel show them. */
import React from 'react';

import { number } from './format';
import { IServiceStats } from './types';

export function StatsLine(props: { stats: IServiceStats; testid: string }): JSX.Element {
  const { stats } = props;
  return (
    <div className="jp-bento-stats" data-testid={props.testid}>
      <span title="requests per second over the last 10 s">{number(stats.rate_per_s, 1)} req/s</span>
      <span title="mean adaptive batch size">batch {number(stats.mean_batch_size, 1)}</span>
      <span title="median latency (last 10 s)">p50 {number(stats.p50_ms, 1, ' ms')}</span>
      <span title="99th percentile latency (last 10 s)">p99 {number(stats.p99_ms, 1, ' ms')}</span>
      <span title="requests being handled now">{stats.in_flight} in flight</span>
      <span title="answers with a 5xx status" className={stats.errors ? 'jp-bento-error-text' : ''}>
        {stats.errors} errors
      </span>
      <span title="requests served">{stats.requests} total</span>
    </div>
  );
}
