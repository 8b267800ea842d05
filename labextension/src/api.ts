/** The one helper that talks to the bento_jupyter server extension (`{base_url}bento-jupyter/api/...`). */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Which registry the server extension should talk to; an empty URL means the local store. */
export interface IRegistrySettings {
  url: string;
  token: string;
}

/** For routes that do not involve a registry. */
export const NO_REGISTRY: IRegistrySettings = { url: '', token: '' };

/** A failed call, with the server's readable message and its HTTP status (0: the server was not reached). */
export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

function errorMessage(response: Response, body: unknown): string {
  if (body && typeof body === 'object' && typeof (body as { error?: unknown }).error === 'string') {
    return (body as { error: string }).error;
  }
  if (response.status === 404) {
    return (
      'The bento_jupyter server extension did not answer (404): check that ' +
      '`jupyter server extension list` shows bento_jupyter.labserver enabled, then restart JupyterLab.'
    );
  }
  return `The Jupyter server answered ${response.status} ${response.statusText}.`;
}

/**
 * Call a route of the server extension and return its JSON; throws APIError with a readable message.
 * `registry` is what the panel shows; the server reads the registry URL and token from the same user
 * settings itself and never takes them from a request, so neither is sent.
 */
export async function requestAPI<T>(
  endpoint: string,
  registry: IRegistrySettings = NO_REGISTRY,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'bento-jupyter', 'api', endpoint);
  const headers = new Headers(init.headers);
  if (init.body !== undefined) {
    headers.set('Content-Type', 'application/json');
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, { ...init, headers }, settings);
  } catch (error) {
    throw new APIError(`The Jupyter server could not be reached: ${error}`, 0);
  }
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    throw new APIError(errorMessage(response, body), response.status);
  }
  return body as T;
}

/** `name` and `version` as one URL path, each part escaped. */
export function bentoPath(...parts: (string | number)[]): string {
  return ['bentos', ...parts.map(part => encodeURIComponent(String(part)))].join('/');
}
