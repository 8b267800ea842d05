/** Sections 1 and 2: the running services and the model-like objects of the active notebook's kernel. */
import { PageConfig } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ISignal } from '@lumino/signaling';
import React, { useCallback, useEffect, useRef, useState } from 'react';

import { IRegistrySettings, requestAPI } from './api';
import { errorText, humanBytes } from './format';
import { callInventory } from './kernel';
import { IKernelTarget, kernelTarget } from './kernelTarget';
import { kernelServices, stopKernelService } from './liveServices';
import { INotice, Notice, Section, useNotice } from './notice';
import { IVisibility, usePolling } from './polling';
import { StatsLine } from './serviceStats';
import { IActionResult, IKernelModel, IKernelReport, IService, IStoredItem, ITask } from './types';

/** Run a kernel.inventory action in the active kernel; its answer as a notice. */
export type KernelAction = (fn: string, args: (string | null)[]) => Promise<INotice>;

export function noticeOf(result: IActionResult): INotice {
  return result.ok
    ? { kind: 'info', text: result.message ?? 'done' }
    : { kind: 'error', text: result.error ?? result.message ?? 'the kernel reported a failure' };
}

/** Run a kernel.inventory action in the active notebook's kernel (builds and pulls may take minutes). */
export async function runInKernel(tracker: INotebookTracker, fn: string, args: (string | null)[]): Promise<INotice> {
  const target = kernelTarget(tracker);
  if (!target.kernel) {
    return { kind: 'error', text: target.problem ?? 'No kernel.' };
  }
  try {
    return noticeOf(await callInventory<IActionResult>(target.kernel, fn, args, 600000));
  } catch (error) {
    return { kind: 'error', text: errorText(error) };
  }
}

/** The browser-reachable URL of a service: through jupyter-server-proxy, so it works on a remote hub too. */
export function proxiedUrl(service: IService): string {
  return `${PageConfig.getBaseUrl()}proxy/${service.port}/`;
}

function TaskRow(props: { service: string; task: ITask; run: KernelAction }): JSX.Element {
  const { service, task, run } = props;
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useNotice();
  const live = task.status === 'pending' || task.status === 'in_progress';
  const cancel = async () => {
    setBusy(true);
    setNotice(await run('cancel_task', [service, task.task_id]));
    setBusy(false);
  };
  return (
    <li data-testid="bento-task" data-task-id={task.task_id} data-status={task.status}>
      <code title={task.task_id}>{task.api}</code> <span className="jp-bento-badge">{task.status}</span>{' '}
      <span className="jp-bento-muted" title="submitted">
        {new Date(task.created_at).toLocaleTimeString()}
      </span>
      {live ? (
        <button
          className="jp-bento-button jp-mod-warn"
          data-testid="bento-task-cancel"
          disabled={busy || task.cancel_requested}
          title={task.cancel_requested ? 'asked to stop' : 'cancel this task'}
          onClick={cancel}
        >
          {task.cancel_requested ? 'Stopping…' : 'Cancel'}
        </button>
      ) : null}
      <Notice notice={notice} testid="bento-task-message" />
    </li>
  );
}

