"""gfdt-dash dashboard: ``panel serve app.py``.

Process-wide settings live here, not in the library (STYLE rule 5): torch uses one intra-op
thread per job, because the classroom grids are too small to gain from more (on two cores a
16×16 OU run takes ~1 s with one thread and ~25 s with the default), and parallelism comes from the
shared worker pool instead (``gfdt_dash.ui.jobs``).
"""

import panel as pn
import torch

from gfdt_dash.ui.app import TITLE, create_app

torch.set_num_threads(1)

if pn.state.served:
    create_app().servable(title=TITLE)
