# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)
"""dcm_wait's loop: poll the module on the target host, print a line when the progress changes."""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

LOOP_OPTIONS = ("timeout", "poll")


class ActionModule(ActionBase):
    """Polls ``dcspark.dcm.dcm_wait`` until the cluster runs, is degraded, or the time is up."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        timeout = float(args.get("timeout", 900))
        poll = max(float(args.get("poll", 1.0)), 0.2)
        cluster = args.get("cluster")
        started = time.monotonic()
        last = None
        while True:
            look = self._execute_module(module_name="dcspark.dcm.dcm_wait", module_args=args, task_vars=task_vars)
            if look.get("failed"):
                result.update(look)
                return result
            if look.get("progress") != last:
                last = look.get("progress")
                display.display(f"  {cluster}: {last} ({time.monotonic() - started:.0f} s)")
            elapsed = round(time.monotonic() - started, 1)
            result.update({key: look.get(key) for key in ("clusters", "alive", "progress", "done")},
                          seconds=elapsed, changed=False)
            if look.get("degraded"):
                reason = ((look["clusters"][0].get("degraded") or {}).get("reason")) or "no reason recorded"
                result.update(failed=True, msg=f"cluster {cluster} is degraded: {reason}. Its other nodes keep running; "
                                               "free capacity or add hosts, and the DCM master places the rest at its "
                                               "next check")
                return result
            if look.get("done"):
                return result
            if elapsed >= timeout:
                waiting = look.get("waiting") or []
                result.update(failed=True, waiting=waiting,
                              msg=f"cluster {cluster} did not come up within {timeout:g} s ({last}); "
                                  + ("; ".join(waiting) or "the Spark master does not list every worker ALIVE yet"))
                return result
            time.sleep(poll)
