/** Section 3: bentos -> versions -> one version's detail and lineage, with serve / alias / delete / push. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import React, { useState } from 'react';

import { AliasRow } from './aliasHistory';
import { APIError, bentoPath, IRegistrySettings, requestAPI } from './api';
import { errorText, humanBytes, verificationText, when } from './format';
import { INotice, Notice, Section, useNotice } from './notice';
import { IVisibility, usePolling } from './polling';
import { IBentoList, IBentoVersions, ILineageCell, IStoredItem, IVersion, IVersionDetail } from './types';

export interface IRegistryActions {
  /** Serve `ref` ("name:N") in the active notebook's kernel. */
  serve(ref: string): Promise<INotice>;
  /** Open `path` (relative to the Jupyter root) and make the cell with `cellId` active. */
  openNotebook(path: string, cellId: string | null): Promise<void>;
}

/** The backend's message, with what to change when it is about the registry setting. */
export function registryProblem(error: unknown, registry: IRegistrySettings): string {
  const message = errorText(error);
  if (!(error instanceof APIError)) {
    return message;
  }
  if (error.status === 401 || error.status === 403) {
    return `${message} — check registryToken in Settings › Settings Editor › Bento.`;
  }
  if (error.status === 502 || error.status === 503 || error.status === 504) {
    return `${message} — is the registry running? Change registryUrl in Settings › Settings Editor › Bento if not.`;
  }
  return message;
}

/** The lineage cell to jump to: the last one executed (the serving cell in a bento built from the panel). */
export function sourceCell(cells: ILineageCell[] | undefined): ILineageCell | null {
  const withIds = (cells ?? []).filter(cell => cell.cell_id);
  if (withIds.length === 0) {
    return null;
  }
  return withIds.reduce((best, cell) => ((cell.execution_count ?? -1) >= (best.execution_count ?? -1) ? cell : best));
}

function firstLine(source: string | undefined): string {
  return (source ?? '').split('\n').find(line => line.trim()) ?? '';
}

