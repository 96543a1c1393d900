"""gfdt-dash dashboard: ``panel serve app.py``.

Process-wide settings live here, not in the library (which never changes them): torch uses one
intra-op thread (``gfdt_dash.threads``, the policy of every entry point), because the classroom
grids are too small to gain from more (on two cores a 16×16 OU run takes ~1 s with one thread and
~25 s with the default), and parallelism comes from the shared job pool instead
(``gfdt_dash.ui.jobs``), whose computations run in worker processes of one thread each
(``gfdt_dash.ui.worker``), started here with the server so that the first jobs find them ready
(``panel serve app.py --warm`` runs this at start-up, before the first visitor).
"""

import gc

import panel as pn

from gfdt_dash.stages import reference_costs
from gfdt_dash.systems import SYSTEMS, plugins_from_env
from gfdt_dash.threads import set_threads
from gfdt_dash.ui import worker
from gfdt_dash.ui.app import TITLE, create_app
from gfdt_dash.ui.jobs import POOL_SIZE

set_threads(1)

if pn.state.served:
    plugins_from_env()  # GFDT_DASH_PLUGINS: plug-in systems, before the workers and estimates
    if worker.start(POOL_SIZE):  # the server's first run of this script (later ones start none)
        for system in SYSTEMS:  # the job estimates' reference timings, read once, now
            reference_costs(system)
        # Everything imported so far lives as long as the server: exempt it from the full
        # collections Panel runs after sessions close, which then walk only the sessions'
        # objects (they still held the event loop ~10 s in all in the 20-session load test).
        gc.freeze()
    create_app().servable(title=TITLE)
