// An operator's change with a reason: refused here without one (the server refuses it too;
// the reason goes to the audit log), then run, reported in `note` or `error`, and followed
// by `reload` either way so the page shows what is now true.
import { ref } from "vue";

export function useAction(reload: () => Promise<unknown>) {
  const reason = ref("");
  const error = ref("");
  const note = ref("");
  const busy = ref(false);

  /** Runs `f` as the change `what`; `f` may set `note` itself (it is kept). */
  async function act(what: string, f: () => Promise<unknown>): Promise<void> {
    error.value = "";
    note.value = "";
    if (!reason.value.trim()) {
      error.value = "Give a reason: it goes to the audit log.";
      return;
    }
    busy.value = true;
    try {
      await f();
      note.value ||= `${what}: done`;
    } catch (e) {
      error.value = `${what}: ${(e as Error).message}`;
    } finally {
      busy.value = false;
      await reload().catch(() => undefined);
    }
  }

  return { reason, error, note, busy, act };
}
