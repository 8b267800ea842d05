/** One alias of a bento in the registry: where it points, its history (moves, rollbacks, policy), Rollback. */
import { InputDialog } from '@jupyterlab/apputils';
import React, { useState } from 'react';

import { bentoPath, IRegistrySettings, requestAPI } from './api';
import { when } from './format';
import { INotice, Notice } from './notice';
import { IAliasEvent } from './types';

function fromTo(event: IAliasEvent): string {
  return `${event.from ?? '-'} → ${event.to ?? '-'}`;
}

/** One history entry in words: what happened, forced or not, and why. */
export function eventText(event: IAliasEvent): string {
  const details = event.details ?? {};
  let text =
    event.action === 'rollback'
      ? `rolled back ${fromTo(event)}`
      : event.action === 'policy'
        ? `now requires ${(details.requires ?? []).join(', ') || 'nothing'}`
        : `moved ${fromTo(event)}`;
  if (details.forced) {
    text += ' (forced)';
  }
  return event.reason ? `${text}: ${event.reason}` : text;
}

export function AliasRow(props: {
  name: string;
  alias: string;
  version: number;
  registry: IRegistrySettings;
  /** The readable message for a failed call. */
  problem: (error: unknown) => string;
  /** After a rollback moved the alias. */
  onChanged: () => void;
}): JSX.Element {
  const { name, alias, version, registry, problem, onChanged } = props;
  const [history, setHistory] = useState<IAliasEvent[] | null>(null);
  const [notice, setNotice] = useState<INotice | null>(null);

  const load = async () => {
    const answer = await requestAPI<{ history: IAliasEvent[] }>(bentoPath(name, 'aliases', alias, 'history'), registry);
    setHistory(answer.history);
  };
  const toggle = async () => {
    if (history) {
      setHistory(null);
      return;
    }
    try {
      await load();
      setNotice(null);
    } catch (error) {
      setNotice({ kind: 'error', text: problem(error) });
    }
  };
  const rollback = async () => {
    const answer = await InputDialog.getText({
      title: `Roll back ${name}@${alias}?`,
      label: 'It goes back to the version it pointed at before its last move. Reason (kept in the history):',
      placeholder: 'e.g. latency regression',
      okLabel: 'Roll back'
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      const moved = await requestAPI<{ previous: number; version: number }>(
        bentoPath(name, 'aliases', alias, 'rollback'),
        registry,
        { method: 'POST', body: JSON.stringify({ reason: answer.value ?? '' }) }
      );
      setNotice({ kind: 'info', text: `${name}@${alias}: ${moved.previous} → ${moved.version} (rolled back)` });
      if (history) {
        await load();
      }
      onChanged();
    } catch (error) {
      setNotice({ kind: 'error', text: problem(error) });
    }
  };

  return (
    <li data-testid="bento-alias" data-alias={alias} data-version={version}>
      <span className="jp-bento-badge">@{alias}</span> → v{version}{' '}
      <button className="jp-bento-link" data-testid="bento-alias-history-toggle" onClick={toggle}>
        {history ? 'Hide history' : 'History'}
      </button>{' '}
      <button className="jp-bento-button" data-testid="bento-alias-rollback" onClick={rollback}>
        Rollback
      </button>
      {history ? (
        <ol className="jp-bento-alias-history" data-testid="bento-alias-history">
          {history.map(event => (
            <li key={event.id} data-testid="bento-alias-event" data-action={event.action}>
              <span className="jp-bento-muted">
                {when(event.at)} · {event.actor}
              </span>{' '}
              {eventText(event)}
            </li>
          ))}
        </ol>
      ) : null}
      <Notice notice={notice} testid="bento-alias-message" />
    </li>
  );
}