function ServiceCard(props: {
  service: IService;
  run: KernelAction;
  stop: (name: string) => Promise<INotice>;
}): JSX.Element {
  const { service, run, stop } = props;
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useNotice();
  const act = async (what: 'build' | 'stop') => {
    setBusy(true);
    setNotice({ kind: 'info', text: `${what === 'stop' ? 'Stopping' : 'Building'} ${service.name}…`, pending: true });
    setNotice(await (what === 'stop' ? stop(service.name) : run('build_service', [service.name])));
    setBusy(false);
  };
  const url = proxiedUrl(service);
  return (
    <li className="jp-bento-card" data-testid="bento-service" data-name={service.name}>
      <div className="jp-bento-card-head">
        <span className="jp-bento-name">{service.name}</span>
        <span className="jp-bento-actions">
          <button className="jp-bento-button" data-testid="bento-build" disabled={busy} onClick={() => act('build')}>
            Build
          </button>
          <button
            className="jp-bento-button jp-mod-warn"
            data-testid="bento-stop"
            disabled={busy}
            onClick={() => act('stop')}
          >
            Stop
          </button>
        </span>
      </div>
      <a className="jp-bento-url" data-testid="bento-service-url" href={url} target="_blank" rel="noopener noreferrer">
        {url}
      </a>
      <div className="jp-bento-muted" title="where the kernel listens">
        in the kernel: {service.url}
      </div>
      <ul className="jp-bento-endpoints">
        {service.endpoints.map(endpoint => (
          <li key={endpoint.route} data-testid="bento-endpoint">
            <code>POST {endpoint.route}</code>{' '}
            {endpoint.batchable ? <span className="jp-bento-badge">batched</span> : null}
            {endpoint.stream ? <span className="jp-bento-badge">stream</span> : null}
            {endpoint.task ? <span className="jp-bento-badge">task</span> : null}
          </li>
        ))}
      </ul>
      {service.tasks && service.tasks.length > 0 ? (
        <ul className="jp-bento-endpoints" data-testid="bento-tasks">
          {service.tasks.map(task => (
            <TaskRow key={task.task_id} service={service.name} task={task} run={run} />
          ))}
        </ul>
      ) : null}
      <StatsLine stats={service.stats} testid="bento-service-stats" />
      <Notice notice={notice} testid="bento-service-message" />
    </li>
  );
}

/** The name `%bento save VARIABLE` gives a model by default. */
export function defaultModelName(variable: string): string {
  return variable.toLowerCase().replace(/_/g, '-');
}

function ModelRow(props: { model: IKernelModel; run: KernelAction; onSaved: () => void }): JSX.Element {
  const { model, run, onSaved } = props;
  const [busy, setBusy] = useState(false);
  const [name, setName] = useState('');
  const [notice, setNotice] = useNotice();
  const save = async () => {
    setBusy(true);
    setNotice({ kind: 'info', text: `Saving ${model.variable}…`, pending: true });
    const result = await run('save_model', [model.variable, name.trim() || null]);
    setNotice(result);
    setBusy(false);
    onSaved();
  };
  return (
    <li className="jp-bento-card" data-testid="bento-model" data-variable={model.variable}>
      <div className="jp-bento-card-head">
        <code className="jp-bento-name">{model.variable}</code>
        <span className="jp-bento-actions">
          <input
            className="jp-bento-input"
            data-testid="bento-model-name"
            title="the model's name in the store"
            placeholder={defaultModelName(model.variable)}
            value={name}
            onChange={event => setName(event.target.value)}
          />
          <button className="jp-bento-button" data-testid="bento-save-model" disabled={busy} onClick={save}>
            Save
          </button>
        </span>
      </div>
      <div className="jp-bento-muted">
        {model.type} · {model.size_exact === false ? '~' : ''}
        {humanBytes(model.size_bytes)} · {model.device ?? 'cpu'}
      </div>
      <Notice notice={notice} testid="bento-model-message" />
    </li>
  );
}

/**
 * Both kernel sections. Services come from the server extension every poll (live while a cell runs, no kernel
 * message); models need the kernel's namespace, so they are read with one silent request only when they may
 * have changed: a notebook shown, a cell finished, an action done. Nothing asks the kernel on a timer.
 */
