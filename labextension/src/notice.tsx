/** One line of feedback in a section: an error in words, or what an action did. */
import React, { useEffect, useState } from 'react';

export interface INotice {
  kind: 'error' | 'info';
  text: string;
  /** An action still under way ("Building…"): stays until its outcome replaces it. */
  pending?: boolean;
}

/** How long an outcome stays on screen: long enough to read, not forever. */
export const INFO_MS = 8000;
export const ERROR_MS = 30000;

/** A notice state that clears itself once read: info after INFO_MS, errors after ERROR_MS, pending never. */
export function useNotice(): [INotice | null, (notice: INotice | null) => void] {
  const [notice, setNotice] = useState<INotice | null>(null);
  useEffect(() => {
    if (!notice || notice.pending) {
      return;
    }
    const timer = setTimeout(() => setNotice(null), notice.kind === 'info' ? INFO_MS : ERROR_MS);
    return () => clearTimeout(timer);
  }, [notice]);
  return [notice, setNotice];
}

export function Notice(props: { notice: INotice | null; testid: string }): JSX.Element | null {
  if (!props.notice) {
    return null;
  }
  const { kind, text } = props.notice;
  return (
    <div
      className={`jp-bento-notice jp-bento-notice-${kind}`}
      data-testid={props.testid}
      data-kind={kind}
      role={kind === 'error' ? 'alert' : 'status'}
    >
      {text}
    </div>
  );
}

/** A titled block of the panel. */
export function Section(props: { title: string; testid: string; children?: React.ReactNode }): JSX.Element {
  return (
    <section className="jp-bento-section" data-testid={props.testid}>
      <h3 className="jp-bento-section-title">{props.title}</h3>
      {props.children}
    </section>
  );
}
