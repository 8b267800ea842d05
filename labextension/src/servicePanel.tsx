/**
 * The output of a `%%bento serve` cell (`application/vnd.bento-jupyter.service+json`): links to the service,
 * its endpoints, what the cell skipped, live stats and Stop. Stats and Stop go through the server extension to
 * the service's control routes, never through the kernel: they work while other cells run.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ReactWidget } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { errorText } from './format';
import { kernelServices, stopKernelService } from './liveServices';
import { Notice, useNotice } from './notice';
import { StatsLine } from './serviceStats';
import { IService, IServiceOutput } from './types';

export const MIME_TYPE = 'application/vnd.bento-jupyter.service+json';
const REFRESH_MS = 1000;

type State = { kind: 'loading' } | { kind: 'running'; service: IService } | { kind: 'stopped' };

function ServicePanel(props: { output: IServiceOutput; isShown: () => boolean }): JSX.Element {
  const { output, isShown } = props;
  const [state, setState] = useState<State>({ kind: 'loading' });
  const [notice, setNotice] = useNotice();
  const [stopping, setStopping] = useState(false);
  const kernelId = output.kernel_id;

  const refresh = async (): Promise<boolean> => {
    if (!kernelId) {
      setState({ kind: 'stopped' });
      return false;
    }
    try {
      const found = (await kernelServices(kernelId)).find(s => s.name === output.name && s.port === output.port);
      setState(found ? { kind: 'running', service: found } : { kind: 'stopped' });
      return found !== undefined;
    } catch (error) {
      setNotice({ kind: 'error', text: errorText(error) });
      return true;
    }
  };

  useEffect(() => {
    let disposed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      const running = isShown() ? await refresh() : true;
      if (!disposed && running) {
        timer = setTimeout(tick, REFRESH_MS);
      }
    };
    void tick();
    return () => {
      disposed = true;
      clearTimeout(timer);
    };
  }, [kernelId, output.name, output.port]);

  const stop = async () => {
    if (!kernelId) {
      return;
    }
    setStopping(true);
    setNotice({ kind: 'info', text: `Stopping ${output.name}…`, pending: true });
    try {
      const done = await stopKernelService(kernelId, output.name);
      setNotice({ kind: 'info', text: done.message ?? `stopped ${output.name}` });
    } catch (error) {
      setNotice({ kind: 'error', text: errorText(error) });
    }
    await refresh();
    setStopping(false);
  };

  const proxied = `${PageConfig.getBaseUrl()}proxy/${output.port}/`;
  const running = state.kind === 'running';
  return (
    <div className="jp-bento-cell-panel" data-testid="bento-cell-panel" data-name={output.name} data-state={state.kind}>
      <div className="jp-bento-card-head">
        <span>
          <span className="jp-bento-name">{output.name}</span>{' '}
          <span className="jp-bento-muted" data-testid="bento-cell-state">
            {state.kind === 'loading' ? '…' : running ? 'serving' : 'stopped'}
          </span>
        </span>
        <button
          className="jp-bento-button jp-mod-warn"
          data-testid="bento-cell-stop"
          disabled={!running || stopping}
          onClick={stop}
        >
          Stop
        </button>
      </div>
      <div>
        <a href={proxied} target="_blank" rel="noopener noreferrer" data-testid="bento-cell-docs">
          {proxied}
        </a>{' '}
        <span className="jp-bento-muted">(Swagger UI; in the kernel: {output.url})</span>
      </div>
      <ul className="jp-bento-endpoints">
        {output.endpoints.map(endpoint => (
          <li key={endpoint.route} data-testid="bento-cell-endpoint">
            <code>POST {endpoint.route}</code>{' '}
            {endpoint.batchable ? <span className="jp-bento-badge">batched</span> : null}
          </li>
        ))}
        {Object.entries(output.skipped ?? {}).map(([name, why]) => (
          <li key={name} className="jp-bento-muted" data-testid="bento-cell-skipped">
            skipped <code>{name}()</code>: {why}
          </li>
        ))}
      </ul>
      {running ? <StatsLine stats={state.service.stats} testid="bento-cell-stats" /> : null}
      <Notice notice={notice} testid="bento-cell-message" />
    </div>
  );
}

class ServiceOutputWidget extends ReactWidget implements IRenderMime.IRenderer {
  private output: IServiceOutput | null = null;

  constructor() {
    super();
    this.addClass('jp-bento-cell-output');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.output = model.data[MIME_TYPE] as unknown as IServiceOutput;
    this.update();
  }

  protected render(): JSX.Element | null {
    if (!this.output) {
      return null;
    }
    return <ServicePanel output={this.output} isShown={() => this.isVisible} />;
  }
}

export const serviceOutputRenderer: IRenderMime.IExtension = {
  id: 'bento-jupyter-labextension:service-output',
  rendererFactory: {
    safe: true,
    mimeTypes: [MIME_TYPE],
    createRenderer: () => new ServiceOutputWidget()
  },
  rank: 0,
  dataType: 'json'
};

export default serviceOutputRenderer;
