/** Refresh a section every ~2 s while the sidebar is visible, never two refreshes at once. */
import { ISignal } from '@lumino/signaling';
import { useEffect, useRef } from 'react';

export const POLL_MS = 2000;

/** What the sidebar tells its sections: whether it is on screen, and when that changes. */
export interface IVisibility {
  readonly isVisible: boolean;
  readonly visibilityChanged: ISignal<unknown, boolean>;
}

/** Run `refresh` now, every POLL_MS while visible, on becoming visible and whenever `kick` fires. */
export function usePolling(
  refresh: () => Promise<void>,
  visibility: IVisibility,
  kick?: ISignal<unknown, unknown>
): void {
  const latest = useRef(refresh);
  latest.current = refresh;
  useEffect(() => {
    let running = false;
    let disposed = false;
    const tick = async () => {
      if (running || disposed || !visibility.isVisible) {
        return;
      }
      running = true;
      try {
        await latest.current();
      } finally {
        running = false;
      }
    };
    const onVisible = (_: unknown, visible: boolean) => {
      if (visible) {
        void tick();
      }
    };
    const onKick = () => void tick();
    void tick();
    const interval = setInterval(() => void tick(), POLL_MS);
    visibility.visibilityChanged.connect(onVisible);
    kick?.connect(onKick);
    return () => {
      disposed = true;
      clearInterval(interval);
      visibility.visibilityChanged.disconnect(onVisible);
      kick?.disconnect(onKick);
    };
  }, [visibility, kick]);
}
