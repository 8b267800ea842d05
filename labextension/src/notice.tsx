/** One line of feedback in a section: an error in words, or what an action did. */
import React from 'react';

export interface INotice {
  kind: 'error' | 'info';
  text: string;
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
