/** Calls into `bento_jupyter.kernel.inventory` inside a notebook's kernel, through a silent execute request. */
import { Kernel } from '@jupyterlab/services';

const INVENTORY = "__import__('bento_jupyter.kernel.inventory').kernel.inventory";

/** A kernel call that failed; the message says why in words a user can act on. */
export class KernelCallError extends Error {}

type PyValue = string | number | boolean | null | undefined;

/** A Python literal for a JSON scalar (JSON string escapes are valid Python string escapes). */
export function pyLiteral(value: PyValue): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  return JSON.stringify(value);
}

interface IExpressionResult {
  status: 'ok' | 'error';
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}

function describeFailure(ename: string | undefined, evalue: string | undefined): string {
  if (ename === 'ModuleNotFoundError' && (evalue ?? '').includes('bento_jupyter')) {
    return 'bento_jupyter is not installed in this notebook\'s kernel environment: pick the "Python 3 (bento)" kernel or pip install it there.';
  }
  return `The kernel raised ${ename}: ${evalue}`;
}

/** Evaluate `bento_jupyter.kernel.inventory.FN(ARGS)` in `kernel` without touching the notebook; its JSON result. */
export async function callInventory<T>(
  kernel: Kernel.IKernelConnection,
  fn: string,
  args: PyValue[] = [],
  timeoutMs = 60000
): Promise<T> {
  const expression = `${INVENTORY}.${fn}(${args.map(pyLiteral).join(', ')})`;
  const future = kernel.requestExecute(
    {
      code: '',
      silent: true,
      store_history: false,
      allow_stdin: false,
      stop_on_error: false,
      user_expressions: { bento: expression }
    },
    true
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new KernelCallError(`The kernel did not answer within ${timeoutMs / 1000} s (is a cell still running?).`)
        ),
      timeoutMs
    );
  });
  try {
    const reply = await Promise.race([future.done, timeout]);
    const content = reply.content;
    if (content.status !== 'ok') {
      throw new KernelCallError(`The kernel could not run the request (${content.status}).`);
    }
    const result = content.user_expressions['bento'] as unknown as IExpressionResult | undefined;
    if (!result) {
      throw new KernelCallError('The kernel sent no answer for the request.');
    }
    if (result.status !== 'ok') {
      throw new KernelCallError(describeFailure(result.ename, result.evalue));
    }
    const json = result.data?.['application/json'];
    if (json === undefined) {
      throw new KernelCallError(`bento_jupyter.kernel.inventory.${fn} sent no JSON (is bento_jupyter in the kernel up to date?).`);
    }
    return json as T;
  } catch (error) {
    if (error instanceof KernelCallError) {
      throw error;
    }
    throw new KernelCallError(`The kernel request failed: ${error instanceof Error ? error.message : error}`);
  } finally {
    clearTimeout(timer);
    if (!future.isDisposed) {
      future.dispose();
    }
  }
}
