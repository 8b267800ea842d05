/** The active notebook's kernel, or a readable reason why the panel cannot talk to it. */
import { INotebookTracker } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';

export interface IKernelTarget {
  /** The notebook's path, null when no notebook is open. */
  notebook: string | null;
  /** A kernel ready for requests, or null with `problem` saying why not. */
  kernel: Kernel.IKernelConnection | null;
  problem: string | null;
  /** 'info' while there is nothing wrong yet (no notebook open, kernel connecting); 'error' otherwise. */
  severity: 'info' | 'error';
  /** The kernel's status as JupyterLab reports it ('idle', 'busy', 'dead', ...; 'none' without a kernel). */
  status: string;
}

export function kernelTarget(tracker: INotebookTracker): IKernelTarget {
  const panel = tracker.currentWidget;
  if (!panel) {
    return {
      notebook: null,
      kernel: null,
      status: 'none',
      problem: 'No notebook is open: open one to see its running services and models.',
      severity: 'info'
    };
  }
  const notebook = panel.context.path;
  const name = panel.title.label || notebook;
  const session = panel.sessionContext;
  if (!session.isReady && !session.isDisposed && !session.hasNoKernel) {
    return {
      notebook,
      kernel: null,
      status: 'starting',
      problem: `Connecting to the kernel of ${name}…`,
      severity: 'info'
    };
  }
  const kernel = session.session?.kernel ?? null;
  if (!kernel || kernel.isDisposed) {
    return {
      notebook,
      kernel: null,
      status: 'none',
      problem:
        `${name} has no kernel (it was shut down, or none was chosen): start one with Kernel › Restart Kernel ` +
        'or pick one with Kernel › Change Kernel.',
      severity: 'error'
    };
  }
  const status = kernel.status;
  if (status === 'dead') {
    return {
      notebook,
      kernel: null,
      status,
      problem: `The kernel of ${name} is dead: restart it with Kernel › Restart Kernel; its services stopped with it.`,
      severity: 'error'
    };
  }
  if (status === 'restarting' || status === 'autorestarting') {
    return { notebook, kernel: null, status, problem: `The kernel of ${name} is restarting…`, severity: 'info' };
  }
  if (status === 'starting' || status === 'unknown' || kernel.connectionStatus !== 'connected') {
    return { notebook, kernel: null, status, problem: `Connecting to the kernel of ${name}…`, severity: 'info' };
  }
  return { notebook, kernel, status, problem: null, severity: 'info' };
}