function VersionDetail(props: {
  detail: IVersionDetail;
  registry: IRegistrySettings;
  actions: IRegistryActions;
  /** After an alias moved (the detail reloads) or the version was deleted (the detail closes). */
  onChanged: (deleted: boolean) => void;
}): JSX.Element {
  const { detail, registry, actions, onChanged } = props;
  const [alias, setAlias] = useState('');
  const [notice, setNotice] = useNotice();
  const ref = `${detail.name}:${detail.version}`;
  const lineage = detail.lineage ?? {};
  const cells = lineage.cells ?? [];
  const path = detail.notebook?.path ?? null;
  const target = sourceCell(cells);

  const attempt = async (what: () => Promise<INotice>) => {
    try {
      setNotice(await what());
    } catch (error) {
      setNotice({ kind: 'error', text: registryProblem(error, registry) });
    }
  };
  const open = (cellId: string | null) =>
    attempt(async () => {
      if (!path) {
        return {
          kind: 'error',
          text: `The source notebook (${lineage.notebook_path ?? 'unknown'}) is not under this Jupyter root.`
        };
      }
      await actions.openNotebook(path, cellId);
      return { kind: 'info', text: `Opened ${path}` };
    });
  const setAliasTo = () =>
    attempt(async () => {
      const name = alias.trim();
      if (!name) {
        return { kind: 'error', text: 'Type an alias first (e.g. prod).' };
      }
      await requestAPI(bentoPath(detail.name, 'aliases', name), registry, {
        method: 'PUT',
        body: JSON.stringify({ version: detail.version })
      });
      onChanged(false);
      return { kind: 'info', text: `${detail.name}@${name} -> version ${detail.version}` };
    });
  const remove = () =>
    attempt(async () => {
      const answer = await showDialog({
        title: `Delete ${ref}?`,
        body: `This removes version ${detail.version} of ${detail.name} from the ${registry.url ? 'registry' : 'local store'}.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
      });
      if (!answer.button.accept) {
        return { kind: 'info', text: 'Not deleted.' };
      }
      const done = await requestAPI<{ deleted: string }>(bentoPath(detail.name, detail.version), registry, {
        method: 'DELETE'
      });
      onChanged(true);
      return { kind: 'info', text: `Deleted ${done.deleted}` };
    });

  return (
    <div className="jp-bento-detail" data-testid="bento-version-detail" data-ref={ref}>
      <div className="jp-bento-card-head">
        <span className="jp-bento-name">{ref}</span>
        <span className="jp-bento-muted">{detail.digest ? detail.digest.slice(0, 19) : ''}</span>
      </div>
      <dl className="jp-bento-lineage" data-testid="bento-lineage">
        <dt>Notebook</dt>
        <dd data-testid="bento-lineage-notebook" title={lineage.notebook_path ?? ''}>
          {path ?? lineage.notebook_path ?? '-'}
        </dd>
        <dt>Git</dt>
        <dd data-testid="bento-lineage-git">
          {lineage.git?.commit
            ? `${lineage.git.commit.slice(0, 10)} (${lineage.git.branch ?? '?'}${lineage.git.dirty ? ', dirty' : ''})`
            : 'not in a git repository'}
        </dd>
        <dt>Verified</dt>
        <dd data-testid="bento-verification" data-state={detail.verification?.state ?? 'unverified'}>
          {verificationText(detail.verification)}
        </dd>
        <dt>Cells</dt>
        <dd>
          <ul className="jp-bento-cells">
            {cells.map((cell, index) => (
              <li key={`${cell.cell_id}-${index}`} data-testid="bento-lineage-cell" data-cell-id={cell.cell_id ?? ''}>
                <button
                  className="jp-bento-link"
                  disabled={!path || !cell.cell_id}
                  title="open the notebook at this cell"
                  onClick={() => open(cell.cell_id)}
                >
                  [{cell.execution_count ?? ' '}]
                </button>{' '}
                <code>{firstLine(cell.source)}</code>
              </li>
            ))}
          </ul>
        </dd>
      </dl>
      <div className="jp-bento-actions-row">
        <button
          className="jp-bento-button"
          data-testid="bento-open-notebook"
          disabled={!path}
          onClick={() => open(target?.cell_id ?? null)}
        >
          Open notebook
        </button>
        <button
          className="jp-bento-button"
          data-testid="bento-serve-version"
          onClick={() => attempt(() => actions.serve(ref))}
        >
          Serve in kernel
        </button>
        <button className="jp-bento-button jp-mod-warn" data-testid="bento-delete-version" onClick={remove}>
          Delete
        </button>
      </div>
      {registry.url ? (
        <div className="jp-bento-actions-row">
          <input
            className="jp-bento-input"
            data-testid="bento-alias-input"
            placeholder="alias, e.g. prod"
            value={alias}
            onChange={event => setAlias(event.target.value)}
          />
          <button className="jp-bento-button" data-testid="bento-set-alias" onClick={setAliasTo}>
            Set alias
          </button>
        </div>
      ) : (
        <div className="jp-bento-muted" data-testid="bento-alias-hint">
          Aliases (e.g. @prod) live in a registry: set registryUrl in Settings › Settings Editor › Bento.
        </div>
      )}
      <Notice notice={notice} testid="bento-version-message" />
    </div>
  );
}

function LocalBentos(props: { registry: IRegistrySettings; items: IStoredItem[]; onPushed: () => void }): JSX.Element {
  const { registry, items, onPushed } = props;
  const [notice, setNotice] = useNotice();
  const push = async (tag: string) => {
    setNotice({ kind: 'info', text: `Pushing ${tag}…`, pending: true });
    try {
      const done = await requestAPI<{ tag: string; version: number; created: boolean }>('push', registry, {
        method: 'POST',
        body: JSON.stringify({ tag })
      });
      setNotice({
        kind: 'info',
        text: done.created
          ? `Pushed ${tag} as ${done.tag} (version ${done.version})`
          : `${tag} was already published as ${done.tag}`
      });
      onPushed();
    } catch (error) {
      setNotice({ kind: 'error', text: registryProblem(error, registry) });
    }
  };
  return (
    <div data-testid="bento-local-bentos">
      <h4 className="jp-bento-subtitle">In the local store</h4>
      {items.length === 0 ? (
        <div className="jp-bento-empty">No local bentos: Build a running service first.</div>
      ) : null}
      <ul className="jp-bento-list jp-bento-compact">
        {items.map(item => (
          <li key={item.tag} data-testid="bento-local-bento" data-tag={item.tag}>
            <code>{item.tag}</code> <span className="jp-bento-muted">{humanBytes(item.size_bytes)}</span>{' '}
            <button
              className="jp-bento-button"
              data-testid="bento-push"
              data-tag={item.tag}
              onClick={() => push(item.tag)}
            >
              Push
            </button>
          </li>
        ))}
      </ul>
      <Notice notice={notice} testid="bento-push-message" />
    </div>
  );
}

export function RegistrySection(props: {
  registry: IRegistrySettings;
  visibility: IVisibility;
  actions: IRegistryActions;
}): JSX.Element {
  const { registry, visibility, actions } = props;
  const [list, setList] = useState<IBentoList | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [local, setLocal] = useState<IStoredItem[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [versions, setVersions] = useState<IBentoVersions | null>(null);
  const [detail, setDetail] = useState<IVersionDetail | null>(null);
  const [notice, setNotice] = useNotice();

  const refresh = async () => {
    try {
      setList(await requestAPI<IBentoList>('bentos', registry));
      setListError(null);
      if (open) {
        setVersions(await requestAPI<IBentoVersions>(bentoPath(open), registry));
      }
    } catch (error) {
      setList(null);
      setListError(registryProblem(error, registry));
    }
    if (registry.url) {
      try {
        setLocal((await requestAPI<{ items: IStoredItem[] }>('local/bentos', registry)).items);
      } catch (error) {
        setNotice({ kind: 'error', text: errorText(error) });
      }
    }
  };
  usePolling(refresh, visibility);

  const toggle = async (name: string) => {
    setDetail(null);
    if (open === name) {
      setOpen(null);
      setVersions(null);
      return;
    }
    setOpen(name);
    setVersions(null);
    try {
      setVersions(await requestAPI<IBentoVersions>(bentoPath(name), registry));
    } catch (error) {
      setNotice({ kind: 'error', text: registryProblem(error, registry) });
    }
  };
  const select = async (name: string, version: number) => {
    try {
      setDetail(await requestAPI<IVersionDetail>(bentoPath(name, version), registry));
      setNotice(null);
    } catch (error) {
      setNotice({ kind: 'error', text: registryProblem(error, registry) });
    }
  };
  const changed = (deleted: boolean) => {
    if (deleted) {
      setDetail(null);
    } else if (detail) {
      void select(detail.name, detail.version);
    }
    void refresh();
  };

  const title = registry.url ? `Registry: ${registry.url}` : 'Registry: local store';
  return (
    <Section title={title} testid="bento-registry">
      <div className="jp-bento-muted" data-testid="bento-registry-source" data-source={list?.source ?? ''}>
        {registry.url
          ? `Showing ${registry.url}.`
          : 'Showing the local store; set registryUrl in Settings › Settings Editor › Bento to browse a registry.'}
      </div>
      <Notice notice={listError ? { kind: 'error', text: listError } : null} testid="bento-registry-error" />
      {list && list.bentos.length === 0 ? <div className="jp-bento-empty">No bentos yet.</div> : null}
      <ul className="jp-bento-list">
        {(list?.bentos ?? []).map(bento => (
          <li key={bento.name} className="jp-bento-card" data-testid="bento-bento" data-name={bento.name}>
            <button
              className="jp-bento-link jp-bento-name"
              data-testid="bento-bento-toggle"
              onClick={() => toggle(bento.name)}
            >
              {open === bento.name ? '▾' : '▸'} {bento.name}
            </button>{' '}
            <span className="jp-bento-muted">
              {bento.versions} version{bento.versions === 1 ? '' : 's'}, latest {bento.latest}
              {Object.entries(bento.aliases).map(([alias, version]) => ` · @${alias}=${version}`)}
            </span>
            {open === bento.name && registry.url && Object.keys(bento.aliases).length > 0 ? (
              <ul className="jp-bento-aliases" data-testid="bento-aliases">
                {Object.entries(bento.aliases).map(([alias, version]) => (
                  <AliasRow
                    key={alias}
                    name={bento.name}
                    alias={alias}
                    version={version}
                    registry={registry}
                    problem={error => registryProblem(error, registry)}
                    onChanged={() => changed(false)}
                  />
                ))}
              </ul>
            ) : null}
            {open === bento.name && versions?.name === bento.name ? (
              <ul className="jp-bento-versions">
                {versions.versions.map(version => (
                  <li
                    key={version.version}
                    className={
                      detail?.name === bento.name && detail.version === version.version ? 'jp-mod-selected' : ''
                    }
                    data-testid="bento-version"
                    data-version={version.version}
                  >
                    <button className="jp-bento-link" onClick={() => select(bento.name, version.version)}>
                      v{version.version}
                    </button>{' '}
                    {version.aliases.map(alias => (
                      <span key={alias} className="jp-bento-badge">
                        @{alias}
                      </span>
                    ))}
                    {version.tags.map(tag => (
                      <span key={tag} className="jp-bento-badge jp-bento-tag">
                        {tag}
                      </span>
                    ))}
                    <SignedBadge signedBy={version.signed_by} /> <CodeBadge files={version.code_executing_files} />
                    {version.error ? (
                      <span className="jp-bento-error-text">{version.error}</span>
                    ) : (
                      <span className="jp-bento-muted">
                        {version.created_by ?? '?'}, {when(version.created_at)}, {humanBytes(version.size_bytes)}
                      </span>
                    )}
                  </li>
                ))}
              </ul>
            ) : null}
            {detail && detail.name === bento.name ? (
              <VersionDetail
                key={`${detail.name}:${detail.version}`}
                detail={detail}
                registry={registry}
                actions={actions}
                onChanged={changed}
              />
            ) : null}
          </li>
        ))}
      </ul>
      <Notice notice={notice} testid="bento-registry-message" />
      {registry.url ? (
        <LocalBentos registry={registry} items={local} onPushed={() => void refresh()} />
      ) : (
        <div className="jp-bento-muted" data-testid="bento-push-hint">
          Push publishes these bentos to a registry: set registryUrl in Settings › Settings Editor › Bento to enable it.
        </div>
      )}
    </Section>
  );
}

/** A version whose files run code when loaded (pickles): serving or pulling it needs --trust-code. */
function CodeBadge({ files }: { files?: string[] }): JSX.Element | null {
  if (!files || files.length === 0) {
    return null;
  }
  return (
    <span
      className="jp-bento-badge jp-bento-error-text"
      data-testid="bento-executes-code"
      title={`Runs code when loaded (${files.join(', ')}): serve or pull it only with --trust-code if you trust its builder`}
    >
      runs code on load
    </span>
  );
}

/** Whether a version is signed, and by which key (its fingerprint; ✓ when the registry verified it). */
function SignedBadge({ signedBy }: { signedBy: IVersion['signed_by'] }): JSX.Element | null {
  if (!signedBy) {
    return null;
  }
  if (signedBy.error || !signedBy.key) {
    return (
      <span className="jp-bento-badge jp-bento-error-text" data-testid="bento-signed" title={signedBy.error}>
        bad signature
      </span>
    );
  }
  const what = signedBy.verified ? 'signed, verified by the registry' : 'signed (not verified here)';
  return (
    <span
      className="jp-bento-badge"
      data-testid="bento-signed"
      data-key={signedBy.key}
      title={`${what}: key ${signedBy.key}`}
    >
      signed · {signedBy.key.slice(0, 12)}
      {signedBy.verified ? ' ✓' : ''}
    </span>
  );
}
