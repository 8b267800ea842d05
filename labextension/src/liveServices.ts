/**
 * A kernel's services, read and stopped through the server extension, which reaches each service's own
 * loopback control routes: no message goes to the kernel, so this works while a cell runs and never makes
 * the kernel busy.
 */
import { requestAPI } from './api';
import { IActionResult, IService } from './types';

/** The running services of kernel `kernelId`, with live stats. */
export async function kernelServices(kernelId: string): Promise<IService[]> {
  const answer = await requestAPI<{ services: IService[] }>(`kernels/${encodeURIComponent(kernelId)}/services`);
  return answer.services;
}

/** Stop service `name` of kernel `kernelId`; resolves once it no longer answers. */
export async function stopKernelService(kernelId: string, name: string): Promise<IActionResult> {
  return requestAPI<IActionResult>(
    `kernels/${encodeURIComponent(kernelId)}/services/${encodeURIComponent(name)}/stop`,
    undefined,
    { method: 'POST' }
  );
}
