/** The Bento sidebar plugin: a left-sidebar panel restored on reload, configured from the settings editor. */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { BentoSidebar } from './sidebar';

const PLUGIN_ID = 'bento-jupyter-labextension:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The Bento sidebar: running services, models in the kernel, and the registry.',
  autoStart: true,
  requires: [INotebookTracker, ISettingRegistry],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry,
    restorer: ILayoutRestorer | null
  ) => {
    const sidebar = new BentoSidebar(app, tracker);
    app.shell.add(sidebar, 'left', { rank: 600 });
    restorer?.add(sidebar, sidebar.id);
    settingRegistry
      .load(PLUGIN_ID)
      .then(settings => {
        const apply = () => {
          sidebar.registry = {
            url: (settings.get('registryUrl').composite as string).trim(),
            token: settings.get('registryToken').composite as string
          };
        };
        apply();
        settings.changed.connect(apply);
      })
      .catch(reason => {
        sidebar.settingsProblem = `The Bento settings could not be loaded (${reason}): the registry section shows the local store.`;
      });
  }
};

export default plugin;
