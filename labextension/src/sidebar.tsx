/** The Bento sidebar widget: the kernel sections and the registry section, refreshed while visible. */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import React from 'react';

import { IRegistrySettings } from './api';
import { bentoIcon } from './icon';
import { KernelSections, runInKernel } from './kernelSections';
import { Notice } from './notice';
import { openNotebookAt } from './openNotebook';
import { IRegistryActions, RegistrySection } from './registrySection';

export class BentoSidebar extends ReactWidget {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly tracker: INotebookTracker
  ) {
    super();
    this.id = 'bento-jupyter-sidebar';
    this.title.icon = bentoIcon;
    this.title.caption = 'Bento: services, models and registry';
    this.addClass('jp-bento-sidebar');
    this.node.dataset.testid = 'bento-sidebar';
    tracker.currentChanged.connect(() => this._kick.emit(undefined), this);
  }

  /** Emits true when the panel is shown, false when hidden. */
  get visibilityChanged(): ISignal<this, boolean> {
    return this._visibilityChanged;
  }

  get registry(): IRegistrySettings {
    return this._registry;
  }

  set registry(value: IRegistrySettings) {
    this._registry = value;
    this._registryChanged.emit(value);
  }

  /** Why the registry settings could not be read, shown at the top of the panel (null: they were). */
  set settingsProblem(value: string | null) {
    this._settingsProblem = value;
    this.update();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._visibilityChanged.emit(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._visibilityChanged.emit(false);
  }

  private readonly actions: IRegistryActions = {
    serve: async ref => {
      const { url, token } = this._registry;
      const notice = await runInKernel(this.tracker, 'serve_version', [ref, url || null, token || null]);
      this._kick.emit(undefined);
      return notice;
    },
    openNotebook: (path, cellId) => openNotebookAt(this.app, this.tracker, path, cellId)
  };

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this._registryChanged} initialArgs={this._registry}>
        {(_, registry) => {
          const settings = registry ?? this._registry;
          return (
            <div className="jp-bento-panel">
              <header className="jp-bento-header">
                <bentoIcon.react tag="span" className="jp-bento-header-icon" />
                <h2>Bento</h2>
              </header>
              <Notice
                notice={this._settingsProblem ? { kind: 'error', text: this._settingsProblem } : null}
                testid="bento-settings-error"
              />
              <KernelSections tracker={this.tracker} registry={settings} visibility={this} kick={this._kick} />
              <RegistrySection
                key={`${settings.url}\n${settings.token}`}
                registry={settings}
                visibility={this}
                actions={this.actions}
              />
            </div>
          );
        }}
      </UseSignal>
    );
  }

  private _registry: IRegistrySettings = { url: '', token: '' };
  private _settingsProblem: string | null = null;
  private readonly _registryChanged = new Signal<this, IRegistrySettings>(this);
  private readonly _visibilityChanged = new Signal<this, boolean>(this);
  private readonly _kick = new Signal<this, void>(this);
}