export function KernelSections(props: {
  tracker: INotebookTracker;
  registry: IRegistrySettings;
  visibility: IVisibility;
  kick: ISignal<unknown, unknown>;
}): JSX.Element {
  const { tracker, registry, visibility, kick } = props;
  const [target, setTarget] = useState<IKernelTarget>(() => kernelTarget(tracker));
  const [services, setServices] = useState<IService[] | null>(null);
  const [models, setModels] = useState<IKernelModel[] | null>(null);
  const [reportError, setReportError] = useState<string | null>(null);
  const [stored, setStored] = useState<IStoredItem[] | null>(null);
  const [storeError, setStoreError] = useState<string | null>(null);
  const modelsStale = useRef(true);

  const refreshStore = useCallback(async () => {
    try {
      const answer = await requestAPI<{ items: IStoredItem[] }>('local/models', registry);
      setStored(answer.items);
      setStoreError(null);
    } catch (error) {
      setStoreError(errorText(error));
    }
  }, [registry]);

  const shownNotebook = useRef<string | null>(null);

  const refresh = async () => {
    const now = kernelTarget(tracker);
    setTarget(now);
    if (now.notebook !== shownNotebook.current) {
      shownNotebook.current = now.notebook;
      setServices(null); // another notebook: never show the last one's services or models as its own
      setModels(null);
      modelsStale.current = true;
    }
    if (!now.kernel) {
      setServices(null);
      setModels(null);
      setReportError(null);
      modelsStale.current = true;
      await refreshStore();
      return;
    }
    try {
      setServices(await kernelServices(now.kernel.id));
      if (modelsStale.current && now.status === 'idle') {
        modelsStale.current = false;
        setModels((await callInventory<IKernelReport>(now.kernel, 'report', [], 20000)).models);
      }
      setReportError(null);
    } catch (error) {
      setReportError(errorText(error));
    }
    await refreshStore();
  };
  usePolling(refresh, visibility, kick);

  useEffect(() => {
    const onExecuted = () => {
      modelsStale.current = true;
    };
    NotebookActions.executed.connect(onExecuted);
    return () => {
      NotebookActions.executed.disconnect(onExecuted);
    };
  }, []);

  const run: KernelAction = async (fn, args) => {
    const notice = await runInKernel(tracker, fn, args);
    modelsStale.current = true;
    void refresh();
    return notice;
  };

  const stop = async (name: string): Promise<INotice> => {
    const kernel = kernelTarget(tracker).kernel;
    if (!kernel) {
      return { kind: 'error', text: 'The notebook has no running kernel.' };
    }
    try {
      return noticeOf(await stopKernelService(kernel.id, name));
    } catch (error) {
      return { kind: 'error', text: errorText(error) };
    } finally {
      void refresh();
    }
  };

  const problem: INotice | null = target.problem
    ? { kind: target.severity, text: target.problem }
    : reportError
      ? { kind: 'error', text: reportError }
      : target.status === 'busy'
        ? { kind: 'info', text: 'A cell is running: services stay live; models refresh when it ends.' }
        : null;
  return (
    <>
      <div className="jp-bento-kernel" data-testid="bento-kernel" data-status={target.status}>
        <span className="jp-bento-muted">Notebook:</span>{' '}
        <span data-testid="bento-notebook">{target.notebook ?? '—'}</span>{' '}
        <span className="jp-bento-muted">({target.status})</span>
      </div>
      <Notice notice={problem} testid="bento-kernel-problem" />
      <Section title="Running services" testid="bento-services">
        {services && services.length === 0 ? (
          <div className="jp-bento-empty">No services in this kernel. Run a %%bento serve NAME cell to start one.</div>
        ) : null}
        <ul className="jp-bento-list">
          {(services ?? []).map(service => (
            <ServiceCard key={service.name} service={service} run={run} stop={stop} />
          ))}
        </ul>
      </Section>
      <Section title="Models in the kernel" testid="bento-models">
        {models && models.length === 0 ? (
          <div className="jp-bento-empty">No model-like objects in this kernel.</div>
        ) : null}
        <ul className="jp-bento-list">
          {(models ?? []).map(model => (
            <ModelRow key={model.variable} model={model} run={run} onSaved={() => void refreshStore()} />
          ))}
        </ul>
        <h4 className="jp-bento-subtitle">Saved in the model store</h4>
        <Notice notice={storeError ? { kind: 'error', text: storeError } : null} testid="bento-store-error" />
        {stored && stored.length === 0 ? <div className="jp-bento-empty">No saved models yet.</div> : null}
        <ul className="jp-bento-list jp-bento-compact">
          {(stored ?? []).map(item => (
            <li key={item.tag} data-testid="bento-stored-model" data-tag={item.tag}>
              <code>{item.tag}</code> <span className="jp-bento-muted">{humanBytes(item.size_bytes)}</span>
            </li>
          ))}
        </ul>
      </Section>
    </>
  );
}
