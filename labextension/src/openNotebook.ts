/** "Open notebook": open a bento's source notebook and make its source cell the active one. */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

export async function openNotebookAt(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  path: string,
  cellId: string | null
): Promise<void> {
  await app.commands.execute('docmanager:open', { path, factory: 'Notebook' });
  const panel = tracker.find(widget => widget.context.path === path);
  if (!panel) {
    throw new Error(`${path} did not open as a notebook.`);
  }
  await panel.context.ready;
  app.shell.activateById(panel.id);
  if (!cellId) {
    return;
  }
  const notebook = panel.content;
  const index = notebook.widgets.findIndex(cell => cell.model.id === cellId);
  if (index < 0) {
    throw new Error(`${path} no longer has the cell this version was built from (id ${cellId}).`);
  }
  notebook.activeCellIndex = index;
  notebook.mode = 'command';
  await notebook.scrollToCell(notebook.widgets[index], 'center');
}
