/** The shapes exchanged with the kernel inventory and the server extension (labextension/CONTRACT.md). */

export interface IEndpoint {
  name: string;
  route: string;
  batchable: boolean;
  stream?: boolean;
  task?: boolean;
}

/** One task of a task API (BentoML's status names). */
export interface ITask {
  api: string;
  task_id: string;
  status: 'pending' | 'in_progress' | 'completed' | 'failed' | 'canceled';
  created_at: string;
  executed_at: string | null;
  completed_at: string | null;
  cancel_requested: boolean;
}

export interface IServiceStats {
  requests: number;
  errors: number;
  in_flight: number;
  rate_per_s: number;
  p50_ms: number | null;
  p99_ms: number | null;
  mean_batch_size: number | null;
}

export interface IService {
  name: string;
  url: string;
  host: string;
  port: number;
  cell_id: string | null;
  endpoints: IEndpoint[];
  stats: IServiceStats;
  /** The newest tasks first (absent from older kernels). */
  tasks?: ITask[];
}

/** What a `%%bento serve` cell displays as `application/vnd.bento-jupyter.service+json`. */
export interface IServiceOutput {
  name: string;
  kernel_id: string | null;
  url: string;
  port: number;
  endpoints: IEndpoint[];
  /** Functions of the cell that are not endpoints, with why. */
  skipped: Record<string, string>;
}

export interface IKernelModel {
  variable: string;
  type: string;
  size_bytes: number | null;
  /** false: the size is a bounded estimate. */
  size_exact?: boolean;
  device: string | null;
}

export interface IKernelReport {
  services: IService[];
  models: IKernelModel[];
}

/** What every kernel-side action answers. */
export interface IActionResult {
  ok: boolean;
  message?: string;
  error?: string;
  tag?: string;
  url?: string;
}

export interface IBentoSummary {
  name: string;
  latest: number;
  versions: number;
  aliases: Record<string, number>;
}

export interface IBentoList {
  source: 'registry' | 'local';
  url: string | null;
  bentos: IBentoSummary[];
}

export interface IVersion {
  version: number;
  aliases: string[];
  tags: string[];
  created_by: string | null;
  created_at: string | null;
  size_bytes: number | null;
  digest: string | null;
  /** The key its bento.sig names (sha256 of the public key); `verified`: the registry checked it. */
  signed_by?: { key: string | null; verified: boolean; error?: string } | null;
  /** Files whose loader runs code (pickles): serving or pulling the version needs --trust-code. */
  code_executing_files?: string[];
  /** Set instead of the other fields when a local version's manifest is damaged. */
  error?: string;
}

/** One entry of an alias's history, newest first: a move, a rollback or a policy change. */
export interface IAliasEvent {
  id: number;
  action: 'alias' | 'rollback' | 'policy';
  label: string;
  from: number | null;
  to: number | null;
  actor: string;
  at: string;
  reason: string | null;
  details: { forced?: boolean; requires?: string[]; undoes?: number } | null;
}

export interface IBentoVersions {
  name: string;
  versions: IVersion[];
}

export interface ILineageCell {
  cell_id: string | null;
  execution_count: number | null;
  source_sha256?: string;
  source?: string;
}

export interface ILineage {
  notebook_path?: string;
  cells?: ILineageCell[];
  git?: { commit?: string; branch?: string; dirty?: boolean };
  [key: string]: unknown;
}

/** What the build proved: its stored samples replayed against the bento in a fresh process. */
export interface IVerification {
  /** passed, failed, partial (some APIs had nothing to replay) or unverified (nothing replayed). */
  state: string;
  replayed: number;
  opted_out: string[];
  /** APIs with no answered request to replay: not verified. */
  unsampled?: string[];
}

export interface IVersionDetail extends IVersion {
  name: string;
  lineage: ILineage;
  apis: unknown[];
  /** Null when the bento was built without verification (or by an older version). */
  verification?: IVerification | null;
  notebook: { path: string | null };
}

export interface IStoredItem {
  tag: string;
  name: string;
  version: number;
  size_bytes?: number | null;
  created_at?: string | null;
}
